/*
 * test_guard_live.c: the degradation guard against a real thrash, contained. First the 158 MiB
 * model decodes normally (the guard learns its speed and says nothing). Then the test moves into
 * a child memory cgroup whose limit then tightens below the model's size, with the weights
 * memory-mapped:
 * the kernel evicts and re-reads them every token, and llama.cpp alone would go on at a fraction
 * of its speed without a word (ENGINE.md: 27.4 -> 1.4 tokens/s for the 1b model). headroom must
 * notice within seconds, say why, cancel the generation, unload the model, and refuse to load it
 * back into the same shortage. The pressure policy is switched off here so that the guard alone
 * is tested (with it on, critical pressure may act first; both are right). The same again with
 * the thrashing generation under a grammar, whose windows are judged as constrained.
 * A last case needs no cgroup: another thread faulting fresh heap pages by the hundred per token
 * must not make the guard cancel a model whose weights are all in memory.
 * usage: test_guard_live MID_MODEL.gguf
 */
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "headroom.h"
#include "live_cgroup.h"
#include "skip.h"

static const long LIMIT_MIB = 120;
static const char *mid_model;

struct seen {
    pthread_mutex_t lock;
    int thrashing, slow;
    char reason[400];
};

static void on_event(const hr_event *event, void *user_data)
{
    struct seen *s = user_data;
    if (event->type != HR_EVENT_DEGRADED) return;
    fprintf(stderr, "  degraded (%s): %.1f tokens/s, expected %.1f, %.0f faults/token: %s\n", event->action,
            event->tokens_per_second, event->expected_tokens_per_second, event->faults_per_token, event->reason);
    pthread_mutex_lock(&s->lock);
    if (strcmp(event->action, "thrashing") == 0) s->thrashing++;
    else s->slow++;
    snprintf(s->reason, sizeof s->reason, "%s", event->reason);
    pthread_mutex_unlock(&s->lock);
}

/* Runs one greedy generation through the registry, under `grammar` when not NULL; returns its
 * result and stats. */
static int generate(hr_context *ctx, int max_tokens, const char *grammar, hr_generation_stats *stats, char *sentence,
                    size_t size)
{
    hr_model *model = NULL;
    int rc = hr_registry_acquire(ctx, "mid", &model);
    if (rc != HR_OK) {
        snprintf(sentence, size, "%s", hr_last_error());
        return rc;
    }
    hr_session_params sp = hr_session_default_params();
    sp.generate.max_tokens = max_tokens;
    sp.generate.temperature = 0;
    sp.generate.grammar = grammar;
    hr_session *session = NULL;
    assert_int_equal(hr_session_start(model, "Once upon a time", &sp, &session), HR_OK);
    char piece[64];
    size_t length;
    while ((rc = hr_session_read(session, piece, sizeof piece, &length, -1)) == HR_OK) {
    }
    snprintf(sentence, size, "%s", hr_last_error());
    hr_session_stats(session, stats);
    hr_session_free(session);
    hr_registry_release(ctx, model, NAN);   /* stays loaded: the limit tightens under it */
    return rc;
}

/* The guard's own account of each window, so that a failure shows what it measured. */
static void guard_log(enum hr_log_level level, const char *message, void *user_data)
{
    (void)level;
    (void)user_data;
    if (strstr(message, "guard") || strstr(message, "page faults") || strstr(message, "evicted"))
        fprintf(stderr, "  log: %s\n", message);
}

/* A context with the guard alone acting (pressure actions off), `seen` subscribed to its events,
 * and "mid" in its registry, memory-mapped, with `threads` decode threads. */
static hr_context *guarded_context(struct seen *seen, int32_t threads, int *subscription)
{
    pthread_mutex_init(&seen->lock, NULL);
    hr_context_params params = hr_context_default_params();
    params.pressure_actions = false;
    params.log_fn = guard_log;
    params.log_level = HR_LOG_DEBUG;
    hr_context *ctx = NULL;
    assert_int_equal(hr_context_create(&params, &ctx), HR_OK);
    assert_int_equal(hr_subscribe(ctx, on_event, seen, subscription), HR_OK);
    hr_model_params mp = hr_model_default_params();
    mp.n_ctx = 256;
    mp.n_threads = threads;
    mp.load_mode = HR_LOAD_MMAP;
    assert_int_equal(hr_registry_add(ctx, "mid", mid_model, &mp), HR_OK);
    return ctx;
}

/* The thrash case; the thrashing generation samples under `grammar` when not NULL (its windows
 * are judged as constrained: no speed learnt from them, the thrash confirmed on the file). */
static void thrash_case(const char *grammar)
{
    struct seen seen = { 0 };
    int subscription;
    hr_context *ctx = guarded_context(&seen, 2, &subscription);

    /* drop the file's pages, so that in the cgroup they are read (and charged) anew */
    int fd = open(mid_model, O_RDONLY);
    assert_true(fd >= 0);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    if (!make_limited_cgroup(400)) {
        hr_unsubscribe(ctx, subscription);
        hr_context_free(ctx);
        skip_because("%s", skip_reason);
    }

    /* healthy: room enough (preflight says so), the guard learns the speed and stays quiet */
    hr_generation_stats healthy;
    char sentence[600];
    assert_int_equal(generate(ctx, 48, NULL, &healthy, sentence, sizeof sentence), HR_EOF);
    fprintf(stderr, "  healthy: %.1f tokens/s\n", healthy.tokens_per_second);
    assert_int_equal(seen.thrashing, 0);

    /* the limit tightens below the model's size (as when a container's limit is lowered, or a
     * program beside it takes the rest): the mapped weights no longer fit */
    char limit[32];
    snprintf(limit, sizeof limit, "%ld", LIMIT_MIB * 1024L * 1024L);
    assert_true(write_file(group.child, "memory.limit_in_bytes", limit) ||
                write_file(group.child, "memory.max", limit));

    hr_generation_stats thrashed;
    int rc = generate(ctx, 200, grammar, &thrashed, sentence, sizeof sentence);
    fprintf(stderr, "  in %ld MiB%s: %d tokens at %.1f tokens/s, then: %s\n", LIMIT_MIB,
            grammar ? ", under a grammar" : "", thrashed.generated_tokens, thrashed.tokens_per_second, sentence);
    assert_int_equal(rc, HR_ECANCELLED);
    assert_non_null(strstr(sentence, "page faults"));
    assert_true(thrashed.generated_tokens < 200);
    pthread_mutex_lock(&seen.lock);
    assert_true(seen.thrashing >= 1);
    pthread_mutex_unlock(&seen.lock);

    hr_registry_entry *list = NULL;
    size_t n = 0;
    assert_int_equal(hr_registry_list(ctx, &list, &n), HR_OK);
    assert_int_equal(list[0].state, HR_MODEL_UNLOADED);
    assert_non_null(strstr(list[0].last_unload_reason, "thrash"));
    hr_free(list);

    /* the shortage is still there: it is not loaded back into it */
    hr_model *model = NULL;
    assert_int_equal(hr_registry_acquire(ctx, "mid", &model), HR_EMEMORY);
    fprintf(stderr, "  load again: %s\n", hr_last_error());
    assert_non_null(strstr(hr_last_error(), "thrashed"));

    hr_unsubscribe(ctx, subscription);
    hr_context_free(ctx);
    remove_limited_cgroup();
    pthread_mutex_destroy(&seen.lock);
}

static void a_thrashing_model_is_caught_cancelled_unloaded_and_kept_out(void **state)
{
    (void)state;
    thrash_case(NULL);
}

/* A generation under a grammar (JSON mode, tool calls) masks the vocabulary every token, which
 * faults fresh pages and is slower by nature; its thrash is caught all the same. */
static void a_thrash_under_a_grammar_is_caught_too(void **state)
{
    (void)state;
    thrash_case("root ::= [a-z ]{1000}");
}

/* A thread that maps, touches and unmaps 16 MiB of anonymous memory in a loop: thousands of
 * minor page faults a second in the same process, none of them the model's weights. */
static atomic_bool churning;

static void *churn(void *arg)
{
    (void)arg;
    const size_t size = 16u << 20;
    while (atomic_load(&churning)) {
        char *block = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (block == MAP_FAILED) break;
        for (size_t i = 0; i < size; i += 4096) block[i] = 1;
        munmap(block, size);
    }
    return NULL;
}

static void faults_elsewhere_leave_a_resident_model_alone(void **state)
{
    (void)state;
    struct seen seen = { 0 };
    int subscription;
    hr_context *ctx = guarded_context(&seen, 1, &subscription);

    /* the faults start before the first token, so the guard never sees a quiet window to learn
     * the model's speed from: judged on faults alone, every window would look like thrash */
    atomic_store(&churning, true);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, churn, NULL), 0);
    hr_generation_stats stats;
    char sentence[600];
    int rc = generate(ctx, 160, NULL, &stats, sentence, sizeof sentence);
    fprintf(stderr, "  with a faulting thread beside it: %d tokens at %.1f tokens/s: %s\n", stats.generated_tokens,
            stats.tokens_per_second, rc == HR_EOF ? "completed" : sentence);
    assert_int_equal(rc, HR_EOF);
    assert_int_equal(stats.generated_tokens, 160);
    /* short generations too: a window of one that the next one confirms */
    for (int i = 0; i < 6; i++) {
        rc = generate(ctx, 12, NULL, &stats, sentence, sizeof sentence);
        if (rc != HR_EOF) fail_msg("short generation %d: %s", i, sentence);
    }
    atomic_store(&churning, false);
    pthread_join(thread, NULL);
    pthread_mutex_lock(&seen.lock);
    assert_int_equal(seen.thrashing, 0);
    pthread_mutex_unlock(&seen.lock);

    hr_unsubscribe(ctx, subscription);
    hr_context_free(ctx);
    pthread_mutex_destroy(&seen.lock);
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
        cmocka_unit_test(a_thrashing_model_is_caught_cancelled_unloaded_and_kept_out),
        cmocka_unit_test(a_thrash_under_a_grammar_is_caught_too),
        cmocka_unit_test(faults_elsewhere_leave_a_resident_model_alone),
    };
    int result = run_cases(tests, NULL, NULL);
    live_cgroup_cleanup();
    return result;
}
