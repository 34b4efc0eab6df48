/*
 * embed.c: embeddings of a loaded model (hr_model_embed): the engine computes them in a context
 * of its own; this room checks the call and measures what that context costs the process the
 * first time, so memory reports count it with the model.
 */
#include <limits.h>
#include <stdatomic.h>
#include <string.h>

#include "core/error.h"
#include "probe/probe.h"
#include "runtime/model.h"

static uint64_t process_rss(void)
{
    hr_process_memory self;
    return hr_self_read(NULL, &self) == HR_OK ? self.rss : 0;
}

HR_API hr_embed_params hr_embed_default_params(void)
{
    hr_embed_params params = { .normalize = true, .truncate = false };
    return params;
}

HR_API int hr_model_embed(hr_model *model, const char *text, const hr_embed_params *params, float *out,
                          size_t capacity, hr_embed_result *result)
{
    hr_clear_error();
    hr_embed_result local;
    if (!result) result = &local;
    memset(result, 0, sizeof *result);
    hr_embed_params defaults = hr_embed_default_params();
    if (!params) params = &defaults;
    if (!model || !text || !out) return hr_fail(HR_EINVAL, "hr_model_embed: model, text and out are required");
    if (!model->engine->embed)
        return hr_fail(HR_ENOTSUP, "the %s engine gives no embeddings%s", model->engine->name,
                       model->remote ? " (the remote fall-back serves generations only)" : "");
    uint64_t before = atomic_load(&model->embed_bytes) ? 0 : process_rss();
    bool created = false;
    int rc = model->engine->embed(model->engine_model, text, strlen(text), params->normalize, params->truncate, out,
                                  capacity > INT32_MAX ? INT32_MAX : (int32_t)capacity, &result->n_tokens,
                                  &result->input_tokens, &created);
    result->truncated = rc == HR_OK && result->input_tokens > result->n_tokens;
    if (created) {
        uint64_t after = process_rss();
        atomic_store(&model->embed_bytes, after > before ? after - before : 1);
    }
    return rc;
}
