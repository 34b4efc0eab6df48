/*
 * test_pressure_live.c: real memory pressure, contained: the test moves itself into a child
 * memory cgroup with a 256 MiB limit, a hog in the same cgroup takes memory step by step, and
 * the monitor must report warn, then critical, then normal after the hog exits, with no OOM
 * kill. A second case unloads a model with a conversation in its window twice: at normal
 * pressure its KV snapshot is written, under critical pressure it is not (the write would fill
 * page cache in the scope that is short). Skipped, with the reason, where no child memory
 * cgroup can be made (not root, no cgroup mount, no delegated memory controller).
 * usage: test_pressure_live TINY_MODEL.gguf SCRATCH_DIR
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "headroom.h"
#include "live_cgroup.h"
#include "skip.h"

#define MiB (1024L * 1024L)
static const long LIMIT_MIB = 256;

/* ---- watching the levels the monitor publishes -------------------------------------------- */

struct watch {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    enum hr_pressure_level level;
    int events;
    char last_reason[512];
};

static void on_event(const hr_event *event, void *user_data)
{
    struct watch *w = user_data;
    if (event->type != HR_EVENT_PRESSURE) return;
    pthread_mutex_lock(&w->lock);
    w->level = event->level;
    w->events++;
    snprintf(w->last_reason, sizeof w->last_reason, "%s", event->reason);
    fprintf(stderr, "  event: %s -> %s: %s\n", hr_pressure_level_name(event->previous_level),
            hr_pressure_level_name(event->level), event->reason);
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
}

static bool wait_for_level(struct watch *w, enum hr_pressure_level level, double seconds)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)seconds;
    pthread_mutex_lock(&w->lock);
    while (w->level != level && pthread_cond_timedwait(&w->changed, &w->lock, &deadline) == 0) {
    }
    bool reached = w->level == level;
    pthread_mutex_unlock(&w->lock);
    return reached;
}

/* Effective available memory now, in MiB. */
static long available_mib(hr_context *ctx)
{
    hr_pressure pressure;
    assert_int_equal(hr_pressure_check(ctx, &pressure), HR_OK);
    return (long)(pressure.effective_available_bytes / MiB);
}

static void hog_drives_warn_critical_and_back(void **state)
{
    (void)state;
    if (!make_limited_cgroup(LIMIT_MIB)) skip_because("%s", skip_reason);
    struct watch w = { .level = HR_PRESSURE_NORMAL };
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.changed, NULL);

    struct hog hog = { 0 };
    assert_true(hog_start(&hog));

    hr_context_params params = hr_context_default_params();
    params.thresholds.hold_seconds = 1.0;   /* the default 10 s would only make the test slow */
    hr_context *ctx = NULL;
    assert_int_equal(hr_context_create(&params, &ctx), HR_OK);
    int subscription = 0;
    assert_int_equal(hr_subscribe(ctx, on_event, &w, &subscription), HR_OK);

    hr_pressure pressure;
    assert_int_equal(hr_pressure_check(ctx, &pressure), HR_OK);
    fprintf(stderr, "  start: %s (%s); detection: %s\n", hr_pressure_level_name(pressure.level),
            pressure.reason, pressure.detection);
    assert_non_null(strstr(pressure.binding_scope, "headroom-test-"));   /* the child cgroup binds */
    assert_int_equal(pressure.level, HR_PRESSURE_NORMAL);
    assert_true(pressure.effective_total_bytes == (uint64_t)LIMIT_MIB * MiB);

    /* Each step is sized from what is available just before it, not from the limit: the test
     * process itself (its threads, and under AddressSanitizer its shadow memory) is charged to
     * the same cgroup, and a fixed 250 MiB would have the kernel kill the hog. Measured once,
     * before the hog holds anything: once it does, what is available may count pages the
     * kernel could still reclaim from it. */
    long base = available_mib(ctx);
    long warn_target = base - LIMIT_MIB * 10 / 100;   /* about 10% left: under warn (15%) */
    assert_true(warn_target > 0);
    assert_int_equal(hog_hold(&hog, warn_target), warn_target);
    if (!wait_for_level(&w, HR_PRESSURE_WARN, 10)) fail_msg("no warn within 10 s: %s", w.last_reason);

    long critical_target = base - LIMIT_MIB * 3 / 100;   /* about 3% left: under critical (5%) */
    assert_int_equal(hog_hold(&hog, critical_target), critical_target);
    if (!wait_for_level(&w, HR_PRESSURE_CRITICAL, 10)) fail_msg("no critical within 10 s: %s", w.last_reason);

    hog_stop(&hog);
    if (!wait_for_level(&w, HR_PRESSURE_NORMAL, 15)) fail_msg("not normal 15 s after the hog left: %s", w.last_reason);
    assert_true(w.events >= 3);

    assert_int_equal(oom_kills(), 0);   /* the hog was never killed: it was told when to stop */

    hr_unsubscribe(ctx, subscription);
    hr_context_free(ctx);
    remove_limited_cgroup();
}

static const char *tiny_model, *scratch_dir;

static int ignore_piece(const char *piece, size_t length, void *user_data)
{
    (void)piece;
    (void)length;
    (void)user_data;
    return 0;
}

/* Loads "tiny" through the registry, generates (so its window holds a conversation) and unloads
 * it; returns the snapshots in the cache afterwards. */
static size_t unload_with_a_conversation(hr_context *ctx)
{
    hr_model *model = NULL;
    assert_int_equal(hr_registry_acquire(ctx, "tiny", &model), HR_OK);
    hr_generate_params gp = hr_generate_default_params();
    gp.max_tokens = 8;
    assert_int_equal(hr_generate(model, "Once upon a time", &gp, ignore_piece, NULL, NULL), HR_OK);
    hr_registry_release(ctx, model, -1);
    assert_int_equal(hr_registry_unload(ctx, "tiny", false), HR_OK);
    hr_cache_entry *entries = NULL;
    size_t count = 0;
    assert_int_equal(hr_cache_list(ctx, &entries, &count), HR_OK);
    hr_free(entries);
    return count;
}

static void no_snapshot_is_written_under_critical_pressure(void **state)
{
    (void)state;
    if (!make_limited_cgroup(LIMIT_MIB)) skip_because("%s", skip_reason);
    struct watch w = { .level = HR_PRESSURE_NORMAL };
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.changed, NULL);
    char cache[600];
    snprintf(cache, sizeof cache, "%s/cache-%d", scratch_dir, (int)getpid());
    hr_context_params params = hr_context_default_params();
    params.thresholds.hold_seconds = 1.0;
    params.pressure_actions = false;   /* the test unloads, not the lifecycle */
    params.cache_dir = cache;
    hr_context *ctx = NULL;
    assert_int_equal(hr_context_create(&params, &ctx), HR_OK);
    int subscription = 0;
    assert_int_equal(hr_subscribe(ctx, on_event, &w, &subscription), HR_OK);
    hr_model_params mp = hr_model_default_params();
    mp.n_ctx = 256;
    mp.n_threads = 1;
    assert_int_equal(hr_registry_add(ctx, "tiny", tiny_model, &mp), HR_OK);

    assert_int_equal(unload_with_a_conversation(ctx), 1);   /* normal: the conversation is kept */
    assert_int_equal(hr_cache_clear(ctx, NULL, NULL, NULL), HR_OK);

    /* load it again first: under critical pressure the load itself would be refused */
    hr_model *model = NULL;
    assert_int_equal(hr_registry_acquire(ctx, "tiny", &model), HR_OK);
    hr_generate_params gp = hr_generate_default_params();
    gp.max_tokens = 8;
    assert_int_equal(hr_generate(model, "Once upon a time", &gp, ignore_piece, NULL, NULL), HR_OK);
    hr_registry_release(ctx, model, -1);
    struct hog hog = { 0 };
    assert_true(hog_start(&hog));
    /* 4% left (critical is below 5%): the model and, under ASan, the quarantine grow beside it */
    long target = available_mib(ctx) - LIMIT_MIB * 4 / 100;
    assert_int_equal(hog_hold(&hog, target), target);
    if (!wait_for_level(&w, HR_PRESSURE_CRITICAL, 10)) fail_msg("no critical within 10 s: %s", w.last_reason);
    assert_int_equal(hr_registry_unload(ctx, "tiny", false), HR_OK);
    hog_stop(&hog);
    hr_cache_entry *entries = NULL;
    size_t count = 0;
    assert_int_equal(hr_cache_list(ctx, &entries, &count), HR_OK);
    hr_free(entries);
    assert_int_equal(count, 0);   /* critical: nothing written */

    hr_unsubscribe(ctx, subscription);
    hr_context_free(ctx);
    remove_limited_cgroup();
}

int main(int argc, char **argv)
{
    if (select_cases(&argc, argv) != 0) return 2;
    if (argc != 3) {
        fprintf(stderr, "usage: %s TINY_MODEL.gguf SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    tiny_model = argv[1];
    scratch_dir = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hog_drives_warn_critical_and_back),
        cmocka_unit_test(no_snapshot_is_written_under_critical_pressure),
    };
    int result = run_cases(tests, NULL, NULL);
    live_cgroup_cleanup();
    return result;
}
