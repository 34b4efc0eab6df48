/*
 * plan.c: what the lifecycle does next. Keep-alive deadlines unload idle models at any level.
 * Under pressure (warn or critical, as long as a fresh sample still shows it) the plan frees
 * headroom's own caches once per episode, then has loaded models' idle slots drop their KV (at
 * warn that step alone: the models stay loaded, and the next step sees whether it was enough),
 * then unloads idle models least recently used first:
 * one per step at warn (the next step sees whether that was enough), all of them at critical;
 * when nothing idle is left at critical, it cancels the lowest-priority work, whose model is
 * unloaded when its users let go. Pinned models are never touched.
 */
#include "policy/plan.h"

#include <stdio.h>
#include <string.h>

static bool idle(const hr_plan_model *m)
{
    return m->loaded && !m->pinned && m->users == 0 && !m->working && !m->cancelling;
}

static hr_plan_action *add(hr_plan *plan, hr_plan_kind kind, int model, const char *reason)
{
    if (plan->n_actions >= (int)(sizeof plan->actions / sizeof plan->actions[0])) return NULL;
    hr_plan_action *a = &plan->actions[plan->n_actions++];
    a->kind = kind;
    a->model = model;
    a->save_snapshots = false;
    snprintf(a->reason, sizeof a->reason, "%s", reason);
    return a;
}

static void wake_at(hr_plan *plan, double when)
{
    if (when > 0 && (plan->next_wake == 0 || when < plan->next_wake)) plan->next_wake = when;
}

static bool taken(const hr_plan *plan, int model)
{
    for (int a = 0; a < plan->n_actions; a++)
        if (plan->actions[a].model == model) return true;
    return false;
}

/* The idle model used least recently that no earlier action already takes; -1 if none. */
static int least_recently_used(const hr_plan *plan, const hr_plan_model *models, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (!idle(&models[i]) || taken(plan, i)) continue;
        if (best < 0 || models[i].last_used < models[best].last_used) best = i;
    }
    return best;
}

void hr_plan_compute(const hr_plan_input *in, const hr_plan_model *models, int n, hr_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    plan->refuse_loads = in->level == HR_PRESSURE_CRITICAL;

    for (int i = 0; i < n; i++) {
        const hr_plan_model *m = &models[i];
        if (!idle(m) || m->expires_at <= 0) continue;
        if (in->now >= m->expires_at) add(plan, HR_PLAN_UNLOAD_EXPIRED, i, "keep-alive expired");
        else wake_at(plan, m->expires_at);
    }

    enum hr_pressure_level level = in->level < in->fresh_level ? in->level : in->fresh_level;
    if (!in->pressure_actions || level == HR_PRESSURE_NORMAL) return;
    wake_at(plan, in->now + in->pressure_interval);
    bool critical = level == HR_PRESSURE_CRITICAL;
    const char *why = critical ? "memory pressure is critical" : "memory pressure (warn)";

    if (!in->caches_freed) add(plan, HR_PLAN_FREE_CACHES, -1, why);
    /* Idle slots' KV goes before any model: the model keeps serving, and a conversation comes
     * back from its snapshot or is read again. At critical only the models that are not
     * unloaded below anyway (those at work). */
    bool shed = false;
    for (int i = 0; i < n; i++) {
        const hr_plan_model *m = &models[i];
        if (!m->loaded || m->pinned || m->cancelling || m->idle_kv_bytes == 0 || m->shed_pending) continue;
        if ((critical && idle(m)) || taken(plan, i)) continue;
        hr_plan_action *a = add(plan, HR_PLAN_SHED_IDLE_KV, i, why);
        if (a) a->save_snapshots = !critical;
        shed = shed || a;
    }
    if (shed && !critical) return;
    for (;;) {
        int victim = least_recently_used(plan, models, n);
        if (victim < 0) break;
        if (!add(plan, HR_PLAN_UNLOAD_IDLE, victim, why)) break;   /* the plan is full */
        if (!critical) return;   /* warn: one at a time, then look again */
    }
    bool unloading = false;
    for (int a = 0; a < plan->n_actions; a++)
        if (plan->actions[a].kind == HR_PLAN_UNLOAD_EXPIRED || plan->actions[a].kind == HR_PLAN_UNLOAD_IDLE)
            unloading = true;
    if (!critical || unloading || in->critical_cancel_priority == INT32_MIN) return;

    int victim = -1;
    for (int i = 0; i < n; i++) {
        const hr_plan_model *m = &models[i];
        if (!m->loaded || m->pinned || m->cancelling || !(m->working || m->users > 0)) continue;
        if (m->work_priority > in->critical_cancel_priority) continue;
        if (victim < 0 || m->work_priority < models[victim].work_priority ||
            (m->work_priority == models[victim].work_priority && m->last_used < models[victim].last_used))
            victim = i;
    }
    if (victim >= 0) add(plan, HR_PLAN_CANCEL_WORK, victim, "memory pressure is critical and no idle model is left to unload");
}
