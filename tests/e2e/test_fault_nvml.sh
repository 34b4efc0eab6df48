#!/usr/bin/env bash
# test_fault_nvml.sh: headroomd where NVML is missing, broken or failing. libnvidia-ml.so.1 is
# looked up by name, so a directory first in LD_LIBRARY_PATH decides what headroomd finds: none,
# an empty file, a library that is not NVML (libm), and a fake NVML (fake_nvml.c) that has no
# driver, cannot count its devices, or cannot read its one device. In each, headroomd starts,
# reports no GPU memory (gpu_telemetry false, no gpus), /ready and /api/memory answer and a
# generation is served; an NVML that loads and then fails is said once in the log, an absent one
# not at all. The fake in working order must show its GPU: that proves the directory
# is where headroomd looks, so the other cases are not passing by accident.
# usage: test_fault_nvml.sh HEADROOMD TINY_MODEL FAKE_NVML_LIBRARY SCRATCH_DIR
set -u
headroomd=$1 model=$2 fake=$3 scratch=$4
rm -rf "$scratch"; mkdir -p "$scratch"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
command -v node >/dev/null || { echo "skipped: node is not installed (the JSON checks use it)"; exit 77; }

libm=$(ldconfig -p 2>/dev/null | sed -n 's/.*libm\.so\.6 .*=> \(.*\)$/\1/p' | head -n 1)
# lib_dir CASE: a directory holding what this case calls libnvidia-ml.so.1
lib_dir() {
    local dir=$scratch/lib-$1
    mkdir -p "$dir"
    case $1 in
        missing) ;;
        empty) : >"$dir/libnvidia-ml.so.1" ;;
        not-nvml) cp "$libm" "$dir/libnvidia-ml.so.1" ;;
        *) cp "$fake" "$dir/libnvidia-ml.so.1" ;;
    esac
    echo "$dir"
}
request='{"model":"tiny","prompt":"Once upon a time","max_tokens":4,"temperature":0}'

# serves CASE FAKE_MODE EXPECT_GPU: one headroomd with that library; checks it serves throughout.
serves() {
    local case=$1 mode=$2 gpu=$3 dir
    dir=$(lib_dir "$case")
    LD_LIBRARY_PATH=$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} FAKE_NVML=$mode \
        start_server "$case" --model "$model" --port 0 --threads 1 --ctx 256
    [[ -n $url ]]; check "$case: headroomd starts" $?
    [[ -z $url ]] && { sed 's/^/  /' "$scratch/$case.err" | tail -5; return; }
    local server_pid=$pid
    http GET "$url/api/memory"
    if [[ $gpu == yes ]]; then
        status 200 && expect 'json.gpu_telemetry === true && json.gpus.length === 1 && json.gpus[0].name === "Fake GPU"
            && json.gpus[0].total_bytes === 8 * 2 ** 30'
        check "$case: /api/memory shows the fake's GPU, so LD_LIBRARY_PATH reaches NVML's loader" $?
    else
        status 200 && expect 'json.gpu_telemetry === false && json.gpus.length === 0 && json.pressure.level === "normal"'
        check "$case: /api/memory reports no GPU memory, pressure normal" $?
    fi
    http GET "$url/ready"
    status 200; check "$case: /ready 200" $?
    http POST "$url/v1/completions" "$request"
    status 200 && expect 'json.choices[0].text.length > 0'; check "$case: a generation is served" $?
    http GET "$url/api/memory"
    status 200; check "$case: /api/memory still answers after the load" $?
    if [[ $mode == count-fails || $mode == read-fails ]]; then
        # an NVML that loads and then fails is worth one sentence, not one per sample
        [[ $(grep -ci "nvml" "$scratch/$case.err") -eq 1 ]] && grep -q "NVML cannot .*(the other sources are still used)" "$scratch/$case.err"
        check "$case: the log says once what failed and that the other sources are still used" $?
        grep -i "nvml" "$scratch/$case.err" | sed 's/^/  /'
    else
        ! grep -qi "nvml" "$scratch/$case.err"; check "$case: nothing about NVML in the log (an absent GPU is normal)" $?
    fi
    stop_server "$server_pid" "$case"; check "$case: headroomd stops cleanly" $?
}

serves working ok yes
ldconfig -p 2>/dev/null | grep -q 'libnvidia-ml\.so\.1 ' \
    && echo "  (this machine has an NVML: 'missing' below finds it; the other cases shadow it)"
ldconfig -p 2>/dev/null | grep -q 'libnvidia-ml\.so\.1 ' || serves missing ok no
serves empty ok no
[[ -n $libm ]] && serves not-nvml ok no
serves init-fails init-fails no
serves count-fails count-fails no
serves read-fails read-fails no
finish
