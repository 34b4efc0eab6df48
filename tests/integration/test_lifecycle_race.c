/*
 * test_lifecycle_race.c: hr-lifecycle's actions against a release or an unload that happens
 * between the plan and the action. The plan is made from facts gathered under the lock; an
 * action before this one (freeing caches) drops it; in that gap a release with keep_alive 0 (or
 * /api/unload) marks the model UNLOADING and goes on to unload it outside the lock. The test
 * forces that interleaving step by step on the real engine: it marks the entry as the release
 * does, runs the lifecycle's cancel-work action (hr_lifecycle_act), then finishes the release's
 * unload. Before the fix the action cancelled and unloaded the model itself, and the release's
 * unload then dereferenced the NULL model (or freed it twice).
 * usage: test_lifecycle_race TINY_MODEL.gguf
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "headroom.h"
#include "policy/plan.h"
#include "runtime/context.h"
#include "runtime/registry_internal.h"

static const char *tiny_model;

static int unloads;

static void count_unloads(const hr_event *event, void *user_data)
{
    (void)user_data;
    if (event->type == HR_EVENT_MODEL && strcmp(event->action, "unloaded") == 0) unloads++;
}

static hr_context *make_context(void)
{
    hr_context_params params = hr_context_default_params();
    params.monitor = false;   /* the plan's actions are driven by hand */
    hr_context *ctx = NULL;
    assert_int_equal(hr_context_create(&params, &ctx), HR_OK);
    hr_model_params mp = hr_model_default_params();
    mp.n_ctx = 128;
    mp.n_threads = 1;
    assert_int_equal(hr_registry_add(ctx, "tiny", tiny_model, &mp), HR_OK);
    return ctx;
}

static void run_action(struct hr_registry *r, struct model_entry *e, hr_plan_kind kind)
{
    hr_plan_action a = { .kind = kind, .model = 0 };
    snprintf(a.reason, sizeof a.reason, "memory pressure is critical (test)");
    pthread_mutex_lock(&r->lock);
    hr_lifecycle_act(r, &a, e);
    pthread_mutex_unlock(&r->lock);
}

/* A release with keep_alive 0 marked the model UNLOADING (its locked part) before the planned
 * cancel ran; its unload (the unlocked part) comes after. */
static void cancel_work_leaves_a_model_another_thread_is_unloading(void **state)
{
    (void)state;
    hr_plan_kind kinds[] = { HR_PLAN_CANCEL_WORK, HR_PLAN_UNLOAD_IDLE, HR_PLAN_UNLOAD_EXPIRED };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        hr_context *ctx = make_context();
        int subscription;
        unloads = 0;
        assert_int_equal(hr_subscribe(ctx, count_unloads, NULL, &subscription), HR_OK);
        hr_model *model = NULL;
        assert_int_equal(hr_registry_load(ctx, "tiny"), HR_OK);
        struct hr_registry *r = hr_registry_of(ctx);
        struct model_entry *e = r->entries[0];
        assert_int_equal(hr_registry_acquire(ctx, "tiny", &model), HR_OK);

        /* the release's locked part, as hr_registry_release does it for keep_alive 0 */
        pthread_mutex_lock(&r->lock);
        e->users--;
        e->state = HR_MODEL_UNLOADING;
        pthread_mutex_unlock(&r->lock);

        run_action(r, e, kinds[k]);   /* hr-lifecycle, with its stale plan */
        pthread_mutex_lock(&r->lock);
        assert_ptr_equal(e->model, model);   /* not freed under the release's feet */
        assert_false(e->cancelling);
        pthread_mutex_unlock(&r->lock);

        hr_registry_unload_marked(r, e, "keep_alive 0: unloaded after its request");   /* the release's unload */
        pthread_mutex_lock(&r->lock);
        assert_int_equal(e->state, HR_MODEL_UNLOADED);
        assert_null(e->model);
        pthread_mutex_unlock(&r->lock);
        assert_int_equal(unloads, 1);   /* once, not twice */
        hr_unsubscribe(ctx, subscription);
        hr_context_free(ctx);
    }
}

/* The planned cancel on a model that is still loaded and in use does what it is for: cancels and
 * leaves the unload to the last release. */
static void cancel_work_still_cancels_a_loaded_model(void **state)
{
    (void)state;
    hr_context *ctx = make_context();
    hr_model *model = NULL;
    assert_int_equal(hr_registry_acquire(ctx, "tiny", &model), HR_OK);
    struct hr_registry *r = hr_registry_of(ctx);
    struct model_entry *e = r->entries[0];
    run_action(r, e, HR_PLAN_CANCEL_WORK);
    pthread_mutex_lock(&r->lock);
    assert_true(e->cancelling);
    assert_int_equal(e->state, HR_MODEL_UNLOADING);
    pthread_mutex_unlock(&r->lock);
    hr_registry_release(ctx, model, NAN);   /* the last user: it unloads now */
    hr_registry_entry *list = NULL;
    size_t n = 0;
    assert_int_equal(hr_registry_list(ctx, &list, &n), HR_OK);
    assert_int_equal(list[0].state, HR_MODEL_UNLOADED);
    hr_free(list);
    hr_context_free(ctx);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s TINY_MODEL.gguf\n", argv[0]);
        return 2;
    }
    tiny_model = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cancel_work_leaves_a_model_another_thread_is_unloading),
        cmocka_unit_test(cancel_work_still_cancels_a_loaded_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
