/*
 * load.c: the load path (docs/lifecycle.md). Preflight; if it refuses, unload idle models and
 * ask again; load; if the engine fails for want of memory, unload idle models and retry once;
 * when the model cannot be had here, the configured fall-back serves it, and the event says so.
 * Loads are refused while pressure is critical and while the guard's gate (gate.c) holds a model.
 */
#include "runtime/registry_internal.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "runtime/context.h"
#include "runtime/model.h"

static bool fallback_configured(const hr_context *ctx)
{
    return ctx->params.fallback.url && ctx->params.fallback.url[0];
}

/* Records a model that was just loaded (locally or through the fall-back) and says so. */
static void record_load(struct hr_registry *r, struct model_entry *e, hr_model *model, uint64_t rss_added,
                        const char *reason)
{
    hr_model_info info;
    hr_model_get_info(model, &info);
    pthread_mutex_lock(&r->lock);
    e->weight_bytes = info.weight_bytes;
    e->n_ctx = info.n_ctx;
    e->slots = info.slots;
    e->guard_freed = false;
    e->remote = info.remote;
    model->guard.expected = e->expected_speed;   /* what it did here before */
    e->rss_added = rss_added;
    e->loads++;
    e->loaded_at_wall = hr_wall_seconds();
    pthread_mutex_unlock(&r->lock);
    hr_registry_publish(r->ctx, HR_EVENT_MODEL, e->name, "loaded", reason, -(int64_t)rss_added);
}

/* Serves `e` through the configured fall-back, saying why the local model is not used. */
static int load_fallback(struct hr_registry *r, struct model_entry *e, hr_model **out, const char *why)
{
    hr_remote_params remote = r->ctx->params.fallback;
    if (!remote.model) remote.model = e->name;
    int rc = hr_model_load_remote(r->ctx, e->path, &remote, out);
    if (rc != HR_OK) {
        char problem[512];
        snprintf(problem, sizeof problem, "%s", hr_last_error());
        hr_registry_publish(r->ctx, HR_EVENT_MODEL, e->name, "load_failed", problem, 0);
        return hr_fail(HR_EMEMORY, "%s; the fall-back %s could not serve it either: %s", why, remote.url, problem);
    }
    char reason[1200];
    snprintf(reason, sizeof reason, "served by the fall-back %s (model %s) because %s", remote.url, remote.model, why);
    hr_log(HR_LOG_WARN, "%s: %s", e->name, reason);
    record_load(r, e, *out, 0, reason);
    return HR_OK;
}

/* The load path (docs/lifecycle.md): preflight; if it refuses, unload idle models and ask
 * again; load; if the engine fails for want of memory, unload idle models and retry once;
 * when the model cannot be had here, the fall-back serves it if one is configured.
 * Called without the lock on an entry marked LOADING. */
/* Memory decides the parallelism: when the KV cache of the slots asked for does not fit, fewer
 * slots (each keeping its whole context) are tried before the load is refused. The first guess
 * takes away as many slots as the missing bytes are worth; preflight confirms it. Returns the
 * preflight's code; *pf and pp->slots end at the last count tried; `reason` says what changed. */
static int fit_slots(hr_context *ctx, struct model_entry *e, hr_preflight_params *pp, hr_preflight_result *pf,
                     char *reason, size_t size)
{
    int32_t asked = pp->slots;
    uint64_t kv_per_slot = 0;
    for (size_t i = 0; i < pf->n_devices; i++) kv_per_slot += pf->devices[i].kv_bytes;
    kv_per_slot /= (uint64_t)(asked > 0 ? asked : 1);
    uint64_t missing = pf->missing_bytes;
    int rc = HR_OK;
    /* Fewer slots save their KV and little else: where the bytes missing are more than twice the
     * KV of every slot but one, no count fits, and each preflight asked costs memory that is
     * short already (an engine estimate's allocations). */
    if (missing > 2 * kv_per_slot * (uint64_t)(asked > 1 ? asked - 1 : 0)) return HR_OK;
    while (pf->verdict == HR_VERDICT_REFUSE && pp->slots > 1 && kv_per_slot > 0) {
        int32_t fewer = pp->slots - 1;
        if (pf->missing_bytes > 0) {
            uint64_t over = (pf->missing_bytes + kv_per_slot - 1) / kv_per_slot;
            fewer = over >= (uint64_t)pp->slots ? 1 : pp->slots - (int32_t)over;
        }
        pp->slots = fewer;
        rc = hr_preflight(ctx, e->path, pp, pf);
        if (rc != HR_OK) return rc;
    }
    if (pp->slots != asked && pf->verdict != HR_VERDICT_REFUSE) {
        snprintf(reason, size, "%d slot%s instead of %d: the KV cache takes %.1f MiB per slot of %d tokens and "
                 "%.1f MiB were missing for %d (%s)", pp->slots, pp->slots == 1 ? "" : "s", asked,
                 (double)kv_per_slot / 1048576.0, pf->n_ctx, (double)missing / 1048576.0, asked, pf->binding_scope);
        hr_log(HR_LOG_WARN, "%s: %s", e->name, reason);
    }
    return rc;
}

static int load_marked(struct hr_registry *r, struct model_entry *e, hr_model **out)
{
    hr_context *ctx = r->ctx;
    hr_preflight_params pp = hr_preflight_default_params();
    pp.slots = e->params.slots > 0 ? e->params.slots : HR_DEFAULT_SLOTS;
    pp.n_ctx = e->params.n_ctx;
    pp.n_batch = e->params.n_batch;
    pp.n_gpu_layers = e->params.n_gpu_layers;
    pp.load_mode = e->params.load_mode;
    pp.type_k = e->params.type_k;
    pp.type_v = e->params.type_v;
    pp.fallback = ctx->params.fallback.url;
    hr_preflight_result pf;
    int rc = hr_preflight(ctx, e->path, &pp, &pf);
    if (rc == HR_OK && pf.verdict == HR_VERDICT_REFUSE) {
        char why[200];
        snprintf(why, sizeof why, "to make room for %s (preflight: %.0f MiB missing)", e->name,
                 (double)pf.missing_bytes / 1048576.0);
        if (hr_registry_unload_idle(r, e, why) > 0) rc = hr_preflight(ctx, e->path, &pp, &pf);
    }
    char slots_reason[320] = "";
    if (rc == HR_OK && pf.verdict == HR_VERDICT_REFUSE) rc = fit_slots(ctx, e, &pp, &pf, slots_reason, sizeof slots_reason);
    if (rc != HR_OK) {   /* a missing or broken file: the same sentence a load gives */
        char sentence[512];
        snprintf(sentence, sizeof sentence, "%s", hr_last_error());
        hr_registry_publish(ctx, HR_EVENT_MODEL, e->name, "load_failed", sentence, 0);
        hr_fail(rc, "%s", sentence);
        return rc;
    }
    if (pf.verdict == HR_VERDICT_REFUSE) {
        char why[1500];
        snprintf(why, sizeof why, "%s does not fit here: %s%s%s", e->name, pf.reason, pf.guidance[0] ? ". " : "",
                 pf.guidance);
        if (fallback_configured(ctx)) return load_fallback(r, e, out, why);
        hr_registry_publish(ctx, HR_EVENT_MODEL, e->name, "load_refused", why, 0);
        return hr_fail(HR_EMEMORY, "%s", why);
    }
    if (pf.verdict == HR_VERDICT_WARN) hr_log(HR_LOG_WARN, "%s: loading with little room: %s", e->name, pf.reason);

    hr_model_params load_params = e->params;
    load_params.slots = pp.slots;
    pthread_mutex_lock(&r->lock);
    snprintf(e->slots_reason, sizeof e->slots_reason, "%s", slots_reason);
    pthread_mutex_unlock(&r->lock);
    uint64_t before = hr_registry_process_rss();
    rc = hr_model_load(ctx, e->path, &load_params, out);
    if (rc == HR_ENOMEM || rc == HR_EENGINE) {
        /* the engine could not get its memory: make room and try once more */
        char first[512];
        snprintf(first, sizeof first, "%s", hr_last_error());
        char reason[200];
        snprintf(reason, sizeof reason, "to make room for %s, whose load failed", e->name);
        if (hr_registry_unload_idle(r, e, reason) > 0) {
            hr_log(HR_LOG_WARN, "loading %s failed (%s); retrying after unloading idle models", e->name, first);
            before = hr_registry_process_rss();
            rc = hr_model_load(ctx, e->path, &load_params, out);
        } else {
            hr_fail(rc, "%s", first);
        }
    }
    if (rc != HR_OK) {
        char sentence[512];
        snprintf(sentence, sizeof sentence, "%s", hr_last_error());
        hr_registry_publish(ctx, HR_EVENT_MODEL, e->name, "load_failed", sentence, 0);
        if (fallback_configured(ctx) && rc != HR_ENOENT && rc != HR_EACCES && rc != HR_EFORMAT) {
            char why[600];
            snprintf(why, sizeof why, "loading it here failed: %s", sentence);
            return load_fallback(r, e, out, why);
        }
        hr_fail(rc, "%s", sentence);
        return rc;
    }
    int restored = hr_model_snapshot_restore(*out);
    if (restored == HR_OK) hr_log(HR_LOG_INFO, "%s: its last conversation restored from a KV snapshot", e->name);
    else if (restored != HR_ENOENT && restored != HR_ENOTSUP)
        hr_log(HR_LOG_WARN, "%s: KV snapshot not restored: %s", e->name, hr_last_error());
    uint64_t after = hr_registry_process_rss();
    hr_model_info info;
    hr_model_get_info(*out, &info);
    /* placement: a GPU was there and meant to take every layer, but some stayed on the CPU */
    bool gpu = pf.n_devices > 1 && e->params.n_gpu_layers != 0;
    if (gpu && info.n_layer_gpu < info.n_layer)
        hr_log(HR_LOG_WARN, "%s: only %d of %d layers were placed on the GPU: decoding will be slower than the "
               "preflight assumed", e->name, info.n_layer_gpu, info.n_layer);
    char reason[160];
    snprintf(reason, sizeof reason, "load %d: process RSS grew %.1f MiB (preflight estimated %.1f MiB, %s)",
             e->loads + 1, ((double)after - (double)before) / 1048576.0, (double)pf.total_bytes / 1048576.0,
             hr_verdict_name(pf.verdict));
    record_load(r, e, *out, after > before ? after - before : 0, reason);
    return HR_OK;
}

/* Refuses a load while pressure is critical now; the sentence says why and what to do. The
 * level read now, not the held one: the hold keeps actions from flapping, but a load must be let
 * in as soon as the memory is back (within 2 s, docs/lifecycle.md), and the preflight that
 * follows still judges whether it fits. */
static int refuse_under_pressure(hr_context *ctx, const char *name)
{
    hr_pressure p;
    enum hr_pressure_level held, fresh;
    if (!ctx->monitor) return HR_OK;
    hr_registry_levels(ctx, &held, &fresh);
    if (fresh != HR_PRESSURE_CRITICAL || hr_pressure_check(ctx, &p) != HR_OK) return HR_OK;
    char sentence[1200];
    snprintf(sentence, sizeof sentence,
             "not loading %s now: memory pressure is critical (%s; %.0f MiB available in %s). Retry "
             "when it has passed, close programs that use memory, or configure a fall-back endpoint",
             name, p.reason, (double)p.effective_available_bytes / 1048576.0, p.binding_scope);
    hr_registry_publish(ctx, HR_EVENT_MODEL, name, "load_refused", sentence, 0);
    return hr_fail(HR_EMEMORY, "%s", sentence);
}

int hr_load_path_run(struct hr_registry *r, struct model_entry *e, hr_model **out)
{
    int rc = hr_gate_check(r, e);   /* first: its sentence is the more specific */
    if (rc == HR_OK) rc = refuse_under_pressure(r->ctx, e->name);
    if (rc == HR_OK) return load_marked(r, e, out);
    if (rc == HR_EMEMORY && fallback_configured(r->ctx)) {
        char why[1200];
        snprintf(why, sizeof why, "%s", hr_last_error());
        return load_fallback(r, e, out, why);
    }
    return rc;
}
