/*
 * guard.c: the degradation guard's measurements. While a model decodes, every window of 8
 * tokens (or 1 s, whichever ends first: a thrashing model makes a token per second or less) is
 * timed and its page faults counted (the process's, major and minor, from getrusage: evicted
 * memory-mapped weights come back mostly as minor faults, because one major fault's readahead
 * brings the pages its neighbours then find); policy/guard.c judges it. The process's faults are
 * not only the weights' (other threads' fresh heap pages, a sanitizer's shadow memory), so when
 * the weights are memory-mapped a verdict of thrashing is confirmed on the file itself: the
 * confirming window must have read from storage (major faults; fresh heap pages are zero-filled
 * and never are) while part of the file is out of memory (mincore). Comparing which pages are
 * resident at two windows does not work: windows end at token boundaries, the same point of each
 * pass over the weights, so a thrash that evicts and reads back the whole file every token shows
 * almost the same resident set at every window (measured: 0 to 137 pages of 40,000 apart).
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

/* The process's page faults, all and major alone. */
static uint64_t page_faults(uint64_t *major)
{
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0) {
        *major = 0;
        return 0;
    }
    *major = (uint64_t)usage.ru_majflt;
    return (uint64_t)usage.ru_majflt + (uint64_t)usage.ru_minflt;
}

static bool weights_mapped(hr_model *model)
{
    hr_engine_model_info info;
    model->engine->get_info(model->engine_model, &info);
    return info.load_mode == HR_LOAD_MMAP && model->path;
}

/* Pages of the model file out of memory now; -1 where that cannot be told (mincore
 * unavailable). One mincore over the file (about a millisecond per GiB), only in windows already
 * judged thrashing. */
static long pages_out(hr_model *model, size_t *pages)
{
    unsigned char *resident = NULL;
    *pages = 0;
    if (!hr_file_residency(model->path, &resident, pages)) return -1;
    long out = 0;
    for (size_t i = 0; i < *pages; i++)
        if (!(resident[i] & 1)) out++;
    free(resident);
    return out;
}

/* Whether a window judged thrashing is the weights being read back: storage was read during it
 * and at least 1% of the file (at most 1 MiB of 4 KiB pages) is out of memory. Where the weights
 * are not mapped, or residency cannot be told, the faults' count alone decides. */
static bool weights_read_back(hr_model *model, uint64_t major_faults, char *why, size_t why_size)
{
    if (!weights_mapped(model)) return true;
    size_t pages = 0;
    long out = pages_out(model, &pages);
    if (out < 0) return true;
    long enough = (long)(pages / 100);
    if (enough > 256) enough = 256;
    if (enough < 1) enough = 1;
    snprintf(why, why_size, "%llu major faults in the window, %ld of its file's %zu pages out of memory",
             (unsigned long long)major_faults, out, pages);
    return major_faults > 0 && out >= enough;
}

void hr_guard_begin(hr_model *model)
{
    model->guard_window_start = hr_now_seconds();
    model->guard_window_faults = page_faults(&model->guard_window_major_faults);
    model->guard_window_tokens = 0;
    model->guard_window_constrained = false;
}

void hr_guard_token(hr_model *model, bool constrained)
{
    if (!model->ctx->params.guard) return;
    model->guard_window_tokens++;
    if (constrained) model->guard_window_constrained = true;
    double now = hr_now_seconds();
    double seconds = now - model->guard_window_start;
    if (model->guard_window_tokens < WINDOW_TOKENS && seconds < WINDOW_SECONDS) return;
    uint64_t major = 0;
    uint64_t faults = page_faults(&major);
    uint64_t window_major = major - model->guard_window_major_faults;
    hr_guard_window window = {
        .tokens = model->guard_window_tokens,
        .seconds = seconds,
        .page_faults = faults - model->guard_window_faults,
        .constrained = model->guard_window_constrained,
    };
    model->guard_window_constrained = false;
    model->guard_window_start = now;
    model->guard_window_faults = faults;
    model->guard_window_major_faults = major;
    model->guard_window_tokens = 0;

    hr_guard_params params = hr_guard_default_params();
    char reason[320];
    hr_guard_verdict verdict = hr_guard_judge(&params, &model->guard, &window, reason, sizeof reason);
    hr_log(HR_LOG_DEBUG, "%s: guard window: %d tokens in %.2f s, %.0f page faults per token, expected %.1f "
           "tokens/s, %d suspicious in a row", model->name, window.tokens, window.seconds,
           (double)window.page_faults / window.tokens, model->guard.expected, model->guard.bad_windows);
    if (verdict == HR_GUARD_OK) return;
    double rate = window.tokens / window.seconds;
    bool thrashing = verdict == HR_GUARD_THRASHING;
    if (thrashing) {
        char why[160] = "";
        bool read_back = weights_read_back(model, window_major, why, sizeof why);
        hr_log(HR_LOG_DEBUG, "%s: guard: thrashing by its faults; %s", model->name, why[0] ? why : "weights not mapped");
        if (!read_back) {
            hr_log(HR_LOG_INFO, "%s: %.0f page faults per token, but %s: the faults are not its weights being "
                   "read back; no action", model->name, (double)window.page_faults / window.tokens, why);
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
