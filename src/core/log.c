/*
 * log.c: the process-wide log sink (see log.h). Lines are formatted here and handed to the
 * application's function; nothing is printed by the library itself.
 */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
/* guarded by sink_lock: */
static hr_log_fn sink_fn;
static void *sink_user_data;
static enum hr_log_level sink_level = HR_LOG_WARN;

void hr_log_set_sink(hr_log_fn fn, void *user_data, enum hr_log_level min_level)
{
    pthread_mutex_lock(&sink_lock);
    sink_fn = fn;
    sink_user_data = user_data;
    sink_level = min_level;
    pthread_mutex_unlock(&sink_lock);
}

void hr_log_clear_sink(hr_log_fn fn, void *user_data)
{
    pthread_mutex_lock(&sink_lock);
    if (sink_fn == fn && sink_user_data == user_data) sink_fn = NULL;
    pthread_mutex_unlock(&sink_lock);
}

void hr_log(enum hr_log_level level, const char *format, ...)
{
    pthread_mutex_lock(&sink_lock);
    hr_log_fn fn = sink_fn;
    void *user_data = sink_user_data;
    int wanted = fn && level >= sink_level;
    pthread_mutex_unlock(&sink_lock);
    if (!wanted) return;

    char line[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof line, format, args);
    va_end(args);
    fn(level, line, user_data);
}
