/*
 * pressure.c: the public memory and pressure calls: hr_memory_sample (the watermark, sampled
 * now), hr_pressure_check (the monitor's latest reading, or a reading taken now without one),
 * and the event subscriptions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "runtime/context.h"
#include "core/error.h"
#include "probe/probe.h"
#include "runtime/monitor.h"

HR_API int hr_memory_sample(hr_context *ctx, hr_memory_status *out)
{
    hr_clear_error();
    if (!ctx || !out) return hr_fail(HR_EINVAL, "hr_memory_sample: context and out are required");
    hr_sample sample;
    int rc = hr_probe_sample(NULL, hr_now_seconds(), &sample);
    if (rc != HR_OK && rc != HR_EFORMAT && rc != HR_EIO) return rc;
    hr_clear_error();   /* a broken optional source leaves the rest of the sample usable */

    hr_effective_memory effective;
    hr_effective_memory_compute(&sample, &effective);
    memset(out, 0, sizeof *out);
    out->timestamp = sample.timestamp;
    if (sample.host.present) {
        out->host_total_bytes = sample.host.total;
        out->host_available_bytes = sample.host.available;
        out->swap_total_bytes = sample.host.swap_total;
        out->swap_used_bytes = sample.host.swap_total > sample.host.swap_free
                                   ? sample.host.swap_total - sample.host.swap_free : 0;
    } else if (sample.darwin.present) {
        out->host_total_bytes = sample.darwin.memsize;
        out->host_available_bytes = (sample.darwin.free_pages + sample.darwin.inactive_pages) * sample.darwin.page_size;
    }
    if (effective.known) {
        out->effective_total_bytes = effective.binding.total;
        out->effective_available_bytes = effective.binding.available;
        snprintf(out->binding_scope, sizeof out->binding_scope, "%s", effective.binding.name);
    } else {
        snprintf(out->binding_scope, sizeof out->binding_scope, "unknown");
    }
    if (sample.self.present) {
        out->process_rss_bytes = sample.self.rss;
        out->process_peak_rss_bytes = sample.self.peak_rss;
        out->process_file_rss_bytes = sample.self.rss_file;
        out->process_major_faults = sample.self.major_faults;
    }
    out->gpu_telemetry = sample.gpu_telemetry;
    out->n_gpus = sample.n_gpus < 8 ? sample.n_gpus : 8;
    for (int i = 0; i < out->n_gpus; i++) {
        snprintf(out->gpus[i].name, sizeof out->gpus[i].name, "%s", sample.gpus[i].name);
        out->gpus[i].total_bytes = sample.gpus[i].total;
        out->gpus[i].used_bytes = sample.gpus[i].used;
        out->gpus[i].free_bytes = sample.gpus[i].free;
    }
    return HR_OK;
}

/* Without a monitor: compare a sample taken now with the previous call's. Rates need an
 * interval, so a first call (or one after a long pause) takes two samples 0.2 s apart. The
 * samples and the pause happen with no lock held: a caller that needs its own first interval
 * never holds up another that already has one. */
static int check_without_monitor(hr_context *ctx, hr_pressure *out)
{
    hr_sample *now = malloc(sizeof *now), *base = malloc(sizeof *base);
    if (!now || !base) {
        free(now);
        free(base);
        return hr_fail(HR_ENOMEM, "out of memory sampling memory");
    }
    pthread_mutex_lock(&ctx->check_lock);
    bool need_base = !ctx->have_last_sample || hr_now_seconds() - ctx->last_sample.timestamp > 10.0;
    pthread_mutex_unlock(&ctx->check_lock);
    if (need_base) {
        hr_probe_sample(NULL, hr_now_seconds(), base);
        usleep(200000);
    }
    hr_probe_sample(NULL, hr_now_seconds(), now);
    hr_clear_error();

    pthread_mutex_lock(&ctx->check_lock);
    /* another caller may have recorded a fresher sample meanwhile: the shorter interval wins */
    if (!ctx->have_last_sample || (need_base && ctx->last_sample.timestamp < base->timestamp)) {
        ctx->last_sample = *base;
        ctx->have_last_sample = true;
    }
    hr_pressure_thresholds thresholds = ctx->params.thresholds;
    hr_pressure_signals signals;
    hr_classification classification;
    hr_pressure_signals_compute(&ctx->last_sample, now, &signals);
    hr_classify(&signals, &thresholds, &ctx->check_state, now->timestamp, &classification);
    ctx->last_sample = *now;
    pthread_mutex_unlock(&ctx->check_lock);
    hr_pressure_fill(now, &signals, &classification,
                     "no monitor: sampled on each hr_pressure_check call", out);
    free(now);
    free(base);
    return HR_OK;
}

HR_API int hr_pressure_check(hr_context *ctx, hr_pressure *out)
{
    hr_clear_error();
    if (!ctx || !out) return hr_fail(HR_EINVAL, "hr_pressure_check: context and out are required");
    if (ctx->monitor) return hr_monitor_pressure(ctx->monitor, 1.0, out);
    return check_without_monitor(ctx, out);
}

HR_API char *hr_pressure_json(const hr_pressure *p)
{
    if (!p) return NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "level", hr_pressure_level_name(p->level));
    cJSON_AddStringToObject(o, "reason", p->reason);
    cJSON_AddNumberToObject(o, "free_percent", p->free_percent);
    cJSON_AddNumberToObject(o, "effective_available_bytes", (double)p->effective_available_bytes);
    cJSON_AddNumberToObject(o, "effective_total_bytes", (double)p->effective_total_bytes);
    cJSON_AddStringToObject(o, "binding_scope", p->binding_scope);
    cJSON_AddNumberToObject(o, "swap_used", (double)p->swap_used_bytes);
    cJSON_AddNumberToObject(o, "page_ins", (double)p->page_ins);
    cJSON_AddNumberToObject(o, "page_outs", (double)p->page_outs);
    cJSON_AddNumberToObject(o, "page_ins_per_second", p->page_ins_per_second);
    cJSON_AddNumberToObject(o, "page_outs_per_second", p->page_outs_per_second);
    cJSON_AddNumberToObject(o, "stall_some_percent", p->stall_some_percent);
    cJSON_AddNumberToObject(o, "stall_full_percent", p->stall_full_percent);
    cJSON_AddNumberToObject(o, "stall_some_avg10", p->stall_some_avg10);
    cJSON_AddStringToObject(o, "detection", p->detection);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

HR_API char *hr_memory_status_json(const hr_memory_status *m)
{
    if (!m) return NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "host_total_bytes", (double)m->host_total_bytes);
    cJSON_AddNumberToObject(o, "host_available_bytes", (double)m->host_available_bytes);
    cJSON_AddNumberToObject(o, "swap_total_bytes", (double)m->swap_total_bytes);
    cJSON_AddNumberToObject(o, "swap_used_bytes", (double)m->swap_used_bytes);
    cJSON_AddNumberToObject(o, "effective_total_bytes", (double)m->effective_total_bytes);
    cJSON_AddNumberToObject(o, "effective_available_bytes", (double)m->effective_available_bytes);
    cJSON_AddStringToObject(o, "binding_scope", m->binding_scope);
    cJSON_AddNumberToObject(o, "process_rss_bytes", (double)m->process_rss_bytes);
    cJSON_AddNumberToObject(o, "process_peak_rss_bytes", (double)m->process_peak_rss_bytes);
    cJSON_AddNumberToObject(o, "process_file_rss_bytes", (double)m->process_file_rss_bytes);
    cJSON_AddNumberToObject(o, "process_major_faults", (double)m->process_major_faults);
    cJSON_AddBoolToObject(o, "gpu_telemetry", m->gpu_telemetry);
    cJSON *gpus = cJSON_AddArrayToObject(o, "gpus");
    for (int i = 0; i < m->n_gpus && i < 8; i++) {
        cJSON *gpu = cJSON_CreateObject();
        cJSON_AddStringToObject(gpu, "name", m->gpus[i].name);
        cJSON_AddNumberToObject(gpu, "total_bytes", (double)m->gpus[i].total_bytes);
        cJSON_AddNumberToObject(gpu, "used_bytes", (double)m->gpus[i].used_bytes);
        cJSON_AddNumberToObject(gpu, "free_bytes", (double)m->gpus[i].free_bytes);
        cJSON_AddItemToArray(gpus, gpu);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

HR_API int hr_subscribe(hr_context *ctx, hr_event_fn fn, void *user_data, int *id_out)
{
    hr_clear_error();
    if (!ctx) return hr_fail(HR_EINVAL, "hr_subscribe: context is required");
    return hr_events_subscribe(&ctx->events, fn, user_data, id_out);
}

HR_API void hr_unsubscribe(hr_context *ctx, int id)
{
    if (ctx) hr_events_unsubscribe(&ctx->events, id);
}
