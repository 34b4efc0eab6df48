/*
 * test_registry.c: the model registry on the real engine: keep-alive 0 and a short keep-alive
 * unload and give the memory back (RSS falls by at least 90% of the weights), a use resets the
 * deadline, a release right after the last piece still expires, pins, manual unload (refused while in use, or cancelling cleanly), load failures,
 * and many threads acquiring and releasing two models at once.
 * usage: test_registry TINY_MODEL.gguf MID_MODEL.gguf SCRATCH_DIR
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "headroom.h"

static const char *tiny_model, *mid_model, *scratch;

/* ---- what the registry tells subscribers ---------------------------------------------------- */

struct seen {
    pthread_mutex_t lock;
    char action[32], model[128], reason[256];
    int64_t bytes_freed;
    int unloads, loads, failures;
};

static void on_event(const hr_event *event, void *user_data)
{
    struct seen *s = user_data;
    if (event->type != HR_EVENT_MODEL && event->type != HR_EVENT_ACTION) return;
    pthread_mutex_lock(&s->lock);
    snprintf(s->action, sizeof s->action, "%s", event->action);
    snprintf(s->model, sizeof s->model, "%s", event->model ? event->model : "");
    snprintf(s->reason, sizeof s->reason, "%s", event->reason ? event->reason : "");
    s->bytes_freed = event->bytes_freed;
    if (strcmp(event->action, "unloaded") == 0) s->unloads++;
    if (strcmp(event->action, "loaded") == 0) s->loads++;
    if (strcmp(event->action, "load_failed") == 0) s->failures++;
    pthread_mutex_unlock(&s->lock);
}

struct fixture {
    hr_context *ctx;
    struct seen seen;
    int subscription;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    pthread_mutex_init(&f->seen.lock, NULL);
    hr_context_params params = hr_context_default_params();
    params.monitor = false;   /* keep-alive needs no pressure monitor */
    if (hr_context_create(&params, &f->ctx) != HR_OK) return -1;
    if (hr_subscribe(f->ctx, on_event, &f->seen, &f->subscription) != HR_OK) return -1;
    hr_model_params mp = hr_model_default_params();
    mp.n_ctx = 256;
    mp.n_threads = 2;
    if (hr_registry_add(f->ctx, "tiny", tiny_model, &mp) != HR_OK) return -1;
    mp.load_mode = HR_LOAD_COPY;   /* every weight in anonymous memory: the whole model is resident */
    if (hr_registry_add(f->ctx, "mid", mid_model, &mp) != HR_OK) return -1;
    mp.load_mode = HR_LOAD_MMAP;
    if (hr_registry_add(f->ctx, "mid-mmap", mid_model, &mp) != HR_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hr_unsubscribe(f->ctx, f->subscription);
    hr_context_free(f->ctx);
    pthread_mutex_destroy(&f->seen.lock);
    free(f);
    return 0;
}

static hr_registry_entry entry_of(hr_context *ctx, const char *name)
{
    hr_registry_entry *list = NULL, found = { 0 };
    size_t n = 0;
    assert_int_equal(hr_registry_list(ctx, &list, &n), HR_OK);
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].name, name) == 0) found = list[i];
    hr_free(list);
    assert_string_equal(found.name, name);
    return found;
}

static bool wait_for_state(hr_context *ctx, const char *name, enum hr_model_state state, double seconds)
{
    for (double waited = 0; waited < seconds; waited += 0.05) {
        if (entry_of(ctx, name).state == state) return true;
        usleep(50000);
    }
    return entry_of(ctx, name).state == state;
}

static int ignore(const char *piece, size_t length, void *user_data)
{
    (void)piece, (void)length, (void)user_data;
    return 0;
}

static void generate_a_little(hr_model *model)
{
    hr_generate_params g = hr_generate_default_params();
    g.max_tokens = 4;
    g.temperature = 0;
    assert_int_equal(hr_generate(model, "Once upon a time", &g, ignore, NULL, NULL), HR_OK);
}

#ifdef HEADROOM_SANITIZED
static const bool measure_rss = false;   /* a sanitizer's quarantine keeps freed memory */
#else
static const bool measure_rss = true;
#endif

static uint64_t rss(hr_context *ctx, uint64_t *file_rss)
{
    hr_memory_status m;
    assert_int_equal(hr_memory_sample(ctx, &m), HR_OK);
    if (file_rss) *file_rss = m.process_file_rss_bytes;
    return m.process_rss_bytes;
}

/* ---- the tests -------------------------------------------------------------------------------- */

static void keep_alive_zero_unloads_and_returns_the_memory(void **state)
{
    struct fixture *f = *state;
    hr_model *model = NULL;
    assert_int_equal(hr_registry_acquire(f->ctx, "mid", &model), HR_OK);
    assert_int_equal(entry_of(f->ctx, "mid").state, HR_MODEL_BUSY);
    generate_a_little(model);
    hr_model_info info;
    assert_int_equal(hr_model_get_info(model, &info), HR_OK);
    uint64_t before = rss(f->ctx, NULL);
    hr_registry_release(f->ctx, model, 0);   /* Ollama's keep_alive 0: unload after this request */
    uint64_t after = rss(f->ctx, NULL);
    hr_registry_entry e = entry_of(f->ctx, "mid");
    assert_int_equal(e.state, HR_MODEL_UNLOADED);
    assert_non_null(strstr(e.last_unload_reason, "keep_alive 0"));
    fprintf(stderr, "  mid (copy): weights %.1f MiB, RSS %.1f -> %.1f MiB\n", info.weight_bytes / 1048576.0,
            before / 1048576.0, after / 1048576.0);
    pthread_mutex_lock(&f->seen.lock);
    assert_string_equal(f->seen.action, "unloaded");
    assert_string_equal(f->seen.model, "mid");
    if (measure_rss) {
        assert_true(before > after && before - after >= info.weight_bytes / 10 * 9);
        assert_true(f->seen.bytes_freed >= (int64_t)(info.weight_bytes / 10 * 9));   /* measured, reported */
    }
    pthread_mutex_unlock(&f->seen.lock);
}

static void a_memory_mapped_model_gives_back_its_resident_pages(void **state)
{
    struct fixture *f = *state;
    hr_model *model = NULL;
    uint64_t file_start = 0;
    rss(f->ctx, &file_start);
    assert_int_equal(hr_registry_acquire(f->ctx, "mid-mmap", &model), HR_OK);
    generate_a_little(model);
    uint64_t file_loaded = 0;
    uint64_t before = rss(f->ctx, &file_loaded);
    hr_registry_release(f->ctx, model, 0);
    uint64_t file_after = 0;
    uint64_t after = rss(f->ctx, &file_after);
    /* mapped weights are resident only where read (the token embeddings mostly are not) */
    uint64_t held = file_loaded - file_start;
    fprintf(stderr, "  mid (mmap): file-backed RSS held %.1f MiB; RSS %.1f -> %.1f MiB\n", held / 1048576.0,
            before / 1048576.0, after / 1048576.0);
    if (measure_rss) {
        assert_true(held > 50u << 20);
        assert_true(before - after >= held / 10 * 9);
    }
}

static void a_short_keep_alive_expires_and_a_use_resets_it(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(hr_registry_set_keep_alive(f->ctx, "tiny", 1.5), HR_OK);
    assert_int_equal(hr_registry_load(f->ctx, "tiny"), HR_OK);
    hr_registry_entry first = entry_of(f->ctx, "tiny");
    assert_int_equal(first.state, HR_MODEL_READY);
    assert_true(first.expires_at > first.last_used_at && first.expires_at - first.last_used_at < 1.6);

    usleep(500000);
    hr_model *model = NULL;
    assert_int_equal(hr_registry_acquire(f->ctx, "tiny", &model), HR_OK);
    assert_true(entry_of(f->ctx, "tiny").expires_at == 0);   /* in use: no deadline */
    hr_registry_release(f->ctx, model, NAN);
    hr_registry_entry second = entry_of(f->ctx, "tiny");
    assert_true(second.expires_at > first.expires_at + 0.4);   /* the use moved it */

    assert_true(wait_for_state(f->ctx, "tiny", HR_MODEL_UNLOADED, 10));
    assert_string_equal(entry_of(f->ctx, "tiny").last_unload_reason, "keep-alive expired");
    assert_int_equal(entry_of(f->ctx, "tiny").loads, 1);

    /* a request's own keep_alive wins over the model's */
    assert_int_equal(hr_registry_acquire(f->ctx, "tiny", &model), HR_OK);
    hr_registry_release(f->ctx, model, -1);
    usleep(2000000);
    assert_int_equal(entry_of(f->ctx, "tiny").state, HR_MODEL_READY);
    assert_true(entry_of(f->ctx, "tiny").expires_at == 0);
}

/* A release that comes as soon as the last piece is read, while the worker is still finishing the
 * session: the lifecycle planned while the model worked (no deadline then), so the end of the
 * work must wake it, or the keep-alive never expires (found by the Python suite). */
static void a_release_right_after_the_last_piece_still_expires(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(hr_registry_set_keep_alive(f->ctx, "tiny", 0.5), HR_OK);
    for (int round = 0; round < 5; round++) {
        hr_model *model = NULL;
        assert_int_equal(hr_registry_acquire(f->ctx, "tiny", &model), HR_OK);
        hr_session_params sp = hr_session_default_params();
        sp.generate.max_tokens = 4;
        sp.generate.temperature = 0;
        hr_session *session = NULL;
        assert_int_equal(hr_session_start(model, "Once upon a time", &sp, &session), HR_OK);
        char piece[256];
        size_t length;
        int rc;
        while ((rc = hr_session_read(session, piece, sizeof piece, &length, 0.1)) == HR_OK || rc == HR_EAGAIN) {
        }
        assert_int_equal(rc, HR_EOF);
        hr_generation_stats stats;
        assert_int_equal(hr_session_stats(session, &stats), HR_OK);
        hr_session_free(session);
        hr_registry_release(f->ctx, model, NAN);   /* at once: the worker may still hold the session */
        if (!wait_for_state(f->ctx, "tiny", HR_MODEL_UNLOADED, 10))
            fail_msg("round %d: a 0.5 s keep-alive had not expired 10 s after the release", round);
        assert_string_equal(entry_of(f->ctx, "tiny").last_unload_reason, "keep-alive expired");
    }
}

static void pinned_models_stay_until_unpinned(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(hr_registry_pin(f->ctx, "tiny", true), HR_OK);
    hr_model *model = NULL;
    assert_int_equal(hr_registry_acquire(f->ctx, "tiny", &model), HR_OK);
    hr_registry_release(f->ctx, model, 0);
    assert_int_equal(entry_of(f->ctx, "tiny").state, HR_MODEL_READY);
    assert_true(entry_of(f->ctx, "tiny").pinned);
    assert_int_equal(hr_registry_set_keep_alive(f->ctx, "tiny", 0.2), HR_OK);
    usleep(600000);
    assert_int_equal(entry_of(f->ctx, "tiny").state, HR_MODEL_READY);
    assert_int_equal(hr_registry_pin(f->ctx, "tiny", false), HR_OK);
    assert_true(wait_for_state(f->ctx, "tiny", HR_MODEL_UNLOADED, 10));
}

static void manual_unload_refuses_or_cancels_a_busy_model(void **state)
{
    struct fixture *f = *state;
    hr_model *model = NULL;
    assert_int_equal(hr_registry_acquire(f->ctx, "tiny", &model), HR_OK);
    hr_session_params sp = hr_session_default_params();
    sp.queue_capacity = 1;   /* nobody reads: the worker waits with the model busy */
    sp.generate.max_tokens = 200;
    hr_session *session = NULL;
    assert_int_equal(hr_session_start(model, "Once upon a time", &sp, &session), HR_OK);
    usleep(200000);

    assert_int_equal(hr_registry_unload(f->ctx, "tiny", false), HR_EBUSY);
    assert_non_null(strstr(hr_last_error(), "in use"));
    assert_int_equal(hr_registry_unload(f->ctx, "tiny", true), HR_OK);
    assert_int_equal(entry_of(f->ctx, "tiny").state, HR_MODEL_UNLOADING);

    char piece[64];
    size_t length;
    int rc;
    while ((rc = hr_session_read(session, piece, sizeof piece, &length, 5)) == HR_OK) {
    }
    assert_int_equal(rc, HR_ECANCELLED);
    assert_non_null(strstr(hr_last_error(), "unloaded on request"));
    hr_session_free(session);
    hr_registry_release(f->ctx, model, NAN);   /* the last user: now it goes */
    assert_int_equal(entry_of(f->ctx, "tiny").state, HR_MODEL_UNLOADED);
    assert_int_equal(hr_registry_unload(f->ctx, "tiny", false), HR_OK);   /* already: fine */
}

static void an_unloaded_conversation_comes_back_with_the_model(void **state)
{
    struct fixture *f = *state;
    hr_generate_params g = hr_generate_default_params();
    g.max_tokens = 8;
    g.temperature = 0;
    const char *prompt = "Zebras and owls met at the edge of a quiet river";
    hr_model *model = NULL;
    hr_generation_stats stats;
    assert_int_equal(hr_registry_acquire(f->ctx, "tiny", &model), HR_OK);
    assert_int_equal(hr_generate(model, prompt, &g, ignore, NULL, &stats), HR_OK);
    assert_true(stats.cached_tokens <= 1);   /* at most the start token is shared with earlier tests' snapshots */
    hr_registry_release(f->ctx, model, 0);   /* unloaded: the conversation goes to a KV snapshot */
    assert_int_equal(entry_of(f->ctx, "tiny").state, HR_MODEL_UNLOADED);

    assert_int_equal(hr_registry_acquire(f->ctx, "tiny", &model), HR_OK);   /* restored with the load */
    assert_int_equal(hr_generate(model, prompt, &g, ignore, NULL, &stats), HR_OK);
    fprintf(stderr, "  after a reload: %d of %d prompt tokens came from the snapshot\n", stats.cached_tokens,
            stats.prompt_tokens);
    assert_true(stats.cached_tokens > 0 && stats.cached_tokens == stats.prompt_tokens - 1);
    hr_registry_release(f->ctx, model, NAN);
}

static void bad_names_and_bad_files_fail_clearly(void **state)
{
    struct fixture *f = *state;
    hr_model *model = NULL;
    assert_int_equal(hr_registry_acquire(f->ctx, "nope", &model), HR_ENOENT);
    assert_null(model);
    assert_int_equal(hr_registry_add(f->ctx, "tiny", tiny_model, NULL), HR_EINVAL);   /* taken */

    char path[1024];
    snprintf(path, sizeof path, "%s/not-a-model.gguf", scratch);
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs("this is text, not GGUF\n", file);
    fclose(file);
    assert_int_equal(hr_registry_add(f->ctx, "broken", path, NULL), HR_OK);
    assert_int_equal(hr_registry_acquire(f->ctx, "broken", &model), HR_EFORMAT);
    assert_non_null(strstr(hr_last_error(), path));
    assert_int_equal(entry_of(f->ctx, "broken").state, HR_MODEL_UNLOADED);
    pthread_mutex_lock(&f->seen.lock);
    assert_int_equal(f->seen.failures, 1);
    pthread_mutex_unlock(&f->seen.lock);
    /* nothing changed for the others */
    assert_int_equal(hr_registry_load(f->ctx, "tiny"), HR_OK);
    assert_int_equal(entry_of(f->ctx, "tiny").state, HR_MODEL_READY);
}

static double process_cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A keep-alive that is infinite, not a number, or absurdly long (from a client's "1e300h") once
 * overflowed the lifecycle thread's deadline: it then woke at once, for ever, at 100% CPU. The
 * registry refuses such a keep-alive where it can, and reads one it cannot refuse (a release's)
 * as "never"; the thread sleeps either way. */
static void an_absurd_keep_alive_never_makes_the_lifecycle_spin(void **state)
{
    struct fixture *f = *state;
    const double absurd[] = { INFINITY, 1e300, 1e300 * 3600, HR_KEEP_ALIVE_MAX * 2 };
    for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++) {
        assert_int_equal(hr_registry_set_keep_alive(f->ctx, "tiny", absurd[i]), HR_EINVAL);
        assert_non_null(strstr(hr_last_error(), "never"));
    }
    assert_int_equal(hr_registry_set_keep_alive(f->ctx, "tiny", -INFINITY), HR_EINVAL);
    for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++) {
        hr_model *model = NULL;
        assert_int_equal(hr_registry_acquire(f->ctx, "tiny", &model), HR_OK);
        hr_registry_release(f->ctx, model, absurd[i]);
        hr_registry_entry e = entry_of(f->ctx, "tiny");
        assert_int_equal(e.state, HR_MODEL_READY);
        assert_true(e.expires_at == 0);   /* never */
        double cpu = process_cpu_seconds();
        usleep(1000000);
        cpu = process_cpu_seconds() - cpu;
        fprintf(stderr, "  keep_alive %g: %.3f s of CPU in 1 s idle\n", absurd[i], cpu);
        assert_true(cpu < 0.3);   /* a spinning thread takes about 1 s */
    }
}

/* headroom.h promises a callback may call any headroom function; the bus once held its publish
 * lock across callbacks, so a subscriber that unloaded a model (which publishes "unloaded")
 * deadlocked the thread that caused the first event. */
struct chained_unload {
    hr_context *ctx;
    int rc;
    bool called;
    bool mid_unloaded_seen;
};

static void unload_mid_when_tiny_goes(const hr_event *event, void *user_data)
{
    struct chained_unload *c = user_data;
    if (event->type != HR_EVENT_MODEL || strcmp(event->action, "unloaded") != 0 || !event->model) return;
    if (strcmp(event->model, "mid-mmap") == 0) c->mid_unloaded_seen = true;
    if (strcmp(event->model, "tiny") != 0 || c->called) return;
    c->called = true;
    c->rc = hr_registry_unload(c->ctx, "mid-mmap", false);
}

static void *unload_tiny(void *arg)
{
    hr_registry_unload(arg, "tiny", false);
    return NULL;
}

static void a_subscriber_may_unload_from_its_callback(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(hr_registry_load(f->ctx, "tiny"), HR_OK);
    assert_int_equal(hr_registry_load(f->ctx, "mid-mmap"), HR_OK);
    struct chained_unload c = { .ctx = f->ctx, .rc = -12345 };
    int id;
    assert_int_equal(hr_subscribe(f->ctx, unload_mid_when_tiny_goes, &c, &id), HR_OK);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, unload_tiny, f->ctx), 0);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    if (pthread_timedjoin_np(thread, NULL, &deadline) != 0)
        fail_msg("hr_registry_unload from an event callback deadlocked (still stuck after 30 s)");
    hr_unsubscribe(f->ctx, id);
    assert_true(c.called);
    assert_int_equal(c.rc, HR_OK);
    assert_true(c.mid_unloaded_seen);   /* the nested event reached subscribers too */
    assert_int_equal(entry_of(f->ctx, "tiny").state, HR_MODEL_UNLOADED);
    assert_int_equal(entry_of(f->ctx, "mid-mmap").state, HR_MODEL_UNLOADED);
}

/* Requests that wait for a load get its outcome: a failed load is not run again by each waiter
 * (each once ran the preflight and the load itself, one after another). The first load is held
 * in its "load_failed" callback until the other threads are waiting for it. */
struct shared_failure {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int failures;           /* "load_failed" events for "broken" */
    bool first_failing;     /* the first load is in its callback ... */
    bool others_waiting;    /* ... and may go on */
};

static void hold_the_first_failure(const hr_event *event, void *user_data)
{
    struct shared_failure *s = user_data;
    if (event->type != HR_EVENT_MODEL || strcmp(event->action, "load_failed") != 0) return;
    pthread_mutex_lock(&s->lock);
    if (++s->failures == 1) {
        s->first_failing = true;
        pthread_cond_broadcast(&s->changed);
        while (!s->others_waiting) pthread_cond_wait(&s->changed, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
}

struct acquirer {
    hr_context *ctx;
    int rc;
    char sentence[1024];
};

static void *acquire_broken(void *arg)
{
    struct acquirer *a = arg;
    hr_model *model = NULL;
    a->rc = hr_registry_acquire(a->ctx, "broken", &model);
    snprintf(a->sentence, sizeof a->sentence, "%s", hr_last_error());
    if (a->rc == HR_OK) hr_registry_release(a->ctx, model, 0);
    return NULL;
}

static void waiters_share_a_failed_load(void **state)
{
    struct fixture *f = *state;
    char path[1024];
    snprintf(path, sizeof path, "%s/shared-failure.gguf", scratch);
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs("GGUF and then nothing a reader could use\n", file);
    fclose(file);
    assert_int_equal(hr_registry_add(f->ctx, "broken", path, NULL), HR_OK);
    struct shared_failure s = { .failures = 0 };
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.changed, NULL);
    int id;
    assert_int_equal(hr_subscribe(f->ctx, hold_the_first_failure, &s, &id), HR_OK);

    enum { N = 5 };
    struct acquirer a[N];
    pthread_t threads[N];
    for (int i = 0; i < N; i++) a[i] = (struct acquirer){ .ctx = f->ctx };
    assert_int_equal(pthread_create(&threads[0], NULL, acquire_broken, &a[0]), 0);
    pthread_mutex_lock(&s.lock);
    while (!s.first_failing) pthread_cond_wait(&s.changed, &s.lock);
    pthread_mutex_unlock(&s.lock);
    for (int i = 1; i < N; i++) assert_int_equal(pthread_create(&threads[i], NULL, acquire_broken, &a[i]), 0);
    usleep(500000);   /* plenty for them to reach the wait: the entry is LOADING until we let go */
    assert_int_equal(entry_of(f->ctx, "broken").state, HR_MODEL_LOADING);
    pthread_mutex_lock(&s.lock);
    s.others_waiting = true;
    pthread_cond_broadcast(&s.changed);
    pthread_mutex_unlock(&s.lock);
    for (int i = 0; i < N; i++) pthread_join(threads[i], NULL);

    fprintf(stderr, "  %d load_failed events for %d requests; the first got: %s\n", s.failures, N, a[0].sentence);
    assert_int_equal(s.failures, 1);   /* one load attempt */
    for (int i = 0; i < N; i++) {
        assert_int_equal(a[i].rc, a[0].rc);
        assert_string_equal(a[i].sentence, a[0].sentence);
    }
    assert_int_not_equal(a[0].rc, HR_OK);
    assert_non_null(strstr(a[0].sentence, path));
    assert_int_equal(entry_of(f->ctx, "broken").state, HR_MODEL_UNLOADED);
    /* a request that comes after the failure tries again: the file may have been fixed */
    hr_model *model = NULL;
    assert_int_equal(hr_registry_acquire(f->ctx, "broken", &model), a[0].rc);
    hr_unsubscribe(f->ctx, id);
    assert_int_equal(s.failures, 2);
    pthread_cond_destroy(&s.changed);
    pthread_mutex_destroy(&s.lock);
}

struct worker {
    hr_context *ctx;
    int index;
    int failures;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    const char *names[] = { "tiny", "mid-mmap" };
    for (int i = 0; i < 6; i++) {
        const char *name = names[(w->index + i) % 2];
        hr_model *model = NULL;
        if (hr_registry_acquire(w->ctx, name, &model) != HR_OK) {
            fprintf(stderr, "  acquire %s: %s\n", name, hr_last_error());
            w->failures++;
            continue;
        }
        hr_session_params sp = hr_session_default_params();
        sp.generate.max_tokens = 3;
        hr_session *session = NULL;
        if (hr_session_start(model, "Hello", &sp, &session) == HR_OK) {
            char piece[64];
            size_t length;
            int rc;
            while ((rc = hr_session_read(session, piece, sizeof piece, &length, -1)) == HR_OK) {
            }
            if (rc != HR_EOF) w->failures++;
            hr_session_free(session);
        } else {
            w->failures++;
        }
        /* every other release unloads at once when no one else holds the model */
        hr_registry_release(w->ctx, model, (i + w->index) % 2 ? 0 : NAN);
    }
    return NULL;
}

static void many_threads_share_two_models(void **state)
{
    struct fixture *f = *state;
    enum { N = 6 };
    pthread_t threads[N];
    struct worker workers[N];
    for (int i = 0; i < N; i++) {
        workers[i] = (struct worker){ .ctx = f->ctx, .index = i };
        assert_int_equal(pthread_create(&threads[i], NULL, hammer, &workers[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(workers[i].failures, 0);
    }
    hr_registry_entry *list = NULL;
    size_t n = 0;
    assert_int_equal(hr_registry_list(f->ctx, &list, &n), HR_OK);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(list[i].users, 0);
        if (i > 0) assert_true(list[i - 1].last_used_at <= list[i].last_used_at);   /* LRU first */
    }
    hr_free(list);
    char *json = hr_registry_json(f->ctx);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"name\":\"mid-mmap\""));
    hr_free(json);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s TINY_MODEL.gguf MID_MODEL.gguf SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    tiny_model = argv[1];
    mid_model = argv[2];
    scratch = argv[3];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(keep_alive_zero_unloads_and_returns_the_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(a_memory_mapped_model_gives_back_its_resident_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(a_short_keep_alive_expires_and_a_use_resets_it, setup, teardown),
        cmocka_unit_test_setup_teardown(a_release_right_after_the_last_piece_still_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(pinned_models_stay_until_unpinned, setup, teardown),
        cmocka_unit_test_setup_teardown(manual_unload_refuses_or_cancels_a_busy_model, setup, teardown),
        cmocka_unit_test_setup_teardown(an_unloaded_conversation_comes_back_with_the_model, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_names_and_bad_files_fail_clearly, setup, teardown),
        cmocka_unit_test_setup_teardown(many_threads_share_two_models, setup, teardown),
        cmocka_unit_test_setup_teardown(an_absurd_keep_alive_never_makes_the_lifecycle_spin, setup, teardown),
        cmocka_unit_test_setup_teardown(a_subscriber_may_unload_from_its_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(waiters_share_a_failed_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
