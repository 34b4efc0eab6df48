/*
 * guard.h: the degradation guard's judgement, pure: from one window of decoding (tokens, time,
 * major page faults) and what the model has shown it can do, decide whether it runs as expected,
 * is slow for reasons that are not memory, or thrashes: its weights are being read back from
 * disk because memory is short. runtime/guard.c measures; the registry acts.
 */
#ifndef HR_POLICY_GUARD_H
#define HR_POLICY_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hr_guard_params {
    double slowdown;          /* "far below": slower than expected / slowdown (4) */
    double faults_per_token;  /* page faults per token that mean the weights are re-read (64;
                                 a healthy decode takes none once the weights are in) */
    int confirm_windows;      /* consecutive bad windows before acting (2) */
} hr_guard_params;

hr_guard_params hr_guard_default_params(void);

/* What the guard knows about one loaded model. Zero-initialise at load. */
typedef struct hr_guard_state {
    double expected;          /* tokens/s of the best healthy window so far; 0: not known yet */
    int bad_windows;          /* consecutive thrashing windows */
    int slow_reported;        /* slow windows without page faults already reported (reported once) */
} hr_guard_state;

typedef struct hr_guard_window {
    int32_t tokens;
    double seconds;
    uint64_t page_faults;     /* the process's, major and minor, over the window */
    bool constrained;         /* a token of it was sampled under a grammar: where the model writes
                                 what the grammar refuses, each token masks the whole vocabulary,
                                 which is slower and faults fresh pages, so such a window teaches
                                 no speed and is never reported slow; it may still be thrashing
                                 (the runtime confirms that on the model file) */
} hr_guard_window;

typedef enum hr_guard_verdict {
    HR_GUARD_OK = 0,
    HR_GUARD_SLOW,            /* far below expected, no page faults: CPU contention, not memory */
    HR_GUARD_THRASHING,       /* page faults every token and far below expected (or heavy): act */
} hr_guard_verdict;

/* Judges one window, updating `state`; `reason` gets a sentence for SLOW and THRASHING. */
hr_guard_verdict hr_guard_judge(const hr_guard_params *params, hr_guard_state *state,
                                const hr_guard_window *window, char *reason, size_t reason_size);

#endif
