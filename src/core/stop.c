/*
 * stop.c: stop sequences found across piece boundaries (core/stop.h). The held text is at most
 * one piece plus the longest stop sequence, so each search is short; it must not learn about
 * tokens or engines: the generation loop feeds it text already made whole UTF-8.
 */
#include <stdlib.h>
#include <string.h>

#include "core/stop.h"
#include "headroom.h"

void hr_stop_init(hr_stop_matcher *matcher, const char *const *stops, size_t count)
{
    memset(matcher, 0, sizeof *matcher);
    matcher->stops = stops;
    matcher->count = count;
    for (size_t i = 0; i < count; i++) {
        size_t length = strlen(stops[i]);
        if (length > matcher->longest) matcher->longest = length;
    }
}

/* Whether text[0..length) is the start of some stop sequence (shorter than it). */
static bool begins_a_stop(const hr_stop_matcher *matcher, const char *text, size_t length)
{
    for (size_t i = 0; i < matcher->count; i++) {
        size_t stop_length = strlen(matcher->stops[i]);
        if (length < stop_length && memcmp(matcher->stops[i], text, length) == 0) return true;
    }
    return false;
}

/* Where the earliest stop sequence begins in text[0..length), or length when none does. */
static size_t earliest_stop(const hr_stop_matcher *matcher, const char *text, size_t length)
{
    for (size_t at = 0; at < length; at++) {
        for (size_t i = 0; i < matcher->count; i++) {
            size_t stop_length = strlen(matcher->stops[i]);
            if (stop_length <= length - at && memcmp(matcher->stops[i], text + at, stop_length) == 0)
                return at;
        }
    }
    return length;
}

int hr_stop_feed(hr_stop_matcher *matcher, const char *text, size_t length, const char **emit,
                 size_t *emit_length)
{
    *emit = "";
    *emit_length = 0;
    if (matcher->matched) return HR_OK;
    if (matcher->count == 0) {
        *emit = text;
        *emit_length = length;
        return HR_OK;
    }
    /* what the last call passed on is gone; the held tail moves to the front */
    size_t held = matcher->length - matcher->start;
    if (matcher->start > 0) memmove(matcher->buffer, matcher->buffer + matcher->start, held);
    matcher->start = 0;
    matcher->length = held;
    if (held + length + 1 > matcher->capacity) {
        size_t capacity = (held + length + 1) * 2;
        char *buffer = realloc(matcher->buffer, capacity);
        if (!buffer) return HR_ENOMEM;
        matcher->buffer = buffer;
        matcher->capacity = capacity;
    }
    memcpy(matcher->buffer + held, text, length);
    matcher->length = held + length;

    size_t total = matcher->length;
    size_t found = earliest_stop(matcher, matcher->buffer, total);
    if (found < total) {
        matcher->matched = true;
        matcher->start = matcher->length = 0;
        *emit = matcher->buffer;
        *emit_length = found;
        return HR_OK;
    }
    /* hold the longest tail that a later piece could complete into a stop sequence */
    size_t keep_from = total > matcher->longest ? total - matcher->longest + 1 : 0;
    while (keep_from < total && !begins_a_stop(matcher, matcher->buffer + keep_from, total - keep_from))
        keep_from++;
    *emit = matcher->buffer;
    *emit_length = keep_from;
    matcher->start = keep_from;
    return HR_OK;
}

void hr_stop_flush(hr_stop_matcher *matcher, const char **emit, size_t *emit_length)
{
    *emit = matcher->buffer ? matcher->buffer + matcher->start : "";
    *emit_length = matcher->matched ? 0 : matcher->length - matcher->start;
    matcher->start = matcher->length;
}

void hr_stop_free(hr_stop_matcher *matcher)
{
    free(matcher->buffer);
    memset(matcher, 0, sizeof *matcher);
}
