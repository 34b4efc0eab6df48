/*
 * test_lifecycle_live.c: the pressure policy against real memory pressure, contained. The test
 * moves itself into a 448 MiB child memory cgroup, loads a 158 MiB model (anonymous copy, so
 * the kernel cannot simply drop it), and a hog in the same cgroup grows at 50 MB/s towards an
 * amount that, with the model still loaded, would not fit: the kernel's OOM killer would have to
 * act. headroom must act first:
 *   - an idle model is unloaded at warn, its memory measured coming back, and no OOM kill;
 *   - a busy model's low-priority generation is cancelled at critical with a sentence that says
 *     why, the model is unloaded when its user lets go, and a new load is refused while the
 *     pressure is critical; once it has passed, the model loads again.
 *   - recovery: a memory-mapped model unloaded under pressure leaves its weights in the page cache,
 *     charged to the cgroup; once the hog leaves, the next load is let in within 2 s (those pages
 *     count as available to it), and not while the hog still holds what the model would need.
 * Skipped, with the reason, where no child memory cgroup can be made.
 * usage: test_lifecycle_live MID_MODEL.gguf
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
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "headroom.h"
#include "live_cgroup.h"
#include "skip.h"

#define MiB (1024L * 1024L)
static const long LIMIT_MIB = 448;
static const char *mid_model;

struct seen {
    pthread_mutex_t lock;
    char unload_reason[256];
    int64_t unload_freed;
    int caches_freed, cancelled, refused;
};

static void on_event(const hr_event *event, void *user_data)
{
    struct seen *s = user_data;
    if (event->type == HR_EVENT_PRESSURE) {
        fprintf(stderr, "  pressure %s -> %s: %s\n", hr_pressure_level_name(event->previous_level),
                hr_pressure_level_name(event->level), event->reason);
        return;
    }
    fprintf(stderr, "  %s %s: %s (%.1f MiB freed)\n", event->model ? event->model : "headroom", event->action,
            event->reason, (double)event->bytes_freed / MiB);
    pthread_mutex_lock(&s->lock);
    if (strcmp(event->action, "unloaded") == 0) {
        snprintf(s->unload_reason, sizeof s->unload_reason, "%s", event->reason);
        s->unload_freed = event->bytes_freed;
    }
    s->caches_freed += strcmp(event->action, "caches_freed") == 0;
    s->cancelled += strcmp(event->action, "cancelled") == 0;
    s->refused += strcmp(event->action, "load_refused") == 0;
    pthread_mutex_unlock(&s->lock);
}

struct fixture {
    hr_context *ctx;
    struct seen seen;
    int subscription;
    struct hog hog;
    char cache_dir[128];
};

static int setup(void **state)
{
    if (!make_limited_cgroup(LIMIT_MIB)) {
        *state = NULL;   /* the case skips, with skip_reason */
        return 0;
    }
    struct fixture *f = calloc(1, sizeof *f);
    pthread_mutex_init(&f->seen.lock, NULL);
    if (!hog_start(&f->hog)) return -1;
    hr_context_params params = hr_context_default_params();
    params.thresholds.hold_seconds = 1.0;   /* the default 10 s would only make the test slow */
    snprintf(f->cache_dir, sizeof f->cache_dir, "/tmp/headroom-lifecycle-live-%d", (int)getpid());
    params.cache_dir = f->cache_dir;   /* its own, empty: the test counts the snapshots in it */
    if (hr_context_create(&params, &f->ctx) != HR_OK) return -1;
    if (hr_subscribe(f->ctx, on_event, &f->seen, &f->subscription) != HR_OK) return -1;
    hr_model_params mp = hr_model_default_params();
    mp.n_ctx = 256;
    mp.n_threads = 2;
    mp.load_mode = HR_LOAD_COPY;
    if (hr_registry_add(f->ctx, "mid", mid_model, &mp) != HR_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (!f) return 0;
    hr_unsubscribe(f->ctx, f->subscription);
    if (f->ctx) hr_cache_clear(f->ctx, NULL, NULL, NULL);
    hr_context_free(f->ctx);
    if (f->hog.pid > 0 && hog_pid > 0) hog_stop(&f->hog);
    pthread_mutex_destroy(&f->seen.lock);
    char kv[160];
    snprintf(kv, sizeof kv, "%s/kv", f->cache_dir);
    rmdir(kv);
    rmdir(f->cache_dir);
    free(f);
    remove_limited_cgroup();
    return 0;
}

static enum hr_model_state state_of(hr_context *ctx)
{
    hr_registry_entry *list = NULL;
    size_t n = 0;
    assert_int_equal(hr_registry_list(ctx, &list, &n), HR_OK);
    enum hr_model_state s = list[0].state;
    hr_free(list);
    return s;
}

static int ignore(const char *piece, size_t length, void *user_data)
{
    (void)piece, (void)length, (void)user_data;
    return 0;
}

static uint64_t process_rss(hr_context *ctx)
{
    hr_memory_status m;
    assert_int_equal(hr_memory_sample(ctx, &m), HR_OK);
    return m.process_rss_bytes;
}

/* Grows the hog 1 MiB every 20 ms (50 MB/s, a program filling memory briskly) up to `target`;
 * returns what it holds at the end, or -1 if it was killed. */
static long grow_hog(struct hog *hog, long from, long target)
{
    long held = from;
    for (long mib = from + 1; mib <= target; mib++) {
        held = hog_hold(hog, mib);
        if (held < 0) return -1;
        usleep(20000);
    }
    return held;
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

static void an_idle_model_is_unloaded_before_the_oom_killer_acts(void **state)
{
    struct fixture *f = *state;
    if (!f) skip_because("%s", skip_reason);
    hr_model *model = NULL;
    assert_int_equal(hr_registry_acquire(f->ctx, "mid", &model), HR_OK);
    hr_generate_params g = hr_generate_default_params();
    g.max_tokens = 4;
    assert_int_equal(hr_generate(model, "Once upon a time", &g, ignore, NULL, NULL), HR_OK);
    hr_model_info info;
    hr_model_get_info(model, &info);
    hr_registry_release(f->ctx, model, NAN);   /* idle, with the default 10 minute keep-alive */
    assert_int_equal(state_of(f->ctx), HR_MODEL_READY);

    long target = LIMIT_MIB - 40;
    uint64_t rss = process_rss(f->ctx);
    fprintf(stderr, "  process RSS %.1f MiB with the model; the hog will take %ld of %ld MiB\n",
            (double)rss / MiB, target, LIMIT_MIB);
    /* the point of the test: with the model kept, the hog could not have its memory */
    assert_true((uint64_t)target * MiB + rss > (uint64_t)LIMIT_MIB * MiB);

    long held = grow_hog(&f->hog, 0, target);
    assert_int_equal(held, target);
    assert_int_equal(oom_kills(), 0);
    assert_int_equal(state_of(f->ctx), HR_MODEL_UNLOADED);
    pthread_mutex_lock(&f->seen.lock);
    assert_non_null(strstr(f->seen.unload_reason, "memory pressure"));
    assert_true(f->seen.unload_freed >= (int64_t)(info.weight_bytes / 10 * 9));
    assert_true(f->seen.caches_freed >= 1);
    pthread_mutex_unlock(&f->seen.lock);
}

struct reader {
    hr_context *ctx;
    hr_model *model;
    hr_session *session;
    int result;
    char sentence[512];
};

/* Reads the session to its end as a client would, then lets go of the model. */
static void *read_then_release(void *arg)
{
    struct reader *r = arg;
    char piece[64];
    size_t length;
    while ((r->result = hr_session_read(r->session, piece, sizeof piece, &length, -1)) == HR_OK)
        usleep(200000);   /* a slow reader: the generation outlasts the hog's growth */
    snprintf(r->sentence, sizeof r->sentence, "%s", hr_last_error());
    hr_session_free(r->session);
    hr_registry_release(r->ctx, r->model, NAN);
    return NULL;
}

static void critical_cancels_low_priority_work_and_refuses_loads(void **state)
{
    struct fixture *f = *state;
    if (!f) skip_because("%s", skip_reason);
    struct reader r = { .ctx = f->ctx };
    assert_int_equal(hr_registry_acquire(f->ctx, "mid", &r.model), HR_OK);
    hr_session_params sp = hr_session_default_params();
    sp.queue_capacity = 1;
    sp.generate.max_tokens = 200;
    sp.priority = 0;
    assert_int_equal(hr_session_start(r.model, "Once upon a time", &sp, &r.session), HR_OK);
    pthread_t reader;
    assert_int_equal(pthread_create(&reader, NULL, read_then_release, &r), 0);

    long target = LIMIT_MIB - 40;
    long held = grow_hog(&f->hog, 0, target);
    pthread_join(reader, NULL);
    assert_int_equal(held, target);
    assert_int_equal(oom_kills(), 0);
    assert_int_equal(r.result, HR_ECANCELLED);
    fprintf(stderr, "  the reader got: %s\n", r.sentence);
    assert_non_null(strstr(r.sentence, "memory pressure is critical"));
    assert_int_equal(state_of(f->ctx), HR_MODEL_UNLOADED);
    /* no KV snapshot written (page cache, disk waits) while memory is critically short */
    hr_cache_entry *entries = NULL;
    size_t n_entries = 0;
    assert_int_equal(hr_cache_list(f->ctx, &entries, &n_entries), HR_OK);
    fprintf(stderr, "  KV snapshots after the critical unload: %zu\n", n_entries);
    assert_int_equal(n_entries, 0);
    hr_free(entries);

    /* still critical: a load is refused at once, with the reason */
    assert_int_equal(grow_hog(&f->hog, target, LIMIT_MIB - 12), LIMIT_MIB - 12);
    assert_true(wait_for_level(f->ctx, HR_PRESSURE_CRITICAL, 10));
    hr_model *model = NULL;
    assert_int_equal(hr_registry_acquire(f->ctx, "mid", &model), HR_EMEMORY);
    assert_non_null(strstr(hr_last_error(), "critical"));
    assert_int_equal(oom_kills(), 0);

    /* the pressure passes: the model comes back */
    hog_stop(&f->hog);
    assert_true(wait_for_level(f->ctx, HR_PRESSURE_NORMAL, 15));
    assert_int_equal(hr_registry_acquire(f->ctx, "mid", &model), HR_OK);
    hr_registry_release(f->ctx, model, 0);
    pthread_mutex_lock(&f->seen.lock);
    assert_true(f->seen.cancelled >= 1 && f->seen.refused >= 1);
    pthread_mutex_unlock(&f->seen.lock);
}


/* ---- recovery after pressure --------------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long cgroup_mib(const char *key)
{
    long v = read_key(group.child, group.version == 1 ? "memory.stat" : "memory.stat", key);
    return v < 0 ? -1 : v / MiB;
}

static void print_cgroup(const char *when)
{
    bool v1 = group.version == 1;
    fprintf(stderr, "  %s: cgroup active_file %ld MiB, inactive_file %ld MiB, anon %ld MiB\n", when,
            cgroup_mib(v1 ? "total_active_file" : "active_file"), cgroup_mib(v1 ? "total_inactive_file" : "inactive_file"),
            cgroup_mib(v1 ? "total_rss" : "anon"));
}

/* The recovery case's own cgroup: its limit is sized from the model's estimate, so that the
 * model fits with a margin smaller than its weights. */
struct recovery {
    hr_context *ctx;
    struct seen seen;
    int subscription;
    struct hog hog;
    long limit_mib, estimate_mib, need_mib;
    hr_model_params mp;
};

static int setup_recovery(void **state)
{
    struct recovery *f = calloc(1, sizeof *f);
    f->mp = hr_model_default_params();
    f->mp.n_ctx = 256;
    f->mp.n_threads = 2;
    f->mp.load_mode = HR_LOAD_MMAP;   /* the weights are the file's pages: what a reload reuses */
    /* the estimate, from outside the cgroup (it does not depend on the memory there) */
    hr_context *probe = NULL;
    hr_context_params cp = hr_context_default_params();
    cp.monitor = false;
    if (hr_context_create(&cp, &probe) != HR_OK) return -1;
    hr_preflight_params pp = hr_preflight_default_params();
    pp.n_ctx = f->mp.n_ctx;
    pp.load_mode = f->mp.load_mode;
    hr_preflight_result pf;
    if (hr_preflight(probe, mid_model, &pp, &pf) != HR_OK) return -1;
    hr_context_free(probe);
    f->estimate_mib = (long)(pf.total_bytes / MiB) + 1;
    long weights_mib = (long)(pf.weight_bytes / MiB);
    /* the estimate plus the test's own memory (about 30 MiB) plus an eighth of the weights, over 95%
     * (the preflight keeps the critical band, 5%, free) */
    f->limit_mib = (long)((double)(f->estimate_mib + 30 + weights_mib / 8) / 0.95);
    f->need_mib = f->estimate_mib + f->limit_mib * 5 / 100;
    if (!make_limited_cgroup(f->limit_mib)) {
        free(f);
        *state = NULL;
        return 0;
    }
    pthread_mutex_init(&f->seen.lock, NULL);
    /* the model file's pages are charged to whoever reads them first: to this cgroup, as for a
     * server that loads its model after starting in it */
    int fd = open(mid_model, O_RDONLY);
    if (fd >= 0) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    if (!hog_start(&f->hog)) return -1;
    hr_context_params params = hr_context_default_params();
    params.thresholds.hold_seconds = 1.0;
    if (hr_context_create(&params, &f->ctx) != HR_OK) return -1;
    if (hr_subscribe(f->ctx, on_event, &f->seen, &f->subscription) != HR_OK) return -1;
    if (hr_registry_add(f->ctx, "mid", mid_model, &f->mp) != HR_OK) return -1;
    fprintf(stderr, "  estimate %ld MiB (weights %ld), cgroup limit %ld MiB, a load needs %ld MiB available\n",
            f->estimate_mib, weights_mib, f->limit_mib, f->need_mib);
    *state = f;
    return 0;
}

static int teardown_recovery(void **state)
{
    struct recovery *f = *state;
    if (!f) return 0;
    hr_unsubscribe(f->ctx, f->subscription);
    hr_context_free(f->ctx);
    if (f->hog.pid > 0 && hog_pid > 0) hog_stop(&f->hog);
    pthread_mutex_destroy(&f->seen.lock);
    free(f);
    remove_limited_cgroup();
    return 0;
}

static void a_model_unloaded_under_pressure_loads_again_within_2s_of_the_hog_leaving(void **state)
{
    struct recovery *f = *state;
    if (!f) skip_because("%s", skip_reason);
    hr_model *model = NULL;
    assert_int_equal(hr_registry_acquire(f->ctx, "mid", &model), HR_OK);
    hr_generate_params g = hr_generate_default_params();
    g.max_tokens = 8;
    for (int i = 0; i < 3; i++)   /* every weight read, more than once */
        assert_int_equal(hr_generate(model, "Once upon a time", &g, ignore, NULL, NULL), HR_OK);
    hr_registry_release(f->ctx, model, NAN);
    print_cgroup("loaded");

    /* a hog comes: warn unloads the idle model; the hog grows on to where the model, even with
     * its weights still cached, would not fit */
    long target = f->limit_mib - f->need_mib + 16;
    long held = 0;
    while (state_of(f->ctx) != HR_MODEL_UNLOADED && held >= 0 && held < f->limit_mib - 30) {
        held = hog_hold(&f->hog, held + 1);
        usleep(20000);
    }
    fprintf(stderr, "  unloaded with the hog at %ld MiB; it grows on to %ld MiB\n", held, target);
    assert_int_equal(state_of(f->ctx), HR_MODEL_UNLOADED);
    if (held < target) held = grow_hog(&f->hog, held, target);
    assert_true(held >= target);
    assert_int_equal(oom_kills(), 0);
    print_cgroup("unloaded, the hog there");

    /* wrong the other way: while the hog holds it, the memory is not there, cached weights or not */
    sleep(2);
    int rc = hr_registry_acquire(f->ctx, "mid", &model);
    fprintf(stderr, "  with the hog there: %s: %s\n", hr_strerror(rc), rc == HR_OK ? "loaded" : hr_last_error());
    if (rc == HR_OK) hr_registry_release(f->ctx, model, 0);
    assert_int_equal(rc, HR_EMEMORY);

    /* the hog leaves: the model is served again within 2 s */
    hog_stop(&f->hog);
    double left = now_seconds();
    print_cgroup("the hog gone");
    hr_preflight_params pp = hr_preflight_default_params();
    pp.n_ctx = f->mp.n_ctx;
    pp.load_mode = f->mp.load_mode;
    hr_preflight_result pf;
    assert_int_equal(hr_preflight(f->ctx, mid_model, &pp, &pf), HR_OK);
    fprintf(stderr, "  preflight: %s, %.0f MiB available, %.0f MiB of the file cached\n", hr_verdict_name(pf.verdict),
            (double)pf.available_bytes / MiB, (double)pf.file_cached_bytes / MiB);
    double served = -1;
    char last[1024] = "";
    while (now_seconds() - left < 10.0) {
        rc = hr_registry_acquire(f->ctx, "mid", &model);
        if (rc == HR_OK) {
            served = now_seconds() - left;
            break;
        }
        snprintf(last, sizeof last, "%s", hr_last_error());
        usleep(100000);
    }
    fprintf(stderr, "  served again %.2f s after the hog left%s%s\n", served, served < 0 ? "; last refusal: " : "", last);
    assert_true(served >= 0);
    assert_int_equal(hr_generate(model, "Once upon a time", &g, ignore, NULL, NULL), HR_OK);
    hr_registry_release(f->ctx, model, 0);
    assert_true(served <= 2.0);
    assert_int_equal(oom_kills(), 0);
}

int main(int argc, char **argv)
{
    if (select_cases(&argc, argv) != 0) return 2;
    if (argc != 2) {
        fprintf(stderr, "usage: %s MID_MODEL.gguf\n", argv[0]);
        return 2;
    }
    mid_model = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(an_idle_model_is_unloaded_before_the_oom_killer_acts, setup, teardown),
        cmocka_unit_test_setup_teardown(critical_cancels_low_priority_work_and_refuses_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(a_model_unloaded_under_pressure_loads_again_within_2s_of_the_hog_leaving,
                                        setup_recovery, teardown_recovery),
    };
    int result = run_cases(tests, NULL, NULL);
    live_cgroup_cleanup();
    return result;
}
