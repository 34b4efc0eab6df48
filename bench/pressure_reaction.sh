#!/usr/bin/env bash
# pressure_reaction.sh: time from a hog pushing a 256 MiB memory cgroup into stall to headroom's
# pressure event, against the original design's 5 s poll on "used percent > 85%", in the same
# trials (bench/README.md). Builds nothing: build first
# (cmake --build build --target bench_pressure_reaction).
#
# usage: bench/pressure_reaction.sh [BUILD_DIR] [bench_pressure_reaction options...]
#        (--trials 7, --limit-mib 256, --hog-mib 250, --file-mib 32, --hold 10, --verbose, ...)
# Needs root and a writable cgroup memory controller; otherwise prints "skipped: <why>", exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
bench=$build/bench/bench_pressure_reaction
[[ -x $bench ]] || { echo "bench: build first (cmake --build $build --target bench_pressure_reaction)" >&2; exit 1; }

# A benchmark process the kernel killed outright (SIGKILL) cannot remove its cgroup; remove
# empty leftovers of earlier runs (a cgroup with tasks in it belongs to a run still going).
remove_leftovers() {
    local dir
    for dir in /sys/fs/cgroup/memory/*/headroom-bench-* /sys/fs/cgroup/memory/*/*/headroom-bench-* \
               /sys/fs/cgroup/memory/headroom-bench-* /sys/fs/cgroup/*/headroom-bench-* \
               /sys/fs/cgroup/*/*/headroom-bench-* /sys/fs/cgroup/headroom-bench-*; do
        [[ -d $dir ]] || continue
        [[ -s $dir/cgroup.procs ]] && continue
        rmdir "$dir" 2>/dev/null && echo "bench: removed the leftover cgroup $dir" >&2 || true
    done
}
[[ $(id -u) -eq 0 ]] && remove_leftovers

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r), $(date -u +%Y-%m-%d)"
status=0
"$bench" "$@" || status=$?
[[ $(id -u) -eq 0 ]] && remove_leftovers
exit $status
