/*
 * available.c: effective available memory (the scope that binds) and the signals derived from
 * two samples: rates, stall shares, new cgroup events. Pure arithmetic on plain structs.
 */
#include <stdio.h>
#include <string.h>

#include "policy/pressure.h"

static void add_scope(hr_effective_memory *out, const char *name, uint64_t total, uint64_t available)
{
    if (out->n_scopes >= (int)(sizeof out->scopes / sizeof out->scopes[0])) return;
    hr_scope_memory *scope = &out->scopes[out->n_scopes++];
    snprintf(scope->name, sizeof scope->name, "%s", name);
    scope->total = total;
    scope->available = available < total ? available : total;
    if (!out->known || scope->available < out->binding.available) out->binding = *scope;
    out->known = true;
}

/* macOS keeps freed file pages as "inactive" and hands them out on demand, so free + inactive
 * is what an allocation can get without the compressor or swap; speculative pages are already
 * inside free_count (vm_stat shows them apart by subtracting). */
static uint64_t darwin_available(const hr_darwin_memory *d)
{
    return (d->free_pages + d->inactive_pages) * d->page_size;
}

void hr_effective_memory_compute(const hr_sample *sample, hr_effective_memory *out)
{
    hr_effective_memory_reusing(sample, 0, out);
}

void hr_effective_memory_reusing(const hr_sample *sample, uint64_t resident_file_bytes, hr_effective_memory *out)
{
    memset(out, 0, sizeof *out);
    if (sample->host.present && sample->host.total > 0)
        add_scope(out, "host", sample->host.total, sample->host.available);
    if (sample->darwin.present && sample->darwin.memsize > 0)
        add_scope(out, "macOS", sample->darwin.memsize, darwin_available(&sample->darwin));
    for (int i = 0; i < sample->n_cgroups && i < HR_MAX_CGROUP_LEVELS; i++) {
        const hr_cgroup_level *cg = &sample->cgroups[i];
        /* memory.high is where the kernel starts throttling: for a process that must not stall,
         * that is the limit that counts. */
        uint64_t limit = cg->max < cg->high ? cg->max : cg->high;
        if (limit == HR_UNLIMITED) continue;
        uint64_t headroom = cg->current < limit ? limit - cg->current : 0;
        /* The file's pages that are resident count in `current`. A load that maps the file
         * needs no new memory for them, but keeps them: so it can have the headroom, the inactive
         * page cache that is not its file, and its file's pages. Which of those pages are on the
         * inactive list is not known, so the file counts only where it is more than the inactive
         * list: max(inactive, file) is never more than the truth (docs/preflight.md). */
        uint64_t reclaimable = cg->inactive_file > resident_file_bytes ? cg->inactive_file : resident_file_bytes;
        uint64_t available = headroom + reclaimable;
        char name[HR_SCOPE_NAME_MAX];
        snprintf(name, sizeof name, "cgroup %.200s (%s)", cg->path[0] ? cg->path : "/",
                 cg->high < cg->max ? "memory.high" : cg->version == 1 ? "memory.limit_in_bytes" : "memory.max");
        add_scope(out, name, limit, available);
    }
}

static double per_second(uint64_t before, uint64_t after, double interval)
{
    return after > before ? (double)(after - before) / interval : 0.0;  /* a reset counts as none */
}

static double stall_share(const hr_psi_line *before, const hr_psi_line *after, double interval)
{
    double share = per_second(before->total_us, after->total_us, interval) / 1e6 * 100.0;
    return share > 100.0 ? 100.0 : share;
}

static uint64_t grown(uint64_t before, uint64_t after)
{
    return after > before ? after - before : 0;
}

void hr_pressure_signals_compute(const hr_sample *previous, const hr_sample *current,
                                 hr_pressure_signals *out)
{
    memset(out, 0, sizeof *out);
    hr_effective_memory_compute(current, &out->memory);
    out->free_percent = 100.0;
    if (out->memory.known && out->memory.binding.total > 0)
        out->free_percent = (double)out->memory.binding.available / (double)out->memory.binding.total * 100.0;
    if (current->host.present) {
        out->swap_total = current->host.swap_total;
        out->swap_used = current->host.swap_total > current->host.swap_free
                             ? current->host.swap_total - current->host.swap_free : 0;
    }
    if (current->psi_host.present) {
        out->stall_some_avg10 = current->psi_host.some.avg10;
        out->stall_full_avg10 = current->psi_host.full.avg10;
    }
    if (current->psi_cgroup.present && current->psi_cgroup.some.avg10 > out->stall_some_avg10) {
        out->stall_some_avg10 = current->psi_cgroup.some.avg10;
        out->stall_full_avg10 = current->psi_cgroup.full.avg10;
    }
    if (current->darwin.present) out->darwin_level = current->darwin.pressure_level;

    if (!previous) return;
    double interval = current->timestamp - previous->timestamp;
    if (interval <= 0) return;
    out->interval = interval;

    if (previous->host.vmstat_present && current->host.vmstat_present) {
        out->rates_known = true;
        out->swap_in_per_second = per_second(previous->host.pswpin, current->host.pswpin, interval);
        out->swap_out_per_second = per_second(previous->host.pswpout, current->host.pswpout, interval);
        out->major_faults_per_second = per_second(previous->host.pgmajfault, current->host.pgmajfault, interval);
    } else if (previous->darwin.present && current->darwin.present) {
        out->rates_known = true;
        out->swap_in_per_second = per_second(previous->darwin.swapins, current->darwin.swapins, interval);
        out->swap_out_per_second = per_second(previous->darwin.swapouts, current->darwin.swapouts, interval);
    }

    const hr_psi *scopes[2][2] = { { &previous->psi_host, &current->psi_host },
                                   { &previous->psi_cgroup, &current->psi_cgroup } };
    for (int i = 0; i < 2; i++) {
        const hr_psi *before = scopes[i][0], *after = scopes[i][1];
        if (!before->present || !after->present) continue;
        out->stall_known = true;
        double some = stall_share(&before->some, &after->some, interval);
        if (some > out->stall_some_percent) out->stall_some_percent = some;
        if (before->has_full && after->has_full) {
            double full = stall_share(&before->full, &after->full, interval);
            if (full > out->stall_full_percent) out->stall_full_percent = full;
        }
    }

    /* Events are matched level by level; a changed cgroup path (the process moved) counts none. */
    for (int i = 0; i < current->n_cgroups && i < previous->n_cgroups && i < HR_MAX_CGROUP_LEVELS; i++) {
        const hr_cgroup_level *before = &previous->cgroups[i], *after = &current->cgroups[i];
        if (!before->events_present || !after->events_present || strcmp(before->path, after->path) != 0) continue;
        out->new_high_events += grown(before->events_high, after->events_high);
        out->new_max_events += grown(before->events_max, after->events_max);
        out->new_oom_events += grown(before->events_oom, after->events_oom) +
                               grown(before->events_oom_kill, after->events_oom_kill);
    }
}
