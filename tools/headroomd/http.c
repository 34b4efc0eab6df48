/*
 * http.c: libmicrohttpd glue: collects a request body within the limit, checks the API key,
 * UTF-8 and JSON, dispatches to the API rooms, and queues replies: JSON, errors in the client's
 * shape, and streams fed by a session (backpressure is MHD's: it asks for more only when the
 * socket takes it, so a slow reader leaves the session's queue full and the worker waiting).
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

double wall_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* ---- replies ---------------------------------------------------------------------------------- */

static enum MHD_Result queue(request *r, unsigned int status, struct MHD_Response *response)
{
    if (!response) return MHD_NO;
    if (status >= 500) atomic_fetch_add(&r->srv->server_errors, 1);
    else if (status >= 400) atomic_fetch_add(&r->srv->client_errors, 1);
    if (r->origin) {   /* CORS: the allowed origin may read the reply */
        MHD_add_response_header(response, "Access-Control-Allow-Origin", r->origin);
        MHD_add_response_header(response, "Vary", "Origin");
    }
    enum MHD_Result result = MHD_queue_response(r->connection, status, response);
    MHD_destroy_response(response);
    return result;
}

enum MHD_Result reply_text(request *r, unsigned int status, const char *content_type, const char *text)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!response) return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return queue(r, status, response);
}

enum MHD_Result reply_json_with_header(request *r, unsigned int status, cJSON *body, const char *header,
                                       const char *value)
{
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (!text) return reply_text(r, 500, "application/json", "{\"error\":\"out of memory\"}");
    struct MHD_Response *response = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!response) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (header) MHD_add_response_header(response, header, value);
    return queue(r, status, response);
}

enum MHD_Result reply_json(request *r, unsigned int status, cJSON *body)
{
    return reply_json_with_header(r, status, body, NULL, NULL);
}

/* An error body in the request's style: Ollama's {"error": message} or OpenAI's
 * {"error": {message, type, param, code}} (param and code may be NULL). */
static cJSON *error_body(const request *r, const char *message, const char *type, const char *param,
                         const char *code)
{
    cJSON *body = cJSON_CreateObject();
    if (r->style == STYLE_OLLAMA) {
        cJSON_AddStringToObject(body, "error", message);
        return body;
    }
    cJSON *error = cJSON_AddObjectToObject(body, "error");
    cJSON_AddStringToObject(error, "message", message);
    cJSON_AddStringToObject(error, "type", type);
    if (param) cJSON_AddStringToObject(error, "param", param);
    else cJSON_AddNullToObject(error, "param");
    if (code) cJSON_AddStringToObject(error, "code", code);
    else cJSON_AddNullToObject(error, "code");
    return body;
}

static const char *openai_error_type(unsigned int status)
{
    if (status == 401) return "authentication_error";
    if (status == 404) return "not_found_error";
    if (status == 429 || status == 503) return "server_overloaded";
    if (status >= 500) return "server_error";
    return "invalid_request_error";
}

enum MHD_Result reply_error(request *r, unsigned int status, const char *param, const char *format, ...)
{
    char message[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    return reply_json(r, status, error_body(r, message, openai_error_type(status), param, NULL));
}

enum MHD_Result reply_method_not_allowed(request *r, const char *allow)
{
    char message[256];
    snprintf(message, sizeof message, "%s is not allowed on %s; use %s", r->method, r->path, allow);
    return reply_json_with_header(r, 405, error_body(r, message, "invalid_request_error", NULL, NULL),
                                  MHD_HTTP_HEADER_ALLOW, allow);
}

enum MHD_Result reply_library_error(request *r, int code)
{
    unsigned int status = 500;
    switch (code) {
    case HR_EINVAL: case HR_ECONTEXT: status = 400; break;
    case HR_ENOENT: status = 404; break;
    case HR_EBUSY: case HR_EAGAIN: status = 503; break;
    case HR_ENOTSUP: status = 501; break;
    case HR_EFULL: {
        /* every slot busy and the queue at its limit: come back when a place is expected */
        char after[32];
        snprintf(after, sizeof after, "%.0f", hr_last_retry_after() >= 1 ? hr_last_retry_after() : 1);
        return reply_json_with_header(r, 503, error_body(r, hr_last_error(), "server_overloaded", NULL, "queue_full"),
                                      MHD_HTTP_HEADER_RETRY_AFTER, after);
    }
    case HR_ECANCELLED:
        /* Stopped by headroom for want of memory (pressure, the guard: their sentences say
         * "cancelled by headroom") is a memory problem; any other cancel (an unload on request,
         * shutdown, the client's own) is not, and must not tell clients to come back for memory. */
        if (strncmp(hr_last_error(), "cancelled by headroom", 21) != 0)
            return reply_json(r, 503, error_body(r, hr_last_error()[0] ? hr_last_error() : "the generation was cancelled",
                                                 "server_error", NULL, "cancelled"));
        /* fall through */
    case HR_EMEMORY:
        /* not now, for want of memory: the sentence says why; clients may come back */
        return reply_json_with_header(r, 503, error_body(r, hr_last_error(), "server_overloaded", NULL, "insufficient_memory"),
                                      MHD_HTTP_HEADER_RETRY_AFTER, "10");
    default: break;
    }
    return reply_error(r, status, NULL, "%s", hr_last_error()[0] ? hr_last_error() : hr_strerror(code));
}

bool refuse_under_pressure(request *r, enum MHD_Result *reply)
{
    /* with a fall-back, the registry's load path sends the model there under critical pressure:
     * refusing here would never let it try */
    if (r->srv->config.fallback_url[0]) return false;
    hr_pressure p;
    if (hr_pressure_check(r->srv->ctx, &p) != HR_OK || p.level != HR_PRESSURE_CRITICAL) return false;
    char message[700];
    snprintf(message, sizeof message, "memory pressure is critical on this server (%s); retry later or elsewhere",
             p.reason);
    *reply = reply_json_with_header(r, 503, error_body(r, message, "server_overloaded", NULL, "memory_pressure"),
                                    MHD_HTTP_HEADER_RETRY_AFTER, "10");
    return true;
}

void append(char **out, size_t *out_length, const char *text, size_t length)
{
    char *grown = realloc(*out, *out_length + length + 1);
    if (!grown) return;   /* the piece is lost, the stream goes on: better than a crash */
    memcpy(grown + *out_length, text, length);
    *out_length += length;
    grown[*out_length] = '\0';
    *out = grown;
}

void append_json_line(char **out, size_t *out_length, const char *prefix, cJSON *object, const char *suffix)
{
    char *text = cJSON_PrintUnformatted(object);
    cJSON_Delete(object);
    if (!text) return;
    append(out, out_length, prefix, strlen(prefix));
    append(out, out_length, text, strlen(text));
    append(out, out_length, suffix, strlen(suffix));
    free(text);
}

/* ---- counters for /metrics ------------------------------------------------------------------- */

const double histogram_bounds[12] = { 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };

static void observe(struct histogram *h, double value)
{
    int bucket = 0;
    while (bucket < 12 && value > histogram_bounds[bucket]) bucket++;
    h->counts[bucket]++;
    h->sum += value;
    h->count++;
}

void server_observe(server *srv, const hr_generation_stats *stats, int result)
{
    pthread_mutex_lock(&srv->stats_lock);
    srv->generations++;
    if (result == HR_ECANCELLED) srv->cancelled_generations++;
    else if (result != HR_OK) srv->failed_generations++;
    srv->prompt_tokens += (unsigned long)stats->prompt_tokens;
    srv->generated_tokens += (unsigned long)stats->generated_tokens;
    if (stats->generated_tokens > 0) observe(&srv->ttft, stats->time_to_first_token);
    if (stats->total_seconds > 0) observe(&srv->duration, stats->total_seconds);
    pthread_mutex_unlock(&srv->stats_lock);
}

/* ---- sessions being read, so shutdown can end them ---------------------------------------- */

struct tracked_session {
    hr_session *session;
    struct tracked_session *next;
    char model[256];              /* the catalogue name ("" when unknown) */
    double started;               /* wall clock */
    int32_t last_tokens;          /* at the last history tick, for the rate */
    double last_tick;
    double tokens_per_second;
};

static void track(request *r, hr_session *session)
{
    server *srv = r->srv;
    struct tracked_session *t = calloc(1, sizeof *t);
    if (!t) return;   /* only shutdown is slower for it */
    t->session = session;
    snprintf(t->model, sizeof t->model, "%s", r->model_name ? r->model_name : "");
    t->started = t->last_tick = wall_seconds();
    pthread_mutex_lock(&srv->sessions_lock);
    t->next = srv->sessions;
    srv->sessions = t;
    pthread_mutex_unlock(&srv->sessions_lock);
}

static void untrack(server *srv, hr_session *session)
{
    pthread_mutex_lock(&srv->sessions_lock);
    for (struct tracked_session **link = &srv->sessions; *link; link = &(*link)->next) {
        if ((*link)->session != session) continue;
        struct tracked_session *gone = *link;
        *link = gone->next;
        free(gone);
        break;
    }
    pthread_mutex_unlock(&srv->sessions_lock);
}

cJSON *server_active_sessions(server *srv)
{
    cJSON *list = cJSON_CreateArray();
    pthread_mutex_lock(&srv->sessions_lock);
    for (struct tracked_session *t = srv->sessions; t; t = t->next) {
        hr_generation_stats stats;
        hr_session_stats(t->session, &stats);
        cJSON *item = cJSON_CreateObject();
        cJSON_AddNumberToObject(item, "generated_tokens", stats.generated_tokens);
        cJSON_AddStringToObject(item, "model", t->model);
        cJSON_AddStringToObject(item, "state", stats.generated_tokens > 0 ? "generating" : "waiting");
        cJSON_AddBoolToObject(item, "queued", hr_session_queued(t->session));   /* waiting for a slot */
        cJSON_AddNumberToObject(item, "seconds", wall_seconds() - t->started);
        cJSON_AddNumberToObject(item, "tokens_per_second", t->tokens_per_second);
        cJSON_AddItemToArray(list, item);
    }
    pthread_mutex_unlock(&srv->sessions_lock);
    return list;
}

void server_sessions_tick(server *srv, double now, double *tokens_per_second, int *running, int *waiting)
{
    *tokens_per_second = 0;
    *running = *waiting = 0;
    pthread_mutex_lock(&srv->sessions_lock);
    for (struct tracked_session *t = srv->sessions; t; t = t->next) {
        hr_generation_stats stats;
        hr_session_stats(t->session, &stats);
        if (now - t->last_tick > 0.1) {
            t->tokens_per_second = (double)(stats.generated_tokens - t->last_tokens) / (now - t->last_tick);
            t->last_tokens = stats.generated_tokens;
            t->last_tick = now;
        }
        *tokens_per_second += t->tokens_per_second;
        if (stats.generated_tokens > 0) ++*running;
        else ++*waiting;
    }
    pthread_mutex_unlock(&srv->sessions_lock);
}

void server_cancel_all_sessions(server *srv)
{
    pthread_mutex_lock(&srv->sessions_lock);
    for (struct tracked_session *t = srv->sessions; t; t = t->next) hr_session_cancel(t->session);
    pthread_mutex_unlock(&srv->sessions_lock);
}

/* ---- streams ---------------------------------------------------------------------------------- */

struct stream {
    server *srv;
    hr_model *model;          /* in use until the stream ends */
    double keep_alive;
    hr_session *session;
    const stream_format *format;
    void *state;
    int fd;                   /* the client's socket, to notice a hang-up while we wait */
    char *pending;            /* formatted bytes not yet handed to MHD */
    size_t pending_length, pending_offset;
    bool first, finished;
    int result;               /* once finished: HR_OK, or how the generation ended */
};

/* POLLRDHUP (a peer's half-close, seen without reading) is Linux's; elsewhere the MSG_PEEK below
 * notices the end-of-file alone. */
#ifndef POLLRDHUP
#define POLLRDHUP 0
#endif

/* A peer that closed its end reads as end-of-file; data waiting (a pipelined request) or
 * EAGAIN means it is still there. */
bool client_gone(int fd)
{
    if (fd < 0) return false;
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0;
}

int connection_fd(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info ? info->connect_fd : -1;
}

static ssize_t stream_read(void *cls, uint64_t position, char *buffer, size_t max)
{
    (void)position;
    struct stream *s = cls;
    for (;;) {
        if (s->pending_offset < s->pending_length) {
            size_t n = s->pending_length - s->pending_offset;
            if (n > max) n = max;
            memcpy(buffer, s->pending + s->pending_offset, n);
            s->pending_offset += n;
            if (s->pending_offset == s->pending_length) s->pending_offset = s->pending_length = 0;
            return (ssize_t)n;
        }
        if (s->finished) return MHD_CONTENT_READER_END_OF_STREAM;

        char piece[4096];
        size_t length = 0;
        int rc = hr_session_read(s->session, piece, sizeof piece, &length, 0.25);
        if (rc == HR_OK) {
            s->format->piece(s->state, piece, length, s->first, &s->pending, &s->pending_length);
            s->first = false;
        } else if (rc == HR_EAGAIN) {
            if (client_gone(s->fd)) {
                hr_session_cancel(s->session);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            if (s->format->keep_alive)
                append(&s->pending, &s->pending_length, s->format->keep_alive, strlen(s->format->keep_alive));
        } else {
            hr_generation_stats stats;
            hr_session_stats(s->session, &stats);
            s->result = rc == HR_EOF ? HR_OK : rc;
            s->format->finish(s->state, s->result, hr_last_error(), &stats, &s->pending, &s->pending_length);
            s->finished = true;
        }
    }
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    untrack(s->srv, s->session);
    hr_generation_stats stats;
    hr_session_stats(s->session, &stats);
    /* an error event ends the stream as surely as the last piece: count how it ended */
    server_observe(s->srv, &stats, s->finished ? s->result : HR_ECANCELLED);
    hr_session_free(s->session);   /* cancels it if the client left early */
    server_release_model(s->srv, s->model, s->keep_alive);
    if (s->format->free_state) s->format->free_state(s->state);
    free(s->pending);
    free(s);
}

enum MHD_Result reply_stream(request *r, hr_session *session, const stream_format *format, void *state,
                             hr_model *model, double keep_alive)
{
    struct stream *s = calloc(1, sizeof *s);
    if (!s) {
        hr_session_free(session);
        if (format->free_state) format->free_state(state);
        server_release_model(r->srv, model, keep_alive);
        return reply_error(r, 500, NULL, "out of memory starting a stream");
    }
    s->srv = r->srv;
    s->model = model;
    s->keep_alive = keep_alive;
    s->session = session;
    s->format = format;
    s->state = state;
    s->fd = connection_fd(r->connection);
    s->first = true;
    track(r, session);
    struct MHD_Response *response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
    if (!response) {
        stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, format->content_type);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(response, "X-Accel-Buffering", "no");   /* nginx: pass it on as it comes */
    return queue(r, 200, response);
}

int read_whole_session(request *r, hr_session *session, char **text, hr_generation_stats *stats)
{
    int fd = connection_fd(r->connection);
    size_t length = 0;
    track(r, session);
    *text = calloc(1, 1);
    char piece[4096];
    size_t piece_length;
    int rc;
    struct timespec last_check;
    clock_gettime(CLOCK_MONOTONIC, &last_check);
    for (;;) {
        rc = hr_session_read(session, piece, sizeof piece, &piece_length, 0.25);
        if (rc == HR_OK) append(text, &length, piece, piece_length);
        else if (rc != HR_EAGAIN) break;
        /* nothing is written until the end, so look for a hang-up every 0.25 s, pieces or not */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double since = (double)(now.tv_sec - last_check.tv_sec) + (double)(now.tv_nsec - last_check.tv_nsec) * 1e-9;
        if (rc == HR_EAGAIN || since >= 0.25) {
            last_check = now;
            if (client_gone(fd)) {
                hr_session_cancel(session);
                rc = HR_ECANCELLED;
                break;
            }
        }
    }
    untrack(r->srv, session);
    hr_session_stats(session, stats);
    server_observe(r->srv, stats, rc == HR_EOF ? HR_OK : rc);
    return rc == HR_EOF ? HR_OK : rc;
}

/* ---- request fields ---------------------------------------------------------------------------- */

static bool field_fail(field_check *c, const char *key, const char *format, ...) __attribute__((format(printf, 3, 4)));

static bool field_fail(field_check *c, const char *key, const char *format, ...)
{
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    c->reply = reply_error(c->r, 400, key, "%s", message);
    c->failed = true;
    return false;
}

bool field_string(field_check *c, const cJSON *object, const char *key, bool required, const char **out)
{
    if (c->failed) return false;
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(object, key);
    if (!value || cJSON_IsNull(value)) {
        if (required) return field_fail(c, key, "'%s' is required", key);
        return true;
    }
    if (!cJSON_IsString(value)) return field_fail(c, key, "'%s' must be a string", key);
    *out = value->valuestring;
    return true;
}

bool field_number(field_check *c, const cJSON *object, const char *key, double min, double max, float *out)
{
    if (c->failed) return false;
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(object, key);
    if (!value || cJSON_IsNull(value)) return true;
    if (!cJSON_IsNumber(value) || !isfinite(value->valuedouble))
        return field_fail(c, key, "'%s' must be a number", key);
    if (value->valuedouble < min || value->valuedouble > max)
        return field_fail(c, key, "'%s' must be between %g and %g, not %g", key, min, max, value->valuedouble);
    *out = (float)value->valuedouble;
    return true;
}

bool field_int(field_check *c, const cJSON *object, const char *key, long min, long max, int32_t *out)
{
    if (c->failed) return false;
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(object, key);
    if (!value || cJSON_IsNull(value)) return true;
    if (!cJSON_IsNumber(value) || value->valuedouble != floor(value->valuedouble))
        return field_fail(c, key, "'%s' must be a whole number", key);
    if (value->valuedouble < (double)min || value->valuedouble > (double)max)
        return field_fail(c, key, "'%s' must be between %ld and %ld, not %.0f", key, min, max, value->valuedouble);
    *out = (int32_t)value->valuedouble;
    return true;
}

bool field_u64(field_check *c, const cJSON *object, const char *key, uint64_t *out)
{
    if (c->failed) return false;
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(object, key);
    if (!value || cJSON_IsNull(value)) return true;
    if (!cJSON_IsNumber(value) || value->valuedouble < 0 || value->valuedouble > 9007199254740992.0 ||
        value->valuedouble != floor(value->valuedouble))
        return field_fail(c, key, "'%s' must be a non-negative whole number", key);
    *out = (uint64_t)value->valuedouble;
    return true;
}

bool field_bool(field_check *c, const cJSON *object, const char *key, bool *out)
{
    if (c->failed) return false;
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(object, key);
    if (!value || cJSON_IsNull(value)) return true;
    if (!cJSON_IsBool(value)) return field_fail(c, key, "'%s' must be true or false", key);
    *out = cJSON_IsTrue(value);
    return true;
}

bool field_stop(field_check *c, const cJSON *object, const char *key, const char **stops, size_t *count)
{
    *count = 0;
    if (c->failed) return false;
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(object, key);
    if (!value || cJSON_IsNull(value)) return true;
    if (cJSON_IsString(value)) {
        if (value->valuestring[0] == '\0') return true;   /* "" stops nothing, as OpenAI treats it */
        stops[(*count)++] = value->valuestring;
        return true;
    }
    if (!cJSON_IsArray(value))
        return field_fail(c, key, "'%s' must be a string or an array of strings", key);
    if (cJSON_GetArraySize(value) > MAX_STOP_SEQUENCES)
        return field_fail(c, key, "'%s' has %d sequences; at most %d are accepted", key, cJSON_GetArraySize(value),
                          MAX_STOP_SEQUENCES);
    const cJSON *item;
    cJSON_ArrayForEach(item, value) {
        if (!cJSON_IsString(item)) return field_fail(c, key, "'%s' must be a string or an array of strings", key);
        if (item->valuestring[0] == '\0') return field_fail(c, key, "'%s' must not hold an empty string", key);
        if (strlen(item->valuestring) > MAX_STOP_BYTES)
            return field_fail(c, key, "each of '%s' may be at most %d bytes", key, MAX_STOP_BYTES);
        stops[(*count)++] = item->valuestring;
    }
    return true;
}

/* Whether a client set a field to something other than its "off" value (null, false, 0, "",
 * "none", [], {} or {"type":"text"}): what clients send by default must pass. */
static bool field_is_set(const cJSON *value)
{
    if (!value || cJSON_IsNull(value) || cJSON_IsFalse(value)) return false;
    if (cJSON_IsNumber(value)) return value->valuedouble != 0;
    if (cJSON_IsString(value)) return value->valuestring[0] != '\0' && strcmp(value->valuestring, "none") != 0;
    if (cJSON_IsArray(value) || cJSON_IsObject(value)) {
        if (cJSON_GetArraySize(value) == 0) return false;
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(value, "type");
        return !(cJSON_IsObject(value) && cJSON_GetArraySize(value) == 1 && cJSON_IsString(type) &&
                 strcmp(type->valuestring, "text") == 0);
    }
    return true;
}

bool field_refused(field_check *c, const cJSON *object, const char *key, const char *why)
{
    if (c->failed) return false;
    if (!field_is_set(cJSON_GetObjectItemCaseSensitive(object, key))) return true;
    return field_fail(c, key, "'%s' is not supported: %s", key, why);
}

bool field_schema_grammar(field_check *c, const char *key, const cJSON *schema, char **grammar)
{
    *grammar = NULL;
    if (c->failed) return false;
    char *text = NULL;
    if (schema) {
        if (!cJSON_IsObject(schema) && !cJSON_IsBool(schema))
            return field_fail(c, key, "'%s' must hold a JSON schema (an object)", key);
        text = cJSON_PrintUnformatted(schema);
        if (!text) return field_fail(c, key, "'%s': out of memory reading the schema", key);
    }
    int rc = hr_json_grammar(text, grammar);
    cJSON_free(text);
    if (rc == HR_OK) return true;
    if (rc == HR_ENOTSUP) {
        c->reply = reply_error(c->r, 501, key, "%s", hr_last_error());
        c->failed = true;
        return false;
    }
    return field_fail(c, key, "'%s': %s", key, hr_last_error());
}

bool field_logit_bias(field_check *c, const cJSON *object, const char *key, hr_logit_bias *biases, size_t *count)
{
    *count = 0;
    if (c->failed) return false;
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(object, key);
    if (!value || cJSON_IsNull(value)) return true;
    if (!cJSON_IsObject(value))
        return field_fail(c, key, "'%s' must be an object of token ids to biases from -100 to 100", key);
    if (cJSON_GetArraySize(value) > MAX_LOGIT_BIAS)
        return field_fail(c, key, "'%s' has %d entries; at most %d are accepted", key, cJSON_GetArraySize(value),
                          MAX_LOGIT_BIAS);
    const cJSON *item;
    cJSON_ArrayForEach(item, value) {
        char *end = NULL;
        long token = strtol(item->string, &end, 10);
        if (!item->string[0] || *end != '\0' || token < 0 || token > INT32_MAX)
            return field_fail(c, key, "'%s' keys must be token ids (whole numbers), not '%s'", key, item->string);
        if (!cJSON_IsNumber(item) || !(item->valuedouble >= -100 && item->valuedouble <= 100))
            return field_fail(c, key, "'%s' biases must be numbers from -100 to 100", key);
        /* OpenAI: -100 bans the token */
        float bias = item->valuedouble <= -100 ? -INFINITY : (float)item->valuedouble;
        biases[(*count)++] = (hr_logit_bias){ (int32_t)token, bias };
    }
    return true;
}

bool parse_duration(const cJSON *value, double *seconds)
{
    if (cJSON_IsNumber(value)) {
        /* a number as long as 1e300 s would make a deadline no clock holds: as the parser does */
        if (!isfinite(value->valuedouble) || value->valuedouble > HR_KEEP_ALIVE_MAX) return false;
        *seconds = value->valuedouble;
        return true;
    }
    return cJSON_IsString(value) && hr_keep_alive_parse(value->valuestring, seconds) == HR_OK;
}

/* ---- the MHD access handler ------------------------------------------------------------------- */

struct pending_request {
    char *body;
    size_t length;
    bool too_large;
    bool answered;   /* answered on its headers (401, 413) */
};

static bool authorized(server *srv, struct MHD_Connection *connection)
{
    if (!srv->config.api_key[0]) return true;
    const char *header = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!header || strncasecmp(header, "Bearer ", 7) != 0) return false;   /* the scheme is case-insensitive */
    /* constant-time comparison: the key's length is not secret, its bytes are */
    const char *given = header + 7;
    size_t expected = strlen(srv->config.api_key);
    if (strlen(given) != expected) return false;
    unsigned char difference = 0;
    for (size_t i = 0; i < expected; i++) difference |= (unsigned char)(given[i] ^ srv->config.api_key[i]);
    return difference == 0;
}

/* Loopback origins are allowed as Ollama allows them (any port, http or https), so a page served
 * on this machine can call its own server; others only when configured. */
static bool origin_allowed(const server *srv, const char *origin)
{
    static const char *const loopback[] = { "http://localhost", "https://localhost", "http://127.0.0.1",
                                            "https://127.0.0.1", "http://[::1]", "https://[::1]" };
    for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++) {
        size_t length = strlen(loopback[i]);
        if (strncmp(origin, loopback[i], length) != 0) continue;
        const char *rest = origin + length;
        if (*rest == '\0') return true;
        if (*rest == ':' && rest[1] && strspn(rest + 1, "0123456789") == strlen(rest + 1)) return true;
    }
    for (int i = 0; i < srv->config.n_cors_origins; i++)
        if (strcmp(srv->config.cors_origins[i], "*") == 0 || strcasecmp(srv->config.cors_origins[i], origin) == 0)
            return true;
    return false;
}

/* A browser's preflight: which methods and headers a cross-origin request may use. */
static enum MHD_Result reply_preflight(request *r)
{
    struct MHD_Response *response = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!response) return MHD_NO;
    MHD_add_response_header(response, "Access-Control-Allow-Methods", "GET, POST, HEAD, OPTIONS");
    MHD_add_response_header(response, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(response, "Access-Control-Max-Age", "600");
    MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, POST, HEAD, OPTIONS");
    return queue(r, 204, response);
}

static enum api_style style_of(const char *path)
{
    if (strncmp(path, "/v1/", 4) == 0) return STYLE_OPENAI;
    if (strncmp(path, "/api/", 5) == 0) return STYLE_OLLAMA;
    return STYLE_PLAIN;
}

static enum MHD_Result dispatch(request *r)
{
    enum MHD_Result reply = MHD_NO;
    if (api_openai(r, &reply) || api_ollama(r, &reply) || api_admin(r, &reply)) return reply;
    return reply_error(r, 404, NULL, "no such endpoint: %s %s", r->method, r->path);
}

/* The request's Origin, when a browser sent one: allowed (r->origin set, so the reply carries it)
 * or not. The dashboard's own page, wherever it is reached from, is the same origin. */
static bool allow_origin(request *r)
{
    const char *origin = MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, "Origin");
    if (!origin) return true;
    const char *host = MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, "Host");
    bool same_origin = host && strncmp(origin, "http://", 7) == 0 && strcmp(origin + 7, host) == 0;
    if (!same_origin && !origin_allowed(r->srv, origin)) return false;
    r->origin = origin;
    return true;
}

static enum MHD_Result reply_forbidden_origin(request *r)
{
    const char *origin = MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, "Origin");
    return reply_error(r, 403, NULL, "requests from the web origin '%s' are not allowed; start headroomd "
                       "with --cors-origin '%s' (or HEADROOM_ORIGINS) to allow it", origin, origin);
}

bool server_is_loopback(const char *host)
{
    if (strcmp(host, "localhost") == 0) return true;
    struct in_addr v4;
    if (inet_pton(AF_INET, host, &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    struct in6_addr v6;
    if (inet_pton(AF_INET6, host, &v6) != 1) return false;
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

/* A DNS-rebinding page (a name that resolves to the page's server first, to 127.0.0.1 next) is
 * the same origin in the browser's eyes, so its requests carry no foreign Origin: only the Host
 * header tells them apart. A server on loopback without a key answers only Host names that are
 * loopback (localhost and *.localhost, which RFC 6761 keeps on the machine, 127.0.0.0/8, ::1) or
 * given with --allowed-host. With a key, or bound elsewhere (which needs a key), the key decides. */
static bool host_allowed(const server *srv, struct MHD_Connection *connection, const char **shown)
{
    if (srv->config.api_key[0] || !server_is_loopback(srv->config.host)) return true;
    const char *host = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    *shown = host;
    if (!host || !host[0]) return true;   /* HTTP/1.0 sends none: no browser does that */
    char name[256];
    size_t length;
    if (host[0] == '[') {   /* [v6]:port */
        const char *close = strchr(host, ']');
        length = close ? (size_t)(close - host - 1) : strlen(host + 1);
        host++;
    } else {
        const char *colon = strchr(host, ':');
        length = colon && !strchr(colon + 1, ':') ? (size_t)(colon - host) : strlen(host);
    }
    if (length == 0 || length >= sizeof name) return false;
    memcpy(name, host, length);
    name[length] = '\0';
    if (length > 0 && name[length - 1] == '.') name[--length] = '\0';   /* "localhost." */
    if (server_is_loopback(name) || strcasecmp(name, "localhost") == 0) return true;
    if (length > 10 && strcasecmp(name + length - 10, ".localhost") == 0) return true;
    for (int i = 0; i < srv->config.n_allowed_hosts; i++)
        if (strcasecmp(srv->config.allowed_hosts[i], name) == 0) return true;
    return false;
}

/* Liveness, readiness (probes carry no key) and the page, which holds no data, are open; every
 * other path needs the key. */
static bool open_path(const char *url)
{
    return strcmp(url, "/health") == 0 || strcmp(url, "/ready") == 0 || strcmp(url, "/") == 0 ||
           strcmp(url, "/dashboard") == 0;
}

/* The first call has the headers only: a request without the key, or one whose Content-Length is
 * over the limit, is answered now, so its body is never read (a client that sent "Expect:
 * 100-continue" sends none of it). */
static enum MHD_Result answer_on_headers(server *srv, struct MHD_Connection *connection, const char *url,
                                         const char *method, bool *answered)
{
    request r = { .srv = srv, .connection = connection, .method = method, .path = url, .body = "",
                  .style = style_of(url) };
    *answered = true;
    const char *host = NULL;
    if (!host_allowed(srv, connection, &host))
        return reply_error(&r, 403, NULL, "the Host header '%s' does not name this machine: headroomd on loopback "
                           "without an API key answers only loopback names (a guard against DNS rebinding); start "
                           "it with --allowed-host '%.*s' or with --api-key", host, (int)strcspn(host, ":"), host);
    if (!allow_origin(&r)) return reply_forbidden_origin(&r);
    /* browsers send no credentials with a preflight, so it comes before the key check */
    if (strcmp(method, "OPTIONS") == 0) return reply_preflight(&r);
    if (!open_path(url) && !authorized(srv, connection))
        return reply_error(&r, 401, NULL, "a valid API key is required: send 'Authorization: Bearer <key>'");
    const char *length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length) {
        char *end;
        unsigned long long declared = strtoull(length, &end, 10);
        if (end != length && declared > srv->config.max_body_bytes)
            return reply_error(&r, 413, NULL, "the request body is larger than the limit of %zu bytes",
                               srv->config.max_body_bytes);
    }
    *answered = false;
    return MHD_YES;
}

enum MHD_Result http_handle(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                            const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)version;
    server *srv = cls;
    struct pending_request *pending = *con_cls;
    if (!pending) {   /* the first call: headers only */
        pending = calloc(1, sizeof *pending);
        if (!pending) return MHD_NO;
        *con_cls = pending;
        atomic_fetch_add(&srv->requests, 1);
        bool answered;
        enum MHD_Result result = answer_on_headers(srv, connection, url, method, &answered);
        if (answered) pending->answered = true;
        return result;
    }
    if (pending->answered) {   /* answered on its headers: whatever body still comes is dropped */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {   /* a part of the body */
        if (!pending->too_large && pending->length + *upload_data_size <= srv->config.max_body_bytes) {
            char *grown = realloc(pending->body, pending->length + *upload_data_size + 1);
            if (grown) {
                memcpy(grown + pending->length, upload_data, *upload_data_size);
                pending->body = grown;
                pending->length += *upload_data_size;
                pending->body[pending->length] = '\0';
            } else {
                pending->too_large = true;
            }
        } else {
            pending->too_large = true;   /* keep reading to the end, keep nothing */
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    request r = {
        .srv = srv, .connection = connection, .method = method, .path = url,
        .body = pending->body ? pending->body : "", .body_length = pending->length,
        .json = NULL, .style = style_of(url),
    };
    (void)allow_origin(&r);   /* a refused origin or a preflight was answered on the headers; this
                                 sets r.origin for the reply */
    if (pending->too_large)   /* no Content-Length (chunked), or one that was not the truth */
        return reply_error(&r, 413, NULL, "the request body is larger than the limit of %zu bytes",
                           srv->config.max_body_bytes);
    if (strcmp(method, "POST") == 0) {
        if (!hr_utf8_valid(r.body, r.body_length))
            return reply_error(&r, 400, NULL, "the request body is not valid UTF-8");
        if (r.body_length > 0) {
            r.json = cJSON_ParseWithLength(r.body, r.body_length);
            if (!r.json) {
                const char *where = cJSON_GetErrorPtr();
                long offset = where && where >= r.body && where <= r.body + r.body_length ? (long)(where - r.body) : -1;
                return reply_error(&r, 400, NULL, "the request body is not valid JSON (near byte %ld)", offset);
            }
            if (!cJSON_IsObject(r.json)) {
                cJSON_Delete(r.json);
                return reply_error(&r, 400, NULL, "the request body must be a JSON object");
            }
        }
    }
    atomic_fetch_add(&srv->handling, 1);
    enum MHD_Result result = dispatch(&r);
    atomic_fetch_sub(&srv->handling, 1);
    cJSON_Delete(r.json);
    return result;
}

void http_request_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)connection;
    (void)toe;
    struct pending_request *pending = *con_cls;
    if (!pending) return;
    free(pending->body);
    free(pending);
    *con_cls = NULL;
}
