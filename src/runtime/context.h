/*
 * context.h: the hr_context struct, shared by the rooms that hang off it. A context owns the
 * engine table, the settings every model loaded through it uses, the event bus, the monitor
 * (hr-monitor), the registry (and with it hr-lifecycle), the metrics ring and the cache's place.
 * It lives in runtime/ because it owns runtime objects; core/ below it knows nothing of it.
 */
#ifndef HR_RUNTIME_CONTEXT_H
#define HR_RUNTIME_CONTEXT_H

#include <pthread.h>

#include "core/clock.h"
#include "core/events.h"
#include "core/memory.h"
#include "engine/engine.h"
#include "headroom.h"
#include "policy/pressure.h"

struct hr_monitor;
struct hr_registry;

struct hr_context {
    hr_context_params params;      /* immutable after create */
    const hr_engine_ops *engine;   /* immutable after create (tests may swap it before loading) */
    hr_event_bus events;           /* has its own locks */
    struct hr_monitor *monitor;    /* NULL when params.monitor is false */
    struct hr_registry *registry;  /* the models by name (runtime/registry.c); has its own lock */

    pthread_mutex_t metrics_lock;  /* guards the metrics ring: */
    hr_generation_record *metrics; /* metrics_capacity records, the oldest at metrics_head */
    int metrics_head, metrics_count;

    pthread_mutex_t check_lock;    /* guards the three fields below: hr_pressure_check without a monitor */
    bool have_last_sample;
    hr_sample last_sample;
    hr_classifier_state check_state;

    char *fallback_strings[3];     /* immutable: copies of params.fallback's url, model, api_key */
    char *cache_root;              /* immutable after create: the resolved cache directory, or NULL
                                      when none could be found (no HOME); params.cache_dir points here */
    uint64_t cache_budget_bytes;   /* immutable after create: the effective budget */
};

/* Replaces the engine models are loaded with: the seam that lets unit tests drive the runtime
 * with a fake engine. Only before any model is loaded. */
void hr_context_use_engine(hr_context *ctx, const hr_engine_ops *engine);

/* Bytes of the file at `path` in the page cache now, that a load in `load_mode` would reuse
 * rather than allocate (0 for HR_LOAD_COPY, or where it cannot tell). runtime/preflight.c. */
uint64_t hr_preflight_file_cached(const char *path, enum hr_load_mode load_mode);

/* The effective available memory for loading `path` in `load_mode`, from a sample taken now,
 * its cached pages counted (hr_effective_memory_reusing); *file_cached says how many. */
int hr_preflight_memory_for(const char *path, enum hr_load_mode load_mode, hr_effective_memory *out,
                            uint64_t *file_cached);

#endif
