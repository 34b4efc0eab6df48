/*
 * cmd_pressure.c: `headroom pressure`: the memory pressure level with its reasons and the
 * watermark, once or live (--watch), as text or JSON. Reads only through headroom.h.
 */
#include <getopt.h>
#include <signal.h>
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
            "usage: headroom pressure [options]\n"
            "\n"
            "Prints the memory pressure level (normal, warn, critical) with its reasons, the\n"
            "memory that binds this process (host or container limit) and the watermark.\n"
            "\n"
            "options:\n"
            "      --json           one JSON object (with --watch: one per line)\n"
            "  -w, --watch          a live line every interval, and at once on a level change\n"
            "  -i, --interval S     seconds between --watch lines (default 1)\n"
            "  -n, --count N        with --watch, stop after N lines\n"
            "  -h, --help           this help\n");
}

static volatile sig_atomic_t stop_requested;

static void on_stop(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
}

/* The library's JSON for both, the watermark nested under "memory". */
static void print_json(const hr_pressure *p, const hr_memory_status *m)
{
    char *pressure = hr_pressure_json(p), *memory = hr_memory_status_json(m);
    cJSON *root = pressure ? cJSON_Parse(pressure) : NULL;
    if (root && memory) cJSON_AddItemToObject(root, "memory", cJSON_Parse(memory));
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    if (text) puts(text);
    free(text);
    cJSON_Delete(root);
    hr_free(pressure);
    hr_free(memory);
}

static void print_report(const hr_pressure *p, const hr_memory_status *m)
{
    char a[32], b[32], c[32];
    printf("level:      %s\n", hr_pressure_level_name(p->level));
    printf("reason:     %s\n", p->reason);
    printf("available:  %s of %s (%.1f%%), bound by %s\n", cli_bytes(p->effective_available_bytes, a, sizeof a),
           cli_bytes(p->effective_total_bytes, b, sizeof b), p->free_percent, p->binding_scope);
    printf("host:       %s available of %s\n", cli_bytes(m->host_available_bytes, a, sizeof a),
           cli_bytes(m->host_total_bytes, b, sizeof b));
    if (m->swap_total_bytes == 0)
        printf("swap:       none configured; since boot %llu pages in, %llu out\n",
               (unsigned long long)p->page_ins, (unsigned long long)p->page_outs);
    else
        printf("swap:       %s used of %s; %.0f pages/s in, %.0f out (since boot %llu in, %llu out)\n",
               cli_bytes(m->swap_used_bytes, a, sizeof a), cli_bytes(m->swap_total_bytes, b, sizeof b),
               p->page_ins_per_second, p->page_outs_per_second, (unsigned long long)p->page_ins,
               (unsigned long long)p->page_outs);
    printf("stall:      some %.1f%%, full %.1f%% of the last moment (10 s average: %.2f%%)\n",
           p->stall_some_percent, p->stall_full_percent, p->stall_some_avg10);
    printf("process:    RSS %s, peak %s, %s file-backed, %llu major faults\n",
           cli_bytes(m->process_rss_bytes, a, sizeof a), cli_bytes(m->process_peak_rss_bytes, b, sizeof b),
           cli_bytes(m->process_file_rss_bytes, c, sizeof c), (unsigned long long)m->process_major_faults);
    if (!m->gpu_telemetry) printf("gpu:        no GPU telemetry (NVML not available)\n");
    for (int i = 0; i < m->n_gpus; i++)
        printf("gpu %d:      %s: %s free of %s\n", i, m->gpus[i].name, cli_bytes(m->gpus[i].free_bytes, a, sizeof a),
               cli_bytes(m->gpus[i].total_bytes, b, sizeof b));
    printf("detection:  %s\n", p->detection);
}

static void print_line(const hr_pressure *p)
{
    char clock[16], a[32];
    time_t now = time(NULL);
    strftime(clock, sizeof clock, "%H:%M:%S", localtime(&now));
    printf("%s %-8s %s available (%.1f%% of %s)  swap %.0f in/s %.0f out/s  stall some %.1f%% full %.1f%%\n",
           clock, hr_pressure_level_name(p->level), cli_bytes(p->effective_available_bytes, a, sizeof a),
           p->free_percent, p->binding_scope, p->page_ins_per_second, p->page_outs_per_second,
           p->stall_some_percent, p->stall_full_percent);
    fflush(stdout);
}

/* Level changes print at once, from the monitor's thread; the main loop prints the rest. */
static void on_event(const hr_event *event, void *user_data)
{
    bool json = *(bool *)user_data;
    if (event->type != HR_EVENT_PRESSURE || json) return;
    printf("         %s -> %s: %s\n", hr_pressure_level_name(event->previous_level),
           hr_pressure_level_name(event->level), event->reason);
    fflush(stdout);
}

int cmd_pressure(int argc, char **argv)
{
    static const struct option options[] = {
        { "json", no_argument, NULL, 'J' },
        { "watch", no_argument, NULL, 'w' },
        { "interval", required_argument, NULL, 'i' },
        { "count", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool json = false, watch = false;
    double interval = 1.0;
    long count = 0;
    int option;
    while ((option = getopt_long(argc, argv, "wi:n:h", options, NULL)) != -1) {
        switch (option) {
        case 'J': json = true; break;
        case 'w': watch = true; break;
        case 'i':
            if (!cli_parse_float("--interval", optarg, 0.05, 3600, &interval)) return EXIT_USAGE;
            break;
        case 'n':
            if (!cli_parse_int("--count", optarg, 1, 1000000000L, &count)) return EXIT_USAGE;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "headroom pressure: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }

    hr_context *ctx = NULL;
    if (hr_context_create(NULL, &ctx) != HR_OK) {
        fprintf(stderr, "headroom: error: %s\n", hr_last_error());
        return 1;
    }
    int exit_code = 0, subscription = 0;
    if (watch) {
        struct sigaction action = { .sa_handler = on_stop };
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, NULL);
        sigaction(SIGTERM, &action, NULL);
        hr_subscribe(ctx, on_event, &json, &subscription);
    }
    for (long printed = 0; !stop_requested;) {
        hr_pressure pressure;
        hr_memory_status memory;
        if (hr_pressure_check(ctx, &pressure) != HR_OK || hr_memory_sample(ctx, &memory) != HR_OK) {
            fprintf(stderr, "headroom: error: %s\n", hr_last_error());
            exit_code = 1;
            break;
        }
        if (json) print_json(&pressure, &memory);
        else if (watch) print_line(&pressure);
        else print_report(&pressure, &memory);
        fflush(stdout);
        if (!watch || (count > 0 && ++printed >= count)) break;
        for (double slept = 0; slept < interval && !stop_requested; slept += 0.05) usleep(50000);
    }
    if (subscription) hr_unsubscribe(ctx, subscription);
    hr_context_free(ctx);
    return exit_code;
}
