/*
 * test_generate_remote.c: the runtime's path for whole-request engines (runtime/generate_remote.c
 * and its branch in generate.c), driven by a scripted fake with `complete` and no decode: text
 * split inside a character arrives whole, the engine's counts and stop reason reach the stats,
 * the piece callback and hr_model_cancel stop it, failures pass through, sessions work.
 * The proof with a real server is tests/integration/test_remote.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/context.h"
#include "core/error.h"
#include "headroom.h"

/* ---- the fake: delivers a script of byte strings, checking abort_fn between them ---------- */

struct hr_engine_model {
    int requests;
    int delivered;       /* pieces handed to the runtime in the last request */
    hr_engine_complete_params last_params;
};

static const char *const *script;
static int script_length;
static int fail_with;    /* non-zero: complete fails with this code after the script */
static hr_engine_model *loaded;   /* the fixture's model, to see what requests it got */

static int fake_load(const char *path, const hr_engine_load_params *params, hr_engine_model **out)
{
    (void)path;
    (void)params;
    *out = calloc(1, sizeof **out);
    loaded = *out;
    return HR_OK;
}
static void fake_unload(hr_engine_model *model) { free(model); }
static void fake_info(const hr_engine_model *model, hr_engine_model_info *out)
{
    (void)model;
    memset(out, 0, sizeof *out);
    out->remote = true;
}
static int fake_complete(hr_engine_model *model, const char *prompt, const hr_engine_complete_params *params,
                         hr_piece_fn piece_fn, void *user_data, hr_engine_complete_stats *stats)
{
    model->requests++;
    model->delivered = 0;
    model->last_params = *params;
    memset(stats, 0, sizeof *stats);
    stats->prompt_tokens = (int32_t)strlen(prompt);
    for (int i = 0; i < script_length; i++) {
        if (params->abort_fn(params->abort_user_data) || piece_fn(script[i], strlen(script[i]), user_data) != 0) {
            stats->stop_reason = HR_STOP_CANCELLED;
            stats->generated_tokens = model->delivered;
            return HR_OK;
        }
        model->delivered++;
    }
    if (fail_with) return hr_fail(fail_with, "the fake server went away");
    stats->generated_tokens = 100 + model->delivered;   /* "the server's usage", to tell from a count */
    stats->usage_known = true;
    stats->stop_reason = HR_STOP_END_OF_TEXT;
    return HR_OK;
}

static const hr_engine_ops fake_engine = {
    .name = "fake-remote", .load = fake_load, .unload = fake_unload, .get_info = fake_info,
    .complete = fake_complete,
};

/* ---- fixtures ------------------------------------------------------------------------------ */

struct fixture {
    hr_context *ctx;
    hr_model *model;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    hr_context_params params = hr_context_default_params();
    params.monitor = false;
    if (hr_context_create(&params, &f->ctx) != HR_OK) return -1;
    hr_context_use_engine(f->ctx, &fake_engine);
    if (hr_model_load(f->ctx, "fake.gguf", NULL, &f->model) != HR_OK) return -1;
    script = NULL;
    script_length = 0;
    fail_with = 0;
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

struct collected {
    char text[1024];
    int pieces;
    bool all_valid;
    int stop_after;      /* return non-zero from this piece on; 0: never */
    int cancel_after;    /* call hr_model_cancel after this piece; 0: never */
    hr_model *model;
};

static int collect(const char *piece, size_t length, void *user_data)
{
    struct collected *c = user_data;
    c->pieces++;
    if (!hr_utf8_valid(piece, length)) c->all_valid = false;
    strncat(c->text, piece, length);
    if (c->cancel_after && c->pieces >= c->cancel_after) hr_model_cancel(c->model);
    return c->stop_after && c->pieces >= c->stop_after;
}

#define SCRIPT(...)                                                                                \
    do {                                                                                           \
        static const char *const pieces_[] = { __VA_ARGS__ };                                      \
        script = pieces_;                                                                          \
        script_length = (int)(sizeof pieces_ / sizeof pieces_[0]);                                 \
    } while (0)

/* ---- tests --------------------------------------------------------------------------------- */

static void text_split_inside_a_character_arrives_whole(void **state)
{
    struct fixture *f = *state;
    SCRIPT("a\xe2\x82", "\xac b", "\xf0\x9f", "\x98", "\x80.");   /* "a€ b😀." in awkward cuts */
    struct collected c = { .all_valid = true };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "hello", NULL, collect, &c, &stats), HR_OK);
    assert_string_equal(c.text, "a\xe2\x82\xac b\xf0\x9f\x98\x80.");
    assert_true(c.all_valid);
    assert_int_equal(c.pieces, 3);   /* "a", "€ b", "😀." : the held bytes wait for their character */
}

static void a_character_that_never_completes_becomes_the_replacement_character(void **state)
{
    struct fixture *f = *state;
    SCRIPT("ok\xe2\x82");
    struct collected c = { .all_valid = true };
    assert_int_equal(hr_generate(f->model, "p", NULL, collect, &c, NULL), HR_OK);
    assert_string_equal(c.text, "ok\xef\xbf\xbd");
    assert_true(c.all_valid);
}

static void the_engines_counts_and_stop_reason_reach_the_stats(void **state)
{
    struct fixture *f = *state;
    SCRIPT("one", " two", " three");
    struct collected c = { .all_valid = true };
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 7;
    params.temperature = 0;
    params.seed = 1234567890123ULL;
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "four", &params, collect, &c, &stats), HR_OK);
    assert_int_equal(stats.prompt_tokens, 4);
    assert_int_equal(stats.generated_tokens, 103);
    assert_int_equal(stats.stop_reason, HR_STOP_END_OF_TEXT);
    assert_true(stats.time_to_first_token >= 0 && stats.time_to_first_token <= stats.total_seconds);
    assert_true(stats.decode_seconds >= 0);
}

static void the_request_carries_the_callers_parameters(void **state)
{
    struct fixture *f = *state;
    SCRIPT("x");
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 9;
    params.temperature = 0.5f;
    params.top_k = 3;
    params.top_p = 0.7f;
    params.min_p = 0.1f;
    params.seed = 77;
    struct collected c = { .all_valid = true };
    assert_int_equal(hr_generate(f->model, "p", &params, collect, &c, NULL), HR_OK);
    assert_int_equal(loaded->requests, 1);
    const hr_engine_complete_params *sent = &loaded->last_params;
    assert_int_equal(sent->max_tokens, 9);
    assert_true(sent->sampling.temperature == 0.5f && sent->sampling.top_k == 3 && sent->sampling.top_p == 0.7f &&
                sent->sampling.min_p == 0.1f && sent->sampling.seed == 77);
    assert_non_null(sent->abort_fn);
    hr_model_info info;
    assert_int_equal(hr_model_get_info(f->model, &info), HR_OK);
    assert_true(info.remote);
}

static void a_piece_callback_that_returns_non_zero_cancels(void **state)
{
    struct fixture *f = *state;
    SCRIPT("a", "b", "c", "d");
    struct collected c = { .all_valid = true, .stop_after = 2 };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "p", NULL, collect, &c, &stats), HR_ECANCELLED);
    assert_string_equal(c.text, "ab");
    assert_int_equal(stats.stop_reason, HR_STOP_CANCELLED);
    assert_int_equal(stats.generated_tokens, 1);   /* the fake counts what it handed over before the stop */
}

static void hr_model_cancel_stops_the_request(void **state)
{
    struct fixture *f = *state;
    SCRIPT("a", "b", "c", "d");
    struct collected c = { .all_valid = true, .cancel_after = 1, .model = f->model };
    assert_int_equal(hr_generate(f->model, "p", NULL, collect, &c, NULL), HR_ECANCELLED);
    assert_string_equal(c.text, "a");
    /* the next generation starts with the flag cleared */
    struct collected again = { .all_valid = true };
    assert_int_equal(hr_generate(f->model, "p", NULL, collect, &again, NULL), HR_OK);
    assert_string_equal(again.text, "abcd");
}

static void an_engine_failure_passes_through_with_its_sentence(void **state)
{
    struct fixture *f = *state;
    SCRIPT("partial");
    fail_with = HR_EIO;
    struct collected c = { .all_valid = true };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "p", NULL, collect, &c, &stats), HR_EIO);
    assert_string_equal(hr_last_error(), "the fake server went away");
    assert_int_equal(stats.stop_reason, HR_STOP_NONE);
    assert_string_equal(c.text, "partial");
    hr_generation_record record;
    assert_int_equal(hr_metrics_records(f->ctx, &record, 1), 1);
    assert_int_equal(record.result, HR_EIO);
    assert_string_equal(record.served_by, "local");   /* a fake, not a fall-back opened remotely */
}

static void sessions_run_whole_request_engines(void **state)
{
    struct fixture *f = *state;
    SCRIPT("se", "ss", "ion");
    hr_session *s = NULL;
    assert_int_equal(hr_session_start(f->model, "p", NULL, &s), HR_OK);
    char buffer[64], text[64] = "";
    size_t length;
    int rc;
    while ((rc = hr_session_read(s, buffer, sizeof buffer, &length, 5.0)) == HR_OK) strcat(text, buffer);
    assert_int_equal(rc, HR_EOF);
    assert_string_equal(text, "session");
    hr_generation_stats stats;
    assert_int_equal(hr_session_stats(s, &stats), HR_OK);
    assert_int_equal(stats.generated_tokens, 103);
    hr_session_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(text_split_inside_a_character_arrives_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(a_character_that_never_completes_becomes_the_replacement_character, setup, teardown),
        cmocka_unit_test_setup_teardown(the_engines_counts_and_stop_reason_reach_the_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(the_request_carries_the_callers_parameters, setup, teardown),
        cmocka_unit_test_setup_teardown(a_piece_callback_that_returns_non_zero_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(hr_model_cancel_stops_the_request, setup, teardown),
        cmocka_unit_test_setup_teardown(an_engine_failure_passes_through_with_its_sentence, setup, teardown),
        cmocka_unit_test_setup_teardown(sessions_run_whole_request_engines, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
