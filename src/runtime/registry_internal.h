/*
 * registry_internal.h: what the registry's four files share. registry.c holds the table of models
 * (states, use counts, pins, keep-alive) and the public hr_registry_* calls; load.c the load path
 * (preflight, make room, load, retry, fall-back); gate.c the degradation guard's gate (a model
 * that thrashes is cancelled, unloaded and kept out until its weights fit); lifecycle.c the
 * hr-lifecycle thread, which expires keep-alives and carries out policy/plan.c's actions.
 *
 * Locking: `lock` guards the table and every entry's fields. Loading and unloading run outside
 * it, with the entry marked LOADING or UNLOADING so no one else touches its model; `changed` is
 * broadcast when such a step ends. Lock order: registry lock, then a model's queue lock (through
 * hr_model_work), then the monitor's lock. Events are published with no lock held, because a
 * subscriber may call back into the registry.
 */
#ifndef HR_RUNTIME_REGISTRY_INTERNAL_H
#define HR_RUNTIME_REGISTRY_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "headroom.h"
#include "runtime/registry.h"

enum { MAX_MODELS = 64 };

struct model_entry {
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
    int32_t slots;              /* the slots its last load got (fewer than asked when memory is short) */
    char slots_reason[320];     /* why it got fewer than asked, or "" */
    uint64_t rss_added;
    int32_t loads;
    uint64_t loads_started;     /* load attempts begun ... */
    uint64_t loads_finished;    /* ... and ended; the last one's outcome: */
    int last_load_rc;
    char last_load_error[1024]; /* its sentence, for the requests that waited on it */
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
    pthread_cond_t wake;        /* news for the lifecycle thread (hr_cond_init_monotonic) */
    struct model_entry *entries[MAX_MODELS];
    int n_entries;
    bool thread_started, stopping;
    pthread_t thread;
    int subscription;           /* pressure events wake the thread */
    bool caches_freed;          /* in the present pressure episode */
};

/* ---- registry.c ------------------------------------------------------------------------------ */

/* The context's registry, or NULL (a NULL context). */
struct hr_registry *hr_registry_of(hr_context *ctx);

/* The held and the fresh (unheld) pressure level; normal without a monitor or a reading. */
void hr_registry_levels(hr_context *ctx, enum hr_pressure_level *held, enum hr_pressure_level *fresh);

/* Publishes a model or action event at the present level. Call with no lock held. */
void hr_registry_publish(hr_context *ctx, enum hr_event_type type, const char *model, const char *action,
                         const char *reason, int64_t bytes_freed);

/* This process's resident set now, in bytes; 0 where it cannot be read. */
uint64_t hr_registry_process_rss(void);

/* The entry serving `model`, or NULL. Lock held. */
struct model_entry *hr_registry_find_model(struct hr_registry *r, const hr_model *model);

/* The entry's keep-alive, or the context's when it has none of its own. Lock held. */
double hr_registry_keep_alive(const struct hr_registry *r, const struct model_entry *e);

/* Unloads an entry already marked UNLOADING (saving its conversation as a KV snapshot first) and
 * returns the RSS given back, measured. Called without the lock. */
int64_t hr_registry_unload_marked(struct hr_registry *r, struct model_entry *e, const char *reason);

/* Unloads idle models other than `keep`, least recently used first; returns how many. Called
 * without the lock. */
int hr_registry_unload_idle(struct hr_registry *r, const struct model_entry *keep, const char *reason);

/* ---- load.c ---------------------------------------------------------------------------------- */

/* Gets `e`'s model (docs/lifecycle.md): refused while gated or under critical pressure, else
 * the load path, else the fall-back where one is configured. Called without the lock on an entry
 * marked LOADING; the sentence of a failure is the calling thread's. */
int hr_load_path_run(struct hr_registry *r, struct model_entry *e, hr_model **out);

/* ---- gate.c ---------------------------------------------------------------------------------- */

/* HR_OK unless the guard unloaded `e` for thrashing and memory has not come back for it: then
 * HR_EMEMORY with a sentence that says why and when it loads again. Called without the lock. */
int hr_gate_check(struct hr_registry *r, struct model_entry *e);

/* ---- lifecycle.c ----------------------------------------------------------------------------- */

/* Starts hr-lifecycle if it is not running; called with the lock held. */
int hr_lifecycle_start(struct hr_registry *r);

/* Carries out one of policy/plan.c's actions on `e` (NULL for freeing caches), after checking
 * that `e` is still as the plan saw it. Called with the lock held; it may drop and retake it.
 * hr-lifecycle's own step, declared here so that a test can interleave it with a release
 * (tests/integration/test_lifecycle_race.c). */
struct hr_plan_action;
void hr_lifecycle_act(struct hr_registry *r, const struct hr_plan_action *a, struct model_entry *e);

/* The event-bus subscriber that wakes hr-lifecycle on a pressure change. */
void hr_lifecycle_on_pressure(const hr_event *event, void *user_data);

#endif
