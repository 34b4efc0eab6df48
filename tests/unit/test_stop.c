/*
 * test_stop.c: the stop-sequence matcher in core/stop.c, fed pieces by hand: what is passed on,
 * what is held, and where a stop sequence cuts the text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/stop.h"
#include "headroom.h"

/* Feeds the pieces in order and returns everything passed on, flushed at the end unless a stop
 * sequence was found; *matched says whether one was. */
static const char *run(const char *const *stops, size_t count, const char *const *pieces, bool *matched)
{
    static char out[256];
    size_t used = 0;
    hr_stop_matcher m;
    hr_stop_init(&m, stops, count);
    for (size_t i = 0; pieces[i]; i++) {
        const char *emit;
        size_t length;
        assert_int_equal(hr_stop_feed(&m, pieces[i], strlen(pieces[i]), &emit, &length), HR_OK);
        memcpy(out + used, emit, length);
        used += length;
    }
    const char *emit;
    size_t length;
    hr_stop_flush(&m, &emit, &length);
    memcpy(out + used, emit, length);
    used += length;
    out[used] = '\0';
    *matched = m.matched;
    hr_stop_free(&m);
    return out;
}

static void no_stops_pass_everything(void **state)
{
    (void)state;
    bool matched;
    assert_string_equal(run(NULL, 0, (const char *[]){ "Hello", " world", NULL }, &matched), "Hello world");
    assert_false(matched);
}

static void stop_inside_one_piece_cuts_there(void **state)
{
    (void)state;
    bool matched;
    const char *stops[] = { "END" };
    assert_string_equal(run(stops, 1, (const char *[]){ "abcENDdef", "more", NULL }, &matched), "abc");
    assert_true(matched);
}

static void stop_split_over_three_pieces(void **state)
{
    (void)state;
    bool matched;
    const char *stops[] = { "</answer>" };
    assert_string_equal(run(stops, 1, (const char *[]){ "yes</an", "sw", "er>tail", NULL }, &matched), "yes");
    assert_true(matched);
}

static void held_text_is_emitted_when_it_stops_matching(void **state)
{
    (void)state;
    hr_stop_matcher m;
    const char *stops[] = { "STOP" };
    hr_stop_init(&m, stops, 1);
    const char *emit;
    size_t length;
    assert_int_equal(hr_stop_feed(&m, "go ST", 5, &emit, &length), HR_OK);
    assert_int_equal(length, 3);             /* "ST" is held: it may become STOP */
    assert_memory_equal(emit, "go ", 3);
    assert_int_equal(hr_stop_feed(&m, "ART", 3, &emit, &length), HR_OK);
    assert_int_equal(length, 5);             /* "START" is no stop: all of it goes on */
    assert_memory_equal(emit, "START", 5);
    assert_false(m.matched);
    hr_stop_free(&m);
}

static void held_prefix_is_flushed_at_the_end(void **state)
{
    (void)state;
    bool matched;
    const char *stops[] = { "\n\n" };
    assert_string_equal(run(stops, 1, (const char *[]){ "line", "\n", NULL }, &matched), "line\n");
    assert_false(matched);
}

static void overlapping_candidates_find_the_earliest(void **state)
{
    (void)state;
    bool matched;
    /* "aab" inside "aaab": the first "a" is not the start, the second is */
    const char *stops[] = { "aab" };
    assert_string_equal(run(stops, 1, (const char *[]){ "xa", "a", "ab", NULL }, &matched), "xa");
    assert_true(matched);
    /* two stops, the one that begins first wins even though the other completes first */
    const char *two[] = { "bcd", "abcdef" };
    assert_string_equal(run(two, 2, (const char *[]){ "zab", "cd", NULL }, &matched), "za");
    assert_true(matched);
}

static void several_stops_any_one_ends(void **state)
{
    (void)state;
    bool matched;
    const char *stops[] = { "User:", "\n###", "<|end|>" };
    assert_string_equal(run(stops, 3, (const char *[]){ "Sure.", "\n#", "##", " next", NULL }, &matched), "Sure.");
    assert_true(matched);
    assert_string_equal(run(stops, 3, (const char *[]){ "a <|e", "nd", "|> b", NULL }, &matched), "a ");
    assert_true(matched);
}

static void multibyte_characters_at_boundaries(void **state)
{
    (void)state;
    bool matched;
    /* a stop that begins with a two-byte character, reached over pieces */
    const char *stops[] = { "\xC3\xA9!" };   /* "é!" */
    assert_string_equal(run(stops, 1, (const char *[]){ "caf\xC3\xA9", "!", NULL }, &matched), "caf");
    assert_true(matched);
    /* a held "€" that turns out not to start "€x" goes on whole, never split */
    hr_stop_matcher m;
    const char *euro[] = { "\xE2\x82\xACx" };
    hr_stop_init(&m, euro, 1);
    const char *emit;
    size_t length;
    assert_int_equal(hr_stop_feed(&m, "5\xE2\x82\xAC", 4, &emit, &length), HR_OK);
    assert_int_equal(length, 1);
    assert_int_equal(hr_stop_feed(&m, "y", 1, &emit, &length), HR_OK);
    assert_int_equal(length, 4);
    assert_memory_equal(emit, "\xE2\x82\xACy", 4);
    hr_stop_free(&m);
}

static void nothing_after_a_match(void **state)
{
    (void)state;
    hr_stop_matcher m;
    const char *stops[] = { "." };
    hr_stop_init(&m, stops, 1);
    const char *emit;
    size_t length;
    assert_int_equal(hr_stop_feed(&m, "one. two", 8, &emit, &length), HR_OK);
    assert_int_equal(length, 3);
    assert_true(m.matched);
    assert_int_equal(hr_stop_feed(&m, "three", 5, &emit, &length), HR_OK);
    assert_int_equal(length, 0);
    hr_stop_flush(&m, &emit, &length);
    assert_int_equal(length, 0);
    hr_stop_free(&m);
}

static void stop_at_the_very_start(void **state)
{
    (void)state;
    bool matched;
    const char *stops[] = { "Q:" };
    assert_string_equal(run(stops, 1, (const char *[]){ "Q", ":", " more", NULL }, &matched), "");
    assert_true(matched);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_stops_pass_everything),
        cmocka_unit_test(stop_inside_one_piece_cuts_there),
        cmocka_unit_test(stop_split_over_three_pieces),
        cmocka_unit_test(held_text_is_emitted_when_it_stops_matching),
        cmocka_unit_test(held_prefix_is_flushed_at_the_end),
        cmocka_unit_test(overlapping_candidates_find_the_earliest),
        cmocka_unit_test(several_stops_any_one_ends),
        cmocka_unit_test(multibyte_characters_at_boundaries),
        cmocka_unit_test(nothing_after_a_match),
        cmocka_unit_test(stop_at_the_very_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
