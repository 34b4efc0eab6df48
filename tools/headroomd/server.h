/*
 * server.h: what the rooms of headroomd share: its configuration, the catalogue of models it
 * may serve, the request an API handler receives, and the replies (JSON, errors, streams) it
 * can queue. HTTP is libmicrohttpd's, JSON is cJSON's; models and memory are libheadroom's.
 */
#ifndef HEADROOMD_SERVER_H
#define HEADROOMD_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "headroom.h"

#define MAX_MODELS 64
#define MAX_LIST_ENTRIES 32   /* --cors-origin, --allowed-host */

typedef struct server_config {
    char host[256];               /* --host, HEADROOM_HOST (default 127.0.0.1) */
    int port;                     /* --port, HEADROOM_PORT (default 11435) */
    char api_key[256];            /* --api-key, HEADROOM_API_KEY: required unless bound to loopback */
    char fallback_url[1024];      /* --fallback-url, HEADROOM_FALLBACK_URL: where a model goes when it
                                     cannot be served here ("" none) */
    char fallback_model[256];     /* --fallback-model: its name there ("": the same name) */
    char fallback_api_key[256];   /* --fallback-api-key, HEADROOM_FALLBACK_API_KEY */
    double fallback_timeout;      /* --fallback-timeout: seconds for a whole fall-back request (0: none) */
    char models_dir[4096];        /* --models-dir, HEADROOM_MODELS_DIR: every *.gguf in it */
    char model_paths[MAX_MODELS][4096]; /* --model PATH, repeatable; HEADROOM_MODEL (one) */
    int n_model_paths;
    double keep_alive;            /* --keep-alive, HEADROOM_KEEP_ALIVE: seconds, < 0 never (default 600) */
    int32_t ctx_size;             /* --ctx: context window per model (0: the model's, at most 4096) */
    int32_t threads;              /* --threads (0: one per CPU) */
    int32_t parallel;             /* --parallel, HEADROOM_PARALLEL, OLLAMA_NUM_PARALLEL: requests a
                                     model generates at once, at most (0: the library's, 4);
                                     fewer when memory is short */
    int32_t max_queue;            /* --max-queue, HEADROOM_MAX_QUEUE: requests that may wait per model
                                     beyond those it runs (default 16; then 503 + Retry-After) */
    int32_t queue_capacity;       /* --queue: pieces buffered per stream (default 64) */
    double reader_timeout;        /* --reader-timeout: seconds a stalled reader may hold a model others wait for (30) */
    bool pressure_actions;        /* --pressure-actions on|off: unload and cancel under pressure (on) */
    bool guard;                   /* --guard on|off: the degradation guard (on) */
    size_t max_body_bytes;        /* --max-body: largest request body (default 1 MiB) */
    unsigned int max_connections; /* --max-connections: open at once, a thread each (default 256) */
    unsigned int max_connections_per_client; /* --max-connections-per-client: open at once from
                                     one address, loopback not counted (default 32; 0: no limit) */
    int32_t max_tokens_limit;     /* --max-tokens-limit: largest max_tokens a request may ask (default 8192) */
    char config_file[4096];       /* --config, HEADROOM_CONFIG */
    char allowed_hosts[MAX_LIST_ENTRIES][256]; /* --allowed-host, HEADROOM_ALLOWED_HOSTS: Host
                                     headers accepted besides loopback names (docs/security.md) */
    int n_allowed_hosts;
    char cors_origins[MAX_LIST_ENTRIES][256]; /* --cors-origin, HEADROOM_ORIGINS: browser origins
                                     allowed besides loopback ones ("*": any) */
    int n_cors_origins;
} server_config;

/* One model headroomd may serve: found at start-up, loaded on first use. */
typedef struct server_model {
    char name[256];               /* what clients call it: the file name without ".gguf" */
    char path[4096];
    uint64_t file_bytes;          /* loading, keep-alive and unloading: the library's registry */
    /* from the GGUF header when the catalogue is made, for Ollama's details */
    char family[64];              /* general.architecture */
    char parameter_size[16];      /* "19.5M", "7.2B" */
    char quantization_level[32];  /* "Q8_0" */
} server_model;

typedef struct server {
    server_config config;
    hr_context *ctx;
    server_model models[MAX_MODELS];
    int n_models;
    struct MHD_Daemon *daemon;
    double started_at;
    atomic_ulong requests;        /* every request, for /metrics */
    atomic_int handling;          /* requests inside their handler now: shutdown lets them answer */
    atomic_ulong client_errors;   /* 4xx replies */
    atomic_ulong server_errors;   /* 5xx replies */
    pthread_mutex_t sessions_lock; /* guards sessions: every session a request is reading */
    struct tracked_session *sessions;
    pthread_mutex_t stats_lock;    /* guards the generation counters and histograms below */
    unsigned long generations, cancelled_generations, failed_generations;
    unsigned long prompt_tokens, generated_tokens;
    struct histogram { unsigned long counts[13]; double sum; unsigned long count; } ttft, duration;
    struct history *history;       /* the last minutes of memory and events (history.c) */
} server;

/* The upper bounds (seconds) of the histogram buckets; the last bucket is +Inf. */
extern const double histogram_bounds[12];

/* Counts a finished generation for /metrics. */
void server_observe(server *srv, const hr_generation_stats *stats, int result);

/* ---- options (config.c): flags, HEADROOM_* variables and config files set them by name ---- */

/* The defaults of every option (docs/configuration.md). */
void config_defaults(server_config *c);
/* Sets option `name` ("port", "keep-alive", ...) from `value`; false, with a sentence naming the
 * option on stderr, when the name is unknown or the value is not allowed. */
bool config_set_option(server_config *c, const char *name, const char *value);
/* Reads "key = value" lines ('#' starts a comment) from `f`, named `path` in the sentences; false
 * at the first bad line, which the sentence names. config_read_file opens `path` first. */
bool config_read_stream(server_config *c, FILE *f, const char *path);
bool config_read_file(server_config *c, const char *path);

/* ---- connections per client (clients.c) ---- */

/* Sets up the count for `per_client` connections per address among `max_connections`; false when
 * out of memory. Before the daemon starts. */
bool clients_init(unsigned int max_connections, unsigned int per_client);
/* libmicrohttpd's accept policy and connection notification: a connection beyond its address's
 * limit is refused at accept, with a line in the log. */
enum MHD_Result clients_accept(void *cls, const struct sockaddr *address, socklen_t length);
void clients_notify(void *cls, struct MHD_Connection *connection, void **socket_context,
                    enum MHD_ConnectionNotificationCode code);

/* Whether `host` (a name or an address, without a port) is this machine's loopback: localhost,
 * 127.0.0.0/8, ::1 (main.c). */
bool server_is_loopback(const char *host);

/* Which error shape a client expects. */
enum api_style { STYLE_OPENAI, STYLE_OLLAMA, STYLE_PLAIN };

/* A request as a handler sees it: the body is complete, valid UTF-8 and parsed when it is JSON. */
typedef struct request {
    server *srv;
    struct MHD_Connection *connection;
    const char *method;
    const char *path;
    const char *body;
    size_t body_length;
    cJSON *json;                  /* the parsed body (POST with a JSON body), owned by http.c */
    enum api_style style;
    const char *origin;           /* the browser's Origin header when it is allowed (replies echo it) */
    const char *model_name;       /* the catalogue name of the model server_use_model() gave it, or NULL */
} request;

/* ---- replies (http.c); each queues the response and returns what MHD expects ---------------- */

enum MHD_Result reply_json(request *r, unsigned int status, cJSON *body);   /* takes `body` */
/* The same with one more header (`header` NULL: none). */
enum MHD_Result reply_json_with_header(request *r, unsigned int status, cJSON *body, const char *header,
                                       const char *value);
enum MHD_Result reply_text(request *r, unsigned int status, const char *content_type, const char *text);
/* An error in the request's style: OpenAI {"error":{"message","type","param","code"}},
 * Ollama {"error":"message"}. `param` may be NULL. */
enum MHD_Result reply_error(request *r, unsigned int status, const char *param, const char *format, ...)
    __attribute__((format(printf, 4, 5)));
/* 405 with the Allow header listing the methods the path takes. */
enum MHD_Result reply_method_not_allowed(request *r, const char *allow);
/* The reply for a library failure: the status that fits the code, the library's sentence. */
enum MHD_Result reply_library_error(request *r, int code);

/* A streamed reply: pieces of `session` formatted by `format` as they arrive. The stream owns
 * the session, `state` and the use of `entry` from here on (released with `keep_alive` when the
 * stream ends); a client that disconnects cancels the session. */
typedef struct stream_format {
    const char *content_type;
    /* Appends the bytes for one piece to `out`. */
    void (*piece)(void *state, const char *piece, size_t length, cJSON_bool first, char **out, size_t *out_length);
    /* Appends the closing bytes: `result` HR_OK (stats are final) or an error with `message`. */
    void (*finish)(void *state, int result, const char *message, const hr_generation_stats *stats,
                   char **out, size_t *out_length);
    /* Bytes that keep an idle connection provably alive (an SSE comment); NULL: none. */
    const char *keep_alive;
    void (*free_state)(void *state);
} stream_format;

enum MHD_Result reply_stream(request *r, hr_session *session, const stream_format *format, void *state,
                             hr_model *model, double keep_alive);

/* The sessions requests are reading now: [{generated_tokens, model, state, seconds,
 * tokens_per_second}] (state "generating" once a piece came, else "waiting": queued or reading
 * the prompt; the rate is over the last history tick). */
cJSON *server_active_sessions(server *srv);

/* Called once a second by the history (main thread): updates each session's rate and returns
 * the rates' sum and how many sessions generate and wait. */
void server_sessions_tick(server *srv, double now, double *tokens_per_second, int *running, int *waiting);

/* Cancels every session being read, so that streams end and the daemon can stop. */
void server_cancel_all_sessions(server *srv);

/* The MHD callbacks (http.c), installed by main.c. */
enum MHD_Result http_handle(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                            const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls);
void http_request_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                            enum MHD_RequestTerminationCode toe);

/* Reads a whole session into a malloc'd string (for non-streaming replies), watching for the
 * client hanging up. Returns HR_OK, HR_ECANCELLED when the client left, or the error. */
int read_whole_session(request *r, hr_session *session, char **text, hr_generation_stats *stats);

/* The client's socket, and whether the client has hung up (it closed its end). */
int connection_fd(struct MHD_Connection *connection);
bool client_gone(int fd);

/* Appends bytes to a growing buffer (out, out_length); used by the formatters. */
void append(char **out, size_t *out_length, const char *text, size_t length);
void append_json_line(char **out, size_t *out_length, const char *prefix, cJSON *object,
                      const char *suffix);   /* takes `object` */

/* ---- request fields (http.c): each returns false after replying 400 with the reason -------- */

typedef struct field_check {
    request *r;
    enum MHD_Result reply;        /* what to return when a check failed */
    bool failed;
} field_check;

bool field_string(field_check *c, const cJSON *object, const char *key, bool required, const char **out);
bool field_int(field_check *c, const cJSON *object, const char *key, long min, long max, int32_t *out);
bool field_number(field_check *c, const cJSON *object, const char *key, double min, double max, float *out);
bool field_u64(field_check *c, const cJSON *object, const char *key, uint64_t *out);
bool field_bool(field_check *c, const cJSON *object, const char *key, bool *out);
/* Stop sequences: a string or an array of at most MAX_STOP_SEQUENCES non-empty strings, each at
 * most MAX_STOP_BYTES; `stops` (room for MAX_STOP_SEQUENCES) borrows them from `object`. */
enum { MAX_STOP_SEQUENCES = 16, MAX_STOP_BYTES = 256 };
bool field_stop(field_check *c, const cJSON *object, const char *key, const char **stops, size_t *count);
/* A field headroomd does not implement yet and that would change the output: a 400 that names it
 * and says `why`, unless it holds its "off" value (null, false, 0, "", "none", [], {"type":"text"}). */
bool field_refused(field_check *c, const cJSON *object, const char *key, const char *why);
/* The grammar of the JSON values `schema` (a JSON schema; NULL: any JSON object) allows, into
 * *grammar (hr_free it); false after replying: 400 naming `key` for a schema the converter cannot
 * read, 501 where libheadroom has no converter. */
bool field_schema_grammar(field_check *c, const char *key, const cJSON *schema, char **grammar);
/* OpenAI's logit_bias: {"token id": bias from -100 to 100}; -100 bans the token. */
enum { MAX_LOGIT_BIAS = 300 };
bool field_logit_bias(field_check *c, const cJSON *object, const char *key, hr_logit_bias *biases, size_t *count);

/* Refuses new work while memory pressure is critical: 503 with Retry-After and the reason, so a
 * load balancer sends the request to another node. Returns true after replying. */
bool refuse_under_pressure(request *r, enum MHD_Result *reply);

/* ---- models (models.c) ------------------------------------------------------------------------ */

/* Finds the catalogue entry named `name` (exact, or with ".gguf" or ":latest" stripped). */
server_model *server_find_model(server *srv, const char *name);
/* Registers every catalogued model with the library's registry (at start-up). */
bool server_register_models(server *srv);
/* Loads the model if needed and marks it in use (hr_registry_acquire); NULL with a reply queued
 * on failure: 503 + Retry-After when memory refuses it. */
hr_model *server_use_model(request *r, server_model *m, enum MHD_Result *reply);
/* Marks a use finished; `keep_alive` seconds (< 0: never unload; NAN: the server's default). */
void server_release_model(server *srv, hr_model *model, double keep_alive);

/* ---- history (history.c): one memory sample a second and the recent events ----------------- */

/* Subscribes to the library's events and takes the first sample; false when out of memory. */
bool history_start(server *srv, const hr_pressure_thresholds *thresholds);
/* Takes a sample when a second has passed since the last (main thread). */
void history_tick(server *srv);
void history_stop(server *srv);
/* {interval_seconds, capacity, warn_free_percent, critical_free_percent, samples, events}: the
 * samples taken after `since` (wall-clock seconds; 0: all) and the events whose id is above
 * `after` (0: all). Any thread. */
cJSON *history_json(server *srv, double since, unsigned long after);

/* ---- the APIs (api_*.c): each returns true when it handled the path ------------------------- */

/* ---- embeddings (api_embed.c), shaped by each API ------------------------------------------ */

/* ---- tool calls (api_tools.c) ---- */

/* A request's tools, tool_choice and parallel_tool_calls, checked. */
typedef struct tool_request {
    hr_chat_params params;   /* tool_name points into the request's JSON */
    char *tools_json;        /* the tools, printed; NULL: none */
    bool wanted;             /* tools given, or tool calls / results in the conversation: render
                                with the model's Jinja template (hr_chat) */
} tool_request;

/* Reads body's tools, tool_choice and parallel_tool_calls (OpenAI's shapes, which Ollama's
 * share); false after replying 400 naming the field. Free with tools_free. */
bool tools_read(field_check *c, const cJSON *body, tool_request *out);
/* Renders `messages` (OpenAI's shape) with the request's tools; false after replying (400 for a
 * conversation the template refuses, 501 where the library has no Jinja templates). */
bool tools_make_chat(field_check *c, hr_model *model, const cJSON *messages, tool_request *asked, hr_chat **out);
void tools_free(tool_request *asked);
/* The answer as {"content", "tool_calls": [{"id", "name", "arguments"}]}, every call with an id
 * ("call_..." where the model's format has none); NULL when it does not parse. */
cJSON *tools_parse(const hr_chat *chat, const char *text, size_t length, bool partial);
/* The finished answer: the whole parse; for an answer cut short, what a partial parse reads,
 * without a call left unfinished; else the text as content. Never NULL (but out of memory). */
cJSON *tools_parse_answer(const hr_chat *chat, const char *text, size_t length);

enum { MAX_EMBED_INPUTS = 2048 };

typedef struct embed_batch {
    float *vectors;      /* count x dimensions */
    int count;
    int32_t dimensions;
    int32_t tokens;      /* of all inputs, as embedded */
    int truncated;       /* inputs cut to the model's context */
    double seconds;      /* computing them */
} embed_batch;

/* Whether body[key] is a string or a non-empty array of at most MAX_EMBED_INPUTS strings (token
 * ids are refused); *count: how many. false after replying 400 naming `key`. */
bool embed_check_input(field_check *c, const cJSON *body, const char *key, bool required, int *count);
/* Embeds body[key] (checked) with `model`; an HR_E* code (the sentence in hr_last_error()). */
/* Embeds each input of body[key]; longer than the model takes: cut when `truncate`, else
 * HR_ECONTEXT (its sentence in hr_last_error). */
int embed_inputs(hr_model *model, const cJSON *body, const char *key, bool normalize, bool truncate,
                 embed_batch *out);
void embed_batch_free(embed_batch *batch);
cJSON *embed_vector_json(const float *vector, int32_t dimensions);
/* The floats as OpenAI's base64 (little-endian float32); malloc'd, NULL when out of memory. */
char *embed_vector_base64(const float *vector, int32_t dimensions);

bool api_openai(request *r, enum MHD_Result *reply);
bool api_ollama(request *r, enum MHD_Result *reply);
bool api_admin(request *r, enum MHD_Result *reply);

/* The dashboard page (tools/headroomd/dashboard/index.html, compiled in). */
extern const unsigned char dashboard_page[];
extern const size_t dashboard_page_length;

double wall_seconds(void);
/* Parses a keep-alive the way Ollama does: a number of seconds, or "5m", "1h", "30s", "-1". */
bool parse_duration(const cJSON *value, double *seconds);

#endif
