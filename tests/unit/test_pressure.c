/*
 * test_pressure.c: the pure memory policy (src/policy/): effective available memory over
 * scopes, signals from two samples, and classification with hysteresis, on hand-made samples.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "policy/pressure.h"

#define MiB (1024ull * 1024ull)
#define GiB (1024ull * MiB)

static hr_sample host_sample(uint64_t total, uint64_t available)
{
    hr_sample s;
    memset(&s, 0, sizeof s);
    s.host.present = true;
    s.host.total = total;
    s.host.available = available;
    s.host.vmstat_present = true;
    return s;
}

static hr_cgroup_level *add_cgroup(hr_sample *s, const char *path, uint64_t max, uint64_t high,
                                   uint64_t current, uint64_t inactive_file)
{
    hr_cgroup_level *cg = &s->cgroups[s->n_cgroups++];
    memset(cg, 0, sizeof *cg);
    strcpy(cg->path, path);
    cg->version = 2;
    cg->max = max;
    cg->high = high;
    cg->current = current;
    cg->inactive_file = inactive_file;
    cg->events_present = true;
    return cg;
}

/* ---- effective available -------------------------------------------------------------------- */

static void host_alone_binds(void **state)
{
    (void)state;
    hr_sample s = host_sample(16 * GiB, 6 * GiB);
    hr_effective_memory e;
    hr_effective_memory_compute(&s, &e);
    assert_true(e.known);
    assert_string_equal(e.binding.name, "host");
    assert_int_equal(e.binding.available, 6 * GiB);
    assert_int_equal(e.binding.total, 16 * GiB);
}

static void container_limit_binds_below_host(void **state)
{
    (void)state;
    hr_sample s = host_sample(24 * GiB, 20 * GiB);
    /* own cgroup unlimited, its parent limited to 2 GiB with 1.5 GiB used, 100 MiB reclaimable */
    add_cgroup(&s, "/app/worker", HR_UNLIMITED, HR_UNLIMITED, 1 * GiB, 0);
    add_cgroup(&s, "/app", 2 * GiB, HR_UNLIMITED, 1536 * MiB, 100 * MiB);
    hr_effective_memory e;
    hr_effective_memory_compute(&s, &e);
    assert_int_equal(e.n_scopes, 2);   /* host and /app; the unlimited level is no scope */
    assert_string_equal(e.binding.name, "cgroup /app (memory.max)");
    assert_int_equal(e.binding.available, 512 * MiB + 100 * MiB);
    assert_int_equal(e.binding.total, 2 * GiB);
}

static void memory_high_counts_when_lower(void **state)
{
    (void)state;
    hr_sample s = host_sample(24 * GiB, 20 * GiB);
    add_cgroup(&s, "/svc", 4 * GiB, 3 * GiB, 2 * GiB, 0);
    hr_effective_memory e;
    hr_effective_memory_compute(&s, &e);
    assert_string_equal(e.binding.name, "cgroup /svc (memory.high)");
    assert_int_equal(e.binding.total, 3 * GiB);
    assert_int_equal(e.binding.available, 1 * GiB);
}

static void usage_over_the_limit_leaves_only_reclaimable(void **state)
{
    (void)state;
    hr_sample s = host_sample(24 * GiB, 20 * GiB);
    add_cgroup(&s, "/tight", 1 * GiB, HR_UNLIMITED, 1 * GiB + 5 * MiB, 30 * MiB);
    hr_effective_memory e;
    hr_effective_memory_compute(&s, &e);
    assert_int_equal(e.binding.available, 30 * MiB);
}

/* The figures: a 1200 MiB cgroup, the model just unloaded, 604 MiB of its file still cached
 * (194 MiB of it on the active list). Counted as plain page cache, 900 MiB is available and a load
 * that needs 1001 MiB is refused; for a load that maps that file, the file's pages count. */
static void a_mapped_file_s_cached_pages_count_for_its_load(void **state)
{
    (void)state;
    hr_sample s = host_sample(24 * GiB, 20 * GiB);
    add_cgroup(&s, "/llm", 1200 * MiB, HR_UNLIMITED, 710 * MiB, 410 * MiB);
    hr_effective_memory plain, reusing, none;
    hr_effective_memory_compute(&s, &plain);
    assert_int_equal(plain.binding.available, 490 * MiB + 410 * MiB);
    hr_effective_memory_reusing(&s, 604 * MiB, &reusing);
    /* which of the file's pages are inactive is not known: max(inactive, file), never their sum */
    assert_int_equal(reusing.binding.available, 490 * MiB + 604 * MiB);
    assert_true(reusing.binding.available >= 1001 * MiB);
    /* a file smaller than the inactive list adds nothing: its pages may all be on that list */
    hr_effective_memory_reusing(&s, 100 * MiB, &none);
    assert_int_equal(none.binding.available, plain.binding.available);
    /* the host's MemAvailable counts page cache already: unchanged */
    hr_sample host = host_sample(16 * GiB, 6 * GiB);
    hr_effective_memory_reusing(&host, 2 * GiB, &reusing);
    assert_int_equal(reusing.binding.available, 6 * GiB);
    /* never more than the limit */
    hr_sample full = host_sample(24 * GiB, 20 * GiB);
    add_cgroup(&full, "/llm", 1200 * MiB, HR_UNLIMITED, 100 * MiB, 0);
    hr_effective_memory_reusing(&full, 1500 * MiB, &reusing);
    assert_int_equal(reusing.binding.available, 1200 * MiB);
}

static void nothing_known(void **state)
{
    (void)state;
    hr_sample s;
    memset(&s, 0, sizeof s);
    hr_pressure_signals sig;
    hr_pressure_signals_compute(NULL, &s, &sig);
    assert_false(sig.memory.known);
    assert_true(sig.free_percent == 100.0);
    hr_classifier_state cs = { 0 };
    hr_classification c;
    hr_pressure_thresholds t = hr_pressure_thresholds_default();
    hr_classify(&sig, &t, &cs, 0, &c);
    assert_int_equal(c.level, HR_PRESSURE_NORMAL);
    assert_non_null(strstr(c.reason, "no memory source"));
}

/* Representative macOS values in the shape host_statistics64 returns them (16 KiB pages,
 * 16 GiB machine). Not recorded on a Mac: the macOS backend is not yet verified there. */
static hr_sample mac_sample(uint64_t free_pages, uint64_t inactive_pages, int level)
{
    hr_sample s;
    memset(&s, 0, sizeof s);
    s.darwin.present = true;
    s.darwin.page_size = 16384;
    s.darwin.memsize = 16 * GiB;
    s.darwin.free_pages = free_pages;
    s.darwin.inactive_pages = inactive_pages;
    s.darwin.active_pages = 500000;
    s.darwin.wired_pages = 150000;
    s.darwin.compressor_pages = 80000;
    s.darwin.pressure_level = level;
    return s;
}

static void macos_values_classify(void **state)
{
    (void)state;
    hr_pressure_thresholds t = hr_pressure_thresholds_default();
    struct { uint64_t free_pages, inactive_pages; int level; enum hr_pressure_level expected; uint64_t available; } cases[] = {
        { 100000, 250000, 1, HR_PRESSURE_NORMAL, 350000ull * 16384 },   /* 5.3 GiB, 33% */
        { 40000, 60000, 2, HR_PRESSURE_WARN, 100000ull * 16384 },       /* 1.5 GiB, 9.5% and level 2 */
        { 8000, 12000, 4, HR_PRESSURE_CRITICAL, 20000ull * 16384 },     /* 312 MiB, 1.9% and level 4 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hr_sample s = mac_sample(cases[i].free_pages, cases[i].inactive_pages, cases[i].level);
        hr_pressure_signals sig;
        hr_pressure_signals_compute(NULL, &s, &sig);
        assert_string_equal(sig.memory.binding.name, "macOS");
        assert_int_equal(sig.memory.binding.available, cases[i].available);
        hr_classifier_state cs = { 0 };
        hr_classification c;
        hr_classify(&sig, &t, &cs, 0, &c);
        assert_int_equal(c.level, cases[i].expected);
    }
    /* the memorystatus level alone raises the level even with plenty free */
    hr_sample s = mac_sample(300000, 300000, 4);
    hr_pressure_signals sig;
    hr_pressure_signals_compute(NULL, &s, &sig);
    hr_classifier_state cs = { 0 };
    hr_classification c;
    hr_classify(&sig, &t, &cs, 0, &c);
    assert_int_equal(c.level, HR_PRESSURE_CRITICAL);
    assert_non_null(strstr(c.reason, "macOS reports critical"));
}

/* ---- signals from two samples ------------------------------------------------------------- */

static void rates_and_stall_shares(void **state)
{
    (void)state;
    hr_sample a = host_sample(8 * GiB, 4 * GiB), b = a;
    a.timestamp = 100.0;
    b.timestamp = 100.5;
    a.host.pswpin = 1000;
    b.host.pswpin = 1500;       /* 500 pages in 0.5 s */
    a.host.pswpout = 10;
    b.host.pswpout = 2010;
    a.host.pgmajfault = 7;
    b.host.pgmajfault = 7;
    a.psi_host.present = b.psi_host.present = true;
    a.psi_host.has_full = b.psi_host.has_full = true;
    a.psi_host.some.total_us = 1000000;
    b.psi_host.some.total_us = 1050000;   /* 50 ms stalled in 500 ms: 10% */
    a.psi_host.full.total_us = 0;
    b.psi_host.full.total_us = 5000;      /* 1% */
    b.psi_host.some.avg10 = 3.5;
    hr_pressure_signals sig;
    hr_pressure_signals_compute(&a, &b, &sig);
    assert_true(sig.rates_known);
    assert_true(sig.swap_in_per_second == 1000.0);
    assert_true(sig.swap_out_per_second == 4000.0);
    assert_true(sig.major_faults_per_second == 0.0);
    assert_true(sig.stall_known);
    assert_true(sig.stall_some_percent > 9.99 && sig.stall_some_percent < 10.01);
    assert_true(sig.stall_full_percent > 0.99 && sig.stall_full_percent < 1.01);
    assert_true(sig.stall_some_avg10 == 3.5);
}

static void counter_reset_and_missing_full(void **state)
{
    (void)state;
    hr_sample a = host_sample(8 * GiB, 4 * GiB), b = a;
    a.timestamp = 1;
    b.timestamp = 2;
    a.host.pswpin = 5000;
    b.host.pswpin = 10;                  /* a reset (or a wrapped counter): no rate, not a huge one */
    a.psi_host.present = b.psi_host.present = true;
    a.psi_host.some.total_us = 0;
    b.psi_host.some.total_us = 5000000;  /* more than the interval: clamped to 100% */
    hr_pressure_signals sig;
    hr_pressure_signals_compute(&a, &b, &sig);
    assert_true(sig.swap_in_per_second == 0.0);
    assert_true(sig.stall_some_percent == 100.0);
    assert_true(sig.stall_full_percent == 0.0);   /* no full line: no full share */
}

static void cgroup_events_are_counted_per_level(void **state)
{
    (void)state;
    hr_sample a = host_sample(8 * GiB, 4 * GiB), b;
    a.timestamp = 1;
    add_cgroup(&a, "/a/b", 1 * GiB, HR_UNLIMITED, 100 * MiB, 0);
    add_cgroup(&a, "/a", HR_UNLIMITED, HR_UNLIMITED, 100 * MiB, 0);
    b = a;
    b.timestamp = 2;
    b.cgroups[0].events_max = 3;
    b.cgroups[1].events_high = 2;
    b.cgroups[0].events_oom_kill = 1;
    hr_pressure_signals sig;
    hr_pressure_signals_compute(&a, &b, &sig);
    assert_int_equal(sig.new_max_events, 3);
    assert_int_equal(sig.new_high_events, 2);
    assert_int_equal(sig.new_oom_events, 1);
    strcpy(b.cgroups[0].path, "/elsewhere");     /* moved: the counters are not comparable */
    hr_pressure_signals_compute(&a, &b, &sig);
    assert_int_equal(sig.new_max_events, 0);
    assert_int_equal(sig.new_oom_events, 0);
}

/* ---- classification ------------------------------------------------------------------------ */

static hr_pressure_signals free_signals(double free_percent)
{
    hr_sample s = host_sample(10000 * MiB, (uint64_t)(free_percent * 100.0) * MiB);
    hr_pressure_signals sig;
    hr_pressure_signals_compute(NULL, &s, &sig);
    return sig;
}

static enum hr_pressure_level classify_once(const hr_pressure_signals *sig, hr_classification *c)
{
    hr_pressure_thresholds t = hr_pressure_thresholds_default();
    hr_classifier_state cs = { 0 };
    hr_classify(sig, &t, &cs, 0, c);
    return c->level;
}

static void levels_from_each_signal(void **state)
{
    (void)state;
    hr_classification c;
    hr_pressure_signals sig = free_signals(40);
    assert_int_equal(classify_once(&sig, &c), HR_PRESSURE_NORMAL);
    assert_non_null(strstr(c.reason, "4000 MiB available, 40.0% of host"));

    sig = free_signals(12);
    assert_int_equal(classify_once(&sig, &c), HR_PRESSURE_WARN);
    assert_non_null(strstr(c.reason, "12.0% of host (warn below 15%)"));

    sig = free_signals(3);
    assert_int_equal(classify_once(&sig, &c), HR_PRESSURE_CRITICAL);

    sig = free_signals(40);
    sig.stall_known = true;
    sig.interval = 0.5;
    sig.stall_some_percent = 12;
    assert_int_equal(classify_once(&sig, &c), HR_PRESSURE_WARN);
    assert_non_null(strstr(c.reason, "tasks waited for memory 12% of the last 0.50 s"));
    sig.stall_full_percent = 25;
    assert_int_equal(classify_once(&sig, &c), HR_PRESSURE_CRITICAL);
    assert_non_null(strstr(c.reason, "every task waited"));

    sig = free_signals(40);
    sig.rates_known = true;
    sig.swap_in_per_second = 300;
    assert_int_equal(classify_once(&sig, &c), HR_PRESSURE_WARN);
    sig.swap_out_per_second = 3000;
    sig.swap_in_per_second = 3000;
    assert_int_equal(classify_once(&sig, &c), HR_PRESSURE_CRITICAL);
    assert_non_null(strstr(c.reason, "swap thrashing"));

    sig = free_signals(40);
    sig.new_oom_events = 1;
    assert_int_equal(classify_once(&sig, &c), HR_PRESSURE_CRITICAL);
    sig = free_signals(40);
    sig.new_max_events = 2;
    assert_int_equal(classify_once(&sig, &c), HR_PRESSURE_WARN);
}

static void several_reasons_are_all_named(void **state)
{
    (void)state;
    hr_classification c;
    hr_pressure_signals sig = free_signals(2);
    sig.stall_known = true;
    sig.interval = 1;
    sig.stall_full_percent = 80;
    assert_int_equal(classify_once(&sig, &c), HR_PRESSURE_CRITICAL);
    assert_non_null(strstr(c.reason, "2.0% of host"));
    assert_non_null(strstr(c.reason, "; every task waited for memory 80%"));
}

static void rises_at_once_falls_after_calm_one_step_at_a_time(void **state)
{
    (void)state;
    hr_pressure_thresholds t = hr_pressure_thresholds_default();
    hr_classifier_state cs = { 0 };
    hr_classification c;
    hr_pressure_signals critical = free_signals(2), calm = free_signals(50);

    hr_classify(&critical, &t, &cs, 0.0, &c);
    assert_int_equal(c.level, HR_PRESSURE_CRITICAL);
    assert_true(c.changed);

    hr_classify(&calm, &t, &cs, 1.0, &c);           /* calm starts */
    assert_int_equal(c.level, HR_PRESSURE_CRITICAL);
    assert_false(c.changed);
    assert_non_null(strstr(c.reason, "held at critical for 10 s more"));
    hr_classify(&calm, &t, &cs, 10.9, &c);
    assert_int_equal(c.level, HR_PRESSURE_CRITICAL);
    hr_classify(&calm, &t, &cs, 11.0, &c);          /* 10 s of calm: one step down */
    assert_int_equal(c.level, HR_PRESSURE_WARN);
    assert_true(c.changed);
    hr_classify(&calm, &t, &cs, 15.0, &c);
    assert_int_equal(c.level, HR_PRESSURE_WARN);
    hr_classify(&calm, &t, &cs, 21.0, &c);          /* another 10 s: normal */
    assert_int_equal(c.level, HR_PRESSURE_NORMAL);
    assert_true(c.changed);
}

static void a_relapse_restarts_the_calm_clock(void **state)
{
    (void)state;
    hr_pressure_thresholds t = hr_pressure_thresholds_default();
    hr_classifier_state cs = { 0 };
    hr_classification c;
    hr_pressure_signals warn = free_signals(12), calm = free_signals(50);
    hr_classify(&warn, &t, &cs, 0, &c);
    hr_classify(&calm, &t, &cs, 1, &c);
    hr_classify(&warn, &t, &cs, 8, &c);             /* relapse */
    hr_classify(&calm, &t, &cs, 9, &c);
    hr_classify(&calm, &t, &cs, 15, &c);            /* 14 s after the first calm, 6 after the relapse */
    assert_int_equal(c.level, HR_PRESSURE_WARN);
    hr_classify(&calm, &t, &cs, 19, &c);
    assert_int_equal(c.level, HR_PRESSURE_NORMAL);
}

static void no_flapping_around_a_threshold(void **state)
{
    (void)state;
    hr_pressure_thresholds t = hr_pressure_thresholds_default();
    hr_classifier_state cs = { 0 };
    hr_classification c;
    int changes = 0;
    /* free memory wobbles 14% .. 16% around the 15% warn line for a minute, sampled at 4 Hz */
    for (int i = 0; i < 240; i++) {
        hr_pressure_signals sig = free_signals(i % 2 ? 14.0 : 16.0);
        hr_classify(&sig, &t, &cs, i * 0.25, &c);
        changes += c.changed;
    }
    assert_int_equal(changes, 1);                    /* into warn once, then held */
    assert_int_equal(c.level, HR_PRESSURE_WARN);
    /* inside the margin (15..20%) it holds; above it, it leaves after the hold time */
    hr_pressure_signals inside = free_signals(18);
    hr_classify(&inside, &t, &cs, 100, &c);
    hr_classify(&inside, &t, &cs, 200, &c);
    assert_int_equal(c.level, HR_PRESSURE_WARN);
    assert_non_null(strstr(c.reason, "held at warn"));
    hr_pressure_signals above = free_signals(21);
    hr_classify(&above, &t, &cs, 201, &c);
    hr_classify(&above, &t, &cs, 211, &c);
    assert_int_equal(c.level, HR_PRESSURE_NORMAL);
}

static void thresholds_can_be_changed(void **state)
{
    (void)state;
    hr_pressure_thresholds t = hr_pressure_thresholds_default();
    t.warn_free_percent = 40;   /* the Python SDK seed's conservative choice */
    t.critical_free_percent = 20;
    t.hold_seconds = 0;
    hr_classifier_state cs = { 0 };
    hr_classification c;
    hr_pressure_signals sig = free_signals(30);
    hr_classify(&sig, &t, &cs, 0, &c);
    assert_int_equal(c.level, HR_PRESSURE_WARN);
    sig = free_signals(60);
    hr_classify(&sig, &t, &cs, 1, &c);
    assert_int_equal(c.level, HR_PRESSURE_NORMAL);   /* no hold: down at once */
    assert_string_equal(hr_pressure_level_name(HR_PRESSURE_CRITICAL), "critical");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(host_alone_binds),
        cmocka_unit_test(container_limit_binds_below_host),
        cmocka_unit_test(memory_high_counts_when_lower),
        cmocka_unit_test(usage_over_the_limit_leaves_only_reclaimable),
        cmocka_unit_test(a_mapped_file_s_cached_pages_count_for_its_load),
        cmocka_unit_test(nothing_known),
        cmocka_unit_test(macos_values_classify),
        cmocka_unit_test(rates_and_stall_shares),
        cmocka_unit_test(counter_reset_and_missing_full),
        cmocka_unit_test(cgroup_events_are_counted_per_level),
        cmocka_unit_test(levels_from_each_signal),
        cmocka_unit_test(several_reasons_are_all_named),
        cmocka_unit_test(rises_at_once_falls_after_calm_one_step_at_a_time),
        cmocka_unit_test(a_relapse_restarts_the_calm_clock),
        cmocka_unit_test(no_flapping_around_a_threshold),
        cmocka_unit_test(thresholds_can_be_changed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
