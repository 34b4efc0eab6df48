/*
 * classify.c: signals -> level (normal, warn, critical) with reasons in words, and hysteresis so
 * that the level does not flap: up at once, down one level at a time after a calm hold time.
 * Pure: the time of the sample is an argument, the memory of past calls is the caller's struct.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy/pressure.h"

hr_pressure_thresholds hr_pressure_thresholds_default(void)
{
    /* docs/pressure.md explains each value against systemd-oomd, lmkd and earlyoom. */
    hr_pressure_thresholds t = {
        .warn_free_percent = 15.0,
        .critical_free_percent = 5.0,
        .free_margin_percent = 5.0,
        .warn_stall_some_percent = 10.0,
        .critical_stall_some_percent = 50.0,
        .critical_stall_full_percent = 20.0,
        .stall_margin_ratio = 0.5,
        .warn_swap_in_per_second = 256.0,      /* 1 MiB/s of 4 KiB pages */
        .critical_swap_per_second = 2048.0,    /* 8 MiB/s in and out */
        .hold_seconds = 10.0,
    };
    return t;
}

HR_API const char *hr_pressure_level_name(enum hr_pressure_level level)
{
    switch (level) {
    case HR_PRESSURE_NORMAL: return "normal";
    case HR_PRESSURE_WARN: return "warn";
    case HR_PRESSURE_CRITICAL: return "critical";
    }
    return "unknown";
}

/* Reasons for one level, joined with "; ". */
struct reasons {
    char text[400];   /* shorter than hr_classification.reason, which adds a prefix */
    size_t length;
};

static void add_reason(struct reasons *r, const char *format, ...) __attribute__((format(printf, 2, 3)));

static void add_reason(struct reasons *r, const char *format, ...)
{
    if (r->length >= sizeof r->text - 1) return;
    if (r->length > 0) r->length += (size_t)snprintf(r->text + r->length, sizeof r->text - r->length, "; ");
    if (r->length >= sizeof r->text - 1) return;
    va_list args;
    va_start(args, format);
    int n = vsnprintf(r->text + r->length, sizeof r->text - r->length, format, args);
    va_end(args);
    if (n > 0) r->length += (size_t)n;
    if (r->length > sizeof r->text - 1) r->length = sizeof r->text - 1;
}

static double mib(uint64_t bytes)
{
    return (double)bytes / 1048576.0;
}

/* The level the signals justify and the reasons for it. `leaving` applies the margins: the
 * test for staying at a level is easier to pass than the test for entering it. */
static enum hr_pressure_level level_for(const hr_pressure_signals *s, const hr_pressure_thresholds *t, bool leaving,
                          struct reasons *out)
{
    struct reasons critical = { .length = 0 }, warn = { .length = 0 };
    double free_margin = leaving ? t->free_margin_percent : 0.0;
    double ratio = leaving ? t->stall_margin_ratio : 1.0;
    const hr_scope_memory *scope = &s->memory.binding;

    if (s->memory.known) {
        if (s->free_percent < t->critical_free_percent + free_margin)
            add_reason(&critical, "%.0f MiB available is %.1f%% of %s (critical below %.0f%%)",
                       mib(scope->available), s->free_percent, scope->name, t->critical_free_percent);
        else if (s->free_percent < t->warn_free_percent + free_margin)
            add_reason(&warn, "%.0f MiB available is %.1f%% of %s (warn below %.0f%%)",
                       mib(scope->available), s->free_percent, scope->name, t->warn_free_percent);
    }
    if (s->stall_known) {
        if (s->stall_full_percent >= t->critical_stall_full_percent * ratio)
            add_reason(&critical, "every task waited for memory %.0f%% of the last %.2f s",
                       s->stall_full_percent, s->interval);
        if (s->stall_some_percent >= t->critical_stall_some_percent * ratio)
            add_reason(&critical, "tasks waited for memory %.0f%% of the last %.2f s",
                       s->stall_some_percent, s->interval);
        else if (s->stall_some_percent >= t->warn_stall_some_percent * ratio)
            add_reason(&warn, "tasks waited for memory %.0f%% of the last %.2f s",
                       s->stall_some_percent, s->interval);
    }
    if (s->rates_known) {
        if (s->swap_in_per_second >= t->critical_swap_per_second * ratio &&
            s->swap_out_per_second >= t->critical_swap_per_second * ratio)
            add_reason(&critical, "swap thrashing: %.0f pages/s in and %.0f out",
                       s->swap_in_per_second, s->swap_out_per_second);
        else if (s->swap_in_per_second >= t->warn_swap_in_per_second * ratio)
            add_reason(&warn, "swapping in %.0f pages/s", s->swap_in_per_second);
    }
    if (s->new_oom_events > 0)
        add_reason(&critical, "the OOM killer acted %llu time(s) in this process's cgroups",
                   (unsigned long long)s->new_oom_events);
    if (s->new_max_events > 0)
        add_reason(&warn, "a cgroup hit its memory limit %llu time(s)", (unsigned long long)s->new_max_events);
    if (s->new_high_events > 0)
        add_reason(&warn, "a cgroup went over memory.high %llu time(s) and was throttled",
                   (unsigned long long)s->new_high_events);
    if (s->darwin_level >= 4) add_reason(&critical, "macOS reports critical memory pressure");
    else if (s->darwin_level >= 2) add_reason(&warn, "macOS reports memory pressure (warn)");

    if (critical.length > 0) { *out = critical; return HR_PRESSURE_CRITICAL; }
    if (warn.length > 0) { *out = warn; return HR_PRESSURE_WARN; }
    out->length = 0;
    out->text[0] = '\0';
    if (s->memory.known)
        add_reason(out, "%.0f MiB available, %.1f%% of %s", mib(scope->available), s->free_percent, scope->name);
    else
        add_reason(out, "no memory source could be read");
    return HR_PRESSURE_NORMAL;
}

void hr_classify(const hr_pressure_signals *signals, const hr_pressure_thresholds *thresholds,
                 hr_classifier_state *state, double now, hr_classification *out)
{
    struct reasons entering, staying;
    enum hr_pressure_level before = state->level;
    enum hr_pressure_level enter = level_for(signals, thresholds, false, &entering);

    if (enter >= state->level) {
        state->level = enter;
        state->calm = false;
        snprintf(out->reason, sizeof out->reason, "%s", entering.text);
    } else if (level_for(signals, thresholds, true, &staying) >= state->level) {
        /* Better than the enter values, not yet by the margin: hold, and the calm clock waits. */
        state->calm = false;
        snprintf(out->reason, sizeof out->reason, "held at %s: %s", hr_pressure_level_name(state->level), staying.text);
    } else {
        if (!state->calm) {
            state->calm = true;
            state->calm_since = now;
        }
        double calm_for = now - state->calm_since;
        if (calm_for >= thresholds->hold_seconds) {
            state->level = state->level - 1 > enter ? state->level - 1 : enter;
            state->calm_since = now;   /* the next step down needs its own calm period */
            snprintf(out->reason, sizeof out->reason, "calm for %d s: %s", (int)calm_for, entering.text);
        } else {
            snprintf(out->reason, sizeof out->reason, "held at %s for %d s more: %s",
                     hr_pressure_level_name(state->level), (int)(thresholds->hold_seconds - calm_for + 0.5), entering.text);
        }
    }
    out->level = state->level;
    out->changed = state->level != before;
}
