/*
 * error.c: error names and the per-thread error sentence behind hr_last_error().
 * A sentence is per thread so that concurrent calls on different threads never mix messages.
 */
#include "core/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[1024];
static _Thread_local double last_retry_after;

int hr_fail(int code, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(last_error, sizeof last_error, format, args);
    va_end(args);
    return code;
}

int hr_code_for_errno(int error)
{
    switch (error) {
    case ENOENT:
    case ENOTDIR:
        return HR_ENOENT;
    case EACCES:
    case EPERM:
    case EROFS:
        return HR_EACCES;
    case ENOMEM:
        return HR_ENOMEM;
    case EOPNOTSUPP:
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
    case ENOTSUP:
#endif
        return HR_ENOTSUP;
    default:
        return HR_EIO;
    }
}

void hr_clear_error(void)
{
    last_error[0] = '\0';
    last_retry_after = 0;
}

void hr_set_retry_after(double seconds)
{
    last_retry_after = seconds;
}

HR_API const char *hr_last_error(void)
{
    return last_error;
}

HR_API double hr_last_retry_after(void)
{
    return last_retry_after;
}

HR_API const char *hr_strerror(int code)
{
    switch (code) {
    case HR_OK: return "HR_OK";
    case HR_EINVAL: return "HR_EINVAL";
    case HR_ENOMEM: return "HR_ENOMEM";
    case HR_ENOENT: return "HR_ENOENT";
    case HR_EACCES: return "HR_EACCES";
    case HR_EIO: return "HR_EIO";
    case HR_EFORMAT: return "HR_EFORMAT";
    case HR_EENGINE: return "HR_EENGINE";
    case HR_ECANCELLED: return "HR_ECANCELLED";
    case HR_ECONTEXT: return "HR_ECONTEXT";
    case HR_ENOTSUP: return "HR_ENOTSUP";
    case HR_EBUSY: return "HR_EBUSY";
    case HR_EAGAIN: return "HR_EAGAIN";
    case HR_EOF: return "HR_EOF";
    case HR_EMEMORY: return "HR_EMEMORY";
    case HR_EFULL: return "HR_EFULL";
    }
    return "HR_E(unknown)";
}
