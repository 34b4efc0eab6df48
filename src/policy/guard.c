/*
 * guard.c: a window is healthy when it takes (almost) no page faults; the best healthy
 * rate is what the model can do here. A window that faults every token and runs far below that
 * rate (or before any rate is known, or faulting eight times the line: after the first pass
 * over the weights a decode takes no faults at all) is thrashing. Two in a row, and the guard
 * acts. A slow window without faults is another program using the CPU: reported once, no
 * action, because unloading would not help. A window sampled under a grammar is slower by
 * nature: it teaches no speed and is never reported slow, but may be thrashing.
 */
#include "policy/guard.h"

#include <stdbool.h>
#include <stdio.h>

hr_guard_params hr_guard_default_params(void)
{
    hr_guard_params p = { .slowdown = 4, .faults_per_token = 64, .confirm_windows = 2 };
    return p;
}

hr_guard_verdict hr_guard_judge(const hr_guard_params *p, hr_guard_state *s, const hr_guard_window *w,
                                char *reason, size_t reason_size)
{
    if (reason_size > 0) reason[0] = '\0';
    if (w->tokens <= 0 || w->seconds <= 0) return HR_GUARD_OK;
    double rate = w->tokens / w->seconds;
    double faults = (double)w->page_faults / w->tokens;
    bool paging = faults >= p->faults_per_token;
    bool far_below = s->expected > 0 && rate * p->slowdown < s->expected;

    if (!paging && faults < 4 && !w->constrained) {
        if (rate > s->expected && !far_below) s->expected = rate;
    }
    /* Paging with the speed known to have fallen far, or not known yet, or paging so hard (8x
     * the line: megabytes re-read per token) that the speed measured on a busy machine cannot
     * be trusted to say otherwise. */
    bool heavy = faults >= 8 * p->faults_per_token;
    if (paging && (far_below || s->expected == 0 || heavy)) {
        s->bad_windows++;
        if (s->bad_windows < p->confirm_windows) return HR_GUARD_OK;
        if (s->expected > 0)
            snprintf(reason, reason_size, "decoding at %.1f tokens/s, expected %.1f, with %.0f page faults per "
                     "token: its weights are being evicted and read back because memory is short", rate, s->expected, faults);
        else
            snprintf(reason, reason_size, "decoding at %.1f tokens/s with %.0f page faults per token: its weights "
                     "are being evicted and read back because memory is short", rate, faults);
        return HR_GUARD_THRASHING;
    }
    s->bad_windows = 0;
    if (far_below && !paging && !w->constrained) {
        if (s->slow_reported++) return HR_GUARD_OK;
        snprintf(reason, reason_size, "decoding at %.1f tokens/s, expected %.1f, without page faults: the CPU is "
                 "busy with other work (not a memory problem; nothing unloaded)", rate, s->expected);
        return HR_GUARD_SLOW;
    }
    return HR_GUARD_OK;
}
