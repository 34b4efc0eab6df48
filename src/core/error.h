/*
 * error.h: the calling thread's last error sentence, set where a failure is detected.
 * Library code reports failures by returning hr_fail(code, ...): never by printing.
 */
#ifndef HR_CORE_ERROR_H
#define HR_CORE_ERROR_H

#include "headroom.h"

/* Records the sentence for hr_last_error() and returns `code`, so call sites read
 * `return hr_fail(HR_ENOENT, "model file not found: %s", path);`. */
int hr_fail(int code, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* The HR_E* code for an errno value, for the sentences built around it: absence (ENOENT,
 * ENOTDIR) is HR_ENOENT, refusal (EACCES, EPERM, EROFS) HR_EACCES, ENOMEM HR_ENOMEM, an
 * unsupported operation HR_ENOTSUP, anything else HR_EIO. */
int hr_code_for_errno(int error);

/* Clears the thread's sentence (and its retry hint) at the start of a public call. */
void hr_clear_error(void);

/* Sets what hr_last_retry_after() answers, beside an HR_EFULL failure. */
void hr_set_retry_after(double seconds);

#endif
