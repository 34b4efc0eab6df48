/*
 * skip.h: a test that cannot run on this machine says why and is reported by ctest as skipped
 * (exit 77, SKIP_RETURN_CODE), never as passed. ctest has one result per entry, so a case that
 * can skip gets an entry of its own: --only=CASE[,CASE...] and --except=CASE[,CASE...] choose
 * the cmocka cases one run executes (tests/CMakeLists.txt, headroom_case_entries).
 * Include after <cmocka.h>; it replaces cmocka's skip(), which takes no reason.
 */
#ifndef HR_TEST_SKIP_H
#define HR_TEST_SKIP_H

#include <stddef.h>

/* The exit status ctest's SKIP_RETURN_CODE expects (automake's convention, as in tests/e2e). */
#define TEST_SKIPPED 77

/* Prints "skipped: <reason>" and ends the running case as skipped. */
#define skip_because(...)                   \
    do {                                    \
        skip_record(__VA_ARGS__);           \
        _skip(__FILE__, __LINE__);          \
    } while (0)

/* A bare skip() would say nothing and escape the count run_cases() returns from: refused. */
#undef skip
#define skip() skip_without_a_reason_use_skip_because()

/* Prints the reason and counts the skip; skip_because() calls it. */
void skip_record(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* Takes --only=... and --except=... out of argv (anywhere in it), so that a main's own
 * positional arguments are as before. Returns 0, or 2 after a usage message. */
int select_cases(int *argc, char **argv);

/* Runs the selected cases of `tests` as cmocka_run_group_tests() would. Returns what main
 * returns: cmocka's failure count where a case failed; TEST_SKIPPED where every case it ran
 * skipped; 1 where some ran and others skipped (an entry must be one or the other, or its
 * result hides something: give the skipping case an entry of its own); 2 where the selection
 * names a case that does not exist or selects none. */
int run_selected(const char *group, const struct CMUnitTest *tests, size_t count, CMFixtureFunction setup,
                 CMFixtureFunction teardown);
#define run_cases(tests, setup, teardown) \
    run_selected(#tests, tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown)

#endif
