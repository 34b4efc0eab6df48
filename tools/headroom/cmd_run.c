/*
 * cmd_run.c: `headroom run MODEL [PROMPT]`: load a model, stream a generation to stdout and
 * report its speed on stderr. Ctrl-C cancels the generation cleanly (exit 130).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: headroom run MODEL [PROMPT] [options]\n"
            "\n"
            "Loads MODEL (a GGUF file) and streams a continuation of PROMPT to stdout.\n"
            "PROMPT '-' reads the prompt from stdin; without PROMPT: \"Once upon a time\".\n"
            "\n"
            "options:\n"
            "  -n, --max-tokens N   stop after N generated tokens (default 128)\n"
            "  -c, --ctx N          context window in tokens (default: the model's, at most 4096)\n"
            "  -t, --threads N      decode threads (default: one per online CPU)\n"
            "  -s, --seed N         sampling seed (default 42)\n"
            "      --temp T         temperature, 0 for greedy (default 0.8)\n"
            "      --top-k N        top-k sampling, 0 to switch off (default 40)\n"
            "      --top-p P        top-p sampling, 1 to switch off (default 0.95)\n"
            "      --load-mode M    auto, mmap, copy or mlock (default auto)\n"
            "      --stats-json     print the generation's statistics as one JSON line on stderr\n"
            "  -q, --quiet          print no statistics\n"
            "  -v, --verbose        show the library's and the engine's log\n"
            "  -h, --help           this help\n");
}

static hr_model *running_model;   /* for the signal handler */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int signal_number)
{
    (void)signal_number;
    interrupted = 1;
    if (running_model) hr_model_cancel(running_model);   /* only stores an atomic flag */
}

static int print_piece(const char *piece, size_t length, void *user_data)
{
    bool *ends_with_newline = user_data;
    if (fwrite(piece, 1, length, stdout) != length) return 1;   /* stdout closed: stop */
    fflush(stdout);
    *ends_with_newline = length > 0 && piece[length - 1] == '\n';
    return 0;
}

static char *read_stdin(void)
{
    size_t capacity = 4096, length = 0;
    char *text = malloc(capacity);
    while (text) {
        size_t got = fread(text + length, 1, capacity - length - 1, stdin);
        length += got;
        if (got == 0) break;
        if (capacity - length - 1 == 0) {
            char *bigger = realloc(text, capacity * 2);
            if (!bigger) { free(text); return NULL; }
            text = bigger;
            capacity *= 2;
        }
    }
    if (text) text[length] = '\0';
    return text;
}

static const char *stop_reason_name(enum hr_stop_reason reason)
{
    switch (reason) {
    case HR_STOP_MAX_TOKENS: return "max_tokens";
    case HR_STOP_END_OF_TEXT: return "end_of_text";
    case HR_STOP_CONTEXT_FULL: return "context_full";
    case HR_STOP_CANCELLED: return "cancelled";
    case HR_STOP_SEQUENCE: return "stop_sequence";
    case HR_STOP_NONE: break;
    }
    return "error";
}

static void print_stats(const hr_generation_stats *stats, const hr_model_info *info, bool json)
{
    if (json) {
        fprintf(stderr,
                "{\"prompt_tokens\":%d,\"generated_tokens\":%d,\"prompt_seconds\":%.6f,"
                "\"time_to_first_token\":%.6f,\"decode_seconds\":%.6f,\"total_seconds\":%.6f,"
                "\"prompt_tokens_per_second\":%.3f,\"tokens_per_second\":%.3f,\"stop_reason\":\"%s\","
                "\"n_threads\":%d,\"n_ctx\":%d}\n",
                stats->prompt_tokens, stats->generated_tokens, stats->prompt_seconds,
                stats->time_to_first_token, stats->decode_seconds, stats->total_seconds,
                stats->prompt_tokens_per_second, stats->tokens_per_second,
                stop_reason_name(stats->stop_reason), info->n_threads, info->n_ctx);
        return;
    }
    fprintf(stderr,
            "headroom: %d tokens in %.2f s, %.1f tokens/s; prompt %d tokens in %.2f s; "
            "first token after %.2f s; stopped: %s\n",
            stats->generated_tokens, stats->decode_seconds, stats->tokens_per_second,
            stats->prompt_tokens, stats->prompt_seconds, stats->time_to_first_token,
            stop_reason_name(stats->stop_reason));
}

int cmd_run(int argc, char **argv)
{
    static const struct option options[] = {
        { "max-tokens", required_argument, NULL, 'n' },
        { "ctx", required_argument, NULL, 'c' },
        { "threads", required_argument, NULL, 't' },
        { "seed", required_argument, NULL, 's' },
        { "temp", required_argument, NULL, 'T' },
        { "top-k", required_argument, NULL, 'K' },
        { "top-p", required_argument, NULL, 'P' },
        { "load-mode", required_argument, NULL, 'L' },
        { "stats-json", no_argument, NULL, 'J' },
        { "quiet", no_argument, NULL, 'q' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    hr_model_params model_params = hr_model_default_params();
    model_params.slots = 1;   /* one generation: no KV for slots nobody uses */
    hr_generate_params generate_params = hr_generate_default_params();
    bool quiet = false, verbose = false, stats_json = false;
    long number;
    double real;

    int option;
    while ((option = getopt_long(argc, argv, "n:c:t:s:qvh", options, NULL)) != -1) {
        switch (option) {
        case 'n':
            if (!cli_parse_int("--max-tokens", optarg, 1, 1 << 20, &number)) return EXIT_USAGE;
            generate_params.max_tokens = (int32_t)number;
            break;
        case 'c':
            if (!cli_parse_int("--ctx", optarg, 16, 1 << 20, &number)) return EXIT_USAGE;
            model_params.n_ctx = (int32_t)number;
            break;
        case 't':
            if (!cli_parse_int("--threads", optarg, 1, 512, &number)) return EXIT_USAGE;
            model_params.n_threads = (int32_t)number;
            break;
        case 's':
            if (!cli_parse_u64("--seed", optarg, &generate_params.seed)) return EXIT_USAGE;
            break;
        case 'T':
            if (!cli_parse_float("--temp", optarg, 0, 100, &real)) return EXIT_USAGE;
            generate_params.temperature = (float)real;
            break;
        case 'K':
            if (!cli_parse_int("--top-k", optarg, 0, 1 << 20, &number)) return EXIT_USAGE;
            generate_params.top_k = (int32_t)number;
            break;
        case 'P':
            if (!cli_parse_float("--top-p", optarg, 1e-6, 1, &real)) return EXIT_USAGE;
            generate_params.top_p = (float)real;
            break;
        case 'L':
            if (!cli_parse_load_mode(optarg, &model_params.load_mode)) return EXIT_USAGE;
            break;
        case 'J': stats_json = true; break;
        case 'q': quiet = true; break;
        case 'v': verbose = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "headroom run: no model given\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (argc - optind > 2) {
        fprintf(stderr, "headroom run: too many arguments; quote the prompt as one argument\n");
        return EXIT_USAGE;
    }
    const char *model_path = argv[optind];
    char *prompt_from_stdin = NULL;
    const char *prompt = "Once upon a time";
    if (argc - optind == 2) prompt = argv[optind + 1];
    if (strcmp(prompt, "-") == 0) {
        prompt_from_stdin = read_stdin();
        if (!prompt_from_stdin) {
            fprintf(stderr, "headroom run: out of memory reading the prompt\n");
            return 1;
        }
        prompt = prompt_from_stdin;
    }

    /* Failures come back as one sentence (hr_last_error); the log, llama.cpp's included, is
     * detail a person asks for with --verbose. */
    hr_context_params context_params = hr_context_default_params();
    context_params.log_fn = verbose ? cli_log : NULL;
    context_params.log_level = HR_LOG_INFO;
    context_params.monitor = false;   /* one generation in the foreground: nothing to react to yet */
    hr_context *ctx = NULL;
    int rc = hr_context_create(&context_params, &ctx);
    if (rc != HR_OK) {
        fprintf(stderr, "headroom: error: %s\n", hr_last_error());
        free(prompt_from_stdin);
        return 1;
    }

    hr_model *model = NULL;
    rc = hr_model_load(ctx, model_path, &model_params, &model);
    if (rc != HR_OK) {
        fprintf(stderr, "headroom: error: %s\n", hr_last_error());
        hr_context_free(ctx);
        free(prompt_from_stdin);
        return 1;
    }
    hr_model_info info;
    hr_model_get_info(model, &info);
    if (verbose)
        fprintf(stderr, "headroom: loaded %s: %s, %llu parameters, %.1f MiB of weights, %d layers "
                "(%d on a GPU), context %d, %d threads\n", model_path, info.description,
                (unsigned long long)info.n_params, info.weight_bytes / 1048576.0, info.n_layer,
                info.n_layer_gpu, info.n_ctx, info.n_threads);

    running_model = model;
    struct sigaction action = { .sa_handler = on_interrupt };
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    signal(SIGPIPE, SIG_IGN);   /* a closed stdout shows as a failed write, which stops us */

    bool ends_with_newline = true;
    hr_generation_stats stats;
    rc = hr_generate(model, prompt, &generate_params, print_piece, &ends_with_newline, &stats);
    running_model = NULL;
    if (!ends_with_newline) fputc('\n', stdout);
    fflush(stdout);

    int exit_code = 0;
    if (rc == HR_ECANCELLED && interrupted) exit_code = EXIT_INTERRUPTED;
    else if (rc != HR_OK) {
        fprintf(stderr, "headroom: error: %s\n", hr_last_error());
        exit_code = 1;
    }
    if (!quiet && (rc == HR_OK || rc == HR_ECANCELLED)) print_stats(&stats, &info, stats_json);

    hr_model_free(model);
    hr_context_free(ctx);
    free(prompt_from_stdin);
    return exit_code;
}
