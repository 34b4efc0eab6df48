#!/usr/bin/env bash
# server_vs_llama_server.sh: headroomd against llama.cpp's own llama-server, built from the same
# engine source, on the same generated model (1b, Q8_0, seed 42), with the same threads and
# context, on the same machine, in one run:
#
#   1. decode speed and time to first token of one streamed /v1/completions request (the same
#      body to both), measured by the client (bench/sse_client.mjs) and by each server; the two
#      alternate for ROUNDS rounds and the medians are compared;
#   2. the RSS of each server while READERS clients stream READER_TOKENS-token completions at
#      once and read them very slowly (bench/slow_readers.pl), sampled every 0.5 s, and how far
#      the generations got.
#
# It prints numbers only and asserts nothing: the machine is shared and noisy.
#
# usage: bench/server_vs_llama_server.sh [BUILD_DIR]      (make bench-server)
# env:   THREADS (nproc), CTX (2048), TOKENS (128), ROUNDS (5), PROMPT (a 121-token paragraph),
#        READERS (50), READER_TOKENS (256), READER_SECONDS (20), READER_RATE (16 bytes/s),
#        QUIET_PERCENT (25: rounds where other work used less of a core are also shown apart),
#        TIME_LIMIT (280 s: everything is stopped and cleaned up by then)
set -euo pipefail

# A hard bound on the whole run: timeout signals this script and everything it started (its
# process group) with TERM after TIME_LIMIT, then KILL 10 s later; the trap below cleans up.
time_limit=${TIME_LIMIT:-280}
if [[ -z ${HEADROOM_BENCH_BOUNDED:-} ]]; then
    HEADROOM_BENCH_BOUNDED=1 exec timeout -k 10 "$time_limit" bash "$0" "$@"
fi
cd "$(dirname "$0")/.."
script_start=$(date +%s%3N)

build=${1:-build}
threads=${THREADS:-$(nproc)} ctx=${CTX:-2048} tokens=${TOKENS:-128} rounds=${ROUNDS:-5}
readers=${READERS:-50} reader_tokens=${READER_TOKENS:-256} reader_seconds=${READER_SECONDS:-20}
reader_rate=${READER_RATE:-16}
prompt=${PROMPT:-"The old lighthouse keeper climbed the spiral stairs every evening at dusk, counting the steps as his father had taught him. There were one hundred and twelve of them, worn smooth in the middle by a century of boots. At the top he trimmed the wick, polished the great lens until it shone, and looked out over the grey water toward the harbour, where the fishing boats were coming home one by one. Tonight the wind carried the smell of rain, and far out on the horizon a ship he did not recognise was"}
preset=1b type=q8_0

headroomd=$build/tools/headroomd/headroomd
mkmodel=$build/tools/mkmodel/headroom-mkmodel
[[ -x $headroomd && -x $mkmodel ]] || { echo "bench: build first (make build)" >&2; exit 1; }
for tool in node perl curl; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

source bench/common.sh
llama_server=$(engine_tool llama-server)
engine_dir=$(dirname "$(dirname "$llama_server")")
model=$(cached_model "$mkmodel" "$preset" "$type")
model_name=$(basename "$model" .gguf)

work=$(mktemp -d /tmp/headroom-bench-server.XXXXXX)
hd_pid='' ls_pid='' sampler_pid='' readers_pid=''
cleanup() {
    trap - EXIT INT TERM HUP
    stop_pid "$readers_pid"
    stop_pid "$sampler_pid"
    stop_pid "$hd_pid"
    stop_pid "$ls_pid"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "bench: interrupted (or past TIME_LIMIT=${time_limit}s); cleaning up" >&2; exit 1' INT TERM HUP

now_ms() { date +%s%3N; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# The value of a numeric JSON field; on one-line JSON the greedy .* picks the last occurrence.
json_field() { sed -n "s/.*\"$1\": *\([0-9.e+-]*\).*/\1/p" | tail -n 1; }
field() { local v; v=$(json_field "$1"); echo "${v:-nan}"; }   # the same, "nan" when absent
metric() { awk -v name="$1" '$1 == name { print $2 }' | tail -n 1; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
json_string() { node -e 'process.stdout.write(JSON.stringify(process.argv[1]))' "$1"; }
# CPU seconds: the whole machine busy (all cores), and one process (user + system)
cpu_busy() { awk '$1 == "cpu" { print ($2 + $3 + $4 + $7 + $8 + $9) / 100 }' /proc/stat; }
cpu_of() { awk '{ print ($14 + $15) / 100 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Warm the page cache so neither side pays the first read of the weights.
cat "$model" >/dev/null

# ---- servers ------------------------------------------------------------------------------------
# headroomd's context: n_batch = n_ubatch = 512, flash attention "auto", f16 KV cache, one
# sequence (src/engine/engine_llama.c). llama-server gets the same: -b 512 -ub 512 (its defaults
# are 2048/512), -fa auto and f16 K/V are its defaults, -np 1 is one slot. Its web UI is off and
# its /metrics on (for the slow-reader counters). Its prompt cache is left at its default but
# every request says "cache_prompt": false (headroomd ignores the field), so both sides evaluate
# the whole prompt every time.
"$headroomd" --model "$model" --port 0 --threads "$threads" --ctx "$ctx" \
    >"$work/headroomd.out" 2>"$work/headroomd.err" &
hd_pid=$!
ls_port=$(free_port)
"$llama_server" -m "$model" --host 127.0.0.1 --port "$ls_port" -t "$threads" -c "$ctx" -np 1 \
    -b 512 -ub 512 -fa auto --no-webui --metrics >"$work/llama-server.out" 2>"$work/llama-server.err" &
ls_pid=$!

hd_port=$(headroomd_port "$hd_pid" "$work/headroomd.out" "$work/headroomd.err")
wait_llama_server "$ls_pid" "$ls_port" "$work/llama-server.err"
hd_url=http://127.0.0.1:$hd_port ls_url=http://127.0.0.1:$ls_port

body() {   # MAX_TOKENS
    printf '{"model":%s,"prompt":%s,"max_tokens":%d,"temperature":0,"stream":true,"stream_options":{"include_usage":true},"cache_prompt":false}' \
        "$(json_string "$model_name")" "$(json_string "$prompt")" "$1"
}
request_body=$(body "$tokens")
complete() {   # URL BODY: the client's JSON line, or one with the reason it failed
    local out rc=0
    out=$(timeout 120 node bench/sse_client.mjs "$1/v1/completions" "$2" 2>"$work/client.err") || rc=$?
    if [[ -z $out ]]; then
        echo "bench: the client for $1 exited with status $rc: $(tr '\n' ' ' <"$work/client.err" | cut -c1-300)" >&2
        out="{\"error\":\"client exited with status $rc\"}"
    fi
    echo "$out"
}

# One request each first: headroomd loads its model on first use and both fault pages in.
complete "$hd_url" "$(body 16)" >/dev/null
complete "$ls_url" "$(body 16)" >/dev/null

echo "model: $model ($(du -h "$model" | cut -f1)), threads: $threads, context: $ctx, rounds: $rounds"
echo "engine: $engine_dir (llama-server $("$llama_server" --version 2>&1 | sed -n 's/^version: //p'))"
echo "headroomd: $headroomd (port $hd_port, pid $hd_pid); llama-server: port $ls_port, pid $ls_pid"
echo "request: /v1/completions, stream, max_tokens $tokens, temperature 0 (greedy), $(printf %s "$prompt" | wc -w)-word prompt"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows both sides; see README)"
echo "idle RSS after one request: headroomd $(( $(rss_kb "$hd_pid") / 1024 )) MiB, llama-server $(( $(rss_kb "$ls_pid") / 1024 )) MiB"
echo

# ---- 1. decode speed and time to first token ---------------------------------------------------
# Share of one core that everything but the two servers used (clients included) since
# other_cpu_start: other work on the machine during a request slows it.
other_cpu_start() { oc_t0=$(now_ms) oc_b0=$(cpu_busy) oc_h0=$(cpu_of "$hd_pid") oc_l0=$(cpu_of "$ls_pid"); }
other_cpu_now() {
    awk -v b0="$oc_b0" -v b1="$(cpu_busy)" -v h0="$oc_h0" -v h1="$(cpu_of "$hd_pid")" -v l0="$oc_l0" \
        -v l1="$(cpu_of "$ls_pid")" -v t0="$oc_t0" -v t1="$(now_ms)" \
        'BEGIN { printf "%.0f", 100 * ((b1 - b0) - (h1 - h0) - (l1 - l0)) / ((t1 - t0) / 1000) }'
}
run_headroomd() {   # -> "client_tps client_ttft server_tps server_ttft tokens other_cpu_percent"
    local out rec other
    other_cpu_start
    out=$(complete "$hd_url" "$request_body")
    other=$(other_cpu_now)
    rec=$(curl -s -m 5 "$hd_url/api/generations" || true)
    echo "$(field tokens_per_second <<<"$out") $(field ttft_s <<<"$out")" \
         "$(field tokens_per_second <<<"$rec") $(field time_to_first_token <<<"$rec")" \
         "$(field completion_tokens <<<"$out") $other"
    grep -q '"error":null' <<<"$out" || echo "bench: headroomd request failed: $out" >&2
}
run_llama_server() {   # the same; server ttft: its prompt_ms (prompt evaluated, first token's logits)
    local out prompt_ms other
    other_cpu_start
    out=$(complete "$ls_url" "$request_body")
    other=$(other_cpu_now)
    prompt_ms=$(field prompt_ms <<<"$out")
    echo "$(field tokens_per_second <<<"$out") $(field ttft_s <<<"$out")" \
         "$(field predicted_per_second <<<"$out") $(awk -v m="$prompt_ms" 'BEGIN { print m / 1000 }')" \
         "$(field completion_tokens <<<"$out") $other"
    grep -q '"error":null' <<<"$out" || echo "bench: llama-server request failed: $out" >&2
}
phase_start=$(date +%s%3N) busy0=$(cpu_busy) hd_cpu0=$(cpu_of "$hd_pid") ls_cpu0=$(cpu_of "$ls_pid")
hd_ctps=() hd_cttft=() hd_stps=() hd_sttft=() ls_ctps=() ls_cttft=() ls_stps=() ls_sttft=() quiet_rounds=()
quiet=${QUIET_PERCENT:-25}
for round in $(seq 1 "$rounds"); do
    # Alternate which goes first, so drift on a shared machine hits both alike.
    if (( round % 2 )); then
        read -r lc lt ls lst ln lo < <(run_llama_server)
        read -r hc ht hs hst hn ho < <(run_headroomd)
    else
        read -r hc ht hs hst hn ho < <(run_headroomd)
        read -r lc lt ls lst ln lo < <(run_llama_server)
    fi
    if [[ $lc == nan || $lt == nan || $hc == nan || $ht == nan ]]; then
        echo "round $round: no figures (see the message above); not counted"
        continue
    fi
    printf 'round %d: llama-server %6.2f tokens/s  TTFT %6.3f s (server: %6.2f tokens/s, prompt %6.3f s; %s tokens; other CPU %3d%%) | headroomd %6.2f tokens/s  TTFT %6.3f s (server: %6.2f tokens/s, TTFT %6.3f s; %s tokens; other CPU %3d%%)\n' \
        "$round" "$lc" "$lt" "$ls" "$lst" "$ln" "$lo" "$hc" "$ht" "$hs" "$hst" "$hn" "$ho"
    if (( lo < quiet && ho < quiet )); then quiet_rounds+=("${#hd_ctps[@]}"); fi
    ls_ctps+=("$lc") ls_cttft+=("$lt") ls_stps+=("$ls") ls_sttft+=("$lst")
    hd_ctps+=("$hc") hd_cttft+=("$ht") hd_stps+=("$hs") hd_sttft+=("$hst")
done
other_cpu=$(awk -v b0="$busy0" -v b1="$(cpu_busy)" -v h0="$hd_cpu0" -v h1="$(cpu_of "$hd_pid")" \
    -v l0="$ls_cpu0" -v l1="$(cpu_of "$ls_pid")" -v t0="$phase_start" -v t1="$(date +%s%3N)" \
    'BEGIN { printf "%.0f%% of one core over %.0f s", 100 * ((b1 - b0) - (h1 - h0) - (l1 - l0)) / ((t1 - t0) / 1000), (t1 - t0) / 1000 }')
echo "CPU used by everything but the two servers during the rounds (the clients included): $other_cpu"
med() { printf '%s\n' "$@" | median; }
m_ls_ctps=$(med "${ls_ctps[@]}") m_ls_cttft=$(med "${ls_cttft[@]}") m_ls_stps=$(med "${ls_stps[@]}") m_ls_sttft=$(med "${ls_sttft[@]}")
m_hd_ctps=$(med "${hd_ctps[@]}") m_hd_cttft=$(med "${hd_cttft[@]}") m_hd_stps=$(med "${hd_stps[@]}") m_hd_sttft=$(med "${hd_sttft[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "nan" }'; }
decode_ratio=$(ratio "$m_hd_ctps" "$m_ls_ctps") ttft_ratio=$(ratio "$m_ls_cttft" "$m_hd_cttft")
decode_ratio_server=$(ratio "$m_hd_stps" "$m_ls_stps")
printf 'median: llama-server %.2f tokens/s, TTFT %.3f s | headroomd %.2f tokens/s, TTFT %.3f s (client side)\n' \
    "$m_ls_ctps" "$m_ls_cttft" "$m_hd_ctps" "$m_hd_cttft"
# The same over the quiet rounds only: those where other work used under QUIET_PERCENT (25) of a
# core during both requests. Shown beside the medians of all rounds, never instead of them.
pick() { local -n list=$1; local i; for i in "${quiet_rounds[@]}"; do echo "${list[$i]}"; done | median; }
if (( ${#quiet_rounds[@]} > 0 )); then
    q_ls_ctps=$(pick ls_ctps) q_hd_ctps=$(pick hd_ctps) q_ls_cttft=$(pick ls_cttft) q_hd_cttft=$(pick hd_cttft)
    quiet_line=$(printf '%d of %d rounds quiet (other CPU under %d%% during both requests): llama-server %.2f tokens/s, TTFT %.3f s | headroomd %.2f tokens/s, TTFT %.3f s; decode ratio %s, TTFT ratio llama-server/headroomd %s' \
        "${#quiet_rounds[@]}" "${#hd_ctps[@]}" "$quiet" "$q_ls_ctps" "$q_ls_cttft" "$q_hd_ctps" "$q_hd_cttft" \
        "$(ratio "$q_hd_ctps" "$q_ls_ctps")" "$(ratio "$q_ls_cttft" "$q_hd_cttft")")
else
    quiet_line="0 of ${#hd_ctps[@]} rounds quiet (other CPU under $quiet% during both requests)"
fi
echo "median, $quiet_line"
printf 'median: llama-server %.2f tokens/s, prompt %.3f s | headroomd %.2f tokens/s, TTFT %.3f s (server side)\n' \
    "$m_ls_stps" "$m_ls_sttft" "$m_hd_stps" "$m_hd_sttft"
echo

# ---- 2. many slow readers ----------------------------------------------------------------------
sample_rss() {   # PID FILE: "ms_since_epoch VmRSS_kB RssAnon_kB threads" every 0.5 s
    while [[ -r /proc/$1/status ]]; do
        awk -v t="$(now_ms)" '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } /^Threads:/ { n = $2 }
                              END { print t, r, a, n }' "/proc/$1/status" >>"$2" 2>/dev/null || true
        sleep 0.5
    done
}
# headroomd: generations completed and cancelled, tokens of finished generations (metrics), the
# sessions open now, those with a token or more and their tokens (/api/active). "?" where it
# did not answer within 10 s.
hd_progress() {
    local m a
    m=$(curl -s -m 10 "$hd_url/metrics" || true)
    a=$(curl -s -m 10 "$hd_url/api/active" || true)
    [[ -n $m && -n $a ]] || { echo '? ? ? ? ? ?'; return; }
    a=$(grep -o '"generated_tokens":[0-9]*' <<<"$a" | cut -d: -f2 || true)
    echo "$(metric 'headroom_generations_total{outcome="completed"}' <<<"$m") $(metric 'headroom_generations_total{outcome="cancelled"}' <<<"$m")" \
         "$(metric 'headroom_tokens_total{kind="generated"}' <<<"$m")" \
         "$(grep -c . <<<"$a" || true) $(awk '$1 > 0' <<<"$a" | grep -c . || true) $(awk '{ s += $1 } END { print s + 0 }' <<<"$a")"
}
# llama-server: generations released (finished or cancelled: its log's "stop processing" lines),
# tokens of released ones (metrics), its slot now (busy, tokens) and requests waiting for the
# slot (metrics). "?" where it did not answer within 10 s.
ls_progress() {
    local m s r
    r=$(grep -c 'stop processing' "$work/llama-server.err" || true)
    m=$(curl -s -m 10 "$ls_url/metrics" || true)
    s=$(curl -s -m 10 "$ls_url/slots" || true)
    [[ -n $m && -n $s ]] || { echo "$r ? ? ? ?"; return; }
    echo "$r $(metric 'llamacpp:tokens_predicted_total' <<<"$m")" \
         "$(grep -q '"is_processing":true' <<<"$s" && echo 1 || echo 0) $(field n_decoded <<<"$s")" \
         "$(metric 'llamacpp:requests_deferred' <<<"$m")"
}
# llama-server's own log after line FROM: generations finished, the tokens they generated, and
# the tokens of the running one at its last progress line (printed every 3 s, so a little behind)
ls_log_progress() {
    tail -n +"$(( $1 + 1 ))" "$work/llama-server.err" | awk '
        /\| +eval time = / { l = $0; sub(/.*\/ */, "", l); split(l, w, " "); done += w[1]; n++; next }
        /n_gen = / { l = $0; sub(/.*n_gen = */, "", l); split(l, w, ","); last = w[1] + 0
                     l = $0; sub(/.*task */, "", l); split(l, w, " "); task = w[1]; next }
        /stop processing/ { l = $0; sub(/.*task */, "", l); split(l, w, " "); if (w[1] == task) last = 0 }
        END { print n + 0, done + 0, last + 0 }'
}
hd_idle() { [[ $(curl -s -m 2 "$hd_url/api/active" || true) == '[]' ]]; }
ls_idle() {
    local s m
    s=$(curl -s -m 2 "$ls_url/slots" || true) m=$(curl -s -m 2 "$ls_url/metrics" || true)
    [[ -n $s ]] && ! grep -q '"is_processing":true' <<<"$s" && [[ $(metric 'llamacpp:requests_deferred' <<<"$m") == 0 ]]
}
sub() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "?" || b == "?") print "?"; else print a - b }'; }
mib() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1024 }'; }

readers_body=$(body "$reader_tokens")
slow_readers() {   # NAME PID PORT: prints its lines and sets rss_NAME, progress_NAME, idle_NAME
    local name=$1 pid=$2 port=$3 samples=$work/rss-$1 t_start t_end before peak peak_anon before_anon at_end after
    local idle_s after_hangup progress trace threads0 threads_peak cpu0 cpu1
    : >"$samples"
    sample_rss "$pid" "$samples" &
    sampler_pid=$!
    sleep 2
    if [[ $name == headroomd ]]; then read -r p0_c p0_x p0_t _ < <(hd_progress); else read -r p0_r p0_t _ < <(ls_progress); fi
    cpu0=$(cpu_of "$pid")
    local log0; log0=$(wc -l <"$work/llama-server.err")
    t_start=$(now_ms)
    timeout $((reader_seconds + 30)) perl bench/slow_readers.pl "$port" "$readers" "$readers_body" "$reader_seconds" "$reader_rate" \
        >"$work/readers-$name" &
    readers_pid=$!
    sleep $((reader_seconds - 1))
    cpu1=$(cpu_of "$pid")
    # How far the generations got, just before the readers hang up (asked in the background: a
    # server that is slow to answer must not stretch the window).
    {
        local q0; q0=$(now_ms)
        if [[ $name == headroomd ]]; then hd_progress; else echo "$(ls_log_progress "$log0") $(ls_progress)"; fi
        echo $(( $(now_ms) - q0 ))
    } >"$work/progress-$name" &
    local progress_pid=$!
    wait "$readers_pid" || true
    readers_pid=''
    t_end=$(now_ms)
    wait "$progress_pid" || true
    local asked_ms; asked_ms=$(sed -n 2p "$work/progress-$name")
    local late=''
    (( ${asked_ms:-0} < 1000 )) || late=" (the server took $(awk -v v="$asked_ms" 'BEGIN { printf "%.1f", v / 1000 }') s to answer)"
    if [[ $name == headroomd ]]; then
        read -r c x t n_open n_started active_tokens <"$work/progress-$name"
        progress="$name: generations completed $(sub "$c" "$p0_c"), cancelled $(sub "$x" "$p0_x"); sessions open $n_open, generating (a token or more) $n_started with $active_tokens tokens; tokens generated in the window $(sub "$(sub "$t" "$p0_t")" "-$active_tokens")$late"
    else
        read -r n_done done_tokens running_tokens r t busy decoded deferred <"$work/progress-$name"
        progress="$name: generations finished $n_done ($done_tokens tokens), the running one at $running_tokens tokens or more (its log); tokens generated in the window $((done_tokens + running_tokens)) or more; requests waiting for the slot $deferred$late"
    fi
    # After the hang-up: how long until the server is idle again, at most 90 s and never past
    # 25 s before the time limit.
    local deadline=$(( $(now_ms) + 90000 )) limit_ms=$(( script_start + (time_limit - 25) * 1000 ))
    (( deadline < limit_ms )) || deadline=$limit_ms
    idle_s="not within $(( (deadline - t_end) / 1000 )) s"
    (( deadline > t_end )) || idle_s="not known (no time left before TIME_LIMIT to wait for it)"
    while (( $(now_ms) < deadline )); do
        if { [[ $name == headroomd ]] && hd_idle; } || { [[ $name == llama-server ]] && ls_idle; }; then
            idle_s=$(awk -v a="$(now_ms)" -v b="$t_end" 'BEGIN { printf "%.1f s", (a - b) / 1000 }')
            break
        fi
        sleep 0.1
    done
    if [[ $name == headroomd ]]; then
        read -r c x _ < <(hd_progress)
        after_hangup="completed $(sub "$c" "$p0_c"), cancelled $(sub "$x" "$p0_x") since the readers came"
    else
        read -r r _ < <(ls_progress)
        after_hangup="released (finished or cancelled) $(sub "$r" "$p0_r") since the readers came"
    fi
    sleep 1
    stop_pid "$sampler_pid"
    sampler_pid=''
    window() { awk -v a="$t_start" -v b="$t_end" '$1 >= a && $1 <= b' "$samples"; }
    before=$(awk -v t="$t_start" '$1 < t { v = $2 } END { print v + 0 }' "$samples")
    before_anon=$(awk -v t="$t_start" '$1 < t { v = $3 } END { print v + 0 }' "$samples")
    threads0=$(awk -v t="$t_start" '$1 < t { v = $4 } END { print v + 0 }' "$samples")
    peak=$(window | awk '$2 > m { m = $2 } END { print m + 0 }')
    peak_anon=$(window | awk '$3 > m { m = $3 } END { print m + 0 }')
    threads_peak=$(window | awk '$4 > m { m = $4 } END { print m + 0 }')
    at_end=$(awk -v b="$t_end" '$1 <= b { v = $2 } END { print v + 0 }' "$samples")
    after=$(tail -n 1 "$samples" | cut -d' ' -f2)
    trace=$(window | awk 'NR % 4 == 1 { printf "%s%.1f", sep, $2 / 1024; sep = " " }')
    printf '%s: RSS before %s MiB, peak %s MiB (%+.1f MiB, %.1f KiB per reader; anonymous %+.1f MiB), at hang-up %s MiB, after %s MiB\n' \
        "$name" "$(mib "$before")" "$(mib "$peak")" "$(awk -v a="$peak" -v b="$before" 'BEGIN { print (a - b) / 1024 }')" \
        "$(awk -v a="$peak" -v b="$before" -v n="$readers" 'BEGIN { print (a - b) / n }')" \
        "$(awk -v a="$peak_anon" -v b="$before_anon" 'BEGIN { print (a - b) / 1024 }')" "$(mib "$at_end")" "$(mib "$after")"
    echo "$name: RSS every 2 s (MiB): $trace"
    echo "$name: threads $threads0 before, at most $threads_peak; CPU used in the window $(awk -v a="$cpu1" -v b="$cpu0" 'BEGIN { printf "%.1f", a - b }') s"
    echo "$progress"
    echo "$name: readers: $(cat "$work/readers-$name")"
    echo "$name: idle again $idle_s after the hang-up; generations $after_hangup"
    eval "rss_${name//-/_}=\"$before $peak $at_end $after\""
    eval "progress_${name//-/_}=\"\$progress\""
    eval "idle_${name//-/_}=\"\$idle_s\""
}
echo "$readers slow readers: streamed completions of $reader_tokens tokens at once, each client reading $reader_rate bytes/s for ${reader_seconds} s, then hanging up"
slow_readers headroomd "$hd_pid" "$hd_port"
slow_readers llama-server "$ls_pid" "$ls_port"
echo

# ---- summary -----------------------------------------------------------------------------------
read -r hb hp _ _ <<<"$rss_headroomd"
read -r lb lp _ _ <<<"$rss_llama_server"
echo "summary ($(date -u +%Y-%m-%d), $(nproc) cores, threads $threads, model $preset $type, medians of ${#hd_ctps[@]} rounds, load average now $(cut -d' ' -f1-3 /proc/loadavg)):"
echo "  other CPU use during the rounds (clients included): $other_cpu"
printf '  decode tokens/s (client): llama-server %.2f, headroomd %.2f; ratio headroomd/llama-server %s (goal: at least 1.0)\n' "$m_ls_ctps" "$m_hd_ctps" "$decode_ratio"
printf '  decode tokens/s (server): llama-server %.2f, headroomd %.2f; ratio %s\n' "$m_ls_stps" "$m_hd_stps" "$decode_ratio_server"
echo "  $quiet_line"
printf '  TTFT (client): llama-server %.3f s, headroomd %.3f s; ratio llama-server/headroomd %s (above 1: headroomd answers first)\n' "$m_ls_cttft" "$m_hd_cttft" "$ttft_ratio"
printf '  server-side first token: llama-server prompt_ms %.3f s, headroomd time_to_first_token %.3f s\n' "$m_ls_sttft" "$m_hd_sttft"
printf '  %d slow readers, RSS growth (peak - before): headroomd %+.1f MiB (%.1f KiB per reader), llama-server %+.1f MiB (%.1f KiB per reader)\n' \
    "$readers" "$(awk -v a="$hp" -v b="$hb" 'BEGIN { print (a - b) / 1024 }')" "$(awk -v a="$hp" -v b="$hb" -v n="$readers" 'BEGIN { print (a - b) / n }')" \
    "$(awk -v a="$lp" -v b="$lb" 'BEGIN { print (a - b) / 1024 }')" "$(awk -v a="$lp" -v b="$lb" -v n="$readers" 'BEGIN { print (a - b) / n }')"
echo "  $progress_headroomd; idle after hang-up: $idle_headroomd"
echo "  $progress_llama_server; idle after hang-up: $idle_llama_server"
