/*
 * engine_llama.c: the engine interface (engine.h) on llama.cpp's C API.
 * With engine_llama_file.c (the model file checked before llama.cpp sees it),
 * engine_llama_fit.cpp and engine_llama_formula.c (the memory estimate), the only files that
 * include llama.h and gguf.h; it holds no policy: it loads, decodes and reports, and turns the
 * engine's failures into HR_E* codes with sentences a person can act on.
 */
#include "engine/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <ggml-backend.h>
#include <gguf.h>
#include <llama.h>

#include "core/error.h"
#include "core/log.h"
#include "engine/chat_template.h"
#include "engine/engine_llama_internal.h"

struct hr_engine_model {
    struct llama_model *model;
    struct llama_context *ctx;
    const struct llama_vocab *vocab;
    int32_t n_seq_max;       /* sequences (slots) in the window */
    int32_t n_ctx_seq;       /* tokens each may hold: the window's cells over n_seq_max */
    struct llama_batch batch;   /* decode_batch's, n_batch entries; only the decoding thread */
    int32_t n_threads;
    int32_t n_gpu_layers;    /* as requested */
    uint64_t file_bytes;
    enum hr_load_mode load_mode;
    hr_engine_abort_fn abort_fn;
    void *abort_user_data;
    char cache_types[32];    /* "f16/f16": the KV cache's element types, as created */

    /* Embeddings run in a context of their own, created on first use, so they never touch the
     * generation window's KV. embed_lock guards the two fields below and serialises embeddings. */
    pthread_mutex_t embed_lock;
    struct llama_context *embed_ctx;
    int32_t embed_n_ctx;
};

struct hr_engine_sampler {
    struct llama_sampler *chain;
    struct llama_sampler *grammar;   /* apart from the chain (see sample_with_grammar), or NULL */
    llama_token_data *candidates;    /* n_vocab entries, for the grammar's passes */
    int32_t n_vocab;
};

/* ---- engine log: routed into headroom's, the last error kept for failure messages ---------- */

/* llama.cpp logs in fragments (GGML_LOG_LEVEL_CONT continues the previous line), so each thread
 * assembles its line here before passing it on. The last error line explains a failed load. */
static _Thread_local char log_line[1024];
static _Thread_local size_t log_line_length;
static _Thread_local enum ggml_log_level log_line_level;
static _Thread_local char last_engine_error[512];

static enum hr_log_level to_hr_level(enum ggml_log_level level)
{
    switch (level) {
    case GGML_LOG_LEVEL_ERROR: return HR_LOG_ERROR;
    case GGML_LOG_LEVEL_WARN: return HR_LOG_WARN;
    case GGML_LOG_LEVEL_INFO: return HR_LOG_INFO;
    default: return HR_LOG_DEBUG;
    }
}

static void flush_log_line(void)
{
    if (log_line_length == 0) return;
    log_line[log_line_length] = '\0';
    if (log_line_level == GGML_LOG_LEVEL_ERROR) {
        /* keep the start of a long line: that is where llama.cpp says what failed */
        size_t keep = log_line_length < sizeof last_engine_error ? log_line_length : sizeof last_engine_error - 1;
        memcpy(last_engine_error, log_line, keep);
        last_engine_error[keep] = '\0';
    }
    hr_log(to_hr_level(log_line_level), "llama.cpp: %s", log_line);
    log_line_length = 0;
}

static void engine_log(enum ggml_log_level level, const char *text, void *user_data)
{
    (void)user_data;
    if (level != GGML_LOG_LEVEL_CONT) {
        flush_log_line();
        log_line_level = level;
    }
    for (const char *p = text; *p; p++) {
        if (*p == '\n') flush_log_line();
        else if (log_line_length < sizeof log_line - 1) log_line[log_line_length++] = *p;
    }
}

static pthread_once_t backend_once = PTHREAD_ONCE_INIT;

static void backend_init(void)
{
    llama_log_set(engine_log, NULL);
    llama_backend_init();
}

void hr_llama_backend_once(void)
{
    pthread_once(&backend_once, backend_init);
}

const char *hr_llama_last_error(void)
{
    flush_log_line();
    return last_engine_error;
}

void hr_llama_clear_last_error(void)
{
    last_engine_error[0] = '\0';
}

/* ---- load and unload ------------------------------------------------------------------------ */

struct progress_relay {
    hr_progress_fn fn;
    void *user_data;
    bool cancelled;
};

static bool relay_progress(float progress, void *user_data)
{
    struct progress_relay *relay = user_data;
    if (relay->fn && !relay->fn(progress, relay->user_data)) {
        relay->cancelled = true;
        return false;
    }
    return true;
}

static bool relay_abort(void *user_data)
{
    const struct hr_engine_model *model = user_data;
    return model->abort_fn && model->abort_fn(model->abort_user_data);
}

static enum llama_load_mode to_llama_load_mode(enum hr_load_mode mode)
{
    switch (mode) {
    case HR_LOAD_MMAP: return LLAMA_LOAD_MODE_MMAP;
    case HR_LOAD_COPY: return LLAMA_LOAD_MODE_NONE;
    case HR_LOAD_MLOCK: return LLAMA_LOAD_MODE_MMAP_MLOCK;
    case HR_LOAD_AUTO: break;
    }
    return LLAMA_LOAD_MODE_AUTO;
}

/* ---- llama.cpp's parameters: one place, so an estimate describes the load that follows ------- */

int32_t hr_llama_resolve_n_ctx(int32_t requested, int32_t n_ctx_train)
{
    if (requested > 0) return requested;
    return n_ctx_train <= 0 || n_ctx_train > 4096 ? 4096 : n_ctx_train;
}

int32_t hr_llama_resolve_n_batch(int32_t requested, int32_t n_ctx)
{
    int32_t n_batch = requested > 0 ? requested : 512;
    return n_batch > n_ctx ? n_ctx : n_batch;
}

struct llama_model_params hr_llama_model_params(const hr_engine_load_params *params)
{
    struct llama_model_params model_params = llama_model_default_params();
    model_params.n_gpu_layers = params->n_gpu_layers;
    model_params.load_mode = to_llama_load_mode(params->load_mode);
    return model_params;
}

/* The KV cache types llama.cpp accepts (its own tools offer the same list). */
static int cache_type(const char *name, const char *which, enum ggml_type *out)
{
    static const enum ggml_type allowed[] = {
        GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0,
        GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_IQ4_NL,
    };
    if (!name || !name[0]) {
        *out = GGML_TYPE_F16;
        return HR_OK;
    }
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (strcasecmp(name, ggml_type_name(allowed[i])) == 0) {
            *out = allowed[i];
            return HR_OK;
        }
    return hr_fail(HR_EINVAL, "unknown %s cache type '%s': use f16 (the default), q8_0, q4_0, q4_1, q5_0, "
                   "q5_1, iq4_nl, bf16 or f32", which, name);
}

int hr_llama_context_params(const hr_engine_load_params *params, int32_t n_ctx_train,
                            struct llama_context_params *out)
{
    struct llama_context_params context_params = llama_context_default_params();
    int rc = cache_type(params->type_k, "K", &context_params.type_k);
    if (rc == HR_OK) rc = cache_type(params->type_v, "V", &context_params.type_v);
    if (rc != HR_OK) return rc;
    int32_t n_ctx = hr_llama_resolve_n_ctx(params->n_ctx, n_ctx_train);
    int32_t n_batch = hr_llama_resolve_n_batch(params->n_batch, n_ctx);
    int32_t n_seq = params->n_seq_max > 0 ? params->n_seq_max : 1;
    /* Every sequence (slot) gets n_ctx cells of its own (llama.cpp's per-sequence streams, not
     * one unified buffer): one never takes another's room, attention reads only its own cells,
     * and a sequence's arithmetic does not depend on where its neighbours' cells lie, so its
     * text is the text it has alone (docs/architecture.md, "Slots"). */
    context_params.n_ctx = (uint32_t)n_ctx * (uint32_t)n_seq;
    context_params.n_batch = (uint32_t)n_batch;
    context_params.n_ubatch = (uint32_t)n_batch;
    context_params.n_seq_max = (uint32_t)n_seq;
    context_params.kv_unified = false;
    /* One step wants the logits of at most one token per sequence: reserving outputs for
     * n_seq_max tokens instead of n_batch saves (n_batch - n_seq_max) * n_vocab floats (64 MiB
     * for a 32000-token vocabulary at 512) that would be reserved and never touched. */
    context_params.n_outputs_max = (uint32_t)n_seq;
    context_params.n_threads = params->n_threads > 0 ? params->n_threads : 1;
    context_params.n_threads_batch = context_params.n_threads;
    context_params.no_perf = true;
    *out = context_params;
    return HR_OK;
}

/* ---- load and unload, continued ------------------------------------------------------------- */

static int llama_load(const char *path, const hr_engine_load_params *params, hr_engine_model **out)
{
    *out = NULL;
    hr_llama_backend_once();

    hr_llama_file_facts facts;
    int rc = hr_llama_check_model_file(path, &facts);
    if (rc != HR_OK) return rc;
    uint64_t file_bytes = facts.file_bytes;
    /* an unknown cache type is the caller's mistake: say so before reading gigabytes */
    struct llama_context_params context_params;
    rc = hr_llama_context_params(params, 0, &context_params);
    if (rc != HR_OK) return rc;

    if (params->load_mode == HR_LOAD_MLOCK && !llama_supports_mlock())
        return hr_fail(HR_ENOTSUP, "cannot lock %s in memory: this platform does not support mlock", path);

    hr_engine_model *model = calloc(1, sizeof *model);
    if (!model) return hr_fail(HR_ENOMEM, "out of memory loading %s", path);
    pthread_mutex_init(&model->embed_lock, NULL);
    model->file_bytes = file_bytes;
    model->n_threads = params->n_threads;
    model->n_gpu_layers = params->n_gpu_layers;
    model->abort_fn = params->abort_fn;
    model->abort_user_data = params->abort_user_data;
    model->load_mode = params->load_mode;
    if (model->load_mode == HR_LOAD_AUTO)
        model->load_mode = llama_supports_mmap() ? HR_LOAD_MMAP : HR_LOAD_COPY;

    struct progress_relay relay = { params->progress_fn, params->progress_user_data, false };
    struct llama_model_params model_params = hr_llama_model_params(params);
    model_params.progress_callback = relay_progress;
    model_params.progress_callback_user_data = &relay;

    last_engine_error[0] = '\0';
    model->model = llama_model_load_from_file(path, model_params);
    flush_log_line();
    if (!model->model) {
        pthread_mutex_destroy(&model->embed_lock);
        free(model);
        if (relay.cancelled) return hr_fail(HR_ECANCELLED, "loading %s was cancelled", path);
        return hr_fail(HR_EENGINE, "llama.cpp could not load %s%s%s", path,
                       last_engine_error[0] ? ": " : "", last_engine_error);
    }
    model->vocab = llama_model_get_vocab(model->model);

    hr_llama_context_params(params, llama_model_n_ctx_train(model->model), &context_params);
    int32_t n_ctx = (int32_t)context_params.n_ctx;
    context_params.abort_callback = relay_abort;
    context_params.abort_callback_data = model;
    context_params.no_perf = true;
    snprintf(model->cache_types, sizeof model->cache_types, "%s/%s", ggml_type_name(context_params.type_k),
             ggml_type_name(context_params.type_v));

    last_engine_error[0] = '\0';
    model->ctx = llama_init_from_model(model->model, context_params);
    flush_log_line();
    if (model->ctx) {
        model->n_seq_max = (int32_t)llama_n_seq_max(model->ctx);
        model->n_ctx_seq = (int32_t)(llama_n_ctx(model->ctx) / (uint32_t)model->n_seq_max);
        model->batch = llama_batch_init((int32_t)llama_n_batch(model->ctx), 0, 1);
    }
    if (!model->ctx) {
        llama_model_free(model->model);
        pthread_mutex_destroy(&model->embed_lock);
        free(model);
        return hr_fail(HR_EENGINE, "llama.cpp could not create a context window of %d tokens for %s%s%s; "
                       "try a smaller --ctx", n_ctx, path,
                       last_engine_error[0] ? ": " : "", last_engine_error);
    }
    *out = model;
    return HR_OK;
}

static void llama_unload(hr_engine_model *model)
{
    if (!model) return;
    if (model->embed_ctx) llama_free(model->embed_ctx);
    llama_batch_free(model->batch);
    llama_free(model->ctx);
    llama_model_free(model->model);
    pthread_mutex_destroy(&model->embed_lock);
    free(model);
}

/* Blocks on a GPU. llama.cpp places the last n_gpu_layers blocks on the GPU (and the output
 * layer when all blocks are there); with no GPU device everything stays on the CPU. */
static int32_t gpu_block_count(const hr_engine_model *model, int32_t n_layer)
{
    int gpus = 0;
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        enum ggml_backend_dev_type type = ggml_backend_dev_type(ggml_backend_dev_get(i));
        if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) gpus++;
    }
    if (gpus == 0 || !llama_supports_gpu_offload()) return 0;
    if (model->n_gpu_layers < 0 || model->n_gpu_layers > n_layer) return n_layer;
    return model->n_gpu_layers;
}

static void llama_get_info(const hr_engine_model *model, hr_engine_model_info *out)
{
    memset(out, 0, sizeof *out);
    llama_model_desc(model->model, out->description, sizeof out->description);
    if (llama_model_meta_val_str(model->model, "general.name", out->name, sizeof out->name) < 0)
        out->name[0] = '\0';
    out->n_params = llama_model_n_params(model->model);
    out->weight_bytes = llama_model_size(model->model);
    out->file_bytes = model->file_bytes;
    out->n_layer = llama_model_n_layer(model->model);
    out->n_ctx_train = llama_model_n_ctx_train(model->model);
    out->n_ctx = model->n_ctx_seq;
    out->n_seq_max = model->n_seq_max;
    out->n_batch = (int32_t)llama_n_batch(model->ctx);
    out->n_vocab = llama_vocab_n_tokens(model->vocab);
    out->n_embd = llama_model_n_embd(model->model);
    out->n_layer_gpu = gpu_block_count(model, out->n_layer);
    out->n_threads = model->n_threads;
    out->load_mode = model->load_mode;
    memcpy(out->cache_types, model->cache_types, sizeof out->cache_types);
}

/* ---- tokens --------------------------------------------------------------------------------- */

static int32_t llama_tokenize_text(hr_engine_model *model, const char *text, size_t length,
                                   bool add_special, hr_token *tokens, int32_t capacity)
{
    if (length > INT32_MAX) return hr_fail(HR_EINVAL, "text of %zu bytes is too long to tokenize", length);
    /* parse_special=false: text from a user must not be able to forge control tokens. */
    return llama_tokenize(model->vocab, text, (int32_t)length, tokens, capacity, add_special, false);
}

static int32_t llama_piece(hr_engine_model *model, hr_token token, char *buffer, int32_t capacity)
{
    /* special=false: control tokens (end of text and the like) are not shown as text. */
    return llama_token_to_piece(model->vocab, token, buffer, capacity, 0, false);
}

static bool llama_is_eog(hr_engine_model *model, hr_token token)
{
    return llama_vocab_is_eog(model->vocab, token);
}

static int llama_chat_template(const hr_engine_model *model, const hr_chat_message *messages,
                               size_t count, bool add_assistant, char **out)
{
    *out = NULL;
    /* a model without a template gets ChatML, as llama-server gives it (docs/api.md) */
    const char *template = llama_model_chat_template(model->model, NULL);
    return hr_engine_format_chat(template ? template : "chatml", messages, count, add_assistant, out);
}

/* ---- prompts with control tokens ----------------------------------------------------------- */

/* Drops a start token that text beginning with the start token's own text added to the one
 * llama.cpp adds (templates that write "<s>" or "<|begin_of_text|>" themselves). */
static int32_t drop_double_bos(const struct llama_vocab *vocab, hr_token *tokens, int32_t count)
{
    llama_token bos = llama_vocab_bos(vocab);
    if (count >= 2 && bos != LLAMA_TOKEN_NULL && tokens[0] == bos && tokens[1] == bos) {
        memmove(tokens, tokens + 1, sizeof *tokens * (size_t)(count - 1));
        return count - 1;
    }
    return count;
}

static int32_t llama_tokenize_special_text(hr_engine_model *model, const char *text, size_t length,
                                           hr_token *tokens, int32_t capacity)
{
    if (length > INT32_MAX) return hr_fail(HR_EINVAL, "text of %zu bytes is too long to tokenize", length);
    int32_t count = llama_tokenize(model->vocab, text, (int32_t)length, tokens, capacity, true, true);
    if (count < 0) return count;   /* the caller grows its buffer; the doubled start token counts */
    return drop_double_bos(model->vocab, tokens, count);
}

/* A growing token list. */
struct token_list {
    hr_token *tokens;
    int32_t count, capacity;
};

/* Appends the tokens of text[0..length) (no start or end token added). */
static int append_tokens(struct token_list *list, const struct llama_vocab *vocab, const char *text,
                         size_t length, bool special)
{
    if (length == 0) return HR_OK;
    if (length > INT32_MAX / 2) return hr_fail(HR_EINVAL, "a conversation of %zu bytes is too long", length);
    for (;;) {
        int32_t room = list->capacity - list->count;
        hr_token *at = list->tokens ? list->tokens + list->count : NULL;   /* none yet: measure first */
        int32_t n = llama_tokenize(vocab, text, (int32_t)length, at, room, false, special);
        if (n >= 0) {
            list->count += n;
            return HR_OK;
        }
        if (n == INT32_MIN || -n > INT32_MAX - list->count - 16)
            return hr_fail(HR_ECONTEXT, "the conversation has too many tokens to count");
        int32_t capacity = list->count - n + 16;
        hr_token *bigger = realloc(list->tokens, sizeof *bigger * (size_t)capacity);
        if (!bigger) return hr_fail(HR_ENOMEM, "out of memory tokenizing a conversation");
        list->tokens = bigger;
        list->capacity = capacity;
    }
}

/* Whether `text` holds the text of a control token: read with and without them it differs. */
static int holds_control_text(const struct llama_vocab *vocab, const char *text, bool *holds)
{
    struct token_list plain = { 0 }, special = { 0 };
    int rc = append_tokens(&plain, vocab, text, strlen(text), false);
    if (rc == HR_OK) rc = append_tokens(&special, vocab, text, strlen(text), true);
    *holds = rc == HR_OK && (plain.count != special.count ||
                             memcmp(plain.tokens, special.tokens, sizeof *plain.tokens * (size_t)plain.count) != 0);
    free(plain.tokens);
    free(special.tokens);
    return rc;
}

/* Where content appears in the formatted text from `from` on: as it is, or trimmed of the
 * white space some templates strip. NULL when the template changed it beyond that. */
static const char *find_content(const char *from, const char *content, size_t *length)
{
    const char *at = strstr(from, content);
    if (at) {
        *length = strlen(content);
        return at;
    }
    const char *start = content;
    while (*start == ' ' || *start == '\t' || *start == '\n' || *start == '\r') start++;
    size_t trimmed = strlen(start);
    while (trimmed > 0 && strchr(" \t\n\r", start[trimmed - 1])) trimmed--;
    if (trimmed == 0) return NULL;
    char *core = strndup(start, trimmed);
    if (!core) return NULL;
    at = strstr(from, core);
    free(core);
    if (at) *length = trimmed;
    return at;
}

/* The conversation's tokens. The template's text is read with control tokens; so is the whole
 * text where no message holds a control token's text (the same tokens llama-server gives). A
 * message that does is found in the formatted text and read as plain text, the template around
 * it with control tokens: a user who writes "<|im_end|>" gets those characters, not a turn's
 * end. llama-server reads the whole formatted text with control tokens, so there a message can
 * end its turn and write the next one itself. */
static int llama_tokenize_chat(hr_engine_model *model, const hr_chat_message *messages, size_t count,
                               hr_token **tokens, int32_t *n_tokens)
{
    *tokens = NULL;
    *n_tokens = 0;
    char *text = NULL;
    int rc = llama_chat_template(model, messages, count, true, &text);
    if (rc != HR_OK) return rc;
    bool *plain = calloc(count ? count : 1, sizeof *plain);
    if (!plain) {
        free(text);
        return hr_fail(HR_ENOMEM, "out of memory tokenizing a conversation");
    }
    bool any_plain = false;
    for (size_t i = 0; i < count && rc == HR_OK; i++) {
        rc = holds_control_text(model->vocab, messages[i].content, &plain[i]);
        any_plain = any_plain || plain[i];
    }
    struct token_list list = { 0 };
    llama_token bos = llama_vocab_bos(model->vocab);
    if (rc == HR_OK && llama_vocab_get_add_bos(model->vocab) && bos != LLAMA_TOKEN_NULL) {
        list.tokens = malloc(sizeof *list.tokens * 16);
        if (!list.tokens) rc = hr_fail(HR_ENOMEM, "out of memory tokenizing a conversation");
        else {
            list.capacity = 16;
            list.tokens[list.count++] = bos;
        }
    }
    const char *cursor = text;
    for (size_t i = 0; i < count && rc == HR_OK && any_plain; i++) {
        size_t length = 0;
        const char *at = find_content(cursor, messages[i].content, &length);
        if (!at) {
            if (plain[i])
                rc = hr_fail(HR_EINVAL, "message %zu holds the text of a control token, and this model's chat "
                             "template changes a message's text, so it cannot be kept apart as plain text; "
                             "remove the control token's text from the message", i);
            continue;
        }
        if (!plain[i]) continue;   /* read with the template's text around it */
        rc = append_tokens(&list, model->vocab, cursor, (size_t)(at - cursor), true);
        if (rc == HR_OK) rc = append_tokens(&list, model->vocab, at, length, false);
        cursor = at + length;
    }
    if (rc == HR_OK) rc = append_tokens(&list, model->vocab, cursor, strlen(cursor), true);
    free(plain);
    free(text);
    if (rc != HR_OK) {
        free(list.tokens);
        return rc;
    }
    list.count = drop_double_bos(model->vocab, list.tokens, list.count);
    *tokens = list.tokens;
    *n_tokens = list.count;
    return HR_OK;
}

/* ---- decoding ------------------------------------------------------------------------------- */

static void llama_reset(hr_engine_model *model)
{
    llama_memory_clear(llama_get_memory(model->ctx), true);
}

/* The tokens sequence `seq` holds (its positions are 0 .. n - 1). */
static int32_t seq_tokens(hr_engine_model *model, int32_t seq)
{
    return (int32_t)llama_memory_seq_pos_max(llama_get_memory(model->ctx), seq) + 1;
}

static int decode_failure(int32_t rc, int32_t count)
{
    if (rc == 2) return hr_fail(HR_ECANCELLED, "decoding was cancelled");
    if (rc == 1) return hr_fail(HR_ECONTEXT, "the context window has no room for %d more tokens", count);
    flush_log_line();
    return hr_fail(HR_EENGINE, "llama.cpp failed to decode (code %d)%s%s", rc,
                   last_engine_error[0] ? ": " : "", last_engine_error);
}

static int llama_decode_tokens(hr_engine_model *model, const hr_token *tokens, int32_t count)
{
    int32_t n_ctx = model->n_ctx_seq;
    int32_t n_past = seq_tokens(model, 0);
    if (count <= 0) return hr_fail(HR_EINVAL, "nothing to decode");
    if (count > n_ctx - n_past)
        return hr_fail(HR_ECONTEXT, "the context window is full: %d tokens in it, %d more do not fit in %d",
                       n_past, count, n_ctx);
    int32_t n_batch = (int32_t)llama_n_batch(model->ctx);
    for (int32_t done = 0; done < count;) {
        int32_t chunk = count - done < n_batch ? count - done : n_batch;
        /* llama_batch_get_one computes logits for the last token of each batch only. */
        int32_t rc = llama_decode(model->ctx, llama_batch_get_one((hr_token *)tokens + done, chunk));
        if (rc != 0) return decode_failure(rc, chunk);
        done += chunk;
    }
    return HR_OK;
}

static int llama_decode_batch(hr_engine_model *model, const hr_engine_batch_entry *entries, int32_t count)
{
    int32_t n_batch = (int32_t)llama_n_batch(model->ctx);
    if (count <= 0 || count > n_batch)
        return hr_fail(HR_EINVAL, "a batch of %d tokens: use 1 to %d", count, n_batch);
    struct llama_batch *batch = &model->batch;
    for (int32_t i = 0; i < count; i++) {
        const hr_engine_batch_entry *e = &entries[i];
        if (e->seq < 0 || e->seq >= model->n_seq_max || e->pos < 0 || e->pos >= model->n_ctx_seq)
            return hr_fail(HR_EINVAL, "batch entry %d: sequence %d at position %d is outside %d sequences of %d "
                           "tokens", i, e->seq, e->pos, model->n_seq_max, model->n_ctx_seq);
        batch->token[i] = e->token;
        batch->pos[i] = e->pos;
        batch->n_seq_id[i] = 1;
        batch->seq_id[i][0] = e->seq;
        batch->logits[i] = e->logits;
    }
    batch->n_tokens = count;
    int32_t rc = llama_decode(model->ctx, *batch);
    return rc == 0 ? HR_OK : decode_failure(rc, count);
}

/* ---- the window's state: truncation, save, load ------------------------------------------- */

static int llama_truncate(hr_engine_model *model, int32_t seq, int32_t count)
{
    if (seq < 0 || seq >= model->n_seq_max)
        return hr_fail(HR_EINVAL, "there is no sequence %d in a window of %d", seq, model->n_seq_max);
    int32_t held = seq_tokens(model, seq);
    if (count < 0 || count > held)
        return hr_fail(HR_EINVAL, "cannot keep %d tokens of a sequence that holds %d", count, held);
    /* Removes every position from `count` on, including any that an aborted decode left behind
     * (llama.cpp keeps the ubatches it finished before the abort). */
    if (!llama_memory_seq_rm(llama_get_memory(model->ctx), seq, count, -1))
        return hr_fail(HR_ENOTSUP, "this model's context window cannot be cut after %d tokens "
                       "(a recurrent model); it is decoded again from the start", count);
    return HR_OK;
}

static uint64_t llama_state_bytes(hr_engine_model *model, int32_t seq)
{
    /* llama.cpp's file: magic, version, token count, the tokens, then the sequence's state */
    return 3 * sizeof(uint32_t) + (uint64_t)seq_tokens(model, seq) * sizeof(hr_token) +
           llama_state_seq_get_size(model->ctx, seq);
}

/* Whether a failed write ran out of room: the error text llama.cpp passed on (it carries
 * strerror), or, when stdio's final flush failed silently, a file system with no room left. */
static bool out_of_room(const char *path, const char *engine_error)
{
    if (strstr(engine_error, strerror(ENOSPC)) || strstr(engine_error, strerror(EDQUOT))) return true;
    char directory[PATH_MAX];
    snprintf(directory, sizeof directory, "%s", path);
    char *slash = strrchr(directory, '/');
    if (slash) *(slash == directory ? slash + 1 : slash) = '\0';
    else snprintf(directory, sizeof directory, ".");
    struct statvfs fs;
    return statvfs(directory, &fs) == 0 && (uint64_t)fs.f_bavail * fs.f_frsize < 64 * 1024;
}

static int llama_save_state(hr_engine_model *model, int32_t seq, const char *path, const hr_token *tokens,
                            int32_t count)
{
    if (seq < 0 || seq >= model->n_seq_max)
        return hr_fail(HR_EINVAL, "there is no sequence %d in a window of %d", seq, model->n_seq_max);
    int32_t held = seq_tokens(model, seq);
    if (count < 0 || count > held)
        return hr_fail(HR_EINVAL, "cannot save %d tokens of a sequence that holds %d", count, held);
    last_engine_error[0] = '\0';
    size_t written = llama_state_seq_save_file(model->ctx, path, seq, tokens, (size_t)count);
    flush_log_line();
    /* llama.cpp closes the file without checking fclose, so a final flush that failed is seen
     * only in the size: a complete file is exactly as long as llama.cpp says it wrote. */
    struct stat st;
    if (written > 0 && stat(path, &st) == 0 && (uint64_t)st.st_size == (uint64_t)written) return HR_OK;
    bool full = out_of_room(path, last_engine_error);
    unlink(path);
    if (full)
        return hr_fail(HR_EIO, "the disk holding %s is full: the snapshot (%llu bytes) was not saved and "
                       "nothing of it was left; free space there or choose another cache directory", path,
                       (unsigned long long)llama_state_bytes(model, seq));
    return hr_fail(HR_EIO, "could not write the context window's state to %s%s%s; nothing of it was left", path,
                   last_engine_error[0] ? ": " : "", last_engine_error);
}

/* Forgets sequence `seq` (a whole sequence can always be removed). */
static void forget(hr_engine_model *model, int32_t seq)
{
    llama_memory_seq_rm(llama_get_memory(model->ctx), seq, -1, -1);
}

static int llama_load_state(hr_engine_model *model, int32_t seq, const char *path, hr_token *tokens,
                            int32_t capacity, int32_t *count)
{
    *count = 0;
    if (seq < 0 || seq >= model->n_seq_max)
        return hr_fail(HR_EINVAL, "there is no sequence %d in a window of %d", seq, model->n_seq_max);
    forget(model, seq);
    if (access(path, R_OK) != 0) {
        if (errno == ENOENT) return hr_fail(HR_ENOENT, "snapshot not found: %s", path);
        return hr_fail(hr_code_for_errno(errno), "cannot read snapshot %s: %s", path, strerror(errno));
    }
    last_engine_error[0] = '\0';
    size_t n_tokens = 0;
    size_t read = llama_state_seq_load_file(model->ctx, path, seq, tokens, capacity > 0 ? (size_t)capacity : 0,
                                            &n_tokens);
    flush_log_line();
    if (read == 0 || n_tokens > (size_t)capacity) {
        forget(model, seq);
        return hr_fail(HR_EFORMAT, "snapshot %s cannot be restored into this context window%s%s", path,
                       last_engine_error[0] ? ": " : "", last_engine_error);
    }
    /* The positions restored must be exactly the tokens listed, or decoding would go on from
     * the wrong place. */
    llama_pos last = llama_memory_seq_pos_max(llama_get_memory(model->ctx), seq);
    if ((size_t)(last + 1) != n_tokens) {
        forget(model, seq);
        return hr_fail(HR_EFORMAT, "snapshot %s lists %zu tokens but holds state for %d; it was not restored",
                       path, n_tokens, (int)(last + 1));
    }
    *count = (int32_t)n_tokens;
    return HR_OK;
}

static bool llama_is_state_file(const unsigned char *head, size_t length)
{
    uint32_t magic;
    if (length < sizeof magic) return false;
    memcpy(&magic, head, sizeof magic);
    return magic == LLAMA_STATE_SEQ_MAGIC;
}

/* ---- sampling ------------------------------------------------------------------------------- */

static int llama_sampler_new(hr_engine_model *model, const hr_engine_sampling *params,
                             hr_engine_sampler **out)
{
    hr_engine_sampler *sampler = calloc(1, sizeof *sampler);
    if (!sampler) return hr_fail(HR_ENOMEM, "out of memory creating a sampler");
    struct llama_sampler_chain_params chain_params = llama_sampler_chain_default_params();
    chain_params.no_perf = true;
    sampler->chain = llama_sampler_chain_init(chain_params);
    struct llama_sampler *chain = sampler->chain;
    int32_t n_vocab = llama_vocab_n_tokens(model->vocab);
    /* the grammar is kept apart from the chain: sample_with_grammar asks it about the chain's
     * choice first and masks the whole vocabulary only when it refuses that one */
    if (params->grammar) {
        last_engine_error[0] = '\0';
        sampler->grammar = llama_sampler_init_grammar(model->vocab, params->grammar, "root");
        flush_log_line();
        sampler->n_vocab = n_vocab;
        sampler->candidates = sampler->grammar ? malloc(sizeof *sampler->candidates * (size_t)n_vocab) : NULL;
        if (!sampler->grammar || !sampler->candidates) {
            bool parsed = sampler->grammar != NULL;
            if (sampler->grammar) llama_sampler_free(sampler->grammar);
            llama_sampler_free(chain);
            free(sampler);
            if (parsed) return hr_fail(HR_ENOMEM, "out of memory creating a sampler");
            return hr_fail(HR_EINVAL, "the grammar does not parse%s%s", last_engine_error[0] ? ": " : "",
                           last_engine_error);
        }
    }
    /* llama.cpp's common sampler order: biases and penalties first, so greedy decoding sees them */
    if (params->logit_bias_count > 0) {
        llama_logit_bias biases[HR_MAX_LOGIT_BIAS];
        for (size_t i = 0; i < params->logit_bias_count; i++)
            biases[i] = (llama_logit_bias){ params->logit_bias[i].token, params->logit_bias[i].bias };
        llama_sampler_chain_add(chain, llama_sampler_init_logit_bias(n_vocab, (int32_t)params->logit_bias_count, biases));
    }
    if (params->repeat_last_n > 0 && (params->repeat_penalty != 1.0f || params->presence_penalty != 0 ||
                                      params->frequency_penalty != 0))
        llama_sampler_chain_add(chain, llama_sampler_init_penalties(n_vocab, params->repeat_last_n, params->repeat_penalty,
                                                                    params->frequency_penalty,
                                                                    params->presence_penalty));
    /* llama.cpp takes a 32-bit seed; fold the high half in so 64-bit seeds still differ. */
    uint32_t seed = (uint32_t)(params->seed ^ (params->seed >> 32));
    if (seed == LLAMA_DEFAULT_SEED) seed ^= 1; /* LLAMA_DEFAULT_SEED would mean "random" */
    if (params->temperature <= 0.0f) {
        llama_sampler_chain_add(chain, llama_sampler_init_greedy());
    } else if (params->mirostat == 1) {
        llama_sampler_chain_add(chain, llama_sampler_init_temp(params->temperature));
        llama_sampler_chain_add(chain, llama_sampler_init_mirostat(n_vocab, seed, params->mirostat_tau,
                                                                   params->mirostat_eta, 100));
    } else if (params->mirostat == 2) {
        llama_sampler_chain_add(chain, llama_sampler_init_temp(params->temperature));
        llama_sampler_chain_add(chain, llama_sampler_init_mirostat_v2(seed, params->mirostat_tau, params->mirostat_eta));
    } else {
        if (params->top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(params->top_k));
        if (params->typical_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_typical(params->typical_p, 1));
        if (params->top_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_p(params->top_p, 1));
        if (params->min_p > 0.0f) llama_sampler_chain_add(chain, llama_sampler_init_min_p(params->min_p, 1));
        llama_sampler_chain_add(chain, llama_sampler_init_temp(params->temperature));
        llama_sampler_chain_add(chain, llama_sampler_init_dist(seed));
    }
    *out = sampler;
    return HR_OK;
}

/* The candidates of the last decode's logits, every token. */
static llama_token_data_array fill_candidates(hr_engine_sampler *sampler, const float *logits)
{
    for (int32_t i = 0; i < sampler->n_vocab; i++)
        sampler->candidates[i] = (llama_token_data){ i, logits[i], 0.0f };
    return (llama_token_data_array){ sampler->candidates, (size_t)sampler->n_vocab, -1, false };
}

/* llama.cpp's own way (common/sampling.cpp): the chain chooses as if there were no grammar; the
 * grammar checks that one token; only when it refuses is the whole vocabulary masked by the
 * grammar and the chain asked again. The result is the masked distribution, but a model that
 * mostly writes what the grammar allows costs one token's check per step instead of a pass over
 * the vocabulary (which also allocates: its page faults would read as thrash to the guard). */
static hr_token sample_with_grammar(hr_engine_sampler *sampler, hr_engine_model *model, int32_t index)
{
    const float *logits = llama_get_logits_ith(model->ctx, index);
    llama_token_data_array all = fill_candidates(sampler, logits);
    llama_sampler_apply(sampler->chain, &all);
    hr_token token = all.selected >= 0 ? all.data[all.selected].id : 0;
    llama_token_data single = { token, 1.0f, 0.0f };
    llama_token_data_array one = { &single, 1, -1, false };
    llama_sampler_apply(sampler->grammar, &one);
    if (single.logit == -INFINITY) {
        all = fill_candidates(sampler, logits);
        llama_sampler_apply(sampler->grammar, &all);
        llama_sampler_apply(sampler->chain, &all);
        token = all.selected >= 0 ? all.data[all.selected].id : 0;
    }
    llama_sampler_accept(sampler->grammar, token);
    llama_sampler_accept(sampler->chain, token);
    return token;
}

static hr_token llama_sample_next(hr_engine_sampler *sampler, hr_engine_model *model)
{
    if (sampler->grammar) return sample_with_grammar(sampler, model, -1);
    return llama_sampler_sample(sampler->chain, model->ctx, -1);
}

static void fill_logprob(hr_engine_model *model, hr_token token, float logprob, hr_logprob *out)
{
    out->token = token;
    out->logprob = logprob;
    char piece[256];
    int32_t length = llama_token_to_piece(model->vocab, token, piece, sizeof piece, 0, false);
    if (length < 0) length = 0;
    if (length > HR_MAX_PIECE_BYTES) length = HR_MAX_PIECE_BYTES;
    memcpy(out->piece, piece, (size_t)length);
    out->length = length;
}

static int llama_token_logprobs(hr_engine_model *model, int32_t index, hr_token chosen, int32_t top,
                                hr_token_logprobs *out)
{
    memset(out, 0, sizeof *out);
    const float *logits = llama_get_logits_ith(model->ctx, index);
    int32_t n_vocab = llama_vocab_n_tokens(model->vocab);
    if (!logits || chosen < 0 || chosen >= n_vocab) return hr_fail(HR_EENGINE, "no logits to read log-probabilities from");
    float max = logits[0];
    for (int32_t i = 1; i < n_vocab; i++) if (logits[i] > max) max = logits[i];
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - max);
    double log_sum = max + log(sum);
    fill_logprob(model, chosen, (float)(logits[chosen] - log_sum), &out->chosen);
    if (top > HR_MAX_TOP_LOGPROBS) top = HR_MAX_TOP_LOGPROBS;
    if (top > n_vocab) top = n_vocab;
    /* the top few by insertion: top is at most 20 */
    int32_t best[HR_MAX_TOP_LOGPROBS];
    int32_t found = 0;
    for (int32_t i = 0; i < n_vocab && top > 0; i++) {
        if (found == top && logits[i] <= logits[best[found - 1]]) continue;
        int32_t at = found < top ? found++ : top - 1;
        while (at > 0 && logits[best[at - 1]] < logits[i]) {
            best[at] = best[at - 1];
            at--;
        }
        best[at] = i;
    }
    for (int32_t k = 0; k < found; k++) fill_logprob(model, best[k], (float)(logits[best[k]] - log_sum), &out->top[k]);
    out->top_count = found;
    return HR_OK;
}

static hr_token llama_sample_entry(hr_engine_sampler *sampler, hr_engine_model *model, int32_t index)
{
    if (sampler->grammar) return sample_with_grammar(sampler, model, index);
    return llama_sampler_sample(sampler->chain, model->ctx, index);
}

static void llama_sampler_release(hr_engine_sampler *sampler)
{
    if (!sampler) return;
    llama_sampler_free(sampler->chain);
    if (sampler->grammar) llama_sampler_free(sampler->grammar);
    free(sampler->candidates);
    free(sampler);
}

/* ---- embeddings ----------------------------------------------------------------------------- */

enum { EMBED_MAX_CONTEXT = 2048 };

/* The embedding context: the model's declared pooling, mean where it declares none (a
 * generative model), one sequence, the whole input in one batch (encoders need that). */
static int embed_context(hr_engine_model *model)
{
    if (model->embed_ctx) return HR_OK;
    int32_t n_ctx = model->n_ctx_seq;   /* what one request may hold in the generation window */
    int32_t n_train = llama_model_n_ctx_train(model->model);
    if (n_train > 0 && n_train < n_ctx) n_ctx = n_train;
    if (n_ctx > EMBED_MAX_CONTEXT) n_ctx = EMBED_MAX_CONTEXT;
    struct llama_context_params params = llama_context_default_params();
    params.n_ctx = (uint32_t)n_ctx;
    params.n_batch = (uint32_t)n_ctx;
    params.n_ubatch = (uint32_t)n_ctx;
    params.n_seq_max = 1;
    params.embeddings = true;
    params.pooling_type = LLAMA_POOLING_TYPE_UNSPECIFIED;   /* the model's own */
    params.n_threads = model->n_threads > 0 ? model->n_threads : 1;
    params.n_threads_batch = params.n_threads;
    params.no_perf = true;
    last_engine_error[0] = '\0';
    struct llama_context *ctx = llama_init_from_model(model->model, params);
    if (ctx && llama_pooling_type(ctx) == LLAMA_POOLING_TYPE_NONE) {
        llama_free(ctx);
        params.pooling_type = LLAMA_POOLING_TYPE_MEAN;
        ctx = llama_init_from_model(model->model, params);
    }
    flush_log_line();
    if (!ctx)
        return hr_fail(HR_EENGINE, "llama.cpp could not create a context for embeddings (%d tokens)%s%s", n_ctx,
                       last_engine_error[0] ? ": " : "", last_engine_error);
    if (llama_pooling_type(ctx) == LLAMA_POOLING_TYPE_RANK) {
        llama_free(ctx);
        return hr_fail(HR_ENOTSUP, "this model is a reranker (rank pooling): it scores pairs of texts and "
                       "gives no embeddings");
    }
    model->embed_ctx = ctx;
    model->embed_n_ctx = n_ctx;
    return HR_OK;
}

static int llama_embed_text(hr_engine_model *model, const char *text, size_t length, bool normalize, float *out,
                            int32_t capacity, int32_t *n_tokens, bool *created)
{
    *n_tokens = 0;
    *created = false;
    int32_t n_embd = llama_model_n_embd(model->model);
    if (capacity < n_embd)
        return hr_fail(HR_EINVAL, "room for %d floats, but this model's embeddings have %d", capacity, n_embd);
    if (length > INT32_MAX) return hr_fail(HR_EINVAL, "text of %zu bytes is too long to embed", length);
    pthread_mutex_lock(&model->embed_lock);
    bool existed = model->embed_ctx != NULL;
    int rc = embed_context(model);
    *created = !existed && model->embed_ctx;
    hr_token *tokens = NULL;
    int32_t count = 0;
    if (rc == HR_OK) {
        int32_t limit = model->embed_n_ctx;
        tokens = malloc(sizeof *tokens * (size_t)limit);
        if (!tokens) rc = hr_fail(HR_ENOMEM, "out of memory embedding a text");
        /* plain text: an input must not forge control tokens; the start and end tokens the
         * vocabulary wants ([CLS] ... [SEP] for BERT) are added */
        if (rc == HR_OK) count = llama_tokenize(model->vocab, text, (int32_t)length, tokens, limit, true, false);
        if (rc == HR_OK && count < 0)
            rc = hr_fail(HR_ECONTEXT, "the input is %s%d tokens, but embeddings take at most %d on this model",
                         count == INT32_MIN ? "more than " : "", count == INT32_MIN ? limit : -count, limit);
        if (rc == HR_OK && count == 0) rc = hr_fail(HR_EINVAL, "the input is empty and this model adds no token to it");
    }
    if (rc == HR_OK) {
        *n_tokens = count;
        llama_memory_clear(llama_get_memory(model->embed_ctx), true);
        struct llama_batch batch = llama_batch_get_one(tokens, count);
        last_engine_error[0] = '\0';
        int32_t status = llama_model_has_encoder(model->model) && !llama_model_has_decoder(model->model)
                             ? llama_encode(model->embed_ctx, batch)
                             : llama_decode(model->embed_ctx, batch);
        flush_log_line();
        const float *pooled = status == 0 ? llama_get_embeddings_seq(model->embed_ctx, 0) : NULL;
        if (status != 0 || !pooled) {
            rc = hr_fail(HR_EENGINE, "llama.cpp could not compute the embedding (code %d)%s%s", status,
                         last_engine_error[0] ? ": " : "", last_engine_error);
        } else {
            double norm = 0;
            for (int32_t i = 0; i < n_embd; i++) norm += (double)pooled[i] * pooled[i];
            norm = sqrt(norm);
            double scale = normalize && norm > 0 ? 1.0 / norm : 1.0;
            for (int32_t i = 0; i < n_embd; i++) out[i] = (float)(pooled[i] * scale);
        }
    }
    pthread_mutex_unlock(&model->embed_lock);
    free(tokens);
    return rc;
}

/* ---- memory estimate ------------------------------------------------------------------------ */

/* llama.cpp's own dry run where the build has it, else the formula; a dry run that fails on a
 * file the checks passed (an architecture it cannot build, say) falls back to the formula too. */
static int llama_estimate(const char *path, const hr_engine_estimate_params *params, hr_engine_estimate *out)
{
    memset(out, 0, sizeof *out);
    hr_llama_backend_once();
    hr_llama_file_facts facts;
    int rc = hr_llama_check_model_file(path, &facts);
    if (rc != HR_OK) return rc;
    struct llama_context_params unused;
    rc = hr_llama_context_params(&params->load, 0, &unused);
    if (rc != HR_OK) return rc;
    if (params->load.load_mode == HR_LOAD_MLOCK && !llama_supports_mlock())
        return hr_fail(HR_ENOTSUP, "cannot lock %s in memory: this platform does not support mlock", path);

    if (!params->formula_only && hr_llama_have_dry_run()) {
        rc = hr_llama_dry_run_estimate(path, params, &facts, out);
        if (rc == HR_OK || rc == HR_ENOMEM) return rc;
        hr_log(HR_LOG_WARN, "llama.cpp's dry run could not estimate %s (%s); using the formula", path,
               hr_last_error());
        memset(out, 0, sizeof *out);
    }
    return hr_llama_formula_estimate(path, params, &facts, out);
}

static const hr_engine_ops llama_ops = {
    .name = "llama.cpp",
    .load = llama_load,
    .unload = llama_unload,
    .get_info = llama_get_info,
    .tokenize = llama_tokenize_text,
    .token_to_piece = llama_piece,
    .is_end_of_generation = llama_is_eog,
    .tokenize_special = llama_tokenize_special_text,
    .tokenize_chat = llama_tokenize_chat,
    .apply_chat_template = llama_chat_template,
    .reset = llama_reset,
    .decode = llama_decode_tokens,
    .decode_batch = llama_decode_batch,
    .sample_at = llama_sample_entry,
    .sampler_create = llama_sampler_new,
    .sample = llama_sample_next,
    .token_logprobs = llama_token_logprobs,
    .sampler_free = llama_sampler_release,
    .truncate = llama_truncate,
    .state_size = llama_state_bytes,
    .state_save = llama_save_state,
    .state_load = llama_load_state,
    .is_state_file = llama_is_state_file,
    .estimate = llama_estimate,
    .embed = llama_embed_text,
};

const hr_engine_ops *hr_engine_llama(void)
{
    return &llama_ops;
}
