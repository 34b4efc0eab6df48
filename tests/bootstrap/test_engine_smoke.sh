#!/usr/bin/env bash
# test_engine_smoke.sh: scripts/bootstrap's engine smoke test. HEADROOM_ENGINE_PREFIX pointed at an
# engine that crashes must stop bootstrap with one sentence naming the cause and a non-zero exit;
# the real engine passes with only its prefix on stdout. Nothing is downloaded or rebuilt: the
# crashing engine is the real one with a small library in front of it, and bootstrap's cache is a
# scratch directory.
#
# usage: test_engine_smoke.sh SOURCE_DIR ENGINE_PREFIX SCRATCH_DIR     (exits 77 where it cannot run)
#
# The crashing engine mirrors ENGINE_PREFIX (symlinks to its include/, lib/cmake and libraries), but
# its libllama.so puts a shim in front whose llama_decode executes an illegal instruction (__builtin_trap, ud2
# on x86-64) on a Q8_0 model and otherwise calls the real llama_decode, as ggml's AMX kernels did on
# an AMX Xeon: F16 decodes, Q8_0 dies of SIGILL. So the real smoke program really dies of a signal.
set -euo pipefail
source=$1 real=$2 scratch=$3

skip() { echo "skip: $*"; exit 77; }
fail() { echo "not ok - $*"; exit 1; }
[[ $(uname -s) == Linux && $(uname -m) == x86_64 ]] \
    || skip "the crashing engine relies on __builtin_trap being ud2 (SIGILL) and on ELF symbol lookup: x86-64 Linux only"
[[ -n $real && $real != system && -d $real/lib && -f $real/include/llama.h ]] \
    || skip "needs the engine as a prefix (HEADROOM_ENGINE_PREFIX='$real' has no lib/ and include/llama.h)"
compgen -G "$real/lib/libllama.so.*" >/dev/null || skip "no $real/lib/libllama.so.*"
command -v cc >/dev/null || skip "no C compiler"

rm -rf "$scratch"; mkdir -p "$scratch"
crash=$scratch/crashing-engine
mkdir -p "$crash/lib"
ln -s "$real/include" "$crash/include"
[[ -d $real/lib/cmake ]] && ln -s "$real/lib/cmake" "$crash/lib/cmake"
for lib in "$real"/lib/lib*.so*; do
    [[ ${lib##*/} == libllama.so ]] || ln -s "$lib" "$crash/lib/"
done
# Its own soname, so that the real libllama.so.0 it needs is not mistaken for it and is loaded too.
cat >"$scratch/crash.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <llama.h>

int32_t llama_decode(struct llama_context *ctx, struct llama_batch batch)
{
    char desc[128];
    llama_model_desc(llama_get_model(ctx), desc, sizeof(desc));
    if (strstr(desc, "Q8_0"))
        __builtin_trap();
    int32_t (*real_decode)(struct llama_context *, struct llama_batch) =
        (int32_t (*)(struct llama_context *, struct llama_batch))dlsym(RTLD_NEXT, "llama_decode");
    return real_decode(ctx, batch);
}
EOF
cc -shared -fPIC -O1 -I"$real/include" "$scratch/crash.c" -o "$crash/lib/libllama-crash.so" \
    -Wl,-soname,libllama-crash.so -L"$real/lib" -Wl,-rpath,"$real/lib" -lllama -ldl
# -lllama reads this linker script (as -lc reads glibc's libc.so): the shim first, so that its
# llama_decode is the one the program calls, then the real library for everything else.
echo 'INPUT ( libllama-crash.so libllama.so.0 )' >"$crash/lib/libllama.so"

run_bootstrap() {   # run_bootstrap PREFIX [VAR=VALUE...]: sets status, out, err
    local prefix=$1; shift
    status=0
    env XDG_CACHE_HOME="$scratch/cache" HEADROOM_ENGINE_PREFIX="$prefix" "$@" \
        "$source/scripts/bootstrap" >"$scratch/stdout" 2>"$scratch/stderr" || status=$?
    out=$(cat "$scratch/stdout") err=$(cat "$scratch/stderr")
}

# 1. The crashing engine: exit 1, nothing on stdout, one line on stderr naming signal, type, way out.
for attempt in first second; do   # a failure is never remembered as a pass
    run_bootstrap "$crash"
    ((status != 0)) || fail "bootstrap accepted the crashing engine ($attempt run): $err"
    [[ -z $out ]] || fail "bootstrap printed '$out' on stdout for the crashing engine"
    [[ $(printf '%s\n' "$err" | wc -l) -eq 1 ]] || fail "stderr is not one line: $err"
    expected="bootstrap: error: the engine in $crash crashes (SIGILL, illegal instruction) decoding a Q8_0 model: "
    [[ $err == "$expected"* ]] || fail "unexpected error: $err"
    [[ $err == *HEADROOM_ENGINE_PREFIX* ]] || fail "the error does not say the way out: $err"
    echo "ok - crashing engine, $attempt run: exit $status, '$err'"
done

# 2. The real engine passes; stdout carries only the prefix; the second run uses the stamp.
for attempt in first second; do
    run_bootstrap "$real"
    ((status == 0)) || fail "bootstrap rejected the real engine: $err"
    [[ $out == "$real" ]] || fail "stdout is '$out', not the prefix"
    [[ $err == *"bootstrap: engine smoke test passed: f16, q8_0, q4_0 decode"* ]] || fail "no pass line: $err"
    echo "ok - real engine, $attempt run: $(printf '%s\n' "$err" | grep 'smoke test')"
done
[[ $err == *"passed before on this boot"* ]] || fail "the second run did not reuse the stamp: $err"

# 3. Bad HEADROOM_ENGINE_CPU values are one clear error each.
for value in amx_int8 avx513; do
    run_bootstrap "$real" HEADROOM_ENGINE_CPU=$value
    ((status == 1)) && [[ -z $out && $err == "bootstrap: error: HEADROOM_ENGINE_CPU: "* ]] \
        && [[ $(printf '%s\n' "$err" | wc -l) -eq 1 ]] || fail "HEADROOM_ENGINE_CPU=$value: exit $status, '$err'"
    echo "ok - HEADROOM_ENGINE_CPU=$value: '$err'"
done
rm -rf "$scratch"
