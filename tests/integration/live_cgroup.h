/*
 * live_cgroup.h: helpers for tests that need real memory pressure, contained: a child memory
 * cgroup (v1 or v2) with a limit that the test process moves itself into, and a hog process in
 * it that takes memory on command. Used by test_pressure_live.c and test_lifecycle_live.c.
 */
#ifndef HR_TEST_LIVE_CGROUP_H
#define HR_TEST_LIVE_CGROUP_H

#include <stdbool.h>
#include <sys/types.h>

struct cgroup {
    int version;
    char parent[1024];   /* the directory the test started in */
    char child[1100];    /* the limited directory made for the test */
};

extern struct cgroup group;
extern char skip_reason[1600];   /* why make_limited_cgroup() failed: the test skips with it */
extern pid_t hog_pid;            /* killed at exit even when an assertion ends the test early */

bool write_file(const char *directory, const char *name, const char *text);
long read_key(const char *directory, const char *name, const char *key);

/* Makes a child of the own memory cgroup limited to `limit_mib` and moves the process into it;
 * false with skip_reason set where that cannot be done (not root, no controller). */
bool make_limited_cgroup(long limit_mib);
void remove_limited_cgroup(void);

/* OOM kills in the test's cgroup so far (-1 when unreadable). */
long oom_kills(void);

struct hog {
    pid_t pid;
    int command;   /* write: target MiB */
    int reply;     /* read: MiB held */
};

/* Forks the hog (oom_score_adj 1000: if the kernel must kill, the hog goes first). */
bool hog_start(struct hog *hog);
/* Makes the hog hold `mib` MiB (it only grows) and returns what it holds; -1 if it died. */
long hog_hold(struct hog *hog, long mib);
void hog_stop(struct hog *hog);

/* Kills a hog left behind and removes the cgroup: for main() after the tests. */
void live_cgroup_cleanup(void);

#endif
