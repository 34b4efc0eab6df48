/*
 * shed.c: giving back the KV memory of a model's idle slots under pressure, before any model is
 * unloaded. A slot that runs nothing keeps its conversation's KV for the next prompt that shares
 * it; under warn it is saved to a snapshot (not under critical, when disk writes wait on memory)
 * and forgotten, and the engine hands its pages back (engine_llama_kv.c: forgetting the cells
 * alone frees nothing, the cache is allocated once). The model stays loaded.
 */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "runtime/model.h"
#include "runtime/registry_internal.h"
#include "runtime/session.h"

/* Below this a slot is not worth an event (a page or two a decode touched). */
static const uint64_t MIN_SLOT_BYTES = 256 * 1024;

static bool slot_idle(hr_model *model, int32_t i)
{
    pthread_mutex_lock(&model->queue_lock);
    bool idle = model->slots[i].session == NULL;
    pthread_mutex_unlock(&model->queue_lock);
    return idle;
}

uint64_t hr_model_idle_kv_bytes(hr_model *model)
{
    if (!model || !model->engine->seq_resident_bytes || !model->engine->seq_release) return 0;
    uint64_t total = 0;
    for (int32_t i = 0; i < model->n_slots; i++) {
        if (!slot_idle(model, i)) continue;
        uint64_t bytes = model->engine->seq_resident_bytes(model->engine_model, i);
        if (bytes >= MIN_SLOT_BYTES) total += bytes;
    }
    return total;
}

int hr_model_shed_idle_kv(hr_model *model, const char *name, bool snapshot, const char *reason, uint64_t *freed)
{
    *freed = 0;
    const hr_engine_ops *engine = model->engine;
    if (!engine->seq_resident_bytes || !engine->seq_release) return HR_OK;
    uint64_t before = hr_registry_process_rss();
    int32_t shed = 0, saved = 0, tokens = 0;
    uint64_t released = 0;
    for (int32_t i = 0; i < model->n_slots; i++) {
        struct hr_slot *slot = &model->slots[i];
        if (!slot_idle(model, i) || engine->seq_resident_bytes(model->engine_model, i) < MIN_SLOT_BYTES) continue;
        bool wrote = false;
        if (snapshot && slot->count > 0 && hr_model_snapshot_save_slot(model, i, &wrote) != HR_OK)
            hr_log(HR_LOG_WARN, "%s: slot %d's conversation was not saved before its KV was dropped: %s",
                   model->name, i, hr_last_error());
        saved += wrote || (snapshot && slot->saved);
        tokens += slot->count;
        uint64_t bytes = 0;
        if (engine->seq_release(model->engine_model, i, &bytes) != HR_OK)
            hr_log(HR_LOG_DEBUG, "%s: slot %d: %s", model->name, i, hr_last_error());
        slot->count = 0;   /* forgotten either way: the engine's sequence is empty */
        slot->saved = false;
        released += bytes;
        shed++;
    }
    if (shed == 0) return HR_OK;
    uint64_t after = hr_registry_process_rss();
    *freed = before > after ? before - after : 0;
    char why[320];
    snprintf(why, sizeof why, "%s: %d idle slot%s (%d cached tokens, %d saved to snapshots) dropped their KV cache",
             reason, shed, shed == 1 ? "" : "s", tokens, saved);
    if (!name) name = model->name;
    hr_log(HR_LOG_INFO, "%s: %s; %.1f MiB freed (%.1f MiB of KV pages given back)", name, why,
           (double)*freed / 1048576.0, (double)released / 1048576.0);
    hr_registry_publish(model->ctx, HR_EVENT_ACTION, name, "kv_shed", why, (int64_t)*freed);
    return HR_OK;
}

void hr_model_request_shed(hr_model *model, const char *name, bool snapshot)
{
    pthread_mutex_lock(&model->queue_lock);
    snprintf(model->shed_name, sizeof model->shed_name, "%s", name ? name : model->name);
    int rc = hr_model_start_worker_locked(model);   /* a model used only by hr_generate has none yet */
    pthread_mutex_unlock(&model->queue_lock);
    if (rc != HR_OK) hr_log(HR_LOG_WARN, "%s: idle slots' KV not dropped: %s", model->name, hr_last_error());
    atomic_store(&model->shed_request, snapshot ? 1 : 2);
    hr_model_wake(model);
}

void hr_model_take_shed_request(hr_model *model)
{
    int request = atomic_exchange(&model->shed_request, 0);
    if (request == 0) return;
    char name[sizeof model->shed_name];
    pthread_mutex_lock(&model->queue_lock);
    snprintf(name, sizeof name, "%s", model->shed_name);
    pthread_mutex_unlock(&model->queue_lock);
    uint64_t freed;
    hr_model_shed_idle_kv(model, name, request == 1,
                          request == 1 ? "memory pressure (warn)" : "memory pressure is critical", &freed);
}
