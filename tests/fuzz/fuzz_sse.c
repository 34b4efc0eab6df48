/*
 * fuzz_sse.c: the remote engine's server-sent-events parser (engine/sse.c), which reads what a
 * fall-back server sends, on any bytes. Checked: the events (type and data) and the outcome are
 * the same whether the bytes come in one chunk or cut anywhere, as TCP may cut them; a small
 * limit (256 bytes) exercises the refusal of long lines and events.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct log {
    char *bytes;
    size_t length;
};

static void add(struct log *log, const void *bytes, size_t length)
{
    char *grown = realloc(log->bytes, log->length + length + 1);
    if (!grown) abort();
    memcpy(grown + log->length, bytes, length);
    log->bytes = grown;
    log->length += length;
}

static int on_event(const char *type, const char *data, size_t length, void *user_data)
{
    struct log *log = user_data;
    add(log, type, strlen(type) + 1);
    add(log, &length, sizeof length);
    add(log, data, length);
    if (length > 256) abort();   /* never more than the limit */
    return 0;
}

static int parse(const uint8_t *data, size_t size, size_t first_cut, size_t step, struct log *log)
{
    hr_sse_parser parser;
    hr_sse_init(&parser, 256);
    int rc = 0;
    size_t at = 0, cut = first_cut;
    while (at < size && rc == 0) {
        size_t piece = cut > size - at ? size - at : cut;
        if (piece == 0) piece = 1;
        rc = hr_sse_feed(&parser, (const char *)data + at, piece, on_event, log);
        at += piece;
        cut = step;
    }
    hr_sse_free(&parser);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t first = data[0] % 17, step = 1 + data[1] % 9;
    data += 2;
    size -= 2;
    struct log whole = { 0 }, pieces = { 0 };
    int rc_whole = parse(data, size, size, size, &whole);
    int rc_pieces = parse(data, size, first, step, &pieces);
    if (rc_whole != rc_pieces) abort();
    if (rc_whole == 0 && (whole.length != pieces.length || (whole.length && memcmp(whole.bytes, pieces.bytes, whole.length) != 0)))
        abort();
    free(whole.bytes);
    free(pieces.bytes);
    hr_clear_error();
    return 0;
}
