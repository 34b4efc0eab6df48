/*
 * cmd_server.c: the commands that talk to a running headroomd, as Ollama's do: `headroom ps`
 * (the loaded models), `headroom load MODEL`, `headroom unload MODEL` and `headroom top` (level,
 * memory, models and generations, live; q quits). Each takes --json. HTTP is client.c's.
 */
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"

static double number_of(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    return cJSON_IsNumber(item) ? item->valuedouble : 0;
}

static const char *string_of(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    return cJSON_IsString(item) ? item->valuestring : "";
}

static bool loaded(const cJSON *model)
{
    const char *state = string_of(model, "state");
    return strcmp(state, "unloaded") != 0;
}

/* "4 minutes from now", "in use", "never": when a loaded model goes, as `ollama ps` says it. */
static const char *until_text(const cJSON *model, char *buffer, size_t size)
{
    double expires = number_of(model, "expires_at");
    if (number_of(model, "users") > 0) snprintf(buffer, size, "in use");
    else if (number_of(model, "keep_alive") < 0 || expires <= 0 || expires > 253402300000.0) snprintf(buffer, size, "never");
    else {
        double left = expires - (double)time(NULL);
        if (left < 0) left = 0;
        if (left < 120) snprintf(buffer, size, "%.0f seconds from now", left);
        else if (left < 7200) snprintf(buffer, size, "%.0f minutes from now", left / 60);
        else snprintf(buffer, size, "%.0f hours from now", left / 3600);
    }
    return buffer;
}

static void print_models(const cJSON *models, bool all)
{
    printf("%-24s %-10s %-10s %-8s %s\n", "NAME", "STATE", "MEMORY", "CONTEXT", "UNTIL");
    const cJSON *m;
    cJSON_ArrayForEach(m, models) {
        if (!all && !loaded(m)) continue;
        char memory[32] = "", until[64] = "";
        double bytes = number_of(m, "rss_bytes");
        if (bytes <= 0) bytes = number_of(m, "weight_bytes");
        if (loaded(m)) {
            cli_bytes((uint64_t)bytes, memory, sizeof memory);
            until_text(m, until, sizeof until);
        }
        char context[16] = "";
        if (loaded(m)) snprintf(context, sizeof context, "%.0f", number_of(m, "n_ctx"));
        printf("%-24s %-10s %-10s %-8s %s%s\n", string_of(m, "name"), string_of(m, "state"), memory, context, until,
               strcmp(string_of(m, "served_by"), "fallback") == 0 ? " (served by the fall-back)" : "");
    }
}

static int fail(const char *command, const char *error)
{
    fprintf(stderr, "headroom %s: %s\n", command, error);
    return 1;
}

/* ---- ps ----------------------------------------------------------------------------------- */

static void ps_usage(FILE *out)
{
    fprintf(out, "usage: headroom ps [--all] [--json]\n\n"
                 "Lists the models a running headroomd holds in memory (HEADROOM_HOST, default\n"
                 "http://127.0.0.1:11435): memory, context window and when each unloads.\n\n"
                 "  -a, --all    every model it may serve, loaded or not\n"
                 "      --json   the server's model entries as a JSON array\n");
}

int cmd_ps(int argc, char **argv)
{
    static const struct option options[] = { { "json", no_argument, NULL, 'j' }, { "all", no_argument, NULL, 'a' },
                                             { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
    bool json = false, all = false;
    int option;
    while ((option = getopt_long(argc, argv, "ah", options, NULL)) != -1) {
        if (option == 'j') json = true;
        else if (option == 'a') all = true;
        else if (option == 'h') { ps_usage(stdout); return 0; }
        else { ps_usage(stderr); return EXIT_USAGE; }
    }
    if (optind < argc) {
        fprintf(stderr, "headroom ps: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    cJSON *memory = NULL;
    char error[1024];
    if (client_request("GET", "/api/memory", NULL, 10, &memory, error, sizeof error) != 200) return fail("ps", error);
    cJSON *models = cJSON_GetObjectItemCaseSensitive(memory, "models");
    if (json) {
        cJSON *list = cJSON_CreateArray();
        const cJSON *m;
        cJSON_ArrayForEach(m, models) if (all || loaded(m)) cJSON_AddItemToArray(list, cJSON_Duplicate(m, true));
        char *text = cJSON_PrintUnformatted(list);
        if (text) puts(text);
        free(text);
        cJSON_Delete(list);
    } else {
        print_models(models, all);
    }
    cJSON_Delete(memory);
    return 0;
}

/* ---- load and unload ---------------------------------------------------------------------- */

static void load_usage(FILE *out)
{
    fprintf(out, "usage: headroom load MODEL [--keep-alive D] [--json]\n\n"
                 "Asks a running headroomd to load MODEL (a name 'headroom ps --all' lists) and\n"
                 "keep it for D after its last use: 5m, 1h, 30s, 0, -1 = never (default: the\n"
                 "server's --keep-alive). Refused with the reason when memory does not allow it.\n");
}

static void unload_usage(FILE *out)
{
    fprintf(out, "usage: headroom unload MODEL [--json]\n\n"
                 "Asks a running headroomd to unload MODEL now (refused while it generates).\n");
}

static int load_or_unload(int argc, char **argv, bool load)
{
    const char *command = load ? "load" : "unload";
    static const struct option options[] = { { "json", no_argument, NULL, 'j' },
                                             { "keep-alive", required_argument, NULL, 'k' },
                                             { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
    bool json = false;
    const char *keep_alive = NULL;
    int option;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (option == 'j') json = true;
        else if (option == 'k' && load) keep_alive = optarg;
        else if (option == 'h') { (load ? load_usage : unload_usage)(stdout); return 0; }
        else { (load ? load_usage : unload_usage)(stderr); return EXIT_USAGE; }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "headroom %s: %s\n", command, optind >= argc ? "no model given" : "one model at a time");
        (load ? load_usage : unload_usage)(stderr);
        return EXIT_USAGE;
    }
    cJSON *request = cJSON_CreateObject();
    cJSON_AddStringToObject(request, "model", argv[optind]);
    if (keep_alive) {
        double seconds;
        if (hr_keep_alive_parse(keep_alive, &seconds) != HR_OK) {
            fprintf(stderr, "headroom load: --keep-alive takes a duration such as 5m, 1h, 30s, 0 or -1, not '%s'\n", keep_alive);
            cJSON_Delete(request);
            return EXIT_USAGE;
        }
        cJSON_AddNumberToObject(request, "keep_alive", seconds);
    }
    char *body = cJSON_PrintUnformatted(request);
    cJSON_Delete(request);
    cJSON *reply = NULL;
    char error[1024];
    int status = client_request("POST", load ? "/api/load" : "/api/unload", body, 0, &reply, error, sizeof error);
    free(body);
    if (status != 200) return fail(command, error);
    if (json) {
        char *text = cJSON_PrintUnformatted(reply);
        if (text) puts(text);
        free(text);
    } else {
        printf("%s %s\n", string_of(reply, "model"), string_of(reply, "status"));
    }
    cJSON_Delete(reply);
    return 0;
}

int cmd_load(int argc, char **argv) { return load_or_unload(argc, argv, true); }
int cmd_unload(int argc, char **argv) { return load_or_unload(argc, argv, false); }

/* ---- top ---------------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_requested;

static void on_stop(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
}

static void top_usage(FILE *out)
{
    fprintf(out, "usage: headroom top [options]\n\n"
                 "A live view of a running headroomd: the pressure level and its reason, memory,\n"
                 "the models it holds and the generations running. q or Ctrl-C quits.\n\n"
                 "  -i, --interval S   seconds between refreshes (default 1)\n"
                 "  -n, --count N      stop after N refreshes\n"
                 "      --json         one JSON object per refresh ({memory, active}), a line each\n");
}

static void print_frame(const cJSON *memory, const cJSON *active, bool terminal)
{
    char a[32], b[32], c[32];
    const cJSON *pressure = cJSON_GetObjectItemCaseSensitive(memory, "pressure");
    if (terminal) fputs("\033[H\033[2J", stdout);   /* home and clear: one screen, redrawn */
    char base[1024];
    printf("headroomd at %s    (q quits)\n\n", client_base_url(base, sizeof base));
    printf("level      %s: %s\n", pressure ? string_of(pressure, "level") : "unknown",
           pressure ? string_of(pressure, "reason") : "no reading");
    printf("available  %s of %s, bound by %s\n", cli_bytes((uint64_t)number_of(memory, "effective_available_bytes"), a, sizeof a),
           cli_bytes((uint64_t)number_of(memory, "effective_total_bytes"), b, sizeof b), string_of(memory, "binding_scope"));
    printf("headroomd  RSS %s, peak %s; swap used %s; %.0f major faults\n",
           cli_bytes((uint64_t)number_of(memory, "process_rss_bytes"), a, sizeof a),
           cli_bytes((uint64_t)number_of(memory, "process_peak_rss_bytes"), b, sizeof b),
           cli_bytes((uint64_t)number_of(memory, "swap_used_bytes"), c, sizeof c), number_of(memory, "process_major_faults"));
    printf("\n");
    print_models(cJSON_GetObjectItemCaseSensitive(memory, "models"), false);
    printf("\n%-24s %-11s %-8s %-14s %s\n", "GENERATING", "STATE", "TOKENS", "SPEED", "FOR");
    const cJSON *g;
    int n = 0;
    cJSON_ArrayForEach(g, active) {
        char speed[32] = "";
        if (strcmp(string_of(g, "state"), "generating") == 0) snprintf(speed, sizeof speed, "%.1f tokens/s", number_of(g, "tokens_per_second"));
        printf("%-24s %-11s %-8.0f %-14s %.1f s\n", string_of(g, "model"), string_of(g, "state"),
               number_of(g, "generated_tokens"), speed, number_of(g, "seconds"));
        n++;
    }
    if (n == 0) printf("(nothing is generating)\n");
    if (!terminal) printf("\n");
    fflush(stdout);
}

int cmd_top(int argc, char **argv)
{
    static const struct option options[] = { { "json", no_argument, NULL, 'j' },
                                             { "interval", required_argument, NULL, 'i' },
                                             { "count", required_argument, NULL, 'n' },
                                             { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
    bool json = false;
    double interval = 1;
    long count = 0;
    int option;
    while ((option = getopt_long(argc, argv, "i:n:h", options, NULL)) != -1) {
        if (option == 'j') json = true;
        else if (option == 'i') { if (!cli_parse_float("--interval", optarg, 0.1, 3600, &interval)) return EXIT_USAGE; }
        else if (option == 'n') { if (!cli_parse_int("--count", optarg, 1, 1L << 30, &count)) return EXIT_USAGE; }
        else if (option == 'h') { top_usage(stdout); return 0; }
        else { top_usage(stderr); return EXIT_USAGE; }
    }
    if (optind < argc) {
        fprintf(stderr, "headroom top: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    bool terminal = !json && isatty(STDOUT_FILENO);
    bool keys = isatty(STDIN_FILENO);
    struct termios saved;
    if (keys && tcgetattr(STDIN_FILENO, &saved) == 0) {
        /* single keys, unechoed, so q quits without Enter; restored on every way out */
        struct termios raw = saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    } else keys = false;
    struct sigaction action = { .sa_handler = on_stop };
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    int exit_code = 0;
    for (long frame = 0; !stop_requested && (count == 0 || frame < count); frame++) {
        cJSON *memory = NULL, *active = NULL;
        char error[1024];
        if (client_request("GET", "/api/memory", NULL, 10, &memory, error, sizeof error) != 200 ||
            client_request("GET", "/api/active", NULL, 10, &active, error, sizeof error) != 200) {
            cJSON_Delete(memory);
            if (terminal) fputs("\033[H\033[2J", stdout);
            exit_code = fail("top", error);
            break;
        }
        if (json) {
            cJSON *both = cJSON_CreateObject();
            cJSON_AddItemToObject(both, "memory", memory);
            cJSON_AddItemToObject(both, "active", active);
            char *text = cJSON_PrintUnformatted(both);
            if (text) puts(text);
            free(text);
            fflush(stdout);
            cJSON_Delete(both);
        } else {
            print_frame(memory, active, terminal);
            cJSON_Delete(memory);
            cJSON_Delete(active);
        }
        if (count && frame + 1 >= count) break;
        /* wait out the interval, watching for q */
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            double left = interval - ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) * 1e-9);
            if (left <= 0 || stop_requested) break;
            if (!keys) {
                usleep((useconds_t)(fmin(left, 0.1) * 1e6));
                continue;
            }
            struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
            if (poll(&p, 1, (int)(fmin(left, 0.1) * 1000) + 1) > 0) {
                char key;
                if (read(STDIN_FILENO, &key, 1) == 1 && (key == 'q' || key == 'Q')) stop_requested = 1;
            }
        }
    }
    if (keys) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    return exit_code;
}
