/* engine_smoke: the check scripts/bootstrap runs before it hands out an engine. For each weight type
 * named on the command line it writes a tiny llama model, loads it and decodes a prompt and a few
 * tokens on two threads, so that a CPU path that crashes (SIGILL from code built for another CPU, or
 * ggml's broken AMX kernels) crashes here, in a child of bootstrap, and not later inside a test.
 *
 * It links only the engine (llama, ggml) and needs nothing else: not headroom, not the engine's
 * source tree, because it must also check an engine from HEADROOM_ENGINE_PREFIX or the system. So
 * it writes its own models, with a made-up 320-token vocabulary instead of a real tokenizer: the
 * kernels do not care what the tokens mean, and small files keep the check fast.
 *
 *   engine_smoke DIR TYPE...     TYPE: f16, q8_0 or q4_0; models are written in DIR and removed
 *
 * Before each type it prints the type's name on stdout (flushed), so that a caller whose child died
 * of a signal knows which type it was decoding; after the last, "features" and the CPU features the
 * engine's CPU backend was compiled with (ggml's own list: AVX2, AVX512, AMX_INT8, NEON, ...).
 * Nothing else on success; on a failure that is not a crash, one line on stderr and exit 1; 2 is a
 * usage error. */

#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ggml-backend.h>
#include <ggml.h>
#include <gguf.h>
#include <llama.h>

#define PROGRAM "engine_smoke"

/* Every matrix dimension is a multiple of 32, so the quantized types, ggml's repacked Q4_0 and the
 * AMX kernels (which need rows in multiples of 32) all take the paths real models take. */
enum {
    N_VOCAB   = 320,
    N_EMBD    = 128,
    N_FF      = 256,
    N_LAYER   = 2,
    N_HEAD    = 4,
    N_HEAD_KV = 2,
    N_CTX     = 64,
    N_PROMPT  = 8,  /* a batch: the matrix-matrix kernels */
    N_DECODE  = 4,  /* one token at a time: the matrix-vector kernels */
    N_THREADS = 2,  /* at least one worker thread besides the caller's, as in real use */
};

static const struct {
    const char *name;
    enum ggml_type type;
    uint32_t llama_ftype; /* llama.h's enum llama_ftype */
} weight_types[] = {
    { "f16",  GGML_TYPE_F16,  LLAMA_FTYPE_MOSTLY_F16 },
    { "q8_0", GGML_TYPE_Q8_0, LLAMA_FTYPE_MOSTLY_Q8_0 },
    { "q4_0", GGML_TYPE_Q4_0, LLAMA_FTYPE_MOSTLY_Q4_0 },
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The engine's last error line, so a failure can say why in the one line it prints. */
static char engine_error[256];

static void keep_engine_error(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    if (level != GGML_LOG_LEVEL_ERROR)
        return;
    snprintf(engine_error, sizeof(engine_error), "%s", text);
    engine_error[strcspn(engine_error, "\n")] = '\0';
}

static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A 2-D weight [ne0, ne1] of TYPE with values of standard deviation about 1/sqrt(ne0), so that
 * activations stay O(1); ne1 == 0 makes a 1-D F32 RMSNorm gain of ones. */
static bool add_weight(struct ggml_context *tensors, struct gguf_context *gguf, const char *name,
                       enum ggml_type type, int64_t ne0, int64_t ne1, uint64_t *rng)
{
    struct ggml_tensor *t = ne1 ? ggml_new_tensor_2d(tensors, type, ne0, ne1)
                                : ggml_new_tensor_1d(tensors, GGML_TYPE_F32, ne0);
    if (!t)
        return false;
    ggml_set_name(t, name);
    const int64_t rows = ne1 ? ne1 : 1;
    float *values = malloc((size_t)(ne0 * rows) * sizeof(float));
    if (!values)
        return false;
    const float scale = sqrtf(3.0f / (float)ne0);
    for (int64_t i = 0; i < ne0 * rows; i++)
        values[i] = ne1 ? scale * ((float)(next_random(rng) >> 40) * 0x1p-23f - 1.0f) : 1.0f;
    if (ne1)
        ggml_quantize_chunk(type, values, t->data, 0, rows, ne0, NULL);
    else
        memcpy(t->data, values, (size_t)ne0 * sizeof(float));
    free(values);
    gguf_add_tensor(gguf, t);
    return true;
}

static void add_vocab(struct gguf_context *gguf)
{
    /* <unk> <s> </s>, the 256 byte tokens SentencePiece falls back on, then filler. */
    static char texts[N_VOCAB][16];
    const char *tokens[N_VOCAB];
    float scores[N_VOCAB];
    int32_t kinds[N_VOCAB];
    for (int i = 0; i < N_VOCAB; i++) {
        if (i < 3)
            snprintf(texts[i], sizeof(texts[i]), "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 3 + 256)
            snprintf(texts[i], sizeof(texts[i]), "<0x%02X>", i - 3);
        else
            snprintf(texts[i], sizeof(texts[i]), "\xe2\x96\x81t%d", i);
        tokens[i] = texts[i];
        scores[i] = i < 3 + 256 ? 0.0f : -(float)i;
        kinds[i] = i == 0 ? 2 : i < 3 ? 3 : i < 3 + 256 ? 6 : 1; /* unknown, control, byte, normal */
    }
    gguf_set_val_str(gguf, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(gguf, "tokenizer.ggml.tokens", tokens, N_VOCAB);
    gguf_set_arr_data(gguf, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, N_VOCAB);
    gguf_set_arr_data(gguf, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, kinds, N_VOCAB);
    gguf_set_val_u32(gguf, "tokenizer.ggml.unknown_token_id", 0);
    gguf_set_val_u32(gguf, "tokenizer.ggml.bos_token_id", 1);
    gguf_set_val_u32(gguf, "tokenizer.ggml.eos_token_id", 2);
}

static bool write_model(const char *path, size_t type_index)
{
    const enum ggml_type type = weight_types[type_index].type;
    const int64_t head_dim = N_EMBD / N_HEAD, n_embd_kv = N_HEAD_KV * head_dim;

    struct gguf_context *gguf = gguf_init_empty();
    gguf_set_val_str(gguf, "general.architecture", "llama");
    gguf_set_val_str(gguf, "general.name", PROGRAM);
    gguf_set_val_u32(gguf, "general.file_type", weight_types[type_index].llama_ftype);
    gguf_set_val_u32(gguf, "general.quantization_version", GGML_QNT_VERSION);
    gguf_set_val_u32(gguf, "llama.vocab_size", N_VOCAB);
    gguf_set_val_u32(gguf, "llama.context_length", N_CTX);
    gguf_set_val_u32(gguf, "llama.embedding_length", N_EMBD);
    gguf_set_val_u32(gguf, "llama.block_count", N_LAYER);
    gguf_set_val_u32(gguf, "llama.feed_forward_length", N_FF);
    gguf_set_val_u32(gguf, "llama.rope.dimension_count", (uint32_t)head_dim);
    gguf_set_val_u32(gguf, "llama.attention.head_count", N_HEAD);
    gguf_set_val_u32(gguf, "llama.attention.head_count_kv", N_HEAD_KV);
    gguf_set_val_f32(gguf, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_set_val_f32(gguf, "llama.rope.freq_base", 10000.0f);
    add_vocab(gguf);

    /* Weights in memory: the largest model is well under a megabyte. */
    struct ggml_init_params params = { .mem_size = 4u << 20, .mem_buffer = NULL, .no_alloc = false };
    struct ggml_context *tensors = ggml_init(params);
    bool ok = tensors != NULL;
    uint64_t rng = 42;
    ok = ok && add_weight(tensors, gguf, "token_embd.weight", type, N_EMBD, N_VOCAB, &rng);
    for (int il = 0; ok && il < N_LAYER; il++) {
        const struct {
            const char *suffix;
            int64_t ne0, ne1;
        } layer[] = {
            { "attn_norm", N_EMBD, 0 },      { "attn_q", N_EMBD, N_EMBD },
            { "attn_k", N_EMBD, n_embd_kv }, { "attn_v", N_EMBD, n_embd_kv },
            { "attn_output", N_EMBD, N_EMBD }, { "ffn_norm", N_EMBD, 0 },
            { "ffn_gate", N_EMBD, N_FF },    { "ffn_down", N_FF, N_EMBD },
            { "ffn_up", N_EMBD, N_FF },
        };
        for (size_t t = 0; ok && t < COUNT(layer); t++) {
            char name[GGML_MAX_NAME];
            snprintf(name, sizeof(name), "blk.%d.%s.weight", il, layer[t].suffix);
            ok = add_weight(tensors, gguf, name, type, layer[t].ne0, layer[t].ne1, &rng);
        }
    }
    ok = ok && add_weight(tensors, gguf, "output_norm.weight", GGML_TYPE_F32, N_EMBD, 0, &rng);
    ok = ok && add_weight(tensors, gguf, "output.weight", type, N_EMBD, N_VOCAB, &rng);
    if (!ok)
        fprintf(stderr, PROGRAM ": out of memory making the %s model\n", weight_types[type_index].name);
    else if (!(ok = gguf_write_to_file(gguf, path, false)))
        fprintf(stderr, PROGRAM ": cannot write %s\n", path);
    if (tensors)
        ggml_free(tensors);
    gguf_free(gguf);
    return ok;
}

/* Loads the model and decodes a prompt, then N_DECODE tokens greedily; every logit must be finite. */
static bool decode_model(const char *path, const char *type_name)
{
    struct llama_model_params model_params = llama_model_default_params();
    model_params.n_gpu_layers = 0; /* the CPU code is what is checked */
    engine_error[0] = '\0';
    struct llama_model *model = llama_model_load_from_file(path, model_params);
    if (!model) {
        fprintf(stderr, PROGRAM ": the engine cannot load the %s model (%s)\n", type_name,
                engine_error[0] ? engine_error : "no reason given");
        return false;
    }
    struct llama_context_params context_params = llama_context_default_params();
    context_params.n_ctx = N_CTX;
    context_params.n_batch = N_CTX;
    context_params.n_ubatch = N_CTX;
    context_params.n_threads = N_THREADS;
    context_params.n_threads_batch = N_THREADS;
    struct llama_context *context = llama_init_from_model(model, context_params);
    if (!context) {
        fprintf(stderr, PROGRAM ": the engine cannot make a context for the %s model (%s)\n", type_name,
                engine_error[0] ? engine_error : "no reason given");
        llama_model_free(model);
        return false;
    }

    llama_token tokens[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++)
        tokens[i] = 3 + 'a' + i; /* the byte tokens of "abcdefgh" */
    bool ok = true;
    struct llama_batch batch = llama_batch_get_one(tokens, N_PROMPT);
    for (int step = 0; ok && step <= N_DECODE; step++) {
        const int32_t status = llama_decode(context, batch);
        if (status != 0) {
            fprintf(stderr, PROGRAM ": llama_decode returned %d on the %s model (%s)\n", (int)status,
                    type_name, engine_error[0] ? engine_error : "no reason given");
            ok = false;
            break;
        }
        const float *logits = llama_get_logits_ith(context, -1);
        int best = 0;
        for (int v = 0; logits && v < N_VOCAB; v++) {
            if (!isfinite(logits[v])) {
                fprintf(stderr, PROGRAM ": the %s model decodes to a non-finite logit\n", type_name);
                ok = false;
                break;
            }
            if (logits[v] > logits[best])
                best = v;
        }
        if (!logits) {
            fprintf(stderr, PROGRAM ": the engine returned no logits for the %s model\n", type_name);
            ok = false;
        }
        tokens[0] = best;
        batch = llama_batch_get_one(tokens, 1);
    }
    llama_free(context);
    llama_model_free(model);
    return ok;
}

/* The CPU backend's list of what it was compiled with, which names what an engine from elsewhere
 * (HEADROOM_ENGINE_PREFIX, the system) really targets, AMX included. */
static void print_cpu_features(void)
{
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    ggml_backend_reg_t reg = cpu ? ggml_backend_dev_backend_reg(cpu) : NULL;
    ggml_backend_get_features_t get_features =
        reg ? (ggml_backend_get_features_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features")
            : NULL;
    printf("features");
    for (struct ggml_backend_feature *f = get_features ? get_features(reg) : NULL; f && f->name; f++)
        if (strcmp(f->value, "1") == 0)
            printf(" %s", f->name);
    printf("\n");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: " PROGRAM " DIR f16|q8_0|q4_0...\n");
        return 2;
    }
    const char *dir = argv[1];
    llama_log_set(keep_engine_error, NULL);
    llama_backend_init();

    int status = 0;
    for (int a = 2; status == 0 && a < argc; a++) {
        size_t t = 0;
        while (t < COUNT(weight_types) && strcmp(weight_types[t].name, argv[a]) != 0)
            t++;
        if (t == COUNT(weight_types)) {
            fprintf(stderr, PROGRAM ": unknown weight type '%s' (f16, q8_0 or q4_0)\n", argv[a]);
            status = 2;
            break;
        }
        printf("%s\n", argv[a]);
        fflush(stdout);
        char path[4096];
        snprintf(path, sizeof(path), "%s/smoke-%s-%ld.gguf", dir, argv[a], (long)getpid());
        if (!write_model(path, t) || !decode_model(path, argv[a]))
            status = 1;
        unlink(path);
    }
    if (status == 0)
        print_cpu_features();
    llama_backend_free();
    return status;
}
