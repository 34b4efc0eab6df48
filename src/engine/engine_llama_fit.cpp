/*
 * engine_llama_fit.cpp: the memory estimate by llama.cpp's own dry run, as its common/fit.cpp
 * does it: load the model with no_alloc (tensors described, nothing allocated), create the
 * context, and read llama_get_memory_breakdown() per buffer type. That function is exported by
 * libllama but declared only in the source tree's src/llama-ext.h, in C++ (a std::map), so this
 * one file is C++ and is built only when CMake found that header; it offers a C function.
 */
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>

#include "llama-ext.h"

extern "C" {
#include "core/error.h"
#include "engine/engine_llama_internal.h"
}

namespace {

struct model_deleter {
    void operator()(llama_model *model) const { llama_model_free(model); }
};
struct context_deleter {
    void operator()(llama_context *context) const { llama_free(context); }
};
using model_ptr = std::unique_ptr<llama_model, model_deleter>;
using context_ptr = std::unique_ptr<llama_context, context_deleter>;

/* Bytes per device of one context's breakdown: index 0 is the host (every buffer type that
 * lives in host memory, pinned CUDA_Host buffers included), then the model's devices. */
struct device_bytes {
    ggml_backend_dev_t device = nullptr;
    uint64_t model = 0, context = 0, compute = 0;
};

int find_or_add(hr_engine_estimate *out, device_bytes *bytes, ggml_backend_dev_t device)
{
    for (size_t i = 1; i < out->n_devices; i++)
        if (bytes[i].device == device) return (int)i;
    if (out->n_devices >= HR_ENGINE_MAX_DEVICES) return -1;
    size_t i = out->n_devices++;
    bytes[i].device = device;
    hr_engine_device_estimate *d = &out->devices[i];
    enum ggml_backend_dev_type type = ggml_backend_dev_type(device);
    d->is_gpu = type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU;
    snprintf(d->name, sizeof d->name, "%s (%s)", ggml_backend_dev_name(device),
             ggml_backend_dev_description(device));
    size_t free_bytes = 0, total_bytes = 0;
    ggml_backend_dev_memory(device, &free_bytes, &total_bytes);
    d->memory_free_bytes = free_bytes;
    d->memory_total_bytes = total_bytes;
    return (int)i;
}

void collect(const llama_context *context, hr_engine_estimate *out, device_bytes *bytes)
{
    for (const auto &entry : llama_get_memory_breakdown(context)) {
        ggml_backend_buffer_type_t buffer_type = entry.first;
        const llama_memory_breakdown_data &data = entry.second;
        int i = 0;
        if (!ggml_backend_buft_is_host(buffer_type)) {
            ggml_backend_dev_t device = ggml_backend_buft_get_device(buffer_type);
            if (!device) continue;
            i = find_or_add(out, bytes, device);
            if (i < 0) continue;
        }
        bytes[i].model += data.model;
        bytes[i].context += data.context;
        bytes[i].compute += data.compute;
    }
}

int estimate(const char *path, const hr_engine_estimate_params *params, const hr_llama_file_facts *facts,
             hr_engine_estimate *out)
{
    llama_model_params model_params = hr_llama_model_params(&params->load);
    model_params.no_alloc = true;                    /* describe the tensors, allocate nothing */
    model_params.load_mode = LLAMA_LOAD_MODE_NONE;   /* as common/fit.cpp: no mapping to set up */
    hr_llama_clear_last_error();
    model_ptr model(llama_model_load_from_file(path, model_params));
    if (!model) {
        const char *why = hr_llama_last_error();
        return hr_fail(HR_EENGINE, "llama.cpp could not read %s for an estimate%s%s", path, why[0] ? ": " : "", why);
    }
    int32_t n_ctx_train = llama_model_n_ctx_train(model.get());
    llama_context_params context_params;
    int rc = hr_llama_context_params(&params->load, n_ctx_train, &context_params);
    if (rc != HR_OK) return rc;

    memset(out, 0, sizeof *out);
    snprintf(out->method, sizeof out->method, "engine");
    snprintf(out->devices[0].name, sizeof out->devices[0].name, "CPU");
    out->n_devices = 1;
    out->n_params = llama_model_n_params(model.get());
    out->weight_bytes = llama_model_size(model.get());
    out->file_bytes = facts->file_bytes;
    out->n_layer = llama_model_n_layer(model.get());
    out->n_ctx_train = n_ctx_train;

    device_bytes bytes[HR_ENGINE_MAX_DEVICES];
    hr_llama_clear_last_error();
    {
        context_ptr context(llama_init_from_model(model.get(), context_params));
        if (!context) {
            const char *why = hr_llama_last_error();
            return hr_fail(HR_EENGINE, "llama.cpp could not plan a context window of %u tokens for %s%s%s",
                           context_params.n_ctx, path, why[0] ? ": " : "", why);
        }
        /* per sequence: the window holds n_seq_max of them, and the KV bytes are for all */
        out->n_ctx = (int32_t)(llama_n_ctx(context.get()) / llama_n_seq_max(context.get()));
        out->n_batch = (int32_t)llama_n_batch(context.get());
        collect(context.get(), out, bytes);
    }

    /* A second plan 1024 tokens longer gives how the KV cache and the scratch buffers grow with
     * the context, so the policy can say which context would fit. */
    device_bytes longer[HR_ENGINE_MAX_DEVICES];
    for (size_t i = 1; i < out->n_devices; i++) longer[i].device = bytes[i].device;
    uint32_t n_seq = context_params.n_seq_max > 0 ? context_params.n_seq_max : 1;
    context_params.n_ctx = ((uint32_t)out->n_ctx + 1024) * n_seq;
    context_ptr context(llama_init_from_model(model.get(), context_params));
    uint32_t longer_ctx = context ? llama_n_ctx(context.get()) / llama_n_seq_max(context.get()) : 0;
    if (context) {
        size_t known = out->n_devices;
        collect(context.get(), out, longer);
        out->n_devices = known;   /* the longer plan uses the same devices */
    }

    for (size_t i = 0; i < out->n_devices; i++) {
        hr_engine_device_estimate *d = &out->devices[i];
        d->weights_bytes = bytes[i].model;
        d->kv_bytes = bytes[i].context;
        d->compute_bytes = bytes[i].compute;
        if (longer_ctx > (uint32_t)out->n_ctx) {
            uint64_t extra = longer_ctx - (uint32_t)out->n_ctx;
            if (longer[i].context > bytes[i].context)
                d->kv_bytes_per_token = (longer[i].context - bytes[i].context + extra - 1) / extra;
            if (longer[i].compute > bytes[i].compute)
                d->compute_bytes_per_token = (longer[i].compute - bytes[i].compute + extra - 1) / extra;
        } else if (out->n_ctx > 0) {
            d->kv_bytes_per_token = (d->kv_bytes + (uint64_t)out->n_ctx - 1) / (uint64_t)out->n_ctx;
        }
    }
    out->devices[0].overhead_bytes = hr_llama_overhead_bytes(facts->n_tokens, facts->n_merges);
    return HR_OK;
}

} // namespace

extern "C" bool hr_llama_have_dry_run(void)
{
    return true;
}

extern "C" int hr_llama_dry_run_estimate(const char *path, const hr_engine_estimate_params *params,
                                         const hr_llama_file_facts *facts, hr_engine_estimate *out)
{
    try {
        return estimate(path, params, facts, out);
    } catch (const std::bad_alloc &) {
        return hr_fail(HR_ENOMEM, "out of memory estimating what %s needs", path);
    } catch (const std::exception &e) {
        return hr_fail(HR_EENGINE, "llama.cpp failed estimating what %s needs: %s", path, e.what());
    }
}
