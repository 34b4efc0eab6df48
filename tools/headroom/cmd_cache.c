/*
 * cmd_cache.c: `headroom cache ls` and `headroom cache clear`: headroom's KV snapshots in its
 * cache directory, listed with their model, size and age, and removed (only headroom's own files,
 * after confirmation or with --force). Reads only through headroom.h.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: headroom cache ls [--json] [--cache-dir DIR]\n"
            "       headroom cache clear [--force] [--cache-dir DIR]\n"
            "\n"
            "headroom keeps KV snapshots (a model's conversation, so a resumed one does not pay for\n"
            "its prompt again) in DIR/kv/. DIR is $HEADROOM_CACHE_DIR, else $XDG_CACHE_HOME/headroom,\n"
            "else ~/.cache/headroom. The engine build and models that scripts/bootstrap keeps there\n"
            "are not part of this cache and are never touched.\n"
            "\n"
            "  ls      each snapshot: model, tokens, window, size, age, file; the total against the budget\n"
            "  clear   removes headroom's snapshots (files that carry its name pattern and trailer);\n"
            "          anything else in kv/, and any symbolic link, is left alone. Without --force it\n"
            "          lists what would go and asks on a terminal; without a terminal it removes nothing.\n"
            "\n"
            "options:\n"
            "      --json           ls: one JSON object\n"
            "  -f, --force          clear: remove without asking\n"
            "      --cache-dir DIR  use DIR instead of the default cache directory\n"
            "  -h, --help           this help\n");
}

static const char *age(double then, double now, char *buffer, size_t size)
{
    double seconds = now - then;
    if (seconds < 0) seconds = 0;
    if (seconds < 60) snprintf(buffer, size, "%.0fs ago", seconds);
    else if (seconds < 3600) snprintf(buffer, size, "%.0fm ago", seconds / 60);
    else if (seconds < 86400) snprintf(buffer, size, "%.1fh ago", seconds / 3600);
    else snprintf(buffer, size, "%.1fd ago", seconds / 86400);
    return buffer;
}

static double wall_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static const char *file_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int print_json(const hr_cache_status *status, const hr_cache_entry *entries, size_t count)
{
    double now = wall_now();
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "directory", status->directory);
    cJSON_AddNumberToObject(root, "budget_bytes", (double)status->budget_bytes);
    cJSON_AddNumberToObject(root, "used_bytes", (double)status->used_bytes);
    cJSON *list = cJSON_AddArrayToObject(root, "snapshots");
    for (size_t i = 0; i < count; i++) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "path", entries[i].path);
        cJSON_AddStringToObject(item, "model", entries[i].model);
        cJSON_AddNumberToObject(item, "bytes", (double)entries[i].bytes);
        cJSON_AddNumberToObject(item, "tokens", entries[i].tokens);
        cJSON_AddNumberToObject(item, "n_ctx", entries[i].n_ctx);
        cJSON_AddNumberToObject(item, "created_at", entries[i].created_at);
        cJSON_AddNumberToObject(item, "last_used_at", entries[i].last_used_at);
        cJSON_AddNumberToObject(item, "age_seconds", now - entries[i].created_at);
        cJSON_AddItemToArray(list, item);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) {
        fprintf(stderr, "headroom: out of memory printing JSON\n");
        return 1;
    }
    puts(text);
    free(text);
    return 0;
}

static void print_table(const hr_cache_status *status, const hr_cache_entry *entries, size_t count)
{
    char a[32], b[32], c[32];
    double now = wall_now();
    printf("cache: %s\n", status->directory);
    if (count > 0) {
        printf("%-20s %7s %7s %10s %10s %10s  %s\n", "MODEL", "TOKENS", "CTX", "SIZE", "CREATED", "USED", "FILE");
        for (size_t i = 0; i < count; i++)
            printf("%-20.20s %7d %7d %10s %10s %10s  %s\n", entries[i].model, entries[i].tokens, entries[i].n_ctx,
                   cli_bytes(entries[i].bytes, a, sizeof a), age(entries[i].created_at, now, b, sizeof b),
                   age(entries[i].last_used_at, now, c, sizeof c), file_name(entries[i].path));
    }
    printf("%zu snapshot%s, %s of a %s budget\n", count, count == 1 ? "" : "s", cli_bytes(status->used_bytes, a, sizeof a),
           cli_bytes(status->budget_bytes, b, sizeof b));
}

static void report_problem(const char *path, int code, const char *sentence, void *user_data)
{
    (void)path;
    (void)code;
    (void)user_data;
    fprintf(stderr, "headroom: %s\n", sentence);
}

/* y or yes on the terminal; anything else (or end of input) is no. */
static bool confirmed(void)
{
    fprintf(stderr, "Remove them? [y/N] ");
    fflush(stderr);
    char answer[16];
    if (!fgets(answer, sizeof answer, stdin)) return false;
    return strcmp(answer, "y\n") == 0 || strcmp(answer, "Y\n") == 0 || strcmp(answer, "yes\n") == 0;
}

static int clear(hr_context *ctx, const hr_cache_status *status, size_t count, bool force)
{
    char a[32];
    if (!force && count > 0) {
        printf("would remove %zu snapshot%s (%s) from %s\n", count, count == 1 ? "" : "s",
               cli_bytes(status->used_bytes, a, sizeof a), status->directory);
        if (!isatty(STDIN_FILENO) || !isatty(STDERR_FILENO)) {
            fprintf(stderr, "headroom: nothing removed: there is no terminal to confirm on; "
                            "run 'headroom cache clear --force' to remove them\n");
            return EXIT_USAGE;
        }
        if (!confirmed()) {
            fprintf(stderr, "headroom: nothing removed\n");
            return 1;
        }
    }
    /* With no snapshot listed only leftovers of interrupted saves can go: no need to ask. */
    hr_cache_clear_report report;
    int rc = hr_cache_clear(ctx, &report, report_problem, NULL);
    printf("removed %zu file%s (%s) from %s", report.removed, report.removed == 1 ? "" : "s",
           cli_bytes(report.bytes_removed, a, sizeof a), status->directory);
    if (report.skipped > 0) printf("; left %zu entr%s that %s not headroom's alone", report.skipped,
                                   report.skipped == 1 ? "y" : "ies", report.skipped == 1 ? "is" : "are");
    printf("\n");
    if (rc != HR_OK) {
        fprintf(stderr, "headroom: %s\n", hr_last_error());
        return 1;
    }
    return 0;
}

int cmd_cache(int argc, char **argv)
{
    static const struct option options[] = {
        { "json", no_argument, NULL, 'j' },
        { "force", no_argument, NULL, 'f' },
        { "cache-dir", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *action = argv[1];
    if (strcmp(action, "-h") == 0 || strcmp(action, "--help") == 0 || strcmp(action, "help") == 0) {
        usage(stdout);
        return 0;
    }
    bool is_list = strcmp(action, "ls") == 0 || strcmp(action, "list") == 0;
    bool is_clear = strcmp(action, "clear") == 0;
    if (!is_list && !is_clear) {
        fprintf(stderr, "headroom: unknown cache command '%s': use 'ls' or 'clear'\n", action);
        return EXIT_USAGE;
    }
    bool json = false, force = false;
    const char *cache_dir = NULL;
    optind = 1;
    int option;
    while ((option = getopt_long(argc - 1, argv + 1, "fh", options, NULL)) != -1) {
        switch (option) {
        case 'j': json = true; break;
        case 'f': force = true; break;
        case 'd': cache_dir = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc - 1) {
        fprintf(stderr, "headroom: unexpected argument '%s'\n", argv[optind + 1]);
        return EXIT_USAGE;
    }
    if ((json && !is_list) || (force && !is_clear)) {
        fprintf(stderr, "headroom: %s is for 'cache %s'\n", json ? "--json" : "--force", json ? "ls" : "clear");
        return EXIT_USAGE;
    }

    hr_context_params params = hr_context_default_params();
    params.monitor = false;
    params.log_fn = cli_log;
    params.cache_dir = cache_dir;
    hr_context *ctx = NULL;
    if (hr_context_create(&params, &ctx) != HR_OK) {
        fprintf(stderr, "headroom: %s\n", hr_last_error());
        return 1;
    }
    hr_cache_status status;
    hr_cache_entry *entries = NULL;
    size_t count = 0;
    int rc = hr_cache_get_status(ctx, &status);
    if (rc == HR_OK) rc = hr_cache_list(ctx, &entries, &count);
    int exit_code;
    if (rc != HR_OK) {
        fprintf(stderr, "headroom: %s\n", hr_last_error());
        exit_code = 1;
    } else if (is_list) {
        if (json) exit_code = print_json(&status, entries, count);
        else {
            print_table(&status, entries, count);
            exit_code = 0;
        }
    } else {
        exit_code = clear(ctx, &status, count, force);
    }
    hr_free(entries);
    hr_context_free(ctx);
    return exit_code;
}
