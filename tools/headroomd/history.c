/*
 * history.c: the last minutes of memory, for the dashboard's charts and `headroom top`
 * (GET /api/memory/history): one sample a second taken on the main thread's housekeeping loop,
 * plus the recent events (pressure changes, loads, unloads, actions) from the library's event bus,
 * so a page opened now shows what happened before it. Fixed-size rings: nothing here grows.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

enum { HISTORY_SAMPLES = 600, HISTORY_EVENTS = 64 };

struct sample {
    double time;                          /* wall clock, seconds since the Unix epoch */
    uint64_t effective_available, effective_total, host_available, host_total;
    uint64_t rss, peak_rss, swap_used;
    double page_ins_per_second, page_outs_per_second, major_faults_per_second;
    double tokens_per_second;             /* summed over the generations running */
    int level;                            /* -1: no reading */
    int running, waiting;                 /* generations producing tokens; queued or reading their prompt */
    uint64_t model_bytes[MAX_MODELS];     /* per catalogue entry: the RSS its load added (0: unloaded) */
};

struct recorded_event {
    unsigned long id;                     /* 1, 2, ...: a client asks for those after the last it has */
    double time;
    char type[16];                        /* the SSE name: "pressure", "model", "action" */
    char level[16], previous[16], model[128], action[32];
    char reason[512];
    int64_t bytes_freed;
};

struct history {
    server *srv;
    int subscription;
    double warn_free_percent, critical_free_percent;
    pthread_mutex_t lock;                 /* guards everything below; held only to copy */
    struct sample samples[HISTORY_SAMPLES];
    int sample_head, sample_count;
    struct recorded_event events[HISTORY_EVENTS];
    int event_head, event_count;
    unsigned long last_event_id;
    /* the previous tick's counters, for rates (main thread only) */
    double last_tick;
    uint64_t last_major_faults;
};

static void record_event(const hr_event *event, void *user_data)
{
    struct history *h = user_data;
    struct recorded_event e = { .bytes_freed = event->bytes_freed };
    snprintf(e.type, sizeof e.type, "%s",
             event->type == HR_EVENT_PRESSURE ? "pressure" : event->type == HR_EVENT_MODEL ? "model" : "action");
    snprintf(e.level, sizeof e.level, "%s", hr_pressure_level_name(event->level));
    if (event->type == HR_EVENT_PRESSURE)
        snprintf(e.previous, sizeof e.previous, "%s", hr_pressure_level_name(event->previous_level));
    snprintf(e.model, sizeof e.model, "%s", event->model ? event->model : "");
    snprintf(e.action, sizeof e.action, "%s", event->action ? event->action : "");
    snprintf(e.reason, sizeof e.reason, "%s", event->reason ? event->reason : "");
    pthread_mutex_lock(&h->lock);
    e.id = ++h->last_event_id;
    e.time = wall_seconds();
    h->events[(h->event_head + h->event_count) % HISTORY_EVENTS] = e;
    if (h->event_count < HISTORY_EVENTS) h->event_count++;
    else h->event_head = (h->event_head + 1) % HISTORY_EVENTS;
    pthread_mutex_unlock(&h->lock);
}

bool history_start(server *srv, const hr_pressure_thresholds *thresholds)
{
    struct history *h = calloc(1, sizeof *h);
    if (!h) return false;
    h->srv = srv;
    h->warn_free_percent = thresholds->warn_free_percent;
    h->critical_free_percent = thresholds->critical_free_percent;
    pthread_mutex_init(&h->lock, NULL);
    if (hr_subscribe(srv->ctx, record_event, h, &h->subscription) != HR_OK) {
        pthread_mutex_destroy(&h->lock);
        free(h);
        return false;
    }
    srv->history = h;
    history_tick(srv);
    return true;
}

void history_stop(server *srv)
{
    struct history *h = srv->history;
    if (!h) return;
    hr_unsubscribe(srv->ctx, h->subscription);   /* after this record_event never runs for h */
    srv->history = NULL;
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void history_tick(server *srv)
{
    struct history *h = srv->history;
    if (!h) return;
    double now = wall_seconds();
    if (h->last_tick > 0 && now - h->last_tick < 0.95) return;
    double elapsed = h->last_tick > 0 ? now - h->last_tick : 0;
    struct sample s = { .time = now, .level = -1 };
    hr_memory_status m;
    if (hr_memory_sample(srv->ctx, &m) == HR_OK) {
        s.effective_available = m.effective_available_bytes;
        s.effective_total = m.effective_total_bytes;
        s.host_available = m.host_available_bytes;
        s.host_total = m.host_total_bytes;
        s.rss = m.process_rss_bytes;
        s.peak_rss = m.process_peak_rss_bytes;
        s.swap_used = m.swap_used_bytes;
        if (elapsed > 0 && m.process_major_faults >= h->last_major_faults)
            s.major_faults_per_second = (double)(m.process_major_faults - h->last_major_faults) / elapsed;
        h->last_major_faults = m.process_major_faults;
    }
    hr_pressure p;
    if (hr_pressure_check(srv->ctx, &p) == HR_OK) {
        s.level = (int)p.level;
        s.page_ins_per_second = p.page_ins_per_second;
        s.page_outs_per_second = p.page_outs_per_second;
    }
    server_sessions_tick(srv, now, &s.tokens_per_second, &s.running, &s.waiting);
    hr_registry_entry *list = NULL;
    size_t n = 0;
    if (hr_registry_list(srv->ctx, &list, &n) == HR_OK) {
        for (size_t i = 0; i < n; i++) {
            server_model *entry = server_find_model(srv, list[i].name);
            if (entry) s.model_bytes[entry - srv->models] = list[i].rss_bytes;
        }
        hr_free(list);
    }
    h->last_tick = now;
    pthread_mutex_lock(&h->lock);
    h->samples[(h->sample_head + h->sample_count) % HISTORY_SAMPLES] = s;
    if (h->sample_count < HISTORY_SAMPLES) h->sample_count++;
    else h->sample_head = (h->sample_head + 1) % HISTORY_SAMPLES;
    pthread_mutex_unlock(&h->lock);
}

static cJSON *sample_json(const server *srv, const struct sample *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "time", s->time);
    cJSON_AddNumberToObject(o, "effective_available_bytes", (double)s->effective_available);
    cJSON_AddNumberToObject(o, "effective_total_bytes", (double)s->effective_total);
    cJSON_AddNumberToObject(o, "host_available_bytes", (double)s->host_available);
    cJSON_AddNumberToObject(o, "host_total_bytes", (double)s->host_total);
    cJSON_AddNumberToObject(o, "process_rss_bytes", (double)s->rss);
    cJSON_AddNumberToObject(o, "process_peak_rss_bytes", (double)s->peak_rss);
    cJSON_AddNumberToObject(o, "swap_used_bytes", (double)s->swap_used);
    cJSON_AddNumberToObject(o, "page_ins_per_second", s->page_ins_per_second);
    cJSON_AddNumberToObject(o, "page_outs_per_second", s->page_outs_per_second);
    cJSON_AddNumberToObject(o, "major_faults_per_second", s->major_faults_per_second);
    cJSON_AddNumberToObject(o, "tokens_per_second", s->tokens_per_second);
    cJSON_AddNumberToObject(o, "generations_running", s->running);
    cJSON_AddNumberToObject(o, "generations_waiting", s->waiting);
    if (s->level >= 0) cJSON_AddStringToObject(o, "level", hr_pressure_level_name((enum hr_pressure_level)s->level));
    else cJSON_AddNullToObject(o, "level");
    cJSON *models = cJSON_AddObjectToObject(o, "models");
    for (int i = 0; i < srv->n_models; i++)
        if (s->model_bytes[i]) cJSON_AddNumberToObject(models, srv->models[i].name, (double)s->model_bytes[i]);
    return o;
}

static cJSON *event_json(const struct recorded_event *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)e->id);
    cJSON_AddStringToObject(o, "type", e->type);
    cJSON_AddNumberToObject(o, "time", e->time);
    cJSON_AddStringToObject(o, "level", e->level);
    if (e->previous[0]) cJSON_AddStringToObject(o, "previous", e->previous);
    if (e->model[0]) cJSON_AddStringToObject(o, "model", e->model);
    if (e->action[0]) cJSON_AddStringToObject(o, "action", e->action);
    if (strcmp(e->type, "pressure") != 0) cJSON_AddNumberToObject(o, "bytes_freed", (double)e->bytes_freed);
    cJSON_AddStringToObject(o, "reason", e->reason);
    return o;
}

cJSON *history_json(server *srv, double since, unsigned long after)
{
    struct history *h = srv->history;
    cJSON *body = cJSON_CreateObject();
    cJSON_AddNumberToObject(body, "interval_seconds", 1);
    cJSON_AddNumberToObject(body, "capacity", HISTORY_SAMPLES);
    cJSON_AddNumberToObject(body, "warn_free_percent", h ? h->warn_free_percent : 0);
    cJSON_AddNumberToObject(body, "critical_free_percent", h ? h->critical_free_percent : 0);
    cJSON *samples = cJSON_AddArrayToObject(body, "samples");
    cJSON *events = cJSON_AddArrayToObject(body, "events");
    if (!h) return body;
    /* copied under the lock, formatted without it: a slow client never holds up the tick */
    struct sample *copy = malloc(sizeof *copy * HISTORY_SAMPLES);
    struct recorded_event *recent = malloc(sizeof *recent * HISTORY_EVENTS);
    int n_samples = 0, n_events = 0;
    pthread_mutex_lock(&h->lock);
    for (int i = 0; copy && i < h->sample_count; i++) {
        const struct sample *s = &h->samples[(h->sample_head + i) % HISTORY_SAMPLES];
        if (s->time > since) copy[n_samples++] = *s;
    }
    for (int i = 0; recent && i < h->event_count; i++) {
        const struct recorded_event *e = &h->events[(h->event_head + i) % HISTORY_EVENTS];
        if (e->id > after) recent[n_events++] = *e;
    }
    pthread_mutex_unlock(&h->lock);
    for (int i = 0; i < n_samples; i++) cJSON_AddItemToArray(samples, sample_json(srv, &copy[i]));
    for (int i = 0; i < n_events; i++) cJSON_AddItemToArray(events, event_json(&recent[i]));
    free(copy);
    free(recent);
    return body;
}
