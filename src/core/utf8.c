/*
 * utf8.c: validation and repair of streamed UTF-8 (see utf8.h). Pure: no I/O, no allocation.
 */
#include "core/utf8.h"

#include "headroom.h"

#include <string.h>

enum { INCOMPLETE = -1 };

/* How many bytes at s form one unit: a whole valid sequence (its length, 1..4), an invalid
 * maximal subpart to replace (stored negated in *invalid, 1..3), or INCOMPLETE when a valid
 * prefix runs into the end of the input. */
static int unit_length(const unsigned char *s, size_t available, size_t *invalid)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;  /* allowed range of the second byte */
    int need;
    *invalid = 0;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;          /* no overlong forms */
        if (c == 0xED) hi = 0x9F;          /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;          /* no overlong forms */
        if (c == 0xF4) hi = 0x8F;          /* nothing above U+10FFFF */
    } else {
        *invalid = 1;
        return 0;
    }
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= available) {
            *invalid = (size_t)i;          /* what to replace if nothing more comes */
            return INCOMPLETE;
        }
        unsigned char b = s[i];
        int ok = i == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
        if (!ok) {
            *invalid = (size_t)i;          /* the valid prefix before the bad byte */
            return 0;
        }
    }
    return need;
}

size_t hr_utf8_take(const char *in, size_t length, int final, char *out, size_t capacity,
                    size_t *consumed)
{
    static const char replacement[3] = { '\xEF', '\xBF', '\xBD' };
    const unsigned char *s = (const unsigned char *)in;
    size_t read = 0, written = 0;
    while (read < length) {
        size_t invalid;
        int n = unit_length(s + read, length - read, &invalid);
        if (n == INCOMPLETE && !final) break;
        if (n > 0) {
            if (written + (size_t)n > capacity) break;
            memcpy(out + written, s + read, (size_t)n);
            written += (size_t)n;
            read += (size_t)n;
        } else {
            if (written + sizeof replacement > capacity) break;
            memcpy(out + written, replacement, sizeof replacement);
            written += sizeof replacement;
            read += invalid;
        }
    }
    *consumed = read;
    return written;
}

HR_API bool hr_utf8_valid(const char *text, size_t length)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t at = 0;
    while (at < length) {
        size_t invalid;
        int n = unit_length(s + at, length - at, &invalid);
        if (n <= 0) return false;   /* invalid, or cut off at the end */
        at += (size_t)n;
    }
    return true;
}
