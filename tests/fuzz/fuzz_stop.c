/*
 * fuzz_stop.c: the stop-sequence matcher (core/stop.c) on any stop sequences and any text in any
 * split. Input: a byte n (stop count, n % 5), then n stop sequences each ended by a NUL, then the
 * text, cut into pieces whose lengths come from the bytes of the text itself. Checked: what is
 * passed on is a prefix of the text; with a match, the text goes on with a stop sequence right
 * there; without one, everything is passed on and no stop sequence occurs in it; no stop
 * sequence lies wholly inside what was passed on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/stop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool occurs_in(const char *text, size_t length, const char *stop)
{
    size_t n = strlen(stop);
    for (size_t i = 0; n <= length && i + n <= length; i++)
        if (memcmp(text + i, stop, n) == 0) return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    size_t count = data[0] % 5, at = 1;
    const char *stops[4];
    size_t n = 0;
    while (n < count && at < size) {
        const uint8_t *end = memchr(data + at, 0, size - at);
        if (!end) break;
        if (end > data + at) stops[n++] = (const char *)data + at;   /* each non-empty */
        at = (size_t)(end - data) + 1;
    }
    const char *text = (const char *)data + at;
    size_t length = size - at;
    char *out = malloc(length + 1);
    if (!out) return 0;
    size_t out_length = 0;
    hr_stop_matcher m;
    hr_stop_init(&m, stops, n);
    size_t fed = 0;
    while (fed < length) {
        size_t piece = 1 + (unsigned char)text[fed] % 7;
        if (piece > length - fed) piece = length - fed;
        const char *emit;
        size_t emit_length;
        if (hr_stop_feed(&m, text + fed, piece, &emit, &emit_length) != 0) abort();
        if (out_length + emit_length > length) abort();
        memcpy(out + out_length, emit, emit_length);
        out_length += emit_length;
        fed += piece;
    }
    const char *emit;
    size_t emit_length;
    hr_stop_flush(&m, &emit, &emit_length);
    if (out_length + emit_length > length) abort();
    memcpy(out + out_length, emit, emit_length);
    out_length += emit_length;

    if (memcmp(out, text, out_length) != 0) abort();          /* a prefix of the text */
    for (size_t i = 0; i < n; i++)
        if (occurs_in(out, out_length, stops[i])) abort();    /* never a whole stop passed on */
    if (m.matched) {
        bool there = false;
        for (size_t i = 0; i < n; i++) {
            size_t s = strlen(stops[i]);
            if (out_length + s <= length && memcmp(text + out_length, stops[i], s) == 0) there = true;
        }
        if (!there) abort();
    } else {
        if (out_length != length) abort();
        for (size_t i = 0; i < n; i++)
            if (occurs_in(text, length, stops[i])) abort();
    }
    hr_stop_free(&m);
    free(out);
    return 0;
}
