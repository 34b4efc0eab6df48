/*
 * test_generate.c: the generation loop (runtime/generate.c) driven by a scripted fake engine:
 * stop reasons, whole-character streaming, cancellation, context limits, parameter checks.
 * The proof that generation works with llama.cpp is tests/integration/test_engine.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/context.h"
#include "headroom.h"

/* ---- the fake engine: one byte per prompt token, a script of output pieces -------------- */

enum { END_TOKEN = 1000, FAKE_CTX = 32 };

struct hr_engine_model {
    int32_t n_past;
    int decodes;
    hr_engine_abort_fn abort_fn;
    void *abort_user_data;
};
struct hr_engine_sampler {
    int next;
};

static const char *const *script;   /* pieces to produce, then END_TOKEN; NULL entry = end */
static int script_length;

static int fake_load(const char *path, const hr_engine_load_params *params, hr_engine_model **out)
{
    (void)path;
    hr_engine_model *model = calloc(1, sizeof *model);
    model->abort_fn = params->abort_fn;
    model->abort_user_data = params->abort_user_data;
    *out = model;
    return HR_OK;
}
static void fake_unload(hr_engine_model *model) { free(model); }
static void fake_info(const hr_engine_model *model, hr_engine_model_info *out)
{
    (void)model;
    memset(out, 0, sizeof *out);
    out->n_ctx = FAKE_CTX;
    out->n_layer = 1;
    out->n_threads = 1;
}
static int32_t fake_tokenize(hr_engine_model *model, const char *text, size_t length, bool add_special,
                             hr_token *tokens, int32_t capacity)
{
    (void)model;
    int32_t needed = (int32_t)length + (add_special ? 1 : 0);
    if (needed > capacity) return -needed;
    int32_t n = 0;
    if (add_special) tokens[n++] = 0;
    for (size_t i = 0; i < length; i++) tokens[n++] = (unsigned char)text[i];
    return n;
}
static int32_t fake_piece(hr_engine_model *model, hr_token token, char *buffer, int32_t capacity)
{
    (void)model;
    const char *piece = token >= 2000 && token - 2000 < script_length ? script[token - 2000] : "";
    int32_t length = (int32_t)strlen(piece);
    if (length > capacity) return -length;
    memcpy(buffer, piece, (size_t)length);
    return length;
}
static bool fake_is_eog(hr_engine_model *model, hr_token token) { (void)model; return token == END_TOKEN; }
static void fake_reset(hr_engine_model *model) { model->n_past = 0; }
static int fake_decode(hr_engine_model *model, const hr_token *tokens, int32_t count)
{
    (void)tokens;
    if (model->abort_fn && model->abort_fn(model->abort_user_data)) return HR_ECANCELLED;
    if (model->n_past + count > FAKE_CTX) return HR_ECONTEXT;
    model->n_past += count;
    model->decodes++;
    return HR_OK;
}
static int fake_sampler_create(hr_engine_model *model, const hr_engine_sampling *params, hr_engine_sampler **out)
{
    (void)model;
    (void)params;
    *out = calloc(1, sizeof **out);
    return HR_OK;
}
static hr_token fake_sample(hr_engine_sampler *sampler, hr_engine_model *model)
{
    (void)model;
    int i = sampler->next++;
    return i < script_length ? 2000 + i : END_TOKEN;
}
static void fake_sampler_free(hr_engine_sampler *sampler) { free(sampler); }

static const hr_engine_ops fake_engine = {
    .name = "fake", .load = fake_load, .unload = fake_unload, .get_info = fake_info,
    .tokenize = fake_tokenize, .token_to_piece = fake_piece, .is_end_of_generation = fake_is_eog,
    .apply_chat_template = NULL, .reset = fake_reset, .decode = fake_decode,
    .sampler_create = fake_sampler_create, .sample = fake_sample, .sampler_free = fake_sampler_free,
};

/* ---- fixtures ------------------------------------------------------------------------------ */

struct fixture {
    hr_context *ctx;
    hr_model *model;
};

struct collected {
    char text[1024];
    size_t length;
    int pieces;
    int stop_after;          /* return non-zero from this piece on; 0: never */
    int cancel_after;        /* call hr_model_cancel after this piece; 0: never */
    hr_model *model;
    int nested_rc;           /* result of a generation started from inside the callback */
    int bad_utf8_pieces;     /* pieces that were not whole UTF-8 */
};

static int collect(const char *piece, size_t length, void *user_data)
{
    struct collected *c = user_data;
    memcpy(c->text + c->length, piece, length);
    c->length += length;
    c->text[c->length] = '\0';
    c->pieces++;
    unsigned char last = (unsigned char)piece[length - 1];
    if (last >= 0xC0) c->bad_utf8_pieces++;   /* a lead byte at the end: a split character */
    if (c->cancel_after && c->pieces == c->cancel_after) hr_model_cancel(c->model);
    return c->stop_after && c->pieces >= c->stop_after;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_int_equal(hr_context_create(NULL, &f->ctx), HR_OK);
    hr_context_use_engine(f->ctx, &fake_engine);
    assert_int_equal(hr_model_load(f->ctx, "fake.gguf", NULL, &f->model), HR_OK);
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

static void use_script(const char *const *pieces, int count)
{
    script = pieces;
    script_length = count;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void stops_at_max_tokens(void **state)
{
    struct fixture *f = *state;
    static const char *const pieces[] = { "a", "b", "c", "d", "e" };
    use_script(pieces, 5);
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 3;
    struct collected c = { 0 };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "hi", &params, collect, &c, &stats), HR_OK);
    assert_string_equal(c.text, "abc");
    assert_int_equal(stats.generated_tokens, 3);
    assert_int_equal(stats.prompt_tokens, 3);   /* start token + 2 bytes */
    assert_int_equal(stats.stop_reason, HR_STOP_MAX_TOKENS);
}

static void stops_at_end_of_text(void **state)
{
    struct fixture *f = *state;
    static const char *const pieces[] = { "x", "y" };
    use_script(pieces, 2);
    struct collected c = { 0 };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "hi", NULL, collect, &c, &stats), HR_OK);
    assert_string_equal(c.text, "xy");
    assert_int_equal(stats.stop_reason, HR_STOP_END_OF_TEXT);
    assert_int_equal(stats.generated_tokens, 2);
}

static void split_character_arrives_whole(void **state)
{
    struct fixture *f = *state;
    /* "€" (E2 82 AC) split over three tokens, then a stray continuation byte */
    static const char *const pieces[] = { "a\xE2", "\x82", "\xAC" "b", "\x80" };
    use_script(pieces, 4);
    struct collected c = { 0 };
    assert_int_equal(hr_generate(f->model, "hi", NULL, collect, &c, NULL), HR_OK);
    assert_string_equal(c.text, "a\xE2\x82\xAC" "b\xEF\xBF\xBD");
    assert_int_equal(c.bad_utf8_pieces, 0);
}

static void incomplete_character_at_the_end_becomes_replacement(void **state)
{
    struct fixture *f = *state;
    static const char *const pieces[] = { "ok\xF0\x9F" };
    use_script(pieces, 1);
    struct collected c = { 0 };
    assert_int_equal(hr_generate(f->model, "hi", NULL, collect, &c, NULL), HR_OK);
    assert_string_equal(c.text, "ok\xEF\xBF\xBD");
}

static void callback_stop_cancels(void **state)
{
    struct fixture *f = *state;
    static const char *const pieces[] = { "1", "2", "3", "4", "5", "6" };
    use_script(pieces, 6);
    struct collected c = { .stop_after = 2 };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "hi", NULL, collect, &c, &stats), HR_ECANCELLED);
    assert_string_equal(c.text, "12");
    assert_int_equal(stats.stop_reason, HR_STOP_CANCELLED);
    assert_int_equal(stats.generated_tokens, 2);
    assert_non_null(strstr(hr_last_error(), "cancelled"));
}

static void model_cancel_stops_before_the_next_piece(void **state)
{
    struct fixture *f = *state;
    static const char *const pieces[] = { "1", "2", "3", "4", "5", "6" };
    use_script(pieces, 6);
    struct collected c = { .cancel_after = 3, .model = f->model };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "hi", NULL, collect, &c, &stats), HR_ECANCELLED);
    assert_string_equal(c.text, "123");
    /* the next generation is not affected by the old cancel */
    struct collected again = { 0 };
    assert_int_equal(hr_generate(f->model, "hi", NULL, collect, &again, &stats), HR_OK);
    assert_string_equal(again.text, "123456");
}

static void context_fills_up(void **state)
{
    struct fixture *f = *state;
    static const char *const pieces[] = { "a", "b", "c", "d", "e", "f", "g", "h" };
    use_script(pieces, 8);
    struct collected c = { 0 };
    hr_generation_stats stats;
    /* 1 start token + 28 bytes = 29 of 32: three more fit, the fourth is refused */
    assert_int_equal(hr_generate(f->model, "0123456789012345678901234567", NULL, collect, &c, &stats), HR_OK);
    assert_int_equal(stats.stop_reason, HR_STOP_CONTEXT_FULL);
    assert_string_equal(c.text, "abcd");
}

static void prompt_longer_than_context_is_refused(void **state)
{
    struct fixture *f = *state;
    char prompt[100];
    memset(prompt, 'x', sizeof prompt - 1);
    prompt[sizeof prompt - 1] = '\0';
    struct collected c = { 0 };
    assert_int_equal(hr_generate(f->model, prompt, NULL, collect, &c, NULL), HR_ECONTEXT);
    assert_non_null(strstr(hr_last_error(), "context window holds 32"));
    assert_int_equal(c.pieces, 0);
}

static int start_nested(const char *piece, size_t length, void *user_data)
{
    struct collected *c = user_data;
    (void)piece;
    (void)length;
    struct collected inner = { 0 };
    c->nested_rc = hr_generate(c->model, "x", NULL, collect, &inner, NULL);
    return 1;
}

static void second_generation_on_a_busy_model_is_refused(void **state)
{
    struct fixture *f = *state;
    static const char *const pieces[] = { "a", "b" };
    use_script(pieces, 2);
    struct collected c = { .model = f->model };
    assert_int_equal(hr_generate(f->model, "hi", NULL, start_nested, &c, NULL), HR_ECANCELLED);
    assert_int_equal(c.nested_rc, HR_EBUSY);
}

static void bad_parameters_are_refused(void **state)
{
    struct fixture *f = *state;
    struct collected c = { 0 };
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 0;
    assert_int_equal(hr_generate(f->model, "hi", &params, collect, &c, NULL), HR_EINVAL);
    assert_non_null(strstr(hr_last_error(), "max_tokens"));
    params = hr_generate_default_params();
    params.temperature = -1;
    assert_int_equal(hr_generate(f->model, "hi", &params, collect, &c, NULL), HR_EINVAL);
    params = hr_generate_default_params();
    params.top_p = 0;
    assert_int_equal(hr_generate(f->model, "hi", &params, collect, &c, NULL), HR_EINVAL);
    assert_int_equal(hr_generate(NULL, "hi", NULL, collect, &c, NULL), HR_EINVAL);
    assert_int_equal(hr_generate(f->model, NULL, NULL, collect, &c, NULL), HR_EINVAL);
    assert_int_equal(c.pieces, 0);

    hr_model *model = NULL;
    hr_model_params model_params = hr_model_default_params();
    model_params.n_ctx = -5;
    assert_int_equal(hr_model_load(f->ctx, "fake.gguf", &model_params, &model), HR_EINVAL);
    assert_null(model);
    model_params = hr_model_default_params();
    model_params.n_threads = 100000;
    assert_int_equal(hr_model_load(f->ctx, "fake.gguf", &model_params, &model), HR_EINVAL);
    assert_int_equal(hr_model_load(f->ctx, "", NULL, &model), HR_EINVAL);
}

static void error_names(void **state)
{
    (void)state;
    assert_string_equal(hr_strerror(HR_OK), "HR_OK");
    assert_string_equal(hr_strerror(HR_EFORMAT), "HR_EFORMAT");
    assert_string_equal(hr_strerror(HR_ECANCELLED), "HR_ECANCELLED");
    assert_string_equal(hr_strerror(-999), "HR_E(unknown)");
    assert_non_null(hr_version());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(stops_at_max_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(stops_at_end_of_text, setup, teardown),
        cmocka_unit_test_setup_teardown(split_character_arrives_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(incomplete_character_at_the_end_becomes_replacement, setup, teardown),
        cmocka_unit_test_setup_teardown(callback_stop_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(model_cancel_stops_before_the_next_piece, setup, teardown),
        cmocka_unit_test_setup_teardown(context_fills_up, setup, teardown),
        cmocka_unit_test_setup_teardown(prompt_longer_than_context_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(second_generation_on_a_busy_model_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_parameters_are_refused, setup, teardown),
        cmocka_unit_test(error_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
