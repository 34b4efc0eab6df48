/*
 * sample.c: one full memory sample: every source of this platform read once into
 * hr_sample. It gathers and must not judge: a missing source is present = false, and
 * what any number means is policy's call. Called every sampling tick, so no allocation here.
 */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "probe/probe.h"

#if defined(__linux__)

static void read_cgroups(const hr_fsroot *root, hr_sample *out, hr_probe_failure *failure)
{
    /* The location is found again on every sample: the process may be moved between cgroups, and
     * both files are short. */
    hr_cgroup_location location;
    int rc = hr_cgroup_locate(root, &location);
    hr_probe_failure_note(failure, rc);
    if (rc != HR_OK) return;
    rc = hr_cgroup_read_levels(&location, out->cgroups, HR_MAX_CGROUP_LEVELS, &out->n_cgroups);
    hr_probe_failure_note(failure, rc);
    /* PSI per cgroup lives in the cgroup2 tree whichever hierarchy holds the memory controller */
    if (location.unified_directory[0]) {
        char pressure[HR_FS_PATH_MAX];
        int written = snprintf(pressure, sizeof pressure, "%s/memory.pressure", location.unified_directory);
        if (written > 0 && (size_t)written < sizeof pressure)
            hr_probe_failure_note(failure, hr_psi_read(NULL, pressure, &out->psi_cgroup));
    }
}

static void sample_platform(const hr_fsroot *root, hr_sample *out, hr_probe_failure *failure)
{
    hr_probe_failure_note(failure, hr_meminfo_read(root, &out->host));
    hr_probe_failure_note(failure, hr_vmstat_read(root, &out->host));
    read_cgroups(root, out, failure);
    hr_probe_failure_note(failure, hr_psi_read(root, "/proc/pressure/memory", &out->psi_host));
    hr_probe_failure_note(failure, hr_self_read(root, &out->self));
    /* a recorded tree describes no GPU: reading this machine's into it would mix two machines */
    if (!root || root->prefix_length == 0) hr_probe_failure_note(failure, hr_nvml_read(out));
}

#elif defined(__APPLE__)

static void sample_platform(const hr_fsroot *root, hr_sample *out, hr_probe_failure *failure)
{
    (void)root;   /* macOS has no /proc: its facts come from Mach calls and sysctls */
    hr_probe_failure_note(failure, hr_darwin_read(&out->darwin));
    hr_probe_failure_note(failure, hr_darwin_read_self(&out->self));
}

#else

static void sample_platform(const hr_fsroot *root, hr_sample *out, hr_probe_failure *failure)
{
    (void)root;
    (void)out;
    (void)failure;   /* no source on this platform yet: every part stays absent */
}

#endif

int hr_probe_sample(const hr_fsroot *root, double timestamp, hr_sample *out)
{
    if (!out) return hr_fail(HR_EINVAL, "hr_probe_sample: out is NULL");
    memset(out, 0, sizeof *out);
    out->timestamp = timestamp;
    hr_probe_failure failure = {0};
    sample_platform(root, out, &failure);
    return hr_probe_failure_return(&failure);
}
