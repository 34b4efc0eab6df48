/* Integration test for headroom-mkmodel: runs the real generator as a separate process, reads its
 * files back with ggml's GGUF reader and has llama.cpp load and run them. It must not depend on the
 * headroom library, and writes only inside the scratch directory it is given. */

#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ggml.h>
#include <gguf.h>
#include <llama.h>

#if defined(__GNUC__)
#define NULL_TERMINATED __attribute__((sentinel))
#else
#define NULL_TERMINATED
#endif

#define PATH_SIZE 4096
#define MAX_ARGS  32

static const char *generator;
static char scratch[PATH_SIZE];

static void scratch_path(char *buf, const char *name)
{
    int n = snprintf(buf, PATH_SIZE, "%s/%s", scratch, name);
    assert_true(n > 0 && n < PATH_SIZE);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Runs the generator with a NULL-terminated argument list, its stderr captured into
 * stderr_path (or inherited when NULL); returns its exit status, -1 if it did not exit. */
static int NULL_TERMINATED run_generator(const char *stderr_path, ...)
{
    const char *argv[MAX_ARGS];
    int argc = 0;
    va_list ap;

    argv[argc++] = generator;
    va_start(ap, stderr_path);
    for (const char *arg = va_arg(ap, const char *); arg; arg = va_arg(ap, const char *)) {
        assert_true(argc < MAX_ARGS - 1);
        argv[argc++] = arg;
    }
    va_end(ap);
    argv[argc] = NULL;

    fflush(NULL);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (stderr_path) {
            const int fd = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
                _exit(126);
            close(fd);
        }
        execv(generator, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static unsigned char *read_whole_file(const char *path, size_t *size)
{
    FILE *file = fopen(path, "rb");
    assert_non_null(file);
    assert_int_equal(fseek(file, 0, SEEK_END), 0);
    const long length = ftell(file);
    assert_true(length > 0);
    assert_int_equal(fseek(file, 0, SEEK_SET), 0);
    unsigned char *data = malloc((size_t)length);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)length, file), (size_t)length);
    fclose(file);
    *size = (size_t)length;
    return data;
}

/* Every run, failed or not, must remove its OUT.tmp.<pid> sibling. */
static void assert_no_temp_left(const char *dir, const char *out_path)
{
    const char *base = strrchr(out_path, '/') ? strrchr(out_path, '/') + 1 : out_path;
    char prefix[PATH_SIZE];
    snprintf(prefix, sizeof(prefix), "%s.tmp.", base);
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            fail_msg("temporary file left behind: %s/%s", dir, e->d_name);
    }
    closedir(d);
}

/* A failed run must leave neither the output nor a temporary file behind. */
static void assert_nothing_left(const char *dir, const char *out_path)
{
    assert_false(file_exists(out_path));
    assert_no_temp_left(dir, out_path);
}

/* Errors and the summary are each exactly one stderr line, naming the program. */
static void assert_stderr_line(const char *stderr_path, const char *must_contain)
{
    size_t size = 0;
    unsigned char *text = read_whole_file(stderr_path, &size);
    char *line = (char *)text;
    assert_true(size > 0 && line[size - 1] == '\n');
    assert_ptr_equal(memchr(line, '\n', size), line + size - 1);
    assert_memory_equal(line, "headroom-mkmodel: ", strlen("headroom-mkmodel: "));
    if (must_contain) {
        line[size - 1] = '\0';
        if (!strstr(line, must_contain))
            fail_msg("error '%s' does not mention '%s'", line, must_contain);
    }
    free(text);
}

/* ---- reading back ------------------------------------------------------------------------- */

static struct gguf_context *open_gguf(const char *path, struct ggml_context **data)
{
    struct gguf_init_params params = { .no_alloc = data == NULL, .ctx = data };
    struct gguf_context *gguf = gguf_init_from_file(path, params);
    assert_non_null(gguf);
    return gguf;
}

static int64_t find_key(const struct gguf_context *gguf, const char *key, enum gguf_type type)
{
    const int64_t id = gguf_find_key(gguf, key);
    if (id < 0)
        fail_msg("key %s missing", key);
    assert_int_equal(gguf_get_kv_type(gguf, id), type);
    return id;
}

static void assert_u32(const struct gguf_context *gguf, const char *key, uint32_t expected)
{
    assert_int_equal(gguf_get_val_u32(gguf, find_key(gguf, key, GGUF_TYPE_UINT32)), expected);
}

static void assert_str(const struct gguf_context *gguf, const char *key, const char *expected)
{
    assert_string_equal(gguf_get_val_str(gguf, find_key(gguf, key, GGUF_TYPE_STRING)), expected);
}

struct model_shape {
    int64_t n_embd, n_layer, n_ff, n_head, n_head_kv, n_ctx;
};

static const struct model_shape tiny = { 64, 2, 128, 4, 2, 512 };

/* An independent statement of llama.cpp's llama tensor layout (src/models/llama.cpp), so a
 * mistake in the generator's table cannot hide behind the same mistake here. */
static void assert_llama_tensors(const struct gguf_context *gguf, const struct model_shape *s,
                                 enum ggml_type weight_type)
{
    const int64_t n_vocab = (int64_t)gguf_get_arr_n(gguf, find_key(gguf, "tokenizer.ggml.tokens", GGUF_TYPE_ARRAY));
    const int64_t n_embd_kv = s->n_head_kv * (s->n_embd / s->n_head);
    struct expected {
        char name[GGML_MAX_NAME];
        int64_t ne0, ne1;
        enum ggml_type type;
    } want[3 + 9 * 8];
    size_t n = 0;

#define WANT(ne0_, ne1_, type_, ...)                                                   \
    do {                                                                               \
        snprintf(want[n].name, sizeof(want[n].name), __VA_ARGS__);                    \
        want[n].ne0 = (ne0_), want[n].ne1 = (ne1_), want[n].type = (type_);            \
        n++;                                                                           \
    } while (0)

    assert_true(s->n_layer <= 8);
    WANT(s->n_embd, n_vocab, weight_type, "token_embd.weight");
    WANT(s->n_embd, 1, GGML_TYPE_F32, "output_norm.weight");
    WANT(s->n_embd, n_vocab, weight_type, "output.weight");
    for (int64_t i = 0; i < s->n_layer; i++) {
        WANT(s->n_embd, 1, GGML_TYPE_F32, "blk.%" PRId64 ".attn_norm.weight", i);
        WANT(s->n_embd, s->n_embd, weight_type, "blk.%" PRId64 ".attn_q.weight", i);
        WANT(s->n_embd, n_embd_kv, weight_type, "blk.%" PRId64 ".attn_k.weight", i);
        WANT(s->n_embd, n_embd_kv, weight_type, "blk.%" PRId64 ".attn_v.weight", i);
        WANT(s->n_embd, s->n_embd, weight_type, "blk.%" PRId64 ".attn_output.weight", i);
        WANT(s->n_embd, 1, GGML_TYPE_F32, "blk.%" PRId64 ".ffn_norm.weight", i);
        WANT(s->n_embd, s->n_ff, weight_type, "blk.%" PRId64 ".ffn_gate.weight", i);
        WANT(s->n_ff, s->n_embd, weight_type, "blk.%" PRId64 ".ffn_down.weight", i);
        WANT(s->n_embd, s->n_ff, weight_type, "blk.%" PRId64 ".ffn_up.weight", i);
    }
#undef WANT

    assert_int_equal(gguf_get_n_tensors(gguf), (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        const int64_t id = gguf_find_tensor(gguf, want[i].name);
        if (id < 0)
            fail_msg("tensor %s missing", want[i].name);
        const int64_t *ne = gguf_get_tensor_ne(gguf, id);
        if (ne[0] != want[i].ne0 || ne[1] != want[i].ne1 || ne[2] != 1 || ne[3] != 1)
            fail_msg("%s has shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "], want [%" PRId64
                     ", %" PRId64 "]", want[i].name, ne[0], ne[1], ne[2], ne[3], want[i].ne0, want[i].ne1);
        if (gguf_get_tensor_type(gguf, id) != want[i].type)
            fail_msg("%s has type %s, want %s", want[i].name, ggml_type_name(gguf_get_tensor_type(gguf, id)),
                     ggml_type_name(want[i].type));
    }
}

static void assert_hparams(const struct gguf_context *gguf, const struct model_shape *s, uint32_t file_type,
                           const char *name, uint64_t seed)
{
    const int64_t tokens = find_key(gguf, "tokenizer.ggml.tokens", GGUF_TYPE_ARRAY);
    assert_int_equal(gguf_get_arr_type(gguf, tokens), GGUF_TYPE_STRING);
    assert_true(gguf_get_arr_n(gguf, tokens) > 0);

    assert_str(gguf, "general.architecture", "llama");
    assert_str(gguf, "general.name", name);
    assert_u32(gguf, "general.file_type", file_type);
    assert_u32(gguf, "llama.vocab_size", (uint32_t)gguf_get_arr_n(gguf, tokens));
    assert_u32(gguf, "llama.context_length", (uint32_t)s->n_ctx);
    assert_u32(gguf, "llama.embedding_length", (uint32_t)s->n_embd);
    assert_u32(gguf, "llama.block_count", (uint32_t)s->n_layer);
    assert_u32(gguf, "llama.feed_forward_length", (uint32_t)s->n_ff);
    assert_u32(gguf, "llama.attention.head_count", (uint32_t)s->n_head);
    assert_u32(gguf, "llama.attention.head_count_kv", (uint32_t)s->n_head_kv);
    assert_u32(gguf, "llama.rope.dimension_count", (uint32_t)(s->n_embd / s->n_head));
    assert_float_equal(gguf_get_val_f32(gguf, find_key(gguf, "llama.attention.layer_norm_rms_epsilon",
                                                       GGUF_TYPE_FLOAT32)), 1e-5f, 1e-12f);
    assert_float_equal(gguf_get_val_f32(gguf, find_key(gguf, "llama.rope.freq_base", GGUF_TYPE_FLOAT32)),
                       10000.0f, 0.0f);
    assert_str(gguf, "headroom.generator", "headroom-mkmodel 1");
    assert_int_equal(gguf_get_val_u64(gguf, find_key(gguf, "headroom.seed", GGUF_TYPE_UINT64)), seed);
    find_key(gguf, "tokenizer.ggml.model", GGUF_TYPE_STRING);
    find_key(gguf, "tokenizer.chat_template", GGUF_TYPE_STRING);
}

/* The data section must be exactly what the tensor infos promise, padded as gguf pads it. */
static void assert_layout(const struct gguf_context *gguf, const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    const size_t alignment = gguf_get_alignment(gguf);
    size_t end = 0;
    for (int64_t id = 0; id < gguf_get_n_tensors(gguf); id++) {
        const size_t offset = gguf_get_tensor_offset(gguf, id);
        assert_int_equal(offset % alignment, 0);
        assert_int_equal(offset, end);
        end = offset + GGML_PAD(gguf_get_tensor_size(gguf, id), alignment);
    }
    assert_int_equal(gguf_get_data_offset(gguf) + end, (size_t)st.st_size);
}

/* ---- cases --------------------------------------------------------------------------------- */

static void same_seed_is_byte_identical(void **state)
{
    (void)state;
    char a[PATH_SIZE], b[PATH_SIZE];
    scratch_path(a, "same-a.gguf");
    scratch_path(b, "same-b.gguf");
    /* the second run relies on the default seed being 42 */
    assert_int_equal(run_generator(NULL, "--preset", "tiny", "--seed", "42", "--quiet", "-o", a, NULL), 0);
    assert_int_equal(run_generator(NULL, "--quiet", "--output", b, NULL), 0);
    assert_no_temp_left(scratch, a);
    assert_no_temp_left(scratch, b);

    size_t size_a = 0, size_b = 0;
    unsigned char *data_a = read_whole_file(a, &size_a);
    unsigned char *data_b = read_whole_file(b, &size_b);
    assert_int_equal(size_a, size_b);
    assert_memory_equal(data_a, data_b, size_a);
    free(data_a);
    free(data_b);
    unlink(a);
    unlink(b);
}

static void different_seed_differs(void **state)
{
    (void)state;
    char a[PATH_SIZE], b[PATH_SIZE];
    scratch_path(a, "seed-42.gguf");
    scratch_path(b, "seed-43.gguf");
    assert_int_equal(run_generator(NULL, "--seed", "42", "--quiet", "-o", a, NULL), 0);
    assert_int_equal(run_generator(NULL, "--seed=43", "--quiet", "-o", b, NULL), 0);

    size_t size_a = 0, size_b = 0;
    unsigned char *data_a = read_whole_file(a, &size_a);
    unsigned char *data_b = read_whole_file(b, &size_b);
    assert_int_equal(size_a, size_b); /* same shape, same layout: only the values move */
    assert_true(memcmp(data_a, data_b, size_a) != 0);
    free(data_a);
    free(data_b);
    unlink(a);
    unlink(b);
}

static void tiny_q8_0_reads_back(void **state)
{
    (void)state;
    char path[PATH_SIZE], log[PATH_SIZE];
    scratch_path(path, "tiny-q8_0.gguf");
    scratch_path(log, "tiny-q8_0.log");
    assert_int_equal(run_generator(log, "--preset", "tiny", "--type", "q8_0", "-o", path, NULL), 0);
    assert_stderr_line(log, path); /* the summary line has the same one-line shape */

    struct gguf_context *gguf = open_gguf(path, NULL);
    assert_hparams(gguf, &tiny, LLAMA_FTYPE_MOSTLY_Q8_0, "headroom-random-tiny-q8_0", 42);
    assert_llama_tensors(gguf, &tiny, GGML_TYPE_Q8_0);
    assert_layout(gguf, path);
    gguf_free(gguf);
    unlink(path);
    unlink(log);
}

static void other_types_generate(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum ggml_type type;
        uint32_t file_type;
    } types[] = {
        { "f32", GGML_TYPE_F32, LLAMA_FTYPE_ALL_F32 },
        { "f16", GGML_TYPE_F16, LLAMA_FTYPE_MOSTLY_F16 },
        { "q4_0", GGML_TYPE_Q4_0, LLAMA_FTYPE_MOSTLY_Q4_0 },
    };
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        char path[PATH_SIZE], name[64], file[64];
        snprintf(file, sizeof(file), "tiny-%s.gguf", types[t].name);
        snprintf(name, sizeof(name), "headroom-random-tiny-%s", types[t].name);
        scratch_path(path, file);
        assert_int_equal(run_generator(NULL, "--type", types[t].name, "--seed", "7", "--quiet", "-o", path, NULL), 0);
        struct gguf_context *gguf = open_gguf(path, NULL);
        assert_hparams(gguf, &tiny, types[t].file_type, name, 7);
        assert_llama_tensors(gguf, &tiny, types[t].type);
        assert_layout(gguf, path);
        gguf_free(gguf);
        unlink(path);
    }
}

/* Weights should be centred with spread 1/sqrt(fan_in) and norm gains exactly 1, which is what
 * keeps llama.cpp's activations finite. */
static void f32_values_are_scaled(void **state)
{
    (void)state;
    char path[PATH_SIZE];
    scratch_path(path, "values-f32.gguf");
    assert_int_equal(run_generator(NULL, "--type", "f32", "--quiet", "-o", path, NULL), 0);

    struct ggml_context *data = NULL;
    struct gguf_context *gguf = open_gguf(path, &data);
    const struct ggml_tensor *norm = ggml_get_tensor(data, "blk.1.ffn_norm.weight");
    assert_non_null(norm);
    for (int64_t i = 0; i < ggml_nelements(norm); i++)
        assert_float_equal(((const float *)norm->data)[i], 1.0f, 0.0f);

    const struct ggml_tensor *down = ggml_get_tensor(data, "blk.0.ffn_down.weight");
    assert_non_null(down);
    const float *w = down->data;
    const int64_t n = ggml_nelements(down);
    const double bound = sqrt(3.0 / (double)tiny.n_ff);
    double sum = 0, sum_sq = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(isfinite(w[i]) && fabs(w[i]) <= bound);
        sum += w[i];
        sum_sq += (double)w[i] * w[i];
    }
    const double mean = sum / (double)n, stddev = sqrt(sum_sq / (double)n - mean * mean);
    assert_true(fabs(mean) < 0.05 / sqrt((double)tiny.n_ff));
    assert_true(fabs(stddev * sqrt((double)tiny.n_ff) - 1.0) < 0.05);
    ggml_free(data);
    gguf_free(gguf);
    unlink(path);
}

static void bad_arguments_exit_2(void **state)
{
    (void)state;
    char out[PATH_SIZE], log[PATH_SIZE];
    scratch_path(out, "bad.gguf");
    scratch_path(log, "bad.log");

    assert_int_equal(run_generator(log, "--n-embd", "63", "--type", "q8_0", "-o", out, NULL), 2);
    assert_stderr_line(log, "63");
    assert_nothing_left(scratch, out);

    assert_int_equal(run_generator(log, "--n-head", "3", "-o", out, NULL), 2);
    assert_stderr_line(log, "n_head");
    assert_int_equal(run_generator(log, "--n-head-kv", "3", "-o", out, NULL), 2);
    assert_stderr_line(log, "n_head_kv");
    assert_int_equal(run_generator(log, "--n-ff", "100", "--type", "q4_0", "-o", out, NULL), 2);
    assert_stderr_line(log, "q4_0");
    assert_int_equal(run_generator(log, "--n-layer", "0", "-o", out, NULL), 2);
    assert_stderr_line(log, "--n-layer");
    assert_int_equal(run_generator(log, "--n-embd", "64x", "-o", out, NULL), 2);
    assert_stderr_line(log, "64x");
    assert_int_equal(run_generator(log, "--seed", "-1", "-o", out, NULL), 2);
    assert_stderr_line(log, "--seed");
    assert_int_equal(run_generator(log, "--preset", "huge", "-o", out, NULL), 2);
    assert_stderr_line(log, "huge");
    assert_int_equal(run_generator(log, "--type", "q5_k", "-o", out, NULL), 2);
    assert_stderr_line(log, "q5_k");
    assert_int_equal(run_generator(log, "--frobnicate", "-o", out, NULL), 2);
    assert_stderr_line(log, "--frobnicate");
    assert_int_equal(run_generator(log, "-o", out, "--ctx", NULL), 2);
    assert_stderr_line(log, "--ctx");
    assert_int_equal(run_generator(log, "--preset", "tiny", NULL), 2);
    assert_stderr_line(log, "-o");
    assert_nothing_left(scratch, out);

    /* dimensions that only fail for quantized rows are fine in f32 */
    assert_int_equal(run_generator(NULL, "--n-embd", "48", "--n-head", "4", "--n-head-kv", "2", "--n-ff", "100",
                                   "--type", "f32", "--quiet", "-o", out, NULL), 0);
    struct gguf_context *gguf = open_gguf(out, NULL);
    assert_str(gguf, "general.name", "headroom-random-custom-f32");
    gguf_free(gguf);
    unlink(out);
    unlink(log);
}

static void help_exits_0(void **state)
{
    (void)state;
    assert_int_equal(run_generator(NULL, "--help", NULL), 0);
}

static void unwritable_output_exits_1(void **state)
{
    (void)state;
    char missing_dir[PATH_SIZE], out[PATH_SIZE], log[PATH_SIZE], dir_as_out[PATH_SIZE];
    scratch_path(missing_dir, "no-such-dir");
    scratch_path(out, "no-such-dir/model.gguf");
    scratch_path(log, "unwritable.log");
    assert_int_equal(run_generator(log, "-o", out, NULL), 1);
    assert_stderr_line(log, "no-such-dir/model.gguf");
    assert_stderr_line(log, strerror(ENOENT));
    assert_false(file_exists(out));
    assert_false(file_exists(missing_dir));

    /* the rename is the step that fails here: the temp file is written in full, then removed */
    scratch_path(dir_as_out, "a-directory");
    assert_true(mkdir(dir_as_out, 0755) == 0 || errno == EEXIST);
    assert_int_equal(run_generator(log, "-o", dir_as_out, NULL), 1);
    assert_stderr_line(log, "rename");
    struct stat st;
    assert_int_equal(stat(dir_as_out, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_no_temp_left(scratch, dir_as_out);
    rmdir(dir_as_out);
    unlink(log);
}

static void unreadable_vocab_exits_1(void **state)
{
    (void)state;
    char out[PATH_SIZE], vocab[PATH_SIZE], log[PATH_SIZE];
    scratch_path(out, "novocab.gguf");
    scratch_path(vocab, "missing-vocab.gguf");
    scratch_path(log, "novocab.log");
    assert_int_equal(run_generator(log, "--vocab", vocab, "-o", out, NULL), 1);
    assert_stderr_line(log, vocab);
    assert_nothing_left(scratch, out);

    /* not a GGUF at all: ggml's reason must be folded into the one line */
    FILE *junk = fopen(vocab, "wb");
    assert_non_null(junk);
    fputs("this is not a GGUF file\n", junk);
    fclose(junk);
    assert_int_equal(run_generator(log, "--vocab", vocab, "-o", out, NULL), 1);
    assert_stderr_line(log, vocab);
    assert_nothing_left(scratch, out);
    unlink(vocab);
    unlink(log);
}

/* --template and --bos: the template written (or none), and a start token named by its text. */
static void templates_and_start_token(void **state)
{
    (void)state;
    char out[PATH_SIZE], log[PATH_SIZE];
    scratch_path(out, "template.gguf");
    scratch_path(log, "template.log");
    assert_int_equal(run_generator(log, "--template", "jinja2", "-o", out, NULL), 2);
    assert_stderr_line(log, "jinja2");
    /* the default vocabulary (llama-spm) has no ChatML tokens: a sentence that says which vocab does */
    assert_int_equal(run_generator(log, "--template", "chatml", "-o", out, NULL), 1);
    assert_stderr_line(log, "<|im_start|>");
    assert_nothing_left(scratch, out);
    assert_int_equal(run_generator(log, "--bos", "<no such token>", "-o", out, NULL), 1);
    assert_stderr_line(log, "<no such token>");
    assert_nothing_left(scratch, out);

    assert_int_equal(run_generator(log, "--template", "none", "--bos", "</s>", "--quiet", "-o", out, NULL), 0);
    struct gguf_context *gguf = open_gguf(out, NULL);
    assert_true(gguf_find_key(gguf, "tokenizer.chat_template") < 0);
    const int64_t bos = find_key(gguf, "tokenizer.ggml.bos_token_id", GGUF_TYPE_UINT32);
    assert_int_equal(gguf_get_val_u32(gguf, bos), 2);   /* "</s>" in llama-spm */
    assert_true(gguf_get_val_bool(gguf, find_key(gguf, "tokenizer.ggml.add_bos_token", GGUF_TYPE_BOOL)));
    gguf_free(gguf);
    unlink(out);
    unlink(log);
}

/* ---- llama.cpp runs what was written -------------------------------------------------------- */

static void quiet_log(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR)
        fputs(text, stderr);
}

static void assert_logits_finite(struct llama_context *ctx, int32_t n_vocab, llama_token *argmax)
{
    const float *logits = llama_get_logits_ith(ctx, -1);
    assert_non_null(logits);
    llama_token best = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (!isfinite(logits[i]))
            fail_msg("logit %d is %f", i, (double)logits[i]);
        if (logits[i] > logits[best])
            best = i;
    }
    *argmax = best;
}

static void load_and_decode(const char *path, const struct model_shape *s)
{
    struct llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(path, mparams);
    assert_non_null(model);
    assert_int_equal(llama_model_n_embd(model), s->n_embd);
    assert_int_equal(llama_model_n_layer(model), s->n_layer);
    assert_int_equal(llama_model_n_head(model), s->n_head);
    assert_int_equal(llama_model_n_head_kv(model), s->n_head_kv);
    assert_int_equal(llama_model_n_ctx_train(model), s->n_ctx);

    /* the template the generator adds must be one llama.cpp formats as Llama-2 chat */
    const char *tmpl = llama_model_chat_template(model, NULL);
    assert_non_null(tmpl);
    const struct llama_chat_message chat[] = { { "system", "Be brief." }, { "user", "Hello" } };
    char formatted[512];
    const int32_t len = llama_chat_apply_template(tmpl, chat, 2, true, formatted, sizeof(formatted));
    assert_true(len > 0 && len < (int32_t)sizeof(formatted));
    formatted[len] = '\0';
    assert_string_equal(formatted, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHello [/INST]");

    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 128;
    cparams.n_batch = 128;
    cparams.n_threads = 2;
    cparams.n_threads_batch = 2;
    struct llama_context *ctx = llama_init_from_model(model, cparams);
    assert_non_null(ctx);

    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    const int32_t n_vocab = llama_vocab_n_tokens(vocab);
    assert_true(n_vocab > 0);
    llama_token tokens[64];
    const char *prompt = "The quick brown fox";
    const int32_t n_tokens = llama_tokenize(vocab, prompt, (int32_t)strlen(prompt), tokens, 64, true, false);
    assert_true(n_tokens > 1);
    assert_int_equal(tokens[0], llama_vocab_bos(vocab));

    assert_int_equal(llama_decode(ctx, llama_batch_get_one(tokens, n_tokens)), 0);
    llama_token next = 0;
    assert_logits_finite(ctx, n_vocab, &next);
    for (int step = 0; step < 4; step++) {
        assert_int_equal(llama_decode(ctx, llama_batch_get_one(&next, 1)), 0);
        assert_logits_finite(ctx, n_vocab, &next);
    }
    llama_free(ctx);
    llama_model_free(model);
}

static void llama_cpp_runs_tiny(void **state)
{
    (void)state;
    static const char *const types[] = { "q8_0", "q4_0", "f16", "f32" };
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        char path[PATH_SIZE], file[64];
        snprintf(file, sizeof(file), "run-tiny-%s.gguf", types[t]);
        scratch_path(path, file);
        assert_int_equal(run_generator(NULL, "--type", types[t], "--quiet", "-o", path, NULL), 0);
        load_and_decode(path, &tiny);
        unlink(path);
    }
}

static void llama_cpp_runs_demo(void **state)
{
    (void)state;
    static const struct model_shape demo = { 256, 4, 768, 8, 4, 2048 };
    char path[PATH_SIZE];
    scratch_path(path, "run-demo-q8_0.gguf");
    assert_int_equal(run_generator(NULL, "--preset", "demo", "--quiet", "-o", path, NULL), 0);
    struct gguf_context *gguf = open_gguf(path, NULL);
    assert_hparams(gguf, &demo, LLAMA_FTYPE_MOSTLY_Q8_0, "headroom-random-demo-q8_0", 42);
    assert_llama_tensors(gguf, &demo, GGML_TYPE_Q8_0);
    gguf_free(gguf);
    load_and_decode(path, &demo);
    unlink(path);
}

static int setup(void **state)
{
    (void)state;
    llama_log_set(quiet_log, NULL);
    llama_backend_init();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    llama_backend_free();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PATH-TO-headroom-mkmodel SCRATCH-DIR\n", argv[0]);
        return 2;
    }
    generator = argv[1];
    const int n = snprintf(scratch, sizeof(scratch), "%s/mkmodel-scratch", argv[2]);
    if (n <= 0 || n >= (int)sizeof(scratch) || (mkdir(scratch, 0755) != 0 && errno != EEXIST)) {
        fprintf(stderr, "%s: cannot use scratch directory %s: %s\n", argv[0], scratch, strerror(errno));
        return 2;
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_seed_is_byte_identical),
        cmocka_unit_test(different_seed_differs),
        cmocka_unit_test(tiny_q8_0_reads_back),
        cmocka_unit_test(other_types_generate),
        cmocka_unit_test(f32_values_are_scaled),
        cmocka_unit_test(bad_arguments_exit_2),
        cmocka_unit_test(help_exits_0),
        cmocka_unit_test(unwritable_output_exits_1),
        cmocka_unit_test(unreadable_vocab_exits_1),
        cmocka_unit_test(templates_and_start_token),
        cmocka_unit_test(llama_cpp_runs_tiny),
        cmocka_unit_test(llama_cpp_runs_demo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
