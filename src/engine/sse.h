/*
 * sse.h: an incremental parser of server-sent events (the text/event-stream format of the HTML
 * standard), for the remote engine's streamed replies. Pure: bytes in, events out; it reads no
 * socket and allocates only its own buffers, so tests feed it any split of a stream.
 */
#ifndef HR_ENGINE_SSE_H
#define HR_ENGINE_SSE_H

#include <stdbool.h>
#include <stddef.h>

/* One event: its type ("message" unless an "event:" field named another) and its data (the
 * "data:" lines joined with '\n', NUL-terminated, `length` bytes). Both are valid only during the
 * call. Return 0 to go on; anything else stops the parser, and hr_sse_feed returns it. */
typedef int (*hr_sse_event_fn)(const char *type, const char *data, size_t length, void *user_data);

typedef struct hr_sse_parser {
    char *line;              /* the line being assembled (a chunk may end anywhere in it) */
    size_t line_length, line_capacity;
    char *data;              /* the event being assembled: its data lines so far */
    size_t data_length, data_capacity;
    bool has_data;           /* a data field was seen (an empty one still makes an event) */
    char type[64];
    bool after_cr;           /* the last byte was CR: a LF right after it ends no second line */
    size_t max_event_bytes;  /* a line or an event longer than this is an error, not memory */
} hr_sse_parser;

/* Starts a parser that refuses lines and events over max_event_bytes (0: 1 MiB). */
void hr_sse_init(hr_sse_parser *parser, size_t max_event_bytes);

/* Parses the next `length` bytes, calling `fn` for each event they complete. Returns 0, the
 * callback's non-zero value (which stops it), HR_ENOMEM, or HR_EFORMAT when a line or an event
 * is longer than the limit. A stream's last event counts only once the blank line after it came. */
int hr_sse_feed(hr_sse_parser *parser, const char *bytes, size_t length, hr_sse_event_fn fn, void *user_data);

/* Frees the parser's buffers; it may be initialised again. */
void hr_sse_free(hr_sse_parser *parser);

#endif
