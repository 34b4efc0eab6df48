/*
 * utf8.h: a pure helper that keeps streamed text whole. Tokens are bytes, and a token may end
 * in the middle of a character; this decides what part of the bytes can be emitted now.
 */
#ifndef HR_CORE_UTF8_H
#define HR_CORE_UTF8_H

#include <stddef.h>

/* Copies in[0..length) to out as valid UTF-8: each invalid byte or malformed sequence becomes
 * one U+FFFD (the Unicode "maximal subpart" rule, as browsers and Python decode). Stops before
 * a valid but incomplete sequence at the end of the input, which more bytes may complete,
 * unless `final` is non-zero, in which case that tail becomes U+FFFD too.
 * Returns the bytes written; *consumed receives the input bytes used (the caller keeps the
 * rest for later). With capacity >= 3 * length everything fits; with less it stops early. */
size_t hr_utf8_take(const char *in, size_t length, int final, char *out, size_t capacity,
                    size_t *consumed);

#endif
