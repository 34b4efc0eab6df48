#!/usr/bin/env bash
# run.sh BUILD RUNS [SECONDS]: runs every libFuzzer target in BUILD/tests/fuzz for RUNS
# executions each (or SECONDS each, when given), from the seeds in tests/fuzz/corpus/TARGET plus
# what the targets need made fresh (a GGUF model file from headroom-mkmodel, its first 64 KiB,
# a tiny model for the request target's generations). The working corpus lives in
# BUILD/fuzz-corpus (the repo's seeds are never changed); a crash, a leak, a failed check or an
# input that runs over 25 s (a hang) leaves its input in
# BUILD/fuzz-crashes and fails the run. Prints one line per target: executions, seconds, result.
set -u
build=$1 runs=$2 seconds=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
work=$build/fuzz-corpus crashes=$build/fuzz-crashes
mkdir -p "$work" "$crashes"
mkmodel=$build/tools/mkmodel/headroom-mkmodel
model=$build/fuzz-tiny.gguf
[[ -f $model ]] || "$mkmodel" --preset tiny --quiet -o "$model" || { echo "run.sh: cannot make $model"; exit 1; }
mkdir -p "$work/gguf"
cp "$model" "$work/gguf/tiny.gguf"
head -c 65536 "$model" >"$work/gguf/tiny-head.gguf"
head -c 100 "$model" >"$work/gguf/tiny-100.gguf"
status=0
printf '%-12s %14s %9s  %s\n' target executions seconds result
for binary in "$build"/tests/fuzz/fuzz_*; do
    [[ -x $binary ]] || continue
    target=${binary##*/fuzz_}
    mkdir -p "$work/$target"
    limit=(-runs="$runs")
    [[ -n $seconds ]] && limit=(-max_total_time="$seconds")
    extra=()
    [[ $target == gguf ]] && extra=(-max_len=65536)
    [[ $target == config ]] && extra=(-max_len=12288)   # past the 4607-byte line limit
    started=$(date +%s.%N)
    seeds=()
    [[ -d $here/corpus/$target ]] && seeds=("$here/corpus/$target")
    HEADROOM_FUZZ_MODEL=$model "$binary" "${limit[@]}" "${extra[@]}" -timeout=25 -print_final_stats=1 -artifact_prefix="$crashes/$target-" \
        "$work/$target" "${seeds[@]}" >"$build/fuzz-$target.log" 2>&1
    rc=$?
    elapsed=$(echo "$(date +%s.%N) - $started" | bc)
    executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/fuzz-$target.log" | tail -n 1)
    if [[ $rc -eq 0 ]]; then result=ok; else result="FAILED (rc $rc; see $build/fuzz-$target.log)"; status=1; fi
    printf '%-12s %14s %9.1f  %s\n' "$target" "${executed:-?}" "$elapsed" "$result"
done
exit $status
