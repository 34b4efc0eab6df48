/*
 * test_batch.c: continuous batching on the real engine (runtime/batch.c): several sessions on one
 * model decode together and each gives the text it gives alone (greedy and seeded sampling,
 * sessions joining and leaving, prompts read in chunks while others stream, more sessions than
 * slots); a reader that stops pauses only its own sequence; cancelling one leaves the others'
 * text intact; hr_model_cancel stops what runs and nothing that comes after; a session under a
 * JSON grammar with logprobs beside one without gives valid JSON, its own logprobs and the
 * other's text alone.
 * usage: test_batch MODEL.gguf
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "headroom.h"

static const char *model_path;

enum { SLOTS = 4, TEXT = 8192 };

struct fixture {
    hr_context *ctx;
    hr_model *model;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    hr_context_params params = hr_context_default_params();
    params.monitor = false;
    params.metrics_capacity = 64;
    if (hr_context_create(&params, &f->ctx) != HR_OK) return -1;
    hr_model_params model_params = hr_model_default_params();
    model_params.slots = SLOTS;
    model_params.n_ctx = 1024;
    /* Small, so long prompts are read in many chunks. A step beside running streams reads
     * max(16, n_batch / 4) prompt tokens, alone n_batch: at 16 both are 16, so a prompt is cut
     * into the same chunks whatever runs beside it. (llama.cpp's arithmetic, so a near tie in a
     * random model's logits, depends on the chunk size: hr_generate gives other text for a long
     * prompt at n_batch 64 than at 16, with or without batching.) */
    model_params.n_batch = 16;
    model_params.n_threads = 2;
    if (hr_model_load(f->ctx, model_path, &model_params, &f->model) != HR_OK) {
        fprintf(stderr, "load: %s\n", hr_last_error());
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hr_model_free(f->model);
    hr_context_free(f->ctx);
    free(f);
    return 0;
}

static int collect(const char *piece, size_t length, void *user_data)
{
    strncat(user_data, piece, length);
    return 0;
}

/* A prompt of about `words` words, different for each seed. */
static void make_prompt(char *out, size_t size, int words, int seed)
{
    static const char *const vocabulary[] = { "the", "river", "stone", "light", "quiet", "morning", "over",
                                              "a", "hill", "and", "slowly", "bird", "sang", "under", "old" };
    out[0] = '\0';
    unsigned x = (unsigned)seed * 2654435761u + 1;
    for (int i = 0; i < words; i++) {
        x = x * 1103515245u + 12345u;
        const char *word = vocabulary[(x >> 16) % (sizeof vocabulary / sizeof vocabulary[0])];
        if (strlen(out) + strlen(word) + 2 >= size) break;
        if (i) strcat(out, " ");
        strcat(out, word);
    }
}

static hr_generate_params greedy(int max_tokens)
{
    hr_generate_params p = hr_generate_default_params();
    p.temperature = 0;
    p.max_tokens = max_tokens;
    return p;
}

static hr_model *load(struct fixture *f)
{
    hr_model_params model_params = hr_model_default_params();
    model_params.slots = SLOTS;
    model_params.n_ctx = 1024;
    model_params.n_batch = 16;   /* as setup's */
    model_params.n_threads = 2;
    hr_model *model = NULL;
    assert_int_equal(hr_model_load(f->ctx, model_path, &model_params, &model), HR_OK);
    return model;
}

/* The text of `prompt` generated alone (hr_generate on a model of its own, its window empty). */
static void alone(struct fixture *f, const char *prompt, const hr_generate_params *params, char *text)
{
    text[0] = '\0';
    hr_model *model = load(f);
    assert_int_equal(hr_generate(model, prompt, params, collect, text, NULL), HR_OK);
    hr_model_free(model);
    assert_true(strlen(text) > 0);
}

/* Reads every session round-robin until each has ended; texts[i] and results[i] get each one's
 * text and final code. A session in `skip` is not read until the others have ended. */
static void read_together(hr_session **sessions, int count, char texts[][TEXT], int *results, int skip)
{
    bool done[16] = { false };
    for (int i = 0; i < count; i++) texts[i][0] = '\0';
    int left = count;
    for (int rounds = 0; left > 0 && rounds < 200000; rounds++) {
        for (int i = 0; i < count; i++) {
            if (done[i] || (i == skip && left > 1)) continue;
            char buffer[256];
            size_t length;
            int rc = hr_session_read(sessions[i], buffer, sizeof buffer, &length, 0.005);
            if (rc == HR_OK) {
                if (strlen(texts[i]) + length < TEXT) strcat(texts[i], buffer);
            } else if (rc != HR_EAGAIN) {
                results[i] = rc;
                done[i] = true;
                left--;
            }
        }
    }
    assert_int_equal(left, 0);
}

/* Greedy text of sessions decoded together equals each one's text alone, with prompts of one
 * token to several chunks, two sessions waiting for slots and joining as others leave.
 * llama.cpp computes a step of several rows with other kernels than a step of one (and a chunk
 * of 16 tokens otherwise than one of 64), so at a near tie between two tokens (a random test
 * model's logits are nearly flat) the rounding can pick the other: the text is then equal up to
 * that token. These prompts have no such tie; about half of the long prompts tried (250 words,
 * other seeds) have one late in their answer, with or without headroom's batching (a chunk size
 * changes it alone, too). */
static void together_equals_alone(void **state)
{
    struct fixture *f = *state;
    enum { N = 6 };   /* more than the slots: two wait, then join as others leave */
    char prompts[N][2048];
    int words[N] = { 3, 40, 9, 250, 1, 17 };   /* one prompt several chunks long */
    int max_tokens[N] = { 40, 12, 64, 24, 33, 8 };
    char expected[N][TEXT];
    for (int i = 0; i < N; i++) {
        make_prompt(prompts[i], sizeof prompts[i], words[i], i == 3 ? 5 : i + 1);
        hr_generate_params p = greedy(max_tokens[i]);
        alone(f, prompts[i], &p, expected[i]);
    }
    hr_session *sessions[N];
    for (int i = 0; i < N; i++) {
        hr_session_params params = hr_session_default_params();
        params.generate = greedy(max_tokens[i]);
        params.queue_capacity = 4;
        assert_int_equal(hr_session_start(f->model, prompts[i], &params, &sessions[i]), HR_OK);
    }
    static char texts[N][TEXT];
    int results[N];
    read_together(sessions, N, texts, results, -1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(results[i], HR_EOF);
        assert_string_equal(texts[i], expected[i]);
        hr_generation_stats stats;
        assert_int_equal(hr_session_stats(sessions[i], &stats), HR_OK);
        assert_true(stats.generated_tokens <= max_tokens[i]);
        hr_session_free(sessions[i]);
    }
}

static void seeded_sampling_together_equals_alone(void **state)
{
    struct fixture *f = *state;
    enum { N = 3 };
    char prompts[N][512], expected[N][TEXT];
    hr_generate_params params[N];
    for (int i = 0; i < N; i++) {
        make_prompt(prompts[i], sizeof prompts[i], 5 + i * 7, 40 + i);
        params[i] = hr_generate_default_params();
        params[i].max_tokens = 30;
        params[i].temperature = 0.9f;
        params[i].seed = 100 + (uint64_t)i;   /* each its own sampler chain and seed */
        alone(f, prompts[i], &params[i], expected[i]);
    }
    hr_session *sessions[N];
    for (int i = 0; i < N; i++) {
        hr_session_params p = hr_session_default_params();
        p.generate = params[i];
        assert_int_equal(hr_session_start(f->model, prompts[i], &p, &sessions[i]), HR_OK);
    }
    static char texts[N][TEXT];
    int results[N];
    read_together(sessions, N, texts, results, -1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(results[i], HR_EOF);
        assert_string_equal(texts[i], expected[i]);
        hr_session_free(sessions[i]);
    }
}

/* A reader that takes nothing pauses its own sequence only; when it reads again its sequence
 * goes on from where it paused, with the same text as alone. */
static void a_stalled_reader_pauses_only_its_own_sequence(void **state)
{
    struct fixture *f = *state;
    char stalled_prompt[256], other_prompt[256], stalled_expected[TEXT], other_expected[TEXT];
    make_prompt(stalled_prompt, sizeof stalled_prompt, 6, 7);
    make_prompt(other_prompt, sizeof other_prompt, 11, 8);
    hr_generate_params stalled_generate = greedy(60), other_generate = greedy(80);
    alone(f, stalled_prompt, &stalled_generate, stalled_expected);
    alone(f, other_prompt, &other_generate, other_expected);

    hr_session_params stalled_params = hr_session_default_params(), other_params = hr_session_default_params();
    stalled_params.generate = stalled_generate;
    stalled_params.queue_capacity = 2;
    other_params.generate = other_generate;
    hr_session *stalled = NULL, *other = NULL;
    assert_int_equal(hr_session_start(f->model, stalled_prompt, &stalled_params, &stalled), HR_OK);
    assert_int_equal(hr_session_start(f->model, other_prompt, &other_params, &other), HR_OK);
    hr_session *both[2] = { stalled, other };
    static char texts[2][TEXT];
    int results[2];
    /* the other is read to its end while the stalled one is not read at all */
    bool done = false;
    texts[1][0] = '\0';
    for (int rounds = 0; !done && rounds < 100000; rounds++) {
        char buffer[256];
        size_t length;
        int rc = hr_session_read(other, buffer, sizeof buffer, &length, 0.01);
        if (rc == HR_OK) strcat(texts[1], buffer);
        else if (rc != HR_EAGAIN) { results[1] = rc; done = true; }
    }
    assert_true(done);
    assert_int_equal(results[1], HR_EOF);
    assert_string_equal(texts[1], other_expected);
    hr_generation_stats stats;
    assert_int_equal(hr_session_stats(stalled, &stats), HR_OK);
    /* its queue holds two pieces, and a step's piece may wait beside them: then it paused */
    assert_true(stats.generated_tokens <= stalled_params.queue_capacity + 4);
    read_together(both, 1, texts, results, -1);   /* now the stalled reader reads */
    assert_int_equal(results[0], HR_EOF);
    assert_string_equal(texts[0], stalled_expected);
    hr_session_free(stalled);
    hr_session_free(other);
}

static void cancelling_one_leaves_the_others_intact(void **state)
{
    struct fixture *f = *state;
    enum { N = 3 };
    char prompts[N][256], expected[N][TEXT];
    for (int i = 0; i < N; i++) {
        make_prompt(prompts[i], sizeof prompts[i], 4 + 5 * i, 20 + i);
        hr_generate_params p = greedy(50);
        alone(f, prompts[i], &p, expected[i]);
    }
    hr_session *sessions[N];
    for (int i = 0; i < N; i++) {
        hr_session_params p = hr_session_default_params();
        p.generate = greedy(i == 1 ? 400 : 50);
        assert_int_equal(hr_session_start(f->model, prompts[i], &p, &sessions[i]), HR_OK);
    }
    char buffer[256];
    size_t length;
    assert_int_equal(hr_session_read(sessions[1], buffer, sizeof buffer, &length, 10.0), HR_OK);
    hr_session_cancel(sessions[1]);   /* mid-batch */
    assert_int_equal(hr_session_read(sessions[1], buffer, sizeof buffer, &length, 1.0), HR_ECANCELLED);
    hr_session *others[2] = { sessions[0], sessions[2] };
    static char texts[2][TEXT];
    int results[2];
    read_together(others, 2, texts, results, -1);
    assert_int_equal(results[0], HR_EOF);
    assert_int_equal(results[1], HR_EOF);
    assert_string_equal(texts[0], expected[0]);
    assert_string_equal(texts[1], expected[2]);
    for (int i = 0; i < N; i++) hr_session_free(sessions[i]);
}

/* hr_model_cancel stops every generation running now; one started after it runs to its end. */
static void model_cancel_stops_what_runs_and_not_what_follows(void **state)
{
    struct fixture *f = *state;
    hr_session *a = NULL, *b = NULL, *later = NULL;
    hr_session_params p = hr_session_default_params();
    p.generate = greedy(400);
    assert_int_equal(hr_session_start(f->model, "one two", &p, &a), HR_OK);
    assert_int_equal(hr_session_start(f->model, "three four", &p, &b), HR_OK);
    char buffer[256];
    size_t length;
    assert_int_equal(hr_session_read(a, buffer, sizeof buffer, &length, 10.0), HR_OK);
    assert_int_equal(hr_session_read(b, buffer, sizeof buffer, &length, 10.0), HR_OK);
    hr_model_cancel(f->model);
    int rc;
    while ((rc = hr_session_read(a, buffer, sizeof buffer, &length, 5.0)) == HR_OK) continue;
    assert_int_equal(rc, HR_ECANCELLED);
    while ((rc = hr_session_read(b, buffer, sizeof buffer, &length, 5.0)) == HR_OK) continue;
    assert_int_equal(rc, HR_ECANCELLED);
    p.generate = greedy(6);
    assert_int_equal(hr_session_start(f->model, "five", &p, &later), HR_OK);
    static char texts[1][TEXT];
    int results[1];
    read_together(&later, 1, texts, results, -1);
    assert_int_equal(results[0], HR_EOF);
    hr_session_free(a);
    hr_session_free(b);
    hr_session_free(later);
}

/* A cancel that comes at any moment of a session's start is never lost (issue 16: the old
 * worker cleared the model's flag when a generation began, after its own check): each of these
 * sessions ends cancelled and none runs to its max_tokens. */
static void a_cancel_at_the_start_is_never_lost(void **state)
{
    struct fixture *f = *state;
    hr_session_params p = hr_session_default_params();
    p.generate = greedy(200);
    p.queue_capacity = 2;   /* unread, it pauses after two pieces: what it did after is the cancel's */
    for (int i = 0; i < 40; i++) {
        hr_session *s = NULL;
        assert_int_equal(hr_session_start(f->model, "a b c d e f g", &p, &s), HR_OK);
        if (i % 4) usleep((useconds_t)(i * 250));   /* land the cancel at different moments */
        hr_session_cancel(s);
        char buffer[64];
        size_t length;
        assert_int_equal(hr_session_read(s, buffer, sizeof buffer, &length, 5.0), HR_ECANCELLED);
        hr_session_free(s);
    }
    /* everything the worker ran was cancelled, none ran on to its max_tokens */
    hr_generation_record records[64];
    int n = hr_metrics_records(f->ctx, records, 64);
    for (int i = 0; i < n; i++) {
        assert_true(records[i].cancelled);
        assert_true(records[i].generated_tokens <= p.queue_capacity + 1);
    }
}

/* Beyond the slots and max_queued waiting sessions a start is refused with HR_EFULL, a sentence
 * and a retry hint; a cancelled waiting session does not count. */
static void admission_is_bounded(void **state)
{
    struct fixture *f = *state;
    hr_model_free(f->model);
    hr_model_params model_params = hr_model_default_params();
    model_params.slots = 2;
    model_params.max_queued = 1;
    model_params.n_threads = 2;
    assert_int_equal(hr_model_load(f->ctx, model_path, &model_params, &f->model), HR_OK);
    hr_session_params p = hr_session_default_params();
    p.generate = greedy(400);
    p.queue_capacity = 1;   /* unread: each holds its slot */
    hr_session *running[2], *waiting = NULL, *refused = (hr_session *)1, *again = NULL;
    char buffer[64];
    size_t length;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(hr_session_start(f->model, "hold", &p, &running[i]), HR_OK);
        assert_int_equal(hr_session_read(running[i], buffer, sizeof buffer, &length, 10.0), HR_OK);
    }
    assert_int_equal(hr_session_start(f->model, "wait", &p, &waiting), HR_OK);
    hr_admission a;
    assert_int_equal(hr_model_admission(f->model, &a), HR_OK);
    assert_int_equal(a.slots, 2);
    assert_int_equal(a.running, 2);
    assert_int_equal(a.queued, 1);
    assert_int_equal(a.max_queued, 1);
    assert_true(a.retry_after >= 1);
    assert_int_equal(hr_session_start(f->model, "more", &p, &refused), HR_EFULL);
    assert_null(refused);
    assert_non_null(strstr(hr_last_error(), "at its limit: 2 generations running and 1 waiting"));
    assert_true(hr_last_retry_after() >= 1);
    hr_session_cancel(waiting);   /* a cancelled one leaves its place */
    assert_int_equal(hr_session_start(f->model, "more", &p, &again), HR_OK);
    assert_true(hr_last_retry_after() == 0);
    hr_session_free(waiting);
    hr_session_free(again);
    for (int i = 0; i < 2; i++) hr_session_free(running[i]);
}

struct records {
    hr_token_logprobs items[256];
    size_t count;
};

static void keep_record(const hr_token_logprobs *record, void *user_data)
{
    struct records *r = user_data;
    if (r->count < sizeof r->items / sizeof r->items[0]) r->items[r->count++] = *record;
}

/* Two sessions decode together, one under a JSON grammar with logprobs, one plain: the grammar
 * one's text parses as the schema's JSON and equals its text alone, its logprobs are one per
 * token, spell its text and are those of its own sequence's logits (the same as alone: read from
 * another entry of the batch they would differ); the plain one's text is its text alone. */
static void a_grammar_session_with_logprobs_beside_a_plain_one(void **state)
{
    struct fixture *f = *state;
    char *grammar = NULL;
    int rc = hr_json_grammar("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"boolean\"},"
                             "\"b\":{\"type\":\"string\",\"maxLength\":12}},\"required\":[\"a\",\"b\"],"
                             "\"additionalProperties\":false}", &grammar);
    if (rc == HR_ENOTSUP) {   /* libheadroom built without the engine's schema converter */
        grammar = NULL;
    } else {
        assert_int_equal(rc, HR_OK);
    }
    const char *json_grammar = grammar ? grammar
        : "root ::= \"{\\\"a\\\":\" (\"true\" | \"false\") \",\\\"b\\\":\\\"\" [a-z]{0,12} \"\\\"}\"";
    char json_prompt[256], plain_prompt[256];
    make_prompt(json_prompt, sizeof json_prompt, 8, 21);
    make_prompt(plain_prompt, sizeof plain_prompt, 13, 22);

    hr_generate_params json_params = greedy(80);
    json_params.grammar = json_grammar;
    json_params.top_logprobs = 3;
    struct records solo_records = { .count = 0 };
    json_params.logprob_fn = keep_record;
    json_params.logprob_user_data = &solo_records;
    char json_expected[TEXT], plain_expected[TEXT];
    alone(f, json_prompt, &json_params, json_expected);
    hr_generate_params plain_params = greedy(60);
    alone(f, plain_prompt, &plain_params, plain_expected);
    assert_true(solo_records.count > 0);

    /* the grammar one first: its entry comes before the plain one's in each step */
    hr_session_params p = hr_session_default_params();
    p.generate = json_params;
    p.generate.logprob_fn = NULL;
    p.generate.logprob_user_data = NULL;
    p.generate.logprobs = true;
    hr_session *sessions[2];
    assert_int_equal(hr_session_start(f->model, json_prompt, &p, &sessions[0]), HR_OK);
    p = hr_session_default_params();
    p.generate = plain_params;
    assert_int_equal(hr_session_start(f->model, plain_prompt, &p, &sessions[1]), HR_OK);
    static char texts[2][TEXT];
    int results[2];
    read_together(sessions, 2, texts, results, -1);
    assert_int_equal(results[0], HR_EOF);
    assert_int_equal(results[1], HR_EOF);

    /* the plain one: as alone; it has no logprobs */
    assert_string_equal(texts[1], plain_expected);
    size_t none = 0;
    hr_token_logprobs unused;
    assert_int_equal(hr_session_logprobs(sessions[1], 0, &unused, 1, &none), HR_EINVAL);

    /* the grammar one: whole JSON of the schema's shape, as alone */
    hr_generation_stats stats;
    assert_int_equal(hr_session_stats(sessions[0], &stats), HR_OK);
    assert_int_equal(stats.stop_reason, HR_STOP_END_OF_TEXT);
    cJSON *json = cJSON_Parse(texts[0]);
    if (!json) fail_msg("not JSON: %s", texts[0]);
    assert_true(cJSON_IsObject(json));
    assert_true(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(json, "a")));
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(json, "b")));
    cJSON_Delete(json);
    assert_string_equal(texts[0], json_expected);

    /* its logprobs: one per generated token, spelling its text, its own sequence's */
    static hr_token_logprobs records[256];
    size_t count = 0;
    assert_int_equal(hr_session_logprobs(sessions[0], 0, records, 256, &count), HR_OK);
    assert_int_equal(count, (size_t)stats.generated_tokens);
    assert_int_equal(count, solo_records.count);
    char spelled[TEXT] = "";
    for (size_t i = 0; i < count; i++) {
        const hr_token_logprobs *r = &records[i];
        strncat(spelled, r->chosen.piece, (size_t)r->chosen.length);
        assert_true(r->chosen.logprob <= 0);
        assert_int_equal(r->top_count, 3);
        for (int k = 1; k < r->top_count; k++) assert_true(r->top[k - 1].logprob >= r->top[k].logprob);
        assert_int_equal(r->chosen.token, solo_records.items[i].chosen.token);
        if (fabsf(r->chosen.logprob - solo_records.items[i].chosen.logprob) > 1e-3f)
            fail_msg("token %zu: logprob %f together, %f alone", i, (double)r->chosen.logprob,
                     (double)solo_records.items[i].chosen.logprob);
        assert_int_equal(r->top[0].token, solo_records.items[i].top[0].token);
    }
    assert_string_equal(spelled, texts[0]);
    hr_free(grammar);
    hr_session_free(sessions[0]);
    hr_session_free(sessions[1]);
}

static void slots_are_reported(void **state)
{
    struct fixture *f = *state;
    hr_model_info info;
    assert_int_equal(hr_model_get_info(f->model, &info), HR_OK);
    assert_int_equal(info.slots, SLOTS);
    assert_int_equal(info.n_ctx, 1024);   /* each slot's own */
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(slots_are_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(together_equals_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(seeded_sampling_together_equals_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(a_stalled_reader_pauses_only_its_own_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(cancelling_one_leaves_the_others_intact, setup, teardown),
        cmocka_unit_test_setup_teardown(model_cancel_stops_what_runs_and_not_what_follows, setup, teardown),
        cmocka_unit_test_setup_teardown(a_cancel_at_the_start_is_never_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(admission_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(a_grammar_session_with_logprobs_beside_a_plain_one, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
