/*
 * fuzz_utf8.c: hr_utf8_take (core/utf8.c), which keeps streamed text whole, on any bytes fed in
 * any split. Checked: the output is valid UTF-8 (checked here independently), never more than
 * 3 bytes per input byte, every input byte is consumed once `final` is given, and input that is
 * valid UTF-8 comes out unchanged.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A plain reading of RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF. */
static bool valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (!len || i + len > n) return false;
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = malloc(3 * size + 4);
    char *held = malloc(size + 1);
    if (!out || !held) {
        free(out);
        free(held);
        return 0;
    }
    size_t out_length = 0, held_length = 0, at = 0;
    while (at < size || held_length > 0) {
        size_t piece = at < size ? 1 + data[at] % 5 : 0;
        if (piece > size - at) piece = size - at;
        memcpy(held + held_length, data + at, piece);
        held_length += piece;
        at += piece;
        int final = at == size;
        size_t consumed = 0;
        size_t written = hr_utf8_take(held, held_length, final, out + out_length, 3 * size + 4 - out_length, &consumed);
        if (consumed > held_length) abort();
        out_length += written;
        memmove(held, held + consumed, held_length - consumed);
        held_length -= consumed;
        if (final && held_length > 0) abort();   /* final: nothing is left behind */
        if (final) break;
    }
    if (out_length > 3 * size) abort();
    if (!valid((const unsigned char *)out, out_length)) abort();
    if (valid(data, size) && (out_length != size || memcmp(out, data, size) != 0)) abort();
    free(out);
    free(held);
    return 0;
}
