#!/usr/bin/env bash
# test_fallback_pressure.sh: under critical memory pressure a node with --fallback-url sends a
# generation to its fall-back instead of refusing it. Node B serves normally; node A runs in a
# child memory cgroup of 256 MiB with --fallback-url B, and a hog fills that cgroup until A's
# pressure is critical. A generation sent to A is answered (by B, A's log says why); node C, in
# the same cgroup without a fall-back, answers 503 with Retry-After as before. Exits 77 (skipped)
# with the reason where root, node or a child memory cgroup is not available.
# usage: test_fallback_pressure.sh HEADROOMD TINY_MODEL SCRATCH_DIR
set -u
headroomd=$1 model=$2 scratch=$3
rm -rf "$scratch"; mkdir -p "$scratch"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

command -v node >/dev/null || { echo "skipped: node is not installed (the hog is a Node one-liner)"; exit 77; }
limited_cgroup headroom-fallback-pressure 256

start_server b --model "$model" --port 0 --threads 1 --ctx 256
b_url=$url b_pid=$pid
[[ -n $b_url ]]; check "node B listens ($b_url)" $?
start_server a --model "$model" --port 0 --threads 1 --ctx 256 --fallback-url "$b_url"
a_url=$url a_pid=$pid
start_server c --model "$model" --port 0 --threads 1 --ctx 256
c_url=$url c_pid=$pid
[[ -n $a_url && -n $c_url ]]; check "nodes A (with a fall-back) and C (without) listen" $?
# A and C go into the limited cgroup; their monitors then see its limit as what binds them
echo "$a_pid" >"$cgroup/cgroup.procs" && echo "$c_pid" >"$cgroup/cgroup.procs"
check "nodes A and C run in the 256 MiB cgroup" $?

# The hog joins the cgroup and takes memory 4 MiB at a time until 97% of the limit is in use, and
# holds it; it is the OOM killer's first choice, should it act.
sh -c "echo \$\$ >'$cgroup/cgroup.procs'; echo 1000 >/proc/self/oom_score_adj; exec node -e '
    const fs = require(\"fs\"), cg = process.argv[1], held = [];
    const read = f => Number(fs.readFileSync(cg + \"/\" + f, \"utf8\"));
    const limit = read(\"memory.limit_in_bytes\");
    while (read(\"memory.usage_in_bytes\") < 0.97 * limit) held.push(Buffer.alloc(4 << 20, 1));
    setInterval(() => {}, 1000);' '$cgroup'" &
helper_pids+=($!)
ready() { curl -s -o /dev/null -w '%{http_code}' "$1/ready"; }
for _ in $(seq 1 100); do [[ $(ready "$a_url") == 503 && $(ready "$c_url") == 503 ]] && break; sleep 0.1; done
[[ $(ready "$a_url") == 503 && $(ready "$c_url") == 503 ]]; check "A and C under critical pressure: /ready 503" $?

request='{"model":"tiny","prompt":"Once upon a time","max_tokens":6,"temperature":0}'
http POST "$a_url/v1/completions" "$request"
status 200 && expect 'json.choices[0].text.length > 0'
verdict=$?; check "A answers a generation under critical pressure through its fall-back (HTTP $(cat "$scratch/status"))" $verdict
grep -q "served by the fall-back $b_url" "$scratch/a.err"; check "A's log says the fall-back served it, and why" $?
grep "served by the fall-back" "$scratch/a.err" | head -1 | cut -c1-300 | sed 's/^/  /'
http POST "$a_url/api/generate" '{"model":"tiny","prompt":"Hello","options":{"num_predict":4},"stream":false}'
status 200; check "... on the Ollama API too" $?

http POST "$c_url/v1/completions" "$request"
status 503 && header 'Retry-After: ' && expect 'json.error.message.includes("critical")'
check "C (no fall-back) refuses under critical pressure: 503, Retry-After, why" $?

stop_server "$a_pid" a; check "A stops cleanly" $?
stop_server "$c_pid" c; check "C stops cleanly" $?
stop_server "$b_pid" b; check "B stops cleanly" $?
finish
