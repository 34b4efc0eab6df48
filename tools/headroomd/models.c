/*
 * models.c: the catalogue of models headroomd may serve and its bridge to the library's model
 * registry, which loads them on first use, keeps them for their keep-alive, and unloads them
 * when it expires or memory pressure needs the room. Requests never name a path: only the
 * files given by --model and found in --models-dir can be served.
 */
#include <stdio.h>
#include <string.h>

#include "server.h"

server_model *server_find_model(server *srv, const char *name)
{
    if (!name) return NULL;
    char wanted[256];
    snprintf(wanted, sizeof wanted, "%s", name);
    /* Ollama clients say "name:latest"; some say the file name (never a path: that is not a name) */
    size_t length = strlen(wanted);
    if (length > 7 && strcmp(wanted + length - 7, ":latest") == 0) wanted[length - 7] = '\0';
    if (!strchr(wanted, '/')) hr_model_name_from_path(wanted, wanted, sizeof wanted);
    for (int i = 0; i < srv->n_models; i++)
        if (strcmp(srv->models[i].name, wanted) == 0) return &srv->models[i];
    return NULL;
}

/* Ollama's details of a model from its GGUF header; a file that cannot be read now keeps ""
 * (it fails with its reason when a request loads it). */
static void describe(server_model *m)
{
    m->family[0] = m->parameter_size[0] = m->quantization_level[0] = '\0';
    char *text = NULL;
    if (hr_model_file_metadata(m->path, &text) != HR_OK) return;
    cJSON *info = cJSON_Parse(text);
    hr_free(text);
    const cJSON *architecture = cJSON_GetObjectItemCaseSensitive(info, "general.architecture");
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(info, "general.parameter_count");
    const cJSON *level = cJSON_GetObjectItemCaseSensitive(info, "headroom.quantization_level");
    if (cJSON_IsString(architecture)) snprintf(m->family, sizeof m->family, "%s", architecture->valuestring);
    if (cJSON_IsString(level)) snprintf(m->quantization_level, sizeof m->quantization_level, "%s", level->valuestring);
    if (cJSON_IsNumber(count)) {
        double n = count->valuedouble;
        const char *unit = n >= 1e12 ? "T" : n >= 1e9 ? "B" : n >= 1e6 ? "M" : n >= 1e3 ? "K" : "";
        double scale = n >= 1e12 ? 1e12 : n >= 1e9 ? 1e9 : n >= 1e6 ? 1e6 : n >= 1e3 ? 1e3 : 1;
        snprintf(m->parameter_size, sizeof m->parameter_size, "%.*f%s", scale > 1 ? 1 : 0, n / scale, unit);
    }
    cJSON_Delete(info);
}

bool server_register_models(server *srv)
{
    hr_model_params params = hr_model_default_params();
    params.n_ctx = srv->config.ctx_size;
    params.n_threads = srv->config.threads;
    params.slots = srv->config.parallel;
    params.max_queued = srv->config.max_queue;
    for (int i = 0; i < srv->n_models; i++) {
        describe(&srv->models[i]);
        if (hr_registry_add(srv->ctx, srv->models[i].name, srv->models[i].path, &params) != HR_OK) {
            fprintf(stderr, "headroomd: %s\n", hr_last_error());
            return false;
        }
    }
    return true;
}

hr_model *server_use_model(request *r, server_model *m, enum MHD_Result *reply)
{
    hr_model *model = NULL;
    int rc = hr_registry_acquire(r->srv->ctx, m->name, &model);
    if (rc != HR_OK) {
        *reply = reply_library_error(r, rc == HR_ENOENT ? HR_EIO : rc);   /* a catalogued file vanished: 500 */
        return NULL;
    }
    r->model_name = m->name;   /* for /api/active */
    return model;
}

void server_release_model(server *srv, hr_model *model, double keep_alive)
{
    hr_registry_release(srv->ctx, model, keep_alive);
}
