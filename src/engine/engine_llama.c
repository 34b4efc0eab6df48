/*
 * engine_llama.c: the engine interface (engine.h) on llama.cpp's C API: the log relay, loading and
 * unloading, decoding, the estimate and the operations table. The table's other entries live by
 * concern in engine_llama_text.c (tokens and chat), engine_llama_sample.c, engine_llama_state.c
 * and engine_llama_embed.c; the model file is checked in engine_llama_file.c and the memory
 * estimated in engine_llama_fit.cpp and engine_llama_formula.c. These are the only files that
 * include llama.h and gguf.h; they hold no policy: they load, decode and report, and turn the
 * engine's failures into HR_E* codes with sentences a person can act on.
 */
#include "engine/engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ggml-backend.h>
#include <gguf.h>
#include <llama.h>

#include "core/error.h"
#include "core/log.h"
#include "engine/engine_llama_internal.h"

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

void hr_llama_flush_log(void)
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
        hr_llama_flush_log();
        log_line_level = level;
    }
    for (const char *p = text; *p; p++) {
        if (*p == '\n') hr_llama_flush_log();
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
    hr_llama_flush_log();
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
    hr_llama_flush_log();
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
    /* The eval callback finds the KV tensors (engine_llama_kv.c) whose pages shedding gives back.
     * With a callback the scheduler computes each split as a graph view and synchronises after
     * it, which costs a GPU backend its captured graphs; a GPU's KV is not shed anyway (only plain
     * host buffers are), so a model with layers on a GPU goes without. */
    if (!llama_supports_gpu_offload() || params->n_gpu_layers == 0) {
        context_params.cb_eval = hr_llama_kv_eval_callback;
        context_params.cb_eval_user_data = model;
    }
    context_params.no_perf = true;
    snprintf(model->cache_types, sizeof model->cache_types, "%s/%s", ggml_type_name(context_params.type_k),
             ggml_type_name(context_params.type_v));

    last_engine_error[0] = '\0';
    model->ctx = llama_init_from_model(model->model, context_params);
    hr_llama_flush_log();
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

/* ---- decoding ------------------------------------------------------------------------------- */

static void llama_reset(hr_engine_model *model)
{
    llama_memory_clear(llama_get_memory(model->ctx), true);
}

/* The tokens sequence `seq` holds (its positions are 0 .. n - 1). */
int32_t hr_llama_seq_tokens(hr_engine_model *model, int32_t seq)
{
    return (int32_t)llama_memory_seq_pos_max(llama_get_memory(model->ctx), seq) + 1;
}

static int decode_failure(int32_t rc, int32_t count)
{
    if (rc == 2) return hr_fail(HR_ECANCELLED, "decoding was cancelled");
    if (rc == 1) return hr_fail(HR_ECONTEXT, "the context window has no room for %d more tokens", count);
    hr_llama_flush_log();
    return hr_fail(HR_EENGINE, "llama.cpp failed to decode (code %d)%s%s", rc,
                   last_engine_error[0] ? ": " : "", last_engine_error);
}

static int llama_decode_tokens(hr_engine_model *model, const hr_token *tokens, int32_t count)
{
    int32_t n_ctx = model->n_ctx_seq;
    int32_t n_past = hr_llama_seq_tokens(model, 0);
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
        hr_llama_kv_note_decoded(model);
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
    if (rc == 0) hr_llama_kv_note_decoded(model);
    return rc == 0 ? HR_OK : decode_failure(rc, count);
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
    .tokenize = hr_llama_tokenize,
    .token_to_piece = hr_llama_piece,
    .is_end_of_generation = hr_llama_is_eog,
    .tokenize_special = hr_llama_tokenize_special,
    .tokenize_chat = hr_llama_tokenize_chat,
    .apply_chat_template = hr_llama_apply_chat_template,
#ifdef HEADROOM_HAVE_CHAT_TEMPLATES
    .chat_create = hr_llama_chat_create,
    .chat_tokenize = hr_llama_chat_tokenize,
    .chat_parse = hr_llama_chat_parse,
    .chat_free = hr_llama_chat_free,
#endif
    .reset = llama_reset,
    .decode = llama_decode_tokens,
    .decode_batch = llama_decode_batch,
    .sample_at = hr_llama_sample_at,
    .sampler_create = hr_llama_sampler_create,
    .sample = hr_llama_sample,
    .token_logprobs = hr_llama_token_logprobs,
    .sampler_free = hr_llama_sampler_free,
    .truncate = hr_llama_truncate,
    .state_size = hr_llama_state_size,
    .state_save = hr_llama_state_save,
    .state_load = hr_llama_state_load,
    .is_state_file = hr_llama_is_state_file,
    .state_file_tokens = hr_llama_state_file_tokens,
    .seq_resident_bytes = hr_llama_seq_resident_bytes,
    .seq_release = hr_llama_seq_release,
    .estimate = llama_estimate,
    .embed = hr_llama_embed,
};

const hr_engine_ops *hr_engine_llama(void)
{
    return &llama_ops;
}
