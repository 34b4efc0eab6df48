/*
 * self.c: the process's own memory: resident size, its peak, file-backed and anonymous parts
 * (/proc/self/status) and major faults (/proc/self/stat). Numbers only; whether the weights are
 * being paged in and out is the guard's call.
 */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "probe/probe.h"

enum { STATUS_BUFFER = 4096, STAT_BUFFER = 1024, MAJFLT_FIELD = 12 };

int hr_self_parse_stat(const char *text, uint64_t *major_faults)
{
    /* "pid (comm) state ppid ...": comm is the program's name as set, which may hold spaces and
     * ')' itself ("a) (b"), so the fields restart after the last ')'; field 3 is the first. */
    const char *cursor = strrchr(text, ')');
    if (!cursor) return hr_fail(HR_EFORMAT, "no \"(comm)\" field");
    cursor++;
    for (int field = 3; field <= MAJFLT_FIELD; field++) {
        if (*cursor != ' ') return hr_fail(HR_EFORMAT, "fewer than %d fields", MAJFLT_FIELD);
        while (*cursor == ' ') cursor++;
        if (field == MAJFLT_FIELD) {
            const char *end;
            uint64_t value;
            if (!hr_parse_u64(cursor, &end, &value) || (*end != ' ' && *end != '\n' && *end))
                return hr_fail(HR_EFORMAT, "field %d (majflt) is not a number", MAJFLT_FIELD);
            *major_faults = value;
            return HR_OK;
        }
        const char *end = strchr(cursor, ' ');
        if (!end) return hr_fail(HR_EFORMAT, "fewer than %d fields", MAJFLT_FIELD);
        cursor = end;
    }
    return hr_fail(HR_EFORMAT, "fewer than %d fields", MAJFLT_FIELD);
}

int hr_self_read(const hr_fsroot *root, hr_process_memory *out)
{
    memset(out, 0, sizeof *out);
    char text[STATUS_BUFFER];
    size_t length;
    int rc = hr_fs_read(root, "/proc/self/status", text, sizeof text, &length);
    if (rc != HR_OK) return rc;
    uint64_t kilobytes[4] = {0};
    hr_key_u64 keys[] = {{"VmRSS:", &kilobytes[0], false},
                         {"VmHWM:", &kilobytes[1], false},
                         {"RssFile:", &kilobytes[2], false},
                         {"RssAnon:", &kilobytes[3], false}};
    hr_scan_keys(text, keys, 4);
    if (!keys[0].found || !keys[1].found)
        return hr_fail(HR_EFORMAT, "%s/proc/self/status has no readable VmRSS and VmHWM lines",
                       root ? root->prefix : "");
    uint64_t *fields[4] = {&out->rss, &out->peak_rss, &out->rss_file, &out->rss_anon};
    for (int i = 0; i < 4; i++) {
        if (kilobytes[i] > UINT64_MAX / 1024)
            return hr_fail(HR_EFORMAT, "%s/proc/self/status: %s %llu kB does not fit in 64 bits of bytes",
                           root ? root->prefix : "", keys[i].key, (unsigned long long)kilobytes[i]);
        *fields[i] = kilobytes[i] * 1024;
    }
    out->present = true;

    /* The status numbers stand on their own; a broken stat only loses the fault count. */
    char stat_text[STAT_BUFFER];
    rc = hr_fs_read(root, "/proc/self/stat", stat_text, sizeof stat_text, &length);
    if (rc != HR_OK) return rc;
    rc = hr_self_parse_stat(stat_text, &out->major_faults);
    if (rc != HR_OK) {
        char reason[128];
        snprintf(reason, sizeof reason, "%s", hr_last_error());
        return hr_fail(rc, "%s/proc/self/stat: %s", root ? root->prefix : "", reason);
    }
    return HR_OK;
}
