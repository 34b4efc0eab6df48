/*
 * darwin.c: macOS memory facts as raw numbers (hw.memsize, host_statistics64's page counts, the
 * kernel's pressure level, the task's resident size). Compiled on Apple only. No arithmetic on
 * the counts here: turning pages into "available bytes" is policy, shared and tested on Linux.
 *
 * NOT YET VERIFIED ON A MAC: written from Apple's documented interfaces (mach/host_info.h,
 * mach/task_info.h, sysctl(3)) on a Linux machine where it cannot be compiled.
 */
#include <dispatch/dispatch.h>
#include <errno.h>
#include <fcntl.h>
#include <mach/mach.h>
#include <mach/mach_error.h>
#include <string.h>
#include <sys/sysctl.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/error.h"
#include "probe/probe.h"

int hr_darwin_read(hr_darwin_memory *out)
{
    if (!out) return hr_fail(HR_EINVAL, "hr_darwin_read: out is NULL");
    memset(out, 0, sizeof *out);

    uint64_t memsize = 0;
    size_t size = sizeof memsize;
    if (sysctlbyname("hw.memsize", &memsize, &size, NULL, 0) != 0)
        return hr_fail(HR_EIO, "sysctl hw.memsize failed");

    /* mach_host_self() adds a reference to the host port on every call: give it back. */
    mach_port_t host = mach_host_self();
    vm_size_t page_size = 0;
    kern_return_t result = host_page_size(host, &page_size);
    vm_statistics64_data_t vm;
    mach_msg_type_number_t count = HOST_VM_INFO64_COUNT;
    if (result == KERN_SUCCESS)
        result = host_statistics64(host, HOST_VM_INFO64, (host_info64_t)&vm, &count);
    mach_port_deallocate(mach_task_self(), host);
    if (result != KERN_SUCCESS)
        return hr_fail(HR_EIO, "host_statistics64(HOST_VM_INFO64) failed: %s", mach_error_string(result));

    /* Present since macOS 10.9; 0 (unknown) where the sysctl is missing. */
    int pressure_level = 0;
    size = sizeof pressure_level;
    if (sysctlbyname("kern.memorystatus_vm_pressure_level", &pressure_level, &size, NULL, 0) != 0)
        pressure_level = 0;

    out->page_size = (uint64_t)page_size;
    out->memsize = memsize;
    out->free_pages = vm.free_count;
    out->active_pages = vm.active_count;
    out->inactive_pages = vm.inactive_count;
    out->speculative_pages = vm.speculative_count;
    out->wired_pages = vm.wire_count;
    out->purgeable_pages = vm.purgeable_count;
    out->external_pages = vm.external_page_count;
    out->compressor_pages = vm.compressor_page_count;
    out->swapins = vm.swapins;
    out->swapouts = vm.swapouts;
    out->pressure_level = pressure_level;
    out->present = true;
    return HR_OK;
}

int hr_darwin_read_self(hr_process_memory *out)
{
    if (!out) return hr_fail(HR_EINVAL, "hr_darwin_read_self: out is NULL");
    memset(out, 0, sizeof *out);
    mach_task_basic_info_data_t info;
    mach_msg_type_number_t count = MACH_TASK_BASIC_INFO_COUNT;
    kern_return_t result = task_info(mach_task_self(), MACH_TASK_BASIC_INFO, (task_info_t)&info, &count);
    if (result != KERN_SUCCESS)
        return hr_fail(HR_EIO, "task_info(MACH_TASK_BASIC_INFO) failed: %s", mach_error_string(result));
    out->rss = info.resident_size;
    out->peak_rss = info.resident_size_max;
    out->present = true;
    return HR_OK;
}

/* The pipe the dispatch source's handler writes to: the monitor polls the other end, so macOS's
 * own notification wakes it the way an eventfd does on Linux. */
static int pressure_pipe[2] = { -1, -1 };

int hr_darwin_pressure_source_open(int *fd_out)
{
    if (!fd_out) return hr_fail(HR_EINVAL, "hr_darwin_pressure_source_open: fd_out is NULL");
    if (pressure_pipe[0] < 0) {
        if (pipe(pressure_pipe) != 0)
            return hr_fail(HR_EIO, "cannot create a pipe for the memory-pressure source: %s", strerror(errno));
        for (int i = 0; i < 2; i++) {
            fcntl(pressure_pipe[i], F_SETFL, fcntl(pressure_pipe[i], F_GETFL) | O_NONBLOCK);
            fcntl(pressure_pipe[i], F_SETFD, FD_CLOEXEC);
        }
        dispatch_source_t source = dispatch_source_create(
            DISPATCH_SOURCE_TYPE_MEMORYPRESSURE, 0,
            DISPATCH_MEMORYPRESSURE_WARN | DISPATCH_MEMORYPRESSURE_CRITICAL,
            dispatch_get_global_queue(QOS_CLASS_UTILITY, 0));
        if (!source) return hr_fail(HR_ENOTSUP, "this macOS offers no memory-pressure dispatch source");
        dispatch_source_set_event_handler(source, ^{
            char byte = 1;
            (void)write(pressure_pipe[1], &byte, 1);   /* a full pipe already says "look" */
        });
        dispatch_resume(source);
    }
    *fd_out = dup(pressure_pipe[0]);
    if (*fd_out < 0) return hr_fail(HR_EIO, "cannot duplicate the memory-pressure pipe: %s", strerror(errno));
    return HR_OK;
}
