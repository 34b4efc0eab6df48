/*
 * registry.c: the models of a context by name, their states (unloaded, loading, ready, busy,
 * unloading), use counts, pins and keep-alive deadlines, and the "hr-lifecycle" thread that
 * unloads expired models and carries out the pressure plan (policy/plan.c decides; this file
 * gathers the facts, acts and measures).
 *
 * Locking: `lock` guards the table and every entry's fields. Loading and unloading run outside
 * it, with the entry marked LOADING or UNLOADING so no one else touches its model; `changed` is
 * broadcast when such a step ends. Lock order: registry lock, then a model's queue lock (through
 * hr_model_work), then the monitor's lock. Events are published with no lock held, because a
 * subscriber may call back into the registry.
 */
#include "runtime/registry.h"

#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/context.h"
#include "core/error.h"
#include "core/log.h"
#include "policy/plan.h"
#include "probe/probe.h"
#include "runtime/cache.h"
#include "runtime/model.h"
#include "runtime/monitor.h"

enum { MAX_MODELS = 64 };

/* Seconds between pressure actions while pressure lasts: long enough for the monitor (which
 * samples every 20 ms while memory moves) to see what the last unload gave back. */
static const double PRESSURE_INTERVAL = 1.0;

/* A model the guard unloaded stays out at least this long, and until the binding scope has room
 * for its weights plus this share: loading it into the same shortage would thrash again. */
static const double GATE_SECONDS = 10.0;
static const double GATE_ROOM = 1.1;

struct entry {
    char name[128];
    char *path;
    hr_model_params params;
    enum hr_model_state state;
    hr_model *model;            /* non-NULL while ready, busy, or unloading */
    bool pinned;
    int32_t users;
    double keep_alive;          /* NAN: the context's */
    double next_keep_alive;     /* NAN, or what the last release asked for while others used it */
    double last_used;           /* monotonic */
    double last_used_wall;
    double expires_at;          /* monotonic; 0: no deadline */
    double loaded_at_wall;
    uint64_t weight_bytes;
    int32_t n_ctx;
    uint64_t rss_added;
    int32_t loads;
    bool cancelling;            /* its work was cancelled: unload when the last user releases */
    char unload_reason[160];    /* why, for that pending unload */
    char last_unload_reason[160];
    bool guard_freed;           /* the guard already unloaded other models for this load */
    double expected_speed;      /* the guard's healthy decode speed, kept across loads */
    bool remote;                /* loaded through the fall-back */
    bool gated;                 /* unloaded because it thrashed: kept out until memory allows */
    double gated_at;            /* monotonic */
    char gate_reason[320];
};

struct hr_registry {
    hr_context *ctx;
    pthread_mutex_t lock;
    pthread_cond_t changed;     /* a load or unload finished */
    pthread_cond_t wake;        /* news for the lifecycle thread (CLOCK_MONOTONIC) */
    struct entry *entries[MAX_MODELS];
    int n_entries;
    bool thread_started, stopping;
    pthread_t thread;
    int subscription;           /* pressure events wake the thread */
    bool caches_freed;          /* in the present pressure episode */
};

/* ---- small helpers ---------------------------------------------------------------------------- */

static double wall_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t process_rss(void)
{
    hr_process_memory self;
    return hr_self_read(NULL, &self) == HR_OK ? self.rss : 0;
}

static void levels(hr_context *ctx, hr_level *held, hr_level *fresh)
{
    *held = *fresh = HR_LEVEL_NORMAL;
    if (ctx->monitor && !hr_monitor_levels(ctx->monitor, held, fresh)) *held = *fresh = HR_LEVEL_NORMAL;
}

static void publish(hr_context *ctx, enum hr_event_type type, const char *model, const char *action,
                    const char *reason, int64_t bytes_freed)
{
    hr_level held, fresh;
    levels(ctx, &held, &fresh);
    hr_event event = {
        .type = type,
        .timestamp = hr_now_seconds(),
        .level = (enum hr_pressure_level)held,
        .previous_level = (enum hr_pressure_level)held,
        .reason = reason,
        .model = model,
        .action = action,
        .bytes_freed = bytes_freed,
    };
    hr_events_publish(&ctx->events, &event);
}

static double effective_keep_alive(const struct hr_registry *r, const struct entry *e)
{
    return isnan(e->keep_alive) ? r->ctx->params.keep_alive : e->keep_alive;
}

static struct entry *find(struct hr_registry *r, const char *name)
{
    for (int i = 0; i < r->n_entries; i++)
        if (strcmp(r->entries[i]->name, name) == 0) return r->entries[i];
    return NULL;
}

static struct entry *find_model(struct hr_registry *r, const hr_model *model)
{
    for (int i = 0; i < r->n_entries; i++)
        if (r->entries[i]->model == model && model) return r->entries[i];
    return NULL;
}

static struct hr_registry *registry_of(hr_context *ctx)
{
    return ctx ? ctx->registry : NULL;
}

/* ---- unloading ---------------------------------------------------------------------------------- */

/* Unloads an entry already marked UNLOADING: called without the lock. Returns the bytes of RSS
 * the process gave back, measured. */
static int64_t unload_marked(struct hr_registry *r, struct entry *e, const char *reason)
{
    hr_model *model = e->model;   /* stable: UNLOADING keeps everyone else off it */
    if (model->guard.expected > e->expected_speed) e->expected_speed = model->guard.expected;
    /* the live conversation goes to the cache, so that resuming it after a reload does not pay
     * for its prompt again (docs/cache.md); an unload never fails for want of a snapshot */
    bool saved = false;
    int saved_rc = hr_model_snapshot_save(model, &saved);
    if (saved_rc != HR_OK && saved_rc != HR_ENOTSUP)   /* ENOTSUP: a remote model holds no window */
        hr_log(HR_LOG_WARN, "%s: no KV snapshot saved: %s", e->name, hr_last_error());
    uint64_t before = process_rss();
    hr_model_free(model);
    malloc_trim(0);   /* hand freed heap back to the kernel, so the measure is what others can use */
    uint64_t after = process_rss();
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
    publish(r->ctx, HR_EVENT_MODEL, e->name, "unloaded", reason, freed);
    return freed;
}

/* headroom's caches: the page cache of its KV snapshot files and of model files that are not
 * loaded. Dropping it never hurts a running model and lets the kernel hand the pages to others
 * at once. */
static void free_caches(struct hr_registry *r, const char *reason)
{
    char *paths[MAX_MODELS];
    int n = 0;
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->n_entries; i++)
        if (r->entries[i]->state == HR_MODEL_UNLOADED) paths[n++] = strdup(r->entries[i]->path);
    pthread_mutex_unlock(&r->lock);
    uint64_t freed = 0;
    for (int i = 0; i < n; i++) {
        int fd = paths[i] ? open(paths[i], O_RDONLY | O_CLOEXEC) : -1;
        if (fd >= 0) {
            freed += hr_file_drop_page_cache(fd);
            close(fd);
        }
        free(paths[i]);
    }
    uint64_t snapshots = 0;
    if (hr_cache_release_memory(r->ctx, &snapshots) != HR_OK && hr_last_error()[0])
        hr_log(HR_LOG_DEBUG, "KV snapshot page cache not released: %s", hr_last_error());
    freed += snapshots;
    hr_log(HR_LOG_INFO, "freed headroom's caches (%s): %.1f MiB of page cache (KV snapshot files, model "
           "files not loaded)", reason, (double)freed / 1048576.0);
    publish(r->ctx, HR_EVENT_ACTION, NULL, "caches_freed", reason, (int64_t)freed);
}

/* ---- loading ------------------------------------------------------------------------------------ */

/* Unloads idle models other than `keep`, least recently used first; returns how many. Used by
 * the load path to make room before retrying. */
static int unload_idle_for(struct hr_registry *r, const struct entry *keep, const char *reason)
{
    int count = 0;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        struct entry *victim = NULL;
        for (int i = 0; i < r->n_entries; i++) {
            struct entry *e = r->entries[i];
            if (e == keep || e->state != HR_MODEL_READY || e->pinned || e->users > 0) continue;
            if (!victim || e->last_used < victim->last_used) victim = e;
        }
        if (victim) victim->state = HR_MODEL_UNLOADING;
        pthread_mutex_unlock(&r->lock);
        if (!victim) return count;
        unload_marked(r, victim, reason);
        count++;
    }
}

static bool fallback_configured(const hr_context *ctx)
{
    return ctx->params.fallback.url && ctx->params.fallback.url[0];
}

/* Records a model that was just loaded (locally or through the fall-back) and says so. */
static void record_load(struct hr_registry *r, struct entry *e, hr_model *model, uint64_t rss_added,
                        const char *reason)
{
    hr_model_info info;
    hr_model_get_info(model, &info);
    pthread_mutex_lock(&r->lock);
    e->weight_bytes = info.weight_bytes;
    e->n_ctx = info.n_ctx;
    e->guard_freed = false;
    e->remote = info.remote;
    model->guard.expected = e->expected_speed;   /* what it did here before */
    e->rss_added = rss_added;
    e->loads++;
    e->loaded_at_wall = wall_now();
    pthread_mutex_unlock(&r->lock);
    publish(r->ctx, HR_EVENT_MODEL, e->name, "loaded", reason, -(int64_t)rss_added);
}

/* Serves `e` through the configured fall-back, saying why the local model is not used. */
static int load_fallback(struct hr_registry *r, struct entry *e, hr_model **out, const char *why)
{
    hr_remote_params remote = r->ctx->params.fallback;
    if (!remote.model) remote.model = e->name;
    int rc = hr_model_load_remote(r->ctx, e->path, &remote, out);
    if (rc != HR_OK) {
        char problem[512];
        snprintf(problem, sizeof problem, "%s", hr_last_error());
        publish(r->ctx, HR_EVENT_MODEL, e->name, "load_failed", problem, 0);
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
static int load_marked(struct hr_registry *r, struct entry *e, hr_model **out)
{
    hr_context *ctx = r->ctx;
    hr_preflight_params pp = hr_preflight_default_params();
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
        if (unload_idle_for(r, e, why) > 0) rc = hr_preflight(ctx, e->path, &pp, &pf);
    }
    if (rc != HR_OK) {   /* a missing or broken file: the same sentence a load gives */
        char sentence[512];
        snprintf(sentence, sizeof sentence, "%s", hr_last_error());
        publish(ctx, HR_EVENT_MODEL, e->name, "load_failed", sentence, 0);
        hr_fail(rc, "%s", sentence);
        return rc;
    }
    if (pf.verdict == HR_VERDICT_REFUSE) {
        char why[1500];
        snprintf(why, sizeof why, "%s does not fit here: %s%s%s", e->name, pf.reason, pf.guidance[0] ? ". " : "",
                 pf.guidance);
        if (fallback_configured(ctx)) return load_fallback(r, e, out, why);
        publish(ctx, HR_EVENT_MODEL, e->name, "load_refused", why, 0);
        return hr_fail(HR_EMEMORY, "%s", why);
    }
    if (pf.verdict == HR_VERDICT_WARN) hr_log(HR_LOG_WARN, "%s: loading with little room: %s", e->name, pf.reason);

    uint64_t before = process_rss();
    rc = hr_model_load(ctx, e->path, &e->params, out);
    if (rc == HR_ENOMEM || rc == HR_EENGINE) {
        /* the engine could not get its memory: make room and try once more */
        char first[512];
        snprintf(first, sizeof first, "%s", hr_last_error());
        char reason[200];
        snprintf(reason, sizeof reason, "to make room for %s, whose load failed", e->name);
        if (unload_idle_for(r, e, reason) > 0) {
            hr_log(HR_LOG_WARN, "loading %s failed (%s); retrying after unloading idle models", e->name, first);
            before = process_rss();
            rc = hr_model_load(ctx, e->path, &e->params, out);
        } else {
            hr_fail(rc, "%s", first);
        }
    }
    if (rc != HR_OK) {
        char sentence[512];
        snprintf(sentence, sizeof sentence, "%s", hr_last_error());
        publish(ctx, HR_EVENT_MODEL, e->name, "load_failed", sentence, 0);
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
    uint64_t after = process_rss();
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

/* Refuses a load while pressure is critical; the sentence says why and what to do. */
static int refuse_under_pressure(hr_context *ctx, const char *name)
{
    hr_pressure p;
    if (!ctx->monitor || hr_pressure_check(ctx, &p) != HR_OK || p.level != HR_PRESSURE_CRITICAL) return HR_OK;
    char sentence[1200];
    snprintf(sentence, sizeof sentence,
             "not loading %s now: memory pressure is critical (%s; %.0f MiB available in %s). Retry "
             "when it has passed, close programs that use memory, or configure a fall-back endpoint",
             name, p.reason, (double)p.effective_available_bytes / 1048576.0, p.binding_scope);
    publish(ctx, HR_EVENT_MODEL, name, "load_refused", sentence, 0);
    return hr_fail(HR_EMEMORY, "%s", sentence);
}

/* A model the guard unloaded loads again only when the shortage that made it thrash is over. */
static int refuse_while_gated(struct hr_registry *r, struct entry *e)
{
    pthread_mutex_lock(&r->lock);
    bool gated = e->gated;
    double since = hr_now_seconds() - e->gated_at;
    uint64_t needs = (uint64_t)((double)e->weight_bytes * GATE_ROOM);
    char reason[sizeof e->gate_reason];
    snprintf(reason, sizeof reason, "%s", e->gate_reason);
    pthread_mutex_unlock(&r->lock);
    if (!gated) return HR_OK;
    hr_memory_status m;
    bool sampled = hr_memory_sample(r->ctx, &m) == HR_OK;
    uint64_t available = sampled ? m.effective_available_bytes : 0;
    if (since >= GATE_SECONDS && sampled && available >= needs) {
        pthread_mutex_lock(&r->lock);
        e->gated = false;
        pthread_mutex_unlock(&r->lock);
        return HR_OK;
    }
    char sentence[1000];
    snprintf(sentence, sizeof sentence,
             "not loading %s now: it was unloaded %.0f s ago because it thrashed (%s). It loads again when "
             "%s has %.0f MiB free for it (%.0f MiB now); retry later, close programs that use memory, or "
             "configure a fall-back endpoint", e->name, since, reason, sampled ? m.binding_scope : "memory",
             (double)needs / 1048576.0, (double)available / 1048576.0);
    publish(r->ctx, HR_EVENT_MODEL, e->name, "load_refused", sentence, 0);
    return hr_fail(HR_EMEMORY, "%s", sentence);
}

bool hr_registry_degraded(hr_context *ctx, hr_model *model, const char *reason)
{
    struct hr_registry *r = registry_of(ctx);
    if (!r) return false;
    pthread_mutex_lock(&r->lock);
    struct entry *e = find_model(r, model);
    if (!e || e->cancelling) {
        pthread_mutex_unlock(&r->lock);
        return false;
    }
    if (!e->guard_freed) {
        /* first, give it memory: idle models go, least recently used first */
        e->guard_freed = true;
        char why[200];
        snprintf(why, sizeof why, "to give memory to %s, which is thrashing", e->name);
        pthread_mutex_unlock(&r->lock);
        if (unload_idle_for(r, e, why) > 0) return true;
        pthread_mutex_lock(&r->lock);
        if (e->cancelling || e->model != model) {
            pthread_mutex_unlock(&r->lock);
            return false;
        }
    }
    e->cancelling = true;
    e->state = HR_MODEL_UNLOADING;
    e->gated = true;
    e->gated_at = hr_now_seconds();
    snprintf(e->gate_reason, sizeof e->gate_reason, "%s", reason);
    snprintf(e->unload_reason, sizeof e->unload_reason, "degraded: thrashing");
    char sentence[480];
    snprintf(sentence, sizeof sentence, "cancelled by headroom: %s is %s; it is unloaded to give the memory "
             "back. Retry later", e->name, reason);
    hr_model_cancel_work(model, sentence);
    char name[sizeof e->name];
    snprintf(name, sizeof name, "%s", e->name);
    pthread_mutex_unlock(&r->lock);
    publish(ctx, HR_EVENT_ACTION, name, "cancelled", reason, 0);
    return false;
}

/* ---- the lifecycle thread ---------------------------------------------------------------------- */

static void on_pressure(const hr_event *event, void *user_data)
{
    struct hr_registry *r = user_data;
    if (event->type != HR_EVENT_PRESSURE) return;
    pthread_mutex_lock(&r->lock);
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

/* Carries out one planned action; called with the lock held, returns with it held. */
static void act(struct hr_registry *r, const hr_plan_action *a, struct entry *e)
{
    if (a->kind == HR_PLAN_FREE_CACHES) {
        r->caches_freed = true;
        pthread_mutex_unlock(&r->lock);
        free_caches(r, a->reason);
        pthread_mutex_lock(&r->lock);
        return;
    }
    if (a->kind == HR_PLAN_UNLOAD_EXPIRED || a->kind == HR_PLAN_UNLOAD_IDLE) {
        /* still idle? a user may have taken it since the plan was made */
        if (e->state != HR_MODEL_READY || e->users > 0 || e->pinned) return;
        e->state = HR_MODEL_UNLOADING;
        pthread_mutex_unlock(&r->lock);
        unload_marked(r, e, a->reason);
        pthread_mutex_lock(&r->lock);
        return;
    }
    /* HR_PLAN_CANCEL_WORK */
    if (!e->model || e->cancelling || e->pinned) return;
    e->cancelling = true;
    e->state = HR_MODEL_UNLOADING;
    snprintf(e->unload_reason, sizeof e->unload_reason, "%s", a->reason);
    char sentence[400];
    snprintf(sentence, sizeof sentence, "cancelled by headroom: %s; %s is unloaded to give its memory "
             "back. Retry later, or with a higher priority", a->reason, e->name);
    hr_model_cancel_work(e->model, sentence);
    bool unused = e->users == 0;
    char name[sizeof e->name];
    snprintf(name, sizeof name, "%s", e->name);
    pthread_mutex_unlock(&r->lock);
    hr_log(HR_LOG_WARN, "cancelled the work on %s: %s", name, a->reason);
    publish(r->ctx, HR_EVENT_ACTION, name, "cancelled", a->reason, 0);
    if (unused) unload_marked(r, e, a->reason);
    pthread_mutex_lock(&r->lock);
}

static struct timespec monotonic_deadline(double when)
{
    struct timespec t;
    double whole = floor(when);
    t.tv_sec = (time_t)whole;
    t.tv_nsec = (long)((when - whole) * 1e9);
    return t;
}

static void *lifecycle_main(void *arg)
{
    struct hr_registry *r = arg;
    pthread_setname_np(pthread_self(), "hr-lifecycle");
    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        hr_plan_model models[MAX_MODELS];
        int n = r->n_entries;
        for (int i = 0; i < n; i++) {
            struct entry *e = r->entries[i];
            bool loaded = e->state == HR_MODEL_READY || e->state == HR_MODEL_BUSY;
            int32_t priority = 0;
            bool working = loaded && e->model && hr_model_work(e->model, &priority);
            models[i] = (hr_plan_model){
                .loaded = loaded,
                .pinned = e->pinned,
                .users = e->users,
                .working = working,
                .work_priority = priority,
                .cancelling = e->cancelling,
                .last_used = e->last_used,
                .expires_at = e->expires_at,
            };
        }
        hr_plan_input input = {
            .now = hr_now_seconds(),
            .pressure_actions = r->ctx->params.pressure_actions && r->ctx->monitor,
            .caches_freed = r->caches_freed,
            .critical_cancel_priority = r->ctx->params.critical_cancel_priority,
            .pressure_interval = PRESSURE_INTERVAL,
        };
        levels(r->ctx, &input.level, &input.fresh_level);
        if (input.level == HR_LEVEL_NORMAL) r->caches_freed = false;   /* the episode is over */
        hr_plan plan;
        hr_plan_compute(&input, models, n, &plan);
        for (int i = 0; i < plan.n_actions && !r->stopping; i++) {
            const hr_plan_action *a = &plan.actions[i];
            act(r, a, a->model >= 0 ? r->entries[a->model] : NULL);
        }
        if (r->stopping) break;
        if (plan.next_wake > 0) {
            struct timespec deadline = monotonic_deadline(plan.next_wake);
            pthread_cond_timedwait(&r->wake, &r->lock, &deadline);
        } else {
            pthread_cond_wait(&r->wake, &r->lock);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* Starts the thread with the first model; called with the lock held. */
static int start_thread(struct hr_registry *r)
{
    if (r->thread_started) return HR_OK;
    int rc = pthread_create(&r->thread, NULL, lifecycle_main, r);
    if (rc != 0) return hr_fail(HR_EIO, "cannot start the lifecycle thread: %s", strerror(rc));
    r->thread_started = true;
    return HR_OK;
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
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&r->wake, &attributes);
    pthread_condattr_destroy(&attributes);
    int rc = hr_events_subscribe(&ctx->events, on_pressure, r, &r->subscription);
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
        struct entry *e = r->entries[i];
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
    struct hr_registry *r = registry_of(ctx);
    if (!r || !name || !path) return hr_fail(HR_EINVAL, "hr_registry_add: context, name and path are required");
    size_t length = strlen(name);
    if (length == 0 || length >= sizeof ((struct entry *)0)->name)
        return hr_fail(HR_EINVAL, "model name \"%s\" must be 1 to %zu bytes", name,
                       sizeof ((struct entry *)0)->name - 1);
    if (!path[0]) return hr_fail(HR_EINVAL, "no model path given for %s", name);
    struct entry *e = calloc(1, sizeof *e);
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
    else rc = start_thread(r);
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
    struct hr_registry *r = registry_of(ctx);
    if (!r || !name) return hr_fail(HR_EINVAL, "hr_registry_acquire: context and name are required");
    pthread_mutex_lock(&r->lock);
    struct entry *e = find(r, name);
    if (!e) {
        pthread_mutex_unlock(&r->lock);
        return hr_fail(HR_ENOENT, "no model named %s in the registry", name);
    }
    for (;;) {
        if (e->state == HR_MODEL_READY || e->state == HR_MODEL_BUSY) {
            e->users++;
            e->state = HR_MODEL_BUSY;
            e->last_used = hr_now_seconds();
            e->last_used_wall = wall_now();
            e->expires_at = 0;
            *out = e->model;
            pthread_mutex_unlock(&r->lock);
            return HR_OK;
        }
        if (e->state == HR_MODEL_LOADING || e->state == HR_MODEL_UNLOADING) {
            pthread_cond_wait(&r->changed, &r->lock);
            continue;
        }
        /* unloaded: this caller loads it, the others wait for the outcome */
        e->state = HR_MODEL_LOADING;
        pthread_mutex_unlock(&r->lock);
        hr_model *model = NULL;
        int rc = refuse_while_gated(r, e);   /* first: its sentence is the more specific */
        if (rc == HR_OK) rc = refuse_under_pressure(ctx, e->name);
        if (rc == HR_OK) {
            rc = load_marked(r, e, &model);
        } else if (rc == HR_EMEMORY && fallback_configured(ctx)) {
            char why[1200];
            snprintf(why, sizeof why, "%s", hr_last_error());
            rc = load_fallback(r, e, &model, why);
        }
        pthread_mutex_lock(&r->lock);
        e->model = model;
        e->state = rc == HR_OK ? HR_MODEL_READY : HR_MODEL_UNLOADED;
        pthread_cond_broadcast(&r->changed);
        if (rc != HR_OK) {
            pthread_mutex_unlock(&r->lock);
            return rc;   /* the sentence is this thread's */
        }
    }
}

HR_API void hr_registry_release(hr_context *ctx, hr_model *model, double keep_alive)
{
    struct hr_registry *r = registry_of(ctx);
    if (!r || !model) return;
    pthread_mutex_lock(&r->lock);
    struct entry *e = find_model(r, model);
    if (!e || e->users <= 0) {
        pthread_mutex_unlock(&r->lock);
        hr_log(HR_LOG_ERROR, "hr_registry_release: the model is not in use through this registry");
        return;
    }
    e->users--;
    e->last_used = hr_now_seconds();
    e->last_used_wall = wall_now();
    if (!isnan(keep_alive)) e->next_keep_alive = keep_alive;
    if (e->users > 0) {
        pthread_mutex_unlock(&r->lock);
        return;
    }
    double chosen = isnan(e->next_keep_alive) ? effective_keep_alive(r, e) : e->next_keep_alive;
    e->next_keep_alive = NAN;
    char reason[160] = "";
    if (e->state == HR_MODEL_UNLOADING) {
        snprintf(reason, sizeof reason, "%s", e->unload_reason[0] ? e->unload_reason : "unloaded on request");
    } else if (chosen == 0 && !e->pinned) {
        e->state = HR_MODEL_UNLOADING;
        snprintf(reason, sizeof reason, "keep_alive 0: unloaded after its request");
    } else {
        e->state = HR_MODEL_READY;
        e->expires_at = chosen < 0 || e->pinned ? 0 : e->last_used + chosen;
        pthread_cond_signal(&r->wake);
    }
    pthread_mutex_unlock(&r->lock);
    if (!reason[0]) return;
    /* a release is often the last thing a caller does before it reports the generation's own
     * error: the unload must not replace that sentence with its own */
    char caller_sentence[1024];
    snprintf(caller_sentence, sizeof caller_sentence, "%s", hr_last_error());
    unload_marked(r, e, reason);
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
    struct hr_registry *r = registry_of(ctx);
    if (!r || !name) return hr_fail(HR_EINVAL, "hr_registry_unload: context and name are required");
    pthread_mutex_lock(&r->lock);
    struct entry *e = find(r, name);
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
    unload_marked(r, e, "unloaded on request");
    return HR_OK;
}

HR_API int hr_registry_pin(hr_context *ctx, const char *name, bool pinned)
{
    hr_clear_error();
    struct hr_registry *r = registry_of(ctx);
    if (!r || !name) return hr_fail(HR_EINVAL, "hr_registry_pin: context and name are required");
    pthread_mutex_lock(&r->lock);
    struct entry *e = find(r, name);
    if (e) {
        e->pinned = pinned;
        if (e->state == HR_MODEL_READY) {
            double keep = effective_keep_alive(r, e);
            e->expires_at = pinned || keep < 0 ? 0 : e->last_used + keep;
        }
        pthread_cond_signal(&r->wake);
    }
    pthread_mutex_unlock(&r->lock);
    return e ? HR_OK : hr_fail(HR_ENOENT, "no model named %s in the registry", name);
}

HR_API int hr_registry_set_keep_alive(hr_context *ctx, const char *name, double keep_alive)
{
    hr_clear_error();
    struct hr_registry *r = registry_of(ctx);
    if (!r || !name) return hr_fail(HR_EINVAL, "hr_registry_set_keep_alive: context and name are required");
    pthread_mutex_lock(&r->lock);
    struct entry *e = find(r, name);
    if (e) {
        e->keep_alive = keep_alive;
        if (e->state == HR_MODEL_READY) {
            double keep = effective_keep_alive(r, e);
            e->expires_at = e->pinned || keep < 0 ? 0 : e->last_used + keep;
        }
        pthread_cond_signal(&r->wake);
    }
    pthread_mutex_unlock(&r->lock);
    return e ? HR_OK : hr_fail(HR_ENOENT, "no model named %s in the registry", name);
}

HR_API int hr_registry_list(hr_context *ctx, hr_registry_entry **entries, size_t *count)
{
    hr_clear_error();
    struct hr_registry *r = registry_of(ctx);
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
    double now = hr_now_seconds(), wall = wall_now();
    for (int i = 0; i < n; i++) {
        const struct entry *e = r->entries[i];
        hr_registry_entry *out = &list[i];
        snprintf(out->name, sizeof out->name, "%s", e->name);
        snprintf(out->path, sizeof out->path, "%s", e->path);
        out->state = e->state;
        out->pinned = e->pinned;
        out->users = e->users;
        out->keep_alive = effective_keep_alive(r, e);
        out->loaded_at = e->model ? e->loaded_at_wall : 0;
        out->last_used_at = e->last_used_wall;
        out->expires_at = e->expires_at > 0 ? wall + (e->expires_at - now) : 0;
        out->weight_bytes = e->model ? e->weight_bytes : 0;
        out->n_ctx = e->model ? e->n_ctx : 0;
        snprintf(out->served_by, sizeof out->served_by, "%s", !e->model ? "" : e->remote ? "fallback" : "local");
        out->rss_bytes = e->model ? e->rss_added : 0;
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

/* Ollama's keep_alive: a number of seconds, or a Go duration ("5m", "1h30m", "300ms"); any
 * negative value means for ever. */
HR_API int hr_keep_alive_parse(const char *text, double *seconds)
{
    hr_clear_error();
    if (!text || !seconds) return hr_fail(HR_EINVAL, "hr_keep_alive_parse: text and seconds are required");
    if (strcmp(text, "never") == 0 || strcmp(text, "forever") == 0) {
        *seconds = -1;
        return HR_OK;
    }
    const char *p = text;
    bool negative = *p == '-';
    if (*p == '-' || *p == '+') p++;
    double total = 0;
    bool any = false, bad = false;
    while (*p && !bad) {
        char *end;
        double value = strtod(p, &end);
        if (end == p || !isfinite(value) || value < 0) break;
        p = end;
        double unit = 1;
        if (strncmp(p, "ms", 2) == 0) { unit = 0.001; p += 2; }
        else if (*p == 's') { p++; }
        else if (*p == 'm') { unit = 60; p++; }
        else if (*p == 'h') { unit = 3600; p++; }
        else if (*p != '\0' || any) { bad = true; break; }   /* a bare number only on its own */
        total += value * unit;
        any = true;
    }
    if (!any || bad || *p != '\0')
        return hr_fail(HR_EINVAL, "keep_alive \"%s\" is not a duration: use seconds (300), a duration "
                       "(30s, 5m, 1h, 1h30m), 0 to unload after the request, or -1 / never", text);
    *seconds = negative && total > 0 ? -1 : total;
    return HR_OK;
}
