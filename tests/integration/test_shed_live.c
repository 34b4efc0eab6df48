/*
 * test_shed_live.c: under warn pressure a loaded model's idle slots give their KV memory back
 * before any model is unloaded. In a 320 MiB child memory cgroup a model with a wide KV cache
 * (16 MiB per slot) serves three conversations at once on its four slots and stays loaded with
 * them cached; a hog grows until warn. headroom must save the three conversations to snapshots,
 * drop every idle slot's KV (the process's RSS falls by at least three slots' worth), publish
 * "kv_shed" with the bytes, and keep the model loaded; the same prompts then give the same
 * greedy text, each prompt read from the snapshot the shed saved (restored at admission).
 * Skipped, with the reason, where no child memory cgroup can be made.
 * usage: test_shed_live MODEL.gguf
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
#include <unistd.h>

#include <cmocka.h>

#include "headroom.h"
#include "live_cgroup.h"
#include "skip.h"

enum { LIMIT_MIB = 320, N_CTX = 2048, SLOTS = 4, CONVERSATIONS = 3 };
static const uint64_t MiB = 1024 * 1024;
static const char *model_path;

static const char *prompts[CONVERSATIONS] = {
    "Once upon a time there was a little lighthouse keeper who counted the ships every night and wrote "
    "their names into a long blue book",
    "The recipe asks for three cups of flour, two eggs, a spoon of honey and the patience of a baker who "
    "has seen many loaves fall",
    "In the year of the long winter the river froze from the mountains to the sea, and the villagers "
    "walked across it to trade",
};

struct seen {
    pthread_mutex_t lock;
    int shed, unloaded, unloaded_before_shed;
    int64_t shed_freed;
    char shed_reason[320];
};

static void on_event(const hr_event *event, void *user_data)
{
    struct seen *s = user_data;
    if (event->type == HR_EVENT_PRESSURE) {
        fprintf(stderr, "  pressure %s -> %s: %s\n", hr_pressure_level_name(event->previous_level),
                hr_pressure_level_name(event->level), event->reason);
        return;
    }
    if (!event->action) return;
    fprintf(stderr, "  %s %s: %s (%.1f MiB freed)\n", event->model ? event->model : "headroom", event->action,
            event->reason ? event->reason : "", (double)event->bytes_freed / (double)MiB);
    pthread_mutex_lock(&s->lock);
    if (strcmp(event->action, "kv_shed") == 0) {
        if (s->shed == 0) {
            s->shed_freed = event->bytes_freed;
            snprintf(s->shed_reason, sizeof s->shed_reason, "%s", event->reason);
        }
        s->shed++;
    }
    if (strcmp(event->action, "unloaded") == 0) {
        s->unloaded++;
        if (s->shed == 0) s->unloaded_before_shed++;
    }
    pthread_mutex_unlock(&s->lock);
}

static int shed_count(struct seen *s)
{
    pthread_mutex_lock(&s->lock);
    int n = s->shed;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static uint64_t process_rss(hr_context *ctx)
{
    hr_memory_status m;
    assert_int_equal(hr_memory_sample(ctx, &m), HR_OK);
    return m.process_rss_bytes;
}

static enum hr_model_state state_of(hr_context *ctx)
{
    hr_registry_entry *list = NULL;
    size_t n = 0;
    assert_int_equal(hr_registry_list(ctx, &list, &n), HR_OK);
    enum hr_model_state state = list[0].state;
    hr_free(list);
    return state;
}

static bool wait_for_level(hr_context *ctx, enum hr_pressure_level level, double seconds)
{
    hr_pressure p;
    for (double waited = 0; waited < seconds; waited += 0.1) {
        if (hr_pressure_check(ctx, &p) == HR_OK && p.level == level) return true;
        usleep(100000);
    }
    return false;
}

/* Runs the prompts as sessions started together (so each takes a slot of its own), greedy, and
 * reads them to their end: their texts into `texts`, their cached prompt tokens into `cached`. */
static void run_together(hr_model *model, int count, const int *which, char texts[][512], int32_t *cached)
{
    hr_session *sessions[CONVERSATIONS] = { 0 };
    for (int i = 0; i < count; i++) {
        hr_session_params sp = hr_session_default_params();
        sp.generate.max_tokens = 12;
        sp.generate.temperature = 0;
        sp.generate.seed = 1;
        int rc = hr_session_start(model, prompts[which[i]], &sp, &sessions[i]);
        if (rc != HR_OK) fail_msg("session %d: %s", i, hr_last_error());
    }
    for (int i = 0; i < count; i++) {
        char piece[128];
        size_t length, used = 0;
        int rc;
        texts[i][0] = '\0';
        while ((rc = hr_session_read(sessions[i], piece, sizeof piece, &length, 30.0)) == HR_OK) {
            if (used + length < 511) {
                memcpy(texts[i] + used, piece, length);
                used += length;
                texts[i][used] = '\0';
            }
        }
        assert_int_equal(rc, HR_EOF);
        hr_generation_stats stats;
        assert_int_equal(hr_session_stats(sessions[i], &stats), HR_OK);
        cached[i] = stats.cached_tokens;
        hr_session_free(sessions[i]);
    }
}

static void warn_sheds_idle_slots_kv_and_keeps_the_model(void **state)
{
    (void)state;
    if (!make_limited_cgroup(LIMIT_MIB)) skip_because("%s", skip_reason);
    struct seen seen = { .shed = 0 };
    pthread_mutex_init(&seen.lock, NULL);
    struct hog hog;
    assert_true(hog_start(&hog));
    char cache_dir[128];
    snprintf(cache_dir, sizeof cache_dir, "/tmp/headroom-shed-live-%d", (int)getpid());
    hr_context_params params = hr_context_default_params();
    params.thresholds.hold_seconds = 1.0;
    params.cache_dir = cache_dir;   /* its own, empty: the test counts the snapshots in it */
    hr_context *ctx = NULL;
    assert_int_equal(hr_context_create(&params, &ctx), HR_OK);
    int subscription;
    assert_int_equal(hr_subscribe(ctx, on_event, &seen, &subscription), HR_OK);
    hr_model_params mp = hr_model_default_params();
    mp.n_ctx = N_CTX;
    mp.slots = SLOTS;
    mp.n_threads = 2;
    mp.load_mode = HR_LOAD_COPY;   /* the weights cannot be dropped by the kernel instead */
    assert_int_equal(hr_registry_add(ctx, "wide", model_path, &mp), HR_OK);

    hr_model *model = NULL;
    int rc = hr_registry_acquire(ctx, "wide", &model);
    if (rc != HR_OK) fail_msg("acquire: %s", hr_last_error());
    hr_model_info info;
    assert_int_equal(hr_model_get_info(model, &info), HR_OK);
    assert_int_equal(info.slots, SLOTS);
    int all[CONVERSATIONS] = { 0, 1, 2 };
    char before[CONVERSATIONS][512];
    int32_t cached[CONVERSATIONS];
    run_together(model, CONVERSATIONS, all, before, cached);
    hr_registry_release(ctx, model, NAN);   /* idle, loaded, its slots holding the conversations */
    assert_int_equal(state_of(ctx), HR_MODEL_READY);

    /* the KV of one slot, from the engine's own estimate */
    hr_preflight_params pp = hr_preflight_default_params();
    pp.n_ctx = N_CTX;
    pp.slots = 1;
    hr_preflight_result pf;
    assert_int_equal(hr_preflight(ctx, model_path, &pp, &pf), HR_OK);
    uint64_t slot_kv = 0;
    for (size_t i = 0; i < pf.n_devices; i++) slot_kv += pf.devices[i].kv_bytes;
    uint64_t rss_before = process_rss(ctx);
    fprintf(stderr, "  %d slots of %.1f MiB of KV each; process RSS %.1f MiB\n", SLOTS, (double)slot_kv / (double)MiB,
            (double)rss_before / (double)MiB);

    /* a hog grows at 50 MB/s until headroom sheds (or it has taken all but 16 MiB) */
    long held = 0, target = LIMIT_MIB - 16;
    for (long mib = 1; mib <= target && shed_count(&seen) == 0; mib++) {
        held = hog_hold(&hog, mib);
        assert_true(held >= 0);
        usleep(20000);
    }
    for (int i = 0; i < 20 && shed_count(&seen) == 0; i++) usleep(100000);
    uint64_t rss_after = process_rss(ctx);
    hog_stop(&hog);   /* the other program is done: the pressure passes */
    fprintf(stderr, "  the hog held %ld MiB; process RSS %.1f -> %.1f MiB\n", held, (double)rss_before / (double)MiB,
            (double)rss_after / (double)MiB);
    assert_true(wait_for_level(ctx, HR_PRESSURE_NORMAL, 15));

    pthread_mutex_lock(&seen.lock);
    assert_true(seen.shed >= 1);
    assert_int_equal(seen.unloaded_before_shed, 0);   /* the KV went first */
    assert_non_null(strstr(seen.shed_reason, "memory pressure"));
    /* every idle slot's KV is given back (the three with conversations and the empty one, whose
     * pages the engine filled with zeros at load): at least three slots' worth, measured */
    assert_true((uint64_t)seen.shed_freed >= 3 * slot_kv);
    int64_t freed = seen.shed_freed;
    pthread_mutex_unlock(&seen.lock);
    assert_true(rss_before > rss_after && rss_before - rss_after >= 3 * slot_kv);
    fprintf(stderr, "  kv_shed reported %.1f MiB freed\n", (double)freed / (double)MiB);
    assert_int_equal(state_of(ctx), HR_MODEL_READY);   /* the model stayed loaded */
    assert_int_equal(oom_kills(), 0);

    /* the three conversations were saved */
    hr_cache_entry *entries = NULL;
    size_t n_entries = 0;
    assert_int_equal(hr_cache_list(ctx, &entries, &n_entries), HR_OK);
    assert_int_equal(n_entries, CONVERSATIONS);
    hr_free(entries);

    /* Each conversation comes back from the snapshot the shed saved: a prompt that the slots
     * share nothing of restores the snapshot that shares most of it. The same greedy text, the
     * prompt read from the snapshot, not again. */
    assert_int_equal(hr_registry_acquire(ctx, "wide", &model), HR_OK);
    char again[CONVERSATIONS][512];
    run_together(model, CONVERSATIONS, all, again, cached);
    for (int i = 0; i < CONVERSATIONS; i++) {
        assert_string_equal(again[i], before[i]);
        fprintf(stderr, "  conversation %d: %d prompt tokens cached\n", i, cached[i]);
        assert_true(cached[i] >= 16);
    }
    hr_registry_release(ctx, model, NAN);

    hr_unsubscribe(ctx, subscription);
    hr_cache_clear(ctx, NULL, NULL, NULL);
    hr_context_free(ctx);
    char kv[160];
    snprintf(kv, sizeof kv, "%s/kv", cache_dir);
    rmdir(kv);
    rmdir(cache_dir);
    pthread_mutex_destroy(&seen.lock);
    remove_limited_cgroup();
}

int main(int argc, char **argv)
{
    if (select_cases(&argc, argv) != 0) return 2;
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(warn_sheds_idle_slots_kv_and_keeps_the_model),
    };
    int result = run_cases(tests, NULL, NULL);
    live_cgroup_cleanup();
    return result;
}
