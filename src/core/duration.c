/*
 * duration.c: hr_keep_alive_parse, durations in Ollama's convention (seconds, or Go's "5m",
 * "1h30m", "300ms"; negative or "never": for ever), refusing what is not finite or longer than
 * HR_KEEP_ALIVE_MAX, so no deadline computed from one can overflow. Pure: no clock, no state.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "headroom.h"

/* Ollama's keep_alive: a number of seconds, or a Go duration ("5m", "1h30m", "300ms"); any
 * negative value means for ever. */
HR_API int hr_keep_alive_parse(const char *text, double *seconds)
{
    hr_clear_error();
    if (!text || !seconds) return hr_fail(HR_EINVAL, "hr_keep_alive_parse: text and seconds are required");
    if (strcmp(text, "never") == 0 || strcmp(text, "forever") == 0) {
        *seconds = -1;
        return HR_OK;
    }
    const char *p = text;
    bool negative = *p == '-';
    if (*p == '-' || *p == '+') p++;
    double total = 0;
    bool any = false, bad = false;
    while (*p && !bad) {
        char *end;
        double value = strtod(p, &end);
        if (end == p || !isfinite(value) || value < 0) break;
        p = end;
        double unit = 1;
        if (strncmp(p, "ms", 2) == 0) { unit = 0.001; p += 2; }
        else if (*p == 's') { p++; }
        else if (*p == 'm') { unit = 60; p++; }
        else if (*p == 'h') { unit = 3600; p++; }
        else if (*p != '\0' || any) { bad = true; break; }   /* a bare number only on its own */
        total += value * unit;
        any = true;
    }
    if (!any || bad || *p != '\0')
        return hr_fail(HR_EINVAL, "keep_alive \"%s\" is not a duration: use seconds (300), a duration "
                       "(30s, 5m, 1h, 1h30m), 0 to unload after the request, or -1 / never", text);
    /* "1e300h" is made of finite parts whose sum is not: refused, like "inf" itself */
    if (!isfinite(total) || (!negative && total > HR_KEEP_ALIVE_MAX))
        return hr_fail(HR_EINVAL, "keep_alive \"%s\" is too long a duration: at most 100 years (%.0f s); "
                       "use -1 or never to keep the model loaded for ever", text, HR_KEEP_ALIVE_MAX);
    *seconds = negative && total > 0 ? -1 : total;
    return HR_OK;
}
