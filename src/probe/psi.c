/*
 * psi.c: pressure stall information: parsing /proc/pressure/memory and a cgroup's
 * memory.pressure, and registering the kernel's PSI triggers. Plain numbers and file descriptors:
 * which stall share means "pressure", and what to do when triggers are refused, is not decided here.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "probe/probe.h"

enum { PSI_BUFFER = 512 };

/* The kernel's bounds for a trigger (kernel/sched/psi.c): a window of 500 ms to 10 s and a
 * threshold within it; unprivileged openers may only use whole multiples of 2 s (Linux 6.5+). */
#define WINDOW_MIN_US UINT64_C(500000)
#define WINDOW_MAX_US UINT64_C(10000000)
#define UNPRIVILEGED_WINDOW_US UINT64_C(2000000)

/* "avg10=0.12 avg60=0.05 avg300=0.00 total=123456", up to the end of the line */
static bool parse_line(const char *cursor, hr_psi_line *out)
{
    bool have10 = false, have60 = false, have300 = false, have_total = false;
    while (*cursor && *cursor != '\n') {
        while (*cursor == ' ') cursor++;
        const char *end = NULL;
        if (strncmp(cursor, "avg10=", 6) == 0) {
            have10 = hr_parse_decimal(cursor + 6, &end, &out->avg10);
        } else if (strncmp(cursor, "avg60=", 6) == 0) {
            have60 = hr_parse_decimal(cursor + 6, &end, &out->avg60);
        } else if (strncmp(cursor, "avg300=", 7) == 0) {
            have300 = hr_parse_decimal(cursor + 7, &end, &out->avg300);
        } else if (strncmp(cursor, "total=", 6) == 0) {
            have_total = hr_parse_u64(cursor + 6, &end, &out->total_us);
        }
        /* an unknown or broken token: skip it; the required ones decide below */
        if (!end || (*end && *end != ' ' && *end != '\n')) {
            end = cursor;
            while (*end && *end != ' ' && *end != '\n') end++;
        }
        cursor = end;
    }
    return have10 && have60 && have300 && have_total;
}

int hr_psi_parse(const char *text, hr_psi *out)
{
    memset(out, 0, sizeof *out);
    bool have_some = false, have_full = false;
    const char *cursor = text;
    while (cursor && *cursor) {
        if (!have_some && strncmp(cursor, "some ", 5) == 0) {
            have_some = parse_line(cursor + 5, &out->some);
        } else if (!have_full && strncmp(cursor, "full ", 5) == 0) {
            have_full = parse_line(cursor + 5, &out->full);
        }
        cursor = strchr(cursor, '\n');
        if (cursor) cursor++;
    }
    if (!have_full) memset(&out->full, 0, sizeof out->full);
    if (!have_some) {
        memset(out, 0, sizeof *out);
        return hr_fail(HR_EFORMAT, "no complete \"some avg10= avg60= avg300= total=\" line");
    }
    out->present = true;
    out->has_full = have_full;
    return HR_OK;
}

int hr_psi_read(const hr_fsroot *root, const char *absolute_path, hr_psi *out)
{
    memset(out, 0, sizeof *out);
    char text[PSI_BUFFER];
    size_t length;
    int rc = hr_fs_read(root, absolute_path, text, sizeof text, &length);
    if (rc != HR_OK) return rc;
    rc = hr_psi_parse(text, out);
    if (rc != HR_OK) {
        char reason[128];
        snprintf(reason, sizeof reason, "%s", hr_last_error());
        return hr_fail(rc, "%s%s: %s", root ? root->prefix : "", absolute_path, reason);
    }
    return HR_OK;
}

int hr_psi_trigger_open(const char *rooted_path, const char *kind, uint64_t stall_us,
                        uint64_t window_us, int *fd_out)
{
    if (!fd_out) return hr_fail(HR_EINVAL, "hr_psi_trigger_open: fd_out is NULL");
    *fd_out = -1;
    if (!rooted_path || !kind || (strcmp(kind, "some") != 0 && strcmp(kind, "full") != 0))
        return hr_fail(HR_EINVAL, "a PSI trigger needs a pressure file and the kind \"some\" or \"full\"");
    if (window_us < WINDOW_MIN_US || window_us > WINDOW_MAX_US)
        return hr_fail(HR_EINVAL, "a PSI trigger window of %" PRIu64 " us is outside the kernel's 500 ms to 10 s",
                       window_us);
    if (stall_us == 0 || stall_us > window_us)
        return hr_fail(HR_EINVAL, "a PSI trigger stall of %" PRIu64 " us must be above 0 and within its window of %" PRIu64 " us",
                       stall_us, window_us);

    char request[64];
    int length = snprintf(request, sizeof request, "%s %" PRIu64 " %" PRIu64, kind, stall_us, window_us);
    int fd = open(rooted_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int error = errno;
        return hr_fail(hr_code_for_errno(error), "cannot open %s for a PSI trigger: %s", rooted_path, strerror(error));
    }
    /* With the terminating NUL, as the kernel's documentation does: the kernel overwrites the last
     * byte written with a NUL, so without one the window would lose its last digit. */
    ssize_t written;
    do {
        written = write(fd, request, (size_t)length + 1);
    } while (written < 0 && errno == EINTR);
    if (written < 0) {
        int error = errno;
        close(fd);
        if (error == EINVAL) {
            /* The file reads fine, but the kernel will not watch it for us: the caller samples. */
            return hr_fail(HR_ENOTSUP,
                           "the kernel refused the PSI trigger \"%s\" on %s: %s%s; sample the file instead",
                           request, rooted_path, strerror(error),
                           window_us % UNPRIVILEGED_WINDOW_US != 0
                               ? " (processes without CAP_SYS_RESOURCE may only use windows that are multiples of 2 s)"
                               : "");
        }
        if (error == EOPNOTSUPP)
            return hr_fail(HR_ENOTSUP, "PSI triggers are not supported on %s: %s; sample the file instead",
                           rooted_path, strerror(error));
        return hr_fail(hr_code_for_errno(error),
                       "cannot register the PSI trigger \"%s\" on %s: %s", request, rooted_path,
                       strerror(error));
    }
    *fd_out = fd;
    return HR_OK;
}
