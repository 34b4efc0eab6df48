/*
 * remote.c: a model that a remote OpenAI-compatible server serves (hr_model_load_remote), the
 * fall-back when a model cannot be loaded here. It is an hr_model like any other, on the remote
 * engine (engine/engine_remote.c), so hr_model_free, cancel and sessions need nothing new.
 */

#include "core/error.h"
#include "core/log.h"
#include "runtime/model.h"

HR_API hr_remote_params hr_remote_default_params(void)
{
    hr_remote_params params = {
        .url = NULL,
        .model = NULL,
        .api_key = NULL,
        .connect_timeout = 0,
        .timeout = 0,
        .extended_sampling = true,
    };
    return params;
}

HR_API int hr_model_load_remote(hr_context *ctx, const char *path, const hr_remote_params *remote,
                                hr_model **out)
{
    hr_clear_error();
    if (!out) return hr_fail(HR_EINVAL, "hr_model_load_remote: out is NULL");
    *out = NULL;
    if (!ctx || !remote) return hr_fail(HR_EINVAL, "hr_model_load_remote: context and remote are required");
    if (path && !path[0]) path = NULL;

    /* the path names the model in logs and metrics; without one, the remote model's name does */
    struct hr_model *model = hr_model_new(ctx, hr_engine_remote(), path ? path : remote->model ? remote->model : "");
    if (!model) return hr_fail(HR_ENOMEM, "out of memory opening the fall-back endpoint");
    model->remote = true;

    hr_engine_load_params load = {
        .abort_fn = hr_model_abort_requested,
        .abort_user_data = model,
        .remote = remote,
    };
    int rc = model->engine->load(path, &load, &model->engine_model);
    if (rc != HR_OK) {
        hr_log(HR_LOG_WARN, "opening the fall-back failed: %s", hr_last_error());
        hr_model_destroy(model);
        return rc;
    }
    hr_model_info info;
    hr_model_get_info(model, &info);
    hr_log(HR_LOG_INFO, "%s is served by the fall-back endpoint %s (model '%s')", model->name, info.endpoint,
           remote->model);
    *out = model;
    return HR_OK;
}
