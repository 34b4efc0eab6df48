/*
 * model.c: loading, describing and unloading a model through the context's engine.
 * Parameter checks happen here, so every engine gets sane values; the engine does the work.
 */
#include "runtime/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "core/log.h"
#include "engine/grammar.h"
#include "platform/platform.h"

enum { MAX_CONTEXT_TOKENS = 1 << 20, MAX_THREADS = 512 };

HR_API hr_model_params hr_model_default_params(void)
{
    hr_model_params params = {
        .n_ctx = 0,
        .n_batch = 0,
        .n_threads = 0,
        .n_gpu_layers = -1,
        .load_mode = HR_LOAD_AUTO,
        .progress_fn = NULL,
        .progress_user_data = NULL,
        .type_k = NULL,
        .type_v = NULL,
        .max_queued = HR_DEFAULT_MAX_QUEUED,
    };
    return params;
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

bool hr_model_step_cancelled(hr_model *model)
{
    if (atomic_load(&model->cancel_epoch) != atomic_load(&model->step_epoch)) return true;
    atomic_bool *session_flag = atomic_load(&model->step_cancel);
    return session_flag && atomic_load(session_flag);
}

bool hr_model_abort_requested(void *user_data)
{
    return hr_model_step_cancelled(user_data);
}

int hr_model_slots_init(struct hr_model *model, int32_t count)
{
    struct hr_slot *slots = calloc((size_t)(count > 0 ? count : 1), sizeof *slots);
    if (!slots) return HR_ENOMEM;
    for (int32_t i = 0; i < model->n_slots; i++) free(model->slots[i].tokens);
    free(model->slots);
    model->slots = slots;
    model->n_slots = count > 0 ? count : 1;
    model->window_capacity = 0;
    return HR_OK;
}

struct hr_slot *hr_model_snapshot_slot(hr_model *model)
{
    struct hr_slot *latest = &model->slots[0];
    for (int32_t i = 0; i < model->n_slots; i++) {
        struct hr_slot *slot = &model->slots[i];
        if (slot->count > 0 && (latest->count == 0 || slot->last_used > latest->last_used)) latest = slot;
    }
    return latest;
}

struct hr_model *hr_model_new(hr_context *ctx, const hr_engine_ops *engine, const char *path)
{
    struct hr_model *model = calloc(1, sizeof *model);
    if (!model) return NULL;
    model->path = strdup(path);
    if (!model->path) {
        free(model);
        return NULL;
    }
    model->ctx = ctx;
    model->engine = engine;
    model->max_queued = HR_DEFAULT_MAX_QUEUED;   /* hr_model_load sets the caller's */
    atomic_init(&model->cancel_epoch, 0);
    atomic_init(&model->step_epoch, 0);
    atomic_init(&model->step_cancel, NULL);
    atomic_init(&model->busy, false);
    if (hr_model_slots_init(model, 1) != HR_OK) {
        free(model->path);
        free(model);
        return NULL;
    }
    pthread_mutex_init(&model->queue_lock, NULL);
    pthread_cond_init(&model->queue_changed, NULL);
    pthread_mutex_init(&model->window_lock, NULL);
    pthread_mutex_init(&model->wake_lock, NULL);
    hr_cond_init_monotonic(&model->wake);
    /* what headroomd and people call the model (general.name stays in hr_model_info.name) */
    hr_model_name_from_path(path, model->name, sizeof model->name);
    return model;
}

HR_API size_t hr_model_name_from_path(const char *path, char *name, size_t size)
{
    if (!path) path = "";
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t length = strlen(base);
    if (length > 5 && strcmp(base + length - 5, ".gguf") == 0) length -= 5;
    if (name && size > 0) {
        size_t kept = length < size ? length : size - 1;
        memmove(name, base, kept);   /* `name` may be `path` itself */
        name[kept] = '\0';
    }
    return length;
}

void hr_model_destroy(struct hr_model *model)
{
    pthread_mutex_destroy(&model->queue_lock);
    pthread_cond_destroy(&model->queue_changed);
    pthread_mutex_destroy(&model->window_lock);
    pthread_mutex_destroy(&model->wake_lock);
    pthread_cond_destroy(&model->wake);
    for (int32_t i = 0; i < model->n_slots; i++) free(model->slots[i].tokens);
    free(model->slots);
    free(model->path);
    free(model);
}

HR_API int hr_model_load(hr_context *ctx, const char *path, const hr_model_params *params,
                         hr_model **out)
{
    hr_clear_error();
    if (!out) return hr_fail(HR_EINVAL, "hr_model_load: out is NULL");
    *out = NULL;
    if (!ctx || !path) return hr_fail(HR_EINVAL, "hr_model_load: context and path are required");
    if (!path[0]) return hr_fail(HR_EINVAL, "no model path given");
    hr_model_params p = params ? *params : hr_model_default_params();
    if (p.n_ctx < 0 || p.n_ctx > MAX_CONTEXT_TOKENS)
        return hr_fail(HR_EINVAL, "context size %d is out of range: use 0 (the model's own) up to %d",
                       p.n_ctx, MAX_CONTEXT_TOKENS);
    if (p.n_ctx > 0 && p.n_ctx < 16)
        return hr_fail(HR_EINVAL, "context size %d is too small: use at least 16 tokens", p.n_ctx);
    if (p.n_batch < 0 || p.n_batch > MAX_CONTEXT_TOKENS)
        return hr_fail(HR_EINVAL, "batch size %d is out of range", p.n_batch);
    if (p.n_threads < 0 || p.n_threads > MAX_THREADS)
        return hr_fail(HR_EINVAL, "thread count %d is out of range: use 0 (one per CPU) up to %d",
                       p.n_threads, MAX_THREADS);
    if (p.load_mode < HR_LOAD_AUTO || p.load_mode > HR_LOAD_MLOCK)
        return hr_fail(HR_EINVAL, "unknown load mode %d", (int)p.load_mode);
    if (p.max_queued > HR_MAX_QUEUED)
        return hr_fail(HR_EINVAL, "max_queued %d is out of range: use a negative value (no bound) or 0 to %d",
                       p.max_queued, HR_MAX_QUEUED);
    if (p.slots < 0 || p.slots > HR_MAX_SLOTS)
        return hr_fail(HR_EINVAL, "slots %d is out of range: use 0 (the default, %d) or 1 to %d", p.slots,
                       HR_DEFAULT_SLOTS, HR_MAX_SLOTS);

    struct hr_model *model = hr_model_new(ctx, ctx->engine, path);
    if (!model) return hr_fail(HR_ENOMEM, "out of memory loading %s", path);
    model->max_queued = p.max_queued;

    hr_engine_load_params load = {
        .n_ctx = p.n_ctx,
        .n_seq_max = p.slots > 0 ? p.slots : HR_DEFAULT_SLOTS,
        .n_batch = p.n_batch,
        .n_threads = p.n_threads > 0 ? p.n_threads : online_cpus(),
        .n_gpu_layers = p.n_gpu_layers,
        .load_mode = p.load_mode,
        .progress_fn = p.progress_fn,
        .progress_user_data = p.progress_user_data,
        .abort_fn = hr_model_abort_requested,
        .abort_user_data = model,
        .type_k = p.type_k,
        .type_v = p.type_v,
    };
    double started = hr_now_seconds();
    int rc = model->engine->load(path, &load, &model->engine_model);
    if (rc != HR_OK) {
        hr_log(HR_LOG_WARN, "load failed: %s", hr_last_error());
        hr_model_destroy(model);
        return rc;
    }
    hr_engine_model_info info;
    model->engine->get_info(model->engine_model, &info);
    if (model->engine->decode_batch && info.n_seq_max > 1 && hr_model_slots_init(model, info.n_seq_max) != HR_OK) {
        model->engine->unload(model->engine_model);
        hr_model_destroy(model);
        return hr_fail(HR_ENOMEM, "out of memory loading %s", path);
    }
    hr_model_identity_init(model);
    hr_log(HR_LOG_INFO, "loaded %s in %.2f s", path, hr_now_seconds() - started);
    *out = model;
    return HR_OK;
}

HR_API void hr_model_free(hr_model *model)
{
    if (!model) return;
    hr_model_stop_worker(model);
    model->engine->unload(model->engine_model);
    hr_log(HR_LOG_INFO, "unloaded %s", model->path);
    hr_model_destroy(model);
}

int hr_model_window_reserve(hr_model *model)
{
    hr_engine_model_info info;
    model->engine->get_info(model->engine_model, &info);
    if (model->window_capacity > 0 && model->window_capacity >= info.n_ctx) return HR_OK;
    for (int32_t i = 0; i < model->n_slots; i++) {
        hr_token *tokens = realloc(model->slots[i].tokens, sizeof *tokens * (size_t)(info.n_ctx > 0 ? info.n_ctx : 1));
        if (!tokens) return hr_fail(HR_ENOMEM, "out of memory for the list of tokens in the context window");
        model->slots[i].tokens = tokens;
    }
    model->window_capacity = info.n_ctx;
    return HR_OK;
}

HR_API int hr_model_get_info(const hr_model *model, hr_model_info *out)
{
    hr_clear_error();
    if (!model || !out) return hr_fail(HR_EINVAL, "hr_model_get_info: model and out are required");
    hr_engine_model_info info;
    model->engine->get_info(model->engine_model, &info);
    memset(out, 0, sizeof *out);
    memcpy(out->description, info.description, sizeof out->description);
    memcpy(out->name, info.name, sizeof out->name);
    out->n_params = info.n_params;
    out->weight_bytes = info.weight_bytes;
    out->file_bytes = info.file_bytes;
    out->n_layer = info.n_layer;
    out->n_ctx_train = info.n_ctx_train;
    out->n_ctx = info.n_ctx;
    out->n_vocab = info.n_vocab;
    out->n_embd = info.n_embd;
    out->embed_bytes = atomic_load(&model->embed_bytes);
    out->n_layer_gpu = info.n_layer_gpu;
    out->n_threads = info.n_threads;
    out->load_mode = info.load_mode;
    out->expected_tokens_per_second = model->guard.expected;
    out->slots = model->n_slots;
    out->remote = info.remote;
    memcpy(out->endpoint, info.endpoint, sizeof out->endpoint);
    return HR_OK;
}

HR_API void hr_model_cancel(hr_model *model)
{
    if (model) atomic_fetch_add(&model->cancel_epoch, 1);
}

HR_API int hr_model_apply_chat_template(const hr_model *model, const hr_chat_message *messages,
                                        size_t count, bool add_assistant, char **out)
{
    hr_clear_error();
    if (!out) return hr_fail(HR_EINVAL, "hr_model_apply_chat_template: out is NULL");
    *out = NULL;
    if (!model || (!messages && count > 0))
        return hr_fail(HR_EINVAL, "hr_model_apply_chat_template: model and messages are required");
    for (size_t i = 0; i < count; i++)
        if (!messages[i].role || !messages[i].content)
            return hr_fail(HR_EINVAL, "message %zu has no role or no content", i);
    if (!model->engine->apply_chat_template)
        return hr_fail(HR_ENOTSUP, "the %s engine has no chat templates", model->engine->name);
    return model->engine->apply_chat_template(model->engine_model, messages, count, add_assistant, out);
}

HR_API int hr_json_grammar(const char *schema_json, char **out)
{
    hr_clear_error();
    if (!out) return hr_fail(HR_EINVAL, "hr_json_grammar: out is NULL");
    *out = NULL;
    if (!schema_json) {
        *out = strdup(hr_engine_json_object_grammar);
        return *out ? HR_OK : hr_fail(HR_ENOMEM, "out of memory for a grammar");
    }
    return hr_engine_schema_grammar(schema_json, out);
}

HR_API int hr_model_file_metadata(const char *path, char **json)
{
    hr_clear_error();
    if (!json) return hr_fail(HR_EINVAL, "hr_model_file_metadata: json is NULL");
    *json = NULL;
    if (!path) return hr_fail(HR_EINVAL, "hr_model_file_metadata: path is NULL");
    cJSON *info = NULL;
    int rc = hr_engine_llama_file_metadata(path, &info);
    if (rc != HR_OK) return rc;
    *json = cJSON_PrintUnformatted(info);
    cJSON_Delete(info);
    return *json ? HR_OK : hr_fail(HR_ENOMEM, "out of memory describing %s", path);
}
