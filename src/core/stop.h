/*
 * stop.h: a pure matcher for stop sequences in streamed text. Text arrives in pieces; it decides
 * what may be passed on now, what must be held because it could be the start of a stop
 * sequence, and where a stop sequence was found. No I/O, no engine: one matcher per generation.
 */
#ifndef HR_CORE_STOP_H
#define HR_CORE_STOP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hr_stop_matcher {
    const char *const *stops;   /* borrowed for the matcher's life; each non-empty */
    size_t count;
    size_t longest;             /* bytes of the longest stop sequence */
    char *buffer;               /* held text, from `start` to `length` */
    size_t start, length, capacity;
    bool matched;               /* a stop sequence was found: nothing more is passed on */
} hr_stop_matcher;

/* Starts a matcher for `count` stop sequences (count 0: every piece passes through). Allocates
 * nothing until text is held; hr_stop_free() releases it. */
void hr_stop_init(hr_stop_matcher *matcher, const char *const *stops, size_t count);

/* Adds `length` bytes of text and sets *emit / *emit_length to what may be passed on now: the
 * text before the earliest stop sequence once one is found (then matcher->matched is true and
 * later calls pass nothing on), else all but the longest tail that could still begin a stop
 * sequence. *emit points into the matcher and stays valid until the next call. When the text
 * and the stop sequences are whole UTF-8, what is passed on never splits a character.
 * Returns 0, or HR_ENOMEM (nothing taken). */
int hr_stop_feed(hr_stop_matcher *matcher, const char *text, size_t length, const char **emit,
                 size_t *emit_length);

/* The text still held at the end of a generation that found no stop sequence: it will never
 * complete one, so it is passed on. Empty after a match. Valid until the next call. */
void hr_stop_flush(hr_stop_matcher *matcher, const char **emit, size_t *emit_length);

void hr_stop_free(hr_stop_matcher *matcher);

#endif
