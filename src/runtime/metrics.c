/*
 * metrics.c: the ring of the last N generations (hr_context_params.metrics_capacity), filled
 * when each generation ends and exported as structs or JSON. Kept in memory, sent nowhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "probe/probe.h"
#include "runtime/model.h"
#include "runtime/monitor.h"

void hr_metrics_record(hr_model *model, const char *client, double started_at_wall,
                       const hr_generation_stats *stats, int result)
{
    hr_context *ctx = model->ctx;
    if (ctx->params.metrics_capacity <= 0) return;
    hr_generation_record record;
    memset(&record, 0, sizeof record);
    record.started_at = started_at_wall;
    snprintf(record.model, sizeof record.model, "%s", model->name);
    snprintf(record.client, sizeof record.client, "%s", client ? client : "");
    record.prompt_tokens = stats->prompt_tokens;
    record.generated_tokens = stats->generated_tokens;
    record.time_to_first_token = stats->time_to_first_token;
    record.total_seconds = stats->total_seconds;
    record.tokens_per_second = stats->tokens_per_second;
    hr_process_memory self;
    if (hr_self_read(NULL, &self) == HR_OK) record.peak_rss_bytes = self.peak_rss;
    enum hr_pressure_level level = HR_PRESSURE_NORMAL;
    if (ctx->monitor && hr_monitor_level(ctx->monitor, &level)) {
        record.pressure_known = true;
        record.pressure_level = (enum hr_pressure_level)level;
    }
    record.cancelled = result == HR_ECANCELLED;
    record.result = result;
    snprintf(record.served_by, sizeof record.served_by, "%s", model->remote ? "fallback" : "local");

    pthread_mutex_lock(&ctx->metrics_lock);
    int capacity = ctx->params.metrics_capacity;
    if (ctx->metrics_count < capacity) {
        ctx->metrics[(ctx->metrics_head + ctx->metrics_count) % capacity] = record;
        ctx->metrics_count++;
    } else {
        ctx->metrics[ctx->metrics_head] = record;   /* overwrite the oldest */
        ctx->metrics_head = (ctx->metrics_head + 1) % capacity;
    }
    pthread_mutex_unlock(&ctx->metrics_lock);
}

HR_API int hr_metrics_records(hr_context *ctx, hr_generation_record *records, int capacity)
{
    if (!ctx || !records || capacity <= 0) return 0;
    pthread_mutex_lock(&ctx->metrics_lock);
    int n = ctx->metrics_count < capacity ? ctx->metrics_count : capacity;
    int skip = ctx->metrics_count - n;   /* keep the newest when the caller has less room */
    for (int i = 0; i < n; i++)
        records[i] = ctx->metrics[(ctx->metrics_head + skip + i) % ctx->params.metrics_capacity];
    pthread_mutex_unlock(&ctx->metrics_lock);
    return n;
}

HR_API char *hr_metrics_json(hr_context *ctx)
{
    if (!ctx) return NULL;
    int capacity = ctx->params.metrics_capacity > 0 ? ctx->params.metrics_capacity : 1;
    hr_generation_record *records = malloc(sizeof *records * (size_t)capacity);
    if (!records) return NULL;
    int n = hr_metrics_records(ctx, records, capacity);
    cJSON *array = cJSON_CreateArray();
    for (int i = 0; array && i < n; i++) {
        const hr_generation_record *r = &records[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddNumberToObject(o, "started_at", r->started_at);
        cJSON_AddStringToObject(o, "model", r->model);
        cJSON_AddStringToObject(o, "client", r->client);
        cJSON_AddNumberToObject(o, "prompt_tokens", r->prompt_tokens);
        cJSON_AddNumberToObject(o, "generated_tokens", r->generated_tokens);
        cJSON_AddNumberToObject(o, "time_to_first_token", r->time_to_first_token);
        cJSON_AddNumberToObject(o, "total_seconds", r->total_seconds);
        cJSON_AddNumberToObject(o, "tokens_per_second", r->tokens_per_second);
        cJSON_AddNumberToObject(o, "peak_rss_bytes", (double)r->peak_rss_bytes);
        if (r->pressure_known) cJSON_AddStringToObject(o, "pressure_level", hr_pressure_level_name(r->pressure_level));
        else cJSON_AddNullToObject(o, "pressure_level");
        cJSON_AddBoolToObject(o, "cancelled", r->cancelled);
        cJSON_AddStringToObject(o, "result", hr_strerror(r->result));
        cJSON_AddStringToObject(o, "served_by", r->served_by);
        cJSON_AddItemToArray(array, o);
    }
    free(records);
    char *text = array ? cJSON_PrintUnformatted(array) : NULL;
    cJSON_Delete(array);
    return text;
}

HR_API void hr_free(void *pointer)
{
    /* cJSON allocates with malloc by default, as the rest of the library does */
    free(pointer);
}
