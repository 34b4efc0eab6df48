#!/usr/bin/env bash
# test_cors.sh: browsers' cross-origin requests, with curl standing in for the browser: loopback
# origins allowed by default, --cors-origin and HEADROOM_ORIGINS add others, the allowed Origin
# echoed, the OPTIONS preflight answered 204 without the key, any other origin refused with 403.
# usage: test_cors.sh HEADROOMD TINY_MODEL SCRATCH_DIR
set -u
headroomd=$1 model=$2 scratch=$3
rm -rf "$scratch"; mkdir -p "$scratch"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

HEADROOM_ORIGINS="https://env.example, https://env2.example" \
    start_server cors --model "$model" --port 0 --threads 1 --api-key secret --cors-origin https://app.example
check "headroomd starts with --cors-origin and HEADROOM_ORIGINS" $?
[[ -n $url ]] || { cat "$scratch/cors.err"; finish; exit 1; }
key=(-H 'Authorization: Bearer secret')

http OPTIONS "$url/v1/chat/completions" -H 'Origin: http://localhost:5173' \
     -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: authorization, content-type'
status 204 && header 'Access-Control-Allow-Origin: http://localhost:5173' &&
    header 'Access-Control-Allow-Methods: GET, POST, HEAD, OPTIONS' &&
    header 'Access-Control-Allow-Headers: Authorization, Content-Type' && header 'Vary: Origin'
check "OPTIONS preflight from a loopback origin: 204 with methods and headers, without the key" $?

http GET "$url/v1/models" "${key[@]}" -H 'Origin: https://app.example'
status 200 && header 'Access-Control-Allow-Origin: https://app.example'
check "GET from a --cors-origin origin: 200 with the origin echoed" $?

http POST "$url/v1/completions" '{"model":"tiny","prompt":"Hi","max_tokens":2,"temperature":0}' "${key[@]}" \
     -H 'Origin: https://env2.example'
status 200 && header 'Access-Control-Allow-Origin: https://env2.example'
check "POST from a HEADROOM_ORIGINS origin: 200 with the origin echoed" $?

http POST "$url/api/generate" '{"model":"tiny","prompt":"Hi","stream":true,"options":{"num_predict":2}}' "${key[@]}" \
     -H 'Origin: http://127.0.0.1:8080'
status 200 && header 'Access-Control-Allow-Origin: http://127.0.0.1:8080'
check "a stream to a loopback origin carries the header too" $?

http GET "$url/v1/models" "${key[@]}"
status 200 && ! header 'Access-Control-Allow-Origin'
check "no Origin (not a browser): no CORS header" $?

for method in GET POST OPTIONS; do
    http "$method" "$url/v1/models" "${key[@]}" -H 'Origin: https://evil.example'
    status 403 && expect "/web origin 'https:\\/\\/evil.example' are not allowed; start headroomd with --cors-origin/.test(json.error.message)" &&
        ! header 'Access-Control-Allow-Origin'
    check "$method from another origin: 403 with the sentence" $?
done
http GET "$url/api/tags" "${key[@]}" -H 'Origin: http://localhost.evil.example'
status 403 && expect "typeof json.error === 'string'"
check "a name that only begins like localhost is another origin: 403 (Ollama's error shape)" $?

stop_server "$pid" cors; check "headroomd stops cleanly" $?

# ---- DNS rebinding: on loopback without a key, only loopback Host names are answered ----
start_server rebinding --model "$model" --port 0 --threads 1 --allowed-host my-box.lan
check "headroomd starts on loopback without a key, with --allowed-host my-box.lan" $?
port=${url##*:}
http GET "$url/api/memory" -H "Host: rebind.evil.example:$port"
status 403 && expect "/Host header 'rebind.evil.example:$port' does not name this machine.*--allowed-host 'rebind.evil.example'/.test(json.error)"
check "a GET whose Host is another name (a rebinding page's): 403 with the sentence" $?
for host in "localhost:$port" "127.0.0.1:$port" "[::1]:$port" "app.localhost:$port" "LOCALHOST." "my-box.lan:$port"; do
    http GET "$url/api/memory" -H "Host: $host"
    status 200; check "Host $host is answered" $?
done
http GET "$url/api/memory" -H "Host: localhost.evil.example"
status 403; check "a name that only begins like localhost is not loopback: 403" $?
stop_server "$pid" rebinding; check "headroomd stops cleanly" $?

start_server keyed --model "$model" --port 0 --threads 1 --api-key secret
http GET "$url/api/memory" -H "Host: rebind.evil.example" -H "Authorization: Bearer secret"
status 200; check "with an API key the key decides, whatever the Host" $?
stop_server "$pid" keyed; check "headroomd stops cleanly" $?
finish
