#!/usr/bin/env bash
# test_batching.sh: headroomd serving several clients at once with curl: four concurrent
# streamed completions on one model give the text each gives alone (greedy), while a client
# that stops reading pauses only its own stream (--reader-timeout 0: stalled readers keep their
# slots however slow a sanitizer build is; --guard off: under a sanitizer its page faults look
# like a thrash to this branch's guard); beyond the slots and --max-queue a request
# gets 503 with Retry-After and a sentence; /api/memory shows the slots and the queue.
# usage: test_batching.sh HEADROOMD TINY_MODEL SCRATCH_DIR
# Needs curl, node (tests/e2e/expect.mjs) and perl (the slow reader); exits 77 without them.
# shellcheck disable=SC2016  # the JavaScript conditions in single quotes are meant literally
set -u
headroomd=$1 model=$2 scratch=$3
rm -rf "$scratch"; mkdir -p "$scratch"
export HEADROOM_CACHE_DIR=$scratch/cache   # no snapshot of another run restored into a slot
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
for tool in curl node perl; do
    command -v $tool >/dev/null || { echo "skipped: $tool is not installed"; exit 77; }
done

start_server main --model "$model" --port 0 --threads 1 --ctx 4096 --parallel 4 --max-queue 1 --keep-alive 10m --reader-timeout 0 --guard off
check "headroomd starts with --parallel 4 --max-queue 1" $?
[[ -n $url ]] || { cat "$scratch/main.err"; finish; exit 1; }
A=$url main_pid=$pid

prompts=("Once upon a time" "The river ran" "In the quiet morning, a bird" "Stone and light")
tokens=(48 32 40 24)

# each alone first: a whole (not streamed) reply
for i in 0 1 2 3; do
    http POST "$A/v1/completions" "{\"model\":\"tiny\",\"prompt\":\"${prompts[$i]}\",\"max_tokens\":${tokens[$i]},\"temperature\":0}"
    cp "$scratch/body" "$scratch/alone$i.json"
done
status 200; check "each prompt alone: 200" $?

http GET "$A/api/memory"
expect 'const m = json.models[0]; return m.slots === 4 && m.slots_reason === "" && m.running === 0 &&
    m.queued === 0 && m.max_queued === 1'
check "/api/memory: slots 4 (no reason to have fewer), nothing running or queued, max_queued 1" $?

# four streams at once
pids=()
for i in 0 1 2 3; do
    curl -sN --max-time 60 -H 'Content-Type: application/json' -o "$scratch/stream$i" "$A/v1/completions" \
        --data-binary "{\"model\":\"tiny\",\"prompt\":\"${prompts[$i]}\",\"max_tokens\":${tokens[$i]},\"temperature\":0,\"stream\":true}" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for i in 0 1 2 3; do
    node "$e2e_dir/expect.mjs" "$scratch/stream$i" "
        const streamed = sse.filter((e) => e !== '[DONE]').map((e) => e.choices[0].text).join('');
        return sse[sse.length - 1] === '[DONE]' && streamed === load('alone$i.json').choices[0].text"
    check "stream $i of 4 at once: the same text as alone, then [DONE]" $?
done

# a stream whose client stops reading pauses alone: another stream runs to its end meanwhile
port=${A##*:}
rm -f "$scratch/resume"
perl "$e2e_dir/slow_reader.pl" "$port" '{"model":"tiny","prompt":"Tell me","max_tokens":3000,"temperature":0,"stream":true,"logit_bias":{"2":-100}}' \
    "$scratch/resume" >"$scratch/slow.out" 2>&1 &
slow=$!
helper_pids+=("$slow")
eventually 10 grep -q paused "$scratch/slow.out"; check "a client stops reading after its first bytes" $?
http POST "$A/v1/completions" '{"model":"tiny","prompt":"Once upon a time","max_tokens":48,"temperature":0}' --max-time 20
status 200 && expect 'json.choices[0].text === load("alone0.json").choices[0].text'
check "meanwhile another request is served in full, with its text alone" $?
# Once its queue and the socket buffers (some 600 tokens) are full, its count stops: two samples
# 1 s apart at most 8 tokens apart (the kernel lets a sliver through now and then), within 20 s.
samples=() paused=1
for _ in $(seq 1 80); do
    sleep 0.25; samples+=("$(active_tokens "$A")")
    (( ${#samples[@]} >= 5 )) || continue
    first=${samples[-5]} second=${samples[-1]}
    [[ $first =~ ^[0-9]+$ && $second =~ ^[0-9]+$ ]] || break
    if (( second < 3000 && second - first <= 8 )); then paused=0; break; fi
done
check "the stalled stream's generation pauses: ${first:-?} tokens, ${second:-?} 1 s later (max_tokens 3000)" $paused

# the slots are not all busy: fill them, then the queue, then one more is refused
# no end-of-text token (2 in the tiny model's vocabulary): each holds its slot until read
long='{"model":"tiny","prompt":"Go on","max_tokens":3000,"temperature":0,"stream":true,"logit_bias":{"2":-100}}'
for i in 1 2 3 4; do   # three more slots, then one waiting (--max-queue 1)
    perl "$e2e_dir/slow_reader.pl" "$port" "$long" "$scratch/resume" >"$scratch/hold$i.out" 2>&1 &
    helper_pids+=($!)
done
full() { http GET "$A/api/memory"; expect 'json.models[0].running === 4 && json.models[0].queued === 1'; }
eventually 30 full; check "/api/memory: 4 running, 1 queued" $?
http GET "$A/metrics"
status 200 && grep -qx 'headroom_model_sessions_running{model="tiny"} 4' "$scratch/body" &&
    grep -qx 'headroom_model_sessions_queued{model="tiny"} 1' "$scratch/body" &&
    grep -qx 'headroom_model_slots{model="tiny"} 4' "$scratch/body" &&
    grep -qx 'headroom_model_sessions_max_queued{model="tiny"} 1' "$scratch/body" &&
    grep -q '^# TYPE headroom_model_sessions_queued gauge$' "$scratch/body"
check "/metrics: headroom_model_sessions_running 4, _queued 1, headroom_model_slots 4, _max_queued 1" $?
http GET "$A/api/active"
expect 'json.length === 5 && json.filter((a) => a.queued === true).length === 1 &&
    json.filter((a) => a.queued === false).length === 4 &&
    json.every((a) => a.queued === false || (a.state === "waiting" && a.generated_tokens === 0))'
check "/api/active: the five generations, one of them queued for a slot" $?
http POST "$A/v1/completions" '{"model":"tiny","prompt":"One more","max_tokens":4}'
status 503 && header 'Retry-After: [1-9]' && expect 'json.error.message.includes("at its limit") &&
    json.error.message.includes("retry in about")'
check "beyond the slots and --max-queue: 503, Retry-After and a sentence" $?
http POST "$A/api/generate" '{"model":"tiny","prompt":"One more","stream":false}'
status 503 && header 'Retry-After: [1-9]'; check "Ollama's /api/generate too: 503 with Retry-After" $?

touch "$scratch/resume"   # every slow reader reads to its end now
eventually 60 grep -q "DONE\]: yes" "$scratch/slow.out"; check "the paused stream resumes and ends with [DONE]" $?
wait_idle "$A" 60; check "then everything ends" $?
http GET "$A/metrics"
grep -qx 'headroom_model_sessions_running{model="tiny"} 0' "$scratch/body" &&
    grep -qx 'headroom_model_sessions_queued{model="tiny"} 0' "$scratch/body"
check "/metrics: nothing running or queued after" $?

stop_server "$main_pid" main; check "headroomd stops cleanly on SIGTERM" $?
finish
