#!/usr/bin/env bash
# test_engine_cpu.sh: what scripts/bootstrap builds the engine for, on CPUs this machine is not:
# /proc/cpuinfo of an AMX Xeon (Sapphire Rapids) and of a Haswell Xeon, through HEADROOM_CPUINFO,
# read back with `bootstrap --cpu` (features, then CMake options). Builds nothing.
#
# usage: test_engine_cpu.sh SOURCE_DIR SCRATCH_DIR     (exits 77 off x86-64 Linux, where auto is native)
set -euo pipefail
source=$1 scratch=$2
here=$(cd "$(dirname "$0")" && pwd)

[[ $(uname -s) == Linux && $(uname -m) == x86_64 ]] || { echo "skip: feature lists are for x86-64 Linux"; exit 77; }
fail() { echo "not ok - $*"; exit 1; }
rm -rf "$scratch"; mkdir -p "$scratch"

cpu() {   # cpu FIXTURE [HEADROOM_ENGINE_CPU]: sets status, features, options, key, err
    status=0
    env -u HEADROOM_ENGINE_CPU XDG_CACHE_HOME="$scratch/cache" HEADROOM_CPUINFO="$here/cpuinfo-$1" \
        ${2+HEADROOM_ENGINE_CPU="$2"} "$source/scripts/bootstrap" --cpu >"$scratch/out" 2>"$scratch/err" || status=$?
    features=$(sed -n 1p "$scratch/out") options=$(sed -n 2p "$scratch/out") err=$(cat "$scratch/err")
    key=$(sed -n 's|.*/headroom/engine/||p' "$scratch/err")
}

# An AMX Xeon: every AVX-512 feature ggml has a switch for, AMX off, not native.
cpu xeon-amx
((status == 0)) || fail "xeon-amx: $err"
[[ $features == "avx avx2 avx512 avx512_bf16 avx512_vbmi avx512_vnni avx_vnni bmi2 f16c fma sse42" ]] \
    || fail "xeon-amx builds for '$features'"
for option in -DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
              -DGGML_AVX512=ON -DGGML_AVX512_BF16=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX_VNNI=ON; do
    [[ " $options " == *" $option "* ]] || fail "xeon-amx options lack $option: $options"
done
[[ ! $options =~ AMX_[A-Z0-9]+=ON ]] || fail "xeon-amx switches AMX on: $options"
[[ $key == llama.cpp-*-cpu-x86_64+avx+avx2+avx512+avx512_bf16+avx512_vbmi+avx512_vnni+avx_vnni+bmi2+f16c+fma+sse42-* ]] \
    || fail "xeon-amx key '$key' does not name its features"
xeon_key=$key
echo "ok - AMX Xeon: $features; AMX off; key $key"

# A Haswell: AVX2 and no AVX-512; its own key.
cpu haswell
((status == 0)) && [[ $features == "avx avx2 bmi2 f16c fma sse42" ]] || fail "haswell: '$features' $err"
[[ " $options " == *" -DGGML_AVX512=OFF "* && " $options " == *" -DGGML_AVX_VNNI=OFF "* ]] \
    || fail "haswell options: $options"
[[ $key != "$xeon_key" && $key == *-cpu-x86_64+avx+avx2+bmi2+f16c+fma+sse42-* ]] || fail "haswell key '$key'"
echo "ok - Haswell: $features; key $key"

# native: -march=native, and a key that names the exact CPU (the two differ).
cpu xeon-amx native
((status == 0)) && [[ $options == "-DGGML_NATIVE=ON" && $key == *-cpu-native-* ]] || fail "native on xeon-amx: $options $key"
native_xeon=$key
cpu haswell native
[[ $key == *-cpu-native-* && $key != "$native_xeon" ]] || fail "native keys do not tell the CPUs apart: $key"
echo "ok - native: $native_xeon, $key"

# An explicit list for an older fleet, sorted into the key; lists this CPU cannot run are errors.
cpu xeon-amx "sse42, avx,avx2,fma,f16c"
((status == 0)) && [[ $features == "avx avx2 f16c fma sse42" && " $options " == *" -DGGML_BMI2=OFF "* ]] \
    || fail "explicit list: '$features' $options $err"
[[ $key == *-cpu-x86_64+avx+avx2+f16c+fma+sse42-* ]] || fail "explicit list key '$key'"
echo "ok - explicit list: $features; key $key"
for bad in "haswell avx512" "haswell avx512_bf16" "xeon-amx amx_tile" "xeon-amx avx512fp16" "xeon-amx ,"; do
    cpu ${bad% *} "${bad#* }"
    ((status == 1)) && [[ $(wc -l <"$scratch/err") -eq 1 && $err == "bootstrap: error: HEADROOM_ENGINE_CPU"* ]] \
        || fail "HEADROOM_ENGINE_CPU='${bad#* }' on ${bad% *}: exit $status, '$err'"
    echo "ok - HEADROOM_ENGINE_CPU='${bad#* }' on ${bad% *}: $err"
done
rm -rf "$scratch"
