/*
 * cli.c: value parsing and logging shared by the subcommands (see cli.h).
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cli_parse_int(const char *option, const char *text, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') {
        fprintf(stderr, "headroom: %s expects a whole number, not '%s'\n", option, text);
        return false;
    }
    if (value < min || value > max) {
        fprintf(stderr, "headroom: %s must be between %ld and %ld, not %ld\n", option, min, max, value);
        return false;
    }
    *out = value;
    return true;
}

bool cli_parse_u64(const char *option, const char *text, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
        fprintf(stderr, "headroom: %s expects a non-negative whole number, not '%s'\n", option, text);
        return false;
    }
    *out = (uint64_t)value;
    return true;
}

bool cli_parse_float(const char *option, const char *text, double min, double max, double *out)
{
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(value)) {
        fprintf(stderr, "headroom: %s expects a number, not '%s'\n", option, text);
        return false;
    }
    if (value < min || value > max) {
        fprintf(stderr, "headroom: %s must be between %g and %g, not %g\n", option, min, max, value);
        return false;
    }
    *out = value;
    return true;
}

bool cli_parse_load_mode(const char *text, enum hr_load_mode *out)
{
    static const struct { const char *name; enum hr_load_mode mode; } modes[] = {
        { "auto", HR_LOAD_AUTO }, { "mmap", HR_LOAD_MMAP }, { "copy", HR_LOAD_COPY }, { "mlock", HR_LOAD_MLOCK },
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(text, modes[i].name) == 0) { *out = modes[i].mode; return true; }
    fprintf(stderr, "headroom: --load-mode must be auto, mmap, copy or mlock, not '%s'\n", text);
    return false;
}

void cli_log(enum hr_log_level level, const char *message, void *user_data)
{
    (void)user_data;
    static const char *const names[] = { "debug", "info", "warning", "error" };
    fprintf(stderr, "headroom: %s: %s\n", names[level <= HR_LOG_ERROR ? level : HR_LOG_ERROR], message);
}

const char *cli_bytes(uint64_t bytes, char *buffer, size_t size)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double value = (double)bytes;
    int unit = 0;
    while (value >= 1024 && unit < 4) {
        value /= 1024;
        unit++;
    }
    snprintf(buffer, size, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
    return buffer;
}
