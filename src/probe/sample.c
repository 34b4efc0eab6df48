/*
 * sample.c: one full memory sample: every source of this platform read once into
 * hr_sample. It gathers and must not judge: a missing source is present = false, and
 * what any number means is policy's call. Called every sampling tick: the tick path
 * (hr_probe_sample_with) allocates nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "probe/probe.h"

#if defined(__linux__)

static void read_cgroups(const hr_fsroot *root, hr_probe_state *state, hr_sample *out, hr_probe_failure *failure)
{
    /* A process may be moved between cgroups, so the location is found again now and then;
     * parsing mountinfo on every tick was a tenth of the monitor's idle cost. */
    if (state->located == 0 || out->timestamp - state->located_at >= HR_PROBE_RELOCATE_SECONDS ||
        out->timestamp < state->located_at) {
        int rc = hr_cgroup_locate(root, &state->location);
        state->located = rc == HR_OK ? 1 : -1;
        state->located_at = out->timestamp;
        hr_probe_failure_note(failure, rc);
    }
    if (state->located != 1) return;
    const hr_cgroup_location *location_p = &state->location;
    int rc = hr_cgroup_read_levels(location_p, out->cgroups, HR_MAX_CGROUP_LEVELS, &out->n_cgroups);
    if (rc != HR_OK) state->located = 0;   /* moved or removed: find it again next time */
    hr_probe_failure_note(failure, rc);
    /* PSI per cgroup lives in the cgroup2 tree whichever hierarchy holds the memory controller */
    if (location_p->unified_directory[0]) {
        char pressure[HR_FS_PATH_MAX];
        int written = snprintf(pressure, sizeof pressure, "%s/memory.pressure", location_p->unified_directory);
        if (written > 0 && (size_t)written < sizeof pressure)
            hr_probe_failure_note(failure, hr_psi_read(NULL, pressure, &out->psi_cgroup));
    }
}

static void sample_platform(const hr_fsroot *root, hr_probe_state *state, hr_sample *out,
                            hr_probe_failure *failure)
{
    hr_probe_failure_note(failure, hr_meminfo_read(root, &out->host));
    hr_probe_failure_note(failure, hr_vmstat_read(root, &out->host));
    read_cgroups(root, state, out, failure);
    hr_probe_failure_note(failure, hr_psi_read(root, "/proc/pressure/memory", &out->psi_host));
    hr_probe_failure_note(failure, hr_self_read(root, &out->self));
    /* a recorded tree describes no GPU: reading this machine's into it would mix two machines */
    if (!root || root->prefix_length == 0) hr_probe_failure_note(failure, hr_nvml_read(out));
}

#elif defined(__APPLE__)

static void sample_platform(const hr_fsroot *root, hr_probe_state *state, hr_sample *out,
                            hr_probe_failure *failure)
{
    (void)state;
    (void)root;   /* macOS has no /proc: its facts come from Mach calls and sysctls */
    hr_probe_failure_note(failure, hr_darwin_read(&out->darwin));
    hr_probe_failure_note(failure, hr_darwin_read_self(&out->self));
}

#else

static void sample_platform(const hr_fsroot *root, hr_probe_state *state, hr_sample *out,
                            hr_probe_failure *failure)
{
    (void)root;
    (void)state;
    (void)out;
    (void)failure;   /* no source on this platform yet: every part stays absent */
}

#endif

int hr_probe_sample_with(const hr_fsroot *root, hr_probe_state *state, double timestamp, hr_sample *out)
{
    if (!out || !state) return hr_fail(HR_EINVAL, "hr_probe_sample: out and state are required");
    memset(out, 0, sizeof *out);
    out->timestamp = timestamp;
    hr_probe_failure failure = {0};
    sample_platform(root, state, out, &failure);
    return hr_probe_failure_return(&failure);
}

int hr_probe_sample(const hr_fsroot *root, double timestamp, hr_sample *out)
{
    /* one-off: a fresh location (the state is large, so it is not on the stack) */
    hr_probe_state *state = calloc(1, sizeof *state);
    if (!state) return hr_fail(HR_ENOMEM, "out of memory sampling memory");
    int rc = hr_probe_sample_with(root, state, timestamp, out);
    free(state);
    return rc;
}
