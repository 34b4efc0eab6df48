/*
 * context.c: creating and freeing hr_context, default parameters, version, the clock.
 * The context is the root every other object hangs off; it starts no threads yet.
 */
#include "core/context.h"

#include <stdlib.h>
#include <time.h>

#include "core/error.h"
#include "core/log.h"

HR_API const char *hr_version(void)
{
    return HEADROOM_VERSION;
}

double hr_now_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

HR_API hr_context_params hr_context_default_params(void)
{
    hr_context_params params = {
        .log_fn = NULL,
        .log_user_data = NULL,
        .log_level = HR_LOG_WARN,
    };
    return params;
}

HR_API int hr_context_create(const hr_context_params *params, hr_context **out)
{
    hr_clear_error();
    if (!out) return hr_fail(HR_EINVAL, "hr_context_create: out is NULL");
    *out = NULL;
    hr_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return hr_fail(HR_ENOMEM, "out of memory creating a context");
    ctx->params = params ? *params : hr_context_default_params();
    ctx->engine = hr_engine_llama();
    if (ctx->params.log_fn)
        hr_log_set_sink(ctx->params.log_fn, ctx->params.log_user_data, ctx->params.log_level);
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
    if (ctx->params.log_fn) hr_log_clear_sink(ctx->params.log_fn, ctx->params.log_user_data);
    free(ctx);
}
