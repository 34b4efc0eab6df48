/*
 * api_admin.c: operations: GET /health (alive), GET /ready (503 with the reason under critical
 * pressure), GET /metrics (Prometheus text), GET /api/memory (the watermark and pressure),
 * GET /api/events (server-sent events: pressure level changes), GET /api/generations (the
 * metrics ring), GET /api/memory/history (history.c), POST /api/load and POST /api/unload.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

/* The library's JSON, as a cJSON object to nest; NULL when out of memory. */
static cJSON *pressure_json(const hr_pressure *p)
{
    char *text = hr_pressure_json(p);
    cJSON *object = text ? cJSON_Parse(text) : NULL;
    hr_free(text);
    return object;
}

static enum MHD_Result ready(request *r)
{
    hr_pressure p;
    int rc = hr_pressure_check(r->srv->ctx, &p);
    cJSON *body = cJSON_CreateObject();
    if (rc != HR_OK) {
        /* no reading: say so, but do not take the node out of service for it */
        cJSON_AddBoolToObject(body, "ready", true);
        cJSON_AddStringToObject(body, "pressure", "unknown");
        cJSON_AddStringToObject(body, "reason", hr_last_error());
        return reply_json(r, 200, body);
    }
    bool critical = p.level == HR_PRESSURE_CRITICAL;
    cJSON_AddBoolToObject(body, "ready", !critical);
    cJSON_AddStringToObject(body, "pressure", hr_pressure_level_name(p.level));
    char reason[600];
    snprintf(reason, sizeof reason, critical ? "memory pressure is critical: %s" : "%s", p.reason);
    cJSON_AddStringToObject(body, "reason", reason);
    if (!critical) return reply_json(r, 200, body);
    return reply_json_with_header(r, 503, body, MHD_HTTP_HEADER_RETRY_AFTER, "10");
}

static enum MHD_Result memory(request *r)
{
    hr_memory_status m;
    int rc = hr_memory_sample(r->srv->ctx, &m);
    if (rc != HR_OK) return reply_library_error(r, rc);
    char *text = hr_memory_status_json(&m);
    cJSON *body = text ? cJSON_Parse(text) : NULL;
    hr_free(text);
    if (!body) return reply_error(r, 500, NULL, "out of memory");
    char *registry = hr_registry_json(r->srv->ctx);
    cJSON *models = registry ? cJSON_Parse(registry) : NULL;
    hr_free(registry);
    cJSON_AddItemToObject(body, "models", models ? models : cJSON_CreateArray());
    hr_pressure p;
    if (hr_pressure_check(r->srv->ctx, &p) == HR_OK) cJSON_AddItemToObject(body, "pressure", pressure_json(&p));
    return reply_json(r, 200, body);
}

static enum MHD_Result generations(request *r)
{
    char *json = hr_metrics_json(r->srv->ctx);
    if (!json) return reply_error(r, 500, NULL, "out of memory");
    enum MHD_Result result = reply_text(r, 200, "application/json", json);
    hr_free(json);
    return result;
}

/* The generations running now, for watching backpressure and cancellation from outside. */
static enum MHD_Result active(request *r)
{
    return reply_json(r, 200, server_active_sessions(r->srv));
}

/* The last minutes of memory samples and events (history.c); ?since=TIME for the samples after
 * the last one a client has, ?after=ID for the events after the last one it has. */
static enum MHD_Result memory_history(request *r)
{
    const char *since_text = MHD_lookup_connection_value(r->connection, MHD_GET_ARGUMENT_KIND, "since");
    const char *after_text = MHD_lookup_connection_value(r->connection, MHD_GET_ARGUMENT_KIND, "after");
    double since = 0;
    unsigned long after = 0;
    char *end;
    if (since_text) {
        since = strtod(since_text, &end);
        if (end == since_text || *end || !isfinite(since))
            return reply_error(r, 400, "since", "'since' must be a time in seconds since the Unix epoch, as the samples' 'time', not '%s'", since_text);
    }
    if (after_text) {
        after = strtoul(after_text, &end, 10);
        if (end == after_text || *end || after_text[0] == '-')
            return reply_error(r, 400, "after", "'after' must be an event's 'id' (a whole number), not '%s'", after_text);
    }
    return reply_json(r, 200, history_json(r->srv, since, after));
}

/* ---- /metrics --------------------------------------------------------------------------------- */

static void metric(char **out, size_t *length, const char *format, ...) __attribute__((format(printf, 3, 4)));

static void metric(char **out, size_t *length, const char *format, ...)
{
    char line[512];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (n > 0) append(out, length, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void histogram(char **out, size_t *length, const char *name, const char *help, const struct histogram *h)
{
    metric(out, length, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long cumulative = 0;
    for (int i = 0; i < 12; i++) {
        cumulative += h->counts[i];
        metric(out, length, "%s_bucket{le=\"%g\"} %lu\n", name, histogram_bounds[i], cumulative);
    }
    metric(out, length, "%s_bucket{le=\"+Inf\"} %lu\n%s_sum %.6f\n%s_count %lu\n", name, h->count, name, h->sum,
           name, h->count);
}

/* A label value as Prometheus' text format wants it: backslash, double quote and line feed
 * escaped (a model's name comes from its file name, which may hold any of them). */
static void label_value(const char *text, char *out, size_t size)
{
    size_t n = 0;
    for (const char *c = text; *c && n + 3 < size; c++) {
        if (*c == '\\' || *c == '"') { out[n++] = '\\'; out[n++] = *c; }
        else if (*c == '\n') { out[n++] = '\\'; out[n++] = 'n'; }
        else out[n++] = *c;
    }
    out[n] = '\0';
}

/* Per loaded model: its slots, the sessions running in them and those queued for one, and the
 * queue's bound (continuous batching, docs/architecture.md "Slots"); one family at a time, as the
 * text format wants. */
static void sessions_by_model(char **out, size_t *length, const hr_registry_entry *list, size_t n)
{
    static const struct { const char *name, *help; } families[] = {
        { "headroom_model_slots", "Sessions the model decodes at once." },
        { "headroom_model_sessions_running", "Sessions decoding in the model's slots now." },
        { "headroom_model_sessions_queued", "Sessions waiting for a slot of the model." },
        { "headroom_model_sessions_max_queued", "Sessions that may wait beyond those running (-1: no bound)." },
    };
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        metric(out, length, "# HELP %s %s\n# TYPE %s gauge\n", families[f].name, families[f].help, families[f].name);
        for (size_t i = 0; i < n; i++) {
            if (list[i].state != HR_MODEL_READY && list[i].state != HR_MODEL_BUSY) continue;
            char label[2 * sizeof list[i].name + 1];
            label_value(list[i].name, label, sizeof label);
            int32_t values[] = { list[i].slots, list[i].running_sessions, list[i].queued_sessions, list[i].max_queued };
            metric(out, length, "%s{model=\"%s\"} %d\n", families[f].name, label, (int)values[f]);
        }
    }
}

static enum MHD_Result prometheus(request *r)
{
    server *srv = r->srv;
    char *out = calloc(1, 1);
    if (!out) return reply_error(r, 500, NULL, "out of memory");
    size_t length = 0;
    hr_memory_status m;
    if (hr_memory_sample(srv->ctx, &m) == HR_OK) {
        metric(&out, &length, "# HELP headroom_memory_host_total_bytes Host memory.\n# TYPE headroom_memory_host_total_bytes gauge\nheadroom_memory_host_total_bytes %llu\n", (unsigned long long)m.host_total_bytes);
        metric(&out, &length, "# HELP headroom_memory_host_available_bytes MemAvailable.\n# TYPE headroom_memory_host_available_bytes gauge\nheadroom_memory_host_available_bytes %llu\n", (unsigned long long)m.host_available_bytes);
        metric(&out, &length, "# HELP headroom_memory_effective_available_bytes Least available memory over every scope that binds the server.\n# TYPE headroom_memory_effective_available_bytes gauge\nheadroom_memory_effective_available_bytes %llu\n", (unsigned long long)m.effective_available_bytes);
        metric(&out, &length, "# HELP headroom_memory_effective_total_bytes Size of the binding scope.\n# TYPE headroom_memory_effective_total_bytes gauge\nheadroom_memory_effective_total_bytes %llu\n", (unsigned long long)m.effective_total_bytes);
        metric(&out, &length, "# HELP headroom_memory_swap_used_bytes Swap in use.\n# TYPE headroom_memory_swap_used_bytes gauge\nheadroom_memory_swap_used_bytes %llu\n", (unsigned long long)m.swap_used_bytes);
        metric(&out, &length, "# HELP headroom_process_rss_bytes Resident memory of headroomd.\n# TYPE headroom_process_rss_bytes gauge\nheadroom_process_rss_bytes %llu\n", (unsigned long long)m.process_rss_bytes);
        metric(&out, &length, "# HELP headroom_process_peak_rss_bytes Highest resident memory of headroomd.\n# TYPE headroom_process_peak_rss_bytes gauge\nheadroom_process_peak_rss_bytes %llu\n", (unsigned long long)m.process_peak_rss_bytes);
        metric(&out, &length, "# HELP headroom_process_major_faults_total Page-ins that waited for the disk.\n# TYPE headroom_process_major_faults_total counter\nheadroom_process_major_faults_total %llu\n", (unsigned long long)m.process_major_faults);
    }
    hr_pressure p;
    if (hr_pressure_check(srv->ctx, &p) == HR_OK) {
        metric(&out, &length, "# HELP headroom_pressure_level Memory pressure: 0 normal, 1 warn, 2 critical.\n# TYPE headroom_pressure_level gauge\nheadroom_pressure_level %d\n", (int)p.level);
        metric(&out, &length, "# HELP headroom_pressure_stall_some_percent Share of the recent interval tasks waited for memory.\n# TYPE headroom_pressure_stall_some_percent gauge\nheadroom_pressure_stall_some_percent %.3f\n", p.stall_some_percent);
    }
    int loaded = 0;
    metric(&out, &length, "# HELP headroom_model_loaded Whether a model is loaded.\n# TYPE headroom_model_loaded gauge\n");
    hr_registry_entry *list = NULL;
    size_t n = 0;
    if (hr_registry_list(srv->ctx, &list, &n) != HR_OK) n = 0;
    for (size_t i = 0; i < n; i++) {
        bool is_loaded = list[i].state == HR_MODEL_READY || list[i].state == HR_MODEL_BUSY;
        loaded += is_loaded;
        char label[2 * sizeof list[i].name + 1];
        label_value(list[i].name, label, sizeof label);
        metric(&out, &length, "headroom_model_loaded{model=\"%s\"} %d\n", label, is_loaded);
    }
    sessions_by_model(&out, &length, list, n);
    hr_free(list);
    metric(&out, &length, "# HELP headroom_models_loaded Models in memory.\n# TYPE headroom_models_loaded gauge\nheadroom_models_loaded %d\n", loaded);
    metric(&out, &length, "# HELP headroom_http_requests_total HTTP requests.\n# TYPE headroom_http_requests_total counter\nheadroom_http_requests_total %lu\n", atomic_load(&srv->requests));
    metric(&out, &length, "# HELP headroom_http_errors_total HTTP replies with an error status.\n# TYPE headroom_http_errors_total counter\nheadroom_http_errors_total{class=\"4xx\"} %lu\nheadroom_http_errors_total{class=\"5xx\"} %lu\n",
           atomic_load(&srv->client_errors), atomic_load(&srv->server_errors));
    pthread_mutex_lock(&srv->stats_lock);
    metric(&out, &length, "# HELP headroom_generations_total Generations finished, by outcome.\n# TYPE headroom_generations_total counter\nheadroom_generations_total{outcome=\"completed\"} %lu\nheadroom_generations_total{outcome=\"cancelled\"} %lu\nheadroom_generations_total{outcome=\"failed\"} %lu\n",
           srv->generations - srv->cancelled_generations - srv->failed_generations, srv->cancelled_generations,
           srv->failed_generations);
    metric(&out, &length, "# HELP headroom_tokens_total Tokens processed.\n# TYPE headroom_tokens_total counter\nheadroom_tokens_total{kind=\"prompt\"} %lu\nheadroom_tokens_total{kind=\"generated\"} %lu\n",
           srv->prompt_tokens, srv->generated_tokens);
    struct histogram ttft = srv->ttft, duration = srv->duration;
    pthread_mutex_unlock(&srv->stats_lock);
    histogram(&out, &length, "headroom_time_to_first_token_seconds", "Time from request to the first token.", &ttft);
    histogram(&out, &length, "headroom_generation_duration_seconds", "Time from request to the last token.", &duration);
    enum MHD_Result result = reply_text(r, 200, "text/plain; version=0.0.4", out);
    free(out);
    return result;
}

/* ---- /api/events ------------------------------------------------------------------------------ */

enum { EVENT_QUEUE = 64 };

struct event_stream {
    server *srv;
    int subscription;
    int fd;
    pthread_mutex_t lock;          /* guards the queue; the monitor thread fills it */
    pthread_cond_t arrived;
    char *queue[EVENT_QUEUE];
    int head, count;
    unsigned long dropped;         /* events a slow client missed: it is told, nothing grows */
    char *pending;
    size_t pending_length, pending_offset;
};

static char *event_text(const char *type, cJSON *data)
{
    char *json = cJSON_PrintUnformatted(data);
    cJSON_Delete(data);
    if (!json) return NULL;
    size_t size = strlen(type) + strlen(json) + 32;
    char *text = malloc(size);
    if (text) snprintf(text, size, "event: %s\ndata: %s\n\n", type, json);
    free(json);
    return text;
}

static void enqueue(struct event_stream *e, char *text)
{
    if (!text) return;
    pthread_mutex_lock(&e->lock);
    if (e->count == EVENT_QUEUE) {
        free(e->queue[e->head]);
        e->head = (e->head + 1) % EVENT_QUEUE;
        e->count--;
        e->dropped++;
    }
    e->queue[(e->head + e->count) % EVENT_QUEUE] = text;
    e->count++;
    pthread_cond_signal(&e->arrived);
    pthread_mutex_unlock(&e->lock);
}

static void on_event(const hr_event *event, void *user_data)
{
    struct event_stream *e = user_data;
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "level", hr_pressure_level_name(event->level));
    if (event->type == HR_EVENT_PRESSURE)
        cJSON_AddStringToObject(data, "previous", hr_pressure_level_name(event->previous_level));
    if (event->model) cJSON_AddStringToObject(data, "model", event->model);
    if (event->action) cJSON_AddStringToObject(data, "action", event->action);
    if (event->type == HR_EVENT_MODEL || event->type == HR_EVENT_ACTION)
        cJSON_AddNumberToObject(data, "bytes_freed", (double)event->bytes_freed);
    if (event->type == HR_EVENT_DEGRADED) {   /* the guard's measures: what the verdict rests on */
        cJSON_AddNumberToObject(data, "tokens_per_second", event->tokens_per_second);
        cJSON_AddNumberToObject(data, "expected_tokens_per_second", event->expected_tokens_per_second);
        cJSON_AddNumberToObject(data, "faults_per_token", event->faults_per_token);
    }
    cJSON_AddStringToObject(data, "reason", event->reason ? event->reason : "");
    cJSON_AddNumberToObject(data, "time", wall_seconds());
    /* SSE event names: "pressure", "model" (loads, unloads, refusals), "action" (the lifecycle's),
     * "degraded" (the guard: "thrashing" or "slow") */
    const char *name = event->type == HR_EVENT_PRESSURE ? "pressure"
                       : event->type == HR_EVENT_MODEL  ? "model"
                       : event->type == HR_EVENT_DEGRADED ? "degraded" : "action";
    enqueue(e, event_text(name, data));
}

/* What a client that read too slowly missed: told before the next event it gets. */
static char *dropped_text(unsigned long dropped)
{
    cJSON *data = cJSON_CreateObject();
    if (!data) return NULL;
    cJSON_AddNumberToObject(data, "dropped", (double)dropped);
    cJSON_AddStringToObject(data, "reason", "this client read too slowly: the server keeps the newest 64 events "
                            "for it and dropped older ones; GET /api/memory gives the state now");
    cJSON_AddNumberToObject(data, "time", wall_seconds());
    return event_text("dropped", data);
}

static ssize_t events_read(void *cls, uint64_t position, char *buffer, size_t max)
{
    (void)position;
    struct event_stream *e = cls;
    for (;;) {
        if (e->pending_offset < e->pending_length) {
            size_t n = e->pending_length - e->pending_offset;
            if (n > max) n = max;
            memcpy(buffer, e->pending + e->pending_offset, n);
            e->pending_offset += n;
            return (ssize_t)n;
        }
        free(e->pending);
        e->pending = NULL;
        e->pending_length = e->pending_offset = 0;
        pthread_mutex_lock(&e->lock);
        if (e->count == 0) {
            struct timespec deadline;
            clock_gettime(CLOCK_REALTIME, &deadline);
            deadline.tv_sec += 1;
            pthread_cond_timedwait(&e->arrived, &e->lock, &deadline);
        }
        unsigned long dropped = 0;
        if (e->dropped > 0 && e->count > 0) {   /* told first, before the events that survived */
            dropped = e->dropped;
            e->dropped = 0;
        } else if (e->count > 0) {
            e->pending = e->queue[e->head];
            e->head = (e->head + 1) % EVENT_QUEUE;
            e->count--;
        }
        pthread_mutex_unlock(&e->lock);
        if (dropped > 0) e->pending = dropped_text(dropped);
        if (e->pending) {
            e->pending_length = strlen(e->pending);
            continue;
        }
        if (client_gone(e->fd)) return MHD_CONTENT_READER_END_WITH_ERROR;
        e->pending = strdup(": keep-alive\n\n");
        if (e->pending) e->pending_length = strlen(e->pending);
    }
}

static void events_free(void *cls)
{
    struct event_stream *e = cls;
    if (e->subscription >= 0) hr_unsubscribe(e->srv->ctx, e->subscription);   /* after this, on_event never runs for e */
    for (int i = 0; i < e->count; i++) free(e->queue[(e->head + i) % EVENT_QUEUE]);
    free(e->pending);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->arrived);
    free(e);
}

static enum MHD_Result events(request *r)
{
    struct event_stream *e = calloc(1, sizeof *e);
    if (!e) return reply_error(r, 500, NULL, "out of memory");
    e->srv = r->srv;
    e->fd = connection_fd(r->connection);
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->arrived, NULL);
    /* Subscribed first, then the state now put first in the queue: a change published in
     * between follows it (the state was read after that change, so the client ends at the same
     * level), and nothing is lost. The first event reaches the client only after the
     * subscription, so a client that has read it sees every event published afterwards. */
    if (hr_subscribe(r->srv->ctx, on_event, e, &e->subscription) != HR_OK) {
        e->subscription = -1;
        enum MHD_Result result = reply_library_error(r, HR_EBUSY);
        events_free(e);
        return result;
    }
    hr_pressure p;
    char *now = hr_pressure_check(r->srv->ctx, &p) == HR_OK ? event_text("pressure", pressure_json(&p)) : NULL;
    if (now) {   /* ahead of anything the subscription queued meanwhile */
        pthread_mutex_lock(&e->lock);
        if (e->count == EVENT_QUEUE) {
            free(now);
        } else {
            e->head = (e->head + EVENT_QUEUE - 1) % EVENT_QUEUE;
            e->queue[e->head] = now;
            e->count++;
        }
        pthread_mutex_unlock(&e->lock);
    }
    struct MHD_Response *response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, events_read, e, events_free);
    if (!response) {
        events_free(e);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(response, "X-Accel-Buffering", "no");
    enum MHD_Result result = MHD_queue_response(r->connection, 200, response);
    MHD_destroy_response(response);
    return result;
}

/* ---- load and unload -------------------------------------------------------------------------- */

static enum MHD_Result load_or_unload(request *r, bool load)
{
    if (!r->json) return reply_error(r, 400, NULL, "a JSON body with 'model' is required");
    field_check c = { .r = r };
    const char *name = NULL;
    field_string(&c, r->json, "model", true, &name);
    double keep_alive = NAN;
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(r->json, "keep_alive");
    if (!c.failed && value && !cJSON_IsNull(value) && !parse_duration(value, &keep_alive))
        return reply_error(r, 400, "keep_alive", "'keep_alive' must be a duration such as \"5m\", 0 or -1 (never), at most 100 years");
    if (c.failed) return c.reply;
    server_model *entry = server_find_model(r->srv, name);
    if (!entry) return reply_error(r, 404, "model", "model '%s' not found; GET /api/tags lists the models", name);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "model", entry->name);
    if (load) {
        enum MHD_Result reply = MHD_NO;
        hr_model *model = server_use_model(r, entry, &reply);
        if (!model) {
            cJSON_Delete(body);
            return reply;
        }
        server_release_model(r->srv, model, keep_alive);
        cJSON_AddStringToObject(body, "status", "loaded");
    } else {
        int rc = hr_registry_unload(r->srv->ctx, entry->name, false);
        if (rc == HR_EBUSY) {
            cJSON_Delete(body);
            return reply_error(r, 409, "model", "model '%s' is generating; cancel its requests or try again", name);
        }
        if (rc != HR_OK) {   /* never "unloaded" for an unload that did not happen */
            cJSON_Delete(body);
            return reply_library_error(r, rc == HR_ENOENT ? HR_EIO : rc);
        }
        cJSON_AddStringToObject(body, "status", "unloaded");
    }
    return reply_json(r, 200, body);
}

bool api_admin(request *r, enum MHD_Result *reply)
{
    /* HEAD is GET without the body (libmicrohttpd drops it): probes may use either */
    bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    bool post = strcmp(r->method, "POST") == 0;
    static const char *const get_paths[] = { "/health", "/ready", "/metrics", "/api/memory", "/api/generations",
                                             "/api/active", "/api/events", "/", "/dashboard",
                                             "/api/memory/history" };
    if (strcmp(r->path, "/health") == 0 && get) *reply = reply_text(r, 200, "application/json", "{\"status\":\"ok\"}");
    else if ((strcmp(r->path, "/") == 0 || strcmp(r->path, "/dashboard") == 0) && get)
        *reply = reply_text(r, 200, "text/html; charset=utf-8", (const char *)dashboard_page);
    else if (strcmp(r->path, "/ready") == 0 && get) *reply = ready(r);
    else if (strcmp(r->path, "/metrics") == 0 && get) *reply = prometheus(r);
    else if (strcmp(r->path, "/api/memory") == 0 && get) *reply = memory(r);
    else if (strcmp(r->path, "/api/memory/history") == 0 && get) *reply = memory_history(r);
    else if (strcmp(r->path, "/api/generations") == 0 && get) *reply = generations(r);
    else if (strcmp(r->path, "/api/active") == 0 && get) *reply = active(r);
    else if (strcmp(r->path, "/api/events") == 0 && get) *reply = events(r);
    else if (strcmp(r->path, "/api/load") == 0 && post) *reply = load_or_unload(r, true);
    else if (strcmp(r->path, "/api/unload") == 0 && post) *reply = load_or_unload(r, false);
    else if (strcmp(r->path, "/api/load") == 0 || strcmp(r->path, "/api/unload") == 0)
        *reply = reply_method_not_allowed(r, "POST");
    else {
        for (size_t i = 0; i < sizeof get_paths / sizeof get_paths[0]; i++)
            if (strcmp(r->path, get_paths[i]) == 0) {
                *reply = reply_method_not_allowed(r, "GET, HEAD");
                return true;
            }
        return false;
    }
    return true;
}
