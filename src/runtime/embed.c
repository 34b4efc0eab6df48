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

HR_API int hr_model_embed(hr_model *model, const char *text, bool normalize, float *out, size_t capacity,
                          int32_t *n_tokens)
{
    hr_clear_error();
    int32_t local_tokens;
    if (!n_tokens) n_tokens = &local_tokens;
    *n_tokens = 0;
    if (!model || !text || !out) return hr_fail(HR_EINVAL, "hr_model_embed: model, text and out are required");
    if (!model->engine->embed)
        return hr_fail(HR_ENOTSUP, "the %s engine gives no embeddings%s", model->engine->name,
                       model->remote ? " (the remote fall-back serves generations only)" : "");
    uint64_t before = atomic_load(&model->embed_bytes) ? 0 : process_rss();
    bool created = false;
    int rc = model->engine->embed(model->engine_model, text, strlen(text), normalize, out,
                                  capacity > INT32_MAX ? INT32_MAX : (int32_t)capacity, n_tokens, &created);
    if (created) {
        uint64_t after = process_rss();
        atomic_store(&model->embed_bytes, after > before ? after - before : 1);
    }
    return rc;
}
