#!/usr/bin/env bash
# test_cli_server.sh: the commands that talk to a running headroomd, as a person uses Ollama's:
# headroom ps, load, unload and top (with --json, under a pseudo-terminal where q quits), with
# HEADROOM_HOST and HEADROOM_API_KEY, and one clear sentence when no server answers.
# usage: test_cli_server.sh HEADROOM HEADROOMD TINY_MODEL SCRATCH_DIR
set -u
headroom=$1 headroomd=$2 model=$3 scratch=$4
rm -rf "$scratch"; mkdir -p "$scratch"
# shellcheck source=../e2e/lib.sh
source "$(dirname "$0")/../e2e/lib.sh"
run() { "$headroom" "$@" >"$scratch/out" 2>"$scratch/err"; echo $? >"$scratch/rc"; }
rc() { cat "$scratch/rc"; }
said() { grep -q -- "$1" "$scratch/${2:-out}"; }
show() { echo "  stdout: $(head -c 400 "$scratch/out")"; echo "  stderr: $(head -c 400 "$scratch/err")"; }
json() { node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); process.exit((new Function("j", "return " + process.argv[2]))(j) ? 0 : 1)' "$scratch/out" "$1"; }

# nothing listens on this port: one sentence, exit 1
free_port=$(( 20000 + RANDOM % 20000 ))
HEADROOM_HOST=127.0.0.1:$free_port run ps
[[ $(rc) -eq 1 && $(wc -l <"$scratch/err") -eq 1 ]] && said "no headroomd answers at http://127.0.0.1:$free_port" err
check "no server: one sentence that says where it looked, exit 1" $? || show

start_server cli --model "$model" --port 0 --api-key secret --keep-alive 10m
check "headroomd starts" $?
[[ -n $url ]] || { cat "$scratch/cli.err"; finish; exit 1; }
port=${url##*:}
export HEADROOM_HOST=$url

run ps
[[ $(rc) -eq 1 ]] && said "needs an API key; set HEADROOM_API_KEY" err; check "without the key: says to set HEADROOM_API_KEY" $?
export HEADROOM_API_KEY=secret

run ps
[[ $(rc) -eq 0 ]] && said "^NAME" && ! said "^tiny"; check "ps: a header and no model before any load" $? || show
HEADROOM_HOST=127.0.0.1 HEADROOM_PORT=$port run ps --all
[[ $(rc) -eq 0 ]] && said "^tiny  *unloaded"; check "ps --all lists what it may serve (HEADROOM_HOST as a bare address, HEADROOM_PORT)" $? || show

run load tiny --keep-alive 5m
[[ $(rc) -eq 0 ]] && said "^tiny loaded"; check "load tiny: 'tiny loaded'" $? || show
run ps
[[ $(rc) -eq 0 ]] && said "^tiny  *ready  *[0-9.]* [KMG]iB  *512  *[0-9]* \(seconds\|minutes\) from now"
check "ps: the loaded model with its memory, context and when it unloads" $? || show
run ps --json
[[ $(rc) -eq 0 ]] && json 'j.length === 1 && j[0].name === "tiny" && j[0].state === "ready" && j[0].expires_at - Date.now() / 1000 <= 301'
check "ps --json: the server's entries, to unload within the 5m asked (the server's default is 10m)" $? || show

run load missing-model
[[ $(rc) -eq 1 ]] && said "model 'missing-model' not found" err; check "load of an unknown model: the server's sentence, exit 1" $? || show
run load tiny --keep-alive soon
[[ $(rc) -eq 2 ]] && said "keep-alive takes a duration" err; check "a bad --keep-alive: exit 2 with the reason" $? || show
run load
[[ $(rc) -eq 2 ]] && said "no model given" err; check "load without a model: exit 2" $? || show

run top --json -n 2 -i 0.2
[[ $(rc) -eq 0 && $(wc -l <"$scratch/out") -eq 2 ]] && head -n 1 "$scratch/out" >"$scratch/first" &&
    node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1])); process.exit(j.memory.pressure.level && j.memory.models.some(m => m.name === "tiny" && m.state === "ready") && Array.isArray(j.active) ? 0 : 1)' "$scratch/first"
check "top --json -n 2: two objects with the level, the models and the generations" $? || show

# a generation running while top watches it
curl -s -H 'Authorization: Bearer secret' "$url/api/generate" \
     -d '{"model":"tiny","prompt":"Once upon a time","options":{"num_predict":-1,"temperature":0}}' >/dev/null &
helper_pids+=($!)
seen=1
for _ in $(seq 1 100); do
    run top -n 1
    said "^tiny  *generating" && { seen=0; break; }
    sleep 0.05
done
[[ $seen -eq 0 ]] && said "^level  *\(normal\|warn\|critical\)" && said "^available"
check "top shows the level, memory and the running generation" $? || show
wait "${helper_pids[-1]}" 2>/dev/null

# under a pseudo-terminal: one screen redrawn, q quits at once and the terminal is restored
(sleep 1.5; printf q) | timeout 20 script -qec "$headroom top -i 0.3" /dev/null >"$scratch/out" 2>"$scratch/err"
code=$?
[[ $code -eq 0 ]] && said "level" && grep -q $'\033\[H\033\[2J' "$scratch/out"
check "top on a terminal redraws the screen and q quits (exit $code)" $? || show

run unload tiny
[[ $(rc) -eq 0 ]] && said "^tiny unloaded"; check "unload tiny: 'tiny unloaded'" $? || show
run unload tiny --json
[[ $(rc) -eq 0 ]] && json 'j.model === "tiny" && j.status === "unloaded"'; check "unload --json: the server's reply" $? || show
run ps
[[ $(rc) -eq 0 ]] && ! said "^tiny"; check "ps after the unload: nothing loaded" $? || show

stop_server "$pid" cli; check "headroomd stops cleanly" $?

# one HEADROOM_HOST, as a URL with the port, for both the server and the CLI (as OLLAMA_HOST)
HEADROOM_HOST=http://127.0.0.1:$port start_server url --model "$model" --api-key secret
check "headroomd binds what HEADROOM_HOST=http://127.0.0.1:$port says" $?
[[ $url == "http://127.0.0.1:$port" ]]; check "  on that port ($url)" $?
HEADROOM_HOST=http://127.0.0.1:$port run ps --all
[[ $(rc) -eq 0 ]] && said "^tiny"; check "the CLI finds it through the same HEADROOM_HOST" $? || show
[[ -n $url ]] && { stop_server "$pid" url; check "that headroomd stops cleanly" $?; }
HEADROOM_HOST=https://127.0.0.1:$port "$headroomd" --model "$model" >"$scratch/out" 2>"$scratch/err"
[[ $? -eq 2 ]] && said "serves plain HTTP; put a TLS proxy" err; check "HEADROOM_HOST=https://...: refused with the reason, exit 2" $? || show
finish
