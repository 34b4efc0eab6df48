/*
 * live_cgroup.c: real, contained memory pressure for the live tests: the test process moves
 * itself into a child memory cgroup with a limit, and a hog (a child process in the same cgroup)
 * holds as many MiB as it is told. See live_cgroup.h.
 */
#include "live_cgroup.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1024L * 1024L)

struct cgroup group;
char skip_reason[1600];
pid_t hog_pid;

bool write_file(const char *directory, const char *name, const char *text)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", directory, name);
    FILE *f = fopen(path, "w");
    if (!f) return false;
    bool ok = fputs(text, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    return ok;
}

long read_key(const char *directory, const char *name, const char *key)
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

bool make_limited_cgroup(long limit_mib)
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
    snprintf(limit, sizeof limit, "%ld", limit_mib * MiB);
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

void remove_limited_cgroup(void)
{
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    write_file(group.parent, "cgroup.procs", pid);
    for (int i = 0; i < 50 && rmdir(group.child) != 0 && errno == EBUSY; i++) usleep(100000);
}

/* ---- the hog: a child process that holds as many MiB as it is told ------------------------ */

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

bool hog_start(struct hog *hog)
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

long hog_hold(struct hog *hog, long mib)
{
    long held = -1;
    if (write(hog->command, &mib, sizeof mib) != (ssize_t)sizeof mib) return -1;
    if (read(hog->reply, &held, sizeof held) != (ssize_t)sizeof held) return -1;
    return held;
}

void hog_stop(struct hog *hog)
{
    close(hog->command);
    close(hog->reply);
    kill(hog->pid, SIGKILL);
    waitpid(hog->pid, NULL, 0);
    hog_pid = 0;
}

long oom_kills(void)
{
    return group.version == 1 ? read_key(group.child, "memory.oom_control", "oom_kill")
                              : read_key(group.child, "memory.events", "oom_kill");
}

void live_cgroup_cleanup(void)
{
    if (hog_pid > 0) {
        kill(hog_pid, SIGKILL);
        waitpid(hog_pid, NULL, 0);
        hog_pid = 0;
    }
    if (group.child[0] && access(group.child, F_OK) == 0) remove_limited_cgroup();
}
