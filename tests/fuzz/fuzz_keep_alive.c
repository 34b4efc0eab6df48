/*
 * fuzz_keep_alive.c: hr_keep_alive_parse on any text (a request's "keep_alive", the config
 * file's keep-alive, HEADROOM_KEEP_ALIVE). What it accepts must be a number no deadline
 * overflows: NaN never, and nothing finite above HR_KEEP_ALIVE_MAX except "never" (negative).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "headroom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    double seconds = 12345;
    int rc = hr_keep_alive_parse(text, &seconds);
    if (rc == HR_OK) {
        if (isnan(seconds)) abort();
        if (isinf(seconds) && seconds > 0) abort();   /* +inf would be a deadline no clock holds */
        if (seconds > HR_KEEP_ALIVE_MAX) abort();
    } else if (rc != HR_EINVAL) {
        abort();
    }
    free(text);
    return 0;
}
