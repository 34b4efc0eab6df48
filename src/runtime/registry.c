/*
 * registry.c: the models of a context by name: their states (unloaded, loading, ready, busy,
 * unloading), use counts, pins and keep-alive, the public hr_registry_* calls, and the two steps
 * every other registry file takes: unloading a marked entry, and unloading idle models to make
 * room. The load path is in load.c, the guard's gate in gate.c, the hr-lifecycle thread in
 * lifecycle.c; registry_internal.h holds the table and its locking rules.
 */
#include "runtime/registry_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "core/log.h"
#include "platform/platform.h"
#include "probe/probe.h"
#include "runtime/context.h"
#include "runtime/model.h"
#include "runtime/monitor.h"

/* ---- small helpers ---------------------------------------------------------------------------- */

uint64_t hr_registry_process_rss(void)
{
    hr_process_memory self;
    return hr_self_read(NULL, &self) == HR_OK ? self.rss : 0;
}

void hr_registry_levels(hr_context *ctx, enum hr_pressure_level *held, enum hr_pressure_level *fresh)
{
    *held = *fresh = HR_PRESSURE_NORMAL;
    if (ctx->monitor && !hr_monitor_levels(ctx->monitor, held, fresh)) *held = *fresh = HR_PRESSURE_NORMAL;
}

void hr_registry_publish(hr_context *ctx, enum hr_event_type type, const char *model, const char *action,
                         const char *reason, int64_t bytes_freed)
{
    enum hr_pressure_level held, fresh;
    hr_registry_levels(ctx, &held, &fresh);
    hr_event event = {
        .type = type,
        .timestamp = hr_now_seconds(),
        .level = held,
        .previous_level = held,
        .reason = reason,
        .model = model,
        .action = action,
        .bytes_freed = bytes_freed,
    };
    hr_events_publish(&ctx->events, &event);
}

double hr_registry_keep_alive(const struct hr_registry *r, const struct model_entry *e)
{
    return isnan(e->keep_alive) ? r->ctx->params.keep_alive : e->keep_alive;
}

/* The monotonic deadline `keep` seconds after `from`; 0 (none) for never. A keep-alive that is
 * infinite or longer than HR_KEEP_ALIVE_MAX (a release's, which cannot be refused) is never too,
 * so no deadline is ever a number the clocks cannot hold. */
static double deadline_after(double from, double keep, bool pinned)
{
    if (pinned || !(keep >= 0) || keep > HR_KEEP_ALIVE_MAX) return 0;
    return from + keep;
}

static struct model_entry *find(struct hr_registry *r, const char *name)
{
    for (int i = 0; i < r->n_entries; i++)
        if (strcmp(r->entries[i]->name, name) == 0) return r->entries[i];
    return NULL;
}

struct model_entry *hr_registry_find_model(struct hr_registry *r, const hr_model *model)
{
    for (int i = 0; i < r->n_entries; i++)
        if (r->entries[i]->model == model && model) return r->entries[i];
    return NULL;
}

struct hr_registry *hr_registry_of(hr_context *ctx)
{
    return ctx ? ctx->registry : NULL;
}

void hr_registry_work_ended(hr_context *ctx)
{
    struct hr_registry *r = hr_registry_of(ctx);
    if (!r) return;
    pthread_mutex_lock(&r->lock);
    if (r->thread_started) pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

/* ---- unloading ---------------------------------------------------------------------------------- */

int64_t hr_registry_unload_marked(struct hr_registry *r, struct model_entry *e, const char *reason)
{
    hr_model *model = e->model;   /* stable: UNLOADING keeps everyone else off it */
    if (model->guard.expected > e->expected_speed) e->expected_speed = model->guard.expected;
    /* the live conversation goes to the cache, so that resuming it after a reload does not pay
     * for its prompt again (docs/cache.md); an unload never fails for want of a snapshot. Not
     * while pressure is critical: writing it would fill page cache in the scope that is short
     * and hold the memory back for the time its write and fsync take. */
    bool saved = false;
    enum hr_pressure_level held, fresh;
    hr_registry_levels(r->ctx, &held, &fresh);
    if (fresh == HR_PRESSURE_CRITICAL) {
        hr_log(HR_LOG_INFO, "%s: no KV snapshot saved: memory pressure is critical, and writing it would delay "
               "giving the memory back", e->name);
    } else {
        int saved_rc = hr_model_snapshot_save(model, &saved);
        if (saved_rc != HR_OK && saved_rc != HR_ENOTSUP)   /* ENOTSUP: a remote model holds no window */
            hr_log(HR_LOG_WARN, "%s: no KV snapshot saved: %s", e->name, hr_last_error());
    }
    uint64_t before = hr_registry_process_rss();
    hr_model_free(model);
    hr_heap_trim();   /* hand freed heap back to the kernel, so the measure is what others can use */
    uint64_t after = hr_registry_process_rss();
    int64_t freed = (int64_t)before - (int64_t)after;

    pthread_mutex_lock(&r->lock);
    e->model = NULL;
    e->state = HR_MODEL_UNLOADED;
    e->expires_at = 0;
    e->rss_added = 0;
    e->cancelling = false;
    e->unload_reason[0] = '\0';
    snprintf(e->last_unload_reason, sizeof e->last_unload_reason, "%s", reason);
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);

    hr_log(HR_LOG_INFO, "unloaded %s (%s): RSS %.1f -> %.1f MiB, %.1f MiB freed%s", e->name, reason,
           (double)before / 1048576.0, (double)after / 1048576.0, (double)freed / 1048576.0,
           saved ? "; its conversation kept as a KV snapshot" : "");
    hr_registry_publish(r->ctx, HR_EVENT_MODEL, e->name, "unloaded", reason, freed);
    return freed;
}

int hr_registry_unload_idle(struct hr_registry *r, const struct model_entry *keep, const char *reason)
{
    int count = 0;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        struct model_entry *victim = NULL;
        for (int i = 0; i < r->n_entries; i++) {
            struct model_entry *e = r->entries[i];
            if (e == keep || e->state != HR_MODEL_READY || e->pinned || e->users > 0) continue;
            if (!victim || e->last_used < victim->last_used) victim = e;
        }
        if (victim) victim->state = HR_MODEL_UNLOADING;
        pthread_mutex_unlock(&r->lock);
        if (!victim) return count;
        hr_registry_unload_marked(r, victim, reason);
        count++;
    }
}

/* ---- creating and destroying -------------------------------------------------------------------- */

int hr_registry_create(hr_context *ctx, struct hr_registry **out)
{
    struct hr_registry *r = calloc(1, sizeof *r);
    if (!r) return hr_fail(HR_ENOMEM, "out of memory creating the model registry");
    r->ctx = ctx;
    r->subscription = -1;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->changed, NULL);
    hr_cond_init_monotonic(&r->wake);
    int rc = hr_events_subscribe(&ctx->events, hr_lifecycle_on_pressure, r, &r->subscription);
    if (rc != HR_OK) {
        hr_registry_destroy(r);
        return rc;
    }
    *out = r;
    return HR_OK;
}

void hr_registry_destroy(struct hr_registry *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    pthread_cond_signal(&r->wake);
    bool started = r->thread_started;
    pthread_mutex_unlock(&r->lock);
    if (started) pthread_join(r->thread, NULL);
    if (r->subscription >= 0) hr_events_unsubscribe(&r->ctx->events, r->subscription);
    for (int i = 0; i < r->n_entries; i++) {
        struct model_entry *e = r->entries[i];
        if (e->users > 0) hr_log(HR_LOG_WARN, "%s was still in use when its context was freed", e->name);
        hr_model_free(e->model);   /* cancels what still runs on it */
        free(e->path);
        free(e);
    }
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->changed);
    pthread_cond_destroy(&r->wake);
    free(r);
}

/* ---- the public calls --------------------------------------------------------------------------- */

HR_API const char *hr_model_state_name(enum hr_model_state state)
{
    switch (state) {
    case HR_MODEL_UNLOADED: return "unloaded";
    case HR_MODEL_LOADING: return "loading";
    case HR_MODEL_READY: return "ready";
    case HR_MODEL_BUSY: return "busy";
    case HR_MODEL_UNLOADING: return "unloading";
    }
    return "unknown";
}

HR_API int hr_registry_add(hr_context *ctx, const char *name, const char *path, const hr_model_params *params)
{
    hr_clear_error();
    struct hr_registry *r = hr_registry_of(ctx);
    if (!r || !name || !path) return hr_fail(HR_EINVAL, "hr_registry_add: context, name and path are required");
    size_t length = strlen(name);
    if (length == 0 || length >= sizeof ((struct model_entry *)0)->name)
        return hr_fail(HR_EINVAL, "model name \"%s\" must be 1 to %zu bytes", name,
                       sizeof ((struct model_entry *)0)->name - 1);
    if (!path[0]) return hr_fail(HR_EINVAL, "no model path given for %s", name);
    struct model_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->path = strdup(path))) {
        free(e);
        return hr_fail(HR_ENOMEM, "out of memory adding %s", name);
    }
    snprintf(e->name, sizeof e->name, "%s", name);
    e->params = params ? *params : hr_model_default_params();
    e->params.progress_fn = NULL;
    e->params.progress_user_data = NULL;
    e->keep_alive = NAN;
    e->next_keep_alive = NAN;

    pthread_mutex_lock(&r->lock);
    int rc = HR_OK;
    if (find(r, name)) rc = hr_fail(HR_EINVAL, "a model named %s is already in the registry", name);
    else if (r->n_entries == MAX_MODELS) rc = hr_fail(HR_EINVAL, "the registry holds at most %d models", MAX_MODELS);
    else rc = hr_lifecycle_start(r);
    if (rc == HR_OK) r->entries[r->n_entries++] = e;
    pthread_mutex_unlock(&r->lock);
    if (rc != HR_OK) {
        free(e->path);
        free(e);
    }
    return rc;
}

HR_API int hr_registry_acquire(hr_context *ctx, const char *name, hr_model **out)
{
    hr_clear_error();
    if (!out) return hr_fail(HR_EINVAL, "hr_registry_acquire: out is NULL");
    *out = NULL;
    struct hr_registry *r = hr_registry_of(ctx);
    if (!r || !name) return hr_fail(HR_EINVAL, "hr_registry_acquire: context and name are required");
    pthread_mutex_lock(&r->lock);
    struct model_entry *e = find(r, name);
    if (!e) {
        pthread_mutex_unlock(&r->lock);
        return hr_fail(HR_ENOENT, "no model named %s in the registry", name);
    }
    uint64_t waited_for = 0;   /* the load attempt this caller waited on, if any */
    for (;;) {
        if (e->state == HR_MODEL_READY || e->state == HR_MODEL_BUSY) {
            e->users++;
            e->state = HR_MODEL_BUSY;
            e->last_used = hr_now_seconds();
            e->last_used_wall = hr_wall_seconds();
            e->expires_at = 0;
            *out = e->model;
            pthread_mutex_unlock(&r->lock);
            return HR_OK;
        }
        /* A load this caller waited on failed: its outcome is this caller's too. Running the
         * preflight and the load again for every waiter would only fail N times, one after
         * another, and publish N failures for one cause. A later request tries afresh. */
        if (waited_for && e->loads_finished >= waited_for && e->last_load_rc != HR_OK) {
            int rc = e->last_load_rc;
            char sentence[sizeof e->last_load_error];
            snprintf(sentence, sizeof sentence, "%s", e->last_load_error);
            pthread_mutex_unlock(&r->lock);
            return hr_fail(rc, "%s", sentence);
        }
        if (e->state == HR_MODEL_LOADING || e->state == HR_MODEL_UNLOADING) {
            if (e->state == HR_MODEL_LOADING && !waited_for) waited_for = e->loads_started;
            pthread_cond_wait(&r->changed, &r->lock);
            continue;
        }
        /* unloaded: this caller loads it, the others wait for the outcome */
        e->state = HR_MODEL_LOADING;
        uint64_t attempt = ++e->loads_started;
        pthread_mutex_unlock(&r->lock);
        hr_model *model = NULL;
        int rc = hr_load_path_run(r, e, &model);
        char sentence[sizeof e->last_load_error];
        snprintf(sentence, sizeof sentence, "%s", rc == HR_OK ? "" : hr_last_error());
        pthread_mutex_lock(&r->lock);
        e->model = model;
        e->state = rc == HR_OK ? HR_MODEL_READY : HR_MODEL_UNLOADED;
        e->loads_finished = attempt;
        e->last_load_rc = rc;
        snprintf(e->last_load_error, sizeof e->last_load_error, "%s", sentence);
        pthread_cond_broadcast(&r->changed);
        if (rc != HR_OK) {
            pthread_mutex_unlock(&r->lock);
            return hr_fail(rc, "%s", sentence);   /* the same sentence its waiters get */
        }
    }
}

HR_API void hr_registry_release(hr_context *ctx, hr_model *model, double keep_alive)
{
    struct hr_registry *r = hr_registry_of(ctx);
    if (!r || !model) return;
    pthread_mutex_lock(&r->lock);
    struct model_entry *e = hr_registry_find_model(r, model);
    if (!e || e->users <= 0) {
        pthread_mutex_unlock(&r->lock);
        hr_log(HR_LOG_ERROR, "hr_registry_release: the model is not in use through this registry");
        return;
    }
    e->users--;
    e->last_used = hr_now_seconds();
    e->last_used_wall = hr_wall_seconds();
    if (!isnan(keep_alive)) e->next_keep_alive = keep_alive;
    if (e->users > 0) {
        pthread_mutex_unlock(&r->lock);
        return;
    }
    double chosen = isnan(e->next_keep_alive) ? hr_registry_keep_alive(r, e) : e->next_keep_alive;
    e->next_keep_alive = NAN;
    char reason[160] = "";
    if (e->state == HR_MODEL_UNLOADING) {
        snprintf(reason, sizeof reason, "%s", e->unload_reason[0] ? e->unload_reason : "unloaded on request");
    } else if (chosen == 0 && !e->pinned) {
        e->state = HR_MODEL_UNLOADING;
        snprintf(reason, sizeof reason, "keep_alive 0: unloaded after its request");
    } else {
        e->state = HR_MODEL_READY;
        e->expires_at = deadline_after(e->last_used, chosen, e->pinned);
        pthread_cond_signal(&r->wake);
    }
    pthread_mutex_unlock(&r->lock);
    if (!reason[0]) return;
    /* a release is often the last thing a caller does before it reports the generation's own
     * error: the unload must not replace that sentence with its own */
    char caller_sentence[1024];
    snprintf(caller_sentence, sizeof caller_sentence, "%s", hr_last_error());
    hr_registry_unload_marked(r, e, reason);
    if (caller_sentence[0]) (void)hr_fail(HR_EINVAL, "%s", caller_sentence);   /* the code is not kept: only the sentence */
    else hr_clear_error();
}

HR_API int hr_registry_load(hr_context *ctx, const char *name)
{
    hr_model *model = NULL;
    int rc = hr_registry_acquire(ctx, name, &model);
    if (rc == HR_OK) hr_registry_release(ctx, model, NAN);
    return rc;
}

HR_API int hr_registry_unload(hr_context *ctx, const char *name, bool cancel)
{
    hr_clear_error();
    struct hr_registry *r = hr_registry_of(ctx);
    if (!r || !name) return hr_fail(HR_EINVAL, "hr_registry_unload: context and name are required");
    pthread_mutex_lock(&r->lock);
    struct model_entry *e = find(r, name);
    if (!e) {
        pthread_mutex_unlock(&r->lock);
        return hr_fail(HR_ENOENT, "no model named %s in the registry", name);
    }
    while (e->state == HR_MODEL_LOADING) pthread_cond_wait(&r->changed, &r->lock);
    if (e->state == HR_MODEL_UNLOADED || e->state == HR_MODEL_UNLOADING) {
        pthread_mutex_unlock(&r->lock);
        return HR_OK;
    }
    if (e->users > 0 && !cancel) {
        int users = e->users;
        pthread_mutex_unlock(&r->lock);
        return hr_fail(HR_EBUSY, "%s is in use by %d request%s; wait for %s, or cancel them", name, users,
                       users == 1 ? "" : "s", users == 1 ? "it" : "them");
    }
    e->state = HR_MODEL_UNLOADING;
    e->expires_at = 0;
    if (e->users > 0) {
        e->cancelling = true;
        snprintf(e->unload_reason, sizeof e->unload_reason, "unloaded on request");
        hr_model_cancel_work(e->model, "cancelled: the model was unloaded on request");
        pthread_mutex_unlock(&r->lock);
        return HR_OK;   /* the last release unloads it */
    }
    pthread_mutex_unlock(&r->lock);
    hr_registry_unload_marked(r, e, "unloaded on request");
    return HR_OK;
}

HR_API int hr_registry_pin(hr_context *ctx, const char *name, bool pinned)
{
    hr_clear_error();
    struct hr_registry *r = hr_registry_of(ctx);
    if (!r || !name) return hr_fail(HR_EINVAL, "hr_registry_pin: context and name are required");
    pthread_mutex_lock(&r->lock);
    struct model_entry *e = find(r, name);
    if (e) {
        e->pinned = pinned;
        if (e->state == HR_MODEL_READY) {
            double keep = hr_registry_keep_alive(r, e);
            e->expires_at = deadline_after(e->last_used, keep, pinned);
        }
        pthread_cond_signal(&r->wake);
    }
    pthread_mutex_unlock(&r->lock);
    return e ? HR_OK : hr_fail(HR_ENOENT, "no model named %s in the registry", name);
}

HR_API int hr_registry_set_keep_alive(hr_context *ctx, const char *name, double keep_alive)
{
    hr_clear_error();
    struct hr_registry *r = hr_registry_of(ctx);
    if (!r || !name) return hr_fail(HR_EINVAL, "hr_registry_set_keep_alive: context and name are required");
    if (!isnan(keep_alive) && (!isfinite(keep_alive) || keep_alive > HR_KEEP_ALIVE_MAX))
        return hr_fail(HR_EINVAL, "keep_alive %g for %s is too long: at most 100 years (%.0f s); use a "
                       "negative value (never) to keep it loaded for ever", keep_alive, name, HR_KEEP_ALIVE_MAX);
    pthread_mutex_lock(&r->lock);
    struct model_entry *e = find(r, name);
    if (e) {
        e->keep_alive = keep_alive;
        if (e->state == HR_MODEL_READY) {
            double keep = hr_registry_keep_alive(r, e);
            e->expires_at = deadline_after(e->last_used, keep, e->pinned);
        }
        pthread_cond_signal(&r->wake);
    }
    pthread_mutex_unlock(&r->lock);
    return e ? HR_OK : hr_fail(HR_ENOENT, "no model named %s in the registry", name);
}

HR_API int hr_registry_list(hr_context *ctx, hr_registry_entry **entries, size_t *count)
{
    hr_clear_error();
    struct hr_registry *r = hr_registry_of(ctx);
    if (!r || !entries || !count) return hr_fail(HR_EINVAL, "hr_registry_list: context, entries and count are required");
    *entries = NULL;
    *count = 0;
    pthread_mutex_lock(&r->lock);
    int n = r->n_entries;
    hr_registry_entry *list = calloc(n > 0 ? (size_t)n : 1, sizeof *list);
    if (!list) {
        pthread_mutex_unlock(&r->lock);
        return hr_fail(HR_ENOMEM, "out of memory listing the registry");
    }
    double now = hr_now_seconds(), wall = hr_wall_seconds();
    for (int i = 0; i < n; i++) {
        const struct model_entry *e = r->entries[i];
        hr_registry_entry *out = &list[i];
        snprintf(out->name, sizeof out->name, "%s", e->name);
        snprintf(out->path, sizeof out->path, "%s", e->path);
        out->state = e->state;
        out->pinned = e->pinned;
        out->users = e->users;
        out->keep_alive = hr_registry_keep_alive(r, e);
        out->loaded_at = e->model ? e->loaded_at_wall : 0;
        out->last_used_at = e->last_used_wall;
        out->expires_at = e->expires_at > 0 ? wall + (e->expires_at - now) : 0;
        out->weight_bytes = e->model ? e->weight_bytes : 0;
        out->n_ctx = e->model ? e->n_ctx : 0;
        out->slots = e->model ? e->slots : 0;
        out->max_queued = e->params.max_queued;
        /* the model itself is read only while ready or busy: an unloading one is freed outside
         * this lock */
        bool usable = e->model && (e->state == HR_MODEL_READY || e->state == HR_MODEL_BUSY);
        if (usable) {   /* the registry lock, then the model's queue lock: the lock order */
            pthread_mutex_lock(&e->model->queue_lock);
            hr_model_count_sessions(e->model, &out->running_sessions, &out->queued_sessions);
            pthread_mutex_unlock(&e->model->queue_lock);
        }
        snprintf(out->slots_reason, sizeof out->slots_reason, "%s", e->model ? e->slots_reason : "");
        snprintf(out->served_by, sizeof out->served_by, "%s", !e->model ? "" : e->remote ? "fallback" : "local");
        /* the load's, and the embedding context's once one was made */
        out->rss_bytes = e->model ? e->rss_added + (usable ? atomic_load(&e->model->embed_bytes) : 0) : 0;
        out->loads = e->loads;
        snprintf(out->last_unload_reason, sizeof out->last_unload_reason, "%s", e->last_unload_reason);
    }
    pthread_mutex_unlock(&r->lock);
    /* least recently used first: the order pressure unloads in (never used counts as oldest) */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && list[j].last_used_at < list[j - 1].last_used_at; j--) {
            hr_registry_entry t = list[j];
            list[j] = list[j - 1];
            list[j - 1] = t;
        }
    *entries = list;
    *count = (size_t)n;
    return HR_OK;
}

HR_API char *hr_registry_json(hr_context *ctx)
{
    hr_registry_entry *list = NULL;
    size_t n = 0;
    if (hr_registry_list(ctx, &list, &n) != HR_OK) return NULL;
    cJSON *array = cJSON_CreateArray();
    for (size_t i = 0; array && i < n; i++) {
        const hr_registry_entry *e = &list[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddItemToArray(array, o);
        cJSON_AddStringToObject(o, "name", e->name);
        cJSON_AddStringToObject(o, "path", e->path);
        cJSON_AddStringToObject(o, "state", hr_model_state_name(e->state));
        cJSON_AddBoolToObject(o, "pinned", e->pinned);
        cJSON_AddNumberToObject(o, "users", e->users);
        cJSON_AddNumberToObject(o, "keep_alive", e->keep_alive);
        cJSON_AddNumberToObject(o, "loaded_at", e->loaded_at);
        cJSON_AddNumberToObject(o, "last_used_at", e->last_used_at);
        cJSON_AddNumberToObject(o, "expires_at", e->expires_at);
        cJSON_AddNumberToObject(o, "weight_bytes", (double)e->weight_bytes);
        cJSON_AddNumberToObject(o, "n_ctx", e->n_ctx);
        cJSON_AddNumberToObject(o, "slots", e->slots);
        cJSON_AddStringToObject(o, "slots_reason", e->slots_reason);
        cJSON_AddNumberToObject(o, "running", e->running_sessions);
        cJSON_AddNumberToObject(o, "queued", e->queued_sessions);
        cJSON_AddNumberToObject(o, "max_queued", e->max_queued);
        cJSON_AddStringToObject(o, "served_by", e->served_by);
        cJSON_AddNumberToObject(o, "rss_bytes", (double)e->rss_bytes);
        cJSON_AddNumberToObject(o, "loads", e->loads);
        cJSON_AddStringToObject(o, "last_unload_reason", e->last_unload_reason);
    }
    free(list);
    char *text = array ? cJSON_PrintUnformatted(array) : NULL;
    cJSON_Delete(array);
    return text;
}
