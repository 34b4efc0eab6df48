#!/usr/bin/env bash
# snapshot_resume.sh BUILD_DIR: what a KV snapshot saves a resumed conversation, on the generated
# 1b model (PRESET, TYPE, REPEATS, THREADS to change it). One run: prints, asserts nothing.
set -eu
cd "$(dirname "$0")/.."
source bench/common.sh
build=${1:-build}
model=$(cached_model "$build/tools/mkmodel/headroom-mkmodel" "${PRESET:-1b}" "${TYPE:-q8_0}")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$build/bench/bench_snapshot_resume" "$model" "$scratch" "${REPEATS:-40}" "${THREADS:-2}"
