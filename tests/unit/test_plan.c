/*
 * test_plan.c: the lifecycle's decisions (policy/plan.c) on hand-made facts, and Ollama's
 * keep-alive convention (hr_keep_alive_parse).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "headroom.h"
#include "policy/plan.h"

static hr_plan_input input(enum hr_pressure_level level, enum hr_pressure_level fresh)
{
    hr_plan_input in = {
        .now = 1000,
        .level = level,
        .fresh_level = fresh,
        .pressure_actions = true,
        .critical_cancel_priority = 0,
        .pressure_interval = 1,
    };
    return in;
}

static hr_plan_model idle_model(double last_used, double expires_at)
{
    hr_plan_model m = { .loaded = true, .last_used = last_used, .expires_at = expires_at };
    return m;
}

static void expired_models_unload_at_any_level(void **state)
{
    (void)state;
    hr_plan_model models[3] = { idle_model(10, 990), idle_model(20, 1500), idle_model(30, 1000) };
    hr_plan_input in = input(HR_PRESSURE_NORMAL, HR_PRESSURE_NORMAL);
    hr_plan plan;
    hr_plan_compute(&in, models, 3, &plan);
    assert_int_equal(plan.n_actions, 2);
    assert_int_equal(plan.actions[0].kind, HR_PLAN_UNLOAD_EXPIRED);
    assert_int_equal(plan.actions[0].model, 0);
    assert_int_equal(plan.actions[1].model, 2);   /* a deadline that is exactly now has passed */
    assert_true(plan.next_wake == 1500);          /* the next deadline still ahead */
    assert_false(plan.refuse_loads);
}

static void models_in_use_pinned_or_working_never_expire(void **state)
{
    (void)state;
    hr_plan_model models[3] = { idle_model(10, 900), idle_model(10, 900), idle_model(10, 900) };
    models[0].users = 1;
    models[1].pinned = true;
    models[2].working = true;
    hr_plan_input in = input(HR_PRESSURE_NORMAL, HR_PRESSURE_NORMAL);
    hr_plan plan;
    hr_plan_compute(&in, models, 3, &plan);
    assert_int_equal(plan.n_actions, 0);
    assert_true(plan.next_wake == 0);   /* nothing to wait for: sleep until news */
}

static void warn_frees_caches_then_one_idle_model_least_recently_used(void **state)
{
    (void)state;
    hr_plan_model models[4] = { idle_model(50, 0), idle_model(20, 0), idle_model(30, 0), idle_model(5, 0) };
    models[3].pinned = true;   /* the oldest, but pinned */
    hr_plan_input in = input(HR_PRESSURE_WARN, HR_PRESSURE_WARN);
    hr_plan plan;
    hr_plan_compute(&in, models, 4, &plan);
    assert_int_equal(plan.n_actions, 2);
    assert_int_equal(plan.actions[0].kind, HR_PLAN_FREE_CACHES);
    assert_int_equal(plan.actions[1].kind, HR_PLAN_UNLOAD_IDLE);
    assert_int_equal(plan.actions[1].model, 1);
    assert_non_null(strstr(plan.actions[1].reason, "warn"));
    assert_true(plan.next_wake == 1001);   /* look again after the pressure interval */
    assert_false(plan.refuse_loads);

    in.caches_freed = true;   /* once per episode */
    hr_plan_compute(&in, models, 4, &plan);
    assert_int_equal(plan.n_actions, 1);
    assert_int_equal(plan.actions[0].kind, HR_PLAN_UNLOAD_IDLE);
}

static void a_held_level_alone_unloads_nothing(void **state)
{
    (void)state;
    /* the classifier still says warn (its hold), but memory is back: no more unloading */
    hr_plan_model models[2] = { idle_model(20, 0), idle_model(30, 0) };
    hr_plan_input in = input(HR_PRESSURE_WARN, HR_PRESSURE_NORMAL);
    hr_plan plan;
    hr_plan_compute(&in, models, 2, &plan);
    assert_int_equal(plan.n_actions, 0);

    in.pressure_actions = false;   /* switched off: nothing but deadlines */
    in.fresh_level = HR_PRESSURE_CRITICAL;
    in.level = HR_PRESSURE_CRITICAL;
    hr_plan_compute(&in, models, 2, &plan);
    assert_int_equal(plan.n_actions, 0);
    assert_true(plan.refuse_loads);   /* loads are refused under critical all the same */
}

static void critical_unloads_every_idle_model_then_cancels_the_lowest_priority_work(void **state)
{
    (void)state;
    hr_plan_model models[4] = { idle_model(50, 0), idle_model(20, 0), idle_model(30, 0), idle_model(40, 0) };
    models[0].working = true;
    models[0].users = 1;
    models[0].work_priority = 0;
    hr_plan_input in = input(HR_PRESSURE_CRITICAL, HR_PRESSURE_CRITICAL);
    in.caches_freed = true;
    hr_plan plan;
    hr_plan_compute(&in, models, 4, &plan);
    assert_true(plan.refuse_loads);
    assert_int_equal(plan.n_actions, 3);   /* 1, 2, 3: oldest first; nothing cancelled yet */
    assert_int_equal(plan.actions[0].model, 1);
    assert_int_equal(plan.actions[1].model, 2);
    assert_int_equal(plan.actions[2].model, 3);

    /* nothing idle is left: the lowest-priority work goes */
    for (int i = 1; i < 4; i++) models[i] = (hr_plan_model){ 0 };
    models[1] = (hr_plan_model){ .loaded = true, .users = 1, .working = true, .work_priority = -5, .last_used = 60 };
    models[2] = (hr_plan_model){ .loaded = true, .users = 1, .working = true, .work_priority = 10, .last_used = 1 };
    hr_plan_compute(&in, models, 4, &plan);
    assert_int_equal(plan.n_actions, 1);
    assert_int_equal(plan.actions[0].kind, HR_PLAN_CANCEL_WORK);
    assert_int_equal(plan.actions[0].model, 1);   /* priority -5 before 0; 10 is above the line */

    models[1].cancelling = true;   /* already cancelled: the next one */
    hr_plan_compute(&in, models, 4, &plan);
    assert_int_equal(plan.n_actions, 1);
    assert_int_equal(plan.actions[0].model, 0);

    models[0].cancelling = true;   /* only priority 10 is left, above critical_cancel_priority 0 */
    hr_plan_compute(&in, models, 4, &plan);
    assert_int_equal(plan.n_actions, 0);

    in.critical_cancel_priority = INT32_MIN;   /* never cancel */
    models[0].cancelling = false;
    hr_plan_compute(&in, models, 4, &plan);
    assert_int_equal(plan.n_actions, 0);
}

static void warn_sheds_idle_slots_kv_before_unloading_any_model(void **state)
{
    (void)state;
    hr_plan_model models[4] = { idle_model(50, 0), idle_model(20, 0), idle_model(30, 0), idle_model(10, 0) };
    models[0].working = true;              /* at work, with idle slots beside its sessions */
    models[0].users = 1;
    models[0].idle_kv_bytes = 48u << 20;
    models[2].idle_kv_bytes = 16u << 20;   /* idle, its slots still hold conversations */
    models[3].idle_kv_bytes = 16u << 20;
    models[3].pinned = true;               /* pinned: never touched */
    hr_plan_input in = input(HR_PRESSURE_WARN, HR_PRESSURE_WARN);
    hr_plan plan;
    hr_plan_compute(&in, models, 4, &plan);
    assert_int_equal(plan.n_actions, 3);   /* caches, then the two sheds, and no unload this step */
    assert_int_equal(plan.actions[0].kind, HR_PLAN_FREE_CACHES);
    assert_int_equal(plan.actions[1].kind, HR_PLAN_SHED_IDLE_KV);
    assert_int_equal(plan.actions[1].model, 0);
    assert_true(plan.actions[1].save_snapshots);
    assert_int_equal(plan.actions[2].kind, HR_PLAN_SHED_IDLE_KV);
    assert_int_equal(plan.actions[2].model, 2);
    assert_non_null(strstr(plan.actions[2].reason, "warn"));
    assert_true(plan.next_wake == 1001);

    /* the KV is gone and pressure stays: now the least recently used idle model goes */
    models[0].idle_kv_bytes = models[2].idle_kv_bytes = 0;
    in.caches_freed = true;
    hr_plan_compute(&in, models, 4, &plan);
    assert_int_equal(plan.n_actions, 1);
    assert_int_equal(plan.actions[0].kind, HR_PLAN_UNLOAD_IDLE);
    assert_int_equal(plan.actions[0].model, 1);

    /* asked already and not done (its worker is busy): that does not hold the unloads back */
    models[2].idle_kv_bytes = 16u << 20;
    models[2].shed_pending = true;
    hr_plan_compute(&in, models, 4, &plan);
    assert_int_equal(plan.n_actions, 1);
    assert_int_equal(plan.actions[0].kind, HR_PLAN_UNLOAD_IDLE);

    /* no pressure, or only the classifier's hold: nothing is shed */
    models[2].shed_pending = false;
    in = input(HR_PRESSURE_WARN, HR_PRESSURE_NORMAL);
    hr_plan_compute(&in, models, 4, &plan);
    assert_int_equal(plan.n_actions, 0);
}

static void critical_sheds_only_working_models_and_saves_no_snapshot(void **state)
{
    (void)state;
    hr_plan_model models[2] = { idle_model(50, 0), idle_model(20, 0) };
    models[0].working = true;
    models[0].users = 1;
    models[0].work_priority = 5;            /* above the cancel line */
    models[0].idle_kv_bytes = 48u << 20;
    models[1].idle_kv_bytes = 16u << 20;    /* idle: unloaded whole, its KV with it */
    hr_plan_input in = input(HR_PRESSURE_CRITICAL, HR_PRESSURE_CRITICAL);
    in.caches_freed = true;
    hr_plan plan;
    hr_plan_compute(&in, models, 2, &plan);
    assert_int_equal(plan.n_actions, 2);
    assert_int_equal(plan.actions[0].kind, HR_PLAN_SHED_IDLE_KV);
    assert_int_equal(plan.actions[0].model, 0);
    assert_false(plan.actions[0].save_snapshots);   /* no disk writes under critical */
    assert_int_equal(plan.actions[1].kind, HR_PLAN_UNLOAD_IDLE);
    assert_int_equal(plan.actions[1].model, 1);

    /* an expired model is unloaded, not shed first */
    hr_plan_model expired[1] = { idle_model(10, 900) };
    expired[0].idle_kv_bytes = 16u << 20;
    in = input(HR_PRESSURE_WARN, HR_PRESSURE_WARN);
    hr_plan_compute(&in, expired, 1, &plan);
    assert_int_equal(plan.actions[0].kind, HR_PLAN_UNLOAD_EXPIRED);
    for (int a = 0; a < plan.n_actions; a++) assert_int_not_equal(plan.actions[a].kind, HR_PLAN_SHED_IDLE_KV);
}

static void keep_alive_follows_ollama(void **state)
{
    (void)state;
    struct { const char *text; double seconds; } good[] = {
        { "0", 0 }, { "300", 300 }, { "30s", 30 }, { "5m", 300 }, { "10m", 600 }, { "1h", 3600 },
        { "1h30m", 5400 }, { "1.5h", 5400 }, { "250ms", 0.25 }, { "-1", -1 }, { "-5m", -1 },
        { "never", -1 }, { "2h0m0s", 7200 }, { "3153600000", HR_KEEP_ALIVE_MAX }, { "-1e300", -1 }, { "-1e300h", -1 },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        double seconds = NAN;
        assert_int_equal(hr_keep_alive_parse(good[i].text, &seconds), HR_OK);
        assert_true(fabs(seconds - good[i].seconds) < 1e-9);
    }
    /* not finite, or so long that a deadline from it would overflow the clocks: refused */
    const char *bad[] = { "", "soon", "5x", "m", "5m junk", "1e999", "30 s", "5ms5", "-", "inf", "nan",
                          "-inf", "1e400", "1e300h", "1e308h1e308h", "-1e308h1e308h", "1e20", "3153600001" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double seconds = 0;
        assert_int_equal(hr_keep_alive_parse(bad[i], &seconds), HR_EINVAL);
        assert_non_null(strstr(hr_last_error(), "duration"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(expired_models_unload_at_any_level),
        cmocka_unit_test(models_in_use_pinned_or_working_never_expire),
        cmocka_unit_test(warn_frees_caches_then_one_idle_model_least_recently_used),
        cmocka_unit_test(a_held_level_alone_unloads_nothing),
        cmocka_unit_test(critical_unloads_every_idle_model_then_cancels_the_lowest_priority_work),
        cmocka_unit_test(warn_sheds_idle_slots_kv_before_unloading_any_model),
        cmocka_unit_test(critical_sheds_only_working_models_and_saves_no_snapshot),
        cmocka_unit_test(keep_alive_follows_ollama),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
