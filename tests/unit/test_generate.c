/*
 * test_generate.c: the generation loop (runtime/generate.c) driven by a scripted fake engine:
 * stop reasons, stop sequences, whole-character streaming, cancellation, context limits, parameter checks,
 * prompt-prefix reuse (what is decoded, what is forgotten after a failure) and the snapshot
 * calls' bookkeeping (runtime/snapshot.c).
 * The proof that generation works with llama.cpp is tests/integration/test_engine.c.
 */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/context.h"
#include "core/error.h"
#include "headroom.h"
#include "runtime/model.h"

/* ---- the fake engine: one byte per prompt token, a script of output pieces -------------- */

/* A generated piece of one byte is the token of that byte, as a prompt byte is, so a prompt that
 * repeats an answer's text has the same tokens; longer pieces are tokens 2000 + their index. */
enum { END_TOKEN = 1000, FAKE_CTX = 32 };

struct hr_engine_model {
    hr_token window[FAKE_CTX + 8];  /* what the window holds: decoded tokens, in order */
    int32_t n_past;
    int decodes;
    int tokens_decoded;             /* over all decode calls */
    hr_engine_abort_fn abort_fn;
    void *abort_user_data;
};
struct hr_engine_sampler {
    int next;
};

static const char *const *script;   /* pieces to produce, then END_TOKEN; NULL entry = end */
static int script_length;

/* Faults to inject, reset by setup. */
static int fail_decode_at;          /* the n-th decode call (1-based) fails ... */
static int fail_decode_code;        /* ... with this code, after putting half its tokens in the window */
static int fail_truncate;           /* truncate answers HR_ENOTSUP */
static int fail_save;               /* state_save answers HR_EIO (after writing part of the file) */
static int truncate_calls, reset_calls;

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
    strcpy(out->cache_types, "fake/fake");
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
    if (token > 0 && token < 256) {
        if (capacity < 1) return -1;
        buffer[0] = (char)token;
        return 1;
    }
    const char *piece = token >= 2000 && token - 2000 < script_length ? script[token - 2000] : "";
    int32_t length = (int32_t)strlen(piece);
    if (length > capacity) return -length;
    memcpy(buffer, piece, (size_t)length);
    return length;
}
static bool fake_is_eog(hr_engine_model *model, hr_token token) { (void)model; return token == END_TOKEN; }
static void fake_reset(hr_engine_model *model)
{
    model->n_past = 0;
    reset_calls++;
}
static int fake_decode(hr_engine_model *model, const hr_token *tokens, int32_t count)
{
    if (model->abort_fn && model->abort_fn(model->abort_user_data)) return HR_ECANCELLED;
    if (model->n_past + count > FAKE_CTX) return HR_ECONTEXT;
    model->decodes++;
    if (model->decodes == fail_decode_at) {
        /* like llama.cpp after an abort: the ubatches done stay in the window */
        int32_t done = (count + 1) / 2;
        memcpy(model->window + model->n_past, tokens, sizeof *tokens * (size_t)done);
        model->n_past += done;
        return hr_fail(fail_decode_code, "the fake engine failed on purpose");
    }
    memcpy(model->window + model->n_past, tokens, sizeof *tokens * (size_t)count);
    model->n_past += count;
    model->tokens_decoded += count;
    return HR_OK;
}
static int fake_truncate(hr_engine_model *model, int32_t seq, int32_t count)
{
    (void)seq;
    truncate_calls++;
    if (fail_truncate) return hr_fail(HR_ENOTSUP, "the fake engine cannot cut its window");
    if (count < 0 || count > model->n_past) return hr_fail(HR_EINVAL, "truncate %d of %d", count, model->n_past);
    model->n_past = count;
    return HR_OK;
}
static uint64_t fake_state_size(hr_engine_model *model, int32_t seq) { (void)seq; return 16 + sizeof(hr_token) * (uint64_t)model->n_past; }
static int fake_state_save(hr_engine_model *model, int32_t seq, const char *path, const hr_token *tokens, int32_t count)
{
    (void)seq;
    FILE *f = fopen(path, "wb");
    if (!f) return hr_fail(HR_EIO, "cannot open %s", path);
    fwrite("FAKESTAT", 1, 8, f);
    if (fail_save) {
        fclose(f);
        unlink(path);
        return hr_fail(HR_EIO, "the fake disk is full");
    }
    fwrite(&count, sizeof count, 1, f);
    fwrite(tokens, sizeof *tokens, (size_t)count, f);
    fwrite(model->window, sizeof *tokens, (size_t)count, f);
    fclose(f);
    return HR_OK;
}
static int fake_state_load(hr_engine_model *model, int32_t seq, const char *path, hr_token *tokens, int32_t capacity,
                           int32_t *count)
{
    (void)seq;
    model->n_past = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return hr_fail(HR_ENOENT, "no %s", path);
    char magic[8];
    int32_t n = 0;
    bool ok = fread(magic, 1, 8, f) == 8 && memcmp(magic, "FAKESTAT", 8) == 0 && fread(&n, sizeof n, 1, f) == 1 &&
              n >= 0 && n <= capacity && fread(tokens, sizeof *tokens, (size_t)n, f) == (size_t)n &&
              fread(model->window, sizeof *tokens, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (!ok) return hr_fail(HR_EFORMAT, "bad fake state %s", path);
    model->n_past = n;
    *count = n;
    return HR_OK;
}
static bool fake_is_state_file(const unsigned char *head, size_t length)
{
    return length >= 4 && memcmp(head, "FAKE", 4) == 0;
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
    if (i >= script_length) return END_TOKEN;
    if (strlen(script[i]) == 1) return (unsigned char)script[i][0];
    return 2000 + i;
}
static void fake_sampler_free(hr_engine_sampler *sampler) { free(sampler); }

static const hr_engine_ops fake_engine = {
    .name = "fake", .load = fake_load, .unload = fake_unload, .get_info = fake_info,
    .tokenize = fake_tokenize, .token_to_piece = fake_piece, .is_end_of_generation = fake_is_eog,
    .apply_chat_template = NULL, .reset = fake_reset, .decode = fake_decode,
    .sampler_create = fake_sampler_create, .sample = fake_sample, .sampler_free = fake_sampler_free,
    .truncate = fake_truncate, .state_size = fake_state_size, .state_save = fake_state_save,
    .state_load = fake_state_load, .is_state_file = fake_is_state_file,
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
    fail_decode_at = 0;
    fail_decode_code = HR_OK;
    fail_truncate = 0;
    fail_save = 0;
    truncate_calls = reset_calls = 0;
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

static void stop_sequence_over_three_tokens_ends_before_it(void **state)
{
    struct fixture *f = *state;
    static const char *const pieces[] = { "Yes", ".", "\n", "Us", "er", ":", " more" };
    use_script(pieces, 7);
    hr_generate_params params = hr_generate_default_params();
    const char *stops[] = { "User:", "###" };
    params.stop = stops;
    params.stop_count = 2;
    struct collected c = { 0 };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "hi", &params, collect, &c, &stats), HR_OK);
    assert_string_equal(c.text, "Yes.\n");
    assert_int_equal(stats.stop_reason, HR_STOP_SEQUENCE);
    assert_int_equal(stats.generated_tokens, 6);   /* the tokens that completed the stop count */
}

static void held_prefix_that_never_completes_is_emitted(void **state)
{
    struct fixture *f = *state;
    /* "Us" might begin "User:" and is held; the text ends, so it goes out after all */
    static const char *const pieces[] = { "ok", " Us" };
    use_script(pieces, 2);
    hr_generate_params params = hr_generate_default_params();
    const char *stops[] = { "User:" };
    params.stop = stops;
    params.stop_count = 1;
    struct collected c = { 0 };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "hi", &params, collect, &c, &stats), HR_OK);
    assert_string_equal(c.text, "ok Us");
    assert_int_equal(stats.stop_reason, HR_STOP_END_OF_TEXT);
}

static void stop_sequence_after_a_split_character(void **state)
{
    struct fixture *f = *state;
    /* "é" split over two tokens, then the stop "é!" completes across them */
    static const char *const pieces[] = { "caf", "\xC3", "\xA9", "!", "x" };
    use_script(pieces, 5);
    hr_generate_params params = hr_generate_default_params();
    const char *stops[] = { "\xC3\xA9!" };
    params.stop = stops;
    params.stop_count = 1;
    struct collected c = { 0 };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "hi", &params, collect, &c, &stats), HR_OK);
    assert_string_equal(c.text, "caf");
    assert_int_equal(c.bad_utf8_pieces, 0);
    assert_int_equal(stats.stop_reason, HR_STOP_SEQUENCE);
}

static void session_copies_its_stop_sequences(void **state)
{
    struct fixture *f = *state;
    static const char *const pieces[] = { "a", "b", "END", "c" };
    use_script(pieces, 4);
    hr_session_params params = hr_session_default_params();
    char stop[8];
    strcpy(stop, "END");
    const char *stops[] = { stop };
    params.generate.stop = stops;
    params.generate.stop_count = 1;
    hr_session *session = NULL;
    assert_int_equal(hr_session_start(f->model, "hi", &params, &session), HR_OK);
    strcpy(stop, "zzz");   /* the caller's copy changes; the session's must not */
    char text[64] = "", buffer[16];
    size_t length;
    int rc;
    while ((rc = hr_session_read(session, buffer, sizeof buffer, &length, -1)) == HR_OK) strncat(text, buffer, length);
    assert_int_equal(rc, HR_EOF);
    assert_string_equal(text, "ab");
    hr_generation_stats stats;
    assert_int_equal(hr_session_stats(session, &stats), HR_OK);
    assert_int_equal(stats.stop_reason, HR_STOP_SEQUENCE);
    hr_session_free(session);
}

static void bad_stop_sequences_are_refused(void **state)
{
    struct fixture *f = *state;
    struct collected c = { 0 };
    hr_generate_params params = hr_generate_default_params();
    const char *empty[] = { "ok", "" };
    params.stop = empty;
    params.stop_count = 2;
    assert_int_equal(hr_generate(f->model, "hi", &params, collect, &c, NULL), HR_EINVAL);
    assert_non_null(strstr(hr_last_error(), "stop sequence 1 is empty"));
    const char *broken[] = { "\xC3" };
    params.stop = broken;
    params.stop_count = 1;
    assert_int_equal(hr_generate(f->model, "hi", &params, collect, &c, NULL), HR_EINVAL);
    assert_non_null(strstr(hr_last_error(), "UTF-8"));
    params.stop_count = HR_MAX_STOP_SEQUENCES + 1;
    assert_int_equal(hr_generate(f->model, "hi", &params, collect, &c, NULL), HR_EINVAL);
    hr_session_params session_params = hr_session_default_params();
    session_params.generate.stop = empty;
    session_params.generate.stop_count = 2;
    hr_session *session = NULL;
    assert_int_equal(hr_session_start(f->model, "hi", &session_params, &session), HR_EINVAL);
    assert_null(session);
    assert_int_equal(c.pieces, 0);
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
    params = hr_generate_default_params();
    params.typical_p = 0;
    assert_int_equal(hr_generate(f->model, "hi", &params, collect, &c, NULL), HR_EINVAL);
    assert_non_null(strstr(hr_last_error(), "typical_p"));
    params = hr_generate_default_params();
    params.mirostat = 3;
    assert_int_equal(hr_generate(f->model, "hi", &params, collect, &c, NULL), HR_EINVAL);
    params = hr_generate_default_params();
    params.repeat_penalty = 0;
    assert_int_equal(hr_generate(f->model, "hi", &params, collect, &c, NULL), HR_EINVAL);
    params = hr_generate_default_params();
    hr_logit_bias bias = { 5, NAN };
    params.logit_bias = &bias;
    params.logit_bias_count = 1;
    assert_int_equal(hr_generate(f->model, "hi", &params, collect, &c, NULL), HR_EINVAL);
    assert_non_null(strstr(hr_last_error(), "logit_bias entry 0"));
    bias.bias = 1;   /* a token beyond the (fake, empty) vocabulary */
    assert_int_equal(hr_generate(f->model, "hi", &params, collect, &c, NULL), HR_EINVAL);
    assert_non_null(strstr(hr_last_error(), "vocabulary"));
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

/* ---- prompt-prefix reuse ------------------------------------------------------------------- */

/* The engine's window must hold exactly what the model remembers, after every call. */
static void assert_window_agrees(hr_model *model)
{
    assert_int_equal(model->engine_model->n_past, model->slots[0].count);
    assert_memory_equal(model->engine_model->window, model->slots[0].tokens, sizeof(hr_token) * (size_t)model->slots[0].count);
}

static void follow_up_decodes_only_the_new_tokens(void **state)
{
    struct fixture *f = *state;
    static const char *const pieces[] = { "a", "b" };
    use_script(pieces, 2);
    struct collected c = { 0 };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "hello", NULL, collect, &c, &stats), HR_OK);
    assert_int_equal(stats.cached_tokens, 0);
    /* the start token, 5 bytes, and both answer tokens (the end token is never decoded) */
    assert_int_equal(f->model->slots[0].count, 8);
    assert_window_agrees(f->model);

    /* the next turn repeats the prompt and the answer: only "!" is decoded */
    int before = f->model->engine_model->tokens_decoded;
    struct collected d = { 0 };
    assert_int_equal(hr_generate(f->model, "helloab!", NULL, collect, &d, &stats), HR_OK);
    assert_int_equal(stats.prompt_tokens, 9);
    assert_int_equal(stats.cached_tokens, 8);
    assert_int_equal(f->model->engine_model->tokens_decoded - before, 1 + 2);   /* "!" then "a", "b" */
    assert_string_equal(d.text, "ab");
    assert_window_agrees(f->model);
}

static void same_prompt_decodes_its_last_token(void **state)
{
    struct fixture *f = *state;
    use_script(NULL, 0);
    struct collected c = { 0 };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "hi", NULL, collect, &c, &stats), HR_OK);
    int before = f->model->engine_model->tokens_decoded;
    assert_int_equal(hr_generate(f->model, "hi", NULL, collect, &c, &stats), HR_OK);
    /* its logits are what the first sample reads: cut back by one and decoded again */
    assert_int_equal(stats.cached_tokens, 2);
    assert_int_equal(f->model->engine_model->tokens_decoded - before, 1);
    assert_window_agrees(f->model);
    /* a prompt that is a prefix of the window: the same */
    assert_int_equal(hr_generate(f->model, "h", NULL, collect, &c, &stats), HR_OK);
    assert_int_equal(stats.cached_tokens, 1);
    assert_window_agrees(f->model);
}

static void diverging_prompt_keeps_the_common_part(void **state)
{
    struct fixture *f = *state;
    use_script(NULL, 0);
    struct collected c = { 0 };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "hello", NULL, collect, &c, &stats), HR_OK);
    assert_int_equal(hr_generate(f->model, "help me", NULL, collect, &c, &stats), HR_OK);
    assert_int_equal(stats.cached_tokens, 4);   /* start, h, e, l */
    assert_window_agrees(f->model);
    assert_int_equal(hr_generate(f->model, "xyz", NULL, collect, &c, &stats), HR_OK);
    assert_int_equal(stats.cached_tokens, 1);   /* only the start token is shared */
    assert_window_agrees(f->model);
}

static void engine_that_cannot_cut_starts_over(void **state)
{
    struct fixture *f = *state;
    use_script(NULL, 0);
    struct collected c = { 0 };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "hello", NULL, collect, &c, &stats), HR_OK);
    fail_truncate = 1;
    int resets = reset_calls;
    assert_int_equal(hr_generate(f->model, "help", NULL, collect, &c, &stats), HR_OK);
    assert_int_equal(stats.cached_tokens, 0);
    assert_int_equal(reset_calls, resets + 1);
    assert_window_agrees(f->model);
}

static void failed_prompt_decode_forgets_what_is_uncertain(void **state)
{
    struct fixture *f = *state;
    use_script(NULL, 0);
    struct collected c = { 0 };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "abc", NULL, collect, &c, &stats), HR_OK);
    /* the next prompt's decode stops half-way, leaving part of itself in the engine's window */
    fail_decode_at = f->model->engine_model->decodes + 1;
    fail_decode_code = HR_ECANCELLED;
    assert_int_equal(hr_generate(f->model, "abcdefghij", NULL, collect, &c, &stats), HR_ECANCELLED);
    assert_int_equal(f->model->slots[0].count, 4);   /* start, a, b, c: what was there before */
    assert_window_agrees(f->model);
    fail_decode_at = f->model->engine_model->decodes + 1;
    fail_decode_code = HR_EENGINE;
    assert_int_equal(hr_generate(f->model, "abcdefghij", NULL, collect, &c, &stats), HR_EENGINE);
    assert_string_equal(hr_last_error(), "the fake engine failed on purpose");   /* its sentence survives */
    assert_window_agrees(f->model);
    /* and then it works, reusing what is certain */
    assert_int_equal(hr_generate(f->model, "abcdefghij", NULL, collect, &c, &stats), HR_OK);
    assert_int_equal(stats.cached_tokens, 4);
    assert_window_agrees(f->model);
}

static void failed_step_keeps_the_answer_so_far(void **state)
{
    struct fixture *f = *state;
    static const char *const pieces[] = { "a", "b", "c", "d", "e" };
    use_script(pieces, 5);
    struct collected c = { 0 };
    hr_generation_stats stats;
    /* prompt decode, then "a", "b"; the decode of "c" fails */
    fail_decode_at = f->model->engine_model->decodes + 4;
    fail_decode_code = HR_EENGINE;
    assert_int_equal(hr_generate(f->model, "hi", NULL, collect, &c, &stats), HR_EENGINE);
    assert_string_equal(c.text, "abc");
    assert_int_equal(f->model->slots[0].count, 5);   /* start, h, i, a, b */
    assert_window_agrees(f->model);
    /* cancelled the same way: the window keeps what was decoded before */
    fail_decode_at = f->model->engine_model->decodes + 3;
    fail_decode_code = HR_ECANCELLED;
    assert_int_equal(hr_generate(f->model, "hiab", NULL, collect, &c, &stats), HR_ECANCELLED);
    assert_int_equal(stats.cached_tokens, 4);
    assert_window_agrees(f->model);
}

/* ---- snapshots: the runtime's bookkeeping around the engine's state files ----------------- */

struct snapshot_fixture {
    char directory[64];     /* a temporary directory: the model file and the cache */
    char model_path[128];
    char cache[128];
    hr_context *ctx;
    hr_model *model;
};

static int snapshot_setup(void **state)
{
    setup(state);
    teardown(state);   /* only the fault flags of setup() are wanted */
    struct snapshot_fixture *f = calloc(1, sizeof *f);
    snprintf(f->directory, sizeof f->directory, "/tmp/headroom-test-XXXXXX");
    assert_non_null(mkdtemp(f->directory));
    snprintf(f->model_path, sizeof f->model_path, "%s/fake.gguf", f->directory);
    snprintf(f->cache, sizeof f->cache, "%s/cache", f->directory);
    FILE *file = fopen(f->model_path, "wb");
    fputs("GGUF fake", file);
    fclose(file);
    hr_context_params params = hr_context_default_params();
    params.monitor = false;
    params.cache_dir = f->cache;
    assert_int_equal(hr_context_create(&params, &f->ctx), HR_OK);
    hr_context_use_engine(f->ctx, &fake_engine);
    assert_int_equal(hr_model_load(f->ctx, f->model_path, NULL, &f->model), HR_OK);
    *state = f;
    return 0;
}

static int snapshot_teardown(void **state)
{
    struct snapshot_fixture *f = *state;
    hr_model_free(f->model);
    hr_context_free(f->ctx);
    char command[256];
    snprintf(command, sizeof command, "rm -rf '%s'", f->directory);
    assert_int_equal(system(command), 0);
    free(f);
    return 0;
}

static size_t files_in(const char *directory)
{
    DIR *dir = opendir(directory);
    if (!dir) return 0;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        if (e->d_name[0] != '.' || (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)) n++;
    closedir(dir);
    return n;
}

static void snapshot_round_trip(void **state)
{
    struct snapshot_fixture *f = *state;
    static const char *const pieces[] = { "o", "k" };
    use_script(pieces, 2);
    struct collected c = { 0 };
    hr_generation_stats stats;
    bool saved = true;
    assert_int_equal(hr_model_snapshot_save(f->model, &saved), HR_OK);
    assert_false(saved);   /* an empty window: nothing to save */
    assert_int_equal(hr_generate(f->model, "hello", NULL, collect, &c, &stats), HR_OK);
    assert_int_equal(hr_model_snapshot_save(f->model, &saved), HR_OK);
    assert_true(saved);
    assert_int_equal(hr_model_snapshot_save(f->model, &saved), HR_OK);
    assert_false(saved);   /* unchanged since */
    hr_model_free(f->model);

    assert_int_equal(hr_model_load(f->ctx, f->model_path, NULL, &f->model), HR_OK);
    assert_int_equal(hr_model_snapshot_restore(f->model), HR_OK);
    assert_int_equal(f->model->slots[0].count, 8);
    assert_window_agrees(f->model);
    assert_int_equal(hr_model_snapshot_save(f->model, &saved), HR_OK);
    assert_false(saved);   /* just restored: the file on disk is the same */
    struct collected d = { 0 };
    assert_int_equal(hr_generate(f->model, "hellook?", NULL, collect, &d, &stats), HR_OK);
    assert_int_equal(stats.cached_tokens, 8);
    assert_int_equal(hr_model_snapshot_save(f->model, &saved), HR_OK);
    assert_true(saved);

    hr_cache_entry *entries = NULL;
    size_t count = 0;
    assert_int_equal(hr_cache_list(f->ctx, &entries, &count), HR_OK);
    assert_int_equal(count, 2);
    assert_int_equal(entries[0].tokens, 11);   /* the newest first: 9 of the prompt and "o", "k" */
    assert_int_equal(entries[1].tokens, 8);
    assert_string_equal(entries[0].model, "fake");
    assert_int_equal(entries[0].n_ctx, FAKE_CTX);
    hr_free(entries);
}

static void failed_save_leaves_nothing(void **state)
{
    struct snapshot_fixture *f = *state;
    use_script(NULL, 0);
    struct collected c = { 0 };
    assert_int_equal(hr_generate(f->model, "hello", NULL, collect, &c, NULL), HR_OK);
    fail_save = 1;
    bool saved = true;
    assert_int_equal(hr_model_snapshot_save(f->model, &saved), HR_EIO);
    assert_false(saved);
    char kv[256];
    snprintf(kv, sizeof kv, "%s/kv", f->cache);
    assert_int_equal(files_in(kv), 0);   /* no snapshot, no temporary file */
    fail_save = 0;
    assert_int_equal(hr_model_snapshot_save(f->model, &saved), HR_OK);
    assert_true(saved);
    assert_int_equal(files_in(kv), 1);
}

static void save_removes_stale_leftovers(void **state)
{
    struct snapshot_fixture *f = *state;
    use_script(NULL, 0);
    struct collected c = { 0 };
    assert_int_equal(hr_generate(f->model, "hello", NULL, collect, &c, NULL), HR_OK);
    char kv[256], stale[400], fresh[400], foreign[400];
    snprintf(kv, sizeof kv, "%s/kv", f->cache);
    assert_int_equal(mkdir(f->cache, 0700), 0);
    assert_int_equal(mkdir(kv, 0700), 0);
    /* a crash between the engine's write and the rename leaves one of these */
    snprintf(stale, sizeof stale, "%s/.0000000000000001-0000000000000002-00000003.hrkv.tmp", kv);
    snprintf(fresh, sizeof fresh, "%s/.0000000000000001-0000000000000002-00000004.hrkv.tmp", kv);
    snprintf(foreign, sizeof foreign, "%s/.0000000000000001-0000000000000002-00000005.hrkv.tmp", kv);
    const char *contents[] = { "FAKESTAT", "FAKESTAT", "someone else's" };
    const char *paths[] = { stale, fresh, foreign };
    for (int i = 0; i < 3; i++) {
        FILE *file = fopen(paths[i], "wb");
        fputs(contents[i], file);
        fclose(file);
    }
    struct timespec old[2] = { { .tv_sec = time(NULL) - 120 }, { .tv_sec = time(NULL) - 120 } };
    assert_int_equal(utimensat(AT_FDCWD, stale, old, 0), 0);
    assert_int_equal(utimensat(AT_FDCWD, foreign, old, 0), 0);
    bool saved = false;
    assert_int_equal(hr_model_snapshot_save(f->model, &saved), HR_OK);
    assert_true(saved);
    assert_int_equal(access(stale, F_OK), -1);   /* the engine's magic, over a minute old: gone */
    assert_int_equal(access(fresh, F_OK), 0);    /* perhaps a save in progress: kept */
    assert_int_equal(access(foreign, F_OK), 0);  /* not the engine's: kept */
}

static int save_from_inside(const char *piece, size_t length, void *user_data)
{
    struct collected *c = user_data;
    (void)piece;
    (void)length;
    bool saved;
    c->nested_rc = hr_model_snapshot_save(c->model, &saved);
    return 0;
}

static void snapshot_calls_wait_for_no_generation(void **state)
{
    struct snapshot_fixture *f = *state;
    static const char *const pieces[] = { "a" };
    use_script(pieces, 1);
    struct collected c = { .model = f->model };
    assert_int_equal(hr_generate(f->model, "hi", NULL, save_from_inside, &c, NULL), HR_OK);
    assert_int_equal(c.nested_rc, HR_EBUSY);
}

static void snapshot_needs_a_known_model_file(void **state)
{
    struct fixture *f = *state;   /* "fake.gguf" does not exist: its identity is unknown */
    use_script(NULL, 0);
    struct collected c = { 0 };
    assert_int_equal(hr_generate(f->model, "hi", NULL, collect, &c, NULL), HR_OK);
    bool saved = true;
    assert_int_equal(hr_model_snapshot_save(f->model, &saved), HR_ENOTSUP);
    assert_false(saved);
    assert_non_null(strstr(hr_last_error(), "fake.gguf"));
    assert_int_equal(hr_model_snapshot_restore(f->model), HR_ENOTSUP);
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
        cmocka_unit_test_setup_teardown(stop_sequence_over_three_tokens_ends_before_it, setup, teardown),
        cmocka_unit_test_setup_teardown(held_prefix_that_never_completes_is_emitted, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_sequence_after_a_split_character, setup, teardown),
        cmocka_unit_test_setup_teardown(session_copies_its_stop_sequences, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_stop_sequences_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(follow_up_decodes_only_the_new_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(same_prompt_decodes_its_last_token, setup, teardown),
        cmocka_unit_test_setup_teardown(diverging_prompt_keeps_the_common_part, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_that_cannot_cut_starts_over, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_prompt_decode_forgets_what_is_uncertain, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_step_keeps_the_answer_so_far, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshot_needs_a_known_model_file, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshot_round_trip, snapshot_setup, snapshot_teardown),
        cmocka_unit_test_setup_teardown(failed_save_leaves_nothing, snapshot_setup, snapshot_teardown),
        cmocka_unit_test_setup_teardown(snapshot_calls_wait_for_no_generation, snapshot_setup, snapshot_teardown),
        cmocka_unit_test_setup_teardown(save_removes_stale_leftovers, snapshot_setup, snapshot_teardown),
        cmocka_unit_test(error_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
