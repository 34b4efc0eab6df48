#!/usr/bin/env bash
# monitor_cost.sh: CPU time of headroom's pressure monitor at idle, against the same program with
# monitor = false and a naive /proc/meminfo poller (every 250 ms), run side by side for the same
# wall time (bench/README.md). Builds nothing: build first
# (cmake --build build --target bench_monitor_cost).
#
# usage: bench/monitor_cost.sh [BUILD_DIR] [SECONDS]      (default: build, 60)
# env:   DURATION (seconds, when not given as the second argument)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
seconds=${2:-${DURATION:-60}}
bench=$build/bench/bench_monitor_cost
[[ -x $bench ]] || { echo "bench: build first (cmake --build $build --target bench_monitor_cost)" >&2; exit 1; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r), $(date -u +%Y-%m-%d)"
exec "$bench" --seconds "$seconds"
