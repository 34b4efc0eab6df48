/*
 * models.c: the catalogue of models headroomd may serve: loaded on first use, marked in use
 * while a request runs, unloaded when their keep-alive expires. Requests never name a path:
 * only the files given by --model and found in --models-dir can be served.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "server.h"

server_model *server_find_model(server *srv, const char *name)
{
    if (!name) return NULL;
    char wanted[256];
    snprintf(wanted, sizeof wanted, "%s", name);
    /* Ollama clients say "name:latest"; some say the file name */
    size_t length = strlen(wanted);
    if (length > 7 && strcmp(wanted + length - 7, ":latest") == 0) wanted[length - 7] = '\0';
    length = strlen(wanted);
    if (length > 5 && strcmp(wanted + length - 5, ".gguf") == 0) wanted[length - 5] = '\0';
    for (int i = 0; i < srv->n_models; i++)
        if (strcmp(srv->models[i].name, wanted) == 0) return &srv->models[i];
    return NULL;
}

hr_model *server_use_model(request *r, server_model *m, enum MHD_Result *reply)
{
    server *srv = r->srv;
    pthread_mutex_lock(&m->lock);   /* a second request for a model being loaded waits here */
    if (!m->model) {
        hr_model_params params = hr_model_default_params();
        params.n_ctx = srv->config.ctx_size;
        params.n_threads = srv->config.threads;
        int rc = hr_model_load(srv->ctx, m->path, &params, &m->model);
        if (rc != HR_OK) {
            pthread_mutex_unlock(&m->lock);
            *reply = reply_library_error(r, rc == HR_ENOENT ? HR_EIO : rc);   /* a catalogued file vanished: 500 */
            return NULL;
        }
        m->loaded_at = wall_seconds();
    }
    m->active++;
    m->last_used = wall_seconds();
    m->expires_at = 0;
    hr_model *model = m->model;
    pthread_mutex_unlock(&m->lock);
    return model;
}

void server_release_model(server *srv, server_model *m, double keep_alive)
{
    if (isnan(keep_alive)) keep_alive = srv->config.keep_alive;
    pthread_mutex_lock(&m->lock);
    m->active--;
    m->last_used = wall_seconds();
    m->expires_at = keep_alive < 0 ? 0 : m->last_used + keep_alive;
    bool unload_now = keep_alive == 0 && m->active == 0 && m->model;
    hr_model *model = unload_now ? m->model : NULL;
    if (unload_now) m->model = NULL;
    pthread_mutex_unlock(&m->lock);
    hr_model_free(model);   /* keep_alive 0: unload after this request, as Ollama does */
}

int server_unload_model(server *srv, server_model *m)
{
    (void)srv;
    pthread_mutex_lock(&m->lock);
    if (m->active > 0) {
        pthread_mutex_unlock(&m->lock);
        return HR_EBUSY;
    }
    hr_model *model = m->model;
    m->model = NULL;
    m->expires_at = 0;
    pthread_mutex_unlock(&m->lock);
    hr_model_free(model);
    return HR_OK;
}

void server_expire_models(server *srv)
{
    double now = wall_seconds();
    for (int i = 0; i < srv->n_models; i++) {
        server_model *m = &srv->models[i];
        pthread_mutex_lock(&m->lock);
        bool expired = m->model && m->active == 0 && m->expires_at > 0 && now >= m->expires_at;
        hr_model *model = expired ? m->model : NULL;
        if (expired) {
            m->model = NULL;
            m->expires_at = 0;
        }
        pthread_mutex_unlock(&m->lock);
        hr_model_free(model);
    }
}
