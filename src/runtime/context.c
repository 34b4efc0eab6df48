/*
 * context.c: creating and freeing hr_context, its default parameters, the version. The context
 * is the root every other object hangs off: creating it starts the hr-monitor thread (unless
 * params.monitor is false) and the registry, whose hr-lifecycle thread starts with the first
 * registered model; freeing it stops both, registry first.
 */
#include "runtime/context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "runtime/cache.h"
#include "runtime/monitor.h"
#include "runtime/registry.h"

HR_API const char *hr_version(void)
{
    return HEADROOM_VERSION;
}

HR_API hr_context_params hr_context_default_params(void)
{
    hr_context_params params = {
        .log_fn = NULL,
        .log_user_data = NULL,
        .log_level = HR_LOG_WARN,
        .monitor = true,
        .thresholds = hr_pressure_thresholds_default(),
        .sample_interval_min = 0.02,
        .sample_interval_max = 0,   /* automatic: see headroom.h */
        .metrics_capacity = 100,
        .keep_alive = 600,
        .pressure_actions = true,
        .critical_cancel_priority = 0,
        .guard = true,
        .fallback = { .extended_sampling = true },
        .cache_dir = NULL,
        .cache_budget_bytes = 0,
    };
    return params;
}

HR_API int hr_context_create(const hr_context_params *params, hr_context **out)
{
    hr_clear_error();
    if (!out) return hr_fail(HR_EINVAL, "hr_context_create: out is NULL");
    *out = NULL;
    hr_context_params checked = params ? *params : hr_context_default_params();
    if (checked.metrics_capacity < 0 || checked.metrics_capacity > 1000000)
        return hr_fail(HR_EINVAL, "metrics_capacity %d is out of range: use 0 to 1000000",
                       checked.metrics_capacity);
    if (isnan(checked.keep_alive))
        return hr_fail(HR_EINVAL, "keep_alive is not a number: use seconds, 0, or a negative value for never");
    if (!isfinite(checked.keep_alive) || checked.keep_alive > HR_KEEP_ALIVE_MAX)
        return hr_fail(HR_EINVAL, "keep_alive %g is too long: at most 100 years (%.0f s); use a negative "
                       "value (never) to keep models loaded for ever", checked.keep_alive, HR_KEEP_ALIVE_MAX);
    hr_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return hr_fail(HR_ENOMEM, "out of memory creating a context");
    ctx->params = checked;
    if (ctx->params.metrics_capacity > 0) {
        ctx->metrics = calloc((size_t)ctx->params.metrics_capacity, sizeof *ctx->metrics);
        if (!ctx->metrics) {
            free(ctx);
            return hr_fail(HR_ENOMEM, "out of memory for the metrics ring");
        }
    }
    pthread_mutex_init(&ctx->metrics_lock, NULL);
    /* decided once, so every call on this context agrees on where its cache is */
    ctx->cache_root = hr_cache_resolve_root(checked.cache_dir);
    ctx->params.cache_dir = ctx->cache_root;
    ctx->cache_budget_bytes = checked.cache_budget_bytes ? checked.cache_budget_bytes : HR_CACHE_DEFAULT_BUDGET;
    /* the fall-back's strings are the caller's: keep copies for the context's life */
    const char *fallback[3] = { checked.fallback.url, checked.fallback.model, checked.fallback.api_key };
    const char **targets[3] = { &ctx->params.fallback.url, &ctx->params.fallback.model, &ctx->params.fallback.api_key };
    for (int i = 0; i < 3; i++) {
        ctx->fallback_strings[i] = fallback[i] ? strdup(fallback[i]) : NULL;
        *targets[i] = ctx->fallback_strings[i];
    }
    ctx->engine = hr_engine_llama();
    hr_events_init(&ctx->events);
    pthread_mutex_init(&ctx->check_lock, NULL);
    if (ctx->params.log_fn)
        hr_log_set_sink(ctx->params.log_fn, ctx->params.log_user_data, ctx->params.log_level);
    if (ctx->params.monitor) {
        hr_monitor_params monitor = {
            .thresholds = ctx->params.thresholds,
            .interval_min = ctx->params.sample_interval_min,
            .interval_max = ctx->params.sample_interval_max,
            .events = &ctx->events,
        };
        int rc = hr_monitor_start(&monitor, &ctx->monitor);
        if (rc != HR_OK) {
            hr_context_free(ctx);
            return rc;
        }
    }
    int rc = hr_registry_create(ctx, &ctx->registry);
    if (rc != HR_OK) {
        hr_context_free(ctx);
        return rc;
    }
    *out = ctx;
    return HR_OK;
}

void hr_context_use_engine(hr_context *ctx, const hr_engine_ops *engine)
{
    ctx->engine = engine;
}

HR_API void hr_context_free(hr_context *ctx)
{
    if (!ctx) return;
    hr_registry_destroy(ctx->registry);   /* first: its thread reads the monitor */
    hr_monitor_stop(ctx->monitor);
    if (ctx->params.log_fn) hr_log_clear_sink(ctx->params.log_fn, ctx->params.log_user_data);
    hr_events_destroy(&ctx->events);
    pthread_mutex_destroy(&ctx->check_lock);
    pthread_mutex_destroy(&ctx->metrics_lock);
    free(ctx->metrics);
    free(ctx->cache_root);
    for (int i = 0; i < 3; i++) free(ctx->fallback_strings[i]);
    free(ctx);
}
