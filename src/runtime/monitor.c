/*
 * monitor.c: the "hr-monitor" thread: it waits on the kernel's pressure notifications and a
 * timeout, samples every source, classifies (policy/, pure) and publishes level changes.
 * It samples fast while anything moves and backs off to a slow interval when all is quiet, so
 * that its idle cost is a few reads a second. No policy here beyond "is anything moving".
 */
#include "runtime/monitor.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "runtime/context.h"
#include "core/error.h"
#include "core/log.h"
#include "platform/platform.h"
#include "probe/probe.h"

enum {
    MAX_SOURCES = 6,
    RING = 32,              /* recent samples, to measure rates over a steady window */
};

/* Rates and stall shares are measured over at least this long: over one 20 ms interval a
 * single short stall would look like a crisis. */
static const double RATE_WINDOW = 0.2;

struct source {
    int fd;
    short events;           /* POLLPRI for PSI triggers, POLLIN for eventfds and pipes */
    bool readable;          /* has bytes to drain when it fires (an eventfd or a pipe) */
    char name[96];
};

struct hr_monitor {
    hr_pressure_thresholds thresholds;          /* immutable after start */
    double interval_min, interval_max;
    bool interval_max_auto;             /* decided by open_sources from what the kernel offers */
    hr_event_bus *events;
    char detection[256];
    struct source sources[MAX_SOURCES]; /* owned by the thread once it runs */
    int n_sources;
    int wake[2];                        /* a pipe: a byte written to wake[1] stops the thread */
    pthread_t thread;

    pthread_mutex_t lock;               /* guards everything below */
    pthread_cond_t updated;             /* broadcast after each classification */
    bool ready;                         /* a classification with rates exists */
    hr_sample current;
    hr_pressure_signals signals;
    hr_classification classification;
    enum hr_pressure_level fresh_level;               /* the same signals classified without the hold */
};

void hr_pressure_fill(const hr_sample *sample, const hr_pressure_signals *signals,
                      const hr_classification *classification, const char *detection,
                      hr_pressure *out)
{
    memset(out, 0, sizeof *out);
    out->level = (enum hr_pressure_level)classification->level;
    out->free_percent = signals->free_percent;
    out->swap_used_bytes = signals->swap_used;
    out->page_ins = sample->host.pswpin;
    out->page_outs = sample->host.pswpout;
    if (sample->darwin.present) {
        out->page_ins = sample->darwin.swapins;
        out->page_outs = sample->darwin.swapouts;
    }
    out->page_ins_per_second = signals->swap_in_per_second;
    out->page_outs_per_second = signals->swap_out_per_second;
    out->stall_some_percent = signals->stall_some_percent;
    out->stall_full_percent = signals->stall_full_percent;
    out->stall_some_avg10 = signals->stall_some_avg10;
    out->effective_available_bytes = signals->memory.binding.available;
    out->effective_total_bytes = signals->memory.binding.total;
    snprintf(out->binding_scope, sizeof out->binding_scope, "%s",
             signals->memory.known ? signals->memory.binding.name : "unknown");
    snprintf(out->reason, sizeof out->reason, "%s", classification->reason);
    snprintf(out->detection, sizeof out->detection, "%s", detection);
    out->sampled_at = sample->timestamp;
}

/* ---- event sources -------------------------------------------------------------------------- */

static void add_source(hr_monitor *m, int fd, short events, bool readable, const char *name)
{
    if (m->n_sources >= MAX_SOURCES) {
        close(fd);
        return;
    }
    struct source *s = &m->sources[m->n_sources++];
    s->fd = fd;
    s->events = events;
    s->readable = readable;
    snprintf(s->name, sizeof s->name, "%s", name);
}

/* A PSI trigger wakes the monitor within the window instead of at the next sample. Unprivileged
 * processes may only register windows that are multiples of 2 s, which fire on the kernel's
 * 2 s averaging tick: slower than sampling, but still a wake-up, so it is kept. */
static const char *open_psi_trigger(hr_monitor *m, const char *rooted_path)
{
    static const struct { uint64_t stall_us, window_us; const char *label; } tries[] = {
        { 100000, 1000000, "1 s window" },
        { 200000, 2000000, "2 s window" },
    };
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        int fd = -1;
        int rc = hr_psi_trigger_open(rooted_path, "some", tries[i].stall_us, tries[i].window_us, &fd);
        if (rc == HR_OK) {
            add_source(m, fd, POLLPRI, false, rooted_path);
            return tries[i].label;
        }
        if (rc != HR_ENOTSUP && rc != HR_EINVAL) break;   /* absent or not writable: no retry */
    }
    return NULL;
}

#if defined(__linux__)
/* A kernel without PSI (CONFIG_PSI off, or psi=0 on its command line) reports no stalls, and
 * stall shares of 0 would read as "no stall": the detection line says they are not measured,
 * so /api/memory and the logs tell the two apart. Levels still come from the memory figures. */
static void note_missing_psi(const char *rooted_path, size_t *used, char *detection, size_t capacity)
{
    hr_psi psi;
    if (hr_psi_read(NULL, "/proc/pressure/memory", &psi) == HR_OK && psi.present) return;
    if (*used < capacity)
        *used += (size_t)snprintf(detection + *used, capacity - *used,
                                  "PSI unavailable (no %s): stall shares are not measured; ", rooted_path);
}
#endif

static void open_sources(hr_monitor *m)
{
    char detection[256] = "";
    size_t used = 0;

    char path[HR_FS_PATH_MAX];
    const char *window = NULL;
    if (hr_fs_path(NULL, "/proc/pressure/memory", path, sizeof path) == HR_OK)
        window = open_psi_trigger(m, path);
    if (window)
        used += (size_t)snprintf(detection + used, sizeof detection - used, "PSI trigger (%s); ", window);

    /* A 1 s PSI trigger or v1 pressure_level events wake the monitor when memory starts to
     * stall, so quiet sampling can be slow; a 2 s trigger fires late or (measured here) not at
     * all, so it does not count. */
    bool prompt_wakeups = window && strcmp(window, "1 s window") == 0;
    hr_cgroup_location *location = malloc(sizeof *location);
    if (location && hr_cgroup_locate(NULL, location) == HR_OK) {
        if (location->unified_directory[0]) {
            char pressure[HR_FS_PATH_MAX + 32];
            snprintf(pressure, sizeof pressure, "%s/memory.pressure", location->unified_directory);
            const char *cgroup_window = open_psi_trigger(m, pressure);
            if (cgroup_window && used < sizeof detection)
                used += (size_t)snprintf(detection + used, sizeof detection - used,
                                         "cgroup PSI trigger (%s); ", cgroup_window);
        }
        if (location->version == 1) {
            /* "low" also fires on harmless page-cache reclaim: only medium and critical wake us. */
            static const char *const levels[] = { "medium", "critical" };
            int opened = 0;
            for (int i = 0; i < 2; i++) {
                int fd = -1;
                if (hr_cgroup_pressure_level_open(location->directory, levels[i], &fd) == HR_OK) {
                    add_source(m, fd, POLLIN, true, levels[i]);
                    opened++;
                }
            }
            if (opened > 0) prompt_wakeups = true;
            if (opened > 0 && used < sizeof detection)
                used += (size_t)snprintf(detection + used, sizeof detection - used,
                                         "cgroup v1 memory.pressure_level events; ");
        }
    }
    free(location);
#if defined(__linux__)
    note_missing_psi(path, &used, detection, sizeof detection);
#endif
#if defined(__APPLE__)
    int darwin_fd = -1;
    if (hr_darwin_pressure_source_open(&darwin_fd) == HR_OK) {
        add_source(m, darwin_fd, POLLIN, true, "macOS memory-pressure source");
        prompt_wakeups = true;
        if (used < sizeof detection)
            used += (size_t)snprintf(detection + used, sizeof detection - used, "macOS dispatch memory-pressure source; ");
    }
#endif
    hr_clear_error();   /* absent sources are normal; their sentences are not the caller's */
    if (m->interval_max_auto) m->interval_max = prompt_wakeups ? 1.0 : 0.25;
    if (m->interval_max < m->interval_min) m->interval_max = m->interval_min;
    if (used < sizeof detection)
        snprintf(detection + used, sizeof detection - used, "sampling every %.0f ms (moving) to %.0f ms (quiet)",
                 m->interval_min * 1000, m->interval_max * 1000);
    memcpy(m->detection, detection, sizeof m->detection);
}

/* ---- the thread ----------------------------------------------------------------------------- */

/* The newest sample at least RATE_WINDOW older than the newest of all, else the oldest. */
static const hr_sample *reference_sample(const hr_sample *ring, int count, int newest)
{
    const hr_sample *current = &ring[newest];
    const hr_sample *oldest = NULL;
    for (int age = 1; age < count; age++) {
        const hr_sample *s = &ring[(newest - age + RING) % RING];
        if (current->timestamp - s->timestamp >= RATE_WINDOW) return s;
        oldest = s;
    }
    return oldest;
}

/* Whether anything moves: then the next sample comes soon. */
static bool moving(const hr_pressure_signals *signals, const hr_classification *classification,
                   const hr_sample *previous, const hr_sample *current)
{
    if (classification->level != HR_PRESSURE_NORMAL) return true;
    if (signals->stall_known && signals->stall_some_percent > 0.1) return true;
    if (signals->rates_known && signals->swap_in_per_second + signals->swap_out_per_second > 0) return true;
    if (previous) {
        hr_effective_memory before, after;
        hr_effective_memory_compute(previous, &before);
        hr_effective_memory_compute(current, &after);
        if (before.known && after.known && after.binding.total > 0 &&
            before.binding.available > after.binding.available &&
            (double)(before.binding.available - after.binding.available) > 0.01 * (double)after.binding.total)
            return true;
    }
    return false;
}

static void drain(struct source *s)
{
    if (!s->readable) return;   /* a PSI trigger has nothing to read */
    /* an eventfd gives its 8-byte count, a pipe its bytes: read until it would block */
    char bytes[64];
    while (read(s->fd, bytes, sizeof bytes) > 0) {
    }
}

static void *monitor_main(void *arg)
{
    hr_monitor *m = arg;
    hr_thread_set_name("hr-monitor");
    hr_sample *ring = calloc(RING, sizeof *ring);
    if (!ring) {
        hr_log(HR_LOG_ERROR, "pressure monitor: out of memory; pressure is not monitored");
        return NULL;
    }
    hr_classifier_state state = { 0 };
    hr_probe_state *probe = calloc(1, sizeof *probe);   /* the cgroup location, kept between ticks */
    if (!probe) {
        free(ring);
        hr_log(HR_LOG_ERROR, "pressure monitor: out of memory; pressure is not monitored");
        return NULL;
    }
    int newest = -1, count = 0;
    double interval = m->interval_min;
    struct pollfd fds[MAX_SOURCES + 1];
    int broken_logged = 0;

    for (;;) {
        int slot = (newest + 1) % RING;
        int rc = hr_probe_sample_with(NULL, probe, hr_now_seconds(), &ring[slot]);
        if (rc != HR_OK && !broken_logged++)
            hr_log(HR_LOG_WARN, "pressure monitor: %s (the other sources are still used)", hr_last_error());
        const hr_sample *previous = count > 0 ? &ring[newest] : NULL;
        newest = slot;
        if (count < RING) count++;

        hr_pressure_signals signals;
        hr_classification classification;
        enum hr_pressure_level before = state.level;
        hr_pressure_signals_compute(reference_sample(ring, count, newest), &ring[newest], &signals);
        hr_classify(&signals, &m->thresholds, &state, ring[newest].timestamp, &classification);
        /* Without the hold: what memory looks like now, so the lifecycle stops unloading as soon
         * as an unload has brought it back, while the held level still says warn. */
        hr_classifier_state scratch = { 0 };
        hr_classification fresh;
        hr_classify(&signals, &m->thresholds, &scratch, ring[newest].timestamp, &fresh);

        pthread_mutex_lock(&m->lock);
        m->current = ring[newest];
        m->signals = signals;
        m->classification = classification;
        m->fresh_level = fresh.level;
        if (count >= 2) m->ready = true;
        pthread_cond_broadcast(&m->updated);
        pthread_mutex_unlock(&m->lock);

        if (classification.changed) {
            hr_log(HR_LOG_INFO, "memory pressure %s -> %s: %s", hr_pressure_level_name(before),
                   hr_pressure_level_name(classification.level), classification.reason);
            hr_event event = {
                .type = HR_EVENT_PRESSURE,
                .timestamp = ring[newest].timestamp,
                .level = (enum hr_pressure_level)classification.level,
                .previous_level = (enum hr_pressure_level)before,
                .reason = classification.reason,
            };
            hr_events_publish(m->events, &event);
        }

        bool fast = moving(&signals, &classification, previous, &ring[newest]);
        interval = fast ? m->interval_min : fmin(interval * 2, m->interval_max);

        int n = 0;
        fds[n++] = (struct pollfd){ .fd = m->wake[0], .events = POLLIN };
        for (int i = 0; i < m->n_sources; i++)
            fds[n++] = (struct pollfd){ .fd = m->sources[i].fd, .events = m->sources[i].events };
        int ready = poll(fds, (nfds_t)n, (int)(interval * 1000 + 0.5));
        if (ready < 0 && errno != EINTR) {
            hr_log(HR_LOG_ERROR, "pressure monitor: poll failed: %s", strerror(errno));
            usleep((useconds_t)(interval * 1e6));
            continue;
        }
        if (ready > 0 && (fds[0].revents & POLLIN)) break;
        for (int i = 1; i < n; i++) {
            struct source *s = &m->sources[i - 1];
            if (fds[i].revents & (POLLERR | POLLNVAL)) {
                /* the cgroup went away: its file can no longer signal */
                hr_log(HR_LOG_WARN, "pressure monitor: event source %s failed; sampling goes on", s->name);
                close(s->fd);
                m->sources[i - 1] = m->sources[--m->n_sources];
                break;
            }
            if (fds[i].revents) {
                drain(s);
                interval = m->interval_min;
            }
        }
    }
    free(probe);
    free(ring);
    return NULL;
}

int hr_monitor_start(const hr_monitor_params *params, hr_monitor **out)
{
    *out = NULL;
    if (!(params->interval_min > 0) || params->interval_max > 60 ||
        !(params->interval_max == 0 || params->interval_max >= params->interval_min))
        return hr_fail(HR_EINVAL, "sample intervals must satisfy 0 < min <= max <= 60 s, or max 0 for "
                       "automatic (got %g and %g)", params->interval_min, params->interval_max);
    hr_monitor *m = calloc(1, sizeof *m);
    if (!m) return hr_fail(HR_ENOMEM, "out of memory starting the pressure monitor");
    m->thresholds = params->thresholds;
    m->interval_min = params->interval_min;
    m->interval_max = params->interval_max;
    m->interval_max_auto = params->interval_max == 0;
    m->events = params->events;
    /* a pipe, not an eventfd: the same code wakes the thread on Linux and on macOS */
    if (pipe(m->wake) != 0) {
        int error = errno;
        free(m);
        return hr_fail(HR_EIO, "cannot create a pipe for the pressure monitor: %s", strerror(error));
    }
    for (int i = 0; i < 2; i++) fcntl(m->wake[i], F_SETFD, FD_CLOEXEC);
    pthread_mutex_init(&m->lock, NULL);
    hr_cond_init_monotonic(&m->updated);
    open_sources(m);
    int rc = pthread_create(&m->thread, NULL, monitor_main, m);
    if (rc != 0) {
        for (int i = 0; i < m->n_sources; i++) close(m->sources[i].fd);
        close(m->wake[0]);
        close(m->wake[1]);
        pthread_mutex_destroy(&m->lock);
        pthread_cond_destroy(&m->updated);
        free(m);
        return hr_fail(HR_EIO, "cannot start the pressure monitor thread: %s", strerror(rc));
    }
    hr_log(HR_LOG_INFO, "pressure monitor started: %s", m->detection);
    *out = m;
    return HR_OK;
}

void hr_monitor_stop(hr_monitor *m)
{
    if (!m) return;
    char one = 1;
    if (write(m->wake[1], &one, 1) != 1)
        hr_log(HR_LOG_ERROR, "pressure monitor: cannot wake the thread to stop it: %s", strerror(errno));
    pthread_join(m->thread, NULL);
    for (int i = 0; i < m->n_sources; i++) close(m->sources[i].fd);
    close(m->wake[0]);
    close(m->wake[1]);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->updated);
    free(m);
}

int hr_monitor_pressure(hr_monitor *m, double wait_seconds, hr_pressure *out)
{
    pthread_mutex_lock(&m->lock);
    if (!m->ready && wait_seconds > 0) {
        double deadline = hr_now_seconds() + wait_seconds;
        while (!m->ready && hr_cond_wait_until(&m->updated, &m->lock, deadline) == 0) {
        }
    }
    if (!m->ready) {
        pthread_mutex_unlock(&m->lock);
        return hr_fail(HR_EBUSY, "the pressure monitor has not produced a reading yet; try again");
    }
    hr_pressure_fill(&m->current, &m->signals, &m->classification, m->detection, out);
    pthread_mutex_unlock(&m->lock);
    return HR_OK;
}

bool hr_monitor_level(hr_monitor *m, enum hr_pressure_level *out)
{
    pthread_mutex_lock(&m->lock);
    bool ready = m->ready;
    *out = m->classification.level;
    pthread_mutex_unlock(&m->lock);
    return ready;
}

bool hr_monitor_levels(hr_monitor *m, enum hr_pressure_level *held, enum hr_pressure_level *fresh)
{
    pthread_mutex_lock(&m->lock);
    bool ready = m->ready;
    *held = m->classification.level;
    *fresh = m->fresh_level;
    pthread_mutex_unlock(&m->lock);
    return ready;
}
