/*
 * test_pressure_live.c: real memory pressure, contained: the test moves itself into a child
 * memory cgroup with a 256 MiB limit, a hog in the same cgroup takes memory step by step, and
 * the monitor must report warn, then critical, then normal after the hog exits, with no OOM
 * kill. Skipped, with the reason, where no child memory cgroup can be made (not root, no
 * cgroup mount, no delegated memory controller).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "headroom.h"

#define MiB (1024L * 1024L)
static const long LIMIT_MIB = 256;

struct cgroup {
    int version;
    char parent[1024];   /* the directory the test started in */
    char child[1100];    /* the limited directory made for the test */
};

static struct cgroup group;
static char skip_reason[1600];
static pid_t hog_pid;   /* killed at exit even when an assertion ends the test early */

static bool write_file(const char *directory, const char *name, const char *text)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", directory, name);
    FILE *f = fopen(path, "w");
    if (!f) return false;
    bool ok = fputs(text, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    return ok;
}

static long read_key(const char *directory, const char *name, const char *key)
{
    char path[1200], line[256];
    snprintf(path, sizeof path, "%s/%s", directory, name);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long value = -1;
    size_t key_length = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, key_length) == 0 && line[key_length] == ' ') value = atol(line + key_length + 1);
    fclose(f);
    return value;
}

/* The own memory cgroup's directory: v1 ("N:...memory...:/path") first, else v2 ("0::/path"). */
static bool find_own_cgroup(struct cgroup *g)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return false;
    char line[2048];
    bool found = false;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *controllers = strchr(line, ':');
        char *path = controllers ? strchr(controllers + 1, ':') : NULL;
        if (!path) continue;
        *path++ = '\0';
        controllers++;
        char list[256];
        snprintf(list, sizeof list, ",%s,", controllers);
        if (strstr(list, ",memory,")) {
            snprintf(g->parent, sizeof g->parent, "/sys/fs/cgroup/memory%s", strcmp(path, "/") ? path : "");
            g->version = 1;
            found = true;
            break;
        }
        if (controllers[0] == '\0' && !found) {
            snprintf(g->parent, sizeof g->parent, "/sys/fs/cgroup%s", strcmp(path, "/") ? path : "");
            g->version = 2;
            found = true;   /* keep looking: a v1 memory line wins */
        }
    }
    fclose(f);
    return found;
}

static bool make_limited_cgroup(void)
{
    if (geteuid() != 0) {
        snprintf(skip_reason, sizeof skip_reason, "not root: cannot create a child memory cgroup");
        return false;
    }
    if (!find_own_cgroup(&group)) {
        snprintf(skip_reason, sizeof skip_reason, "no memory cgroup in /proc/self/cgroup");
        return false;
    }
    snprintf(group.child, sizeof group.child, "%s/headroom-test-%d", group.parent, (int)getpid());
    if (mkdir(group.child, 0755) != 0) {
        snprintf(skip_reason, sizeof skip_reason, "cannot create %s: %s", group.child, strerror(errno));
        return false;
    }
    char limit[32];
    snprintf(limit, sizeof limit, "%ld", LIMIT_MIB * MiB);
    if (!write_file(group.child, group.version == 1 ? "memory.limit_in_bytes" : "memory.max", limit)) {
        snprintf(skip_reason, sizeof skip_reason, "cannot set a memory limit on %s (memory controller not delegated?)",
                 group.child);
        rmdir(group.child);
        return false;
    }
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    if (!write_file(group.child, "cgroup.procs", pid)) {
        snprintf(skip_reason, sizeof skip_reason, "cannot move the test into %s: %s", group.child, strerror(errno));
        rmdir(group.child);
        return false;
    }
    return true;
}

static void remove_limited_cgroup(void)
{
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    write_file(group.parent, "cgroup.procs", pid);
    for (int i = 0; i < 50 && rmdir(group.child) != 0 && errno == EBUSY; i++) usleep(100000);
}

/* ---- the hog: a child process that holds as many MiB as it is told ------------------------ */

struct hog {
    pid_t pid;
    int command;   /* write: target MiB */
    int reply;     /* read: MiB held */
};

static void hog_main(int commands, int replies)
{
    char *blocks[1024] = { 0 };
    long held = 0, target;
    while (read(commands, &target, sizeof target) == (ssize_t)sizeof target) {
        while (held < target && held < 1024) {
            blocks[held] = malloc(MiB);
            if (!blocks[held]) break;
            memset(blocks[held], 0x5a, MiB);   /* touch it: charged only once written */
            held++;
        }
        if (write(replies, &held, sizeof held) != (ssize_t)sizeof held) break;
    }
    _exit(0);
}

static bool hog_start(struct hog *hog)
{
    int commands[2], replies[2];
    if (pipe(commands) != 0 || pipe(replies) != 0) return false;
    hog->pid = fork();
    if (hog->pid < 0) return false;
    if (hog->pid == 0) {
        close(commands[1]);
        close(replies[0]);
        /* if the kernel must kill someone in this cgroup, let it be the hog, not the test */
        FILE *f = fopen("/proc/self/oom_score_adj", "w");
        if (f) {
            fputs("1000", f);
            fclose(f);
        }
        hog_main(commands[0], replies[1]);
    }
    close(commands[0]);
    close(replies[1]);
    hog_pid = hog->pid;
    hog->command = commands[1];
    hog->reply = replies[0];
    return true;
}

static long hog_hold(struct hog *hog, long mib)
{
    long held = -1;
    if (write(hog->command, &mib, sizeof mib) != (ssize_t)sizeof mib) return -1;
    if (read(hog->reply, &held, sizeof held) != (ssize_t)sizeof held) return -1;
    return held;
}

static void hog_stop(struct hog *hog)
{
    close(hog->command);
    close(hog->reply);
    kill(hog->pid, SIGKILL);
    waitpid(hog->pid, NULL, 0);
    hog_pid = 0;
}

/* ---- watching the levels the monitor publishes -------------------------------------------- */

struct watch {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    enum hr_pressure_level level;
    int events;
    char last_reason[512];
};

static void on_event(const hr_event *event, void *user_data)
{
    struct watch *w = user_data;
    if (event->type != HR_EVENT_PRESSURE) return;
    pthread_mutex_lock(&w->lock);
    w->level = event->level;
    w->events++;
    snprintf(w->last_reason, sizeof w->last_reason, "%s", event->reason);
    fprintf(stderr, "  event: %s -> %s: %s\n", hr_pressure_level_name(event->previous_level),
            hr_pressure_level_name(event->level), event->reason);
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
}

static bool wait_for_level(struct watch *w, enum hr_pressure_level level, double seconds)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)seconds;
    pthread_mutex_lock(&w->lock);
    while (w->level != level && pthread_cond_timedwait(&w->changed, &w->lock, &deadline) == 0) {
    }
    bool reached = w->level == level;
    pthread_mutex_unlock(&w->lock);
    return reached;
}

static void hog_drives_warn_critical_and_back(void **state)
{
    (void)state;
    if (!make_limited_cgroup()) {
        fprintf(stderr, "skipped: %s\n", skip_reason);
        skip();
    }
    struct watch w = { .level = HR_PRESSURE_NORMAL };
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.changed, NULL);

    struct hog hog = { 0 };
    assert_true(hog_start(&hog));

    hr_context_params params = hr_context_default_params();
    params.thresholds.hold_seconds = 1.0;   /* the default 10 s would only make the test slow */
    hr_context *ctx = NULL;
    assert_int_equal(hr_context_create(&params, &ctx), HR_OK);
    int subscription = 0;
    assert_int_equal(hr_subscribe(ctx, on_event, &w, &subscription), HR_OK);

    hr_pressure pressure;
    assert_int_equal(hr_pressure_check(ctx, &pressure), HR_OK);
    fprintf(stderr, "  start: %s (%s); detection: %s\n", hr_pressure_level_name(pressure.level),
            pressure.reason, pressure.detection);
    assert_non_null(strstr(pressure.binding_scope, "headroom-test-"));   /* the child cgroup binds */
    assert_int_equal(pressure.level, HR_PRESSURE_NORMAL);
    assert_true(pressure.effective_total_bytes == (uint64_t)LIMIT_MIB * MiB);

    /* 228 of 256 MiB: about 10% left, under the 15% warn line, over the 5% critical line */
    assert_int_equal(hog_hold(&hog, 228), 228);
    if (!wait_for_level(&w, HR_PRESSURE_WARN, 10)) fail_msg("no warn within 10 s: %s", w.last_reason);

    /* 250 of 256 MiB: under 5% left */
    assert_int_equal(hog_hold(&hog, 250), 250);
    if (!wait_for_level(&w, HR_PRESSURE_CRITICAL, 10)) fail_msg("no critical within 10 s: %s", w.last_reason);

    hog_stop(&hog);
    if (!wait_for_level(&w, HR_PRESSURE_NORMAL, 15)) fail_msg("not normal 15 s after the hog left: %s", w.last_reason);
    assert_true(w.events >= 3);

    long kills = group.version == 1 ? read_key(group.child, "memory.oom_control", "oom_kill")
                                    : read_key(group.child, "memory.events", "oom_kill");
    assert_int_equal(kills, 0);   /* the hog was never killed: it was told when to stop */

    hr_unsubscribe(ctx, subscription);
    hr_context_free(ctx);
    remove_limited_cgroup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hog_drives_warn_critical_and_back),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (hog_pid > 0) {
        kill(hog_pid, SIGKILL);
        waitpid(hog_pid, NULL, 0);
    }
    if (group.child[0] && access(group.child, F_OK) == 0) remove_limited_cgroup();
    return failed;
}
