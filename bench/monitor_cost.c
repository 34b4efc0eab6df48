/*
 * monitor_cost.c: the idle cost of headroom's pressure monitor, in CPU time per hour and as a
 * share of one core, against two peers measured side by side in the same run:
 *
 *   monitor   hr_context_create with the default params (the monitor thread on)
 *   off       the same with monitor = false: the process's own cost at idle (about nothing)
 *   poll      monitor = false plus a naive poller thread that reads /proc/meminfo every 250 ms
 *   quiet1s   the monitor with sample_interval_max = 1 s (a public parameter): how the cost scales
 *
 * Each variant is a fresh process (this program run again with --variant), so that
 * getrusage(RUSAGE_SELF) sees only it. A variant creates its context, takes the process CPU time
 * (user + system), sleeps for W seconds of wall time on the main thread, and takes it again.
 * It also reads its worker thread's own CPU time (/proc/self/task/TID/schedstat) and voluntary
 * context switches (each wait in poll() or nanosleep() is one: a count of wake-ups, which for
 * the monitor is its count of samples).
 *
 * usage: bench_monitor_cost [--seconds W]           (default 60; all four side by side)
 *        bench_monitor_cost --variant monitor|off|poll|quiet1s [--seconds W]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "headroom.h"

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void sleep_until(double deadline)
{
    for (;;) {
        double left = deadline - now_seconds();
        if (left <= 0) return;
        struct timespec t = { (time_t)left, (long)((left - floor(left)) * 1e9) };
        nanosleep(&t, NULL);
    }
}

static double process_cpu(double *user, double *system)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    *user = (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec * 1e-6;
    *system = (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec * 1e-6;
    return *user + *system;
}

static int read_text(const char *path, char *buffer, size_t capacity)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buffer, capacity - 1);
    close(fd);
    if (n < 0) return -1;
    buffer[n] = '\0';
    return (int)n;
}

/* The id of this process's thread named `name`, or 0. */
static pid_t find_thread(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0;
    pid_t found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[300], comm[64];
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        if (read_text(path, comm, sizeof comm) <= 0) continue;
        comm[strcspn(comm, "\n")] = '\0';
        if (strcmp(comm, name) == 0) found = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return found;
}

struct thread_stats {
    bool known;
    double cpu;                 /* seconds on a CPU */
    unsigned long long wakeups; /* voluntary context switches */
};

static struct thread_stats thread_stats(pid_t tid)
{
    struct thread_stats s = { false, 0, 0 };
    if (tid <= 0) return s;
    char path[96], text[2048];
    snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", (int)tid);
    if (read_text(path, text, sizeof text) <= 0) return s;
    s.cpu = (double)strtoull(text, NULL, 10) * 1e-9;
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    if (read_text(path, text, sizeof text) <= 0) return s;
    const char *v = strstr(text, "\nvoluntary_ctxt_switches:");
    if (!v) return s;
    s.wakeups = strtoull(v + strlen("\nvoluntary_ctxt_switches:"), NULL, 10);
    s.known = true;
    return s;
}

/* ---- the naive poller: /proc/meminfo every 250 ms ------------------------------------------ */

static atomic_bool poll_stop;
static atomic_ullong poll_sink;   /* so the parse is not optimized away */

static void *naive_poll_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "naive-poll");
    double next = now_seconds();
    while (!atomic_load(&poll_stop)) {
        char text[8192];
        if (read_text("/proc/meminfo", text, sizeof text) > 0) {
            const char *a = strstr(text, "MemAvailable:");
            const char *t = strstr(text, "MemTotal:");
            if (a && t) {
                unsigned long long available = strtoull(a + 13, NULL, 10);
                unsigned long long total = strtoull(t + 9, NULL, 10);
                atomic_store(&poll_sink, total > 0 ? available * 100 / total : 0);
            }
        }
        next += 0.25;
        sleep_until(next);
    }
    return NULL;
}

/* ---- one variant, in its own process -------------------------------------------------------- */

static int run_variant(const char *variant, double seconds)
{
    bool quiet1s = strcmp(variant, "quiet1s") == 0;
    bool monitor = strcmp(variant, "monitor") == 0 || quiet1s;
    bool naive = strcmp(variant, "poll") == 0;
    if (!monitor && !naive && strcmp(variant, "off") != 0) {
        fprintf(stderr, "bench_monitor_cost: unknown variant %s (monitor, off, poll, quiet1s)\n", variant);
        return 2;
    }
    hr_context_params params = hr_context_default_params();
    params.monitor = monitor;
    if (quiet1s) params.sample_interval_max = 1.0;
    hr_context *ctx = NULL;
    if (hr_context_create(&params, &ctx) != HR_OK) {
        fprintf(stderr, "bench_monitor_cost: hr_context_create: %s\n", hr_last_error());
        return 1;
    }
    pthread_t poller;
    if (naive && pthread_create(&poller, NULL, naive_poll_main, NULL) != 0) {
        fprintf(stderr, "bench_monitor_cost: cannot start the poller thread\n");
        return 1;
    }
    pid_t tid = 0;
    if (monitor || naive) {
        for (int i = 0; i < 100 && tid == 0; i++) {
            tid = find_thread(monitor ? "hr-monitor" : "naive-poll");
            if (!tid) sleep_until(now_seconds() + 0.01);
        }
    }

    double user0, system0, user1, system1;
    struct thread_stats before = thread_stats(tid);
    double cpu0 = process_cpu(&user0, &system0);
    double wall0 = now_seconds();
    sleep_until(wall0 + seconds);
    double wall1 = now_seconds();
    double cpu1 = process_cpu(&user1, &system1);
    struct thread_stats after = thread_stats(tid);

    if (naive) {
        atomic_store(&poll_stop, true);
        pthread_join(poller, NULL);
    }
    hr_context_free(ctx);
    printf("variant=%s wall=%.6f cpu=%.6f user=%.6f system=%.6f thread_known=%d thread_cpu=%.6f wakeups=%llu\n",
           variant, wall1 - wall0, cpu1 - cpu0, user1 - user0, system1 - system0,
           before.known && after.known ? 1 : 0, after.cpu - before.cpu, after.wakeups - before.wakeups);
    return 0;
}

/* ---- the driver: the three side by side ----------------------------------------------------- */

struct outcome {
    const char *variant, *label;
    bool ok;
    double wall, cpu, user, system, thread_cpu;
    int thread_known;
    unsigned long long wakeups;
};

static int drive(const char *self, double seconds)
{
    enum { N = 4 };
    struct outcome out[N] = {
        { .variant = "monitor", .label = "headroom monitor (default params)" },
        { .variant = "off", .label = "monitor = false (process baseline)" },
        { .variant = "poll", .label = "naive /proc/meminfo poll, 250 ms" },
        { .variant = "quiet1s", .label = "monitor, sample_interval_max 1 s" },
    };
    pid_t pids[N];
    int pipes[N];
    char seconds_text[32];
    snprintf(seconds_text, sizeof seconds_text, "%.3f", seconds);
    fflush(NULL);
    for (int i = 0; i < N; i++) {
        int p[2];
        if (pipe(p) != 0) {
            perror("pipe");
            return 1;
        }
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("fork");
            return 1;
        }
        if (pids[i] == 0) {
            dup2(p[1], STDOUT_FILENO);
            close(p[0]);
            close(p[1]);
            execl(self, self, "--variant", out[i].variant, "--seconds", seconds_text, (char *)NULL);
            _exit(127);
        }
        close(p[1]);
        pipes[i] = p[0];
    }
    printf("idle cost over %.0f s of wall time; the variants run side by side, each its own process\n\n",
           seconds);
    int failures = 0;
    for (int i = 0; i < N; i++) {
        char line[512] = "";
        FILE *f = fdopen(pipes[i], "r");
        if (!f || !fgets(line, sizeof line, f)) line[0] = '\0';
        if (f) fclose(f);
        int status = 0;
        waitpid(pids[i], &status, 0);
        char variant[32];
        out[i].ok = sscanf(line,
                           "variant=%31s wall=%lf cpu=%lf user=%lf system=%lf thread_known=%d thread_cpu=%lf "
                           "wakeups=%llu",
                           variant, &out[i].wall, &out[i].cpu, &out[i].user, &out[i].system, &out[i].thread_known,
                           &out[i].thread_cpu, &out[i].wakeups) == 8 &&
                    WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!out[i].ok) failures++;
    }
    printf("%-36s %9s %11s %9s %11s %10s %13s %11s\n", "variant", "CPU s", "CPU s/hour", "% of core",
           "user/sys s", "thread s", "wake-ups/s", "us/wake-up");
    for (int i = 0; i < N; i++) {
        const struct outcome *o = &out[i];
        if (!o->ok) {
            printf("%-36s failed\n", o->label);
            continue;
        }
        char thread_cpu[32] = "-", rate[32] = "-", per[32] = "-", split[32];
        snprintf(split, sizeof split, "%.3f/%.3f", o->user, o->system);
        if (o->thread_known && i != 1) {
            snprintf(thread_cpu, sizeof thread_cpu, "%.4f", o->thread_cpu);
            snprintf(rate, sizeof rate, "%.2f", (double)o->wakeups / o->wall);
            if (o->wakeups > 0) snprintf(per, sizeof per, "%.0f", o->thread_cpu / (double)o->wakeups * 1e6);
        }
        printf("%-36s %9.4f %11.2f %8.4f%% %11s %10s %13s %11s\n", o->label, o->cpu, o->cpu / o->wall * 3600,
               o->cpu / o->wall * 100, split, thread_cpu, rate, per);
    }
    if (out[0].ok) {
        double percent = out[0].cpu / out[0].wall * 100;
        printf("\nheadroom monitor: %.2f CPU s per hour, %.4f%% of one core", out[0].cpu / out[0].wall * 3600, percent);
        if (out[1].ok)
            printf(" (%.4f%% above the monitor = false process)",
                   percent - out[1].cpu / out[1].wall * 100);
        printf("\n");
        if (out[2].ok && out[2].cpu > 0)
            printf("monitor / naive poller CPU: %.2f\n", out[0].cpu / out[2].cpu);
        printf("goal (under 0.1%% of one core): %s\n", percent < 0.1 ? "met" : "MISSED");
        if (out[3].ok)
            printf("with sample_interval_max 1 s: %.4f%% of one core (%s)\n", out[3].cpu / out[3].wall * 100,
                   out[3].cpu / out[3].wall * 100 < 0.1 ? "under 0.1%" : "still over 0.1%");
    }
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        { "seconds", required_argument, NULL, 's' },
        { "variant", required_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    double seconds = 60;
    const char *variant = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 's': seconds = atof(optarg); break;
        case 'V': variant = optarg; break;
        case 'h':
            printf("usage: bench_monitor_cost [--seconds W] [--variant monitor|off|poll|quiet1s]\n");
            return 0;
        default: return 2;
        }
    }
    if (!(seconds > 0)) {
        fprintf(stderr, "bench_monitor_cost: --seconds must be positive\n");
        return 2;
    }
    if (variant) return run_variant(variant, seconds);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        perror("readlink /proc/self/exe");
        return 1;
    }
    self[n] = '\0';
    return drive(self, seconds);
}
