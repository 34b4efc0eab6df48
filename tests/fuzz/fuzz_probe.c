/*
 * fuzz_probe.c: the /proc and /sys parsers (src/probe/) on any file contents, through the fsroot
 * seam the unit tests use: the input's first byte picks a layout (cgroup v1 or v2, a container's
 * nested level or the root), the rest is cut at each 0x01 byte into the contents of the files
 * of that layout, in a fixed order (a part that is missing leaves its file absent, so absence is
 * fuzzed too). Two samples are taken, the effective memory and the signals between them
 * computed and classified. Checked: a probe that fails says why (a sentence); the
 * classification's level is one of the three; effective available memory never exceeds what
 * its scope holds; the free share is a percentage.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "policy/pressure.h"
#include "probe/probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const V2_FILES[] = {
    "proc/meminfo", "proc/vmstat", "proc/pressure/memory", "proc/self/cgroup", "proc/self/mountinfo",
    "proc/self/status", "proc/self/stat", "sys/fs/cgroup/app/memory.max", "sys/fs/cgroup/app/memory.current",
    "sys/fs/cgroup/app/memory.stat", "sys/fs/cgroup/app/memory.high", "sys/fs/cgroup/app/memory.events",
    "sys/fs/cgroup/app/memory.pressure", "sys/fs/cgroup/app/memory.swap.current", "sys/fs/cgroup/memory.max",
    "sys/fs/cgroup/memory.current", "sys/fs/cgroup/memory.stat",
};
static const char *const V1_FILES[] = {
    "proc/meminfo", "proc/vmstat", "proc/pressure/memory", "proc/self/cgroup", "proc/self/mountinfo",
    "proc/self/status", "proc/self/stat", "sys/fs/cgroup/memory/app/memory.limit_in_bytes",
    "sys/fs/cgroup/memory/app/memory.usage_in_bytes", "sys/fs/cgroup/memory/app/memory.stat",
    "sys/fs/cgroup/memory/app/memory.oom_control", "sys/fs/cgroup/memory/app/memory.failcnt",
    "sys/fs/cgroup/memory/memory.limit_in_bytes", "sys/fs/cgroup/memory/memory.usage_in_bytes",
    "sys/fs/cgroup/memory/memory.stat",
};

static char root[64];

static void make_parents(const char *path)
{
    char buffer[512];
    snprintf(buffer, sizeof buffer, "%s", path);
    for (char *slash = strchr(buffer + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(buffer, 0700) != 0 && errno != EEXIST) abort();
        *slash = '/';
    }
}

static void put(const char *name, const uint8_t *bytes, size_t length, bool present)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, name);
    if (!present) {
        unlink(path);
        return;
    }
    make_parents(path);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (length && fwrite(bytes, 1, length, f) != length) abort();
    fclose(f);
}

static void check_memory(const hr_effective_memory *memory)
{
    for (int i = 0; i < memory->n_scopes; i++)
        if (memory->scopes[i].total && memory->scopes[i].available > memory->scopes[i].total) abort();
    if (memory->known && memory->binding.total && memory->binding.available > memory->binding.total) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!root[0]) {
        snprintf(root, sizeof root, "%s/headroom-fuzz-probe-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(root)) abort();
    }
    if (size == 0) return 0;
    bool v1 = data[0] & 1;
    const char *const *files = v1 ? V1_FILES : V2_FILES;
    size_t n_files = v1 ? sizeof V1_FILES / sizeof V1_FILES[0] : sizeof V2_FILES / sizeof V2_FILES[0];
    const uint8_t *at = data + 1, *end = data + size;
    for (size_t i = 0; i < n_files; i++) {
        const uint8_t *cut = at < end ? memchr(at, 0x01, (size_t)(end - at)) : NULL;
        size_t length = at < end ? (size_t)((cut ? cut : end) - at) : 0;
        put(files[i], at, length, at < end);
        at = cut ? cut + 1 : end;
    }
    /* the other layout's files must not linger from an earlier input */
    const char *const *others = v1 ? V2_FILES : V1_FILES;
    size_t n_others = v1 ? sizeof V2_FILES / sizeof V2_FILES[0] : sizeof V1_FILES / sizeof V1_FILES[0];
    for (size_t i = 7; i < n_others; i++) put(others[i], NULL, 0, false);

    hr_fsroot fs;
    if (hr_fsroot_init(&fs, root) != HR_OK) abort();
    hr_sample *first = calloc(1, sizeof *first), *second = calloc(1, sizeof *second);
    if (!first || !second) abort();
    int rc = hr_probe_sample(&fs, 1.0, first);
    if (rc != HR_OK && !hr_last_error()[0]) abort();   /* a failure always says what */
    hr_clear_error();
    rc = hr_probe_sample(&fs, 2.0, second);
    if (rc != HR_OK && !hr_last_error()[0]) abort();
    hr_clear_error();

    hr_effective_memory memory;
    hr_effective_memory_compute(second, &memory);
    check_memory(&memory);
    hr_effective_memory_reusing(second, (uint64_t)size << 20, &memory);
    check_memory(&memory);
    hr_pressure_signals signals;
    hr_pressure_signals_compute(first, second, &signals);
    if (!(signals.free_percent >= 0 && signals.free_percent <= 100)) abort();
    hr_pressure_thresholds thresholds = hr_pressure_thresholds_default();
    hr_classifier_state state = { 0 };
    hr_classification classification;
    hr_classify(&signals, &thresholds, &state, second->timestamp, &classification);
    if (classification.level < HR_PRESSURE_NORMAL || classification.level > HR_PRESSURE_CRITICAL) abort();
    free(first);
    free(second);
    return 0;
}
