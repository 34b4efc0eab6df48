/*
 * log.h: where library log lines go. The engine's log is process-wide (llama.cpp has one
 * logger), so the sink is process-wide too: the most recent context that set a log function.
 */
#ifndef HR_CORE_LOG_H
#define HR_CORE_LOG_H

#include "headroom.h"

void hr_log_set_sink(hr_log_fn fn, void *user_data, enum hr_log_level min_level);
/* Removes the sink if it is still `fn`/`user_data` (a context being freed). */
void hr_log_clear_sink(hr_log_fn fn, void *user_data);
void hr_log(enum hr_log_level level, const char *format, ...) __attribute__((format(printf, 2, 3)));

#endif
