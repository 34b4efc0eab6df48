/*
 * preflight.c: the preflight verdict: each device's estimate against what it has available, with
 * floors, the scope that binds, the bytes missing, the largest context that fits and guidance in
 * words. Pure arithmetic on plain structs; docs/preflight.md justifies every number.
 */
#include "policy/preflight.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The recommended margin over the estimate: the estimate's own accuracy goal (10%) and as much
 * again for what grows after the load (conversations' buffers, the allocator's slack). */
#define RECOMMENDED_MARGIN_DIVISOR 5   /* estimate / 5 = 20% */
#define CONTEXT_STEP 256               /* llama.cpp pads every context to a multiple of 256 */
#define MAX_CONTEXT (1 << 20)

const char *hr_preflight_verdict_name(hr_preflight_verdict verdict)
{
    switch (verdict) {
    case HR_PREFLIGHT_OK: return "ok";
    case HR_PREFLIGHT_WARN: return "warn";
    case HR_PREFLIGHT_REFUSE: return "refuse";
    }
    return "unknown";
}

uint64_t hr_preflight_device_total(const hr_preflight_device *device)
{
    return device->weights + device->kv + device->compute + device->overhead;
}

static const char *human(uint64_t bytes, char *buffer, size_t size)
{
    if (bytes >= (uint64_t)1 << 30) snprintf(buffer, size, "%.1f GiB", (double)bytes / (double)(1 << 30));
    else if (bytes >= (uint64_t)1 << 20) snprintf(buffer, size, "%.1f MiB", (double)bytes / (double)(1 << 20));
    else snprintf(buffer, size, "%.0f KiB", (double)bytes / 1024.0);
    return buffer;
}

static void append(char *buffer, size_t size, const char *format, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buffer, size_t size, const char *format, ...)
{
    size_t used = strlen(buffer);
    if (used + 1 >= size) return;
    va_list args;
    va_start(args, format);
    vsnprintf(buffer + used, size - used, format, args);
    va_end(args);
}

/* ---- one device ---------------------------------------------------------------------------- */

enum shortfall { SHORT_NONE, SHORT_UNKNOWN, SHORT_TOTAL, SHORT_AVAILABLE };

typedef struct device_check {
    hr_preflight_verdict verdict;
    enum shortfall kind;
    uint64_t estimate;
    uint64_t min_free, min_total, recommended_total;
    uint64_t need;              /* estimate + min_free: what must be available now */
    uint64_t recommended;       /* estimate * 1.2 + min_free: available for a comfortable load */
    uint64_t missing;
} device_check;

/* Floors: the host takes the configured ones; every default comes from the estimate and the
 * scope: min_free is the pressure classifier's critical band of the scope (a load that leaves
 * less would be unloaded again at once), min_total the estimate plus that, the recommended
 * total 20% more. GPUs always use the defaults. */
static void check_device(const hr_preflight_input *in, const hr_preflight_device *d, bool host, device_check *c)
{
    memset(c, 0, sizeof *c);
    c->estimate = hr_preflight_device_total(d);
    uint64_t margin = c->estimate / RECOMMENDED_MARGIN_DIVISOR;
    double critical = in->critical_free_percent > 0 ? in->critical_free_percent : 0;
    c->min_free = host && in->min_free ? in->min_free : (uint64_t)((double)d->total * critical / 100.0);
    c->min_total = host && in->min_total ? in->min_total : c->estimate + c->min_free;
    c->recommended_total = host && in->recommended_total ? in->recommended_total
                                                         : c->estimate + margin + c->min_free;
    c->need = c->estimate + c->min_free;
    c->recommended = c->estimate + margin + c->min_free;
    if (!d->memory_known) {
        c->verdict = HR_PREFLIGHT_WARN;
        c->kind = SHORT_UNKNOWN;
    } else if (d->total < c->min_total) {
        c->verdict = HR_PREFLIGHT_REFUSE;
        c->kind = SHORT_TOTAL;
        c->missing = c->min_total - d->total;
    } else if (d->available < c->need) {
        c->verdict = HR_PREFLIGHT_REFUSE;
        c->kind = SHORT_AVAILABLE;
        c->missing = c->need - d->available;
    } else if (d->total < c->recommended_total) {
        c->verdict = HR_PREFLIGHT_WARN;
        c->kind = SHORT_TOTAL;
        c->missing = c->recommended_total - d->total;
    } else if (d->available < c->recommended) {
        c->verdict = HR_PREFLIGHT_WARN;
        c->kind = SHORT_AVAILABLE;
        c->missing = c->recommended - d->available;
    }
}

/* The largest context (a multiple of 256) whose estimate fits this device's available memory
 * less its min_free; -1 when the device sets no bound (its needs do not grow with context). */
static int64_t device_max_context(const hr_preflight_input *in, const hr_preflight_device *d, const device_check *c)
{
    uint64_t per_token = d->kv_per_token + d->compute_per_token;
    if (!d->memory_known || per_token == 0) return -1;
    uint64_t grows = per_token * (uint64_t)(in->n_ctx > 0 ? in->n_ctx : 0);
    uint64_t fixed = c->estimate > grows ? c->estimate - grows : 0;
    uint64_t budget = d->available > c->min_free ? d->available - c->min_free : 0;
    if (budget <= fixed) return 0;
    uint64_t tokens = (budget - fixed) / per_token;
    if (tokens > MAX_CONTEXT) tokens = MAX_CONTEXT;
    return (int64_t)(tokens / CONTEXT_STEP * CONTEXT_STEP);
}

/* ---- guidance ------------------------------------------------------------------------------ */

/* Weight formats a smaller build of the model could use, largest first, in bits per weight
 * (llama.cpp's block sizes: Q8_0 34 bytes per 32 weights, Q4_K_M about 4.85 on average). */
static const struct { const char *name; double bits; } smaller_formats[] = {
    { "Q8_0", 8.5 }, { "Q6_K", 6.56 }, { "Q5_K_M", 5.69 }, { "Q4_K_M", 4.85 }, { "Q4_0", 4.5 },
};

/* The first sentence says what to free (or that the scope is too small); each alternative that
 * would work follows as its own "Or ..." sentence. */
static void write_guidance(const hr_preflight_input *in, const hr_preflight_device *d, const device_check *c,
                           int32_t max_ctx, char *out, size_t size)
{
    char a[32], b[32];
    out[0] = '\0';
    bool cgroup = strncmp(d->scope, "cgroup", 6) == 0;
    if (c->kind == SHORT_UNKNOWN) {
        append(out, size, "No source says how much memory %s has: check that /proc/meminfo (or the GPU's "
               "driver) can be read.", d->scope);
        return;
    }
    if (c->kind == SHORT_TOTAL)
        append(out, size, "%s is %s in all, %s short of what this model %s: %s.", d->scope,
               human(d->total, a, sizeof a), human(c->missing, b, sizeof b),
               c->verdict == HR_PREFLIGHT_REFUSE ? "needs" : "should have",
               cgroup ? "raise the container's memory limit" : d->is_gpu ? "use a GPU with more memory"
                                                                         : "use a machine with more memory");
    else
        append(out, size, "Free %s in %s: close programs that use memory or unload other models%s%s.",
               human(c->missing, a, sizeof a), d->scope, cgroup ? ", or raise the container's memory limit" : "",
               d->is_gpu ? ", or place fewer layers on the GPU (n_gpu_layers)" : "");

    uint64_t budget = d->available > c->min_free ? d->available - c->min_free : 0;
    if (max_ctx >= CONTEXT_STEP && max_ctx < in->n_ctx)
        append(out, size, " Or use a smaller context: up to %d tokens fit (--ctx %d).", max_ctx, max_ctx);
    if (in->kv_f16 && d->kv > 0) {
        uint64_t saving = d->kv - d->kv * 17 / 32;   /* q8_0: 34 bytes per 32 values against 64 */
        if (c->estimate - saving <= budget)
            append(out, size, " Or use a q8_0 KV cache (--type-k q8_0 --type-v q8_0): it saves %s.",
                   human(saving, a, sizeof a));
    }
    double bits = in->n_params > 0 ? (double)in->weight_bytes * 8.0 / (double)in->n_params : 0;
    const char *smallest = NULL;
    uint64_t smallest_need = 0;
    for (size_t i = 0; bits > 0 && i < sizeof smaller_formats / sizeof smaller_formats[0]; i++) {
        if (smaller_formats[i].bits > bits - 0.5) continue;   /* not meaningfully smaller */
        uint64_t weights = (uint64_t)((double)d->weights * smaller_formats[i].bits / bits);
        uint64_t need = c->estimate - d->weights + weights;
        smallest = smaller_formats[i].name;
        smallest_need = need;
        if (need <= budget) {
            append(out, size, " Or use a %s build of this model (about %.1f bits per weight, this one has %.1f): "
                   "it would need about %s.", smaller_formats[i].name, smaller_formats[i].bits, bits,
                   human(need, a, sizeof a));
            smallest = NULL;
            break;
        }
    }
    if (smallest)
        append(out, size, " Even a %s build would need about %s here.", smallest, human(smallest_need, a, sizeof a));
    if (in->fallback && in->fallback[0])
        append(out, size, " Or let the remote fall-back (%s) serve it.", in->fallback);
}

/* ---- the decision -------------------------------------------------------------------------- */

void hr_preflight_decide(const hr_preflight_input *in, hr_preflight_decision *out)
{
    memset(out, 0, sizeof *out);
    device_check checks[HR_PREFLIGHT_MAX_DEVICES];
    size_t n = in->n_devices < HR_PREFLIGHT_MAX_DEVICES ? in->n_devices : HR_PREFLIGHT_MAX_DEVICES;
    int64_t max_ctx = -1;
    size_t binding = 0;
    int64_t binding_slack = 0;
    for (size_t i = 0; i < n; i++) {
        const hr_preflight_device *d = &in->devices[i];
        check_device(in, d, i == 0 && !d->is_gpu, &checks[i]);
        out->total += checks[i].estimate;
        int64_t device_ctx = device_max_context(in, d, &checks[i]);
        if (device_ctx >= 0 && (max_ctx < 0 || device_ctx < max_ctx)) max_ctx = device_ctx;
        /* the binding device: the worst verdict, then the most missing, then the least to spare */
        int64_t slack = (int64_t)d->available - (int64_t)checks[i].need;
        if (i == 0 || checks[i].verdict > checks[binding].verdict ||
            (checks[i].verdict == checks[binding].verdict &&
             (checks[i].missing > checks[binding].missing ||
              (checks[i].missing == checks[binding].missing && slack < binding_slack)))) {
            binding = i;
            binding_slack = slack;
        }
    }
    if (n == 0) {
        out->verdict = HR_PREFLIGHT_WARN;
        append(out->reason, sizeof out->reason, "no estimate: the engine named no device");
        return;
    }
    /* the cap: the model's trained length (or the context asked for, if longer) */
    int64_t cap = in->n_ctx_train > in->n_ctx ? in->n_ctx_train : in->n_ctx;
    if (cap <= 0) cap = MAX_CONTEXT;
    if (max_ctx < 0 || max_ctx > cap) max_ctx = cap;
    out->max_ctx_that_fits = (int32_t)max_ctx;

    const hr_preflight_device *d = &in->devices[binding];
    const device_check *c = &checks[binding];
    out->verdict = c->verdict;
    out->binding_device = binding;
    snprintf(out->binding_scope, sizeof out->binding_scope, "%s", d->scope);
    out->available = d->available;
    out->missing = c->missing;
    out->min_free = checks[0].min_free;
    out->min_total = checks[0].min_total;
    out->recommended_total = checks[0].recommended_total;

    char a[32], b[32], e[32], f[32];
    switch (c->kind) {
    case SHORT_NONE:
        append(out->reason, sizeof out->reason, "fits: needs %s in %s (%s kept free), %s available",
                 human(c->estimate, a, sizeof a), d->scope, human(c->min_free, b, sizeof b),
                 human(d->available, e, sizeof e));
        break;
    case SHORT_UNKNOWN:
        append(out->reason, sizeof out->reason, "needs %s in %s, but how much it has available is unknown",
                 human(c->estimate, a, sizeof a), d->scope);
        break;
    case SHORT_TOTAL:
        append(out->reason, sizeof out->reason, "%s is %s in all, below the %s %s (%s short)", d->scope,
                 human(d->total, a, sizeof a), human(c->verdict == HR_PREFLIGHT_REFUSE ? c->min_total : c->recommended_total, b, sizeof b),
                 c->verdict == HR_PREFLIGHT_REFUSE ? "minimum" : "recommended", human(c->missing, e, sizeof e));
        break;
    case SHORT_AVAILABLE:
        if (c->verdict == HR_PREFLIGHT_REFUSE)
            append(out->reason, sizeof out->reason, "needs %s in %s (%s kept free), %s available: %s missing",
                     human(c->need, a, sizeof a), d->scope, human(c->min_free, b, sizeof b),
                     human(d->available, e, sizeof e), human(c->missing, f, sizeof f));
        else
            append(out->reason, sizeof out->reason, "fits in %s, but tightly: %s available, %s recommended (%s short)",
                     d->scope, human(d->available, a, sizeof a), human(c->recommended, b, sizeof b),
                     human(c->missing, e, sizeof e));
        break;
    }
    if (c->verdict != HR_PREFLIGHT_OK)
        write_guidance(in, d, c, out->max_ctx_that_fits, out->guidance, sizeof out->guidance);
}
