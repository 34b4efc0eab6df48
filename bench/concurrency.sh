#!/usr/bin/env bash
# concurrency.sh: headroomd against llama.cpp's own llama-server (built from the same engine
# source) with 1, 2, 4 and 8 clients streaming at once: aggregate tokens/s, time to first token
# and each stream's own rate. Same generated model (1b, Q8_0, seed 42), threads, context per
# sequence and slots on both sides; the two alternate at every client count, ROUNDS times, and
# the medians are compared. It prints numbers and writes bench/results/ (RESULTS.md, the table,
# and PNG charts with gnuplot when it is installed); it asserts nothing.
#
# usage: bench/concurrency.sh [BUILD_DIR]        (make bench-concurrency)
# env:   CLIENTS ("1 2 4 8"), SLOTS (4: llama-server -np, headroomd --parallel when it has it),
#        THREADS (nproc), CTX (512 per sequence), TOKENS (64), ROUNDS (3), OUT (bench/results),
#        TIME_LIMIT (900 s)
set -euo pipefail
time_limit=${TIME_LIMIT:-900}
if [[ -z ${HEADROOM_BENCH_BOUNDED:-} ]]; then
    HEADROOM_BENCH_BOUNDED=1 exec timeout -k 10 "$time_limit" bash "$0" "$@"
fi
cd "$(dirname "$0")/.."

build=${1:-build}
clients_list=${CLIENTS:-"1 2 4 8"} slots=${SLOTS:-4} threads=${THREADS:-$(nproc)}
ctx=${CTX:-512} tokens=${TOKENS:-64} rounds=${ROUNDS:-3} out=${OUT:-bench/results}
prompt=${PROMPT:-"The old lighthouse keeper climbed the spiral stairs every evening at dusk, counting the steps as his father had taught him."}
headroomd=$build/tools/headroomd/headroomd
mkmodel=$build/tools/mkmodel/headroom-mkmodel
[[ -x $headroomd && -x $mkmodel ]] || { echo "bench: build first (make build)" >&2; exit 1; }
for tool in node curl; do command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }; done

source bench/common.sh
llama_server=$(engine_tool llama-server)
model=$(cached_model "$mkmodel" 1b q8_0)
model_name=$(basename "$model" .gguf)
work=$(mktemp -d /tmp/headroom-bench-concurrency.XXXXXX)
hd_pid='' ls_pid=''
cleanup() { trap - EXIT INT TERM HUP; stop_pid "$hd_pid"; stop_pid "$ls_pid"; rm -rf "$work"; }
trap cleanup EXIT
trap 'echo "bench: interrupted (or past TIME_LIMIT=${time_limit}s); cleaning up" >&2; exit 1' INT TERM HUP
json_string() { node -e 'process.stdout.write(JSON.stringify(process.argv[1]))' "$1"; }
field() { node -e 'const o = JSON.parse(process.argv[1]); const v = o[process.argv[2]]; console.log(v === null || v === undefined ? "nan" : v)' "$1" "$2"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a == a) printf "%.2f", a / b; else print "nan" }'; }

cat "$model" >/dev/null   # warm the page cache for both

# headroomd runs SLOTS sequences when it has --parallel (continuous batching); without it, one.
hd_args=(--model "$model" --port 0 --threads "$threads")
if "$headroomd" --help 2>&1 | grep -q -- '--parallel'; then
    hd_args+=(--parallel "$slots" --ctx "$ctx")   # headroomd's --ctx is per slot (Ollama's meaning)
    hd_mode="--parallel $slots"
else
    hd_args+=(--ctx "$ctx")
    hd_mode="one sequence at a time (no --parallel in this build)"
fi
"$headroomd" "${hd_args[@]}" >"$work/headroomd.out" 2>"$work/headroomd.err" &
hd_pid=$!
# llama-server: SLOTS slots sharing a context of CTX per slot, the same batch sizes as headroomd
ls_port=$(free_port)
"$llama_server" -m "$model" --host 127.0.0.1 --port "$ls_port" -t "$threads" -c $((ctx * slots)) -np "$slots" \
    -b 512 -ub 512 -fa auto --no-webui >"$work/llama-server.out" 2>"$work/llama-server.err" &
ls_pid=$!
hd_port=$(headroomd_port "$hd_pid" "$work/headroomd.out" "$work/headroomd.err")
wait_llama_server "$ls_pid" "$ls_port" "$work/llama-server.err"
hd_url=http://127.0.0.1:$hd_port/v1/completions ls_url=http://127.0.0.1:$ls_port/v1/completions
body=$(printf '{"model":%s,"prompt":%s,"max_tokens":%d,"temperature":0,"stream":true,"stream_options":{"include_usage":true},"cache_prompt":true}' \
    "$(json_string "$model_name")" "$(json_string "$prompt")" "$tokens")
run() { timeout 300 node bench/concurrent_clients.mjs "$1" "$2" "$body"; }
run "$hd_url" 1 >/dev/null; run "$ls_url" 1 >/dev/null   # load, fault in

echo "model: $model, threads: $threads, context $ctx per sequence, $tokens tokens per request, $rounds rounds"
echo "llama-server: -np $slots; headroomd: $hd_mode"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$out"
table=$work/table.tsv
printf 'clients\tls_tps\thd_tps\tls_ttft\thd_ttft\tls_stream_tps\thd_stream_tps\thd_ok\tls_ok\tls_p95\thd_p95\tls_rss_mib\thd_rss_mib\n' >"$table"
rss_mib() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# the most RSS a server reaches while it runs one round (sampled every 0.2 s)
peak_rss_during() {   # PID COMMAND...: runs COMMAND, prints its output, then "peak MiB" on fd 3
    local pid=$1; shift
    local peak=0 cmd_pid rss
    "$@" >"$work/round.out" &
    cmd_pid=$!
    while kill -0 "$cmd_pid" 2>/dev/null; do
        rss=$(rss_mib "$pid"); ((rss > peak)) && peak=$rss
        sleep 0.2
    done
    wait "$cmd_pid" || true
    cat "$work/round.out"
    echo "$peak" >"$work/peak"
}
for c in $clients_list; do
    declare -a lt=() ht=() lf=() hf=() ls_s=() hs=() lp=() hp=() lr=() hr=()
    hd_ok=0 ls_ok=0
    for round in $(seq "$rounds"); do
        for side in $( ((round % 2)) && echo "ls hd" || echo "hd ls"); do
            url=$hd_url server_pid=$hd_pid; [[ $side == ls ]] && url=$ls_url server_pid=$ls_pid
            r=$(peak_rss_during "$server_pid" run "$url" "$c")
            peak=$(cat "$work/peak")
            printf 'clients %d round %d %-12s %s\n' "$c" "$round" "$([[ $side == ls ]] && echo llama-server || echo headroomd)" "$r"
            if [[ $side == ls ]]; then
                lt+=("$(field "$r" aggregate_tps)") lf+=("$(field "$r" ttft_median_s)") ls_s+=("$(field "$r" per_stream_tps_median)")
                lp+=("$(field "$r" ttft_p95_s)") lr+=("$peak")
                ls_ok=$((ls_ok + $(field "$r" ok)))
            else
                ht+=("$(field "$r" aggregate_tps)") hf+=("$(field "$r" ttft_median_s)") hs+=("$(field "$r" per_stream_tps_median)")
                hp+=("$(field "$r" ttft_p95_s)") hr+=("$peak")
                hd_ok=$((hd_ok + $(field "$r" ok)))
            fi
        done
    done
    med() { printf '%s\n' "$@" | median; }
    printf '%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%d/%d\t%s\t%s\t%s\t%s\n' "$c" "$(med "${lt[@]}")" "$(med "${ht[@]}")" "$(med "${lf[@]}")" \
        "$(med "${hf[@]}")" "$(med "${ls_s[@]}")" "$(med "${hs[@]}")" "$hd_ok" $((c * rounds)) "$ls_ok" $((c * rounds)) \
        "$(med "${lp[@]}")" "$(med "${hp[@]}")" "$(med "${lr[@]}")" "$(med "${hr[@]}")" >>"$table"
done

# ---- results ------------------------------------------------------------------------------------
{
    echo "# headroomd against llama-server, 1 to 8 concurrent streams"
    echo
    echo "Measured $(date -u +%Y-%m-%d) with \`bench/concurrency.sh\` on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))."
    echo "Model: generated 1b, Q8_0 (seed 42); $threads threads; context $ctx per sequence; $tokens tokens per"
    echo "streamed \`/v1/completions\` request at temperature 0; llama-server \`-np $slots\`, headroomd $hd_mode."
    echo "Medians of $rounds rounds; the servers alternate. Aggregate: all tokens over the wall time from"
    echo "the first request to the last end. The machine is shared: read the ratios, not the figures."
    echo
    echo "| clients | llama-server tokens/s | headroomd tokens/s | ratio | TTFT median s (ls / hd) | TTFT p95 s (ls / hd) | per-stream tokens/s (ls / hd) | peak RSS MiB (ls / hd) | completed (hd / ls) |"
    echo "|---|---|---|---|---|---|---|---|---|"
    tail -n +2 "$table" | while IFS=$'\t' read -r c lt ht lf hf lss hss hok lok lp hp lr hr; do
        printf '| %s | %.1f | %.1f | %s | %.2f / %.2f | %.2f / %.2f | %.1f / %.1f | %s / %s | %s / %s |\n' "$c" "$lt" "$ht" "$(ratio "$ht" "$lt")" \
            "$lf" "$hf" "$lp" "$hp" "$lss" "$hss" "$lr" "$hr" "$hok" "$lok"
    done
    echo

} >"$work/RESULTS.md"
cp "$table" "$out/concurrency.tsv"
if command -v gnuplot >/dev/null; then
    gnuplot <<GP
set terminal pngcairo size 720,420 font "sans,10"
set datafile separator "\t"
set key top left
set grid
set xlabel "concurrent streams"
set logscale x 2
set xtics (1, 2, 4, 8)
set output "$out/throughput.png"
set ylabel "aggregate tokens/s"
set title "Aggregate decode rate (1b Q8_0, $threads threads)"
plot "$out/concurrency.tsv" using 1:2 skip 1 with linespoints lw 2 title "llama-server -np $slots", \
     "" using 1:3 skip 1 with linespoints lw 2 title "headroomd"
set output "$out/ttft.png"
set ylabel "median time to first token, s"
set title "Time to first token"
plot "$out/concurrency.tsv" using 1:4 skip 1 with linespoints lw 2 title "llama-server -np $slots", \
     "" using 1:5 skip 1 with linespoints lw 2 title "headroomd"
GP
    echo "![aggregate tokens/s](throughput.png) ![time to first token](ttft.png)" >>"$work/RESULTS.md"
fi
cp "$work/RESULTS.md" "$out/RESULTS.md"
echo
cat "$out/RESULTS.md"
