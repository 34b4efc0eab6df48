/*
 * lifecycle.c: the hr-lifecycle thread. It gathers the registry's facts, asks policy/plan.c what
 * to do (expire keep-alives; under warn free headroom's caches, drop idle slots' KV, unload idle models; under
 * critical cancel low-priority work), carries the actions out and measures what they freed. It
 * sleeps until the plan's next deadline, a pressure event, or news from the registry.
 */
#include "runtime/registry_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "platform/platform.h"
#include "policy/plan.h"
#include "runtime/context.h"
#include "runtime/model.h"

/* Seconds between pressure actions while pressure lasts: long enough for the monitor (which
 * samples every 20 ms while memory moves) to see what the last unload gave back. */
static const double PRESSURE_INTERVAL = 1.0;

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
    hr_registry_publish(r->ctx, HR_EVENT_ACTION, NULL, "caches_freed", reason, (int64_t)freed);
}

void hr_lifecycle_on_pressure(const hr_event *event, void *user_data)
{
    struct hr_registry *r = user_data;
    if (event->type != HR_EVENT_PRESSURE) return;
    pthread_mutex_lock(&r->lock);
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

/* Carries out one planned action; called with the lock held, returns with it held. The plan was
 * made from facts gathered earlier, and an action before this one may have dropped the lock: so
 * each action checks again that its model is still in the state it was planned for. */
void hr_lifecycle_act(struct hr_registry *r, const hr_plan_action *a, struct model_entry *e)
{
    if (a->kind == HR_PLAN_FREE_CACHES) {
        r->caches_freed = true;
        pthread_mutex_unlock(&r->lock);
        free_caches(r, a->reason);
        pthread_mutex_lock(&r->lock);
        return;
    }
    if (a->kind == HR_PLAN_SHED_IDLE_KV) {
        bool loaded = e->state == HR_MODEL_READY || e->state == HR_MODEL_BUSY;
        if (!loaded || !e->model || e->cancelling || e->pinned) return;
        /* hr-worker does it between its steps: it owns the window while sessions run, and the
         * model is not freed before it stops, so nothing here waits on disk or a generation. */
        hr_model_request_shed(e->model, e->name, a->save_snapshots);
        return;
    }
    if (a->kind == HR_PLAN_UNLOAD_EXPIRED || a->kind == HR_PLAN_UNLOAD_IDLE) {
        /* still idle? a user may have taken it since the plan was made */
        if (e->state != HR_MODEL_READY || e->users > 0 || e->pinned) return;
        e->state = HR_MODEL_UNLOADING;
        pthread_mutex_unlock(&r->lock);
        hr_registry_unload_marked(r, e, a->reason);
        pthread_mutex_lock(&r->lock);
        return;
    }
    /* HR_PLAN_CANCEL_WORK. Still loaded? A release with keep_alive 0 or a manual unload may
     * have marked it UNLOADING since the plan: that thread unloads it, and cancelling its model
     * here, or unloading it a second time, would free the model twice or use it freed. */
    bool loaded = e->state == HR_MODEL_READY || e->state == HR_MODEL_BUSY;
    if (!loaded || !e->model || e->cancelling || e->pinned) return;
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
    hr_registry_publish(r->ctx, HR_EVENT_ACTION, name, "cancelled", a->reason, 0);
    if (unused) hr_registry_unload_marked(r, e, a->reason);
    pthread_mutex_lock(&r->lock);
}

static void *lifecycle_main(void *arg)
{
    struct hr_registry *r = arg;
    hr_thread_set_name("hr-lifecycle");
    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        hr_plan_model models[MAX_MODELS];
        int n = r->n_entries;
        enum hr_pressure_level level, fresh;
        hr_registry_levels(r->ctx, &level, &fresh);
        for (int i = 0; i < n; i++) {
            struct model_entry *e = r->entries[i];
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
                /* mincore over the slots' KV: only worth it while there is pressure */
                .idle_kv_bytes = loaded && e->model && level != HR_PRESSURE_NORMAL && fresh != HR_PRESSURE_NORMAL
                                     ? hr_model_idle_kv_bytes(e->model) : 0,
                .shed_pending = loaded && e->model && atomic_load(&e->model->shed_request) != 0,
            };
        }
        hr_plan_input input = {
            .now = hr_now_seconds(),
            .pressure_actions = r->ctx->params.pressure_actions && r->ctx->monitor,
            .caches_freed = r->caches_freed,
            .critical_cancel_priority = r->ctx->params.critical_cancel_priority,
            .pressure_interval = PRESSURE_INTERVAL,
        };
        input.level = level;
        input.fresh_level = fresh;
        if (input.level == HR_PRESSURE_NORMAL) r->caches_freed = false;   /* the episode is over */
        hr_plan plan;
        hr_plan_compute(&input, models, n, &plan);
        for (int i = 0; i < plan.n_actions && !r->stopping; i++) {
            const hr_plan_action *a = &plan.actions[i];
            hr_lifecycle_act(r, a, a->model >= 0 ? r->entries[a->model] : NULL);
        }
        if (r->stopping) break;
        if (plan.next_wake > 0) {
            hr_cond_wait_until(&r->wake, &r->lock, plan.next_wake);
        } else {
            pthread_cond_wait(&r->wake, &r->lock);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

int hr_lifecycle_start(struct hr_registry *r)
{
    if (r->thread_started) return HR_OK;
    int rc = pthread_create(&r->thread, NULL, lifecycle_main, r);
    if (rc != 0) return hr_fail(HR_EIO, "cannot start the lifecycle thread: %s", strerror(rc));
    r->thread_started = true;
    return HR_OK;
}
