/*
 * test_schedule.c: the batched worker's choices (policy/schedule.c): which waiting session a
 * free slot takes, which slot a prompt takes, how much of a prompt a step reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "policy/schedule.h"

static void highest_priority_then_first_come(void **state)
{
    (void)state;
    hr_schedule_waiting none[1] = { { 0, 0 } };
    assert_int_equal(hr_schedule_next_waiting(none, 0), -1);
    hr_schedule_waiting waiting[] = { { 0, 5 }, { 0, 3 }, { 2, 9 }, { 2, 7 }, { -1, 1 } };
    assert_int_equal(hr_schedule_next_waiting(waiting, 5), 3);   /* priority 2, arrived before 9 */
    assert_int_equal(hr_schedule_next_waiting(waiting, 2), 1);   /* equal priority: the older */
    hr_schedule_waiting low[] = { { -1, 1 }, { -3, 0 } };
    assert_int_equal(hr_schedule_next_waiting(low, 2), 0);
}

static void the_free_slot_with_the_longest_shared_prefix(void **state)
{
    (void)state;
    const int32_t a[] = { 1, 10, 11, 12, 13 }, b[] = { 1, 10, 20 }, c[] = { 1, 10, 11, 12 };
    const int32_t prompt[] = { 1, 10, 11, 12, 99 };
    hr_schedule_slot slots[] = {
        { false, b, 3, 1 },
        { true, a, 5, 2 },    /* shares the most, but busy */
        { false, c, 4, 9 },
        { false, NULL, 0, 0 },
    };
    int32_t shared = -1;
    assert_int_equal(hr_schedule_pick_slot(slots, 4, prompt, 5, &shared), 2);
    assert_int_equal(shared, 4);
    /* nothing shared anywhere: the slot left longest ago, so recent conversations stay */
    const int32_t other[] = { 7, 7 };
    assert_int_equal(hr_schedule_pick_slot(slots, 4, other, 2, &shared), 3);
    assert_int_equal(shared, 0);
    /* a prompt shorter than what a slot holds shares at most itself */
    const int32_t short_prompt[] = { 1, 10 };
    int pick = hr_schedule_pick_slot(slots, 4, short_prompt, 2, &shared);
    assert_int_equal(shared, 2);
    assert_int_equal(pick, 0);   /* b and c share 2 each: b was left longer ago */
    for (int i = 0; i < 4; i++) slots[i].busy = true;
    assert_int_equal(hr_schedule_pick_slot(slots, 4, prompt, 5, &shared), -1);
    assert_int_equal(shared, 0);
}

static void prompt_chunks_leave_running_streams_a_short_step(void **state)
{
    (void)state;
    assert_int_equal(hr_schedule_prompt_chunk(512, 0, 2000), 512);   /* alone: a whole batch */
    assert_int_equal(hr_schedule_prompt_chunk(512, 3, 2000), 128);   /* beside streams: a quarter */
    assert_int_equal(hr_schedule_prompt_chunk(512, 3, 40), 40);      /* what is left */
    assert_int_equal(hr_schedule_prompt_chunk(32, 1, 100), 16);      /* at least 16 */
    assert_int_equal(hr_schedule_prompt_chunk(16, 1, 100), 16);
    assert_int_equal(hr_schedule_prompt_chunk(8, 1, 100), 8);        /* never more than the batch */
    assert_int_equal(hr_schedule_prompt_chunk(512, 0, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(highest_priority_then_first_come),
        cmocka_unit_test(the_free_slot_with_the_longest_shared_prefix),
        cmocka_unit_test(prompt_chunks_leave_running_streams_a_short_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
