/*
 * pressure.h: pure memory policy: from samples to effective available memory, to signals, to a
 * level with reasons. No I/O, no clock reads, no threads: every input is a plain struct, time
 * included, so each rule is tested exhaustively on hand-made values (tests/unit/test_pressure.c).
 */
#ifndef HR_POLICY_PRESSURE_H
#define HR_POLICY_PRESSURE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/memory.h"
#include "headroom.h"   /* the level and threshold types are the public ones */

/* ---- effective available memory: the scope that binds --------------------------------------- */

typedef struct hr_scope_memory {
    char name[HR_SCOPE_NAME_MAX];   /* "host", "cgroup /app.slice (memory.high)", "macOS" */
    uint64_t total;                 /* the scope's size: MemTotal, or the cgroup's limit */
    uint64_t available;             /* what this process could still take in that scope */
} hr_scope_memory;

typedef struct hr_effective_memory {
    bool known;                     /* false: no source could be read */
    hr_scope_memory binding;        /* the scope with the least available memory */
    int n_scopes;
    hr_scope_memory scopes[HR_MAX_CGROUP_LEVELS + 2];
} hr_effective_memory;

/* The minimum over every scope that binds this process: the host (MemAvailable, or macOS's free
 * and inactive pages), and each cgroup level with a limit (the lower of memory.max and
 * memory.high, minus usage, plus reclaimable inactive page cache). GPUs are per device and are
 * not part of it. */
void hr_effective_memory_compute(const hr_sample *sample, hr_effective_memory *out);

/* The same, for a load that maps a file of which `resident_file_bytes` are in the page cache now
 * (a model unloaded a moment ago leaves its weights there): in each cgroup level those pages are
 * available to that load, since it reuses them instead of allocating. The host's MemAvailable
 * counts page cache already and is unchanged. 0 gives hr_effective_memory_compute. */
void hr_effective_memory_reusing(const hr_sample *sample, uint64_t resident_file_bytes, hr_effective_memory *out);

/* ---- signals: what changed between two samples ---------------------------------------------- */

typedef struct hr_pressure_signals {
    hr_effective_memory memory;
    double free_percent;            /* binding.available / binding.total * 100; 100 when unknown */
    uint64_t swap_total;
    uint64_t swap_used;
    double interval;                /* seconds between the two samples; 0: only one sample */
    bool rates_known;               /* swap and fault rates need two samples */
    double swap_in_per_second;      /* pages */
    double swap_out_per_second;
    double major_faults_per_second; /* host-wide */
    bool stall_known;
    double stall_some_percent;      /* share of the interval some task waited for memory (max of host and cgroup) */
    double stall_full_percent;      /* share of the interval all tasks waited */
    double stall_some_avg10;        /* the kernel's own 10 s averages, for display */
    double stall_full_avg10;
    uint64_t new_high_events;       /* memory.high crossings since the previous sample, all levels */
    uint64_t new_max_events;        /* memory.max hits */
    uint64_t new_oom_events;        /* OOM killer invocations and kills */
    int darwin_level;               /* macOS memorystatus level; 0 where absent */
} hr_pressure_signals;

/* `previous` may be NULL (the first sample): rates and stall shares are then unknown. */
void hr_pressure_signals_compute(const hr_sample *previous, const hr_sample *current,
                                 hr_pressure_signals *out);

/* ---- classification with hysteresis --------------------------------------------------------- */

/* The levels and thresholds are headroom.h's own (enum hr_pressure_level, hr_pressure_thresholds).
 * Every threshold has an enter value; leaving a level needs the signal to be better than the
 * enter value by the margin, for hold_seconds without a break. docs/pressure.md justifies the
 * defaults against systemd-oomd, Android's lmkd and earlyoom; hr_context_default_params() hands
 * them out. */
hr_pressure_thresholds hr_pressure_thresholds_default(void);

/* What the classifier remembers between calls; zero-initialise it before the first. */
typedef struct hr_classifier_state {
    enum hr_pressure_level level;
    bool calm;                 /* signals have been below the current level's exit values ... */
    double calm_since;         /* ... since this time */
} hr_classifier_state;

typedef struct hr_classification {
    enum hr_pressure_level level;
    bool changed;              /* level differs from the state's level before the call */
    char reason[512];          /* words: what drives the level, or why it is held */
} hr_classification;

/* Classifies `signals` taken at time `now` (seconds, any monotonic origin), updating `state`.
 * A rise takes effect at once; a fall one level at a time after hold_seconds of calm. */
void hr_classify(const hr_pressure_signals *signals, const hr_pressure_thresholds *thresholds,
                 hr_classifier_state *state, double now, hr_classification *out);

#endif /* HR_POLICY_PRESSURE_H */
