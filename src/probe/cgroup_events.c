/*
 * cgroup_events.c: cgroup v1 memory.pressure_level notifications (an eventfd registered through
 * cgroup.event_control). It hands back a file descriptor to wait on; it must not wait on it, and
 * what a "medium" event should lead to is policy's call. Linux only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/error.h"
#include "probe/probe.h"

/* EINVAL from cgroup.event_control means the kernel does not offer the event here. */
static int code_for(int error)
{
    return error == EINVAL ? HR_ENOTSUP : hr_code_for_errno(error);
}

int hr_cgroup_pressure_level_open(const char *rooted_directory, const char *level, int *fd_out)
{
    if (!fd_out) return hr_fail(HR_EINVAL, "hr_cgroup_pressure_level_open: fd_out is NULL");
    *fd_out = -1;
    /* The kernel also takes ",hierarchy" and ",local" modes; the default (events from this
     * group and, when no descendant took them, its descendants) is what the monitor wants. */
    if (!rooted_directory || !level ||
        (strcmp(level, "low") != 0 && strcmp(level, "medium") != 0 && strcmp(level, "critical") != 0))
        return hr_fail(HR_EINVAL, "a memory.pressure_level notification needs a cgroup directory and "
                                  "the level \"low\", \"medium\" or \"critical\"");

    char pressure_path[HR_FS_PATH_MAX], control_path[HR_FS_PATH_MAX];
    int written = snprintf(pressure_path, sizeof pressure_path, "%s/memory.pressure_level", rooted_directory);
    int written2 = snprintf(control_path, sizeof control_path, "%s/cgroup.event_control", rooted_directory);
    if (written < 0 || (size_t)written >= sizeof pressure_path || written2 < 0 ||
        (size_t)written2 >= sizeof control_path)
        return hr_fail(HR_EINVAL, "cgroup directory %s is too long", rooted_directory);

    int pressure_fd = open(pressure_path, O_RDONLY | O_CLOEXEC);
    if (pressure_fd < 0) {
        int error = errno;
        return hr_fail(code_for(error), "cannot open %s: %s", pressure_path, strerror(error));
    }
    int control_fd = open(control_path, O_WRONLY | O_CLOEXEC);
    if (control_fd < 0) {
        int error = errno;
        close(pressure_fd);
        return hr_fail(code_for(error), "cannot open %s for writing: %s", control_path, strerror(error));
    }
    int event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd < 0) {
        int error = errno;
        close(control_fd);
        close(pressure_fd);
        return hr_fail(HR_EIO, "cannot create an eventfd: %s", strerror(error));
    }

    char request[64];
    int length = snprintf(request, sizeof request, "%d %d %s", event_fd, pressure_fd, level);
    ssize_t sent;
    do {
        sent = write(control_fd, request, (size_t)length);
    } while (sent < 0 && errno == EINTR);
    int error = errno;
    /* The kernel holds its own references once registered: the pressure file and the control
     * file may be closed; the registration lives as long as the eventfd. */
    close(control_fd);
    close(pressure_fd);
    if (sent < 0) {
        close(event_fd);
        return hr_fail(code_for(error), "cannot register \"%s\" pressure events in %s: %s", level,
                       control_path, strerror(error));
    }
    *fd_out = event_fd;
    return HR_OK;
}
