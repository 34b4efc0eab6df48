/*
 * test_guard.c: the degradation guard's judgement (policy/guard.c) on hand-made windows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "policy/guard.h"

static hr_guard_verdict judge(hr_guard_state *s, int32_t tokens, double seconds, uint64_t faults, char *reason)
{
    hr_guard_params p = hr_guard_default_params();
    hr_guard_window w = { .tokens = tokens, .seconds = seconds, .page_faults = faults };
    return hr_guard_judge(&p, s, &w, reason, 320);
}

static void healthy_windows_teach_the_expected_speed(void **state)
{
    (void)state;
    hr_guard_state s = { 0 };
    char reason[320];
    assert_int_equal(judge(&s, 8, 0.4, 0, reason), HR_GUARD_OK);   /* 20 tokens/s */
    assert_true(s.expected == 20);
    assert_int_equal(judge(&s, 8, 0.32, 2, reason), HR_GUARD_OK);  /* 25, a fault or two is fine */
    assert_true(s.expected == 25);
    assert_int_equal(judge(&s, 8, 0.5, 0, reason), HR_GUARD_OK);   /* 16: a slower window teaches nothing */
    assert_true(s.expected == 25);
    assert_string_equal(reason, "");
}

static void thrashing_needs_two_windows_of_faults_far_below_expected(void **state)
{
    (void)state;
    hr_guard_state s = { .expected = 27.4 };
    char reason[320];
    /* the measured case: 1.4 tokens/s, hundreds of faults per token */
    assert_int_equal(judge(&s, 2, 1.43, 2 * 300, reason), HR_GUARD_OK);   /* one window: not yet */
    assert_int_equal(judge(&s, 2, 1.43, 2 * 300, reason), HR_GUARD_THRASHING);
    assert_non_null(strstr(reason, "1.4 tokens/s, expected 27.4"));
    assert_non_null(strstr(reason, "300 page faults per token"));

    /* a healthy window in between starts the count again */
    s = (hr_guard_state){ .expected = 27.4 };
    assert_int_equal(judge(&s, 2, 1.43, 600, reason), HR_GUARD_OK);
    assert_int_equal(judge(&s, 8, 0.3, 0, reason), HR_GUARD_OK);
    assert_int_equal(judge(&s, 2, 1.43, 600, reason), HR_GUARD_OK);

    /* faulting but still fast enough: the memory is short, the model is not thrashing (yet) */
    s = (hr_guard_state){ .expected = 27.4 };
    assert_int_equal(judge(&s, 8, 0.4, 8 * 100, reason), HR_GUARD_OK);
    assert_int_equal(judge(&s, 8, 0.4, 8 * 100, reason), HR_GUARD_OK);

    /* faulting hard: thrashing whatever the speed (a busy machine's speeds cannot be trusted) */
    assert_int_equal(judge(&s, 8, 0.4, 8 * 1000, reason), HR_GUARD_OK);
    assert_int_equal(judge(&s, 8, 0.4, 8 * 1000, reason), HR_GUARD_THRASHING);

    /* before any healthy window: faults every token are enough */
    s = (hr_guard_state){ 0 };
    judge(&s, 2, 1.0, 200, reason);
    assert_int_equal(judge(&s, 2, 1.0, 200, reason), HR_GUARD_THRASHING);
    assert_non_null(strstr(reason, "100 page faults per token"));
}

static void slow_without_faults_is_reported_once_and_not_thrashing(void **state)
{
    (void)state;
    hr_guard_state s = { .expected = 30 };
    char reason[320];
    assert_int_equal(judge(&s, 8, 2.0, 0, reason), HR_GUARD_SLOW);   /* 4 tokens/s, no faults */
    assert_non_null(strstr(reason, "CPU"));
    assert_int_equal(judge(&s, 8, 2.0, 0, reason), HR_GUARD_OK);     /* said once */
    assert_true(s.expected == 30);
    assert_int_equal(judge(&s, 0, 0, 0, reason), HR_GUARD_OK);       /* an empty window says nothing */
}

static hr_guard_verdict judge_constrained(hr_guard_state *s, int32_t tokens, double seconds, uint64_t faults,
                                         char *reason)
{
    hr_guard_params p = hr_guard_default_params();
    hr_guard_window w = { .tokens = tokens, .seconds = seconds, .page_faults = faults, .constrained = true };
    return hr_guard_judge(&p, s, &w, reason, 320);
}

/* Under a grammar a window is slower by nature: it teaches no speed and is never reported slow,
 * but faults every token far below the expected speed are still a thrash. */
static void a_window_under_a_grammar_teaches_nothing_but_can_thrash(void **state)
{
    (void)state;
    hr_guard_state s = { 0 };
    char reason[320];
    assert_int_equal(judge_constrained(&s, 8, 0.2, 0, reason), HR_GUARD_OK);   /* 40 tokens/s */
    assert_true(s.expected == 0);
    s.expected = 30;
    assert_int_equal(judge_constrained(&s, 8, 2.0, 0, reason), HR_GUARD_OK);   /* 4 tokens/s, no faults */
    assert_int_equal(s.slow_reported, 0);
    assert_string_equal(reason, "");
    assert_int_equal(judge_constrained(&s, 2, 1.4, 600, reason), HR_GUARD_OK);
    assert_int_equal(judge_constrained(&s, 2, 1.4, 600, reason), HR_GUARD_THRASHING);
    assert_non_null(strstr(reason, "300 page faults per token"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(healthy_windows_teach_the_expected_speed),
        cmocka_unit_test(thrashing_needs_two_windows_of_faults_far_below_expected),
        cmocka_unit_test(slow_without_faults_is_reported_once_and_not_thrashing),
        cmocka_unit_test(a_window_under_a_grammar_teaches_nothing_but_can_thrash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
