/*
 * session.c: sessions (the caller's side) and the model's hr-worker thread. An engine that
 * decodes batches gets the batched worker (batch.c: several sessions per step); any other (the
 * remote engine) gets the sequential worker here: it takes sessions in order, runs the
 * generation loop, and pushes pieces into each session's bounded ring; when the ring is full it
 * waits, so a slow reader pauses decoding and nothing grows. Cancelling stops the decode within
 * one step (the session's flag and the model's epoch, seen by the engine's abort callback).
 * Over 600 lines on purpose: a session's start, copy of its parameters, ring and end are one
 * object's life, shared by both workers.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/log.h"
#include "platform/platform.h"
#include "runtime/model.h"
#include "runtime/registry.h"
#include "runtime/session.h"

enum { MAX_QUEUE_CAPACITY = 1 << 16 };

/* Recent generations of a model averaged for the Retry-After estimate. */
enum { RETRY_HISTORY = 8 };

HR_API hr_session_params hr_session_default_params(void)
{
    hr_session_params params = {
        .generate = hr_generate_default_params(),
        .queue_capacity = 64,
        .client = NULL,
    };
    return params;
}

void hr_session_release(hr_session *s)
{
    pthread_mutex_lock(&s->lock);
    bool last = --s->references == 0;
    pthread_mutex_unlock(&s->lock);
    if (!last) return;
    for (int i = 0; i < s->count; i++) free(s->ring[(s->head + i) % (s->capacity + SESSION_RING_SPARE)].text);
    free(s->ring);
    free(s->prompt);
    free(s->stops);
    free(s->logit_bias);
    free(s->extras);
    free(s->records);
    free(s->run.tokens);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->readable);
    pthread_cond_destroy(&s->writable);
    free(s);
}


/* ---- the worker ----------------------------------------------------------------------------- */

/* The logprob callback of a session's generation: keeps the record for hr_session_logprobs. */
void hr_session_keep_logprobs(const hr_token_logprobs *record, void *user_data)
{
    hr_session *s = user_data;
    pthread_mutex_lock(&s->lock);
    if (s->record_count == s->record_capacity) {
        size_t capacity = s->record_capacity ? s->record_capacity * 2 : 64;
        hr_token_logprobs *bigger = realloc(s->records, sizeof *bigger * capacity);
        if (bigger) {
            s->records = bigger;
            s->record_capacity = capacity;
        }
    }
    if (s->record_count < s->record_capacity) s->records[s->record_count++] = *record;
    pthread_mutex_unlock(&s->lock);
}

/* The piece callback of a session's generation: waits for room, or stops when cancelled. */
static int push_piece(const char *text, size_t length, void *user_data)
{
    hr_session *s = user_data;
    char *copy = malloc(length + 1);
    if (!copy) return 1;
    memcpy(copy, text, length);
    copy[length] = '\0';
    pthread_mutex_lock(&s->lock);
    double waiting_since = 0;
    while (s->count == s->capacity && !s->cancelled && !s->stopped_because[0]) {
        /* hr_model_free raises the model's cancel flag and joins this thread, so the wait wakes
         * every 0.25 s to look at it: a reader that stopped reading must not hold up an unload. */
        if (hr_model_step_cancelled(s->model)) break;
        hr_cond_wait_until(&s->writable, &s->lock, hr_now_seconds() + 0.25);
        if (s->count < s->capacity || s->cancelled || s->stopped_because[0]) break;
        /* A reader that takes nothing holds the model; after reader_timeout it gives way, but
         * only to sessions that are waiting: alone on the model it may pause as long as it likes. */
        if (s->reader_timeout <= 0) continue;
        double now = hr_now_seconds();
        if (waiting_since == 0) waiting_since = now;
        if (now - waiting_since < s->reader_timeout) continue;
        pthread_mutex_unlock(&s->lock);
        pthread_mutex_lock(&s->model->queue_lock);
        bool others_wait = s->model->queue_head != NULL;
        pthread_mutex_unlock(&s->model->queue_lock);
        pthread_mutex_lock(&s->lock);
        if (others_wait) {
            s->timed_out = true;
            break;
        }
    }
    if (s->cancelled || s->timed_out || s->stopped_because[0] || s->count == s->capacity) {   /* the last: the model's cancel flag */
        pthread_mutex_unlock(&s->lock);
        free(copy);
        return 1;
    }
    s->ring[(s->head + s->count) % (s->capacity + SESSION_RING_SPARE)] = (struct piece){ copy, length, 0, s->record_count };
    s->count++;
    s->pieces_pushed++;
    pthread_cond_signal(&s->readable);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void hr_session_finish(hr_session *s, int result, const char *sentence)
{
    pthread_mutex_lock(&s->lock);
    s->running = false;
    s->finished = true;
    s->result = result;
    snprintf(s->error, sizeof s->error, "%s", sentence);
    pthread_cond_broadcast(&s->readable);
    pthread_mutex_unlock(&s->lock);
}

static void run_session(hr_model *model, hr_session *s)
{
    char because[sizeof s->stopped_because];
    pthread_mutex_lock(&s->lock);
    bool cancelled = s->cancelled;
    snprintf(because, sizeof because, "%s", s->stopped_because);
    if (!cancelled && !because[0]) s->running = true;
    pthread_mutex_unlock(&s->lock);
    if (cancelled || because[0]) {
        hr_session_finish(s, HR_ECANCELLED, because[0] ? because : "the generation was cancelled before it started");
        return;
    }
    hr_generation_stats stats;
    atomic_store(&model->step_cancel, &s->cancel);
    int rc = hr_generate_for(model, s->prompt, &s->params, push_piece, s, &stats, s->client);
    atomic_store(&model->step_cancel, NULL);
    pthread_mutex_lock(&s->lock);
    s->stats = stats;
    bool timed_out = s->timed_out;
    snprintf(because, sizeof because, "%s", s->stopped_because);
    pthread_mutex_unlock(&s->lock);
    if (because[0] && rc != HR_OK)
        hr_session_finish(s, HR_ECANCELLED, because);
    else if (timed_out)
        hr_session_finish(s, HR_EBUSY, "the reader took nothing for the reader timeout while other requests waited; "
                             "the generation was stopped to let them run");
    else
        hr_session_finish(s, rc, rc == HR_OK ? "" : hr_last_error());
}

static void *worker_main(void *arg)
{
    hr_model *model = arg;
    hr_thread_set_name("hr-worker");
    if (model->engine->decode_batch && model->engine->sample_at) {
        hr_batch_worker_run(model);
        return NULL;
    }
    pthread_mutex_lock(&model->queue_lock);
    for (;;) {
        while (!model->queue_head && !model->stopping) pthread_cond_wait(&model->queue_changed, &model->queue_lock);
        hr_session *s = model->queue_head;
        if (!s) break;   /* stopping and nothing left */
        model->queue_head = s->next;
        if (!model->queue_head) model->queue_tail = NULL;
        bool stopping = model->stopping;
        model->current = s;
        pthread_mutex_unlock(&model->queue_lock);
        if (stopping) hr_session_finish(s, HR_ECANCELLED, "the model was unloaded before the generation started");
        else run_session(model, s);
        pthread_mutex_lock(&model->queue_lock);
        model->current = NULL;
        bool idle = !model->queue_head;
        pthread_mutex_unlock(&model->queue_lock);
        hr_session_release(s);
        /* the lifecycle may have planned while this session ran: its keep-alive starts now */
        if (idle) hr_registry_work_ended(model->ctx);
        pthread_mutex_lock(&model->queue_lock);
    }
    pthread_mutex_unlock(&model->queue_lock);
    return NULL;
}

void hr_model_stop_worker(hr_model *model)
{
    pthread_mutex_lock(&model->queue_lock);
    model->stopping = true;
    bool started = model->worker_started;
    pthread_cond_broadcast(&model->queue_changed);
    pthread_mutex_unlock(&model->queue_lock);
    if (!started) return;
    atomic_fetch_add(&model->cancel_epoch, 1);   /* the running step stops inside the engine */
    hr_model_wake(model);
    pthread_join(model->worker, NULL);
}

int hr_model_start_worker_locked(hr_model *model)
{
    if (model->worker_started || model->stopping) return HR_OK;
    int rc = pthread_create(&model->worker, NULL, worker_main, model);
    if (rc != 0) return hr_fail(HR_EIO, "cannot start the model's worker thread: %s", strerror(rc));
    model->worker_started = true;
    return HR_OK;
}

void hr_model_wake(hr_model *model)
{
    pthread_mutex_lock(&model->wake_lock);
    model->wake_pending = true;
    pthread_cond_broadcast(&model->wake);
    pthread_mutex_unlock(&model->wake_lock);
}

void hr_model_count_sessions(hr_model *model, int32_t *running, int32_t *queued)
{
    *running = model->running + (model->current ? 1 : 0);
    *queued = 0;
    for (hr_session *s = model->queue_head; s; s = s->next) {
        pthread_mutex_lock(&s->lock);   /* queue_lock, then a session's lock */
        bool cancelled = s->cancelled || s->stopped_because[0];
        pthread_mutex_unlock(&s->lock);
        if (!cancelled) (*queued)++;
    }
}

/* Seconds until a place on the model is expected to free: when the oldest running session ends,
 * judged by the mean duration of the model's last RETRY_HISTORY completed generations. */
static double retry_after(hr_model *model, double oldest_running_seconds)
{
    hr_context *ctx = model->ctx;
    double sum = 0;
    int n = 0;
    pthread_mutex_lock(&ctx->metrics_lock);
    int capacity = ctx->params.metrics_capacity;
    for (int i = ctx->metrics_count - 1; i >= 0 && n < RETRY_HISTORY; i--) {
        const hr_generation_record *r = &ctx->metrics[(ctx->metrics_head + i) % capacity];
        if (r->result != HR_OK || strcmp(r->model, model->name) != 0) continue;
        sum += r->total_seconds;
        n++;
    }
    pthread_mutex_unlock(&ctx->metrics_lock);
    double estimate = n > 0 ? sum / n - oldest_running_seconds : 1;
    return estimate > 1 ? estimate : 1;
}

/* How long the oldest running session has run; the caller holds queue_lock. */
static double oldest_running_seconds(hr_model *model)
{
    double started = 0;
    for (int32_t i = 0; i < model->n_slots; i++) {
        hr_session *s = model->slots[i].session;
        if (s && (started == 0 || s->run.started < started)) started = s->run.started;
    }
    return started > 0 ? hr_now_seconds() - started : 0;
}

HR_API int hr_model_admission(hr_model *model, hr_admission *out)
{
    hr_clear_error();
    if (!model || !out) return hr_fail(HR_EINVAL, "hr_model_admission: model and out are required");
    memset(out, 0, sizeof *out);
    out->slots = model->n_slots;
    out->max_queued = model->max_queued;
    pthread_mutex_lock(&model->queue_lock);
    hr_model_count_sessions(model, &out->running, &out->queued);
    double oldest = oldest_running_seconds(model);
    pthread_mutex_unlock(&model->queue_lock);
    out->retry_after = retry_after(model, oldest);
    return HR_OK;
}

bool hr_model_work(hr_model *model, int32_t *lowest_priority)
{
    bool working = atomic_load(&model->busy);
    int32_t lowest = INT32_MAX;
    pthread_mutex_lock(&model->queue_lock);
    if (model->current) {
        working = true;
        lowest = model->current->priority;
    }
    for (int32_t i = 0; i < model->n_slots; i++) {   /* the batched worker's */
        hr_session *s = model->slots[i].session;
        if (!s) continue;
        working = true;
        if (s->priority < lowest) lowest = s->priority;
    }
    for (hr_session *s = model->queue_head; s; s = s->next) {
        working = true;
        if (s->priority < lowest) lowest = s->priority;
    }
    pthread_mutex_unlock(&model->queue_lock);
    *lowest_priority = lowest == INT32_MAX ? 0 : lowest;
    return working;
}

static void stop_session(hr_session *s, const char *reason)
{
    pthread_mutex_lock(&s->lock);
    if (!s->stopped_because[0]) snprintf(s->stopped_because, sizeof s->stopped_because, "%s", reason);
    atomic_store(&s->cancel, true);
    pthread_cond_broadcast(&s->writable);   /* a worker waiting for room stops waiting */
    pthread_mutex_unlock(&s->lock);
}

void hr_model_cancel_work(hr_model *model, const char *reason)
{
    pthread_mutex_lock(&model->queue_lock);
    if (model->current) stop_session(model->current, reason);
    for (int32_t i = 0; i < model->n_slots; i++)
        if (model->slots[i].session) stop_session(model->slots[i].session, reason);
    for (hr_session *s = model->queue_head; s; s = s->next) stop_session(s, reason);
    pthread_mutex_unlock(&model->queue_lock);
    atomic_fetch_add(&model->cancel_epoch, 1);   /* the running step stops inside the engine */
    hr_model_wake(model);
}

int hr_session_push_nowait(hr_session *s, const char *text, size_t length)
{
    pthread_mutex_lock(&s->lock);
    if (s->cancelled || atomic_load(&s->cancel)) {
        pthread_mutex_unlock(&s->lock);
        return 1;
    }
    int size = s->capacity + SESSION_RING_SPARE;
    if (s->count == size) {
        /* never expected (the worker leaves a full session out of its steps): the text joins
         * the newest piece rather than be lost */
        struct piece *last = &s->ring[(s->head + s->count - 1) % size];
        char *joined = realloc(last->text, last->length + length + 1);
        if (!joined) {
            pthread_mutex_unlock(&s->lock);
            return 1;
        }
        memcpy(joined + last->length, text, length);
        last->length += length;
        joined[last->length] = '\0';
        last->text = joined;
        last->records = s->record_count;
    } else {
        char *copy = malloc(length + 1);
        if (!copy) {
            pthread_mutex_unlock(&s->lock);
            return 1;
        }
        memcpy(copy, text, length);
        copy[length] = '\0';
        s->ring[(s->head + s->count) % size] = (struct piece){ copy, length, 0, s->record_count };
        s->count++;
    }
    s->pieces_pushed++;
    pthread_cond_signal(&s->readable);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

bool hr_session_has_room(hr_session *s)
{
    pthread_mutex_lock(&s->lock);
    bool room = s->count < s->capacity;
    pthread_mutex_unlock(&s->lock);
    return room;
}

/* ---- the caller's side ---------------------------------------------------------------------- */

/* Copies params->stop into one block (*block) and points params->stop at the copies. */
static void copy_stops(hr_generate_params *params, char **block)
{
    size_t bytes = sizeof(char *) * params->stop_count;
    for (size_t i = 0; i < params->stop_count; i++) bytes += strlen(params->stop[i]) + 1;
    *block = malloc(bytes);
    if (!*block) return;
    char **pointers = (char **)*block;
    char *text = *block + sizeof(char *) * params->stop_count;
    for (size_t i = 0; i < params->stop_count; i++) {
        size_t length = strlen(params->stop[i]) + 1;
        memcpy(text, params->stop[i], length);
        pointers[i] = text;
        text += length;
    }
    params->stop = (const char *const *)pointers;
}

/* Copies params->messages (the array and each string) and params->grammar into one block (*block) and points params
 * at the copies; false when out of memory. */
static bool copy_extras(hr_generate_params *params, char **block)
{
    size_t bytes = sizeof(hr_chat_message) * params->message_count;
    for (size_t i = 0; i < params->message_count; i++)
        bytes += strlen(params->messages[i].role) + strlen(params->messages[i].content) + 2;
    if (params->grammar) bytes += strlen(params->grammar) + 1;
    if (bytes == 0) return true;
    *block = malloc(bytes);
    if (!*block) return false;
    hr_chat_message *messages = (hr_chat_message *)*block;
    char *text = *block + sizeof(hr_chat_message) * params->message_count;
    for (size_t i = 0; i < params->message_count; i++) {
        const char *parts[2] = { params->messages[i].role, params->messages[i].content };
        const char **copies[2] = { &messages[i].role, &messages[i].content };
        for (int k = 0; k < 2; k++) {
            size_t length = strlen(parts[k]) + 1;
            memcpy(text, parts[k], length);
            *copies[k] = text;
            text += length;
        }
    }
    if (params->message_count > 0) params->messages = messages;
    if (params->grammar) {
        memcpy(text, params->grammar, strlen(params->grammar) + 1);
        params->grammar = text;
    }
    return true;
}

HR_API int hr_session_start(hr_model *model, const char *prompt, const hr_session_params *params,
                            hr_session **out)
{
    hr_clear_error();
    if (!out) return hr_fail(HR_EINVAL, "hr_session_start: out is NULL");
    *out = NULL;
    hr_session_params p = params ? *params : hr_session_default_params();
    if (!model || (!prompt && p.generate.message_count == 0 && !p.generate.chat))
        return hr_fail(HR_EINVAL, "hr_session_start: model and a prompt (or messages) are required");
    if (p.generate.message_count > 0 && !p.generate.messages)
        return hr_fail(HR_EINVAL, "message_count is %zu but messages is NULL", p.generate.message_count);
    for (size_t i = 0; i < p.generate.message_count; i++)
        if (!p.generate.messages[i].role || !p.generate.messages[i].content)
            return hr_fail(HR_EINVAL, "message %zu has no role or no content", i);
    if (!(p.reader_timeout >= 0) || p.reader_timeout > 86400)
        return hr_fail(HR_EINVAL, "reader timeout %g s is out of range: use 0 (wait for ever) to 86400",
                       p.reader_timeout);
    if (p.queue_capacity <= 0 || p.queue_capacity > MAX_QUEUE_CAPACITY)
        return hr_fail(HR_EINVAL, "queue capacity %d is out of range: use 1 to %d", p.queue_capacity,
                       MAX_QUEUE_CAPACITY);
    /* check the generation's parameters now, so a bad request fails here and not in the worker */
    if (p.generate.max_tokens <= 0 || p.generate.max_tokens > (1 << 20))
        return hr_fail(HR_EINVAL, "max_tokens %d is out of range: use 1 to %d", p.generate.max_tokens, 1 << 20);

    int checked = hr_generate_check_params(&p.generate);
    if (checked != HR_OK) return checked;

    hr_session *s = calloc(1, sizeof *s);
    if (!s) return hr_fail(HR_ENOMEM, "out of memory starting a session");
    s->prompt = strdup(prompt ? prompt : "");
    bool extras_copied = copy_extras(&p.generate, &s->extras);
    s->ring = calloc((size_t)p.queue_capacity + SESSION_RING_SPARE, sizeof *s->ring);
    if (s->prompt && p.generate.stop_count > 0) copy_stops(&p.generate, &s->stops);
    if (s->prompt && p.generate.logit_bias_count > 0) {
        size_t bytes = sizeof *s->logit_bias * p.generate.logit_bias_count;
        s->logit_bias = malloc(bytes);
        if (s->logit_bias) memcpy(s->logit_bias, p.generate.logit_bias, bytes);
        p.generate.logit_bias = s->logit_bias;
    }
    if (!s->prompt || !s->ring || !extras_copied || (p.generate.stop_count > 0 && !s->stops) ||
        (p.generate.logit_bias_count > 0 && !s->logit_bias)) {
        free(s->prompt);
        free(s->ring);
        free(s->stops);
        free(s->logit_bias);
        free(s->extras);
        free(s);
        return hr_fail(HR_ENOMEM, "out of memory starting a session");
    }
    s->model = model;
    s->logprobs = p.generate.logprobs;
    p.generate.logprob_fn = s->logprobs ? hr_session_keep_logprobs : NULL;
    p.generate.logprob_user_data = s;
    s->params = p.generate;
    s->capacity = p.queue_capacity;
    s->reader_timeout = p.reader_timeout;
    s->priority = p.priority;
    snprintf(s->client, sizeof s->client, "%s", p.client ? p.client : "");
    s->references = 2;   /* the caller's and the worker's */
    atomic_init(&s->cancel, false);
    s->batched = model->engine->decode_batch && model->engine->sample_at;
    pthread_mutex_init(&s->lock, NULL);
    hr_cond_init_monotonic(&s->readable);
    hr_cond_init_monotonic(&s->writable);

    pthread_mutex_lock(&model->queue_lock);
    if (model->stopping) {
        pthread_mutex_unlock(&model->queue_lock);
        s->references = 1;
        hr_session_release(s);
        return hr_fail(HR_EBUSY, "the model is being unloaded");
    }
    int32_t running, queued;
    hr_model_count_sessions(model, &running, &queued);
    if (model->max_queued >= 0 && running + queued >= model->n_slots + model->max_queued) {
        double oldest = oldest_running_seconds(model);
        pthread_mutex_unlock(&model->queue_lock);
        s->references = 1;
        hr_session_release(s);
        double after = ceil(retry_after(model, oldest));
        hr_set_retry_after(after);
        return hr_fail(HR_EFULL, "model '%s' is at its limit: %d generation%s running and %d waiting, at most %d "
                       "may wait; retry in about %.0f s", model->name, running, running == 1 ? "" : "s", queued,
                       model->max_queued, after);
    }
    int rc = hr_model_start_worker_locked(model);
    if (rc != HR_OK) {
        pthread_mutex_unlock(&model->queue_lock);
        s->references = 1;
        hr_session_release(s);
        return rc;
    }
    s->arrival = ++model->arrivals;
    if (model->queue_tail) model->queue_tail->next = s;
    else model->queue_head = s;
    model->queue_tail = s;
    pthread_cond_signal(&model->queue_changed);
    pthread_mutex_unlock(&model->queue_lock);
    hr_model_wake(model);
    *out = s;
    return HR_OK;
}

/* How much of a piece fits without cutting a UTF-8 character in two. */
static size_t whole_characters(const char *text, size_t available, size_t room)
{
    if (available <= room) return available;
    size_t n = room;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) n--;   /* back off a continuation */
    return n > 0 ? n : room;
}

HR_API int hr_session_read(hr_session *s, char *buffer, size_t capacity, size_t *length,
                           double timeout_seconds)
{
    hr_clear_error();
    if (!s || !buffer || capacity < 2 || !length)
        return hr_fail(HR_EINVAL, "hr_session_read: session, a buffer of at least 2 bytes and length are required");
    *length = 0;
    double deadline = hr_now_seconds() + (timeout_seconds > 0 ? timeout_seconds : 0);
    pthread_mutex_lock(&s->lock);
    while (s->count == 0 && !s->finished && !s->cancelled && timeout_seconds != 0) {
        if (timeout_seconds < 0) pthread_cond_wait(&s->readable, &s->lock);
        else if (hr_cond_wait_until(&s->readable, &s->lock, deadline) == ETIMEDOUT) break;
    }
    int rc;
    if (s->cancelled) {
        rc = hr_fail(HR_ECANCELLED, "the session was cancelled");
    } else if (s->count > 0) {
        struct piece *p = &s->ring[s->head];
        size_t n = whole_characters(p->text + p->offset, p->length - p->offset, capacity - 1);
        memcpy(buffer, p->text + p->offset, n);
        buffer[n] = '\0';
        *length = n;
        p->offset += n;
        if (p->records > s->records_ready) s->records_ready = p->records;
        if (p->offset == p->length) {
            free(p->text);
            s->head = (s->head + 1) % (s->capacity + SESSION_RING_SPARE);
            s->count--;
            pthread_cond_signal(&s->writable);
            /* the model outlives a session its worker has not finished */
            if (s->batched && !s->finished && s->count == s->capacity - 1) hr_model_wake(s->model);
        }
        rc = HR_OK;
    } else if (s->finished) {
        s->records_ready = s->record_count;   /* every piece read: every record is the reader's */
        if (s->result == HR_OK) rc = HR_EOF;
        else rc = hr_fail(s->result, "%s", s->error);
    } else {
        rc = HR_EAGAIN;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

HR_API void hr_session_cancel(hr_session *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->cancelled = true;
    atomic_store(&s->cancel, true);   /* the worker sees it at its next step, or inside it */
    /* The model outlives a session its worker has not finished (hr_model_free joins the worker,
     * which must take this lock to finish it), so touching it under the lock is safe. */
    if (!s->finished) hr_model_wake(s->model);
    for (int i = 0; i < s->count; i++) free(s->ring[(s->head + i) % (s->capacity + SESSION_RING_SPARE)].text);
    s->count = 0;
    pthread_cond_broadcast(&s->writable);
    pthread_cond_broadcast(&s->readable);
    pthread_mutex_unlock(&s->lock);
}

HR_API bool hr_session_queued(hr_session *s)
{
    if (!s) return false;
    pthread_mutex_lock(&s->lock);
    bool queued = !s->running && !s->finished;
    pthread_mutex_unlock(&s->lock);
    return queued;
}

HR_API int hr_session_stats(hr_session *s, hr_generation_stats *out)
{
    /* no hr_clear_error(): callers ask for the stats right after a read failed, and still want
     * that failure's sentence */
    if (!s || !out) return hr_fail(HR_EINVAL, "hr_session_stats: session and out are required");
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    /* while it runs, what the reader can see: the pieces queued so far */
    if (!s->finished) out->generated_tokens = s->pieces_pushed;
    pthread_mutex_unlock(&s->lock);
    return HR_OK;
}

HR_API int hr_session_logprobs(hr_session *s, size_t from, hr_token_logprobs *out, size_t capacity, size_t *count)
{
    if (count) *count = 0;
    if (!s || !count || (capacity > 0 && !out))
        return hr_fail(HR_EINVAL, "hr_session_logprobs: session, out and count are required");
    if (!s->logprobs) return hr_fail(HR_EINVAL, "this session was started without logprobs");
    pthread_mutex_lock(&s->lock);
    size_t ready = s->records_ready < s->record_count ? s->records_ready : s->record_count;
    size_t n = from < ready ? ready - from : 0;
    if (n > capacity) n = capacity;
    if (n > 0) memcpy(out, s->records + from, sizeof *out * n);
    pthread_mutex_unlock(&s->lock);
    *count = n;
    return HR_OK;
}

HR_API void hr_session_free(hr_session *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    bool finished = s->finished;
    pthread_mutex_unlock(&s->lock);
    if (!finished) hr_session_cancel(s);
    hr_session_release(s);
}
