/*
 * test_engine.c: libheadroom with the real llama.cpp engine on a model made by headroom-mkmodel:
 * load, describe, generate, cancel, unload, and clear errors for bad model files.
 * usage: test_engine [--only=CASE,... | --except=CASE,...] TINY_MODEL.gguf SCRATCH_DIR
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/utf8.h"
#include "engine/engine.h"
#include "headroom.h"
#include "runtime/model.h"
#include "skip.h"

static const char *tiny_model;
static const char *scratch;

struct text {
    char data[65536];
    size_t length;
    int pieces;
    int invalid_pieces;
    atomic_int delivered;
};

static int collect(const char *piece, size_t length, void *user_data)
{
    struct text *t = user_data;
    /* every piece must be whole, valid UTF-8: hr_utf8_take must pass it through unchanged */
    char check[4096];
    size_t consumed = 0;
    size_t written = length * 3 < sizeof check ? hr_utf8_take(piece, length, 1, check, sizeof check, &consumed) : 0;
    if (written != length || memcmp(check, piece, length) != 0) t->invalid_pieces++;
    if (t->length + length < sizeof t->data) {
        memcpy(t->data + t->length, piece, length);
        t->length += length;
        t->data[t->length] = '\0';
    }
    t->pieces++;
    atomic_fetch_add(&t->delivered, 1);
    return 0;
}

static hr_context *new_context(void)
{
    hr_context *ctx = NULL;
    assert_int_equal(hr_context_create(NULL, &ctx), HR_OK);
    return ctx;
}

static hr_model *load(hr_context *ctx, int32_t n_ctx)
{
    hr_model_params params = hr_model_default_params();
    params.n_ctx = n_ctx;
    hr_model *model = NULL;
    int rc = hr_model_load(ctx, tiny_model, &params, &model);
    if (rc != HR_OK) fail_msg("loading %s: %s: %s", tiny_model, hr_strerror(rc), hr_last_error());
    return model;
}

static void load_describe_generate_unload(void **state)
{
    (void)state;
    hr_context *ctx = new_context();
    hr_model *model = load(ctx, 0);

    hr_model_info info;
    assert_int_equal(hr_model_get_info(model, &info), HR_OK);
    assert_int_equal(info.n_layer, 2);
    assert_int_equal(info.n_vocab, 32000);
    assert_int_equal(info.n_ctx_train, 512);
    assert_int_equal(info.n_ctx, 512);            /* 0 asks for the model's own length */
    assert_true(info.n_params > 4000000 && info.n_params < 5000000);
    assert_true(info.weight_bytes > 0 && info.weight_bytes <= info.file_bytes);
    assert_true(info.n_layer_gpu >= 0 && info.n_layer_gpu <= info.n_layer);
    assert_true(info.n_threads > 0);
    assert_int_equal(info.load_mode, HR_LOAD_MMAP);
    assert_non_null(strstr(info.name, "tiny"));

    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 16;
    struct text *out = calloc(1, sizeof *out);
    hr_generation_stats stats;
    int rc = hr_generate(model, "The quick brown fox", &params, collect, out, &stats);
    if (rc != HR_OK) fail_msg("generate: %s", hr_last_error());
    assert_int_equal(stats.generated_tokens, 16);
    assert_int_equal(stats.stop_reason, HR_STOP_MAX_TOKENS);
    assert_true(stats.prompt_tokens >= 5);
    assert_true(stats.tokens_per_second > 0);
    assert_true(stats.time_to_first_token > 0 && stats.time_to_first_token <= stats.total_seconds);
    assert_true(out->length > 0);
    assert_int_equal(out->invalid_pieces, 0);

    free(out);
    hr_model_free(model);
    hr_context_free(ctx);
}

static void chat_template_from_the_model(void **state)
{
    (void)state;
    hr_context *ctx = new_context();
    hr_model *model = load(ctx, 0);
    hr_chat_message messages[] = { { "system", "Be brief." }, { "user", "Hello" } };
    char *text = NULL;
    assert_int_equal(hr_model_apply_chat_template(model, messages, 2, true, &text), HR_OK);
    /* headroom-mkmodel writes the Llama-2 chat template */
    assert_string_equal(text, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHello [/INST]");
    hr_free(text);
    hr_chat_message bad[] = { { "user", NULL } };
    assert_int_equal(hr_model_apply_chat_template(model, bad, 1, true, &text), HR_EINVAL);
    hr_model_free(model);
    hr_context_free(ctx);
}

static void same_seed_same_text(void **state)
{
    (void)state;
    hr_context *ctx = new_context();
    hr_model *model = load(ctx, 0);
    struct text *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *c = calloc(1, sizeof *c);
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 24;
    params.temperature = 1.5f;
    params.top_k = 0;
    params.min_p = 0;
    params.seed = 7;
    assert_int_equal(hr_generate(model, "Once upon a time", &params, collect, a, NULL), HR_OK);
    assert_int_equal(hr_generate(model, "Once upon a time", &params, collect, b, NULL), HR_OK);
    assert_string_equal(a->data, b->data);   /* the second reuses the first's prompt: the same text */
    params.seed = 8;
    assert_int_equal(hr_generate(model, "Once upon a time", &params, collect, c, NULL), HR_OK);
    assert_string_not_equal(a->data, c->data);
    free(a);
    free(b);
    free(c);
    hr_model_free(model);
    hr_context_free(ctx);
}

static void context_window_fills_up(void **state)
{
    (void)state;
    hr_context *ctx = new_context();
    hr_model *model = load(ctx, 32);
    hr_model_info info;
    hr_model_get_info(model, &info);
    struct text *out = calloc(1, sizeof *out);
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 1000;
    hr_generation_stats stats;
    assert_int_equal(hr_generate(model, "Hello", &params, collect, out, &stats), HR_OK);
    assert_int_equal(stats.stop_reason, HR_STOP_CONTEXT_FULL);
    /* every generated token but the last went into the window */
    assert_int_equal(stats.prompt_tokens + stats.generated_tokens - 1, info.n_ctx);

    char prompt[4000];
    for (size_t i = 0; i + 6 < sizeof prompt; i += 6) memcpy(prompt + i, "hello ", 6);
    prompt[sizeof prompt - 6] = '\0';
    assert_int_equal(hr_generate(model, prompt, &params, collect, out, &stats), HR_ECONTEXT);
    assert_non_null(strstr(hr_last_error(), "context window holds"));
    free(out);
    hr_model_free(model);
    hr_context_free(ctx);
}

struct canceller {
    hr_model *model;
    struct text *out;
};

static void *cancel_after_first_piece(void *arg)
{
    struct canceller *c = arg;
    while (atomic_load(&c->out->delivered) < 1) usleep(100);
    hr_model_cancel(c->model);
    return NULL;
}

static void cancel_from_another_thread(void **state)
{
    (void)state;
    hr_context *ctx = new_context();
    hr_model *model = load(ctx, 0);
    struct text *out = calloc(1, sizeof *out);
    struct canceller c = { model, out };
    pthread_t thread;
    pthread_create(&thread, NULL, cancel_after_first_piece, &c);
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 400;
    hr_generation_stats stats;
    int rc = hr_generate(model, "Tell me a story", &params, collect, out, &stats);
    pthread_join(thread, NULL);
    assert_int_equal(rc, HR_ECANCELLED);
    assert_int_equal(stats.stop_reason, HR_STOP_CANCELLED);
    assert_true(stats.generated_tokens < 400);
    int delivered = atomic_load(&out->delivered);
    /* nothing arrives after the call returned */
    usleep(20000);
    assert_int_equal(atomic_load(&out->delivered), delivered);
    /* the model is usable again */
    params.max_tokens = 4;
    assert_int_equal(hr_generate(model, "Again", &params, collect, out, &stats), HR_OK);
    assert_int_equal(stats.generated_tokens, 4);
    free(out);
    hr_model_free(model);
    hr_context_free(ctx);
}

static int progress_calls;

static bool refuse_progress(float progress, void *user_data)
{
    (void)progress;
    (void)user_data;
    progress_calls++;
    return false;
}

static void load_can_be_cancelled(void **state)
{
    (void)state;
    hr_context *ctx = new_context();
    hr_model_params params = hr_model_default_params();
    params.progress_fn = refuse_progress;
    hr_model *model = (hr_model *)1;
    assert_int_equal(hr_model_load(ctx, tiny_model, &params, &model), HR_ECANCELLED);
    assert_null(model);
    assert_true(progress_calls >= 1);
    hr_context_free(ctx);
}

/* ---- bad model files ----------------------------------------------------------------------- */

static char *scratch_path(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", scratch, name);
    return path;
}

static void write_file(const char *path, const void *data, size_t length)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, length, f), length);
    fclose(f);
}

static void expect_load_error(const char *path, int code, const char *words)
{
    hr_context *ctx = new_context();
    hr_model *model = NULL;
    int rc = hr_model_load(ctx, path, NULL, &model);
    if (rc != code || !strstr(hr_last_error(), words) || !strstr(hr_last_error(), path))
        fail_msg("loading %s: got %s \"%s\", wanted %s with \"%s\" and the path", path, hr_strerror(rc),
                 hr_last_error(), hr_strerror(code), words);
    assert_null(model);
    hr_context_free(ctx);
}

static void missing_file(void **state)
{
    (void)state;
    expect_load_error(scratch_path("does-not-exist.gguf"), HR_ENOENT, "not found");
}

static void text_file_named_gguf(void **state)
{
    (void)state;
    const char *text = "hello, I am a text file\n";
    char *path = scratch_path("text.gguf");
    write_file(path, text, strlen(text));
    expect_load_error(path, HR_EFORMAT, "not a GGUF model file");
}

static void empty_file(void **state)
{
    (void)state;
    char *path = scratch_path("empty.gguf");
    write_file(path, "", 0);
    expect_load_error(path, HR_EFORMAT, "empty");
}

static void directory_instead_of_file(void **state)
{
    (void)state;
    expect_load_error(scratch, HR_EFORMAT, "directory");
}

static void truncated_file(void **state)
{
    (void)state;
    FILE *in = fopen(tiny_model, "rb");
    assert_non_null(in);
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);
    size_t keep = (size_t)size * 6 / 10;
    char *data = malloc(keep);
    assert_int_equal(fread(data, 1, keep, in), keep);
    fclose(in);
    char *path = scratch_path("truncated.gguf");
    write_file(path, data, keep);
    free(data);
    expect_load_error(path, HR_EFORMAT, "truncated");
}

static void corrupt_header(void **state)
{
    (void)state;
    /* the right magic, then a version and counts that make no sense */
    unsigned char data[64];
    memset(data, 0xEE, sizeof data);
    memcpy(data, "GGUF", 4);
    char *path = scratch_path("corrupt.gguf");
    write_file(path, data, sizeof data);
    expect_load_error(path, HR_EFORMAT, "corrupt");
}

/* ---- a GGUF header written by hand: the formula estimate on hyperparameters no model has ---- */

struct gguf_writer {
    unsigned char bytes[4096];
    size_t length;
};

static void put(struct gguf_writer *w, const void *data, size_t length)
{
    assert_true(w->length + length <= sizeof w->bytes);
    memcpy(w->bytes + w->length, data, length);
    w->length += length;
}
static void put_u32(struct gguf_writer *w, uint32_t v) { put(w, &v, sizeof v); }
static void put_u64(struct gguf_writer *w, uint64_t v) { put(w, &v, sizeof v); }
static void put_string(struct gguf_writer *w, const char *text)
{
    put_u64(w, strlen(text));
    put(w, text, strlen(text));
}
static void kv_u32(struct gguf_writer *w, const char *key, uint32_t value)
{
    put_string(w, key);
    put_u32(w, 4);   /* GGUF_TYPE_UINT32 */
    put_u32(w, value);
}

/* A llama header with `block_count` layers, 8 tokens and one F32 tensor; the file is made 16 MiB
 * long (sparse) so that it passes the length check and reaches the formula. */
static char *write_header(const char *name, uint32_t block_count, uint32_t head_count)
{
    struct gguf_writer w = { .length = 0 };
    put(&w, "GGUF", 4);
    put_u32(&w, 3);
    put_u64(&w, 1);   /* tensors */
    put_u64(&w, 6);   /* keys */
    put_string(&w, "general.architecture");
    put_u32(&w, 8);   /* GGUF_TYPE_STRING */
    put_string(&w, "llama");
    kv_u32(&w, "llama.block_count", block_count);
    kv_u32(&w, "llama.context_length", 256);
    kv_u32(&w, "llama.embedding_length", 64);
    kv_u32(&w, "llama.attention.head_count", head_count);
    put_string(&w, "tokenizer.ggml.tokens");
    put_u32(&w, 9);   /* GGUF_TYPE_ARRAY of */
    put_u32(&w, 8);   /* strings */
    put_u64(&w, 8);
    for (int i = 0; i < 8; i++) put_string(&w, "t");
    put_string(&w, "token_embd.weight");
    put_u32(&w, 2);
    put_u64(&w, 64);
    put_u64(&w, 8);
    put_u32(&w, 0);   /* GGML_TYPE_F32 */
    put_u64(&w, 0);
    while (w.length % 32) put(&w, "", 1);
    char *path = scratch_path(name);
    write_file(path, w.bytes, w.length);
    assert_int_equal(truncate(path, 16 << 20), 0);
    return path;
}

static int formula_estimate(const char *path)
{
    hr_engine_estimate_params params = { .load = { .n_ctx = 256, .n_threads = 1, .n_gpu_layers = 0 },
                                         .formula_only = true };
    hr_engine_estimate estimate;
    return hr_engine_llama()->estimate(path, &params, &estimate);
}

/* Found by tests/fuzz/fuzz_gguf: a header claiming two billion layers made the formula loop over
 * each of them (minutes, with the file's lookups per layer). Now it is refused at once. */
static void a_header_with_impossible_hyperparameters_is_refused(void **state)
{
    (void)state;
    char *sane = write_header("sane-header.gguf", 2, 4);
    assert_int_equal(formula_estimate(sane), HR_OK);
    char *layers = write_header("two-billion-layers.gguf", 0x7fffffff, 4);
    assert_int_equal(formula_estimate(layers), HR_EFORMAT);
    assert_non_null(strstr(hr_last_error(), "llama.block_count is 2147483647"));
    char *heads = write_header("many-heads.gguf", 2, 0xffffffff);
    assert_int_equal(formula_estimate(heads), HR_EFORMAT);
    assert_non_null(strstr(hr_last_error(), "attention.head_count"));
}

/* What the process that tried to load an unreadable file tells the test. */
struct verdict {
    enum { LOAD_TRIED, COULD_NOT_DROP, COULD_NOT_REACH, COULD_READ } stage;
    int error;   /* errno where the stage is not LOAD_TRIED */
    int rc;
    char sentence[1024];
};

/* uid and gid "nobody" on Debian and most distributions; no passwd entry is needed */
static const uid_t UNPRIVILEGED = 65534;

/* The child's side: become an ordinary user if root (root reads every file whatever its mode),
 * check that the file can be reached but not read, then load it through headroom. Never returns
 * into cmocka: a forked child that failed an assertion would run the remaining cases itself. */
static void try_unreadable(const char *path, int reply)
{
    struct verdict v = { .stage = LOAD_TRIED };
    struct stat st;
    if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(UNPRIVILEGED) != 0 || setuid(UNPRIVILEGED) != 0)) {
        v.stage = COULD_NOT_DROP;
        v.error = errno;
    } else if (stat(path, &st) != 0) {
        v.stage = COULD_NOT_REACH;
        v.error = errno;
    } else {
        int fd = open(path, O_RDONLY);
        if (fd >= 0) {
            close(fd);
            v.stage = COULD_READ;
        }
    }
    if (v.stage == LOAD_TRIED) {
        hr_context_params params = hr_context_default_params();
        params.monitor = false;
        hr_context *ctx = NULL;
        hr_model *model = NULL;
        v.rc = hr_context_create(&params, &ctx);
        if (v.rc == HR_OK) {
            v.rc = hr_model_load(ctx, path, NULL, &model);
            if (model) hr_model_free(model);
        }
        snprintf(v.sentence, sizeof v.sentence, "%s", hr_last_error());
        hr_context_free(ctx);
    }
    _exit(write(reply, &v, sizeof v) == (ssize_t)sizeof v ? 0 : 1);
}

/* A file this user may reach but not read: HR_EACCES, with a sentence that says so and names
 * the file. As root the load runs in a child that has dropped to uid/gid 65534. */
static void unreadable_file(void **state)
{
    (void)state;
    /* in /tmp, which every user may pass through (the scratch directory's parents may not be);
     * the directory may be passed through but not listed, the file is nobody's to read */
    char directory[] = "/tmp/headroom-unreadable-XXXXXX", path[64];
    assert_non_null(mkdtemp(directory));
    assert_int_equal(chmod(directory, 0711), 0);
    snprintf(path, sizeof path, "%s/model.gguf", directory);
    write_file(path, "GGUF", 4);
    assert_int_equal(chmod(path, 0), 0);

    int pipe_fds[2];
    assert_int_equal(pipe(pipe_fds), 0);
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(pipe_fds[0]);
        try_unreadable(path, pipe_fds[1]);
    }
    close(pipe_fds[1]);
    struct verdict v;
    ssize_t got = read(pipe_fds[0], &v, sizeof v);
    close(pipe_fds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    unlink(path);
    rmdir(directory);
    assert_int_equal(got, (ssize_t)sizeof v);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    if (v.stage == COULD_NOT_DROP)
        skip_because("running as root, and cannot become an unprivileged user (uid %d) to meet an unreadable file: %s",
                     (int)UNPRIVILEGED, strerror(v.error));
    if (v.stage == COULD_READ)
        skip_because("this process reads %s despite mode 000 (a capability such as CAP_DAC_OVERRIDE?)", path);
    if (v.stage == COULD_NOT_REACH) fail_msg("the test's own file %s cannot be reached: %s", path, strerror(v.error));
    if (v.rc != HR_EACCES || !strstr(v.sentence, "permission denied") || !strstr(v.sentence, path))
        fail_msg("loading %s: got %s \"%s\", wanted %s with \"permission denied\" and the path", path,
                 hr_strerror(v.rc), v.sentence, hr_strerror(HR_EACCES));
    print_message("  as uid %d: %s\n", (int)geteuid() == 0 ? (int)UNPRIVILEGED : (int)geteuid(), v.sentence);
}

/* The grammar sampler: random weights, yet every answer is one the grammar allows, whole. */
static void grammar_constrains_the_output(void **state)
{
    (void)state;
    hr_context *ctx = new_context();
    hr_model *model = load(ctx, 0);
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 40;
    params.temperature = 1;
    params.grammar = "root ::= (\"yes\" | \"no\") \" \" [0-9] [0-9]?";
    for (uint64_t seed = 1; seed <= 4; seed++) {
        params.seed = seed;
        struct text out = { .length = 0 };
        hr_generation_stats stats;
        assert_int_equal(hr_generate(model, "Answer:", &params, collect, &out, &stats), HR_OK);
        assert_int_equal(stats.stop_reason, HR_STOP_END_OF_TEXT);
        int digits = 0;
        assert_true(sscanf(out.data, "yes %d", &digits) == 1 || sscanf(out.data, "no %d", &digits) == 1);
    }
    /* JSON: any object without a schema, and a schema turned into a grammar */
    char *grammar = NULL;
    assert_int_equal(hr_json_grammar(NULL, &grammar), HR_OK);
    assert_non_null(strstr(grammar, "root"));
    hr_free(grammar);
    int rc = hr_json_grammar("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"boolean\"}},"
                             "\"required\":[\"a\"],\"additionalProperties\":false}", &grammar);
    if (rc == HR_ENOTSUP) {
        assert_non_null(strstr(hr_last_error(), "source tree"));
    } else {
        assert_int_equal(rc, HR_OK);
        params.grammar = grammar;
        struct text out = { .length = 0 };
        hr_generation_stats stats;
        assert_int_equal(hr_generate(model, "JSON:", &params, collect, &out, &stats), HR_OK);
        assert_int_equal(stats.stop_reason, HR_STOP_END_OF_TEXT);
        assert_true(strstr(out.data, "\"a\"") && (strstr(out.data, "true") || strstr(out.data, "false")));
        assert_int_equal(out.data[0], '{');
        hr_free(grammar);
        assert_int_equal(hr_json_grammar("{\"type\":", &grammar), HR_EINVAL);
        assert_int_equal(hr_json_grammar("{\"type\":\"bogus\"}", &grammar), HR_EINVAL);
        assert_non_null(strstr(hr_last_error(), "bogus"));
    }
    /* the degradation guard judges a generation under a grammar as constrained: it times its
     * windows, learns no speed from them (the vocabulary's masks make it slower and fault fresh
     * pages) and reports nothing while the weights stay in memory */
    hr_model *fresh = load(ctx, 0);
    params.grammar = "root ::= [a-z]{40}";
    params.max_tokens = 40;
    struct text letters = { .length = 0 };
    assert_int_equal(hr_generate(fresh, "x", &params, collect, &letters, NULL), HR_OK);
    assert_int_equal(strlen(letters.data), 40);
    assert_true(fresh->guard_window_start > 0);
    assert_true(fresh->guard.expected == 0);
    assert_int_equal(fresh->guard.slow_reported, 0);
    params.grammar = NULL;
    assert_int_equal(hr_generate(fresh, "x", &params, collect, &letters, NULL), HR_OK);
    assert_true(fresh->guard.expected > 0);   /* an unconstrained one teaches the speed */
    hr_model_free(fresh);
    params.max_tokens = 40;

    /* a grammar that does not parse is the caller's mistake */
    params.grammar = "root ::= (";
    struct text out = { .length = 0 };
    assert_int_equal(hr_generate(model, "x", &params, collect, &out, NULL), HR_EINVAL);
    assert_non_null(strstr(hr_last_error(), "grammar"));
    hr_model_free(model);
    hr_context_free(ctx);
}

static double norm_of(const float *v, int32_t n)
{
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += (double)v[i] * v[i];
    return sqrt(sum);
}

/* Embeddings in a context of their own: the vectors are stable and normalized, and the
 * generation window (its tokens and its KV) is untouched, so prefix reuse still works. */
static void embeddings_leave_the_window_alone(void **state)
{
    (void)state;
    hr_context *ctx = new_context();
    hr_model *model = load(ctx, 0);
    hr_model_info info;
    assert_int_equal(hr_model_get_info(model, &info), HR_OK);
    assert_int_equal(info.n_embd, 64);
    assert_int_equal(info.embed_bytes, 0);

    hr_generate_params params = hr_generate_default_params();
    params.temperature = 0;
    params.max_tokens = 8;
    struct text first = { .length = 0 };
    assert_int_equal(hr_generate(model, "Once upon a time", &params, collect, &first, NULL), HR_OK);

    float a[64], b[64], c[64], raw[64];
    hr_embed_result result;
    assert_int_equal(hr_model_embed(model, "hello world", NULL, a, 64, &result), HR_OK);
    assert_true(result.n_tokens >= 2);
    assert_int_equal(result.input_tokens, result.n_tokens);
    assert_false(result.truncated);
    assert_true(fabs(norm_of(a, 64) - 1.0) < 1e-4);
    assert_int_equal(hr_model_embed(model, "hello world", NULL, b, 64, NULL), HR_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(hr_model_embed(model, "a different text", NULL, c, 64, NULL), HR_OK);
    assert_memory_not_equal(a, c, sizeof a);
    hr_embed_params plain = hr_embed_default_params();
    plain.normalize = false;
    assert_int_equal(hr_model_embed(model, "hello world", &plain, raw, 64, NULL), HR_OK);
    double length = norm_of(raw, 64);
    assert_true(length > 0);
    for (int i = 0; i < 64; i++) assert_true(fabs(raw[i] / length - a[i]) < 1e-4);
    assert_int_equal(hr_model_get_info(model, &info), HR_OK);
    assert_true(info.embed_bytes > 0);

    /* the same prompt again reuses the window: the embeddings did not touch it */
    struct text second = { .length = 0 };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(model, "Once upon a time", &params, collect, &second, &stats), HR_OK);
    assert_true(stats.cached_tokens > 0);
    assert_string_equal(first.data, second.data);

    /* too little room, and an input beyond the embedding window */
    assert_int_equal(hr_model_embed(model, "x", NULL, a, 10, NULL), HR_EINVAL);
    size_t big = 64 * 1024;
    char *long_text = malloc(big + 1);
    for (size_t i = 0; i < big; i++) long_text[i] = i % 6 == 5 ? ' ' : 'a' + (char)(i % 26);
    long_text[big] = '\0';
    assert_int_equal(hr_model_embed(model, long_text, NULL, a, 64, NULL), HR_ECONTEXT);
    assert_non_null(strstr(hr_last_error(), "embeddings take at most"));
    free(long_text);

    /* truncated, it is the embedding of its first tokens: the same as the text cut short by hand
     * to exactly as many. " the" is one token in every vocabulary the generator writes, so a cut
     * after m words makes m tokens plus the vocabulary's own start and end tokens. */
    enum { WORDS = 8192 };
    char *words = malloc(WORDS * 4 + 1);
    for (int i = 0; i < WORDS; i++) memcpy(words + i * 4, " the", 4);
    words[WORDS * 4] = '\0';
    hr_embed_params cut = hr_embed_default_params();
    cut.truncate = true;
    assert_int_equal(hr_model_embed(model, words, &cut, a, 64, &result), HR_OK);
    assert_true(result.truncated);
    assert_true(result.input_tokens > result.n_tokens);
    assert_true(fabs(norm_of(a, 64) - 1.0) < 1e-4);
    int fits = 0, too_many = WORDS;   /* words: the most that fit untruncated, bisected */
    hr_embed_result shorter = { 0 };
    while (too_many - fits > 1) {
        int m = (fits + too_many) / 2;
        words[m * 4] = '\0';
        int rc = hr_model_embed(model, words, NULL, b, 64, &shorter);
        words[m * 4] = ' ';
        if (rc == HR_OK) fits = m;
        else too_many = m;
    }
    words[fits * 4] = '\0';
    assert_int_equal(hr_model_embed(model, words, NULL, b, 64, &shorter), HR_OK);
    fprintf(stderr, "  truncated to %d of %d tokens; %d words make %d\n", result.n_tokens, result.input_tokens,
            fits, shorter.n_tokens);
    assert_int_equal(shorter.n_tokens, result.n_tokens);
    for (int i = 0; i < 64; i++) assert_true(fabs(a[i] - b[i]) < 1e-5);
    free(words);
    hr_model_free(model);
    hr_context_free(ctx);
}

struct embed_worker {
    hr_model *model;
    int rc;
    int done;
};

static void *embed_many(void *data)
{
    struct embed_worker *w = data;
    float v[64];
    for (int i = 0; i < 20 && w->rc == HR_OK; i++) {
        w->rc = hr_model_embed(w->model, "while it generates", NULL, v, 64, NULL);
        w->done++;
    }
    return NULL;
}

/* An embedding may run while the model generates: both finish, the text as it would be alone. */
static void embeddings_beside_a_generation(void **state)
{
    (void)state;
    hr_context *ctx = new_context();
    hr_model *model = load(ctx, 0);
    hr_generate_params params = hr_generate_default_params();
    params.temperature = 0;
    params.max_tokens = 64;
    struct text alone = { .length = 0 };
    assert_int_equal(hr_generate(model, "The sea", &params, collect, &alone, NULL), HR_OK);
    hr_model_free(model);
    model = load(ctx, 0);

    struct embed_worker w = { .model = model, .rc = HR_OK };
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, embed_many, &w), 0);
    struct text beside = { .length = 0 };
    assert_int_equal(hr_generate(model, "The sea", &params, collect, &beside, NULL), HR_OK);
    pthread_join(thread, NULL);
    assert_int_equal(w.rc, HR_OK);
    assert_int_equal(w.done, 20);
    assert_string_equal(alone.data, beside.data);
    hr_model_free(model);
    hr_context_free(ctx);
}

struct logprob_log {
    hr_token_logprobs records[64];
    int count;
};

static void keep_record(const hr_token_logprobs *record, void *user_data)
{
    struct logprob_log *log = user_data;
    if (log->count < 64) log->records[log->count++] = *record;
}

/* Log-probabilities are the model's: greedy decoding picks the most likely token, and a session
 * keeps one record per token for its reader. */
static void logprobs_are_the_models(void **state)
{
    (void)state;
    hr_context *ctx = new_context();
    hr_model *model = load(ctx, 0);
    hr_generate_params params = hr_generate_default_params();
    params.temperature = 0;
    params.max_tokens = 12;
    params.top_logprobs = 5;
    struct logprob_log log = { .count = 0 };
    params.logprob_fn = keep_record;
    params.logprob_user_data = &log;
    struct text out = { .length = 0 };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(model, "Once upon a time", &params, collect, &out, &stats), HR_OK);
    assert_int_equal(log.count, stats.generated_tokens);
    char joined[4096];
    size_t length = 0;
    for (int i = 0; i < log.count; i++) {
        const hr_token_logprobs *r = &log.records[i];
        assert_int_equal(r->top_count, 5);
        assert_int_equal(r->top[0].token, r->chosen.token);
        assert_true(r->chosen.logprob <= 0);
        double mass = 0;
        for (int k = 0; k < 5; k++) {
            mass += exp(r->top[k].logprob);
            if (k > 0) assert_true(r->top[k].logprob <= r->top[k - 1].logprob);
        }
        assert_true(mass <= 1.0 + 1e-5);
        memcpy(joined + length, r->chosen.piece, (size_t)r->chosen.length);
        length += (size_t)r->chosen.length;
    }
    joined[length] = '\0';
    if (out.invalid_pieces == 0 && strchr(out.data, 0xef) == NULL) assert_string_equal(joined, out.data);

    hr_session_params session_params = hr_session_default_params();
    session_params.generate = params;
    session_params.generate.logprob_fn = NULL;
    session_params.generate.logprobs = true;
    hr_session *session = NULL;
    assert_int_equal(hr_session_start(model, "Once upon a time", &session_params, &session), HR_OK);
    char piece[256];
    size_t piece_length;
    size_t seen = 0;
    int rc;
    while ((rc = hr_session_read(session, piece, sizeof piece, &piece_length, -1)) == HR_OK) {
        hr_token_logprobs records[16];
        size_t count = 0;
        assert_int_equal(hr_session_logprobs(session, seen, records, 16, &count), HR_OK);
        seen += count;
        assert_true(seen >= 1);   /* a piece read brings at least its own token's record */
    }
    assert_int_equal(rc, HR_EOF);
    hr_token_logprobs rest[64];
    size_t count = 0;
    assert_int_equal(hr_session_logprobs(session, seen, rest, 64, &count), HR_OK);
    seen += count;
    assert_int_equal((int)seen, stats.generated_tokens);
    hr_session_free(session);
    session_params.generate.logprobs = false;
    assert_int_equal(hr_session_start(model, "x", &session_params, &session), HR_OK);
    assert_int_equal(hr_session_logprobs(session, 0, rest, 64, &count), HR_EINVAL);
    hr_session_free(session);
    hr_model_free(model);
    hr_context_free(ctx);
}

int main(int argc, char **argv)
{
    if (select_cases(&argc, argv) != 0) return 2;
    if (argc != 3) {
        fprintf(stderr, "usage: %s TINY_MODEL.gguf SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    tiny_model = argv[1];
    scratch = argv[2];
    mkdir(scratch, 0755);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(load_describe_generate_unload),
        cmocka_unit_test(chat_template_from_the_model),
        cmocka_unit_test(same_seed_same_text),
        cmocka_unit_test(grammar_constrains_the_output),
        cmocka_unit_test(embeddings_leave_the_window_alone),
        cmocka_unit_test(embeddings_beside_a_generation),
        cmocka_unit_test(logprobs_are_the_models),
        cmocka_unit_test(context_window_fills_up),
        cmocka_unit_test(cancel_from_another_thread),
        cmocka_unit_test(load_can_be_cancelled),
        cmocka_unit_test(missing_file),
        cmocka_unit_test(text_file_named_gguf),
        cmocka_unit_test(empty_file),
        cmocka_unit_test(directory_instead_of_file),
        cmocka_unit_test(truncated_file),
        cmocka_unit_test(corrupt_header),
        cmocka_unit_test(a_header_with_impossible_hyperparameters_is_refused),
        cmocka_unit_test(unreadable_file),
    };
    return run_cases(tests, NULL, NULL);
}
