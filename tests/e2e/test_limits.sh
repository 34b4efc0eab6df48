#!/usr/bin/env bash
# test_limits.sh: headroomd's connection limit. Each connection gets a thread, so without a bound
# any client could open thousands; with --max-connections N a connection beyond N waits in the
# kernel's listen queue, unaccepted and without a thread, until one of the N closes.
# usage: test_limits.sh HEADROOMD TINY_MODEL WORK_DIR
# Exits 77 (skipped) without node or curl.
set -u
headroomd=$1 model=$2 work=$3
scratch=$work/scratch
mkdir -p "$work"; rm -rf "$scratch"; mkdir -p "$scratch"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
for tool in node curl; do command -v $tool >/dev/null || { echo "skipped: $tool is not installed"; exit 77; }; done

start_server limits --model "$model" --port 0 --threads 1 --max-connections 3
check "headroomd starts with --max-connections 3" $?
[[ -n $url ]] || { cat "$scratch/limits.err"; finish; exit 1; }
port=${url##*:}

# three idle connections, held open (no request sent) until the file "release" appears
node -e '
    const net = require("net"), fs = require("fs");
    const [port, release] = process.argv.slice(1);
    const sockets = [];
    for (let i = 0; i < 3; i++) sockets.push(net.connect(Number(port), "127.0.0.1"));
    const wait = setInterval(() => { if (fs.existsSync(release)) { sockets.forEach((s) => s.destroy()); process.exit(0); } }, 50);
    setTimeout(() => process.exit(0), 30000);
' "$port" "$scratch/release" &
holder=$!
helper_pids+=("$holder")
for _ in $(seq 100); do
    [[ $(ls /proc/"$pid"/task | wc -l) -ge 7 ]] && break   # a thread for each held connection
    sleep 0.05
done

threads=$(ls /proc/"$pid"/task | wc -l)
http GET "$url/health" --max-time 2
[[ $(cat "$scratch/status") == 000 ]]; check "a fourth connection is not served while three are open" $?
[[ $(ls /proc/"$pid"/task | wc -l) -le $threads ]]; check "and it got no thread ($threads threads)" $?

touch "$scratch/release"
wait "$holder"
ok=1
for _ in $(seq 40); do http GET "$url/health"; status 200 && { ok=0; break; }; sleep 0.05; done
check "served again once the held connections close" $ok
http POST "$url/v1/completions" '{"model":"tiny","prompt":"Hello","max_tokens":4}'
status 200; check "a completion after the limit was reached" $?

stop_server "$pid" limits; check "headroomd stops on SIGTERM: exit 0, no sanitizer report" $?
finish
