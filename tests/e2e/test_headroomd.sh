#!/usr/bin/env bash
# test_headroomd.sh: headroomd as HTTP clients meet it, with curl and raw sockets: the OpenAI
# and Ollama APIs (whole and streamed), operations endpoints, bad input, the API key,
# configuration, a client that hangs up and a client that stops reading.
# usage: test_headroomd.sh HEADROOMD TINY_MODEL SCRATCH_DIR
# Needs curl, node (JSON checks, tests/e2e/expect.mjs) and perl (the slow reader); exits 77
# (skipped) without them.
# shellcheck disable=SC2016  # the JavaScript conditions in single quotes are meant literally
set -u
headroomd=$1 model=$2 scratch=$3
rm -rf "$scratch"; mkdir -p "$scratch"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
for tool in curl node perl; do
    command -v $tool >/dev/null || { echo "skipped: $tool is not installed"; exit 77; }
done

model_bytes=$(stat -c %s "$model")

# Every server decodes on one thread: on a machine whose cores are busy (ctest -j, another
# server) llama.cpp's threads wait on each other and a default of one thread per CPU can run the
# tiny model hundreds of times slower; one thread keeps it at thousands of tokens a second.

# ==== the main server: a context big enough for long generations, a small body limit ========
start_server main --model "$model" --port 0 --threads 1 --ctx 8192 --max-body 65536 --keep-alive 10m
check "headroomd starts on a free port and prints its address first" $?
[[ -n $url ]] || { cat "$scratch/main.err"; finish; exit 1; }
A=$url A_pid=$pid
grep -q "(1 model)" "$scratch/main.out"; check "the first line counts the models: (1 model)" $?

# ---- operations and catalogues, before any generation ----
http GET "$A/health"
status 200 && expect 'json.status === "ok"'; check 'GET /health: 200 {"status":"ok"}' $?

http GET "$A/"
status 200 && header 'Content-Type: text/html' && grep -qi '<html' "$scratch/body"; check "GET / serves the dashboard page" $?

http GET "$A/v1/models"
status 200 && expect 'json.object === "list" && json.data.length === 1 && json.data[0].id === "tiny" &&
    json.data[0].object === "model" && Number.isInteger(json.data[0].created) && typeof json.data[0].owned_by === "string"'
check "GET /v1/models lists 'tiny' in OpenAI's shape" $?

http GET "$A/v1/models/tiny"
status 200 && expect 'json.id === "tiny" && json.object === "model" && Number.isInteger(json.created) && json.owned_by === "headroom"'
check "GET /v1/models/tiny: the one model" $?

http GET "$A/api/tags"
status 200 && expect "json.models.length === 1 && json.models[0].name === 'tiny' && json.models[0].model === 'tiny' &&
    json.models[0].size === $model_bytes && rfc3339(json.models[0].modified_at) && json.models[0].details.format === 'gguf'"
check "GET /api/tags lists 'tiny' with its file size" $?

http GET "$A/api/ps"
status 200 && expect 'Array.isArray(json.models) && json.models.length === 0'; check "GET /api/ps before any request: nothing loaded" $?

http GET "$A/ready"
status 200 && header 'Content-Type: application/json' &&
    expect 'json.ready === true && ["normal", "warn"].includes(json.pressure) && typeof json.reason === "string"'
check "GET /ready: 200, JSON with ready, pressure and reason" $?

http GET "$A/api/memory"
status 200 && expect 'return ["host_total_bytes", "host_available_bytes", "swap_total_bytes", "swap_used_bytes",
        "effective_total_bytes", "effective_available_bytes", "process_rss_bytes", "process_peak_rss_bytes",
        "process_file_rss_bytes", "process_major_faults"].every((k) => Number.isFinite(json[k]) && json[k] >= 0) &&
    json.host_total_bytes > 0 && json.effective_available_bytes > 0 &&
    json.effective_available_bytes <= json.effective_total_bytes && json.process_rss_bytes > 0 &&
    json.process_peak_rss_bytes >= json.process_rss_bytes && typeof json.binding_scope === "string" &&
    typeof json.gpu_telemetry === "boolean" && Array.isArray(json.gpus) && Array.isArray(json.models) &&
    ["normal", "warn", "critical"].includes(json.pressure.level)'
check "GET /api/memory: the watermark (host, binding scope, RSS and peak) and the pressure" $?

http GET "$A/api/version"
status 200 && expect '/^\d+\.\d+\.\d+/.test(json.version)'; check "GET /api/version" $?

http GET "$A/api/generations"
status 200 && expect 'Array.isArray(json) && json.length === 0'; check "GET /api/generations before any: []" $?

curl -sN --max-time 1 "$A/api/events" -o "$scratch/body"
expect 'lines[0] === "event: pressure" && typeof sse[0].level === "string" && typeof sse[0].reason === "string"'
check "GET /api/events: the first event is the pressure level now" $?

# ---- OpenAI: whole replies ----
http POST "$A/v1/completions" '{"model":"tiny","prompt":"Once upon a time","max_tokens":8,"temperature":0}'
cp "$scratch/body" "$scratch/completion.json"
status 200 && header 'Content-Type: application/json' && expect 'const c = json.choices[0];
    return json.object === "text_completion" && /^cmpl-/.test(json.id) && json.model === "tiny" &&
        Number.isInteger(json.created) && json.choices.length === 1 && c.index === 0 &&
        typeof c.text === "string" && c.text.length > 0 && c.logprobs === null &&
        ["stop", "length"].includes(c.finish_reason) && usageOk(json.usage, c.finish_reason, 8)'
check "POST /v1/completions: text, finish_reason, usage adds up (completion = max_tokens at length)" $?

http POST "$A/v1/completions" '{"model":"tiny","prompt":"Once upon a time","temperature":0}'
status 200 && expect 'usageOk(json.usage, json.choices[0].finish_reason, 16)'
check "POST /v1/completions: max_tokens defaults to 16, as OpenAI's" $?

http POST "$A/v1/embeddings" '{"model":"tiny","input":"hello world","encoding_format":"float"}'
status 200 && expect 'const v = json.data[0].embedding, n = Math.hypot(...v);
    return json.object === "list" && json.data.length === 1 && v.length === 64 && Math.abs(n - 1) < 1e-4 &&
        json.usage.prompt_tokens > 0 && json.usage.total_tokens === json.usage.prompt_tokens'
check "POST /v1/embeddings (curl): one unit vector of the model's width, usage" $?
# an input longer than the model's context: Ollama's /api/embed cuts it (truncate defaults to
# true, as Ollama's), or refuses it with truncate false; OpenAI's refuses it, as OpenAI does
long_input=$(printf ' the%.0s' $(seq 1 6000))
http POST "$A/api/embed" "{\"model\":\"tiny\",\"input\":\"$long_input\"}"
status 200 && expect 'const v = json.embeddings[0]; return json.embeddings.length === 1 && v.length === 64 &&
    Math.abs(Math.hypot(...v) - 1) < 1e-4 && json.prompt_eval_count > 0 && json.prompt_eval_count < 6000'
check "POST /api/embed: an input beyond the context is truncated by default" $?
http POST "$A/api/embed" "{\"model\":\"tiny\",\"input\":\"$long_input\",\"truncate\":false}"
status 400 && expect '/embeddings take at most \d+/.test(json.error) && /6000 tokens|600\d tokens/.test(json.error)'
check "POST /api/embed: truncate false refuses the long input with the counts" $?
http POST "$A/v1/embeddings" "{\"model\":\"tiny\",\"input\":\"$long_input\"}"
status 400 && expect '/embeddings take at most/.test(json.error.message)'
check "POST /v1/embeddings: a long input is refused with the counts" $?
http GET "$A/api/memory"
status 200 && expect 'json.models[0].rss_bytes > 0'; check "GET /api/memory: the model's rss_bytes counts the load and the embedding context" $?

http POST "$A/v1/completions" '{"model":"tiny","prompt":"Roses are","max_tokens":12,"temperature":1,"seed":42}'
cp "$scratch/body" "$scratch/seeded.json"
http POST "$A/v1/completions" '{"model":"tiny","prompt":"Roses are","max_tokens":12,"temperature":1,"seed":42}'
status 200 && expect 'json.choices[0].text === load("seeded.json").choices[0].text'
check "the same seed and temperature 1 give the same text twice" $?

chat='"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hello"}]'
http POST "$A/v1/chat/completions" "{\"model\":\"tiny\",$chat,\"max_tokens\":8,\"temperature\":0}"
cp "$scratch/body" "$scratch/chat.json"
status 200 && expect 'const c = json.choices[0];
    return json.object === "chat.completion" && /^chatcmpl-/.test(json.id) && json.model === "tiny" &&
        c.message.role === "assistant" && typeof c.message.content === "string" && c.message.content.length > 0 &&
        ["stop", "length"].includes(c.finish_reason) && usageOk(json.usage, c.finish_reason, 8)'
check "POST /v1/chat/completions: an assistant message, usage adds up" $?

http POST "$A/v1/chat/completions" '{"model":"tiny","messages":[{"role":"user","content":[{"type":"text","text":"Say "},{"type":"text","text":"hello"}]}],"max_completion_tokens":5,"temperature":0}'
status 200 && expect 'usageOk(json.usage, json.choices[0].finish_reason, 5)'
check "chat: content as text parts, max_completion_tokens honoured" $?

# ---- OpenAI: server-sent events ----
http POST "$A/v1/completions" '{"model":"tiny","prompt":"Once upon a time","max_tokens":8,"temperature":0,"stream":true}' -N
cp "$scratch/body" "$scratch/completion.sse"
status 200 && header 'Content-Type: text/event-stream' && expect 'const chunks = sse.slice(0, -1);
    return sse.at(-1) === "[DONE]" && chunks.length >= 2 &&
        chunks.every((c) => c && c.object === "text_completion" && c.id === chunks[0].id && c.model === "tiny" &&
                            c.choices.length === 1 && !("usage" in c)) &&
        chunks.slice(0, -1).every((c) => c.choices[0].finish_reason === null) &&
        ["stop", "length"].includes(chunks.at(-1).choices[0].finish_reason) &&
        chunks.map((c) => c.choices[0].text).join("") === load("completion.json").choices[0].text'
check "streamed completion: data: chunks, one finish_reason last, data: [DONE], the same text as whole" $?
cp "$scratch/completion.sse" "$scratch/body"
expect 'text.split("\n\n").slice(0, -1).every((event) => /^data: [^\n]*$/.test(event)) && text.endsWith("data: [DONE]\n\n")'
check "the event stream is data: events only and ends exactly with data: [DONE] and a blank line (no stray bytes)" $?

http POST "$A/v1/completions" '{"model":"tiny","prompt":"Once upon a time","max_tokens":8,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}' -N
status 200 && expect 'const usage = sse.at(-2), last = sse.at(-3);
    return sse.at(-1) === "[DONE]" && Array.isArray(usage.choices) && usage.choices.length === 0 &&
        usage.object === "text_completion" && usageOk(usage.usage, last.choices[0].finish_reason, 8) &&
        sse.slice(0, -2).every((c) => !("usage" in c))'
check "stream_options.include_usage: a usage chunk (no choices) before [DONE], adding up" $?

http POST "$A/v1/chat/completions" "{\"model\":\"tiny\",$chat,\"max_tokens\":8,\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" -N
status 200 && header 'Content-Type: text/event-stream' && expect 'const chunks = sse.slice(0, -2), usage = sse.at(-2);
    return sse.at(-1) === "[DONE]" && chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0].id) &&
        chunks[0].choices[0].delta.role === "assistant" && chunks.slice(1).every((c) => !("role" in c.choices[0].delta)) &&
        ["stop", "length"].includes(chunks.at(-1).choices[0].finish_reason) &&
        chunks.map((c) => c.choices[0].delta.content ?? "").join("") === load("chat.json").choices[0].message.content &&
        usageOk(usage.usage, chunks.at(-1).choices[0].finish_reason, 8)'
check "streamed chat: role first, deltas add up to the whole reply, usage chunk, [DONE]" $?

# ---- Ollama ----
http POST "$A/api/generate" '{"model":"tiny","prompt":"Once upon a time","options":{"num_predict":8,"temperature":0}}' -N
cp "$scratch/body" "$scratch/generate.ndjson"
status 200 && header 'Content-Type: application/x-ndjson' && expect 'const last = ndjson.at(-1);
    return ndjson.every((l) => l && l.model === "tiny" && rfc3339(l.created_at)) &&
        ndjson.slice(0, -1).every((l) => l.done === false && typeof l.response === "string") &&
        last.done === true && ["stop", "length"].includes(last.done_reason) && last.prompt_eval_count > 0 &&
        (last.done_reason === "length" ? last.eval_count === 8 : last.eval_count <= 8) &&
        ["total_duration", "prompt_eval_duration", "eval_duration", "load_duration"].every((k) => Number.isInteger(last[k])) &&
        last.total_duration > 0 &&
        ndjson.map((l) => l.response).join("") === load("completion.json").choices[0].text'
check "POST /api/generate streams NDJSON by default: done line with counters; same text as /v1 at temperature 0" $?

http POST "$A/api/generate" '{"model":"tiny","prompt":"Once upon a time","options":{"num_predict":8,"temperature":0},"stream":false}'
status 200 && header 'Content-Type: application/json' && expect 'json.done === true && json.eval_count > 0 &&
    json.prompt_eval_count > 0 && json.response === load("generate.ndjson").split("\n").filter(Boolean).map((l) => JSON.parse(l).response).join("")'
check '/api/generate "stream": false: one object with the whole response' $?

http POST "$A/api/chat" "{\"model\":\"tiny\",$chat,\"options\":{\"num_predict\":8,\"temperature\":0}}" -N
status 200 && header 'Content-Type: application/x-ndjson' && expect 'const last = ndjson.at(-1);
    return ndjson.every((l) => l.message.role === "assistant" && typeof l.message.content === "string") &&
        ndjson.slice(0, -1).every((l) => l.done === false) && last.done === true &&
        (last.done_reason === "length" ? last.eval_count === 8 : last.eval_count <= 8) &&
        ndjson.map((l) => l.message.content).join("") === load("chat.json").choices[0].message.content'
check "POST /api/chat streams NDJSON messages; same reply as /v1/chat/completions" $?

http POST "$A/api/chat" "{\"model\":\"tiny\",$chat,\"options\":{\"num_predict\":8,\"temperature\":0},\"stream\":false}"
status 200 && expect 'json.done === true && json.message.role === "assistant" &&
    json.message.content === load("chat.json").choices[0].message.content && json.eval_count > 0'
check '/api/chat "stream": false: one message' $?

http GET "$A/api/ps"
status 200 && expect 'const m = json.models[0];
    return json.models.length === 1 && m.name === "tiny" && m.model === "tiny" && m.size > 0 &&
        Number.isFinite(m.size_vram) && m.size_vram >= 0 && m.size_vram <= m.size &&
        rfc3339(m.expires_at) && near(Date.parse(m.expires_at) / 1000, now + 600, 30)'
check "GET /api/ps after a generation: tiny with size, size_vram, expires_at (now + --keep-alive 10m)" $?

http POST "$A/api/generate" '{"model":"tiny","prompt":"Hi","options":{"num_predict":2},"stream":false,"keep_alive":"5m"}'
http GET "$A/api/ps"
expect 'near(Date.parse(json.models[0].expires_at) / 1000, now + 300, 30)'; check 'a request'"'"'s keep_alive "5m" sets expires_at' $?

http POST "$A/api/generate" '{"model":"tiny","prompt":"Hi","options":{"num_predict":2},"stream":false,"keep_alive":0}'
status 200 && { http GET "$A/api/ps"; expect 'json.models.length === 0'; }
check "keep_alive 0 unloads the model when the request ends (/api/ps empty)" $?

http POST "$A/api/generate" '{"model":"tiny","prompt":""}'
status 200 && expect 'json.done === true && json.done_reason === "load" && json.response === ""' &&
    { http GET "$A/api/ps"; expect 'json.models.length === 1'; }
check 'an empty prompt loads the model: done_reason "load", /api/ps shows it' $?

http POST "$A/api/chat" '{"model":"tiny","messages":[{"role":"user","content":"Hi"}],"options":{"num_predict":4},"keep_alive":0}' -N
gone=1
for _ in $(seq 1 40); do http GET "$A/api/ps"; expect 'json.models.length === 0' 2>/dev/null && { gone=0; break; }; sleep 0.05; done
check "keep_alive 0 on a streamed chat unloads the model when the stream ends" $gone

http POST "$A/api/generate" '{"model":"tiny","prompt":"","keep_alive":-1}'
http GET "$A/api/ps"
expect '/^9999-/.test(json.models[0].expires_at)'; check "keep_alive -1 keeps the model for ever (expires_at in 9999)" $?

http POST "$A/api/generate" '{"model":"tiny","prompt":"","keep_alive":0}'
status 200 && expect 'json.done_reason === "unload"' && { http GET "$A/api/ps"; expect 'json.models.length === 0'; }
check 'an empty prompt with keep_alive 0 unloads: done_reason "unload"' $?

http POST "$A/api/load" '{"model":"tiny"}'
status 200 && expect 'json.model === "tiny" && json.status === "loaded"' && { http GET "$A/api/ps"; expect 'json.models.length === 1'; }
check "POST /api/load loads the model" $?

http POST "$A/api/unload" '{"model":"tiny"}'
status 200 && expect 'json.model === "tiny" && json.status === "unloaded"' && { http GET "$A/api/ps"; expect 'json.models.length === 0'; }
check "POST /api/unload unloads it" $?

http GET "$A/api/memory/history"
status 200 && expect 'json.capacity === 600 && json.interval_seconds === 1 && json.warn_free_percent > json.critical_free_percent &&
    json.samples.length >= 1 && json.samples.every(s => s.effective_total_bytes > 0 && s.process_rss_bytes > 0 && typeof s.models === "object") &&
    json.events.some(e => e.type === "model" && e.action === "loaded" && e.model === "tiny" && e.reason.length > 0) &&
    json.events.some(e => e.action === "unloaded" && typeof e.bytes_freed === "number") &&
    json.events.every((e, i) => i === 0 || e.id > json.events[i - 1].id)'
check "GET /api/memory/history: the samples kept and the events, numbered, with their reasons" $?
cp "$scratch/body" "$scratch/history.json"
http GET "$A/api/memory/history?since=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1])).samples.at(-1).time' "$scratch/history.json")&after=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1])).events.at(-1).id' "$scratch/history.json")"
# (an event may arrive between the two requests: only its number is asked to be newer)
status 200 && expect 'const old = load("history.json"); return json.events.every(e => e.id > old.events.at(-1).id) && json.samples.every(s => s.time > old.samples.at(-1).time)'
check "GET /api/memory/history?since=T&after=ID: only what is newer" $?
http GET "$A/api/memory/history?since=yesterday"
status 400 && expect 'json.error.includes("since")'; check "history: a bad 'since' is a 400 naming it" $?

http POST "$A/v1/completions" '{"model":"tiny:latest","prompt":"Hi","max_tokens":2}'
status 200; check "a model named as Ollama does (tiny:latest) is found" $?

# ---- what the server tells operators about those generations ----
http GET "$A/api/generations"
status 200 && expect 'const clients = new Set(json.map((r) => r.client));
    return json.length >= 15 && ["openai", "openai-chat", "ollama", "ollama-chat"].every((c) => clients.has(c)) &&
        json.every((r) => r.started_at > 0 && typeof r.model === "string" && r.generated_tokens >= 0 &&
                          r.prompt_tokens > 0 && r.total_seconds > 0 && r.peak_rss_bytes > 0 &&
                          r.cancelled === false && r.result === "HR_OK")'
check "GET /api/generations: a record per generation, from every API" $?

http GET "$A/metrics"
status 200 && header 'Content-Type: text/plain' && expect 'return ["headroom_time_to_first_token_seconds", "headroom_generation_duration_seconds"].every((name) => {
        const b = buckets(name);
        return text.includes(`# TYPE ${name} histogram`) && b.length === 13 && b.at(-1)[0] === "+Inf" &&
            b.every(([, n], i) => i === 0 || n >= b[i - 1][1]) && b.at(-1)[1] === metric(`${name}_count`) &&
            metric(`${name}_count`) >= 15 && metric(`${name}_sum`) > 0;
    }) && text.includes("# TYPE headroom_generations_total counter") &&
    metric(`headroom_generations_total{outcome="completed"}`) >= 15 && metric(`headroom_generations_total{outcome="cancelled"}`) === 0 &&
    metric(`headroom_tokens_total{kind="generated"}`) > 0 && metric("headroom_http_requests_total") > 30 &&
    metric(`headroom_model_loaded{model="tiny"}`) === 1 && metric("headroom_memory_host_total_bytes") > 0'
check "GET /metrics: Prometheus text, generations by outcome, cumulative histograms" $?

# ---- bad input: a 4xx in the API's error shape that says what to fix; the server keeps serving ----
# bad NAME STATUS METHOD PATH BODY MESSAGE-REGEX [PARAM]: /v1 and plain paths get OpenAI's shape
# {"error":{"message","type","param","code"}}, /api paths Ollama's {"error":"..."}.
bad() {
    local name=$1 code=$2 method=$3 path=$4 body=$5 pattern=$6 param=${7:-}
    if [[ -n $body ]]; then http "$method" "$A$path" "$body"; else http "$method" "$A$path"; fi
    local shape
    if [[ $path == /api/* ]]; then
        shape="typeof json.error === 'string' && /$pattern/.test(json.error)"
    else
        shape="typeof json.error.message === 'string' && /$pattern/.test(json.error.message) &&
               typeof json.error.type === 'string' && 'code' in json.error"
        [[ -n $param ]] && shape+=" && json.error.param === '$param'"
    fi
    status "$code" && header 'Content-Type: application/json' && expect "$shape"
    check "$name: $code" $?
}
errors_before=$(curl -s "$A/metrics" | sed -n 's/^headroom_http_errors_total{class="4xx"} //p')

bad "malformed JSON" 400 POST /v1/completions '{"model":"tiny",' 'not valid JSON \(near byte \d+\)'
bad "malformed JSON (Ollama)" 400 POST /api/generate '{"model": tiny}' 'not valid JSON'
bad "a body that is a JSON array" 400 POST /v1/chat/completions '[{"model":"tiny"}]' 'must be a JSON object'
bad "a body that is a JSON string" 400 POST /api/chat '"hello"' 'must be a JSON object'
bad "no body" 400 POST /v1/completions '' 'a JSON body is required'
bad "model: 5" 400 POST /v1/completions '{"model":5,"prompt":"x"}' "'model' must be a string" model
bad "no model" 400 POST /v1/chat/completions '{"messages":[{"role":"user","content":"x"}]}' "'model' is required" model
bad "no prompt" 400 POST /v1/completions '{"model":"tiny"}' "'prompt' is required" prompt
bad 'temperature: "hot"' 400 POST /v1/completions '{"model":"tiny","prompt":"x","temperature":"hot"}' "'temperature' must be a number" temperature
bad "temperature: 5" 400 POST /v1/chat/completions '{"model":"tiny","messages":[{"role":"user","content":"x"}],"temperature":5}' "'temperature' must be between 0 and 2" temperature
bad 'max_tokens: "x"' 400 POST /v1/completions '{"model":"tiny","prompt":"x","max_tokens":"x"}' "'max_tokens' must be a whole number" max_tokens
bad "max_tokens: 2.5" 400 POST /v1/completions '{"model":"tiny","prompt":"x","max_tokens":2.5}' "'max_tokens' must be a whole number" max_tokens
bad "absurd max_tokens (1e9)" 400 POST /v1/completions '{"model":"tiny","prompt":"x","max_tokens":1000000000}' "'max_tokens' must be between 1 and 8192" max_tokens
bad "max_tokens: 0" 400 POST /v1/completions '{"model":"tiny","prompt":"x","max_tokens":0}' "'max_tokens' must be between 1" max_tokens
bad "n: 2" 400 POST /v1/completions '{"model":"tiny","prompt":"x","n":2}' "'n' must be between 1 and 1" n
bad 'stream: "yes"' 400 POST /v1/completions '{"model":"tiny","prompt":"x","stream":"yes"}' "'stream' must be true or false" stream
bad "stop: 5" 400 POST /v1/completions '{"model":"tiny","prompt":"x","stop":5}' "'stop' must be a string or an array of strings" stop
bad 'stop: [""]' 400 POST /v1/completions '{"model":"tiny","prompt":"x","stop":["a",""]}' "'stop' must not hold an empty string" stop
bad "options.stop: 17 sequences" 400 POST /api/generate '{"model":"tiny","prompt":"x","options":{"stop":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"]}}' "at most 16 are accepted" ''
bad "logprobs: 99" 400 POST /v1/completions '{"model":"tiny","prompt":"x","logprobs":99}' "'logprobs' must be between 0 and 20" logprobs
bad "echo: true" 400 POST /v1/completions '{"model":"tiny","prompt":"x","echo":true}' "'echo' is not supported" echo
bad "best_of: 2" 400 POST /v1/completions '{"model":"tiny","prompt":"x","best_of":2}' "'best_of' must be between 1 and 1" best_of
bad 'logit_bias: {"x": 1}' 400 POST /v1/completions '{"model":"tiny","prompt":"x","logit_bias":{"x":1}}' "'logit_bias' keys must be token ids" logit_bias
bad "logit_bias beyond the vocabulary" 400 POST /v1/completions '{"model":"tiny","prompt":"x","logit_bias":{"99999999":1}}' "logit_bias names token 99999999" ''
bad "presence_penalty: 3" 400 POST /v1/completions '{"model":"tiny","prompt":"x","presence_penalty":3}' "'presence_penalty' must be between -2 and 2" presence_penalty
bad "ollama format: 5" 400 POST /api/generate '{"model":"tiny","prompt":"x","format":5}' "'format' must be \"json\" or a JSON schema" ''
bad "show without a model" 400 POST /api/show '{}' "'model' is required"
bad "show of an unknown model" 404 POST /api/show '{"model":"nope"}' "not found"
bad "embeddings without input" 400 POST /v1/embeddings '{"model":"tiny"}' "'input' is required" input
bad "embeddings: encoding_format yaml" 400 POST /v1/embeddings '{"model":"tiny","input":"x","encoding_format":"yaml"}' "must be \"float\" or \"base64\"" encoding_format
bad "embeddings of an unknown model" 404 POST /v1/embeddings '{"model":"nope","input":"x"}' "not found" model
bad "ollama embed: input 5" 400 POST /api/embed '{"model":"tiny","input":5}' "'input' must be a string or an array of strings"
bad "ollama embeddings without prompt" 400 POST /api/embeddings '{"model":"tiny"}' "'prompt' is required"
bad "a grammar that does not parse" 400 POST /v1/completions '{"model":"tiny","prompt":"x","grammar":"root ::= nothing"}' "the grammar does not parse"
bad "response_format and grammar together" 400 POST /v1/completions '{"model":"tiny","prompt":"x","grammar":"root ::= \"a\"","response_format":{"type":"json_object"}}' "give one of" response_format
bad "json_schema type missing its schema" 400 POST /v1/chat/completions '{"model":"tiny","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"x"}}}' "needs json_schema.schema" response_format
bad "ollama mirostat: 3" 400 POST /api/generate '{"model":"tiny","prompt":"x","options":{"mirostat":3}}' "'mirostat' must be between 0 and 2" ''
bad "ollama chat images" 400 POST /api/chat '{"model":"tiny","messages":[{"role":"user","content":"x","images":["aGk="]}]}' "images are not supported" ''
bad "chat without messages" 400 POST /v1/chat/completions '{"model":"tiny"}' "'messages' must be a non-empty array" messages
bad "chat with empty messages" 400 POST /v1/chat/completions '{"model":"tiny","messages":[]}' "'messages' must be a non-empty array" messages
bad "chat content: 5" 400 POST /v1/chat/completions '{"model":"tiny","messages":[{"role":"user","content":5}]}' 'messages\[0\]\.content must be a string or an array of parts' messages
bad "unknown model" 404 POST /v1/completions '{"model":"nope","prompt":"x"}' "model 'nope' not found; GET \/v1\/models lists" model
bad "unknown model (Ollama)" 404 POST /api/generate '{"model":"nope","prompt":"x"}' "model 'nope' not found; GET \/api\/tags lists"
bad "unknown model to unload" 404 POST /api/unload '{"model":"nope"}' "model 'nope' not found"
bad 'Ollama num_predict: "x"' 400 POST /api/generate '{"model":"tiny","prompt":"x","options":{"num_predict":"x"}}' "'num_predict' must be a whole number"
bad "Ollama num_predict: 1e9" 400 POST /api/generate '{"model":"tiny","prompt":"x","options":{"num_predict":1000000000}}' "'num_predict' must be between -2 and 8192"
bad 'Ollama options: "x"' 400 POST /api/generate '{"model":"tiny","prompt":"x","options":"x"}' "'options' must be an object"
bad 'Ollama keep_alive: "soon"' 400 POST /api/generate '{"model":"tiny","prompt":"x","keep_alive":"soon"}' "'keep_alive' must be a duration"
bad 'Ollama keep_alive: "1e300h" (overflows)' 400 POST /api/generate '{"model":"tiny","prompt":"x","keep_alive":"1e300h"}' "'keep_alive' must be a duration.*at most 100 years"
bad 'Ollama keep_alive: "inf"' 400 POST /api/chat '{"model":"tiny","messages":[],"keep_alive":"inf"}' "'keep_alive' must be a duration"
bad 'Ollama keep_alive: 1e400 (a JSON number past double)' 400 POST /api/generate '{"model":"tiny","prompt":"x","keep_alive":1e400}' "'keep_alive' must be a duration"
bad 'keep_alive: 1e300 on /api/load' 400 POST /api/load '{"model":"tiny","keep_alive":1e300}' "'keep_alive' must be a duration"
bad 'Ollama stream: 1' 400 POST /api/chat '{"model":"tiny","messages":[],"stream":1}' "'stream' must be true or false"
bad "Ollama chat message without content" 400 POST /api/chat '{"model":"tiny","messages":[{"role":"user"}]}' 'messages\[0\] needs a string role and a string content'
bad 'Ollama chat messages: "x" (not an array)' 400 POST /api/chat '{"model":"tiny","messages":"hello"}' "'messages' must be an array"

head -c 70000 /dev/zero | tr '\0' 'a' | sed 's/^/{"model":"tiny","prompt":"/; s/$/"}/' >"$scratch/big.json"
bad "a body over --max-body 65536" 413 POST /v1/completions "@$scratch/big.json" 'larger than the limit of 65536 bytes'
head -c 8388608 /dev/zero >"$scratch/large.bin"
sent=$(curl -s -o "$scratch/body" -w '%{http_code} %{size_upload}' --max-time 60 -H 'Expect: 100-continue' \
       -H 'Content-Type: application/json' --data-binary "@$scratch/large.bin" "$A/v1/completions")
[[ ${sent% *} == 413 && ${sent#* } -lt 1048576 ]]
check "a Content-Length over --max-body: 413 before the body is read (sent: ${sent#* } bytes)" $?
printf '{"model":"tiny","prompt":"caf\xc3 \xff\xfe"}' >"$scratch/latin1.json"
bad "invalid UTF-8" 400 POST /v1/completions "@$scratch/latin1.json" 'not valid UTF-8'
bad "invalid UTF-8 (Ollama)" 400 POST /api/generate "@$scratch/latin1.json" 'not valid UTF-8'

# A prompt longer than the context window: the reply must say so, not name an error code.
{ printf '{"model":"tiny","max_tokens":4,"prompt":"'; for _ in $(seq 1 900); do printf 'word word word word word word word word word word '; done; printf '"}'; } >"$scratch/long.json"
bad "a prompt longer than the context window" 400 POST /v1/completions "@$scratch/long.json" 'context window'
sed 's/"max_tokens":4/"stream":false/' "$scratch/long.json" >"$scratch/long-ollama.json"
bad "a prompt longer than the context window (Ollama)" 400 POST /api/generate "@$scratch/long-ollama.json" 'context window'
sed 's/"max_tokens":4/"stream":true/' "$scratch/long.json" >"$scratch/long-stream.json"
http POST "$A/v1/completions" "@$scratch/long-stream.json"
status 200 && expect 'sse.at(-1) === "[DONE]" && /context window/.test(sse.at(-2).error.message)'
check "a prompt longer than the context window, streamed: an error event that says so, then [DONE]" $?

bad "unknown endpoint" 404 GET /v1/audio/speech '' 'no such endpoint: GET \/v1\/audio\/speech'
bad "GET on /v1/embeddings" 405 GET /v1/embeddings '' 'GET is not allowed on \/v1\/embeddings; use POST'
bad "unknown endpoint (Ollama path)" 404 POST /api/frobnicate '{"model":"tiny"}' 'no such endpoint: POST \/api\/frobnicate'
bad "ollama pull says how models get here" 501 POST /api/pull '{"model":"tiny"}' 'serves the GGUF files given with --model'
bad "ollama delete says the same" 501 DELETE /api/delete '{"model":"tiny"}' 'downloads, creates, copies and deletes no models'
bad "GET /v1/models/nope" 404 GET /v1/models/nope '' "model 'nope' not found" model
bad "unknown path" 404 GET /nothing/here '' 'no such endpoint'
bad "wrong method: GET /v1/completions" 405 GET /v1/completions '' 'GET is not allowed on \/v1\/completions'
bad "wrong method: DELETE /api/tags" 405 DELETE /api/tags '' 'DELETE is not allowed on \/api\/tags'
http GET "$A/v1/chat/completions"
status 405 && header 'Allow: POST'; check "405 names the allowed method (Allow: POST), as HTTP requires" $?
http GET "$A/api/load"
status 405; check "wrong method on an operations endpoint (GET /api/load): 405, not 404" $?
http POST "$A/health" '{}'
status 405; check "wrong method on an operations endpoint (POST /health): 405, not 404" $?

kill -0 "$A_pid" 2>/dev/null &&
    { http POST "$A/v1/completions" '{"model":"tiny","prompt":"Still there?","max_tokens":4}'; status 200; } &&
    { http GET "$A/health"; status 200; }
check "after all that bad input the same process still serves a completion" $?
http GET "$A/metrics"
expect "metric('headroom_http_errors_total{class=\"4xx\"}') >= ${errors_before:-0} + 40"
check "/metrics counts the 4xx replies" $?

# ---- a client that hangs up mid-stream: the generation stops ----
curl -sN --max-time 60 "$A/v1/completions" -o "$scratch/cut.sse" \
    -d '{"model":"tiny","prompt":"Tell me everything","max_tokens":3000,"stream":true}' &
helper_pids+=($!); client=$!
for _ in $(seq 1 500); do [[ -s $scratch/cut.sse ]] && break; sleep 0.01; done
kill -KILL $client; wait $client 2>/dev/null
wait_idle "$A" 5; check "a streaming client hangs up after its first bytes: GET /api/active empties" $?
eventually 3 last_record "$A" 'const r = json.at(-1); return r.client === "openai" && r.cancelled === true && r.generated_tokens < 3000'
check "its record: cancelled, fewer tokens than max_tokens 3000" $?

curl -sN --max-time 60 "$A/api/generate" -o "$scratch/cut.ndjson" \
    -d '{"model":"tiny","prompt":"Tell me everything","options":{"num_predict":3000}}' &
helper_pids+=($!); client=$!
for _ in $(seq 1 500); do [[ -s $scratch/cut.ndjson ]] && break; sleep 0.01; done
kill -KILL $client; wait $client 2>/dev/null
wait_idle "$A" 5 &&
    eventually 3 last_record "$A" 'const r = json.at(-1); return r.client === "ollama" && r.cancelled === true && r.generated_tokens < 3000'
check "an NDJSON client hangs up: the generation stops, its record says cancelled" $?
http GET "$A/metrics"
expect 'metric(`headroom_generations_total{outcome="cancelled"}`) >= 2'; check "/metrics counts the cancelled generations" $?

# A non-streaming client that gives up (curl --max-time) must not leave the model generating.
# (seed 1 runs the whole 8000 tokens, some seconds, without a pause a stall check would catch)
curl -s --max-time 0.3 "$A/v1/completions" -o /dev/null \
    -d '{"model":"tiny","prompt":"Once upon a time","max_tokens":8000,"seed":1}'
if wait_idle "$A" 3; then
    eventually 3 last_record "$A" 'const r = json.at(-1); return r.cancelled === true && r.generated_tokens < 8000'
    check "a non-streaming client that hangs up: the generation stops, its record says cancelled" $?
else
    check "a non-streaming client that hangs up: the generation stops (still running 3 s later: $(active_tokens "$A") tokens)" 1
fi

stop_server "$A_pid" main; check "headroomd stops on SIGTERM: exit 0, no sanitizer report" $?

# ==== a client that stops reading: generation pauses, then resumes ===========================
start_server slow --model "$model" --port 0 --threads 1 --ctx 8192 --queue 4
C=$url C_pid=$pid
perl "$e2e_dir/slow_reader.pl" "${C##*:}" \
    '{"model":"tiny","prompt":"Once upon a time","max_tokens":4000,"seed":1,"stream":true}' \
    "$scratch/resume" >"$scratch/slow.out" 2>&1 &
helper_pids+=($!); reader=$!
for _ in $(seq 1 200); do grep -q paused "$scratch/slow.out" && break; sleep 0.05; done
# Once the queue (4 pieces) and the socket buffers (~100 KiB, some 600 tokens) are full, the
# count should stop. Strictly nothing should move then, but now and then the kernel lets one
# more segment through (its delayed-ACK and window-probe timers reopen a sliver of window: a few
# tokens a second, seen in some runs), so the check is two samples 1 s apart, at most 8 tokens
# apart, within 20 s. Without backpressure the count runs at full speed, thousands a second.
samples=() paused=1
for _ in $(seq 1 80); do
    sleep 0.25; samples+=("$(active_tokens "$C")")
    (( ${#samples[@]} >= 5 )) || continue
    first=${samples[-5]} second=${samples[-1]}
    [[ $first =~ ^[0-9]+$ && $second =~ ^[0-9]+$ ]] || break
    if (( second < 4000 && second - first <= 8 )); then paused=0; break; fi
done
check "a client that stops reading pauses generation: ${first:-?} tokens, ${second:-?} 1 s later (max_tokens 4000)" $paused
http POST "$C/api/unload" '{"model":"tiny"}'
status 409 && expect '/generating/.test(json.error)'; check "POST /api/unload while a paused stream holds the model: 409" $?
http GET "$C/api/ps"
expect 'json.models.length === 1 && /^9999-/.test(json.models[0].expires_at)'; check "/api/ps: a model in use does not expire" $?
touch "$scratch/resume"
for _ in $(seq 1 600); do kill -0 $reader 2>/dev/null || break; sleep 0.05; done
grep -q "\[DONE\]: yes" "$scratch/slow.out"; result=$?
check "reading again, the stream runs to data: [DONE] ($(tail -n 1 "$scratch/slow.out"))" $result
wait_idle "$C" 5 &&
    eventually 3 last_record "$C" "json.length === 1 && json[0].cancelled === false && json[0].generated_tokens > ${first:-0}"
check "the generation went on after the pause and finished" $?
stop_server "$C_pid" slow; check "the slow-reader server stops cleanly" $?

# ==== API key ================================================================================
start_server keyed --model "$model" --port 0 --threads 1 --api-key secret
B=$url B_pid=$pid
http GET "$B/v1/models"
status 401 && expect 'json.error.type === "authentication_error" && /Authorization: Bearer/.test(json.error.message)'
check "--api-key: /v1 without a key: 401 in OpenAI's shape" $?
http GET "$B/api/tags"
status 401 && expect '/API key/.test(json.error)'; check "--api-key: /api without a key: 401 in Ollama's shape" $?
http GET "$B/v1/models" -H 'Authorization: Bearer wrong'
status 401; check "--api-key: a wrong key: 401" $?
http GET "$B/v1/models" -H 'Authorization: Bearer secre'
status 401; check "--api-key: a key that is a prefix of the right one: 401" $?
http GET "$B/v1/models" -H 'Authorization: Bearer secret'
status 200 && expect 'json.data[0].id === "tiny"'; check "--api-key: Authorization: Bearer secret: 200" $?
http POST "$B/api/generate" '{"model":"tiny","prompt":"Hi","options":{"num_predict":2},"stream":false}' -H 'Authorization: Bearer secret'
status 200 && expect 'json.done === true'; check "--api-key: a generation with the key" $?
http GET "$B/metrics"
status 401; check "--api-key: /metrics needs the key too" $?
http GET "$B/health"
status 200; check "--api-key: /health stays open without a key" $?
http GET "$B/ready"
status 200 && expect 'json.ready === true'; check "--api-key: /ready stays open without a key (probes send none)" $?
# The key is checked on the headers, before the body is read: a client that asks to continue
# gets the 401 instead, and sends none of its 8 MiB (size_upload counts what curl sent).
head -c 8388608 /dev/zero >"$scratch/large.bin"
sent=$(curl -s -o "$scratch/body" -w '%{http_code} %{size_upload}' --max-time 60 -H 'Expect: 100-continue' \
       -H 'Content-Type: application/json' --data-binary "@$scratch/large.bin" "$B/v1/completions")
[[ ${sent% *} == 401 && ${sent#* } -lt 1048576 ]]
check "--api-key: a large body without a key: 401 before the body is read (sent: ${sent#* } bytes)" $?
stop_server "$B_pid" keyed; check "the keyed server stops cleanly" $?

# run_headroomd ARGS...: a run expected to stop at once; its exit code in $rc, output in files.
run_headroomd() {
    timeout 10 "$headroomd" "$@" >"$scratch/run.out" 2>"$scratch/run.err"; rc=$?
}
err_has() { grep -q -- "$1" "$scratch/run.err"; }

run_headroomd --model "$model" --host 0.0.0.0 --port 0
[[ $rc -eq 2 && $(wc -l <"$scratch/run.err") -eq 1 ]] && err_has "binding 0.0.0.0 would expose the API" && err_has "--api-key"
check "--host 0.0.0.0 without an API key: exit 2 and one line that says to set --api-key (got $rc)" $?

HEADROOM_API_KEY=secret start_server open --model "$model" --host 0.0.0.0 --port 0
grep -q "listening on http://0.0.0.0:" "$scratch/open.out" &&
    { http GET "$url/v1/models" -H 'Authorization: Bearer secret'; status 200; } && { http GET "$url/v1/models"; status 401; }
check "--host 0.0.0.0 with HEADROOM_API_KEY: serves, and only with the key" $?
stop_server "$pid" open; check "the 0.0.0.0 server stops cleanly" $?

# ==== configuration: config file < HEADROOM_* environment < flags ============================
stopped_cleanly=0
start_server probe --model "$model" --port 0; port=${url##*:}   # a port that was free just now
stop_server "$pid" probe || stopped_cleanly=1

HEADROOM_PORT=$port HEADROOM_MODEL=$model HEADROOM_THREADS=1 start_server env
[[ ${url##*:} == "$port" ]] && { http GET "$url/v1/models"; expect 'json.data.length === 1 && json.data[0].id === "tiny"'; }
check "HEADROOM_PORT and HEADROOM_MODEL alone configure the server" $?
env_pid=$pid

# while the env server holds $port, a server told HEADROOM_PORT=$port and --port 0 can only start
# on another port if the flag wins (a port just freed could come back from --port 0 by chance)
HEADROOM_PORT=$port start_server flag --model "$model" --port 0
[[ -n $url && ${url##*:} != "$port" ]]; check "--port overrides HEADROOM_PORT" $?
stop_server "$env_pid" env || stopped_cleanly=1
stop_server "$pid" flag || stopped_cleanly=1

cp "$model" "$scratch/other.gguf"
HEADROOM_MODEL=$scratch/other.gguf start_server models --model "$model" --port 0
grep -q "(1 model)" "$scratch/models.out" && { http GET "$url/v1/models"; expect 'json.data.map((m) => m.id).join() === "tiny"'; }
result=$?; check "--model overrides HEADROOM_MODEL (got: $(head -n 1 "$scratch/models.out"))" $result
stop_server "$pid" models || stopped_cleanly=1

cat >"$scratch/headroomd.conf" <<EOF
# headroomd for the e2e test
port = $port

model = $model
keep-alive = 5m
ctx = 512
threads = 1
EOF
start_server config --config "$scratch/headroomd.conf"
[[ ${url##*:} == "$port" ]] && { http POST "$url/api/load" '{"model":"tiny"}'; status 200; } &&
    { http GET "$url/api/ps"; expect 'near(Date.parse(json.models[0].expires_at) / 1000, now + 300, 30)'; } &&
    { http GET "$url/api/memory"; expect 'json.models[0].n_ctx === 512'; }
check "--config FILE: port, model, keep-alive and ctx from key = value lines; comments, blanks skipped" $?
stop_server "$pid" config || stopped_cleanly=1

HEADROOM_CONFIG=$scratch/headroomd.conf HEADROOM_PORT=0 start_server config-env
[[ -n $url && ${url##*:} != "$port" ]]; check "HEADROOM_CONFIG names the file; HEADROOM_PORT overrides its port" $?
stop_server "$pid" config-env || stopped_cleanly=1
check "every configuration server stopped cleanly" $stopped_cleanly

run_headroomd --model "$model" --ctx abc
[[ $rc -eq 2 ]] && err_has "--ctx must be a whole number from 0 to 1048576, not 'abc'"; check "--ctx abc: exit 2 naming --ctx (got $rc)" $?
HEADROOM_PORT=eighty run_headroomd --model "$model"
[[ $rc -eq 2 ]] && err_has "--port must be a whole number" && err_has "HEADROOM_PORT"
check "HEADROOM_PORT=eighty: exit 2 naming --port and the variable (got $rc)" $?
run_headroomd --model "$model" --keep-alive soon
[[ $rc -eq 2 ]] && err_has "--keep-alive takes a duration"; check "--keep-alive soon: exit 2 (got $rc)" $?
printf 'model = %s\nqueue = 0\n' "$model" >"$scratch/bad.conf"
run_headroomd --config "$scratch/bad.conf"
[[ $rc -eq 2 ]] && err_has "--queue must be a whole number from 1" && err_has "bad.conf, line 2"
check "a bad value in the config file: exit 2 naming the option and the line (got $rc)" $?
# a comment longer than the line buffer: its tail once became a line of its own and set an option
{ printf '#%04606d' 0; printf 'max-body = 1\nmodel = %s\n' "$model"; } >"$scratch/long.conf"
run_headroomd --config "$scratch/long.conf"
[[ $rc -eq 2 ]] && err_has "long.conf:1: the line is too long" && ! err_has "max-body"
check "a config line over 4607 bytes: exit 2 naming the line, its tail not read as an option (got $rc)" $?
printf 'colour = blue\n' >"$scratch/unknown.conf"
run_headroomd --model "$model" --config "$scratch/unknown.conf"
[[ $rc -eq 2 ]] && err_has "unknown option 'colour'"; check "an unknown config key: exit 2 (got $rc)" $?
run_headroomd --model "$model" --config "$scratch/missing.conf"
[[ $rc -eq 2 ]] && err_has "cannot read the config file"; check "a missing config file: exit 2 (got $rc)" $?
run_headroomd --model "$model" --frobnicate
[[ $rc -eq 2 ]]; check "an unknown flag: exit 2 (got $rc)" $?
run_headroomd --port 0
[[ $rc -eq 2 ]] && err_has "no models"; check "no model: exit 2 (got $rc)" $?

finish
