/*
 * guard.c: the degradation guard's measurements. While a model decodes, every window of 8
 * tokens (or 1 s, whichever ends first: a thrashing model makes a token per second or less) is
 * timed and its page faults counted (the process's, major and minor, from getrusage: evicted
 * memory-mapped weights come back mostly as minor faults, because one major fault's readahead
 * brings the pages its neighbours then find); policy/guard.c judges it. A thrashing model is reported (HR_EVENT_DEGRADED) and handed to the registry, which frees
 * other memory first and otherwise cancels the generation and unloads the model.
 */
#include "runtime/guard.h"

#include <stdio.h>
#include <sys/resource.h>

#include "core/log.h"
#include "runtime/registry.h"
#include "runtime/registry_internal.h"

enum { WINDOW_TOKENS = 8 };
static const double WINDOW_SECONDS = 1.0;

static uint64_t page_faults(void)
{
    struct rusage usage;
    return getrusage(RUSAGE_SELF, &usage) == 0 ? (uint64_t)usage.ru_majflt + (uint64_t)usage.ru_minflt : 0;
}

void hr_guard_begin(hr_model *model)
{
    model->guard_window_start = hr_now_seconds();
    model->guard_window_faults = page_faults();
    model->guard_window_tokens = 0;
}

void hr_guard_token(hr_model *model)
{
    if (!model->ctx->params.guard) return;
    model->guard_window_tokens++;
    double now = hr_now_seconds();
    double seconds = now - model->guard_window_start;
    if (model->guard_window_tokens < WINDOW_TOKENS && seconds < WINDOW_SECONDS) return;
    uint64_t faults = page_faults();
    hr_guard_window window = {
        .tokens = model->guard_window_tokens,
        .seconds = seconds,
        .page_faults = faults - model->guard_window_faults,
    };
    model->guard_window_start = now;
    model->guard_window_faults = faults;
    model->guard_window_tokens = 0;

    hr_guard_params params = hr_guard_default_params();
    char reason[320];
    hr_guard_verdict verdict = hr_guard_judge(&params, &model->guard, &window, reason, sizeof reason);
    if (verdict == HR_GUARD_OK) return;
    double rate = window.tokens / window.seconds;
    bool thrashing = verdict == HR_GUARD_THRASHING;
    hr_log(thrashing ? HR_LOG_WARN : HR_LOG_INFO, "%s: %s", model->name, reason);
    enum hr_pressure_level held, fresh;
    hr_registry_levels(model->ctx, &held, &fresh);   /* as every event other than a pressure change */
    hr_event event = {
        .type = HR_EVENT_DEGRADED,
        .timestamp = now,
        .level = held,
        .previous_level = held,
        .reason = reason,
        .model = model->name,
        .action = thrashing ? "thrashing" : "slow",
        .tokens_per_second = rate,
        .expected_tokens_per_second = model->guard.expected,
        .faults_per_token = (double)window.page_faults / window.tokens,
    };
    hr_events_publish(&model->ctx->events, &event);
    if (thrashing && hr_registry_degraded(model->ctx, model, reason)) model->guard.bad_windows = 0;
}
