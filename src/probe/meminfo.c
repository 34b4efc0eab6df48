/*
 * meminfo.c: the host's memory from /proc/meminfo (bytes) and its swap and fault counters from
 * /proc/vmstat. Plain numbers only: what counts as "available" for a model is policy's call.
 */
#include <string.h>

#include "core/error.h"
#include "probe/probe.h"

enum { MEMINFO_BUFFER = 8192 };

static bool kilobytes_to_bytes(uint64_t kilobytes, uint64_t *bytes)
{
    if (kilobytes > UINT64_MAX / 1024) return false;
    *bytes = kilobytes * 1024;
    return true;
}

int hr_meminfo_read(const hr_fsroot *root, hr_host_memory *out)
{
    out->present = false;
    char text[MEMINFO_BUFFER];
    size_t length;
    int rc = hr_fs_read(root, "/proc/meminfo", text, sizeof text, &length);
    if (rc != HR_OK) return rc;

    uint64_t kilobytes[8] = {0};
    hr_key_u64 keys[] = {
        {"MemTotal:", &kilobytes[0], false},  {"MemFree:", &kilobytes[1], false},
        {"MemAvailable:", &kilobytes[2], false}, {"Cached:", &kilobytes[3], false},
        {"Buffers:", &kilobytes[4], false},   {"Shmem:", &kilobytes[5], false},
        {"SwapTotal:", &kilobytes[6], false}, {"SwapFree:", &kilobytes[7], false},
    };
    hr_scan_keys(text, keys, (int)(sizeof keys / sizeof keys[0]));
    /* Without these three the rest is meaningless, and a zero MemAvailable would read as a
     * machine out of memory (kernels before 3.14 lack it; they are not supported). */
    for (int i = 0; i < 3; i++)
        if (!keys[i].found)
            return hr_fail(HR_EFORMAT, "%s/proc/meminfo has no readable %s line",
                           root ? root->prefix : "", keys[i].key);

    uint64_t *fields[8] = {&out->total,   &out->free,  &out->available,  &out->cached,
                           &out->buffers, &out->shmem, &out->swap_total, &out->swap_free};
    for (int i = 0; i < 8; i++) {
        if (!kilobytes_to_bytes(kilobytes[i], fields[i]))
            return hr_fail(HR_EFORMAT, "%s/proc/meminfo: %s %llu kB does not fit in 64 bits of bytes",
                           root ? root->prefix : "", keys[i].key,
                           (unsigned long long)kilobytes[i]);
    }
    out->present = true;
    return HR_OK;
}

struct vmstat_scan {
    hr_key_u64 keys[3];
    int found;
};

static int scan_vmstat_line(char *line, void *user_data)
{
    struct vmstat_scan *scan = user_data;
    scan->found += hr_scan_key_line(line, scan->keys, 3);
    return scan->found == 3;   /* stop reading: the rest of the file (~150 lines) is not wanted */
}

int hr_vmstat_read(const hr_fsroot *root, hr_host_memory *out)
{
    out->vmstat_present = false;
    uint64_t pswpin = 0, pswpout = 0, pgmajfault = 0;
    struct vmstat_scan scan = {
        .keys = {{"pswpin", &pswpin, false},
                 {"pswpout", &pswpout, false},
                 {"pgmajfault", &pgmajfault, false}},
        .found = 0,
    };
    int rc = hr_fs_read_lines(root, "/proc/vmstat", scan_vmstat_line, &scan);
    if (rc != HR_OK) return rc;
    /* a kernel built without VM event counters has none of them: absent, not broken */
    if (scan.found == 0)
        return hr_fail(HR_ENOENT, "%s/proc/vmstat has no event counters",
                       root ? root->prefix : "");
    for (int i = 0; i < 3; i++)
        if (!scan.keys[i].found)
            return hr_fail(HR_EFORMAT, "%s/proc/vmstat has no readable %s line",
                           root ? root->prefix : "", scan.keys[i].key);
    out->pswpin = pswpin;
    out->pswpout = pswpout;
    out->pgmajfault = pgmajfault;
    out->vmstat_present = true;
    return HR_OK;
}
