/*
 * sse.c: server-sent events, parsed incrementally (sse.h). The rules are the HTML standard's
 * "event stream interpretation": lines end with CRLF, LF or CR; a blank line dispatches the event;
 * "data:" lines accumulate; lines starting with ':' are comments (keep-alives); one space after the
 * colon is dropped. Fields other than data and event (id, retry) mean nothing to headroom.
 */
#include "engine/sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "headroom.h"

enum { DEFAULT_MAX_EVENT_BYTES = 1 << 20 };

void hr_sse_init(hr_sse_parser *parser, size_t max_event_bytes)
{
    memset(parser, 0, sizeof *parser);
    parser->max_event_bytes = max_event_bytes ? max_event_bytes : DEFAULT_MAX_EVENT_BYTES;
}

void hr_sse_free(hr_sse_parser *parser)
{
    free(parser->line);
    free(parser->data);
    hr_sse_init(parser, parser->max_event_bytes);
}

/* Room for `needed` bytes plus a terminating NUL, growing by doubling. */
static int grow(char **buffer, size_t *capacity, size_t needed)
{
    if (needed + 1 <= *capacity) return 0;
    size_t size = *capacity ? *capacity : 256;
    while (size < needed + 1) size *= 2;
    char *bigger = realloc(*buffer, size);
    if (!bigger) return HR_ENOMEM;
    *buffer = bigger;
    *capacity = size;
    return 0;
}

static void reset_event(hr_sse_parser *p)
{
    p->data_length = 0;
    p->has_data = false;
    p->type[0] = '\0';
}

static int dispatch(hr_sse_parser *p, hr_sse_event_fn fn, void *user_data)
{
    if (!p->has_data) {   /* the standard: an event without data is dropped */
        reset_event(p);
        return 0;
    }
    if (grow(&p->data, &p->data_capacity, p->data_length) != 0) return HR_ENOMEM;
    size_t length = p->data_length;
    if (length > 0 && p->data[length - 1] == '\n') length--;   /* the last data line's newline */
    p->data[length] = '\0';
    char type[sizeof p->type];
    snprintf(type, sizeof type, "%s", p->type[0] ? p->type : "message");
    reset_event(p);
    return fn(type, p->data, length, user_data);
}

/* One complete line (without its end). */
static int take_line(hr_sse_parser *p, hr_sse_event_fn fn, void *user_data)
{
    const char *line = p->line ? p->line : "";
    size_t length = p->line_length;
    if (length == 0) return dispatch(p, fn, user_data);
    if (line[0] == ':') return 0;   /* a comment: servers send them to keep the connection open */
    const char *colon = memchr(line, ':', length);
    size_t name_length = colon ? (size_t)(colon - line) : length;
    const char *value = colon ? colon + 1 : line + length;
    size_t value_length = length - (size_t)(value - line);
    if (value_length > 0 && value[0] == ' ') {
        value++;
        value_length--;
    }
    if (name_length == 4 && memcmp(line, "data", 4) == 0) {
        if (p->data_length + value_length + 1 > p->max_event_bytes) return HR_EFORMAT;
        if (grow(&p->data, &p->data_capacity, p->data_length + value_length + 1) != 0) return HR_ENOMEM;
        memcpy(p->data + p->data_length, value, value_length);
        p->data_length += value_length;
        p->data[p->data_length++] = '\n';
        p->has_data = true;
    } else if (name_length == 5 && memcmp(line, "event", 5) == 0) {
        size_t n = value_length < sizeof p->type - 1 ? value_length : sizeof p->type - 1;
        memcpy(p->type, value, n);
        p->type[n] = '\0';
    }
    return 0;
}

int hr_sse_feed(hr_sse_parser *p, const char *bytes, size_t length, hr_sse_event_fn fn, void *user_data)
{
    for (size_t i = 0; i < length; i++) {
        char c = bytes[i];
        if (c == '\n' && p->after_cr) {   /* the LF of a CRLF whose CR ended the line */
            p->after_cr = false;
            continue;
        }
        p->after_cr = c == '\r';
        if (c == '\n' || c == '\r') {
            int rc = take_line(p, fn, user_data);
            p->line_length = 0;
            if (rc != 0) return rc;
            continue;
        }
        /* the rest of the line, up to its end, in one copy */
        size_t end = i;
        while (end < length && bytes[end] != '\n' && bytes[end] != '\r') end++;
        size_t run = end - i;
        if (p->line_length + run > p->max_event_bytes) return HR_EFORMAT;
        if (grow(&p->line, &p->line_capacity, p->line_length + run) != 0) return HR_ENOMEM;
        memcpy(p->line + p->line_length, bytes + i, run);
        p->line_length += run;
        i = end - 1;
    }
    return 0;
}
