#!/usr/bin/env bash
# test_reliability.sh: headroomd bugs a review found, each checked the way a client or an
# operator meets it: a stream that ends in an error is counted as failed, not completed; a
# --host that only starts with "127." is not loopback; Prometheus label values are escaped; a
# cancel that is not about memory is not answered "insufficient_memory"; an empty Ollama request
# with keep_alive 0 unloads without loading first; /api/events delivers what follows its first
# event; connections are bounded by --max-connections.
# usage: test_reliability.sh HEADROOMD TINY_MODEL SCRATCH_DIR
# Needs curl and node (JSON checks); exits 77 (skipped) without them.
set -u
headroomd=$1 model=$2 scratch=$3
rm -rf "$scratch"; mkdir -p "$scratch"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
for tool in curl node; do
    command -v $tool >/dev/null || { echo "skipped: $tool is not installed"; exit 77; }
done

# A model whose name needs escaping in Prometheus' text format: a quote and a backslash.
odd='we"ird\name'
cp "$model" "$scratch/$odd.gguf"

start_server main --model "$model" --model "$scratch/$odd.gguf" --port 0 --threads 1 --ctx 256 --keep-alive 10m
check "headroomd starts with two models, one with a quote and a backslash in its name" $?
[[ -n $url ]] || { cat "$scratch/main.err"; finish; exit 1; }
A=$url A_pid=$pid

# ---- a stream that ends in an error is a failed generation ----
{ printf '{"model":"tiny","stream":true,"prompt":"'; for _ in $(seq 1 200); do printf 'word word word word word '; done; printf '"}'; } >"$scratch/long.json"
http POST "$A/v1/completions" "@$scratch/long.json"
status 200 && expect 'sse.at(-1) === "[DONE]" && /context window/.test(sse.at(-2).error.message)'
check "a streamed prompt longer than the context: an error event, then [DONE]" $?
http GET "$A/metrics"
expect 'metric(`headroom_generations_total{outcome="failed"}`) === 1 && metric(`headroom_generations_total{outcome="completed"}`) === 0'
check "/metrics counts that stream as failed, not completed" $?

# ---- Prometheus label values escaped ----
http GET "$A/metrics"
grep -qF 'headroom_model_loaded{model="we\"ird\\name"} 0' "$scratch/body"
check 'a model named we"ird\name: its label value escaped (we\"ird\\name)' $?
! grep -q 'model="we"ird' "$scratch/body"; check "... and never written raw" $?

# ---- Ollama: an empty request with keep_alive 0 unloads, and never loads ----
http POST "$A/api/unload" '{"model":"tiny"}'
status 200 && { http GET "$A/api/ps"; expect 'json.models.length === 0'; }
check "POST /api/unload: tiny is unloaded (loaded by the stream above)" $?
loads_before=$(grep -c "\] loaded .*tiny" "$scratch/main.err")
http POST "$A/api/generate" '{"model":"tiny","prompt":"","keep_alive":0}'
status 200 && expect 'json.done === true && json.done_reason === "unload"'
check 'an empty prompt with keep_alive 0 on an unloaded model: done_reason "unload"' $?
loads_after=$(grep -c "\] loaded .*tiny" "$scratch/main.err")
[[ $loads_after -eq $loads_before ]]; check "... and the model was not loaded for it (loads: $loads_before -> $loads_after)" $?
http GET "$A/api/ps"
expect 'json.models.length === 0'; check "... nothing loaded afterwards" $?
http POST "$A/api/generate" '{"model":"tiny","prompt":""}'
http POST "$A/api/chat" '{"model":"tiny","messages":[],"keep_alive":0}'
status 200 && expect 'json.done_reason === "unload"' && { http GET "$A/api/ps"; expect 'json.models.length === 0'; }
check 'the same on /api/chat with no messages: a loaded model is unloaded' $?

# ---- /api/events: every event after the first one arrives ----
curl -sN --max-time 20 "$A/api/events" -o "$scratch/events.sse" &
helper_pids+=($!); events_pid=$!
for _ in $(seq 1 200); do grep -q "^event: pressure" "$scratch/events.sse" 2>/dev/null && break; sleep 0.02; done
http POST "$A/api/load" '{"model":"tiny"}'
status 200; check "POST /api/load after the events stream's first event" $?
for _ in $(seq 1 100); do grep -q '"action":"loaded"' "$scratch/events.sse" && break; sleep 0.05; done
grep -q '"action":"loaded"' "$scratch/events.sse"; check "the events stream delivers its \"loaded\" event" $?
http POST "$A/api/unload" '{"model":"tiny"}'
status 200 && expect 'json.status === "unloaded"'; check "POST /api/unload: unloaded" $?
kill "$events_pid" 2>/dev/null; wait "$events_pid" 2>/dev/null

# ---- a cancel that is not about memory: no "insufficient_memory", no Retry-After ----
# A long whole reply is in flight when the server is told to stop: its generation is cancelled
# by the shutdown, which is not the client's memory problem.
stop_server "$A_pid" main; check "the server stops cleanly" $?
start_server long --model "$model" --port 0 --threads 1 --ctx 8192
B=$url B_pid=$pid
curl -s --max-time 60 -D "$scratch/cancel.headers" -o "$scratch/cancel.json" -w '%{http_code}' "$B/v1/completions" \
    -H 'Content-Type: application/json' \
    -d '{"model":"tiny","prompt":"Tell me everything","max_tokens":8000,"temperature":0}' >"$scratch/cancel.status" &
client=$!
for _ in $(seq 1 200); do [[ $(active_tokens "$B") =~ ^[0-9]+$ ]] && break; sleep 0.05; done
stop_server "$B_pid" long; check "the server stops cleanly with a generation in flight" $?
wait "$client"
code=$(cat "$scratch/cancel.status")
if [[ $code == 503 ]]; then
    ! grep -qi '^Retry-After' "$scratch/cancel.headers" && ! grep -q insufficient_memory "$scratch/cancel.json" &&
        grep -q '"code":"cancelled"' "$scratch/cancel.json"
    verdict=$?; check "the generation cut by shutdown: 503 \"cancelled\", not insufficient_memory, no Retry-After: $(head -c 200 "$scratch/cancel.json")" $verdict
else
    echo "  (the reply to the generation cut by shutdown did not arrive: HTTP $code; not checked)"
fi

# ---- connections are bounded (each is a thread) ----
start_server limited --model "$model" --port 0 --threads 1 --max-connections 2
L=$url L_port=${url##*:} L_pid=$pid
exec 5<>"/dev/tcp/127.0.0.1/$L_port" 6<>"/dev/tcp/127.0.0.1/$L_port"   # two idle connections
sleep 0.3
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$L/health")
[[ $code != 200 ]]; check "--max-connections 2: a third connection is not served while two are open (got $code)" $?
exec 5>&- 6>&-
code=000
for _ in $(seq 1 40); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$L/health"); [[ $code == 200 ]] && break; sleep 0.1
done
[[ $code == 200 ]]; check "... and is once they close" $?
stop_server "$L_pid" limited; check "the limited server stops cleanly" $?

# ---- --host: a name that starts with "127." is not loopback ----
"$headroomd" --model "$model" --host 127.0.0.1.example.com --port 0 >"$scratch/host.out" 2>"$scratch/host.err"
rc=$?
[[ $rc -eq 2 ]] && grep -q -- "--api-key" "$scratch/host.err"
verdict=$?; check "--host 127.0.0.1.example.com without a key: exit 2, set --api-key (got $rc: $(head -c 160 "$scratch/host.err"))" $verdict
start_server loop --model "$model" --host 127.0.0.2 --port 0 --threads 1
check "--host 127.0.0.2 (an address in 127.0.0.0/8) needs no key" $?
[[ -n $url ]] && stop_server "$pid" loop
finish
