/*
 * guard.c: the degradation guard's measurements. While a model decodes, every window of 8
 * tokens (or 1 s, whichever ends first: a thrashing model makes a token per second or less) is
 * timed and its page faults counted (the process's, major and minor, from getrusage: evicted
 * memory-mapped weights come back mostly as minor faults, because one major fault's readahead
 * brings the pages its neighbours then find); policy/guard.c judges it. The process's faults are
 * not only the weights' (other threads' fresh heap pages, a sanitizer's shadow memory), so when
 * the weights are memory-mapped a verdict of thrashing is confirmed on the file itself: the first
 * suspicious window records which of its pages are in the page cache (mincore), and the window
 * that would confirm it counts how many of those have been evicted since. Thrash evicts the
 * weights as fast as they are read back; faults elsewhere evict none.
 * A thrashing model is reported (HR_EVENT_DEGRADED) and handed to the registry, which frees other
 * memory first and otherwise cancels the generation and unloads the model.
 */
#include "runtime/guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "core/log.h"
#include "platform/platform.h"
#include "runtime/registry.h"
#include "runtime/registry_internal.h"

enum { WINDOW_TOKENS = 8 };
static const double WINDOW_SECONDS = 1.0;

static uint64_t page_faults(void)
{
    struct rusage usage;
    return getrusage(RUSAGE_SELF, &usage) == 0 ? (uint64_t)usage.ru_majflt + (uint64_t)usage.ru_minflt : 0;
}

static bool weights_mapped(hr_model *model)
{
    hr_engine_model_info info;
    model->engine->get_info(model->engine_model, &info);
    return info.load_mode == HR_LOAD_MMAP && model->path;
}

static void forget_residency(hr_model *model)
{
    free(model->guard_residency);
    model->guard_residency = NULL;
    model->guard_residency_pages = 0;
}

/* Pages of the model file that were in memory at the suspicious window and are not now; -1 where
 * that cannot be told (weights not mapped, no record, mincore unavailable). One mincore over the
 * file (about a millisecond per GiB), only in windows already judged thrashing. */
static long evicted_pages(hr_model *model)
{
    if (!model->guard_residency) return -1;
    unsigned char *now = NULL;
    size_t pages = 0;
    long evicted = -1;
    if (hr_file_residency(model->path, &now, &pages) && pages == model->guard_residency_pages) {
        evicted = 0;
        for (size_t i = 0; i < pages; i++)
            if ((model->guard_residency[i] & 1) && !(now[i] & 1)) evicted++;
    }
    free(now);
    return evicted;
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
    if (verdict == HR_GUARD_OK) {
        /* the first suspicious window: remember which weights are in memory, to see at the
         * confirming window whether any were evicted */
        if (model->guard.bad_windows == 1 && weights_mapped(model)) {
            forget_residency(model);
            if (!hr_file_residency(model->path, &model->guard_residency, &model->guard_residency_pages))
                forget_residency(model);
        } else if (model->guard.bad_windows == 0) {
            forget_residency(model);
        }
        return;
    }
    double rate = window.tokens / window.seconds;
    bool thrashing = verdict == HR_GUARD_THRASHING;
    if (thrashing && !model->guard_residency && weights_mapped(model)) {
        /* no record to compare with (it could not be taken, or the model's state came from
         * before this load): take one now and let the next window confirm */
        if (hr_file_residency(model->path, &model->guard_residency, &model->guard_residency_pages)) {
            model->guard.bad_windows = 1;
            return;
        }
    }
    if (thrashing) {
        long evicted = evicted_pages(model);
        long enough = (long)(model->guard_residency_pages / 100);   /* 1% of the file, at most 256 pages */
        if (enough > 256) enough = 256;
        forget_residency(model);
        if (evicted >= 0 && evicted < (enough > 0 ? enough : 1)) {
            hr_log(HR_LOG_DEBUG, "%s: %.0f page faults per token, but none of its weights were evicted: the faults "
                   "are not its weights being read back; no action", model->name,
                   (double)window.page_faults / window.tokens);
            model->guard.bad_windows = 0;
            return;
        }
    }
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
