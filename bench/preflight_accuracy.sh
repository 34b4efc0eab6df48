#!/usr/bin/env bash
# preflight_accuracy.sh: the preflight's estimate against the resident memory measured after a
# load whose context is full, per generated model, context and weight type, in a fresh process
# per case: the table of tests/integration/test_preflight.c, here with the 1b preset added.
#   bench/preflight_accuracy.sh [BUILD_DIR]        (PRESETS="tiny demo small 1b" to change)
# The 1b cases generate 2.2 GB (F16) and 0.9 GB (Q8_0) of model once, in the build's scratch
# directory, and fill a 4096-token context on two cores: a few minutes in all.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
cmake --build "$build" --target test_preflight_accuracy headroom-mkmodel >/dev/null
scratch=$build/tests/scratch/preflight
mkdir -p "$scratch"
HEADROOM_PREFLIGHT_PRESETS=${PRESETS:-tiny demo small 1b} \
    "$build/tests/test_preflight_accuracy" "$build/tools/mkmodel/headroom-mkmodel" "$scratch" 2>&1 |
    grep -vE '^\[ *(RUN|OK|PASSED|==========) '
