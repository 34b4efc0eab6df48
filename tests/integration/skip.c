/*
 * skip.c: skips with a reason, the choice of cases one ctest entry runs, and the exit status
 * that tells ctest what happened (see skip.h). It decides nothing about whether a test can run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "skip.h"

static int skipped_cases;
static const char *only_cases;     /* comma-separated names, or NULL for all */
static const char *except_cases;

void skip_record(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    printf("skipped: ");
    vprintf(format, args);
    printf("\n");
    fflush(stdout);
    va_end(args);
    skipped_cases++;
}

int select_cases(int *argc, char **argv)
{
    int kept = 1;
    for (int i = 1; i < *argc; i++) {
        const char **list = strncmp(argv[i], "--only=", 7) == 0     ? &only_cases
                            : strncmp(argv[i], "--except=", 9) == 0 ? &except_cases
                                                                    : NULL;
        if (!list) {
            argv[kept++] = argv[i];
            continue;
        }
        *list = strchr(argv[i], '=') + 1;
        if (!**list) {
            fprintf(stderr, "%s: %s names no case\n", argv[0], argv[i]);
            return 2;
        }
    }
    argv[kept] = NULL;
    *argc = kept;
    return 0;
}

/* Whether NAME is one of the comma-separated LIST. */
static bool listed(const char *list, const char *name)
{
    size_t length = strlen(name);
    for (const char *p = list; *p;) {
        size_t item = strcspn(p, ",");
        if (item == length && strncmp(p, name, length) == 0) return true;
        p += item;
        if (*p == ',') p++;
    }
    return false;
}

/* Every name in LIST is a case of TESTS: a misspelt --only would otherwise select nothing and
 * --except would exclude nothing, both silently. */
static bool all_exist(const char *list, const struct CMUnitTest *tests, size_t count)
{
    for (const char *p = list; *p;) {
        size_t item = strcspn(p, ",");
        bool found = false;
        for (size_t i = 0; i < count && !found; i++)
            found = strlen(tests[i].name) == item && strncmp(tests[i].name, p, item) == 0;
        if (!found) {
            fprintf(stderr, "no case named \"%.*s\"\n", (int)item, p);
            return false;
        }
        p += item;
        if (*p == ',') p++;
    }
    return true;
}

int run_selected(const char *group, const struct CMUnitTest *tests, size_t count, CMFixtureFunction setup,
                 CMFixtureFunction teardown)
{
    if ((only_cases && !all_exist(only_cases, tests, count)) || (except_cases && !all_exist(except_cases, tests, count)))
        return 2;
    struct CMUnitTest *chosen = calloc(count, sizeof *chosen);
    if (!chosen) return 2;
    size_t selected = 0;
    for (size_t i = 0; i < count; i++) {
        if (only_cases && !listed(only_cases, tests[i].name)) continue;
        if (except_cases && listed(except_cases, tests[i].name)) continue;
        chosen[selected++] = tests[i];
    }
    if (selected == 0) {
        fprintf(stderr, "the selection (--only/--except) leaves no case to run\n");
        free(chosen);
        return 2;
    }
    skipped_cases = 0;
    int failed = _cmocka_run_group_tests(group, chosen, selected, setup, teardown);
    free(chosen);
    if (failed) return failed;
    if (skipped_cases == 0) return 0;
    if ((size_t)skipped_cases == selected) return TEST_SKIPPED;
    printf("%d of %zu cases skipped while the others ran: one ctest result cannot say both; give each case that "
           "can skip a ctest entry of its own (--only=CASE, headroom_case_entries in tests/CMakeLists.txt)\n",
           skipped_cases, selected);
    return 1;
}
