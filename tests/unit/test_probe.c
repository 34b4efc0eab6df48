/*
 * test_probe.c: the memory probes (src/probe/) run on recorded trees (tests/fixtures/<scenario>)
 * through the fsroot seam, asserting the exact numbers in those files; then broken input
 * (garbage, truncated lines, numbers too big, missing keys) written to scratch trees, which must
 * give absent values or a clear error, never a crash. The live machine: tests/integration/.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/error.h"
#include "probe/probe.h"

#ifndef HEADROOM_FIXTURES
#error "HEADROOM_FIXTURES must name tests/fixtures (tests/CMakeLists.txt defines it)"
#endif

#define KiB UINT64_C(1024)
#define GiB (UINT64_C(1024) * 1024 * 1024)

typedef hr_sample sample_t;

/* cmocka 1.1's assert_float_equal compares floats; PSI averages are doubles */
#define assert_near(actual, expected) \
    assert_true((actual) - (expected) < 1e-9 && (expected) - (actual) < 1e-9)

static hr_fsroot fixture(const char *scenario)
{
    char prefix[HR_FSROOT_PREFIX_MAX];
    snprintf(prefix, sizeof prefix, "%s/%s", HEADROOM_FIXTURES, scenario);
    hr_fsroot root;
    assert_int_equal(hr_fsroot_init(&root, prefix), HR_OK);
    return root;
}

/* hr_probe_sample is large (cgroup levels, GPUs): on the heap, as a monitor keeps it */
static sample_t *sample_of(const hr_fsroot *root, int expected_rc)
{
    sample_t *sample = malloc(sizeof *sample);
    assert_non_null(sample);
    int rc = hr_probe_sample(root, 12.5, sample);
    if (rc != expected_rc) fail_msg("hr_probe_sample: %s (%s)", hr_strerror(rc), hr_last_error());
    assert_true(sample->timestamp == 12.5);
    return sample;
}

static bool ends_with(const char *text, const char *suffix)
{
    size_t length = strlen(text), suffix_length = strlen(suffix);
    return length >= suffix_length && strcmp(text + length - suffix_length, suffix) == 0;
}

/* ---- scratch trees for broken input ------------------------------------------------------- */

static char scratch[256];

static void put(const char *relative_path, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", scratch, relative_path);
    /* make the parent directories */
    for (char *slash = strchr(path + strlen(scratch) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) fail_msg("mkdir %s: %s", path, strerror(errno));
        *slash = '/';
    }
    FILE *file = fopen(path, "w");
    if (!file) fail_msg("cannot write %s: %s", path, strerror(errno));
    fputs(content, file);
    fclose(file);
}

static int remove_entry(const char *path, const struct stat *info, int flag, struct FTW *walk)
{
    (void)info;
    (void)flag;
    (void)walk;
    return remove(path);
}

static int make_scratch(void **state)
{
    (void)state;
    snprintf(scratch, sizeof scratch, "/tmp/headroom-test-probe-XXXXXX");
    if (!mkdtemp(scratch)) return -1;
    return 0;
}

static int remove_scratch(void **state)
{
    (void)state;
    return nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static hr_fsroot scratch_root(void)
{
    hr_fsroot root;
    assert_int_equal(hr_fsroot_init(&root, scratch), HR_OK);
    return root;
}

/* A minimal healthy host that the broken-input tests break one file of. */
static void put_healthy_host(void)
{
    put("proc/meminfo", "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    600 kB\n"
                        "Buffers:          10 kB\nCached:          300 kB\nSwapTotal:        0 kB\n"
                        "SwapFree:         0 kB\nShmem:            5 kB\n");
    put("proc/vmstat", "pswpin 1\npswpout 2\npgmajfault 3\n");
    put("proc/pressure/memory", "some avg10=1.00 avg60=2.00 avg300=3.00 total=4\n"
                                "full avg10=0.50 avg60=0.25 avg300=0.125 total=2\n");
    put("proc/self/status", "Name:\tx\nVmHWM:\t  20 kB\nVmRSS:\t  10 kB\nRssAnon:\t 4 kB\nRssFile:\t 6 kB\n");
    put("proc/self/stat", "7 (x) S 1 7 7 0 -1 0 100 0 9 0 0 0\n");
    put("proc/self/cgroup", "0::/app\n");
    put("proc/self/mountinfo", "30 23 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    put("sys/fs/cgroup/app/memory.max", "1048576\n");
    put("sys/fs/cgroup/app/memory.high", "max\n");
    put("sys/fs/cgroup/app/memory.current", "4096\n");
    put("sys/fs/cgroup/app/memory.stat", "anon 1\nfile 2\ninactive_file 3\nactive_file 4\n");
    put("sys/fs/cgroup/app/memory.events", "low 0\nhigh 5\nmax 6\noom 7\noom_kill 8\n");
}

/* ---- the recorded scenarios --------------------------------------------------------------- */

/* This machine as recorded: a host with cgroup v1 memory (no limit set) next to a cgroup2
 * mount without controllers ("hybrid"), PSI, no swap. */
static void bare_host(void **state)
{
    (void)state;
    hr_fsroot root = fixture("bare-host");
    sample_t *s = sample_of(&root, HR_OK);

    assert_true(s->host.present);
    assert_int_equal(s->host.total, 24684084 * KiB);
    assert_int_equal(s->host.free, 24250732 * KiB);
    assert_int_equal(s->host.available, 24317200 * KiB);
    assert_int_equal(s->host.cached, 85864 * KiB);
    assert_int_equal(s->host.buffers, 149744 * KiB);
    assert_int_equal(s->host.shmem, 8872 * KiB);
    assert_int_equal(s->host.swap_total, 0);
    assert_int_equal(s->host.swap_free, 0);
    assert_true(s->host.vmstat_present);
    assert_int_equal(s->host.pswpin, 0);
    assert_int_equal(s->host.pswpout, 0);
    assert_int_equal(s->host.pgmajfault, 2314);

    assert_int_equal(s->n_cgroups, 3);
    const char *paths[] = {"/process_api/d7020c9ee0c9d181d64c01b78bedc3ef", "/process_api", "/"};
    uint64_t current[] = {249536512, 330878976, 248643584};
    uint64_t inactive[] = {12070912, 25305088, 25411584};
    uint64_t active[] = {181809152, 205074432, 206741504};
    for (int i = 0; i < 3; i++) {
        const hr_cgroup_level *level = &s->cgroups[i];
        assert_string_equal(level->path, paths[i]);
        assert_int_equal(level->version, 1);
        assert_int_equal(level->max, HR_UNLIMITED);   /* 9223372036854771712: v1's "no limit" */
        assert_int_equal(level->high, HR_UNLIMITED);
        if (i > 0) {
            /* an ancestor without a limit is read for its limit only (probe.h) */
            assert_int_equal(level->current, 0);
            assert_int_equal(level->inactive_file, 0);
            assert_false(level->events_present);
            (void)current;
            (void)inactive;
            (void)active;
            continue;
        }
        assert_int_equal(level->current, current[i]);
        assert_int_equal(level->inactive_file, inactive[i]);
        assert_int_equal(level->active_file, active[i]);
        assert_int_equal(level->swap_current, 0);
        assert_true(level->events_present);
        assert_int_equal(level->events_max, 0);
        assert_int_equal(level->events_oom, 0);
        assert_int_equal(level->events_oom_kill, 0);
    }

    assert_true(s->psi_host.present);
    assert_true(s->psi_host.has_full);
    assert_near(s->psi_host.some.avg10, 0.0);
    assert_int_equal(s->psi_host.full.total_us, 0);
    /* the cgroup2 mount's own group ("0::/") carries PSI even with memory on v1 */
    assert_true(s->psi_cgroup.present);
    assert_true(s->psi_cgroup.has_full);

    assert_true(s->self.present);
    assert_int_equal(s->self.rss, 1756 * KiB);
    assert_int_equal(s->self.peak_rss, 1756 * KiB);
    assert_int_equal(s->self.rss_file, 1644 * KiB);
    assert_int_equal(s->self.rss_anon, 112 * KiB);
    assert_int_equal(s->self.major_faults, 0);

    /* a fixture describes no GPU, whatever this machine has */
    assert_false(s->gpu_telemetry);
    assert_int_equal(s->n_gpus, 0);
    assert_false(s->darwin.present);
    free(s);
}

/* Recorded on this machine in a mount namespace: the process in <container>/app, the
 * container's memory cgroup (limit 256 MiB) bind-mounted over /sys/fs/cgroup/memory, as Docker
 * does on v1 hosts; mountinfo lists the host's mount and, stacked on it, the container's, whose
 * root is not "/". */
static void v1_container(void **state)
{
    (void)state;
    hr_fsroot root = fixture("v1-container");
    const char *container = "/docker/4d1b9a7c3e0f52a8b6c9d2e1f0a3b5c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3";

    hr_cgroup_location *location = malloc(sizeof *location);
    assert_non_null(location);
    assert_int_equal(hr_cgroup_locate(&root, location), HR_OK);
    assert_int_equal(location->version, 1);
    assert_string_equal(location->mount_root, container);
    assert_true(ends_with(location->directory, "/v1-container/sys/fs/cgroup/memory/app"));
    assert_true(ends_with(location->mount_directory, "/v1-container/sys/fs/cgroup/memory"));
    assert_true(ends_with(location->unified_directory, "/v1-container/sys/fs/cgroup/unified"));
    free(location);

    sample_t *s = sample_of(&root, HR_OK);
    assert_true(s->host.present);
    assert_int_equal(s->host.total, 24684084 * KiB);
    assert_int_equal(s->host.available, 24257168 * KiB);
    assert_int_equal(s->host.pgmajfault, 2341);

    assert_int_equal(s->n_cgroups, 2);
    const hr_cgroup_level *app = &s->cgroups[0];
    char app_path[256];
    snprintf(app_path, sizeof app_path, "%s/app", container);
    assert_string_equal(app->path, app_path);
    assert_int_equal(app->version, 1);
    assert_int_equal(app->max, HR_UNLIMITED);
    assert_int_equal(app->high, HR_UNLIMITED);
    assert_int_equal(app->current, 71475200);
    assert_int_equal(app->inactive_file, 67190784);
    assert_int_equal(app->active_file, 8192);
    assert_true(app->events_present);
    assert_int_equal(app->events_max, 0);
    assert_int_equal(app->events_oom, 0);
    assert_int_equal(app->events_oom_kill, 1);   /* the recording's over-limit allocation */

    const hr_cgroup_level *limit = &s->cgroups[1];
    assert_string_equal(limit->path, container);
    assert_int_equal(limit->max, 256 * 1024 * 1024);
    assert_int_equal(limit->current, 71036928);
    assert_int_equal(limit->inactive_file, 259842048);
    assert_int_equal(limit->active_file, 24576);
    assert_int_equal(limit->events_max, 108078);   /* memory.failcnt */
    assert_int_equal(limit->events_oom_kill, 0);

    /* no /proc/pressure was recorded and the cgroup2 mount has no memory.pressure: absent */
    assert_false(s->psi_host.present);
    assert_false(s->psi_cgroup.present);
    assert_true(s->self.present);
    assert_int_equal(s->self.rss, 1772 * KiB);
    assert_int_equal(s->self.rss_file, 1660 * KiB);
    free(s);
}

/* cgroup v2 in a container with its own cgroup namespace: the app's group below the container's,
 * memory.high under memory.max, throttling and an OOM kill counted in memory.events. */
static void v2_container_high(void **state)
{
    (void)state;
    hr_fsroot root = fixture("v2-container-high");
    sample_t *s = sample_of(&root, HR_OK);

    assert_int_equal(s->host.total, 65598000 * KiB);
    assert_int_equal(s->host.free, 3121464 * KiB);
    assert_int_equal(s->host.available, 21587340 * KiB);
    assert_int_equal(s->host.cached, 18734112 * KiB);
    assert_int_equal(s->host.buffers, 412880 * KiB);
    assert_int_equal(s->host.shmem, 512936 * KiB);
    assert_int_equal(s->host.swap_total, 8388604 * KiB);
    assert_int_equal(s->host.swap_free, 7913468 * KiB);
    assert_int_equal(s->host.pswpin, 18234);
    assert_int_equal(s->host.pswpout, 40211);
    assert_int_equal(s->host.pgmajfault, 98231);

    assert_int_equal(s->n_cgroups, 2);
    const hr_cgroup_level *app = &s->cgroups[0];
    assert_string_equal(app->path, "/app");
    assert_int_equal(app->version, 2);
    assert_int_equal(app->max, 6 * GiB);
    assert_int_equal(app->high, 5 * GiB);
    assert_int_equal(app->current, 5364219904);
    assert_int_equal(app->inactive_file, 2919235584);
    assert_int_equal(app->active_file, 1616986112);
    assert_int_equal(app->swap_current, 52428800);
    assert_true(app->events_present);
    assert_int_equal(app->events_high, 1834);
    assert_int_equal(app->events_max, 12);
    assert_int_equal(app->events_oom, 1);
    assert_int_equal(app->events_oom_kill, 1);

    const hr_cgroup_level *container = &s->cgroups[1];
    assert_string_equal(container->path, "/");
    assert_int_equal(container->max, 8 * GiB);
    assert_int_equal(container->high, HR_UNLIMITED);   /* "max" */
    assert_int_equal(container->current, 7861039104);
    assert_int_equal(container->inactive_file, 4011851776);
    assert_int_equal(container->active_file, 2498949120);
    assert_int_equal(container->swap_current, 104857600);
    assert_int_equal(container->events_high, 0);
    assert_int_equal(container->events_max, 47);

    assert_true(s->psi_host.present);
    assert_true(s->psi_host.has_full);
    assert_near(s->psi_host.some.avg10, 1.52);
    assert_near(s->psi_host.some.avg60, 0.87);
    assert_near(s->psi_host.some.avg300, 0.31);
    assert_int_equal(s->psi_host.some.total_us, 48213370);
    assert_near(s->psi_host.full.avg10, 0.61);
    assert_int_equal(s->psi_host.full.total_us, 20117458);
    /* the own group's memory.pressure, not the container's */
    assert_true(s->psi_cgroup.present);
    assert_near(s->psi_cgroup.some.avg10, 12.07);
    assert_near(s->psi_cgroup.full.avg300, 0.80);
    assert_int_equal(s->psi_cgroup.full.total_us, 3550161);

    assert_int_equal(s->self.rss, 4611028 * KiB);
    assert_int_equal(s->self.peak_rss, 4870212 * KiB);
    assert_int_equal(s->self.rss_file, 3908484 * KiB);
    assert_int_equal(s->self.rss_anon, 702544 * KiB);
    assert_int_equal(s->self.major_faults, 3812);
    free(s);
}

/* A systemd host on cgroup v2 without swap (nor swap accounting: no memory.swap.current), the
 * service three levels deep; the root group has no memory.max, memory.high or memory.current. */
static void no_swap(void **state)
{
    (void)state;
    hr_fsroot root = fixture("no-swap");
    sample_t *s = sample_of(&root, HR_OK);

    assert_true(s->host.present);
    assert_int_equal(s->host.total, 16072908 * KiB);
    assert_int_equal(s->host.available, 2894112 * KiB);
    assert_int_equal(s->host.swap_total, 0);
    assert_int_equal(s->host.swap_free, 0);
    assert_int_equal(s->host.pswpin, 0);
    assert_int_equal(s->host.pgmajfault, 412877);

    assert_int_equal(s->n_cgroups, 3);
    assert_string_equal(s->cgroups[0].path, "/system.slice/headroomd.service");
    assert_string_equal(s->cgroups[1].path, "/system.slice");
    assert_string_equal(s->cgroups[2].path, "/");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s->cgroups[i].version, 2);
        assert_int_equal(s->cgroups[i].max, HR_UNLIMITED);
        assert_int_equal(s->cgroups[i].high, HR_UNLIMITED);
        assert_int_equal(s->cgroups[i].swap_current, 0);
    }
    assert_int_equal(s->cgroups[0].current, 9384779776);
    assert_int_equal(s->cgroups[0].inactive_file, 611872768);
    assert_int_equal(s->cgroups[0].active_file, 289906688);
    assert_true(s->cgroups[0].events_present);
    /* unlimited ancestors are read for their limits only (probe.h) */
    assert_int_equal(s->cgroups[1].current, 0);
    assert_int_equal(s->cgroups[2].current, 0);
    assert_int_equal(s->cgroups[2].inactive_file, 0);
    assert_int_equal(s->cgroups[2].active_file, 0);
    assert_false(s->cgroups[2].events_present);

    assert_true(s->psi_host.present);
    assert_near(s->psi_host.some.avg10, 22.81);
    assert_true(s->psi_cgroup.present);
    assert_near(s->psi_cgroup.some.avg10, 19.30);
    assert_int_equal(s->psi_cgroup.full.total_us, 240017753);
    assert_int_equal(s->self.rss_anon, 8190220 * KiB);
    assert_int_equal(s->self.major_faults, 52119);
    free(s);
}

/* An old kernel without PSI, in a container that names memory cgroups but mounts none, running
 * a program whose name holds spaces and parentheses. */
static void no_psi(void **state)
{
    (void)state;
    hr_fsroot root = fixture("no-psi");
    sample_t *s = sample_of(&root, HR_OK);

    assert_true(s->host.present);
    assert_int_equal(s->host.total, 8167848 * KiB);
    assert_int_equal(s->host.swap_total, 2097148 * KiB);
    assert_int_equal(s->host.swap_free, 1996028 * KiB);
    assert_int_equal(s->host.pswpout, 27514);
    assert_false(s->psi_host.present);
    assert_false(s->psi_cgroup.present);
    assert_int_equal(s->n_cgroups, 0);

    hr_cgroup_location location;
    assert_int_equal(hr_cgroup_locate(&root, &location), HR_ENOENT);
    assert_non_null(strstr(hr_last_error(), "mountinfo"));

    assert_true(s->self.present);
    assert_int_equal(s->self.rss, 3980112 * KiB);
    assert_int_equal(s->self.major_faults, 7731);   /* after "(llama (main) srv)" */
    free(s);
}

/* An empty root (no /proc at all): every source absent, and still no failure. */
static void nothing_there(void **state)
{
    (void)state;
    hr_fsroot root = scratch_root();
    sample_t *s = sample_of(&root, HR_OK);
    assert_false(s->host.present);
    assert_false(s->host.vmstat_present);
    assert_int_equal(s->n_cgroups, 0);
    assert_false(s->psi_host.present);
    assert_false(s->psi_cgroup.present);
    assert_false(s->self.present);
    assert_false(s->gpu_telemetry);
    free(s);
}

/* ---- broken input --------------------------------------------------------------------------- */

static void broken_meminfo(void **state)
{
    (void)state;
    put_healthy_host();
    hr_fsroot root = scratch_root();
    sample_t *s = sample_of(&root, HR_OK);
    assert_int_equal(s->host.total, 1000 * KiB);
    free(s);

    const char *broken[] = {
        "",                                                        /* empty */
        "\x01\x02garbage\xff\n\n\n",                               /* garbage */
        "MemTotal:       1000 kB\nMemFree:         200 kB\n",      /* MemAvailable missing */
        "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:",   /* truncated */
        "MemTotal: 99999999999999999999999 kB\nMemFree: 1 kB\nMemAvailable: 1 kB\n",  /* > 2^64 */
        "MemTotal: 18014398509481984 kB\nMemFree: 1 kB\nMemAvailable: 1 kB\n",  /* 2^64 bytes */
        "MemTotal: -5 kB\nMemFree: 1 kB\nMemAvailable: 1 kB\n",
        "MemTotal: 12x kB\nMemFree: 1 kB\nMemAvailable: 1 kB\n",
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        put("proc/meminfo", broken[i]);
        s = sample_of(&root, HR_EFORMAT);
        assert_non_null(strstr(hr_last_error(), "/proc/meminfo"));
        assert_false(s->host.present);
        assert_int_equal(s->host.total, 0);
        /* the other sources are still there */
        assert_true(s->host.vmstat_present);
        assert_true(s->self.present);
        assert_true(s->psi_host.present);
        assert_int_equal(s->n_cgroups, 2);
        free(s);
    }

    /* a last line without its '\n' and keys in any order are fine */
    put("proc/meminfo", "MemAvailable: 3 kB\nMemFree: 2 kB\nMemTotal: 4 kB");
    s = sample_of(&root, HR_OK);
    assert_int_equal(s->host.total, 4 * KiB);
    assert_int_equal(s->host.available, 3 * KiB);
    assert_int_equal(s->host.cached, 0);
    free(s);

    /* a directory where a file should be: an I/O error, not a crash */
    char meminfo[512];
    snprintf(meminfo, sizeof meminfo, "%s/proc/meminfo", scratch);
    assert_int_equal(remove(meminfo), 0);
    put("proc/meminfo/inside", "x");
    s = sample_of(&root, HR_EIO);
    assert_false(s->host.present);
    free(s);
}

static void broken_vmstat(void **state)
{
    (void)state;
    put_healthy_host();
    hr_fsroot root = scratch_root();
    hr_host_memory host;
    memset(&host, 0, sizeof host);

    /* no counters at all (a kernel without VM event counters; garbage): absent, not broken */
    put("proc/vmstat", "garbage\n\x01\x02\n");
    assert_int_equal(hr_vmstat_read(&root, &host), HR_ENOENT);
    assert_false(host.vmstat_present);
    /* some but not all: broken */
    put("proc/vmstat", "pswpin 5\npswpout notanumber\npgmajfault 7\n");
    assert_int_equal(hr_vmstat_read(&root, &host), HR_EFORMAT);
    assert_non_null(strstr(hr_last_error(), "pswpout"));
    assert_false(host.vmstat_present);
    /* the first occurrence counts; a huge one is not a number */
    put("proc/vmstat", "pswpin 5\npswpin 6\npswpout 18446744073709551615\npgmajfault 99999999999999999999\n");
    assert_int_equal(hr_vmstat_read(&root, &host), HR_EFORMAT);
    put("proc/vmstat", "pswpin 5\npswpin 6\npswpout 18446744073709551615\npgmajfault 7");
    assert_int_equal(hr_vmstat_read(&root, &host), HR_OK);
    assert_int_equal(host.pswpin, 5);
    assert_int_equal(host.pswpout, UINT64_MAX);
    assert_int_equal(host.pgmajfault, 7);
}

static void psi_lines(void **state)
{
    (void)state;
    hr_psi psi;
    assert_int_equal(hr_psi_parse("some avg10=0.12 avg60=3.45 avg300=67.89 total=1234567\n"
                                  "full avg10=0.01 avg60=0.02 avg300=0.03 total=89\n", &psi), HR_OK);
    assert_true(psi.present);
    assert_true(psi.has_full);
    assert_near(psi.some.avg10, 0.12);
    assert_near(psi.some.avg60, 3.45);
    assert_near(psi.some.avg300, 67.89);
    assert_int_equal(psi.some.total_us, 1234567);
    assert_near(psi.full.avg300, 0.03);
    assert_int_equal(psi.full.total_us, 89);

    /* no `full` line (older kernels, some scopes) */
    assert_int_equal(hr_psi_parse("some avg10=100.00 avg60=50.50 avg300=0.00 total=18446744073709551615", &psi), HR_OK);
    assert_true(psi.present);
    assert_false(psi.has_full);
    assert_near(psi.some.avg10, 100.0);
    assert_int_equal(psi.some.total_us, UINT64_MAX);
    assert_int_equal(psi.full.total_us, 0);

    /* a broken `full` line only loses the full line */
    assert_int_equal(hr_psi_parse("some avg10=1.00 avg60=1.00 avg300=1.00 total=1\nfull avg10=x", &psi), HR_OK);
    assert_false(psi.has_full);

    /* fields in another order, an unknown one added: still read */
    assert_int_equal(hr_psi_parse("some total=5 avg300=0.30 extra=1 avg60=0.60 avg10=0.10\n", &psi), HR_OK);
    assert_int_equal(psi.some.total_us, 5);
    assert_near(psi.some.avg300, 0.30);

    const char *broken[] = {
        "",
        "garbage\n",
        "some avg10=0.00 avg60=",                                  /* truncated */
        "some avg10=0.00 avg60=0.00 avg300=0.00\n",                 /* no total */
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=99999999999999999999999\n",
        "some avg10=-1.00 avg60=0.00 avg300=0.00 total=1\n",
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",          /* full without some */
        "somex avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        assert_int_equal(hr_psi_parse(broken[i], &psi), HR_EFORMAT);
        assert_false(psi.present);
        assert_false(psi.has_full);
    }
}

static void broken_psi_file(void **state)
{
    (void)state;
    put_healthy_host();
    put("proc/pressure/memory", "some avg10=0.00 avg60=");
    hr_fsroot root = scratch_root();
    sample_t *s = sample_of(&root, HR_EFORMAT);
    assert_non_null(strstr(hr_last_error(), "/proc/pressure/memory"));
    assert_false(s->psi_host.present);
    assert_true(s->host.present);
    free(s);
    put("proc/pressure/memory", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
    s = sample_of(&root, HR_OK);
    assert_true(s->psi_host.present);
    assert_false(s->psi_host.has_full);
    free(s);
}

static void broken_cgroup_files(void **state)
{
    (void)state;
    put_healthy_host();
    hr_fsroot root = scratch_root();
    sample_t *s = sample_of(&root, HR_OK);
    assert_int_equal(s->n_cgroups, 2);
    assert_int_equal(s->cgroups[0].max, 1048576);
    assert_int_equal(s->cgroups[0].high, HR_UNLIMITED);
    assert_int_equal(s->cgroups[0].inactive_file, 3);
    assert_int_equal(s->cgroups[0].events_oom_kill, 8);
    assert_string_equal(s->cgroups[1].path, "/");
    free(s);

    const char *broken_max[] = {"garbage\n", "", "maxx\n", "99999999999999999999999\n", "-1\n", "12 34\n"};
    for (size_t i = 0; i < sizeof broken_max / sizeof broken_max[0]; i++) {
        put("sys/fs/cgroup/app/memory.max", broken_max[i]);
        s = sample_of(&root, HR_EFORMAT);
        assert_non_null(strstr(hr_last_error(), "memory.max"));
        /* the broken field keeps its absent value; the rest of the level is read */
        assert_int_equal(s->n_cgroups, 2);
        assert_int_equal(s->cgroups[0].max, HR_UNLIMITED);
        assert_int_equal(s->cgroups[0].current, 4096);
        assert_true(s->host.present);
        free(s);
    }
    put("sys/fs/cgroup/app/memory.max", "max\n");
    put("sys/fs/cgroup/app/memory.stat", "inactive_file 99999999999999999999999\nactive_file\n");
    put("sys/fs/cgroup/app/memory.events", "garbage\n");
    s = sample_of(&root, HR_OK);
    assert_int_equal(s->cgroups[0].max, HR_UNLIMITED);
    assert_int_equal(s->cgroups[0].inactive_file, 0);
    assert_int_equal(s->cgroups[0].active_file, 0);
    assert_false(s->cgroups[0].events_present);
    free(s);
}

static void v1_limits(void **state)
{
    (void)state;
    put_healthy_host();
    put("proc/self/cgroup", "4:memory:/a/b\n0::/\n");
    put("proc/self/mountinfo", "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n");
    put("sys/fs/cgroup/memory/a/b/memory.limit_in_bytes", "4611686018427387903\n");   /* 2^62 - 1 */
    put("sys/fs/cgroup/memory/a/memory.limit_in_bytes", "4611686018427387904\n");     /* 2^62 */
    put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854710272\n");      /* 64 KiB pages */
    put("sys/fs/cgroup/memory/a/b/memory.oom_control", "oom_kill_disable 0\nunder_oom 1\n");   /* before 4.13 */
    put("sys/fs/cgroup/memory/a/b/memory.stat", "total_inactive_file 10\ntotal_active_file 20\ntotal_swap 30\n");
    hr_fsroot root = scratch_root();
    sample_t *s = sample_of(&root, HR_OK);
    assert_int_equal(s->n_cgroups, 3);
    assert_string_equal(s->cgroups[0].path, "/a/b");
    assert_int_equal(s->cgroups[0].max, UINT64_C(4611686018427387903));
    assert_true(s->cgroups[0].events_present);
    assert_int_equal(s->cgroups[0].events_oom, 1);
    assert_int_equal(s->cgroups[0].events_oom_kill, 0);
    assert_int_equal(s->cgroups[0].inactive_file, 10);
    assert_int_equal(s->cgroups[0].swap_current, 30);
    assert_string_equal(s->cgroups[1].path, "/a");
    assert_int_equal(s->cgroups[1].max, HR_UNLIMITED);
    assert_string_equal(s->cgroups[2].path, "/");
    assert_int_equal(s->cgroups[2].max, HR_UNLIMITED);
    assert_false(s->cgroups[2].events_present);   /* neither memory.failcnt nor oom_control */
    /* v1 wins over the "0::/" line: no cgroup2 mount, so no cgroup PSI */
    assert_int_equal(s->cgroups[0].version, 1);
    assert_false(s->psi_cgroup.present);
    free(s);
}

static void broken_cgroup_membership(void **state)
{
    (void)state;
    put_healthy_host();
    hr_fsroot root = scratch_root();
    const char *cgroup_files[] = {
        "",
        "garbage\n",
        "0:/no-second-colon\n",
        "4:memory\n",
        "4:memory:relative/path\n",
        "4:name=memory:/not-the-controller\n",   /* a named hierarchy, not the memory controller */
    };
    for (size_t i = 0; i < sizeof cgroup_files / sizeof cgroup_files[0]; i++) {
        put("proc/self/cgroup", cgroup_files[i]);
        sample_t *s = sample_of(&root, HR_OK);
        assert_int_equal(s->n_cgroups, 0);
        assert_false(s->psi_cgroup.present);
        assert_true(s->host.present);
        free(s);
    }
    put("proc/self/cgroup", "0::/app\n");
    const char *mount_files[] = {
        "",
        "garbage\n",
        "30 23 0:27 / /sys/fs/cgroup rw\n",                    /* no separator */
        "30 23 0:27 / /sys/fs/cgroup rw - cgroup2\n",          /* truncated after the type */
        "30 23 0:27 / /sys/fs/cgroup rw - cgroup cgroup rw,cpu\n",   /* v1 without memory */
    };
    for (size_t i = 0; i < sizeof mount_files / sizeof mount_files[0]; i++) {
        put("proc/self/mountinfo", mount_files[i]);
        sample_t *s = sample_of(&root, HR_OK);
        assert_int_equal(s->n_cgroups, 0);
        free(s);
    }

    /* a path that climbs out of the mount's root is taken as the mount's root */
    put("proc/self/cgroup", "0::/../../elsewhere\n");
    put("proc/self/mountinfo", "30 23 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    sample_t *s = sample_of(&root, HR_OK);
    assert_int_equal(s->n_cgroups, 1);
    assert_string_equal(s->cgroups[0].path, "/");
    free(s);

    /* a mount root that does not hold the process's path: the mount's root again */
    put("proc/self/cgroup", "0::/other/app\n");
    put("proc/self/mountinfo", "30 23 0:27 /docker/x /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    s = sample_of(&root, HR_OK);
    assert_int_equal(s->n_cgroups, 1);
    assert_string_equal(s->cgroups[0].path, "/docker/x");
    free(s);
}

/* mountinfo escapes spaces in paths; optional fields may be many; the deepest path is cut at
 * HR_MAX_CGROUP_LEVELS levels, own first. */
static void mountinfo_details(void **state)
{
    (void)state;
    put_healthy_host();
    put("proc/self/cgroup", "0::/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s\n");
    put("proc/self/mountinfo",
        "1 0 0:1 / / rw - ext4 /dev/root rw\n"
        "30 23 0:27 / /sys/fs/my\\040cgroup rw,nosuid shared:4 master:1 propagate_from:2 - cgroup2 cgroup2 rw\n");
    put("sys/fs/my cgroup/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/memory.max", "123\n");
    hr_fsroot root = scratch_root();
    sample_t *s = sample_of(&root, HR_OK);
    assert_int_equal(s->n_cgroups, HR_MAX_CGROUP_LEVELS);
    assert_string_equal(s->cgroups[0].path, "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s");
    assert_int_equal(s->cgroups[0].max, 123);
    assert_string_equal(s->cgroups[1].path, "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r");
    assert_string_equal(s->cgroups[HR_MAX_CGROUP_LEVELS - 1].path, "/a/b/c/d");
    free(s);
}

static void stat_command_names(void **state)
{
    (void)state;
    uint64_t faults = 0;
    assert_int_equal(hr_self_parse_stat("1 (cat) R 0 1 1 0 -1 4194304 130 0 42 0 0 0\n", &faults), HR_OK);
    assert_int_equal(faults, 42);
    /* spaces and ')' inside the name: the fields restart after the last ')' */
    assert_int_equal(hr_self_parse_stat("77 (a) b) (c d)) S 1 77 77 0 -1 0 5 0 1234 0 0 0", &faults), HR_OK);
    assert_int_equal(faults, 1234);
    assert_int_equal(hr_self_parse_stat("77 ()) S 1 77 77 0 -1 0 5 0 99", &faults), HR_OK);
    assert_int_equal(faults, 99);

    faults = 555;
    const char *broken[] = {
        "",
        "77 no parentheses S 1 2 3 4 5 6 7 8 9",
        "77 (x) S 1 77 77 0 -1 0 5",              /* truncated before majflt */
        "77 (x) S 1 77 77 0 -1 0 5 0 ",           /* majflt empty */
        "77 (x) S 1 77 77 0 -1 0 5 0 12abc 0",
        "77 (x) S 1 77 77 0 -1 0 5 0 99999999999999999999999 0",
        "77 (x)",
        "77 (x)S 1 77 77 0 -1 0 5 0 1 0",
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        assert_int_equal(hr_self_parse_stat(broken[i], &faults), HR_EFORMAT);
        assert_int_equal(faults, 555);
    }
}

static void broken_self(void **state)
{
    (void)state;
    put_healthy_host();
    hr_fsroot root = scratch_root();
    hr_process_memory self;
    assert_int_equal(hr_self_read(&root, &self), HR_OK);
    assert_int_equal(self.rss, 10 * KiB);
    assert_int_equal(self.peak_rss, 20 * KiB);
    assert_int_equal(self.rss_anon, 4 * KiB);
    assert_int_equal(self.rss_file, 6 * KiB);
    assert_int_equal(self.major_faults, 9);

    /* kernels before 4.5 have no RssFile/RssAnon: zero, still present */
    put("proc/self/status", "VmHWM:\t  20 kB\nVmRSS:\t  10 kB\n");
    assert_int_equal(hr_self_read(&root, &self), HR_OK);
    assert_true(self.present);
    assert_int_equal(self.rss_file, 0);

    put("proc/self/status", "Name:\tx\nVmRSS:\t  10 kB\n");
    assert_int_equal(hr_self_read(&root, &self), HR_EFORMAT);
    assert_false(self.present);
    put("proc/self/status", "VmHWM:\t 99999999999999999999 kB\nVmRSS:\t  10 kB\n");
    assert_int_equal(hr_self_read(&root, &self), HR_EFORMAT);
    assert_false(self.present);

    /* a broken stat loses the fault count only */
    put("proc/self/status", "VmHWM:\t  20 kB\nVmRSS:\t  10 kB\n");
    put("proc/self/stat", "7 (x) S 1");
    assert_int_equal(hr_self_read(&root, &self), HR_EFORMAT);
    assert_non_null(strstr(hr_last_error(), "/proc/self/stat"));
    assert_true(self.present);
    assert_int_equal(self.rss, 10 * KiB);
    assert_int_equal(self.major_faults, 0);
}

/* ---- the seam and the text helpers --------------------------------------------------------- */

static void fsroot_paths(void **state)
{
    (void)state;
    hr_fsroot root;
    char path[64];
    assert_int_equal(hr_fsroot_init(&root, NULL), HR_OK);
    assert_int_equal(root.prefix_length, 0);
    assert_int_equal(hr_fsroot_init(&root, "/"), HR_OK);
    assert_int_equal(root.prefix_length, 0);
    assert_int_equal(hr_fsroot_init(&root, "/tmp/x//"), HR_OK);
    assert_string_equal(root.prefix, "/tmp/x");
    assert_int_equal(hr_fs_path(&root, "/proc/meminfo", path, sizeof path), HR_OK);
    assert_string_equal(path, "/tmp/x/proc/meminfo");
    assert_int_equal(hr_fs_path(NULL, "/proc/meminfo", path, sizeof path), HR_OK);
    assert_string_equal(path, "/proc/meminfo");
    assert_int_equal(hr_fs_path(&root, "proc/meminfo", path, sizeof path), HR_EINVAL);
    assert_int_equal(hr_fs_path(&root, "/proc/a/very/long/path/that/does/not/fit/in/sixty/four/bytes/at/all", path,
                                sizeof path), HR_EINVAL);

    char long_prefix[HR_FSROOT_PREFIX_MAX + 8];
    memset(long_prefix, 'a', sizeof long_prefix - 1);
    long_prefix[sizeof long_prefix - 1] = '\0';
    assert_int_equal(hr_fsroot_init(&root, long_prefix), HR_EINVAL);
}

static int count_line(char *line, void *user_data)
{
    int *lines = user_data;
    if (strcmp(line, "wanted") == 0) (*lines)++;
    return 0;
}

static void fs_reads(void **state)
{
    (void)state;
    hr_fsroot root = scratch_root();
    char buffer[8];
    size_t length = 99;
    assert_int_equal(hr_fs_read(&root, "/absent", buffer, sizeof buffer, &length), HR_ENOENT);
    assert_int_equal(length, 0);
    assert_non_null(strstr(hr_last_error(), "/absent"));

    put("seven", "1234567");
    assert_int_equal(hr_fs_read(&root, "/seven", buffer, sizeof buffer, &length), HR_OK);
    assert_int_equal(length, 7);
    assert_string_equal(buffer, "1234567");
    put("eight", "12345678");
    assert_int_equal(hr_fs_read(&root, "/eight", buffer, sizeof buffer, &length), HR_EIO);
    assert_string_equal(buffer, "1234567");

    /* a line longer than the line reader's buffer is skipped; the ones around it are read */
    size_t big = 10000;
    char *text = malloc(big + 64);
    assert_non_null(text);
    strcpy(text, "wanted\n");
    memset(text + 7, 'x', big);
    strcpy(text + 7 + big, "\nwanted\nwanted");
    put("lines", text);
    free(text);
    int lines = 0;
    assert_int_equal(hr_fs_read_lines(&root, "/lines", count_line, &lines), HR_OK);
    assert_int_equal(lines, 3);
}

static void text_helpers(void **state)
{
    (void)state;
    uint64_t value = 7;
    const char *end;
    assert_true(hr_parse_u64("18446744073709551615 kB", &end, &value));
    assert_int_equal(value, UINT64_MAX);
    assert_string_equal(end, " kB");
    assert_false(hr_parse_u64("18446744073709551616", &end, &value));
    assert_false(hr_parse_u64("-1", &end, &value));
    assert_false(hr_parse_u64("", &end, &value));
    assert_int_equal(value, UINT64_MAX);

    double decimal;
    assert_true(hr_parse_decimal("12.50", &end, &decimal));
    assert_near(decimal, 12.5);
    assert_true(hr_parse_decimal("3", &end, &decimal));
    assert_near(decimal, 3.0);
    assert_false(hr_parse_decimal(".5", &end, &decimal));

    uint64_t a = 0, b = 0, c = 0;
    hr_key_u64 keys[] = {{"a:", &a, false}, {"b", &b, false}, {"c", &c, false}};
    assert_int_equal(hr_scan_keys("a: 1 kB\nbb 5\nb\n2\nb 3\nc 4x\nc", keys, 3), 2);
    assert_int_equal(a, 1);
    assert_int_equal(b, 3);
    assert_false(keys[2].found);
    assert_int_equal(c, 0);
}

/* ---- NVML and triggers: the absence paths and argument checks -------------------------------- */

static void nvml_absent(void **state)
{
    (void)state;
    sample_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->gpu_telemetry = true;
    s->n_gpus = 3;
    assert_int_equal(hr_nvml_read_library("libheadroom-test-no-such-nvml.so.1", s), HR_OK);
    assert_false(s->gpu_telemetry);
    assert_int_equal(s->n_gpus, 0);
    /* a library that loads but is not NVML */
    s->gpu_telemetry = true;
    assert_int_equal(hr_nvml_read_library("libm.so.6", s), HR_OK);
    assert_false(s->gpu_telemetry);
    assert_int_equal(hr_nvml_read_library(NULL, s), HR_EINVAL);
    free(s);
}

static void trigger_arguments(void **state)
{
    (void)state;
    int fd = 42;
    put("pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
    char path[512];
    snprintf(path, sizeof path, "%s/pressure", scratch);
    assert_int_equal(hr_psi_trigger_open(path, "most", 150000, 1000000, &fd), HR_EINVAL);
    assert_int_equal(fd, -1);
    assert_int_equal(hr_psi_trigger_open(path, "some", 150000, 100000, &fd), HR_EINVAL);
    assert_int_equal(hr_psi_trigger_open(path, "some", 150000, 20000000, &fd), HR_EINVAL);
    assert_int_equal(hr_psi_trigger_open(path, "full", 2000000, 1000000, &fd), HR_EINVAL);
    assert_int_equal(hr_psi_trigger_open(path, "full", 0, 1000000, &fd), HR_EINVAL);
    assert_int_equal(hr_psi_trigger_open(NULL, "some", 150000, 1000000, &fd), HR_EINVAL);
    snprintf(path, sizeof path, "%s/absent/memory.pressure", scratch);
    assert_int_equal(hr_psi_trigger_open(path, "some", 150000, 1000000, &fd), HR_ENOENT);
    assert_int_equal(fd, -1);

    assert_int_equal(hr_cgroup_pressure_level_open(scratch, "severe", &fd), HR_EINVAL);
    assert_int_equal(hr_cgroup_pressure_level_open(scratch, "medium", &fd), HR_ENOENT);
    assert_non_null(strstr(hr_last_error(), "memory.pressure_level"));
    assert_int_equal(fd, -1);
}

static void null_arguments(void **state)
{
    (void)state;
    assert_int_equal(hr_probe_sample(NULL, 0.0, NULL), HR_EINVAL);
    assert_int_equal(hr_fsroot_init(NULL, "/"), HR_EINVAL);
    assert_int_equal(hr_psi_trigger_open("/proc/pressure/memory", "some", 1, 1000000, NULL), HR_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bare_host),
        cmocka_unit_test(v1_container),
        cmocka_unit_test(v2_container_high),
        cmocka_unit_test(no_swap),
        cmocka_unit_test(no_psi),
        cmocka_unit_test_setup_teardown(nothing_there, make_scratch, remove_scratch),
        cmocka_unit_test_setup_teardown(broken_meminfo, make_scratch, remove_scratch),
        cmocka_unit_test_setup_teardown(broken_vmstat, make_scratch, remove_scratch),
        cmocka_unit_test(psi_lines),
        cmocka_unit_test_setup_teardown(broken_psi_file, make_scratch, remove_scratch),
        cmocka_unit_test_setup_teardown(broken_cgroup_files, make_scratch, remove_scratch),
        cmocka_unit_test_setup_teardown(v1_limits, make_scratch, remove_scratch),
        cmocka_unit_test_setup_teardown(broken_cgroup_membership, make_scratch, remove_scratch),
        cmocka_unit_test_setup_teardown(mountinfo_details, make_scratch, remove_scratch),
        cmocka_unit_test(stat_command_names),
        cmocka_unit_test_setup_teardown(broken_self, make_scratch, remove_scratch),
        cmocka_unit_test(fsroot_paths),
        cmocka_unit_test_setup_teardown(fs_reads, make_scratch, remove_scratch),
        cmocka_unit_test(text_helpers),
        cmocka_unit_test(nvml_absent),
        cmocka_unit_test_setup_teardown(trigger_arguments, make_scratch, remove_scratch),
        cmocka_unit_test(null_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
