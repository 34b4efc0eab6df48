#!/usr/bin/env bash
# test_soak.sh: a bounded soak of headroomd (tests/e2e/soak.mjs): REQUESTS requests (default
# 2000) mixing streams, cancels, dropped connections, slow readers, bad inputs and load/unload,
# then RSS within 5% of its warm-up value and descriptors and threads back to their baseline.
# usage: test_soak.sh HEADROOMD TINY_MODEL WORK_DIR [sanitized]
# env:   SOAK_REQUESTS, SOAK_CONCURRENCY (6)
# Exits 77 (skipped) without node.
set -u
headroomd=$1 model=$2 work=$3 sanitized=${4:-}
scratch=$work/scratch
mkdir -p "$work"; rm -rf "$scratch"; mkdir -p "$scratch"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
command -v node >/dev/null || { echo "skipped: node is not installed"; exit 77; }
requests=${SOAK_REQUESTS:-2000} check_rss=1
if [[ -n $sanitized ]]; then requests=${SOAK_REQUESTS:-600} check_rss=0; fi

# keep-alive long enough that only the soak's own unloads unload; a short reader timeout so a
# slow reader gives way to the others
start_server soak --model "$model" --port 0 --threads 1 --ctx 1024 --reader-timeout 2s
check "headroomd starts" $?
[[ -n $url ]] || { cat "$scratch/soak.err"; finish; exit 1; }

node "$e2e_dir/soak.mjs" "$url" "$(basename "$model" .gguf)" "$pid" "$requests" "${SOAK_CONCURRENCY:-6}" "$check_rss" \
    >"$scratch/soak.out" 2>&1
cat "$scratch/soak.out"
passed=$((passed + $(grep -c '^ok - ' "$scratch/soak.out")))
failed=$((failed + $(grep -c '^not ok - ' "$scratch/soak.out")))
grep -q '^# soak.mjs: every check ran' "$scratch/soak.out"; check "soak.mjs ran to its end" $?

stop_server "$pid" soak; check "headroomd stops on SIGTERM: exit 0, no sanitizer report" $?
finish
