/*
 * fsroot.c: the seam every /proc and /sys read goes through (sqlite's VFS idea, reduced to a root
 * prefix), so unit tests run the real parsers on fixture trees. It opens, reads and names files;
 * it must not parse them or decide what their absence means.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "probe/probe.h"

enum { LINE_BUFFER = 4096 };

int hr_fsroot_init(hr_fsroot *root, const char *prefix)
{
    if (!root) return hr_fail(HR_EINVAL, "hr_fsroot_init: root is NULL");
    size_t length = prefix ? strlen(prefix) : 0;
    /* "/" and "" both mean the real filesystem; a trailing '/' would double the separator */
    while (length > 0 && prefix[length - 1] == '/') length--;
    if (length >= sizeof root->prefix)
        return hr_fail(HR_EINVAL, "filesystem root is %zu bytes long; at most %zu are supported",
                       length, sizeof root->prefix - 1);
    if (length > 0) memcpy(root->prefix, prefix, length);
    root->prefix[length] = '\0';
    root->prefix_length = length;
    return HR_OK;
}

int hr_fs_path(const hr_fsroot *root, const char *absolute_path, char *buffer, size_t capacity)
{
    size_t prefix_length = root ? root->prefix_length : 0;
    if (!absolute_path || !buffer || capacity == 0 || (prefix_length > 0 && absolute_path[0] != '/'))
        return hr_fail(HR_EINVAL, "hr_fs_path: an absolute path and a buffer are required");
    size_t path_length = strlen(absolute_path);
    if (prefix_length + path_length >= capacity)
        return hr_fail(HR_EINVAL, "path %s%s is too long (%zu bytes; at most %zu)",
                       root ? root->prefix : "", absolute_path, prefix_length + path_length,
                       capacity - 1);
    if (prefix_length > 0) memcpy(buffer, root->prefix, prefix_length);
    memcpy(buffer + prefix_length, absolute_path, path_length + 1);
    return HR_OK;
}

static int open_rooted(const hr_fsroot *root, const char *absolute_path, int *fd_out)
{
    char path[HR_FS_PATH_MAX];
    int rc = hr_fs_path(root, absolute_path, path, sizeof path);
    if (rc != HR_OK) return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int error = errno;
        return hr_fail(hr_code_for_errno(error), "cannot open %s: %s", path, strerror(error));
    }
    *fd_out = fd;
    return HR_OK;
}

/* read() that retries on EINTR, since a signal may arrive while a sample is taken. */
static ssize_t read_retrying(int fd, char *buffer, size_t capacity)
{
    ssize_t n;
    do {
        n = read(fd, buffer, capacity);
    } while (n < 0 && errno == EINTR);
    return n;
}

static int read_failed(const hr_fsroot *root, const char *absolute_path)
{
    int error = errno;
    return hr_fail(hr_code_for_errno(error), "cannot read %s%s: %s", root ? root->prefix : "",
                   absolute_path, strerror(error));
}

int hr_fs_read(const hr_fsroot *root, const char *absolute_path, char *buffer, size_t capacity,
               size_t *length)
{
    if (!buffer || capacity < 2 || !length)
        return hr_fail(HR_EINVAL, "hr_fs_read: a buffer of at least 2 bytes is required");
    *length = 0;
    buffer[0] = '\0';
    int fd;
    int rc = open_rooted(root, absolute_path, &fd);
    if (rc != HR_OK) return rc;

    /* /proc and /sys files are generated on read: loop until end of file, not until one read
     * returns less than asked, which a seq_file may do at any page boundary. */
    size_t used = 0;
    for (;;) {
        ssize_t n = read_retrying(fd, buffer + used, capacity - 1 - used);
        if (n < 0) {
            rc = read_failed(root, absolute_path);
            break;
        }
        if (n == 0) break;
        used += (size_t)n;
        if (used == capacity - 1) {
            char probe;
            n = read_retrying(fd, &probe, 1);
            if (n < 0) {
                rc = read_failed(root, absolute_path);
            } else if (n > 0) {
                rc = hr_fail(HR_EIO, "%s%s is longer than the %zu bytes expected",
                             root ? root->prefix : "", absolute_path, capacity - 1);
            }
            break;
        }
    }
    close(fd);
    buffer[used] = '\0';
    *length = used;
    return rc;
}

int hr_fs_read_lines(const hr_fsroot *root, const char *absolute_path,
                     int (*visit)(char *line, void *user_data), void *user_data)
{
    if (!visit) return hr_fail(HR_EINVAL, "hr_fs_read_lines: a visitor is required");
    int fd;
    int rc = open_rooted(root, absolute_path, &fd);
    if (rc != HR_OK) return rc;

    char buffer[LINE_BUFFER];
    size_t used = 0;
    bool skipping = false;   /* inside a line too long for the buffer: drop it up to its '\n' */
    bool stopped = false;
    while (!stopped) {
        ssize_t n = read_retrying(fd, buffer + used, sizeof buffer - 1 - used);
        if (n < 0) {
            rc = read_failed(root, absolute_path);
            break;
        }
        if (n == 0) {
            /* a last line without its '\n' */
            if (used > 0 && !skipping) {
                buffer[used] = '\0';
                visit(buffer, user_data);
            }
            break;
        }
        used += (size_t)n;
        size_t start = 0;
        char *newline;
        while (!stopped && (newline = memchr(buffer + start, '\n', used - start)) != NULL) {
            *newline = '\0';
            if (!skipping) stopped = visit(buffer + start, user_data) != 0;
            skipping = false;
            start = (size_t)(newline - buffer) + 1;
        }
        memmove(buffer, buffer + start, used - start);
        used -= start;
        if (used == sizeof buffer - 1) {
            skipping = true;
            used = 0;
        }
    }
    close(fd);
    return rc;
}

bool hr_fs_is_absence(int code)
{
    return code == HR_ENOENT || code == HR_EACCES || code == HR_ENOTSUP;
}

void hr_probe_failure_note(hr_probe_failure *failure, int code)
{
    if (code >= 0 || hr_fs_is_absence(code) || failure->code != HR_OK) return;
    failure->code = code;
    snprintf(failure->sentence, sizeof failure->sentence, "%s", hr_last_error());
}

int hr_probe_failure_return(const hr_probe_failure *failure)
{
    if (failure->code == HR_OK) return HR_OK;
    return hr_fail(failure->code, "%s", failure->sentence);
}
