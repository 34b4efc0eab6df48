#!/usr/bin/env bash
# decode_speed.sh: decode speed of `headroom run` against llama-bench's tg test, built from the
# same engine source, on the same generated model, with the same threads, in the same session.
# Runs alternate (llama-bench, headroom, llama-bench, ...) so drift on a shared machine hits
# both alike; the medians are compared. Prints the ratio headroom / llama-bench.
#
# usage: bench/decode_speed.sh [BUILD_DIR]     (make bench)
# env:   PRESET (1b), TYPE (q8_0), THREADS (nproc), TOKENS (128), ROUNDS (5)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
preset=${PRESET:-1b} type=${TYPE:-q8_0} threads=${THREADS:-$(nproc)} tokens=${TOKENS:-128} rounds=${ROUNDS:-5}

headroom=$build/tools/headroom/headroom
mkmodel=$build/tools/mkmodel/headroom-mkmodel
[[ -x $headroom && -x $mkmodel ]] || { echo "bench: build first (make build)" >&2; exit 1; }

source bench/common.sh
llama_bench=$(engine_tool llama-bench)
engine_dir=$(dirname "$(dirname "$llama_bench")")
model=$(cached_model "$mkmodel" "$preset" "$type")

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
json_field() { sed -n "s/.*\"$1\": *\([0-9.e+-]*\).*/\1/p" | head -n 1; }

# Warm the page cache so neither side pays the first read of the weights.
cat "$model" >/dev/null

echo "model: $model ($(du -h "$model" | cut -f1)), threads: $threads, tokens: $tokens, rounds: $rounds"
echo "engine: $engine_dir"
bench_runs=() headroom_runs=()
for round in $(seq 1 "$rounds"); do
    # tg: decode $tokens tokens one at a time, no prompt; -r 1: one repetition per round
    b=$("$llama_bench" -m "$model" -t "$threads" -p 0 -n "$tokens" -r 1 -o json 2>/dev/null | json_field avg_ts)
    h=$("$headroom" run "$model" "Once upon a time" -n "$tokens" -t "$threads" --ctx 512 --stats-json \
            2>&1 >/dev/null | json_field tokens_per_second)
    printf 'round %d: llama-bench %6.2f tokens/s   headroom run %6.2f tokens/s\n' "$round" "$b" "$h"
    bench_runs+=("$b")
    headroom_runs+=("$h")
done
b=$(printf '%s\n' "${bench_runs[@]}" | median)
h=$(printf '%s\n' "${headroom_runs[@]}" | median)
ratio=$(awk -v h="$h" -v b="$b" 'BEGIN { printf "%.3f", h / b }')
echo "median: llama-bench $b tokens/s, headroom run $h tokens/s"
echo "decode ratio headroom/llama-bench: $ratio (goal: at least 0.95)"
