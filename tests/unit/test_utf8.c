/*
 * test_utf8.c: the streamed-text repair in core/utf8.c, on hand-made byte sequences.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/utf8.h"
#include "headroom.h"

static size_t take(const char *in, size_t length, int final, char *out, size_t *consumed)
{
    size_t written = hr_utf8_take(in, length, final, out, 3 * length + 1, consumed);
    out[written] = '\0';
    return written;
}

static void ascii_passes_through(void **state)
{
    (void)state;
    char out[64];
    size_t consumed;
    assert_int_equal(take("hello", 5, 0, out, &consumed), 5);
    assert_string_equal(out, "hello");
    assert_int_equal(consumed, 5);
}

static void whole_multibyte_passes_through(void **state)
{
    (void)state;
    const char *text = "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80"; /* héllo € 😀 */
    char out[64];
    size_t consumed;
    size_t n = take(text, strlen(text), 0, out, &consumed);
    assert_int_equal(n, strlen(text));
    assert_string_equal(out, text);
    assert_int_equal(consumed, strlen(text));
}

static void incomplete_tail_is_held(void **state)
{
    (void)state;
    const char *text = "ab\xF0\x9F\x98";  /* an emoji missing its last byte */
    char out[64];
    size_t consumed;
    assert_int_equal(take(text, 5, 0, out, &consumed), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(consumed, 2);
    /* the caller resends the held bytes with the rest */
    const char *rest = "\xF0\x9F\x98\x80!";
    assert_int_equal(take(rest, 5, 0, out, &consumed), 5);
    assert_string_equal(out, rest);
}

static void incomplete_tail_at_the_end_is_replaced(void **state)
{
    (void)state;
    char out[64];
    size_t consumed;
    assert_int_equal(take("a\xE2\x82", 3, 1, out, &consumed), 4);
    assert_string_equal(out, "a\xEF\xBF\xBD");
    assert_int_equal(consumed, 3);
}

static void invalid_bytes_become_one_replacement_each(void **state)
{
    (void)state;
    char out[64];
    size_t consumed;
    /* 0xFF is never valid; 0xC0 0xAF is an overlong '/': two replacements (C0 is never valid) */
    take("x\xFFy\xC0\xAFz", 6, 0, out, &consumed);
    assert_string_equal(out, "x\xEF\xBF\xBDy\xEF\xBF\xBD\xEF\xBF\xBDz");
    assert_int_equal(consumed, 6);
}

static void truncated_sequence_inside_text_is_one_replacement(void **state)
{
    (void)state;
    char out[64];
    size_t consumed;
    /* E2 82 followed by 'A': the maximal subpart E2 82 becomes one U+FFFD */
    take("\xE2\x82" "A", 3, 0, out, &consumed);
    assert_string_equal(out, "\xEF\xBF\xBD" "A");
}

static void surrogates_and_out_of_range_are_rejected(void **state)
{
    (void)state;
    char out[64];
    size_t consumed;
    take("\xED\xA0\x80", 3, 0, out, &consumed);   /* U+D800, a surrogate */
    assert_string_equal(out, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    take("\xF4\x90\x80\x80", 4, 0, out, &consumed); /* above U+10FFFF */
    assert_string_equal(out, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

static void small_capacity_stops_early_without_overflow(void **state)
{
    (void)state;
    char out[4] = { 0 };
    size_t consumed;
    size_t n = hr_utf8_take("abcdef", 6, 0, out, 3, &consumed);
    assert_int_equal(n, 3);
    assert_int_equal(consumed, 3);
    assert_memory_equal(out, "abc", 3);
}

static void validity(void **state)
{
    (void)state;
    assert_true(hr_utf8_valid("", 0));
    assert_true(hr_utf8_valid("h\xC3\xA9 \xF0\x9F\x98\x80", 8));
    assert_false(hr_utf8_valid("a\xFF", 2));
    assert_false(hr_utf8_valid("\xE2\x82", 2));          /* cut off */
    assert_false(hr_utf8_valid("\xED\xA0\x80", 3));      /* a surrogate */
    assert_false(hr_utf8_valid("\xC0\xAF", 2));           /* overlong */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ascii_passes_through),
        cmocka_unit_test(whole_multibyte_passes_through),
        cmocka_unit_test(incomplete_tail_is_held),
        cmocka_unit_test(incomplete_tail_at_the_end_is_replaced),
        cmocka_unit_test(invalid_bytes_become_one_replacement_each),
        cmocka_unit_test(truncated_sequence_inside_text_is_one_replacement),
        cmocka_unit_test(surrogates_and_out_of_range_are_rejected),
        cmocka_unit_test(small_capacity_stops_early_without_overflow),
        cmocka_unit_test(validity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
