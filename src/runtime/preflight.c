/*
 * preflight.c: hr_preflight: the engine's estimate of a load (engine.h's estimate op) and a memory
 * sample taken now, handed to the pure policy (policy/preflight.c) for the verdict; and the
 * result as JSON. The gathering lives here; every decision lives in the policy.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "runtime/context.h"
#include "core/error.h"
#include "core/log.h"
#include "platform/platform.h"
#include "policy/preflight.h"
#include "probe/probe.h"

enum { MAX_CONTEXT_TOKENS = 1 << 20 };

HR_API const char *hr_verdict_name(enum hr_verdict verdict)
{
    return hr_preflight_verdict_name((hr_preflight_verdict)verdict);
}

HR_API hr_preflight_params hr_preflight_default_params(void)
{
    hr_preflight_params params = {
        .n_ctx = 0,
        .n_batch = 0,
        .n_gpu_layers = -1,
        .load_mode = HR_LOAD_AUTO,
        .type_k = NULL,
        .type_v = NULL,
        .min_total_bytes = 0,
        .recommended_total_bytes = 0,
        .min_free_bytes = 0,
        .fallback = NULL,
    };
    return params;
}

/* The same ranges hr_model_load accepts, so a preflight never approves a load that would fail
 * on its parameters. */
static int check_params(const hr_preflight_params *p)
{
    if (p->n_ctx < 0 || p->n_ctx > MAX_CONTEXT_TOKENS)
        return hr_fail(HR_EINVAL, "context size %d is out of range: use 0 (the model's own) up to %d",
                       p->n_ctx, MAX_CONTEXT_TOKENS);
    if (p->n_ctx > 0 && p->n_ctx < 16)
        return hr_fail(HR_EINVAL, "context size %d is too small: use at least 16 tokens", p->n_ctx);
    if (p->n_batch < 0 || p->n_batch > MAX_CONTEXT_TOKENS)
        return hr_fail(HR_EINVAL, "batch size %d is out of range", p->n_batch);
    if (p->n_gpu_layers < -1)
        return hr_fail(HR_EINVAL, "GPU layer count %d is out of range: use -1 (all that fit), 0 or more",
                       p->n_gpu_layers);
    if (p->load_mode < HR_LOAD_AUTO || p->load_mode > HR_LOAD_MLOCK)
        return hr_fail(HR_EINVAL, "unknown load mode %d", (int)p->load_mode);
    if (p->slots < 0 || p->slots > HR_MAX_SLOTS)
        return hr_fail(HR_EINVAL, "slots %d is out of range: use 0 (the default, %d) or 1 to %d", p->slots,
                       HR_DEFAULT_SLOTS, HR_MAX_SLOTS);
    return HR_OK;
}

static bool is_f16(const char *type)
{
    return !type || !type[0] || strcasecmp(type, "f16") == 0;
}

/* The host's figures come from the binding scope of a sample taken now; a GPU's from what its
 * driver told the engine. */
static void fill_input(const hr_context *ctx, const hr_engine_estimate *estimate, const hr_effective_memory *memory,
                       const hr_preflight_params *p, hr_preflight_input *in)
{
    memset(in, 0, sizeof *in);
    in->n_devices = estimate->n_devices < HR_PREFLIGHT_MAX_DEVICES ? estimate->n_devices : HR_PREFLIGHT_MAX_DEVICES;
    for (size_t i = 0; i < in->n_devices; i++) {
        const hr_engine_device_estimate *e = &estimate->devices[i];
        hr_preflight_device *d = &in->devices[i];
        snprintf(d->name, sizeof d->name, "%s", e->name);
        d->is_gpu = e->is_gpu;
        d->weights = e->weights_bytes;
        d->kv = e->kv_bytes;
        d->compute = e->compute_bytes;
        d->overhead = e->overhead_bytes;
        d->kv_per_token = e->kv_bytes_per_token;
        d->compute_per_token = e->compute_bytes_per_token;
        if (i == 0 && !e->is_gpu) {
            d->memory_known = memory->known;
            d->total = memory->binding.total;
            d->available = memory->binding.available;
            snprintf(d->scope, sizeof d->scope, "%s", memory->known ? memory->binding.name : "host");
        } else {
            d->memory_known = e->memory_total_bytes > 0;
            d->total = e->memory_total_bytes;
            d->available = e->memory_free_bytes;
            snprintf(d->scope, sizeof d->scope, "%s", e->name);
        }
    }
    in->n_ctx = estimate->n_ctx;
    in->n_ctx_train = estimate->n_ctx_train;
    in->n_params = estimate->n_params;
    in->weight_bytes = estimate->weight_bytes;
    in->kv_f16 = is_f16(p->type_k) && is_f16(p->type_v);
    in->min_total = p->min_total_bytes;
    in->recommended_total = p->recommended_total_bytes;
    in->min_free = p->min_free_bytes;
    in->critical_free_percent = ctx->params.thresholds.critical_free_percent;
    in->fallback = p->fallback;
}

static void fill_result(const hr_engine_estimate *estimate, const hr_preflight_input *in,
                        const hr_preflight_decision *decision, hr_preflight_result *out)
{
    memset(out, 0, sizeof *out);
    out->verdict = (enum hr_verdict)decision->verdict;
    out->total_bytes = decision->total;
    out->available_bytes = decision->available;
    out->missing_bytes = decision->missing;
    snprintf(out->binding_scope, sizeof out->binding_scope, "%.63s", decision->binding_scope);
    snprintf(out->method, sizeof out->method, "%s", estimate->method);
    out->n_ctx = estimate->n_ctx;
    out->max_ctx_that_fits = decision->max_ctx_that_fits;
    out->n_devices = in->n_devices < HR_MAX_DEVICES ? in->n_devices : HR_MAX_DEVICES;
    for (size_t i = 0; i < out->n_devices; i++) {
        const hr_preflight_device *d = &in->devices[i];
        hr_device_estimate *o = &out->devices[i];
        snprintf(o->name, sizeof o->name, "%s", d->name);
        o->is_gpu = d->is_gpu;
        o->weights_bytes = d->weights;
        o->kv_bytes = d->kv;
        o->compute_bytes = d->compute;
        o->overhead_bytes = d->overhead;
        o->total_bytes = hr_preflight_device_total(d);
        o->available_bytes = d->memory_known ? d->available : 0;
    }
    snprintf(out->reason, sizeof out->reason, "%s", decision->reason);
    snprintf(out->guidance, sizeof out->guidance, "%s", decision->guidance);
    out->min_total_bytes = decision->min_total;
    out->recommended_total_bytes = decision->recommended_total;
    out->min_free_bytes = decision->min_free;
    out->weight_bytes = estimate->weight_bytes;
    out->n_layer = estimate->n_layer;
    out->n_ctx_train = estimate->n_ctx_train;
}

uint64_t hr_preflight_file_cached(const char *path, enum hr_load_mode load_mode)
{
    if (load_mode == HR_LOAD_COPY) return 0;   /* a copy allocates every byte, cached or not */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    uint64_t resident = 0;
    if (!hr_file_resident_bytes(fd, &resident)) resident = 0;
    close(fd);
    return resident;
}

int hr_preflight_memory_for(const char *path, enum hr_load_mode load_mode, hr_effective_memory *out,
                            uint64_t *file_cached)
{
    memset(out, 0, sizeof *out);
    *file_cached = hr_preflight_file_cached(path, load_mode);
    hr_sample *sample = malloc(sizeof *sample);
    if (!sample) return hr_fail(HR_ENOMEM, "out of memory sampling memory for %s", path);
    hr_probe_sample(NULL, hr_now_seconds(), sample);
    hr_clear_error();   /* a broken optional source leaves the rest of the sample usable */
    hr_effective_memory_reusing(sample, *file_cached, out);
    free(sample);
    return HR_OK;
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

HR_API int hr_preflight(hr_context *ctx, const char *path, const hr_preflight_params *params,
                        hr_preflight_result *out)
{
    hr_clear_error();
    if (!out) return hr_fail(HR_EINVAL, "hr_preflight: out is NULL");
    memset(out, 0, sizeof *out);
    if (!ctx || !path) return hr_fail(HR_EINVAL, "hr_preflight: context and path are required");
    if (!path[0]) return hr_fail(HR_EINVAL, "no model path given");
    hr_preflight_params p = params ? *params : hr_preflight_default_params();
    int rc = check_params(&p);
    if (rc != HR_OK) return rc;
    if (!ctx->engine->estimate)
        return hr_fail(HR_ENOTSUP, "the %s engine cannot estimate what a model needs", ctx->engine->name);

    hr_engine_estimate_params estimate_params = {
        .load = {
            .n_ctx = p.n_ctx,
            .n_seq_max = p.slots > 0 ? p.slots : HR_DEFAULT_SLOTS,
            .n_batch = p.n_batch,
            .n_threads = online_cpus(),
            .n_gpu_layers = p.n_gpu_layers,
            .load_mode = p.load_mode,
            .type_k = p.type_k,
            .type_v = p.type_v,
        },
        .formula_only = false,
    };
    hr_engine_estimate estimate;
    rc = ctx->engine->estimate(path, &estimate_params, &estimate);
    if (rc != HR_OK) return rc;

    hr_preflight_input *input = malloc(sizeof *input);
    hr_preflight_decision *decision = malloc(sizeof *decision);
    hr_effective_memory memory;
    uint64_t file_cached = 0;
    if (!input || !decision || hr_preflight_memory_for(path, p.load_mode, &memory, &file_cached) != HR_OK) {
        free(input);
        free(decision);
        return hr_fail(HR_ENOMEM, "out of memory judging what %s needs", path);
    }
    fill_input(ctx, &estimate, &memory, &p, input);
    hr_preflight_decide(input, decision);
    fill_result(&estimate, input, decision, out);
    out->file_cached_bytes = file_cached;
    out->slots = estimate_params.load.n_seq_max;
    hr_log(HR_LOG_INFO, "preflight %s: %s by %s, %s (%.1f MiB of the file in the page cache)", path,
           hr_verdict_name(out->verdict), out->method, out->reason, (double)file_cached / 1048576.0);
    free(input);
    free(decision);
    return HR_OK;
}

HR_API char *hr_preflight_json(const hr_preflight_result *r)
{
    if (!r) return NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "verdict", hr_verdict_name(r->verdict));
    cJSON_AddNumberToObject(o, "total_bytes", (double)r->total_bytes);
    cJSON_AddNumberToObject(o, "available_bytes", (double)r->available_bytes);
    cJSON_AddNumberToObject(o, "missing_bytes", (double)r->missing_bytes);
    cJSON_AddStringToObject(o, "binding_scope", r->binding_scope);
    cJSON_AddStringToObject(o, "method", r->method);
    cJSON_AddNumberToObject(o, "n_ctx", r->n_ctx);
    cJSON_AddNumberToObject(o, "slots", r->slots);
    cJSON_AddNumberToObject(o, "max_ctx_that_fits", r->max_ctx_that_fits);
    cJSON_AddNumberToObject(o, "n_ctx_train", r->n_ctx_train);
    cJSON_AddNumberToObject(o, "n_layer", r->n_layer);
    cJSON_AddNumberToObject(o, "weight_bytes", (double)r->weight_bytes);
    cJSON_AddNumberToObject(o, "file_cached_bytes", (double)r->file_cached_bytes);
    cJSON_AddNumberToObject(o, "min_total_bytes", (double)r->min_total_bytes);
    cJSON_AddNumberToObject(o, "recommended_total_bytes", (double)r->recommended_total_bytes);
    cJSON_AddNumberToObject(o, "min_free_bytes", (double)r->min_free_bytes);
    cJSON *devices = cJSON_AddArrayToObject(o, "devices");
    for (size_t i = 0; devices && i < r->n_devices && i < HR_MAX_DEVICES; i++) {
        const hr_device_estimate *d = &r->devices[i];
        cJSON *device = cJSON_CreateObject();
        if (!device) break;
        cJSON_AddStringToObject(device, "name", d->name);
        cJSON_AddBoolToObject(device, "is_gpu", d->is_gpu);
        cJSON_AddNumberToObject(device, "weights_bytes", (double)d->weights_bytes);
        cJSON_AddNumberToObject(device, "kv_bytes", (double)d->kv_bytes);
        cJSON_AddNumberToObject(device, "compute_bytes", (double)d->compute_bytes);
        cJSON_AddNumberToObject(device, "overhead_bytes", (double)d->overhead_bytes);
        cJSON_AddNumberToObject(device, "total_bytes", (double)d->total_bytes);
        cJSON_AddNumberToObject(device, "available_bytes", (double)d->available_bytes);
        cJSON_AddItemToArray(devices, device);
    }
    cJSON_AddStringToObject(o, "reason", r->reason);
    cJSON_AddStringToObject(o, "guidance", r->guidance);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}
