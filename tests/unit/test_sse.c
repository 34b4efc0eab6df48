/*
 * test_sse.c: the server-sent events parser (engine/sse.c) on the streams servers send: OpenAI's
 * "data: {...}" events and [DONE], keep-alive comments, every line ending (LF, CRLF, CR), events
 * cut at every byte, multi-line data, named events, the size limit and a callback that stops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/sse.h"
#include "headroom.h"

/* What a parser produced: "type|data" per event, joined by ';'. */
struct seen {
    char text[4096];
    int events;
    int stop_at;   /* return 7 from this event on (1-based); 0: never */
};

static int record(const char *type, const char *data, size_t length, void *user_data)
{
    struct seen *seen = user_data;
    assert_int_equal(strlen(data), length);   /* NUL-terminated at length */
    seen->events++;
    size_t used = strlen(seen->text);
    snprintf(seen->text + used, sizeof seen->text - used, "%s|%s;", type, data);
    return seen->stop_at && seen->events >= seen->stop_at ? 7 : 0;
}

/* Feeds `stream` in pieces of `step` bytes (0: all at once) and returns what came out. */
static struct seen parse(const char *stream, size_t step)
{
    struct seen seen = { .text = "" };
    hr_sse_parser parser;
    hr_sse_init(&parser, 0);
    size_t length = strlen(stream);
    if (step == 0) step = length ? length : 1;
    for (size_t at = 0; at < length; at += step) {
        size_t n = length - at < step ? length - at : step;
        assert_int_equal(hr_sse_feed(&parser, stream + at, n, record, &seen), 0);
    }
    hr_sse_free(&parser);
    return seen;
}

static const char openai_stream[] =
    ": keep-alive\n\n"
    "data: {\"choices\":[{\"text\":\"Hel\"}]}\n\n"
    "data: {\"choices\":[{\"text\":\"lo\"}]}\n\n"
    "data: [DONE]\n\n";

static void openai_stream_gives_its_events_in_order(void **state)
{
    (void)state;
    struct seen seen = parse(openai_stream, 0);
    assert_int_equal(seen.events, 3);
    assert_string_equal(seen.text, "message|{\"choices\":[{\"text\":\"Hel\"}]};"
                                   "message|{\"choices\":[{\"text\":\"lo\"}]};message|[DONE];");
}

static void every_split_of_the_stream_gives_the_same_events(void **state)
{
    (void)state;
    struct seen whole = parse(openai_stream, 0);
    for (size_t step = 1; step < sizeof openai_stream; step++) {
        struct seen split = parse(openai_stream, step);
        assert_string_equal(split.text, whole.text);
    }
}

static void crlf_and_cr_end_lines_as_lf_does(void **state)
{
    (void)state;
    const char *expected = "message|a;message|b;";
    assert_string_equal(parse("data: a\r\n\r\ndata: b\r\n\r\n", 0).text, expected);
    assert_string_equal(parse("data: a\r\rdata: b\r\r", 0).text, expected);
    /* a CRLF is one line end, not two (which would end the event early), even when cut
     * between its CR and its LF */
    for (size_t step = 0; step < 8; step++) {
        assert_string_equal(parse("data: a\r\n\r\ndata: b\r\n\r\n", step).text, expected);
        assert_string_equal(parse("data: a\r\ndata: b\r\n\r\n", step).text, "message|a\nb;");
    }
}

static void data_lines_join_with_newlines_and_one_space_is_dropped(void **state)
{
    (void)state;
    assert_string_equal(parse("data: one\ndata:two\ndata:  three\n\n", 0).text, "message|one\ntwo\n three;");
    assert_string_equal(parse("data\n\n", 0).text, "message|;");          /* an empty data field counts */
    assert_string_equal(parse("data:\n\n", 0).text, "message|;");
}

static void events_without_data_and_other_fields_are_ignored(void **state)
{
    (void)state;
    assert_string_equal(parse("id: 4\nretry: 100\n\n: comment\n\n", 0).text, "");
    assert_string_equal(parse("event: error\ndata: {}\n\ndata: x\n\n", 0).text, "error|{};message|x;");
    assert_int_equal(parse("\n\n\n", 0).events, 0);
}

static void an_event_without_its_blank_line_is_not_yet_given(void **state)
{
    (void)state;
    struct seen seen = { .text = "" };
    hr_sse_parser parser;
    hr_sse_init(&parser, 0);
    assert_int_equal(hr_sse_feed(&parser, "data: a\n", 8, record, &seen), 0);
    assert_int_equal(seen.events, 0);
    assert_int_equal(hr_sse_feed(&parser, "\n", 1, record, &seen), 0);
    assert_string_equal(seen.text, "message|a;");
    hr_sse_free(&parser);
}

static void a_callback_that_returns_non_zero_stops_the_parser(void **state)
{
    (void)state;
    struct seen seen = { .text = "", .stop_at = 1 };
    hr_sse_parser parser;
    hr_sse_init(&parser, 0);
    const char *stream = "data: a\n\ndata: b\n\n";
    assert_int_equal(hr_sse_feed(&parser, stream, strlen(stream), record, &seen), 7);
    assert_int_equal(seen.events, 1);
    hr_sse_free(&parser);
}

static void lines_and_events_over_the_limit_are_refused(void **state)
{
    (void)state;
    struct seen seen = { .text = "" };
    hr_sse_parser parser;
    hr_sse_init(&parser, 16);
    char line[64];
    memset(line, 'x', sizeof line);
    assert_int_equal(hr_sse_feed(&parser, line, sizeof line, record, &seen), HR_EFORMAT);   /* one long line */
    hr_sse_free(&parser);

    hr_sse_init(&parser, 16);
    const char *many = "data: 12345\ndata: 12345\ndata: 12345\n";   /* short lines, a long event */
    assert_int_equal(hr_sse_feed(&parser, many, strlen(many), record, &seen), HR_EFORMAT);
    assert_int_equal(seen.events, 0);
    hr_sse_free(&parser);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(openai_stream_gives_its_events_in_order),
        cmocka_unit_test(every_split_of_the_stream_gives_the_same_events),
        cmocka_unit_test(crlf_and_cr_end_lines_as_lf_does),
        cmocka_unit_test(data_lines_join_with_newlines_and_one_space_is_dropped),
        cmocka_unit_test(events_without_data_and_other_fields_are_ignored),
        cmocka_unit_test(an_event_without_its_blank_line_is_not_yet_given),
        cmocka_unit_test(a_callback_that_returns_non_zero_stops_the_parser),
        cmocka_unit_test(lines_and_events_over_the_limit_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
