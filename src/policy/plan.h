/*
 * plan.h: the lifecycle's decisions as a pure function: from the pressure level, the models and
 * the time to an ordered list of actions (unload an expired model, free caches, drop the KV of
 * idle slots, unload the least recently used idle model, cancel the lowest-priority work) and when to look again. No I/O, no
 * clock, no threads: runtime/lifecycle.c gathers the facts, calls hr_plan, and carries it out.
 */
#ifndef HR_POLICY_PLAN_H
#define HR_POLICY_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/pressure.h"

/* One model as the planner sees it. */
typedef struct hr_plan_model {
    bool loaded;              /* ready or busy: it holds memory */
    bool pinned;              /* never unloaded by the plan */
    int32_t users;            /* acquisitions not yet released */
    bool working;             /* a generation runs or waits on it */
    int32_t work_priority;    /* the lowest priority among its running and queued work */
    bool cancelling;          /* its work has been cancelled already, its unload is pending */
    double last_used;         /* monotonic seconds */
    double expires_at;        /* monotonic seconds of the keep-alive deadline; 0: none */
    uint64_t idle_kv_bytes;   /* KV cache in memory held by slots that run nothing */
    bool shed_pending;        /* asked to drop it already, not done yet (its worker is busy) */
} hr_plan_model;

typedef struct hr_plan_input {
    double now;                      /* monotonic seconds */
    enum hr_pressure_level level;                  /* the classifier's level (with its hold) */
    enum hr_pressure_level fresh_level;            /* the level of a fresh sample without the hold: after an
                                        unload the held level stays up for a while, and the plan
                                        must not unload more than the memory needs */
    bool pressure_actions;           /* false: only keep-alive deadlines */
    bool caches_freed;               /* caches were freed in this pressure episode */
    int32_t critical_cancel_priority;/* cancel work at or below this under critical (INT32_MIN: none) */
    double pressure_interval;        /* seconds between actions while pressure lasts */
} hr_plan_input;

typedef enum hr_plan_kind {
    HR_PLAN_UNLOAD_EXPIRED = 1,   /* keep-alive deadline passed */
    HR_PLAN_FREE_CACHES,          /* pressure: drop headroom's own caches first */
    HR_PLAN_UNLOAD_IDLE,          /* pressure: the least recently used idle model */
    HR_PLAN_CANCEL_WORK,          /* critical: the lowest-priority work, then unload its model */
    HR_PLAN_SHED_IDLE_KV,         /* pressure: a loaded model's idle slots drop their KV (saved
                                     to snapshots when save_snapshots), the model stays loaded */
} hr_plan_kind;

typedef struct hr_plan_action {
    hr_plan_kind kind;
    int model;                    /* index into the models array; -1 for HR_PLAN_FREE_CACHES */
    bool save_snapshots;          /* HR_PLAN_SHED_IDLE_KV: not under critical (disk writes wait) */
    char reason[160];
} hr_plan_action;

typedef struct hr_plan {
    int n_actions;
    hr_plan_action actions[16];   /* in the order to carry them out */
    bool refuse_loads;            /* critical: new loads are refused */
    double next_wake;             /* monotonic seconds at which to plan again; 0: only on news */
} hr_plan;

void hr_plan_compute(const hr_plan_input *input, const hr_plan_model *models, int n_models,
                     hr_plan *out);

#endif /* HR_POLICY_PLAN_H */
