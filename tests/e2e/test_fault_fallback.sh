#!/usr/bin/env bash
# test_fault_fallback.sh: the fall-back server down or slow. Each node runs in a 120 MiB child
# memory cgroup, too small for the 158 MiB model "mid", so mid goes to --fallback-url, while
# "tiny" fits and is served here. The fall-back is a closed port, a server that accepts and never
# answers, one that lists the model and never answers a completion (with and without
# --fallback-timeout), and one that answers slowly (tests/e2e/fault_server.mjs). Each failure
# is an error with a sentence naming the fall-back, within the bounds docs/fallback.md gives
# (connect timeout 5 s plus at most 30 s to open it, --fallback-timeout for a request), and
# tiny is served throughout, also while a request to the fall-back hangs.
# usage: test_fault_fallback.sh HEADROOMD MID_MODEL TINY_MODEL SCRATCH_DIR
set -u
headroomd=$1 model=$2 tiny=$3 scratch=$4
rm -rf "$scratch"; mkdir -p "$scratch"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

command -v node >/dev/null || { echo "skipped: node is not installed (the fall-back servers are Node)"; exit 77; }
limited_cgroup headroom-fault-fallback 120
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"   # as test_fallback.sh

# fault_server MODE: starts tests/e2e/fault_server.mjs; sets `fault_url`
fault_server() {
    rm -f "$scratch/$1.port"
    node "$e2e_dir/fault_server.mjs" "$1" "$scratch/$1.port" &
    helper_pids+=($!)
    for _ in $(seq 1 100); do [[ -s $scratch/$1.port ]] && break; sleep 0.05; done
    fault_url=http://127.0.0.1:$(cat "$scratch/$1.port")
}
# node_in_cgroup NAME ARGS...: headroomd with mid and tiny inside the limited cgroup
node_in_cgroup() {
    local name=$1; shift
    start_server "$name" --model "$model" --model "$tiny" --port 0 --ctx 256 --threads 1 "$@"
    [[ -n $url ]] && echo "$pid" >"$cgroup/cgroup.procs"
}
mid='{"model":"mid","prompt":"Once upon a time","max_tokens":5,"temperature":0}'
tiny_request='{"model":"tiny","prompt":"Once upon a time","max_tokens":4,"temperature":0}'
tiny_served() {   # tiny_served URL LABEL
    http POST "$1/v1/completions" "$tiny_request"
    status 200 && expect 'json.choices[0].text.length > 0'; check "$2: tiny is served here meanwhile" $?
}
# refused LABEL WORDS: the last reply is a 5xx whose message names the fall-back and WORDS
refused() {
    [[ $(cat "$scratch/status") =~ ^5 ]] && expect "json.error.message.includes('could not serve it either') && json.error.message.includes('$2')"
    verdict=$?; check "$1: mid gets HTTP $(cat "$scratch/status") with a sentence naming the fall-back" $verdict
    expect 'true' && node -e 'console.log("  said: " + JSON.parse(require("fs").readFileSync(process.argv[1])).error.message.slice(0, 400))' "$scratch/body"
}

# 1. Down: nothing listens at the fall-back's port.
closed=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
node_in_cgroup down --fallback-url "http://127.0.0.1:$closed"
down_url=$url down_pid=$pid
[[ -n $down_url ]]; check "down: headroomd starts with a fall-back nobody answers at" $?
http POST "$down_url/v1/completions" "$mid"
refused down "unreachable"
tiny_served "$down_url" down
stop_server "$down_pid" down; check "down: headroomd stops cleanly" $?

# 2. Silent: the fall-back accepts and never answers; opening it gives up within 5 + 30 s.
fault_server silent
node_in_cgroup silent --fallback-url "$fault_url"
silent_url=$url silent_pid=$pid
curl -s -o "$scratch/silent.body" -w '%{http_code}' --max-time 60 -H 'Content-Type: application/json' \
    --data-binary "$mid" "$silent_url/v1/completions" >"$scratch/silent.status" &
waiting=$!
sleep 1
tiny_served "$silent_url" "silent (mid waiting on the fall-back)"
wait "$waiting"
cp "$scratch/silent.status" "$scratch/status"; cp "$scratch/silent.body" "$scratch/body"
refused silent "accepted the connection but did not answer in time"
tiny_served "$silent_url" silent
stop_server "$silent_pid" silent; check "silent: headroomd stops cleanly" $?

# 3. Stalls: the model is listed, a completion never answered. With --fallback-timeout 3s the
# request fails with the timeout's sentence; without one, the client's hang-up ends it.
fault_server stalls
node_in_cgroup stalls --fallback-url "$fault_url" --fallback-timeout 3s
stalls_url=$url stalls_pid=$pid
http POST "$stalls_url/v1/completions" "$mid"
[[ $(cat "$scratch/status") =~ ^5 ]] && expect 'json.error.message.includes("did not finish within the request timeout of 3 s")'
verdict=$?; check "stalls, --fallback-timeout 3s: mid gets HTTP $(cat "$scratch/status") saying the fall-back timed out" $verdict
expect 'true' && node -e 'console.log("  said: " + JSON.parse(require("fs").readFileSync(process.argv[1])).error.message.slice(0, 300))' "$scratch/body"
tiny_served "$stalls_url" "stalls, --fallback-timeout 3s"
stop_server "$stalls_pid" stalls; check "stalls, --fallback-timeout 3s: headroomd stops cleanly" $?

node_in_cgroup hangs --fallback-url "$fault_url"
hangs_url=$url hangs_pid=$pid
http POST "$hangs_url/v1/completions" "$mid" --max-time 3
status 000; check "stalls, no timeout: the fall-back's silence holds the request (the client gives up after 3 s)" $?
wait_idle "$hangs_url" 10; check "... and the client's hang-up cancels it: nothing runs" $?
tiny_served "$hangs_url" "stalls, no timeout"
stop_server "$hangs_pid" hangs; check "stalls, no timeout: headroomd stops cleanly" $?

# 4. Slow: five words 300 ms apart; the answer is whole, and tiny is served while it streams.
fault_server slow
node_in_cgroup slow --fallback-url "$fault_url"
slow_url=$url slow_pid=$pid
curl -s -N --max-time 60 -H 'Content-Type: application/json' \
    --data-binary '{"model":"mid","prompt":"Once upon a time","max_tokens":5,"stream":true}' \
    "$slow_url/v1/completions" >"$scratch/slow.stream" &
streaming=$!
for _ in $(seq 1 100); do grep -q '"text"' "$scratch/slow.stream" && break; sleep 0.05; done
tiny_served "$slow_url" "slow (mid streaming from the fall-back)"
wait "$streaming"
node -e 'const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(l => l.startsWith("data: {"));
    const text = lines.map(l => JSON.parse(l.slice(6)).choices?.[0]?.text ?? "").join("");
    if (text !== "Once upon a slow time") { console.error("  streamed: " + JSON.stringify(text)); process.exit(1); }' "$scratch/slow.stream" \
    && grep -q 'data: \[DONE\]' "$scratch/slow.stream"
check "slow: mid streams the fall-back's whole answer, 'Once upon a slow time'" $?
http POST "$slow_url/v1/completions" "$mid"
status 200 && expect 'json.choices[0].text === "Once upon a slow time"'; check "slow: ... and whole, not streamed" $?
stop_server "$slow_pid" slow; check "slow: headroomd stops cleanly" $?
finish
