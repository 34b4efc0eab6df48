/*
 * cmd_run.c: `headroom run MODEL [PROMPT]`: load a model (a progress bar on a terminal), stream
 * a generation to stdout with the memory watermark on a status line, and report its speed on
 * stderr; without a prompt on a terminal, a chat. Ctrl-C cancels the generation cleanly (exit
 * 130); in a chat it cancels the answer, not the chat.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: headroom run MODEL [PROMPT] [options]\n"
            "\n"
            "Loads MODEL (a GGUF file) and streams a continuation of PROMPT to stdout.\n"
            "PROMPT '-' reads the prompt from stdin. Without PROMPT on a terminal: a chat (the\n"
            "model's chat template, the conversation kept; Ctrl-C stops an answer, /bye or\n"
            "Ctrl-D ends); without PROMPT otherwise: \"Once upon a time\".\n"
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

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- load progress: a bar on a terminal, nothing otherwise -------------------------------- */

struct progress {
    const char *name;
    int last_percent;
};

static bool draw_progress(float progress, void *user_data)
{
    struct progress *p = user_data;
    int percent = (int)(progress * 100 + 0.5f);
    if (percent == p->last_percent) return !interrupted;
    p->last_percent = percent;
    char bar[41];
    int filled = percent * 40 / 100;
    for (int i = 0; i < 40; i++) bar[i] = i < filled ? '#' : '.';
    bar[40] = '\0';
    fprintf(stderr, "\rloading %s [%s] %3d%%", p->name, bar, percent);
    fflush(stderr);
    return !interrupted;   /* Ctrl-C while loading cancels the load */
}

/* ---- the watermark during generation: a status line on stderr ------------------------------
 * When stdout and stderr are the same terminal the line lives on the bottom row, outside a
 * scroll region that holds the text (as apt's progress line does); when only stderr is a
 * terminal it is redrawn in place; when stderr is not a terminal there is none. */

struct output {
    hr_context *ctx;
    bool ends_with_newline;
    int status;                 /* 0 none, 1 a \r line on stderr, 2 the bottom row of the terminal */
    int rows, columns;
    double started, last_status;
    int32_t tokens;
};

static void status_line(struct output *o, bool final)
{
    hr_memory_status m;
    if (hr_memory_sample(o->ctx, &m) != HR_OK) return;
    char rss[32], peak[32], available[32];
    double elapsed = now_seconds() - o->started;
    char line[512];
    snprintf(line, sizeof line, "%d tokens, %.1f tokens/s | RSS %s, peak %s | %s available (%s)", o->tokens,
             elapsed > 0 ? o->tokens / elapsed : 0.0, cli_bytes(m.process_rss_bytes, rss, sizeof rss),
             cli_bytes(m.process_peak_rss_bytes, peak, sizeof peak),
             cli_bytes(m.effective_available_bytes, available, sizeof available), m.binding_scope);
    if (o->status == 1) fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
    else if (o->status == 2)   /* cut to the width: a wrapped line would leave the bottom row */
        fprintf(stderr, "\0337\033[%d;1H\033[2K\033[7m%.*s\033[0m\0338", o->rows, o->columns > 1 ? o->columns - 1 : 79, line);
    fflush(stderr);
}

static void output_begin(struct output *o, hr_context *ctx, bool quiet)
{
    memset(o, 0, sizeof *o);
    o->ctx = ctx;
    o->ends_with_newline = true;
    o->started = o->last_status = now_seconds();
    if (quiet || !isatty(STDERR_FILENO)) return;
    struct winsize size;
    if (isatty(STDOUT_FILENO) && ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_row > 2) {
        o->status = 2;
        o->rows = size.ws_row;
        o->columns = size.ws_col;
        /* make room: text scrolls in rows 1..rows-1, the cursor stays where it was */
        fprintf(stderr, "\n\033[1A\0337\033[1;%dr\0338", o->rows - 1);
    } else if (!isatty(STDOUT_FILENO)) {
        o->status = 1;
    }
}

static void output_end(struct output *o)
{
    if (o->status == 1) status_line(o, true);
    if (o->status == 2) fprintf(stderr, "\0337\033[r\033[%d;1H\033[2K\0338", o->rows);   /* scroll region off */
    fflush(stderr);
}

static int print_piece(const char *piece, size_t length, void *user_data)
{
    struct output *o = user_data;
    if (fwrite(piece, 1, length, stdout) != length) return 1;   /* stdout closed: stop */
    fflush(stdout);
    o->ends_with_newline = length > 0 && piece[length - 1] == '\n';
    o->tokens++;
    double now = now_seconds();
    if (o->status && now - o->last_status >= 0.25) {
        o->last_status = now;
        status_line(o, false);
    }
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

static void print_watermark(hr_context *ctx)
{
    hr_memory_status m;
    if (hr_memory_sample(ctx, &m) != HR_OK) return;
    char peak[32], rss[32], available[32], total[32];
    fprintf(stderr, "headroom: memory: peak RSS %s (%s now), %s available of %s (%s)\n",
            cli_bytes(m.process_peak_rss_bytes, peak, sizeof peak), cli_bytes(m.process_rss_bytes, rss, sizeof rss),
            cli_bytes(m.effective_available_bytes, available, sizeof available),
            cli_bytes(m.effective_total_bytes, total, sizeof total), m.binding_scope);
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

/* ---- the chat ----------------------------------------------------------------------------- */

struct conversation {
    hr_chat_message *messages;
    char **owned;               /* the contents, freed at the end */
    size_t count, capacity;
};

static bool add_message(struct conversation *c, const char *role, const char *content)
{
    if (c->count == c->capacity) {
        size_t capacity = c->capacity ? c->capacity * 2 : 16;
        hr_chat_message *messages = realloc(c->messages, capacity * sizeof *messages);
        if (!messages) return false;
        c->messages = messages;
        char **owned = realloc(c->owned, capacity * sizeof *owned);
        if (!owned) return false;
        c->owned = owned;
        c->capacity = capacity;
    }
    char *copy = strdup(content);
    if (!copy) return false;
    c->owned[c->count] = copy;
    c->messages[c->count].role = role;
    c->messages[c->count].content = copy;
    c->count++;
    return true;
}

static void clear_conversation(struct conversation *c)
{
    for (size_t i = 0; i < c->count; i++) free(c->owned[i]);
    c->count = 0;
}

/* Without a chat template in the file the turns are written out plainly. */
static char *plain_transcript(const struct conversation *c)
{
    size_t size = 32;
    for (size_t i = 0; i < c->count; i++) size += strlen(c->messages[i].content) + 16;
    char *text = malloc(size);
    if (!text) return NULL;
    text[0] = '\0';
    for (size_t i = 0; i < c->count; i++) {
        strcat(text, strcmp(c->messages[i].role, "user") == 0 ? "User: " : "Assistant: ");
        strcat(text, c->messages[i].content);
        strcat(text, "\n");
    }
    strcat(text, "Assistant:");
    return text;
}

struct answer {
    struct output out;
    char *text;
    size_t length;
};

static int collect_piece(const char *piece, size_t length, void *user_data)
{
    struct answer *a = user_data;
    char *bigger = realloc(a->text, a->length + length + 1);
    if (!bigger) return 1;
    a->text = bigger;
    memcpy(a->text + a->length, piece, length);
    a->length += length;
    a->text[a->length] = '\0';
    return print_piece(piece, length, &a->out);
}

/* ---- the chat's line: typed with echo off so the arrows can recall earlier lines ----------- */

enum { LINE_HISTORY = 100 };

struct line_history {
    char *lines[LINE_HISTORY];
    int count;
};

static void remember(struct line_history *h, const char *line)
{
    if (h->count > 0 && strcmp(h->lines[h->count - 1], line) == 0) return;   /* no repeats */
    if (h->count == LINE_HISTORY) {
        free(h->lines[0]);
        memmove(h->lines, h->lines + 1, (LINE_HISTORY - 1) * sizeof h->lines[0]);
        h->count--;
    }
    char *copy = strdup(line);
    if (copy) h->lines[h->count++] = copy;
}

static void redraw(const char *line)
{
    printf("\r\033[K>>> %s", line);
    fflush(stdout);
}

/* Reads one line at ">>> ": typing, Backspace (a whole UTF-8 character), Up and Down through the
 * lines entered before, Enter. Returns 1 with a line, 0 at Ctrl-D on an empty line (or the end of
 * input), -1 when Ctrl-C interrupted it (SIGINT stays on: the handler sets `interrupted`). */
static int read_line(char *line, size_t size, struct line_history *h)
{
    struct termios saved, raw;
    bool terminal = tcgetattr(STDIN_FILENO, &saved) == 0;
    if (terminal) {
        raw = saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    size_t length = 0;
    int recalled = h->count;   /* h->count: the line being typed, not a recalled one */
    line[0] = '\0';
    redraw(line);
    int result;
    for (;;) {
        char key;
        ssize_t n = read(STDIN_FILENO, &key, 1);
        if (n < 0 && errno == EINTR) { result = -1; break; }
        if (n <= 0) { result = length ? 1 : 0; break; }
        if (key == '\n' || key == '\r') { result = 1; break; }
        if (key == 4) {   /* Ctrl-D */
            if (length == 0) { result = 0; break; }
            continue;
        }
        if (key == 127 || key == 8) {   /* Backspace: the whole character */
            while (length > 0 && ((unsigned char)line[length - 1] & 0xC0) == 0x80) length--;
            if (length > 0) length--;
            line[length] = '\0';
            redraw(line);
            continue;
        }
        if (key == 27) {   /* an escape sequence: ESC [ A is Up, ESC [ B is Down; others are ignored */
            char sequence[2];
            if (read(STDIN_FILENO, &sequence[0], 1) != 1 || read(STDIN_FILENO, &sequence[1], 1) != 1) continue;
            if (sequence[0] != '[' || (sequence[1] != 'A' && sequence[1] != 'B')) continue;
            if (sequence[1] == 'A' && recalled > 0) recalled--;
            else if (sequence[1] == 'B' && recalled < h->count) recalled++;
            else continue;
            snprintf(line, size, "%s", recalled < h->count ? h->lines[recalled] : "");
            length = strlen(line);
            redraw(line);
            continue;
        }
        if ((unsigned char)key < 32) continue;   /* other control keys */
        if (length + 1 < size) {
            line[length++] = key;
            line[length] = '\0';
            fputc(key, stdout);
            fflush(stdout);
        }
    }
    if (terminal) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    fputc('\n', stdout);
    fflush(stdout);
    return result;
}

static int chat(hr_context *ctx, hr_model *model, const hr_generate_params *params, bool quiet)
{
    struct conversation c = { 0 };
    char line[8192];
    struct line_history history = { 0 };
    bool template_warned = false;
    if (!quiet) fprintf(stderr, "headroom: chat: Ctrl-C stops an answer, Up and Down recall lines, /clear forgets the conversation, /bye or Ctrl-D ends\n");
    for (;;) {
        interrupted = 0;
        int got = read_line(line, sizeof line, &history);
        if (got < 0) {   /* Ctrl-C at the prompt: a hint, not an exit */
            fputs("Use Ctrl-D or /bye to leave.\n", stdout);
            continue;
        }
        if (got == 0) break;   /* Ctrl-D */
        if (!line[0]) continue;
        remember(&history, line);
        if (strcmp(line, "/bye") == 0 || strcmp(line, "/exit") == 0) break;
        if (strcmp(line, "/clear") == 0) {
            clear_conversation(&c);
            puts("(the conversation is forgotten)");
            continue;
        }
        if (line[0] == '/' ) {
            puts("commands: /clear forgets the conversation, /bye ends the chat");
            continue;
        }
        if (!add_message(&c, "user", line)) break;
        char *prompt = NULL;
        char *formatted = NULL;
        if (hr_model_apply_chat_template(model, c.messages, c.count, true, &formatted) == HR_OK) prompt = formatted;
        else {
            if (!template_warned && !quiet)
                fprintf(stderr, "headroom: the model has no chat template it can use; turns are written as 'User:' and 'Assistant:'\n");
            template_warned = true;
            prompt = plain_transcript(&c);
        }
        if (!prompt) break;
        struct answer a = { 0 };
        output_begin(&a.out, ctx, quiet);
        running_model = model;
        hr_generation_stats stats;
        int rc = hr_generate(model, prompt, params, collect_piece, &a, &stats);
        running_model = NULL;
        output_end(&a.out);
        if (formatted) hr_free(formatted);
        else free(prompt);
        if (!a.out.ends_with_newline) fputc('\n', stdout);
        if (rc == HR_ECANCELLED && interrupted) puts("(stopped)");
        else if (rc != HR_OK) fprintf(stderr, "headroom: error: %s\n", hr_last_error());
        /* the answer, whole or stopped, is part of the conversation */
        add_message(&c, "assistant", a.text ? a.text : "");
        free(a.text);
        fflush(stdout);
    }
    clear_conversation(&c);
    free(c.messages);
    free(c.owned);
    for (int i = 0; i < history.count; i++) free(history.lines[i]);
    return 0;
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
    bool chatting = argc - optind == 1 && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
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

    /* Ctrl-C from here on: cancels the load, then the generation */
    struct sigaction action = { .sa_handler = on_interrupt };   /* no SA_RESTART: the chat's read returns */
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    signal(SIGPIPE, SIG_IGN);   /* a closed stdout shows as a failed write, which stops us */

    const char *base = strrchr(model_path, '/');
    struct progress progress = { .name = base ? base + 1 : model_path, .last_percent = -1 };
    bool show_progress = !quiet && isatty(STDERR_FILENO);
    if (show_progress) {
        model_params.progress_fn = draw_progress;
        model_params.progress_user_data = &progress;
    }
    hr_model *model = NULL;
    rc = hr_model_load(ctx, model_path, &model_params, &model);
    if (show_progress && progress.last_percent >= 0) fputs("\r\033[K", stderr);   /* the bar goes when done */
    if (rc == HR_ECANCELLED && interrupted) {
        fprintf(stderr, "headroom: the load was cancelled\n");
        hr_context_free(ctx);
        free(prompt_from_stdin);
        return EXIT_INTERRUPTED;
    }
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

    if (chatting) {
        int code = chat(ctx, model, &generate_params, quiet);
        hr_model_free(model);
        hr_context_free(ctx);
        return code;
    }

    running_model = model;
    struct output out;
    output_begin(&out, ctx, quiet);
    hr_generation_stats stats;
    rc = hr_generate(model, prompt, &generate_params, print_piece, &out, &stats);
    running_model = NULL;
    output_end(&out);
    if (!out.ends_with_newline) fputc('\n', stdout);
    fflush(stdout);

    int exit_code = 0;
    if (rc == HR_ECANCELLED && interrupted) exit_code = EXIT_INTERRUPTED;
    else if (rc != HR_OK) {
        fprintf(stderr, "headroom: error: %s\n", hr_last_error());
        exit_code = 1;
    }
    if (!quiet && (rc == HR_OK || rc == HR_ECANCELLED)) {
        print_stats(&stats, &info, stats_json);
        if (!stats_json) print_watermark(ctx);
    }

    hr_model_free(model);
    hr_context_free(ctx);
    free(prompt_from_stdin);
    return exit_code;
}
