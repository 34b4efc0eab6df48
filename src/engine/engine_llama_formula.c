/*
 * engine_llama_formula.c: the memory estimate by formula, from the GGUF tensor table and the
 * model's hyperparameters read with ggml's own GGUF reader. Used where the build has no
 * llama.cpp dry run (engine_llama_fit.cpp) or the dry run fails; docs/preflight.md derives each
 * term from llama.cpp v0.5.0's own numbers. Also home of the host overhead model both share.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <ggml-backend.h>
#include <gguf.h>

#include "core/error.h"
#include "engine/engine_llama_internal.h"

/* Measured with llama.cpp v0.5.0's CPU build (docs/preflight.md, "host overhead"): the resident
 * memory a load and a full context add beyond llama.cpp's buffers is the engine's code, threads
 * and small buffers (about 5.5 MiB) plus the tokenizer's tables: about 176 bytes per token and,
 * for BPE vocabularies, 150 per merge rule. */
enum { OVERHEAD_FIXED = 11 << 19, OVERHEAD_PER_TOKEN = 176, OVERHEAD_PER_MERGE = 150 };

uint64_t hr_llama_overhead_bytes(uint64_t n_tokens, uint64_t n_merges)
{
    return OVERHEAD_FIXED + n_tokens * OVERHEAD_PER_TOKEN + n_merges * OVERHEAD_PER_MERGE;
}

#ifndef HEADROOM_HAVE_LLAMA_EXT
/* This build found no llama.cpp source tree with src/llama-ext.h: the formula is all there is. */
bool hr_llama_have_dry_run(void)
{
    return false;
}

int hr_llama_dry_run_estimate(const char *path, const hr_engine_estimate_params *params,
                              const hr_llama_file_facts *facts, hr_engine_estimate *out)
{
    (void)params;
    (void)facts;
    (void)out;
    return hr_fail(HR_ENOTSUP, "this build cannot ask llama.cpp to plan %s (no llama-ext.h)", path);
}
#endif

/* ---- hyperparameters ------------------------------------------------------------------------ */

struct hparams {
    const struct gguf_context *gguf;
    char arch[64];
};

static bool integer_value(const struct gguf_context *gguf, int64_t id, enum gguf_type type, size_t index,
                          bool array, uint64_t *out)
{
    const void *data = array ? gguf_get_arr_data(gguf, id) : NULL;
    switch (type) {
    case GGUF_TYPE_UINT32: *out = array ? ((const uint32_t *)data)[index] : gguf_get_val_u32(gguf, id); return true;
    case GGUF_TYPE_INT32: {
        int32_t v = array ? ((const int32_t *)data)[index] : gguf_get_val_i32(gguf, id);
        *out = v > 0 ? (uint64_t)v : 0;
        return true;
    }
    case GGUF_TYPE_UINT64: *out = array ? ((const uint64_t *)data)[index] : gguf_get_val_u64(gguf, id); return true;
    case GGUF_TYPE_UINT16: *out = array ? ((const uint16_t *)data)[index] : gguf_get_val_u16(gguf, id); return true;
    default: return false;
    }
}

/* "<arch>.<key>" for layer `layer`: a scalar applies to every layer; some models store one value
 * per layer (head_count_kv, feed_forward_length) as an array. */
static uint64_t hparam(const struct hparams *h, const char *key, int64_t layer, uint64_t fallback)
{
    char name[160];
    snprintf(name, sizeof name, "%s.%s", h->arch, key);
    int64_t id = gguf_find_key(h->gguf, name);
    if (id < 0) return fallback;
    uint64_t value = 0;
    enum gguf_type type = gguf_get_kv_type(h->gguf, id);
    if (type == GGUF_TYPE_ARRAY) {
        size_t n = gguf_get_arr_n(h->gguf, id);
        if (n == 0) return fallback;
        size_t index = layer >= 0 && (size_t)layer < n ? (size_t)layer : 0;
        if (!integer_value(h->gguf, id, gguf_get_arr_type(h->gguf, id), index, true, &value)) return fallback;
        return value;
    }
    return integer_value(h->gguf, id, type, 0, false, &value) ? value : fallback;
}

/* ---- devices -------------------------------------------------------------------------------- */

/* The first GPU llama.cpp can offload to, or NULL. The formula puts every offloaded layer on it;
 * llama.cpp splits layers over several GPUs by their free memory, which only the dry run sees. */
static ggml_backend_dev_t first_gpu(void)
{
    if (!llama_supports_gpu_offload()) return NULL;
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t device = ggml_backend_dev_get(i);
        enum ggml_backend_dev_type type = ggml_backend_dev_type(device);
        if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) return device;
    }
    return NULL;
}

/* The block a tensor belongs to ("blk.12.attn_q.weight" -> 12), or -1. */
static int64_t tensor_layer(const char *name)
{
    if (strncmp(name, "blk.", 4) != 0) return -1;
    int64_t layer = 0;
    const char *p = name + 4;
    if (*p < '0' || *p > '9') return -1;
    while (*p >= '0' && *p <= '9') layer = layer * 10 + (*p++ - '0');
    return *p == '.' ? layer : -1;
}

/* ---- the estimate --------------------------------------------------------------------------- */

/* Scratch buffers of one decode step, from llama.cpp v0.5.0's plans (flash attention on, the
 * last token's logits only): per batch token 4 * (4 n_embd + 3 n_ff) + 24 bytes of
 * activations, and the f16 attention mask, n_ctx * n_batch * 2. Within 10% of the dry run for
 * every shape measured in docs/preflight.md. */
/* Bounds no real model comes near (the largest have a few hundred layers, embeddings of tens of
 * thousands, a few hundred heads): a header over them is corrupt or crafted, and taking it at
 * its word would loop for billions of layers or overflow every product below (tests/fuzz). */
enum { MAX_LAYERS = 1 << 14, MAX_EMBEDDING = 1 << 20, MAX_HEADS = 1 << 14, MAX_FEED_FORWARD = 1 << 24 };

/* HR_OK when `value` is at most `limit`; else HR_EFORMAT with a sentence naming the key. */
static int within(const char *path, const char *arch, const char *key, uint64_t value, uint64_t limit)
{
    if (value <= limit) return HR_OK;
    return hr_fail(HR_EFORMAT, "model file %s is corrupt: its header says %s.%s is %llu, more than any model "
                   "has (at most %llu); get the file again or from another source", path, arch, key,
                   (unsigned long long)value, (unsigned long long)limit);
}

static uint64_t compute_bytes(uint64_t n_batch, uint64_t n_ctx, uint64_t n_embd, uint64_t n_ff)
{
    return n_batch * (4 * (4 * n_embd + 3 * n_ff) + 24) + n_ctx * n_batch * 2;
}

int hr_llama_formula_estimate(const char *path, const hr_engine_estimate_params *params,
                              const hr_llama_file_facts *facts, hr_engine_estimate *out)
{
    struct gguf_init_params init = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *gguf = gguf_init_from_file(path, init);
    if (!gguf) return hr_fail(HR_EFORMAT, "model file %s is corrupt: its GGUF header cannot be read", path);

    struct hparams h = { .gguf = gguf };
    int64_t arch_id = gguf_find_key(gguf, "general.architecture");
    if (arch_id < 0 || gguf_get_kv_type(gguf, arch_id) != GGUF_TYPE_STRING) {
        gguf_free(gguf);
        return hr_fail(HR_EFORMAT, "model file %s names no architecture (general.architecture)", path);
    }
    snprintf(h.arch, sizeof h.arch, "%s", gguf_get_val_str(gguf, arch_id));

    memset(out, 0, sizeof *out);
    snprintf(out->method, sizeof out->method, "formula");
    out->file_bytes = facts->file_bytes;
    uint64_t block_count = hparam(&h, "block_count", -1, 0);
    uint64_t context_length = hparam(&h, "context_length", -1, 0);
    uint64_t n_embd = hparam(&h, "embedding_length", -1, 0);
    uint64_t n_head = hparam(&h, "attention.head_count", 0, 1);
    int bad = within(path, h.arch, "block_count", block_count, MAX_LAYERS);
    if (bad == HR_OK) bad = within(path, h.arch, "context_length", context_length, INT32_MAX);
    if (bad == HR_OK) bad = within(path, h.arch, "embedding_length", n_embd, MAX_EMBEDDING);
    if (bad == HR_OK) bad = within(path, h.arch, "attention.head_count", n_head, MAX_HEADS);
    if (bad != HR_OK) {
        gguf_free(gguf);
        return bad;
    }
    int64_t n_layer = (int64_t)block_count;
    out->n_layer = (int32_t)n_layer;
    out->n_ctx_train = (int32_t)context_length;
    if (n_head == 0) n_head = 1;

    struct llama_context_params context_params;
    int rc = hr_llama_context_params(&params->load, out->n_ctx_train, &context_params);
    if (rc != HR_OK) {
        gguf_free(gguf);
        return rc;
    }
    /* llama.cpp pads the window to 256, then each sequence's share to 256 */
    uint64_t n_seq = context_params.n_seq_max > 0 ? context_params.n_seq_max : 1;
    uint64_t n_ctx_total = ((uint64_t)context_params.n_ctx + 255) / 256 * 256;
    uint64_t n_ctx = (n_ctx_total / n_seq + 255) / 256 * 256;   /* per sequence */
    uint64_t n_batch = context_params.n_batch;
    out->n_ctx = (int32_t)n_ctx;
    out->n_batch = (int32_t)n_batch;

    /* Where layers go: llama.cpp offloads the last n_gpu_layers blocks, and the output layer
     * with them when all blocks are offloaded (-1 or more than n_layer). */
    ggml_backend_dev_t gpu = params->load.n_gpu_layers != 0 ? first_gpu() : NULL;
    int64_t gpu_layers = 0;
    bool output_on_gpu = false;
    if (gpu) {
        int32_t requested = params->load.n_gpu_layers;
        gpu_layers = requested < 0 || requested > n_layer ? n_layer : requested;
        output_on_gpu = requested < 0 || requested > n_layer;
    }
    hr_engine_device_estimate *host = &out->devices[0], *device = NULL;
    snprintf(host->name, sizeof host->name, "CPU");
    out->n_devices = 1;
    if (gpu && gpu_layers > 0) {
        device = &out->devices[out->n_devices++];
        device->is_gpu = true;
        snprintf(device->name, sizeof device->name, "%s (%s)", ggml_backend_dev_name(gpu),
                 ggml_backend_dev_description(gpu));
        size_t free_bytes = 0, total_bytes = 0;
        ggml_backend_dev_memory(gpu, &free_bytes, &total_bytes);
        device->memory_free_bytes = free_bytes;
        device->memory_total_bytes = total_bytes;
    }
    int64_t first_gpu_layer = n_layer - gpu_layers;

    /* weights: the tensor table, each tensor where its block goes */
    uint64_t n_ff_max = 0;
    for (int64_t i = 0; i < gguf_get_n_tensors(gguf); i++) {
        const char *name = gguf_get_tensor_name(gguf, i);
        uint64_t size = gguf_get_tensor_size(gguf, i);
        int64_t layer = tensor_layer(name);
        bool on_gpu = device && ((layer >= 0 && layer >= first_gpu_layer) ||
                                 (layer < 0 && output_on_gpu && strncmp(name, "output", 6) == 0));
        (on_gpu ? device : host)->weights_bytes += size;
        out->weight_bytes += size;
        const int64_t *ne = gguf_get_tensor_ne(gguf, i);
        uint64_t elements = 1;
        for (int dim = 0; dim < GGML_MAX_DIMS; dim++) elements *= (uint64_t)ne[dim];
        out->n_params += elements;
    }

    /* KV cache: per layer and token, K and V rows of n_embd_head * n_head_kv elements */
    for (int64_t layer = 0; layer < n_layer; layer++) {
        uint64_t head_kv = hparam(&h, "attention.head_count_kv", layer, n_head);
        uint64_t head_k = hparam(&h, "attention.key_length", layer, n_embd / n_head);
        uint64_t head_v = hparam(&h, "attention.value_length", layer, n_embd / n_head);
        uint64_t n_ff = hparam(&h, "feed_forward_length", layer, 4 * n_embd);
        bad = within(path, h.arch, "attention.head_count_kv", head_kv, MAX_HEADS);
        if (bad == HR_OK) bad = within(path, h.arch, "attention.key_length", head_k, MAX_EMBEDDING);
        if (bad == HR_OK) bad = within(path, h.arch, "attention.value_length", head_v, MAX_EMBEDDING);
        if (bad == HR_OK) bad = within(path, h.arch, "feed_forward_length", n_ff, MAX_FEED_FORWARD);
        if (bad != HR_OK) {
            gguf_free(gguf);
            return bad;
        }
        uint64_t per_token = ggml_row_size(context_params.type_k, (int64_t)(head_k * head_kv)) +
                             ggml_row_size(context_params.type_v, (int64_t)(head_v * head_kv));
        hr_engine_device_estimate *d = device && layer >= first_gpu_layer ? device : host;
        d->kv_bytes_per_token += per_token * n_seq;   /* a token more for each sequence */
        d->kv_bytes += per_token * n_ctx * n_seq;
        if (n_ff > n_ff_max) n_ff_max = n_ff;
    }

    /* compute: on the GPU when it holds layers (the host keeps the input embeddings' share) */
    uint64_t compute = compute_bytes(n_batch, n_ctx, n_embd, n_ff_max);
    if (device) {
        device->compute_bytes = compute;
        device->compute_bytes_per_token = n_batch * 2;
        host->compute_bytes = n_batch * n_embd * 4 * 2;
    } else {
        host->compute_bytes = compute;
        host->compute_bytes_per_token = n_batch * 2;
    }
    host->overhead_bytes = hr_llama_overhead_bytes(facts->n_tokens, facts->n_merges);
    gguf_free(gguf);
    return HR_OK;
}
