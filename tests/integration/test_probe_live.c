/*
 * test_probe_live.c: the memory probes on the real machine: one sample must be plausible, the
 * kernel's notification paths must register (PSI triggers; cgroup v1 memory.pressure_level,
 * fired for real in a child cgroup). A source this machine lacks is skipped with a reason; each
 * case that can skip is a ctest entry of its own (integration.probe_live.CASE).
 * usage: test_probe_live [--only=CASE,...] [SCRATCH_DIR]
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/error.h"
#include "headroom.h"
#include "probe/probe.h"
#include "runtime/context.h"
#include "skip.h"

typedef hr_sample sample_t;

static const char *scratch = "/tmp";

static sample_t *live_sample(void)
{
    sample_t *s = malloc(sizeof *s);
    assert_non_null(s);
    int rc = hr_probe_sample(NULL, 1.0, s);
    if (rc != HR_OK) fail_msg("hr_probe_sample on this machine: %s (%s)", hr_strerror(rc), hr_last_error());
    return s;
}

static void host_and_self(void **state)
{
    (void)state;
    sample_t *s = live_sample();
    assert_true(s->host.present);
    assert_true(s->host.total > 0);
    assert_true(s->host.available <= s->host.total);
    assert_true(s->host.free <= s->host.total);
    assert_true(s->host.swap_free <= s->host.swap_total);
    assert_true(s->host.vmstat_present);

    assert_true(s->self.present);
    assert_true(s->self.rss > 0);
    assert_true(s->self.rss <= s->self.peak_rss);
    assert_true(s->self.rss <= s->host.total);
    /* a kernel without RssFile/RssAnon (before 4.5) reports 0 for both */
    if (s->self.rss_file + s->self.rss_anon > 0) assert_true(s->self.rss_file + s->self.rss_anon <= s->self.rss + 4096 * 1024);

    /* no NVML is a normal state; with one, the numbers must add up */
    if (s->gpu_telemetry) {
        assert_true(s->n_gpus > 0);
        assert_true(s->gpus[0].total > 0);
        assert_true(s->gpus[0].used <= s->gpus[0].total);
    } else {
        assert_int_equal(s->n_gpus, 0);
    }
    free(s);
}

static void pressure_stall(void **state)
{
    (void)state;
    sample_t *s = live_sample();
    bool present = s->psi_host.present;
    if (present) {
        assert_true(s->psi_host.some.avg10 >= 0.0 && s->psi_host.some.avg10 <= 100.0);
        assert_true(s->psi_host.some.avg300 <= 100.0);
        if (s->psi_host.has_full) assert_true(s->psi_host.full.total_us <= s->psi_host.some.total_us);
    }
    free(s);
    if (!present) skip_because("no /proc/pressure/memory on this kernel (PSI off or older than 4.20)");
}

static void cgroups(void **state)
{
    (void)state;
    sample_t *s = live_sample();
    int n = s->n_cgroups;
    for (int i = 0; i < n; i++) {
        const hr_cgroup_level *level = &s->cgroups[i];
        assert_true(level->path[0] == '/');
        assert_true(level->version == 1 || level->version == 2);
        assert_true(level->max > 0);
    }
    if (n > 0) {
        /* the own group is listed first, its parents after, the mount's root last */
        assert_true(strlen(s->cgroups[0].path) >= strlen(s->cgroups[n - 1].path));
        if (s->cgroups[0].max != HR_UNLIMITED) assert_true(s->cgroups[0].current <= s->cgroups[0].max + (64u << 20));
    }
    free(s);
    if (n == 0) skip_because("no memory cgroup mounted here");
}

static void psi_triggers(void **state)
{
    (void)state;
    char path[HR_FS_PATH_MAX];
    assert_int_equal(hr_fs_path(NULL, "/proc/pressure/memory", path, sizeof path), HR_OK);
    if (access(path, R_OK) != 0) skip_because("no /proc/pressure/memory on this kernel");

    /* A 1 s window: privileged processes get it; others get a sentence that says why not. */
    int fd = -1;
    int rc = hr_psi_trigger_open(path, "some", 150000, 1000000, &fd);
    if (rc == HR_OK) {
        assert_true(fd >= 0);
        close(fd);
    } else {
        assert_int_equal(rc, HR_ENOTSUP);
        assert_non_null(strstr(hr_last_error(), "2 s"));
    }
    /* 2 s windows are open to everyone (Linux 6.5+; earlier kernels took any window as root) */
    rc = hr_psi_trigger_open(path, "some", 150000, 2000000, &fd);
    if (rc == HR_EACCES || rc == HR_ENOTSUP) skip_because("PSI triggers refused here: %s", hr_last_error());
    if (rc != HR_OK) fail_msg("a 2 s PSI trigger: %s (%s)", hr_strerror(rc), hr_last_error());
    struct pollfd poll_fd = {.fd = fd, .events = POLLPRI, .revents = 0};
    assert_true(poll(&poll_fd, 1, 0) >= 0);   /* pollable; it fires only under a real stall */
    close(fd);
}

static int write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t written = write(fd, text, strlen(text));
    close(fd);
    return written == (ssize_t)strlen(text) ? 0 : -1;
}

/* A child cgroup with a 16 MiB limit and a child process that writes 48 MiB to a file: the page
 * cache is reclaimed inside the group, which the kernel reports as "low" pressure. */
static void v1_pressure_level_fires(void **state)
{
    (void)state;
    hr_cgroup_location *location = malloc(sizeof *location);
    assert_non_null(location);
    if (hr_cgroup_locate(NULL, location) != HR_OK || location->version != 1) {
        free(location);
        skip_because("the memory controller is not on cgroup v1 here");
    }
    char group[HR_FS_PATH_MAX + 64], file[HR_FS_PATH_MAX + 128];
    snprintf(group, sizeof group, "%s/headroom-test-%d", location->directory, (int)getpid());
    free(location);
    if (mkdir(group, 0755) != 0) skip_because("cannot make a child cgroup: %s", strerror(errno));

    snprintf(file, sizeof file, "%s/memory.limit_in_bytes", group);
    assert_int_equal(write_text(file, "16777216"), 0);
    int event_fd = -1;
    int rc = hr_cgroup_pressure_level_open(group, "low", &event_fd);
    if (rc != HR_OK) {
        rmdir(group);
        fail_msg("memory.pressure_level: %s (%s)", hr_strerror(rc), hr_last_error());
    }

    char data[512];
    snprintf(data, sizeof data, "%s/headroom-probe-live-%d.data", scratch, (int)getpid());
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char pid_text[32];
        snprintf(pid_text, sizeof pid_text, "%d", (int)getpid());
        snprintf(file, sizeof file, "%s/cgroup.procs", group);
        if (write_text(file, pid_text) != 0) _exit(2);
        int out = open(data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (out < 0) _exit(3);
        static char block[1 << 16];
        memset(block, 'h', sizeof block);
        for (int i = 0; i < 48 * 16; i++)
            if (write(out, block, sizeof block) != (ssize_t)sizeof block) _exit(4);
        close(out);
        _exit(0);
    }
    struct pollfd poll_fd = {.fd = event_fd, .events = POLLIN, .revents = 0};
    int ready = poll(&poll_fd, 1, 20000);
    uint64_t count = 0;
    if (ready > 0) assert_int_equal(read(event_fd, &count, sizeof count), (ssize_t)sizeof count);
    int status = 0;
    waitpid(child, &status, 0);
    close(event_fd);
    unlink(data);
    rmdir(group);   /* empty once the child has exited */
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(ready, 1);
    assert_true(count >= 1);
}

/* hr_pressure_check without a monitor takes two samples 0.2 s apart on its first call; the pause
 * must not hold the context's check lock, or every other caller waits behind it (issue 16). */
struct first_check {
    hr_context *ctx;
    int rc;
};

static void *first_check_main(void *arg)
{
    struct first_check *c = arg;
    hr_pressure pressure;
    c->rc = hr_pressure_check(c->ctx, &pressure);
    return NULL;
}

static void check_pauses_without_the_lock(void **state)
{
    (void)state;
    hr_context_params params = hr_context_default_params();
    params.monitor = false;
    hr_context *ctx = NULL;
    assert_int_equal(hr_context_create(&params, &ctx), HR_OK);
    struct first_check check = { .ctx = ctx, .rc = -1 };
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, first_check_main, &check), 0);
    usleep(100000);   /* inside its 0.2 s pause (its two /proc reads take about a millisecond) */
    int locked = pthread_mutex_trylock(&ctx->check_lock);
    if (locked == 0) pthread_mutex_unlock(&ctx->check_lock);
    pthread_join(thread, NULL);
    assert_int_equal(check.rc, HR_OK);
    assert_int_equal(locked, 0);   /* EBUSY: the pause held the lock */
    hr_context_free(ctx);
}

int main(int argc, char **argv)
{
    if (select_cases(&argc, argv) != 0) return 2;
    if (argc > 1) scratch = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(host_and_self),
        cmocka_unit_test(check_pauses_without_the_lock),
        cmocka_unit_test(pressure_stall),
        cmocka_unit_test(cgroups),
        cmocka_unit_test(psi_triggers),
        cmocka_unit_test(v1_pressure_level_fires),
    };
    return run_cases(tests, NULL, NULL);
}
