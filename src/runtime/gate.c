/*
 * gate.c: the degradation guard's gate. When the guard (guard.c) finds a registry model
 * thrashing, hr_registry_degraded first unloads idle models to give it memory; if that was done
 * already, it cancels the model's work with the reason, unloads it when its users let go, and
 * keeps it out (hr_gate_check) until the binding scope has room for its weights.
 */
#include "runtime/registry_internal.h"

#include <stdio.h>

#include "core/error.h"
#include "runtime/context.h"
#include "runtime/model.h"

/* A model the guard unloaded stays out at least this long, and until the binding scope has room
 * for its weights plus this share: loading it into the same shortage would thrash again. */
static const double GATE_SECONDS = 10.0;
static const double GATE_ROOM = 1.1;

/* A model the guard unloaded loads again only when the shortage that made it thrash is over. */
int hr_gate_check(struct hr_registry *r, struct model_entry *e)
{
    pthread_mutex_lock(&r->lock);
    bool gated = e->gated;
    double since = hr_now_seconds() - e->gated_at;
    uint64_t needs = (uint64_t)((double)e->weight_bytes * GATE_ROOM);
    char reason[sizeof e->gate_reason];
    snprintf(reason, sizeof reason, "%s", e->gate_reason);
    pthread_mutex_unlock(&r->lock);
    if (!gated) return HR_OK;
    /* the weights it left in the page cache count: loading maps them again rather than allocating */
    hr_effective_memory m;
    uint64_t cached = 0;
    bool sampled = hr_preflight_memory_for(e->path, e->params.load_mode, &m, &cached) == HR_OK && m.known;
    uint64_t available = sampled ? m.binding.available : 0;
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
             "configure a fall-back endpoint", e->name, since, reason, sampled ? m.binding.name : "memory",
             (double)needs / 1048576.0, (double)available / 1048576.0);
    hr_registry_publish(r->ctx, HR_EVENT_MODEL, e->name, "load_refused", sentence, 0);
    return hr_fail(HR_EMEMORY, "%s", sentence);
}

bool hr_registry_degraded(hr_context *ctx, hr_model *model, const char *reason)
{
    struct hr_registry *r = hr_registry_of(ctx);
    if (!r) return false;
    pthread_mutex_lock(&r->lock);
    struct model_entry *e = hr_registry_find_model(r, model);
    /* not while another thread unloads it (a release with keep_alive 0, a manual unload) */
    if (!e || e->cancelling || (e->state != HR_MODEL_READY && e->state != HR_MODEL_BUSY)) {
        pthread_mutex_unlock(&r->lock);
        return false;
    }
    if (!e->guard_freed) {
        /* first, give it memory: idle models go, least recently used first */
        e->guard_freed = true;
        char why[200];
        snprintf(why, sizeof why, "to give memory to %s, which is thrashing", e->name);
        pthread_mutex_unlock(&r->lock);
        if (hr_registry_unload_idle(r, e, why) > 0) return true;
        pthread_mutex_lock(&r->lock);
        if (e->cancelling || e->model != model || (e->state != HR_MODEL_READY && e->state != HR_MODEL_BUSY)) {
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
    hr_registry_publish(ctx, HR_EVENT_ACTION, name, "cancelled", reason, 0);
    return false;
}
