#!/usr/bin/env bash
# test_fallback.sh: the load path's fall-back, end to end. Node B serves the 158 MiB model
# normally. Node A runs in a child memory cgroup of 120 MiB, too small for that model, with
# --fallback-url pointing at B: A's preflight refuses to load it, and A serves the request
# through B instead, saying so (its log, /api/memory's served_by, the generation's record).
# Node C, in the same cgroup without a fall-back, answers 503 with Retry-After and the reason.
# Exits 77 (skipped) with the reason where root or a child memory cgroup is not available.
# usage: test_fallback.sh HEADROOMD MID_MODEL SCRATCH_DIR
set -u
headroomd=$1 model=$2 scratch=$3
rm -rf "$scratch"; mkdir -p "$scratch"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

limited_cgroup headroom-fallback 120

start_server b --model "$model" --port 0 --ctx 256 --threads 1
b_url=$url b_pid=$pid
[[ -n $b_url ]]; check "node B listens ($b_url)" $?

# A and C start inside the limited cgroup (a subshell moves itself there, then execs headroomd).
# In a sanitizer build the quarantine of freed memory (256 MiB by default) would fill the 120 MiB
# cgroup with what the load path's estimates freed; a small one keeps the nodes' memory theirs.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"
start_in_cgroup() {   # start_in_cgroup NAME ARGS...
    local name=$1; shift
    (echo "$BASHPID" >"$cgroup/cgroup.procs" && exec "$headroomd" "$@") >"$scratch/$name.out" 2>"$scratch/$name.err" &
    pid=$!
    server_pids+=("$pid")
    url=""
    for _ in $(seq 1 300); do
        local port
        port=$(sed -n 's|^headroomd: listening on http://.*:\([0-9][0-9]*\) (.*|\1|p' "$scratch/$name.out")
        [[ -n $port ]] && { url=http://127.0.0.1:$port; break; }
        sleep 0.05
    done
}
start_in_cgroup a --model "$model" --port 0 --ctx 256 --threads 1 --fallback-url "$b_url"
a_url=$url a_pid=$pid
start_in_cgroup c --model "$model" --port 0 --ctx 256 --threads 1
c_url=$url c_pid=$pid
[[ -n $a_url && -n $c_url ]]; check "nodes A and C listen inside the 120 MiB cgroup" $?
grep -q "^$a_pid$" "$cgroup/cgroup.procs"; check "node A runs in the cgroup" $?

request='{"model":"mid","prompt":"Once upon a time","max_tokens":12,"temperature":0,"seed":7}'
http POST "$b_url/v1/completions" "$request"
status 200; check "B answers directly" $?
direct=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).choices[0].text)' "$scratch/body")

http POST "$a_url/v1/completions" "$request"
status 200; verdict=$?; check "A answers although the model does not fit it (HTTP $(cat "$scratch/status"))" $verdict
through=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).choices[0].text)' "$scratch/body" 2>/dev/null)
[[ -n $direct && $through == "$direct" ]]; check "A's answer is B's, token for token (greedy): '$through'" $?
grep -q "served by the fall-back $b_url" "$scratch/a.err"; check "A's log says the fall-back served it, and why" $?
grep "served by the fall-back" "$scratch/a.err" | head -1 | sed 's/^/  /'
grep -q "does not fit here" "$scratch/a.err"; check "... because its preflight refused the load" $?
http GET "$a_url/api/memory"
expect 'json.models[0].served_by === "fallback" && json.models[0].state !== "unloaded"'; check "A's /api/memory: mid is served by the fall-back" $?
http GET "$a_url/api/generations"
expect 'json.length === 1 && json[0].served_by === "fallback" && json[0].generated_tokens > 0'; check "A's generation record: served_by fallback" $?
http GET "$b_url/api/generations"
expect 'json.length === 2'; check "B served both generations" $?
http POST "$a_url/v1/completions" '{"model":"mid","prompt":"Hello","max_tokens":8,"stream":true}'
status 200 && grep -q 'data: \[DONE\]' "$scratch/body"; check "A streams through the fall-back too" $?

# embeddings through the fall-back: B's vector, as B gives it directly
embed='{"model":"mid","input":"the sea is blue","encoding_format":"float"}'
http POST "$b_url/v1/embeddings" "$embed"
status 200; check "B embeds directly" $?
cp "$scratch/body" "$scratch/embed-b.json"
http POST "$a_url/v1/embeddings" "$embed"
status 200 && expect 'const v = json.data[0].embedding, w = load("embed-b.json").data[0].embedding;
    return v.length === w.length && v.every((x, i) => Math.abs(x - w[i]) < 1e-5) && json.usage.prompt_tokens > 0'
check "A embeds through the fall-back: B's vector, float for float" $?
http POST "$a_url/api/embed" '{"model":"mid","input":["the sea is blue","hello"]}'
status 200 && expect 'json.embeddings.length === 2 && json.embeddings[0].length > 0 &&
    Math.abs(Math.hypot(...json.embeddings[1]) - 1) < 1e-4'
check "A's Ollama /api/embed through the fall-back: unit vectors" $?

http POST "$c_url/v1/completions" "$request"
status 503 && header 'Retry-After: ' && expect 'json.error.message.includes("does not fit here")'
check "C (no fall-back) answers 503 with Retry-After and why" $?
expect 'true' && node -e 'console.log("  C said: " + JSON.parse(require("fs").readFileSync(process.argv[1])).error.message.slice(0, 300))' "$scratch/body"

stop_server "$a_pid" a; check "A stops cleanly" $?
stop_server "$c_pid" c; check "C stops cleanly" $?
stop_server "$b_pid" b; check "B stops cleanly" $?
finish
