/*
 * main.c: headroomd: configuration (defaults < config file < HEADROOM_* environment < flags),
 * the catalogue of models, the HTTP daemon, housekeeping (keep-alive expiry), and an orderly
 * shutdown on SIGINT or SIGTERM. Everything about models and memory is libheadroom's.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "server.h"

static volatile sig_atomic_t stop_requested;

static void on_stop(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
}

/* libmicrohttpd's own messages, marked as the server's. A client that hangs up mid-stream is
 * normal here (it cancels its generation), so those lines are dropped. */
static void http_log(void *cls, const char *format, va_list args)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, format, args);
    if (strstr(line, "application error generating response") || strstr(line, "no longer available for sending"))
        return;
    size_t length = strlen(line);
    while (length > 0 && line[length - 1] == '\n') line[--length] = '\0';
    fprintf(stderr, "headroomd: http: %s\n", line);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: headroomd [options]\n"
            "\n"
            "Serves GGUF models over OpenAI- and Ollama-compatible HTTP APIs, with memory managed\n"
            "by libheadroom. docs/configuration.md describes every option.\n"
            "\n"
            "  --host ADDRESS        address to bind (default 127.0.0.1); ADDRESS:PORT or\n"
            "                        http://ADDRESS:PORT too, as the CLI reads HEADROOM_HOST\n"
            "  --port N              port (default 11435; 0 picks a free one)\n"
            "  --model PATH          a model to serve (repeatable)\n"
            "  --models-dir DIR      serve every .gguf file in DIR\n"
            "  --keep-alive D        unload a model D after its last use: 5m, 1h, 30s, 0, -1 = never (default 10m)\n"
            "  --api-key KEY         require 'Authorization: Bearer KEY' (required off loopback)\n"
            "  --ctx N               context window per model (default: the model's, at most 4096)\n"
            "  --threads N           decode threads (default: one per CPU)\n"
            "  --parallel N          requests a model generates at once, each with its own --ctx\n"
            "                        (default 4; fewer when their KV cache does not fit)\n"
            "  --max-queue N         requests that may wait for a model beyond those it runs; one more\n"
            "                        gets 503 with Retry-After (default 16; 0: none wait)\n"
            "  --queue N             pieces buffered per stream (default 64)\n"
            "  --reader-timeout D    a client that reads nothing for D while others wait for its model\n"
            "                        loses its turn (default 30s; 0 = never)\n"
            "  --allowed-host NAME   a Host header accepted besides loopback names while serving on\n"
            "                        loopback without a key (DNS rebinding guard); repeatable\n"
            "  --cors-origin ORIGIN  a browser origin allowed besides loopback ones; repeatable,\n"
            "                        '*' allows any (HEADROOM_ORIGINS: a comma-separated list)\n"
            "  --max-body BYTES      largest request body (default 1048576)\n"
            "  --max-connections N   open connections at once, each with its thread (default 256)\n"
            "  --max-connections-per-client N  open at once from one address, loopback not\n"
            "                        counted (default 32; 0: no limit); more are closed at accept\n"
            "  --max-tokens-limit N  largest max_tokens a request may ask for (default 8192)\n"
            "  --pressure-actions on|off  under memory pressure unload idle models, cancel low-priority\n"
            "                        work and refuse loads (default on; off: only report)\n"
            "  --guard on|off        the degradation guard: stop a model that thrashes (default on)\n"
            "  --fallback-url URL    an OpenAI-compatible server that serves a model when it cannot be\n"
            "                        loaded here (another headroomd, llama-server, vLLM)\n"
            "  --fallback-model NAME its name there (default: the same name)\n"
            "  --fallback-api-key K  sent to it as a Bearer token\n"
            "  --fallback-timeout D  a fall-back request that has not finished after D fails (default: none)\n"
            "  --config FILE         read 'key = value' lines with these option names\n"
            "  -h, --help            this help\n");
}

/* The library's log lines (loads, unloads, pressure actions with reasons and bytes freed). */
static void library_log(enum hr_log_level level, const char *message, void *user_data)
{
    (void)user_data;
    static const char *names[] = { "debug", "info", "warn", "error" };
    fprintf(stderr, "headroomd: [%s] %s\n", names[level >= 0 && level <= 3 ? level : 3], message);
}

static bool read_environment(server_config *c)
{
    static const struct { const char *variable, *option; } names[] = {
        { "HEADROOM_HOST", "host" }, { "HEADROOM_PORT", "port" }, { "HEADROOM_MODEL", "model" },
        { "HEADROOM_MODELS_DIR", "models-dir" }, { "HEADROOM_KEEP_ALIVE", "keep-alive" },
        { "HEADROOM_API_KEY", "api-key" }, { "HEADROOM_CTX", "ctx" }, { "HEADROOM_THREADS", "threads" },
        { "HEADROOM_FALLBACK_URL", "fallback-url" }, { "HEADROOM_FALLBACK_MODEL", "fallback-model" },
        { "HEADROOM_FALLBACK_API_KEY", "fallback-api-key" }, { "HEADROOM_PRESSURE_ACTIONS", "pressure-actions" },
        { "HEADROOM_GUARD", "guard" }, { "HEADROOM_ORIGINS", "cors-origin" },
        { "HEADROOM_ALLOWED_HOSTS", "allowed-host" },
        /* Ollama's name first, so headroom's own wins where both are set */
        { "OLLAMA_NUM_PARALLEL", "parallel" }, { "HEADROOM_PARALLEL", "parallel" },
        { "HEADROOM_MAX_QUEUE", "max-queue" },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *value = getenv(names[i].variable);
        /* the environment's model replaces the config file's list, as a flag replaces both */
        if (value && *value && strcmp(names[i].option, "model") == 0) c->n_model_paths = 0;
        if (value && *value && !config_set_option(c, names[i].option, value)) {
            fprintf(stderr, "headroomd: (from %s)\n", names[i].variable);
            return false;
        }
    }
    return true;
}

static bool add_model(server *srv, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "headroomd: model %s: %s\n", path, stat(path, &st) != 0 ? strerror(errno) : "not a regular file");
        return false;
    }
    if (srv->n_models >= MAX_MODELS) {
        fprintf(stderr, "headroomd: at most %d models\n", MAX_MODELS);
        return false;
    }
    server_model *m = &srv->models[srv->n_models];
    if (hr_model_name_from_path(path, m->name, sizeof m->name) >= sizeof m->name) {
        fprintf(stderr, "headroomd: the model file name %s is too long (at most %zu bytes without .gguf)\n",
                path, sizeof m->name - 1);
        return false;
    }
    if (server_find_model(srv, m->name)) {
        fprintf(stderr, "headroomd: two models are called '%s' (%s); rename one\n", m->name, path);
        return false;
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    m->file_bytes = (uint64_t)st.st_size;
    srv->n_models++;
    return true;
}

static bool scan_models_dir(server *srv, const char *directory)
{
    DIR *dir = opendir(directory);
    if (!dir) {
        fprintf(stderr, "headroomd: cannot read the models directory %s: %s\n", directory, strerror(errno));
        return false;
    }
    struct dirent *entry;
    bool ok = true;
    while (ok && (entry = readdir(dir))) {
        size_t length = strlen(entry->d_name);
        if (length <= 5 || strcmp(entry->d_name + length - 5, ".gguf") != 0) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", directory, entry->d_name);
        ok = add_model(srv, path);
    }
    closedir(dir);
    return ok;
}

/* Whether binding `host` keeps the API on this machine: "localhost", or an address (not a name)
 * in 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. A name that only starts with "127." (such as
 * "127.0.0.1.example.com") resolves wherever its owner wants, so it is not loopback. */

int main(int argc, char **argv)
{
#ifdef __GLIBC__
    /* Each connection is a thread, and glibc gives threads malloc arenas of their own (up to 8
     * per core), each keeping megabytes it freed: measured over a 2000-request soak, 4 to 8 MiB
     * more anonymous memory at idle than with two arenas, and no slower. A memory-aware server
     * does not keep that; MALLOC_ARENA_MAX in the environment still decides if set. */
    if (!getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 2);
#endif
    static server srv;
    pthread_mutex_init(&srv.sessions_lock, NULL);
    pthread_mutex_init(&srv.stats_lock, NULL);
    server_config *c = &srv.config;
    config_defaults(c);

    static const struct option options[] = {
        { "host", required_argument, NULL, 0 }, { "port", required_argument, NULL, 0 },
        { "model", required_argument, NULL, 0 }, { "models-dir", required_argument, NULL, 0 },
        { "keep-alive", required_argument, NULL, 0 }, { "api-key", required_argument, NULL, 0 },
        { "ctx", required_argument, NULL, 0 }, { "threads", required_argument, NULL, 0 },
        { "parallel", required_argument, NULL, 0 }, { "max-queue", required_argument, NULL, 0 },
        { "queue", required_argument, NULL, 0 }, { "reader-timeout", required_argument, NULL, 0 },
        { "cors-origin", required_argument, NULL, 0 }, { "allowed-host", required_argument, NULL, 0 },
        { "pressure-actions", required_argument, NULL, 0 }, { "guard", required_argument, NULL, 0 },
        { "max-body", required_argument, NULL, 0 }, { "max-connections", required_argument, NULL, 0 },
        { "max-connections-per-client", required_argument, NULL, 0 },
        { "max-tokens-limit", required_argument, NULL, 0 }, { "config", required_argument, NULL, 0 },
        { "fallback-url", required_argument, NULL, 0 }, { "fallback-model", required_argument, NULL, 0 },
        { "fallback-api-key", required_argument, NULL, 0 }, { "fallback-timeout", required_argument, NULL, 0 },
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
    };
    /* The config file first (flags override it), so find --config before the rest. */
    const char *config_file = getenv("HEADROOM_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) config_file = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0) config_file = argv[i] + 9;
    }
    if (config_file && !config_read_file(c, config_file)) return 2;
    if (!read_environment(c)) return 2;
    int index = 0, option;
    bool models_from_flags = false;
    while ((option = getopt_long(argc, argv, "h", options, &index)) != -1) {
        if (option == 'h') {
            usage(stdout);
            return 0;
        }
        if (option != 0) {
            usage(stderr);
            return 2;
        }
        if (strcmp(options[index].name, "config") == 0) continue;
        if (strcmp(options[index].name, "model") == 0 && !models_from_flags) {
            c->n_model_paths = 0;   /* --model flags replace the environment's and the file's models */
            models_from_flags = true;
        }
        if (!config_set_option(c, options[index].name, optarg)) return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "headroomd: unexpected argument '%s' (models are given with --model PATH)\n", argv[optind]);
        return 2;
    }
    if (!server_is_loopback(c->host) && !c->api_key[0]) {
        fprintf(stderr, "headroomd: binding %s would expose the API beyond this machine; set --api-key "
                        "(or HEADROOM_API_KEY), or bind 127.0.0.1\n", c->host);
        return 2;
    }
    for (int i = 0; i < c->n_model_paths; i++)
        if (!add_model(&srv, c->model_paths[i])) return 1;
    if (c->models_dir[0] && !scan_models_dir(&srv, c->models_dir)) return 1;
    if (srv.n_models == 0) {
        fprintf(stderr, "headroomd: no models: give --model PATH or --models-dir DIR\n");
        return 2;
    }

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *address = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    int gai = getaddrinfo(c->host, port, &hints, &address);
    if (gai != 0) {
        fprintf(stderr, "headroomd: cannot use the address %s: %s\n", c->host, gai_strerror(gai));
        return 2;
    }

    hr_context_params params = hr_context_default_params();
    params.keep_alive = c->keep_alive;
    params.pressure_actions = c->pressure_actions;
    params.guard = c->guard;
    if (c->fallback_url[0]) {
        params.fallback.url = c->fallback_url;
        params.fallback.model = c->fallback_model[0] ? c->fallback_model : NULL;
        params.fallback.api_key = c->fallback_api_key[0] ? c->fallback_api_key : NULL;
        params.fallback.timeout = c->fallback_timeout;
    }
    params.log_fn = library_log;
    params.log_level = HR_LOG_INFO;   /* loads, unloads and every pressure action, with its reason */
    if (hr_context_create(&params, &srv.ctx) != HR_OK) {
        fprintf(stderr, "headroomd: %s\n", hr_last_error());
        freeaddrinfo(address);
        return 1;
    }
    if (!server_register_models(&srv)) {
        hr_context_free(srv.ctx);
        freeaddrinfo(address);
        return 1;
    }
    srv.started_at = wall_seconds();
    if (!history_start(&srv, &params.thresholds))
        fprintf(stderr, "headroomd: out of memory for the memory history; /api/memory/history stays empty\n");
    unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (address->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    if (!clients_init(c->max_connections, c->max_connections_per_client)) {
        fprintf(stderr, "headroomd: out of memory for the per-client connection count\n");
        hr_context_free(srv.ctx);
        freeaddrinfo(address);
        return 1;
    }
    srv.daemon = MHD_start_daemon(flags, (uint16_t)c->port, clients_accept, &srv, http_handle, &srv,
                                  MHD_OPTION_EXTERNAL_LOGGER, http_log, NULL,   /* first, as MHD asks */
                                  MHD_OPTION_SOCK_ADDR, address->ai_addr,
                                  MHD_OPTION_NOTIFY_COMPLETED, http_request_completed, &srv,
                                  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120,
                                  /* beyond it a connection waits in the listen queue,
                                     unaccepted and without a thread */
                                  MHD_OPTION_CONNECTION_LIMIT, c->max_connections,
                                  MHD_OPTION_NOTIFY_CONNECTION, clients_notify, &srv,
                                  MHD_OPTION_END);
    freeaddrinfo(address);
    if (!srv.daemon) {
        fprintf(stderr, "headroomd: cannot listen on %s:%d: %s\n", c->host, c->port,
                errno ? strerror(errno) : "the address is in use or not available");
        hr_context_free(srv.ctx);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv.daemon, MHD_DAEMON_INFO_BIND_PORT);
    int bound = info ? info->port : c->port;
    const char *open_bracket = strchr(c->host, ':') ? "[" : "", *close_bracket = strchr(c->host, ':') ? "]" : "";
    printf("headroomd: listening on http://%s%s%s:%d (%d model%s)\n", open_bracket, c->host, close_bracket, bound,
           srv.n_models, srv.n_models == 1 ? "" : "s");
    fflush(stdout);

    struct sigaction action = { .sa_handler = on_stop };
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* keep-alive and pressure are the library's hr-lifecycle; here only the dashboard's history */
    while (!stop_requested) {
        usleep(250000);
        history_tick(&srv);
    }

    fprintf(stderr, "headroomd: stopping\n");
    server_cancel_all_sessions(&srv);
    /* the requests whose generations were just cancelled answer (503, "cancelled") before the
     * connections close; at most 3 s, then a little for the replies to leave */
    for (int i = 0; i < 150 && atomic_load(&srv.handling) > 0; i++) usleep(20000);
    usleep(50000);
    MHD_stop_daemon(srv.daemon);
    history_stop(&srv);
    hr_context_free(srv.ctx);   /* unloads every model */
    return 0;
}
