/*
 * darwin.c: macOS memory facts as raw numbers (hw.memsize, host_statistics64's page counts, the
 * kernel's pressure level, the task's resident size). Compiled on Apple only. No arithmetic on
 * the counts here: turning pages into "available bytes" is policy, shared and tested on Linux.
 *
 * NOT YET VERIFIED ON A MAC: written from Apple's documented interfaces (mach/host_info.h,
 * mach/task_info.h, sysctl(3)) on a Linux machine where it cannot be compiled.
 */
#include <mach/mach.h>
#include <mach/mach_error.h>
#include <string.h>
#include <sys/sysctl.h>
#include <sys/types.h>

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
