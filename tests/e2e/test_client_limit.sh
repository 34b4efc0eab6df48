#!/usr/bin/env bash
# test_client_limit.sh: --max-connections-per-client. headroomd listens on all addresses with an
# API key, and a client connects to this machine's own non-loopback address (so its connections
# come from that address): with a limit of 4, six held connections leave four open and two
# closed at accept, with a sentence in the log; a request from loopback is still answered; when
# one of the four closes, a new one from that address is let in again. From loopback, which is
# not counted, six connections all stay open. Exits 77 where the machine has no non-loopback
# IPv4 address or node is missing.
# usage: test_client_limit.sh HEADROOMD TINY_MODEL SCRATCH_DIR
set -u
headroomd=$1 model=$2 scratch=$3
rm -rf "$scratch"; mkdir -p "$scratch"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
command -v node >/dev/null || { echo "skipped: node is not installed (the client is a Node script)"; exit 77; }
address=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' | grep -v '^127\.' | head -n 1)
[[ -n $address ]] || { echo "skipped: this machine has no non-loopback IPv4 address to connect from"; exit 77; }

start_server limit --model "$model" --host 0.0.0.0 --api-key secret --port 0 --max-connections-per-client 4
limit_url=$url limit_pid=$pid
[[ -n $limit_url ]]; check "headroomd listens on 0.0.0.0 with --max-connections-per-client 4" $?
port=${limit_url##*:}

coproc holder { node "$e2e_dir/hold_connections.mjs" "$address" "$port" 6; }
helper_pids+=("$holder_PID")
read -r -t 30 states <&"${holder[0]}"
echo "  connections from $address: $states"
[[ $states == '["open","open","open","open","closed","closed"]' ]]
check "six connections from $address: the first four open, two closed at accept" $?
grep -q "refused a connection from $address: it has 4 open, the --max-connections-per-client limit" "$scratch/limit.err"
check "the log says which address was refused and why" $?
grep "refused a connection" "$scratch/limit.err" | head -n 1 | sed 's/^/  /'
http GET "$limit_url/health"
status 200; check "loopback is still answered meanwhile" $?
echo probe >&"${holder[1]}"; read -r -t 30 probe <&"${holder[0]}"
[[ $probe == closed ]]; check "a seventh from $address is refused too" $?
echo close >&"${holder[1]}"; read -r -t 30 _ <&"${holder[0]}"
echo probe >&"${holder[1]}"; read -r -t 30 probe <&"${holder[0]}"
[[ $probe == open ]]; check "after one of the four closes, a new connection from $address is let in" $?
exec {holder[1]}>&-
wait "$holder_PID" 2>/dev/null

coproc local_holder { node "$e2e_dir/hold_connections.mjs" 127.0.0.1 "$port" 6; }
helper_pids+=("$local_holder_PID")
read -r -t 30 states <&"${local_holder[0]}"
[[ $states == '["open","open","open","open","open","open"]' ]]
check "six connections from loopback all stay open (loopback is not counted): $states" $?
exec {local_holder[1]}>&-
wait "$local_holder_PID" 2>/dev/null

stop_server "$limit_pid" limit; check "headroomd stops cleanly" $?
finish
