/*
 * batch.c: the batched worker (continuous batching). A model whose engine decodes batches has
 * n_slots sequences in one context window; each step this hr-worker admits waiting sessions into
 * free slots (the slot whose tokens share the longest prefix with the prompt), builds one batch
 * with the next token of every generating sequence plus chunks of the prompts being read, decodes
 * it once, samples each sequence from its own entry's logits with its own sampler and hands the
 * text to its session's bounded ring. Sessions join and leave between steps; one whose ring is
 * full sits the steps out (its backpressure) while the others go on. Choices are policy's
 * (policy/schedule.c); this file acts on them and owns no policy of its own. Over 600 lines on
 * purpose: a step's admission, assembly, decode and hand-out share the worker's state and read
 * best as one loop.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "platform/platform.h"
#include "policy/schedule.h"
#include "runtime/chat.h"
#include "runtime/guard.h"
#include "runtime/model.h"
#include "runtime/registry.h"
#include "runtime/session.h"

/* How long the worker sleeps when nothing can step, at most: reader timeouts are checked then. */
static const double IDLE_WAIT_SECONDS = 0.25;

struct worker {
    hr_model *model;
    const hr_engine_ops *engine;
    hr_engine_model *em;
    hr_engine_model_info info;
    hr_engine_batch_entry *entries;   /* info.n_batch */
    hr_schedule_slot *schedule_slots; /* n_slots */
    bool holding;                     /* `busy` and window_lock are taken */
};

static void wait_for_wake(hr_model *model, double seconds)
{
    pthread_mutex_lock(&model->wake_lock);
    double deadline = hr_now_seconds() + seconds;
    while (!model->wake_pending)
        if (hr_cond_wait_until(&model->wake, &model->wake_lock, deadline) != 0) break;
    model->wake_pending = false;
    pthread_mutex_unlock(&model->wake_lock);
}

/* Takes the model for the worker: the busy flag (a synchronous hr_generate may hold it; then the
 * worker waits for it) and the window's lock (a snapshot save or restore may hold it). */
static bool hold(struct worker *w)
{
    if (w->holding) return true;
    bool idle = false;
    if (!atomic_compare_exchange_strong(&w->model->busy, &idle, true)) return false;
    pthread_mutex_lock(&w->model->window_lock);
    w->holding = true;
    return true;
}

static void let_go(struct worker *w)
{
    if (!w->holding) return;
    pthread_mutex_unlock(&w->model->window_lock);
    atomic_store(&w->model->busy, false);
    w->holding = false;
}

static int32_t active_count(const struct worker *w)
{
    int32_t n = 0;
    for (int32_t i = 0; i < w->model->n_slots; i++) n += w->model->slots[i].session != NULL;
    return n;
}

/* ---- a session's end ------------------------------------------------------------------------ */

/* Ends the session in its slot: its stats and metrics record, its slot freed (its tokens stay
 * for the next prompt that shares them) before its reader sees the end. */
static void end_session(struct worker *w, hr_session *s, int rc, enum hr_stop_reason reason, const char *sentence)
{
    hr_model *model = w->model;
    struct hr_session_run *run = &s->run;
    if (rc == HR_OK && reason != HR_STOP_CANCELLED) hr_text_stream_finish(run->text);
    run->stats.stop_reason = reason;
    hr_generation_stats_finish(&run->stats, run->started, run->first, run->last);

    char because[sizeof s->stopped_because];
    pthread_mutex_lock(&s->lock);
    snprintf(because, sizeof because, "%s", s->stopped_because);
    bool timed_out = s->timed_out;
    pthread_mutex_unlock(&s->lock);
    char text[512];
    if (rc == HR_OK && reason == HR_STOP_CANCELLED) {
        rc = HR_ECANCELLED;
        if (timed_out) {
            rc = HR_EBUSY;
            snprintf(text, sizeof text, "the reader took nothing for the reader timeout while other requests "
                     "waited; the generation was stopped to let them run");
        } else if (because[0]) {
            snprintf(text, sizeof text, "%s", because);
        } else {
            pthread_mutex_lock(&model->queue_lock);
            bool unloading = model->stopping;
            pthread_mutex_unlock(&model->queue_lock);
            snprintf(text, sizeof text, "the generation was cancelled after %d tokens%s", run->stats.generated_tokens,
                     unloading ? ": the model was unloaded" : "");
        }
    } else {
        snprintf(text, sizeof text, "%s", rc == HR_OK ? "" : sentence);
    }
    if (rc != HR_OK) hr_fail(rc, "%s", text);   /* the metrics record's sentence, as hr_generate's */
    hr_metrics_record(model, s->client, run->wall, &run->stats, rc);

    if (run->sampler) w->engine->sampler_free(run->sampler);
    run->sampler = NULL;
    hr_text_stream_free(run->text);
    run->text = NULL;
    free(run->tokens);
    run->tokens = NULL;
    struct hr_slot *slot = &model->slots[run->slot];
    slot->last_used = ++model->slot_clock;
    pthread_mutex_lock(&model->queue_lock);
    slot->session = NULL;
    model->running--;
    bool last = model->running == 0 && !model->queue_head && !model->current;
    pthread_mutex_unlock(&model->queue_lock);
    /* the last one lets go of the model before its reader sees the end, so the reader's next
     * call (hr_generate, a snapshot) finds it free */
    if (last) let_go(w);

    pthread_mutex_lock(&s->lock);
    s->stats = run->stats;
    pthread_mutex_unlock(&s->lock);
    hr_session_finish(s, rc, text);
    hr_session_release(s);
    /* the lifecycle may have planned while the model worked: its keep-alive starts now */
    if (last) hr_registry_work_ended(model->ctx);
}

/* ---- admission ------------------------------------------------------------------------------ */

/* After a session ended without a slot: where nothing else runs or waits, the model's work has
 * ended (the registry's keep-alive starts now). */
static void work_maybe_ended(hr_model *model)
{
    pthread_mutex_lock(&model->queue_lock);
    bool idle = model->running == 0 && !model->queue_head && !model->current;
    pthread_mutex_unlock(&model->queue_lock);
    if (idle) hr_registry_work_ended(model->ctx);
}

/* Takes the waiting session to run next off the queue (policy: priority, then arrival), or NULL.
 * The caller holds queue_lock; the session stays visible as model->current until it has a slot,
 * so a cancel-all that comes meanwhile finds it. */
static hr_session *take_waiting(hr_model *model)
{
    size_t count = 0;
    for (hr_session *s = model->queue_head; s; s = s->next) count++;
    if (count == 0) return NULL;
    hr_schedule_waiting waiting[64];
    if (count > sizeof waiting / sizeof waiting[0]) count = sizeof waiting / sizeof waiting[0];
    size_t i = 0;
    for (hr_session *s = model->queue_head; s && i < count; s = s->next, i++)
        waiting[i] = (hr_schedule_waiting){ s->priority, s->arrival };
    int pick = hr_schedule_next_waiting(waiting, count);
    hr_session *previous = NULL, *s = model->queue_head;
    for (int k = 0; k < pick; k++) {
        previous = s;
        s = s->next;
    }
    if (previous) previous->next = s->next;
    else model->queue_head = s->next;
    if (model->queue_tail == s) model->queue_tail = previous;
    s->next = NULL;
    model->current = s;
    return s;
}

/* Fails an admission: the session ends with `rc` before it had a slot. */
static void refuse(hr_model *model, hr_session *s, int rc, double wall)
{
    char sentence[512];
    snprintf(sentence, sizeof sentence, "%s", hr_last_error());
    hr_metrics_record(model, s->client, wall, &s->run.stats, rc);
    hr_fail(rc, "%s", sentence);
    pthread_mutex_lock(&s->lock);
    s->stats = s->run.stats;
    pthread_mutex_unlock(&s->lock);
    hr_session_finish(s, rc, sentence);
}

static int push_text(const char *piece, size_t length, void *user_data)
{
    return hr_session_push_nowait(user_data, piece, length);
}

/* The session's prompt as hr_generate reads it: its conversation through the chat template, or
 * its text (with control tokens where prompt_special asks). */
static int tokenize_prompt(struct worker *w, hr_session *s)
{
    struct hr_session_run *run = &s->run;
    int32_t n_ctx = w->info.n_ctx;
    int32_t count = 0;
    int rc = hr_generate_prompt_tokens(w->model, s->prompt, &s->params, n_ctx, &run->tokens, &count);
    if (rc != HR_OK) return rc;
    run->stats.prompt_tokens = count;
    if (count >= n_ctx)
        return hr_fail(HR_ECONTEXT, "the prompt is %d tokens but the context window holds %d; "
                       "shorten it or load the model with a larger context", count, n_ctx);
    if (count == 0)
        return hr_fail(HR_EINVAL, "the prompt is empty and this model adds no start token; give a prompt");
    run->n_tokens = count;
    return HR_OK;
}

/* Puts `s` in the free slot that shares most of its prompt, cutting that slot's sequence back to
 * the shared part, with its own sampler and text stream. */
/* Restoring a snapshot pays when it saves reading at least this many prompt tokens. */
enum { RESTORE_MIN_GAIN = 16 };

/* A prompt the slots share little of may continue a conversation saved earlier (at an unload, or
 * when pressure shed its slot): the snapshot that shares most of it comes back into the slot
 * picked, whose own tokens would be cut back to `shared` anyway. */
static void restore_conversation(struct worker *w, int slot_index, const struct hr_session_run *run, int32_t *shared)
{
    if (run->n_tokens - 1 - *shared < RESTORE_MIN_GAIN) return;
    int32_t restored = 0;
    int rc = hr_model_snapshot_restore_best(w->model, slot_index, run->tokens, run->n_tokens,
                                            *shared + RESTORE_MIN_GAIN - 1, &restored);
    if (rc != HR_OK) {
        hr_log(HR_LOG_INFO, "%s: a snapshot was not restored (the prompt is read whole): %s", w->model->name,
               hr_last_error());
        *shared = 0;   /* the slot is empty now */
    } else if (restored > 0) {
        *shared = restored;
    }
}

static int place(struct worker *w, hr_session *s)
{
    hr_model *model = w->model;
    struct hr_session_run *run = &s->run;
    for (size_t i = 0; i < s->params.logit_bias_count; i++)
        if (s->params.logit_bias[i].token >= w->info.n_vocab)
            return hr_fail(HR_EINVAL, "logit_bias names token %d, but the vocabulary has %d tokens",
                           s->params.logit_bias[i].token, w->info.n_vocab);
    int rc = hr_model_window_reserve(model);
    if (rc != HR_OK) return rc;
    for (int32_t i = 0; i < model->n_slots; i++)
        w->schedule_slots[i] = (hr_schedule_slot){ model->slots[i].session != NULL, model->slots[i].tokens,
                                                   model->slots[i].count, model->slots[i].last_used };
    int32_t shared = 0;
    int slot_index = hr_schedule_pick_slot(w->schedule_slots, (size_t)model->n_slots, run->tokens, run->n_tokens,
                                           &shared);
    if (slot_index < 0) return hr_fail(HR_EBUSY, "no free slot");   /* the caller checked: never */
    restore_conversation(w, slot_index, run, &shared);
    /* The last prompt token is always decoded: its logits are what the first sample reads. */
    if (shared >= run->n_tokens) shared = run->n_tokens - 1;
    struct hr_slot *slot = &model->slots[slot_index];
    if (shared != slot->count) {
        if (w->engine->truncate(w->em, slot_index, shared) != HR_OK) {
            shared = 0;
            if (w->engine->truncate(w->em, slot_index, 0) != HR_OK)
                return hr_fail(HR_EENGINE, "the engine cannot forget slot %d's sequence: %s", slot_index,
                               hr_last_error());
        }
        slot->count = shared;
    }
    slot->saved = false;
    hr_engine_sampling sampling = hr_engine_sampling_from(&s->params);
    rc = w->engine->sampler_create(w->em, &sampling, &run->sampler);
    if (rc != HR_OK) return rc;
    run->text = hr_text_stream_new(&s->params, push_text, s);
    if (!run->text) return hr_fail(HR_ENOMEM, "out of memory starting a generation");
    run->slot = slot_index;
    run->n_read = shared;
    run->stats.cached_tokens = shared;
    run->generating = false;
    run->logits_index = -1;
    run->n_ctx = w->info.n_ctx;
    pthread_mutex_lock(&model->queue_lock);
    slot->session = s;
    model->running++;
    model->current = NULL;
    pthread_mutex_unlock(&model->queue_lock);
    return HR_OK;
}

static void admit(struct worker *w, hr_session *s)
{
    hr_model *model = w->model;
    struct hr_session_run *run = &s->run;
    memset(run, 0, sizeof *run);
    run->slot = -1;
    run->started = hr_now_seconds();
    run->wall = hr_wall_seconds();
    run->epoch = atomic_load(&model->cancel_epoch);   /* what hr_model_cancel cancels: what runs now */

    pthread_mutex_lock(&s->lock);
    bool cancelled = s->cancelled || atomic_load(&s->cancel);
    char because[sizeof s->stopped_because];
    snprintf(because, sizeof because, "%s", s->stopped_because);
    if (!cancelled) s->running = true;
    pthread_mutex_unlock(&s->lock);
    bool stopping;
    pthread_mutex_lock(&model->queue_lock);
    stopping = model->stopping;
    if (cancelled || stopping) model->current = NULL;
    pthread_mutex_unlock(&model->queue_lock);
    if (cancelled || stopping) {
        hr_session_finish(s, HR_ECANCELLED, because[0] ? because
                          : stopping ? "the model was unloaded before the generation started"
                          : "the generation was cancelled before it started");
        hr_session_release(s);
        work_maybe_ended(model);
        return;
    }
    hr_clear_error();
    int rc = tokenize_prompt(w, s);
    if (rc == HR_OK) rc = place(w, s);
    if (rc == HR_OK) return;
    if (run->sampler) w->engine->sampler_free(run->sampler);
    hr_text_stream_free(run->text);
    run->sampler = NULL;
    run->text = NULL;
    pthread_mutex_lock(&model->queue_lock);
    model->current = NULL;
    pthread_mutex_unlock(&model->queue_lock);
    refuse(model, s, rc, run->wall);
    hr_session_release(s);
    work_maybe_ended(model);
}

/* ---- one step ------------------------------------------------------------------------------- */

/* Between steps: sessions cancelled (by their reader, the lifecycle, hr_model_cancel or an
 * unload) leave; a session whose reader took nothing for its reader timeout gives way when
 * others wait and no slot is free. */
static void drop_cancelled(struct worker *w)
{
    hr_model *model = w->model;
    unsigned epoch = atomic_load(&model->cancel_epoch);
    pthread_mutex_lock(&model->queue_lock);
    bool stopping = model->stopping;
    bool others_wait = model->queue_head != NULL;
    pthread_mutex_unlock(&model->queue_lock);
    bool slot_free = active_count(w) < model->n_slots;
    double now = hr_now_seconds();
    for (int32_t i = 0; i < model->n_slots; i++) {
        hr_session *s = model->slots[i].session;
        if (!s) continue;
        if (atomic_load(&s->cancel) || s->run.epoch != epoch || stopping) {
            end_session(w, s, HR_OK, HR_STOP_CANCELLED, "");
            continue;
        }
        if (!s->run.generating) continue;
        if (hr_session_has_room(s)) {
            s->run.blocked_since = 0;
            continue;
        }
        if (s->run.blocked_since == 0) s->run.blocked_since = now;
        if (s->reader_timeout > 0 && now - s->run.blocked_since >= s->reader_timeout && others_wait && !slot_free) {
            pthread_mutex_lock(&s->lock);
            s->timed_out = true;
            pthread_mutex_unlock(&s->lock);
            end_session(w, s, HR_OK, HR_STOP_CANCELLED, "");
        }
    }
}

static void clear_step(struct worker *w)
{
    for (int32_t i = 0; i < w->model->n_slots; i++) {
        hr_session *s = w->model->slots[i].session;
        if (!s) continue;
        s->run.logits_index = -1;
        s->run.step_tokens = 0;
    }
}

/* The next token of every running sequence whose reader keeps up, in slot order: llama.cpp
 * decodes consecutive slots in one pass over the weights. Returns the entries. */
static int32_t build_generating(struct worker *w)
{
    hr_model *model = w->model;
    clear_step(w);
    int32_t n = 0;
    for (int32_t i = 0; i < model->n_slots; i++) {
        hr_session *s = model->slots[i].session;
        if (!s || !s->run.generating) continue;
        if (s->run.blocked_since > 0) continue;   /* its reader is behind: it sits this step out */
        if (n == w->info.n_batch) break;          /* more slots than a batch holds: the rest next step */
        w->entries[n] = (hr_engine_batch_entry){ s->run.next, i, model->slots[i].count, true };
        s->run.logits_index = n;
        s->run.step_tokens = 1;
        n++;
    }
    return n;
}

/* The next chunk of the oldest newcomer's prompt, in a decode of its own: a prompt read beside
 * other sequences would be split by llama.cpp into pieces of other shapes, and its arithmetic
 * (so, at a near tie, its text) would depend on what else runs. Returns the entries. */
static int32_t build_prompt(struct worker *w, int32_t generating)
{
    hr_model *model = w->model;
    clear_step(w);
    hr_session *oldest = NULL;
    for (int32_t i = 0; i < model->n_slots; i++) {
        hr_session *s = model->slots[i].session;
        if (s && !s->run.generating && (!oldest || s->arrival < oldest->arrival)) oldest = s;
    }
    if (!oldest) return 0;
    struct hr_session_run *run = &oldest->run;
    int32_t chunk = hr_schedule_prompt_chunk(w->info.n_batch, generating, run->n_tokens - run->n_read);
    for (int32_t j = 0; j < chunk; j++) {
        int32_t at = run->n_read + j;
        bool last = at == run->n_tokens - 1;
        w->entries[j] = (hr_engine_batch_entry){ run->tokens[at], run->slot, at, last };
        if (last) run->logits_index = j;
    }
    run->step_tokens = chunk;
    return chunk;
}

/* Cuts every sequence in the step back to what it held before it (an aborted or failed step may
 * have left part of itself in the window). */
static void undo_step(struct worker *w)
{
    for (int32_t i = 0; i < w->model->n_slots; i++) {
        hr_session *s = w->model->slots[i].session;
        if (s && s->run.step_tokens > 0) w->engine->truncate(w->em, i, w->model->slots[i].count);
    }
}

/* Hands the token's text to the session's stream; returns what the stream said. */
static int emit(struct worker *w, hr_session *s, hr_token token)
{
    char small[256];
    int32_t length = w->engine->token_to_piece(w->em, token, small, sizeof small);
    if (length >= 0) return hr_text_stream_feed(s->run.text, small, (size_t)length);
    char *large = malloc((size_t)-length);
    if (!large) return HR_ENOMEM;
    length = w->engine->token_to_piece(w->em, token, large, -length);
    int stop = hr_text_stream_feed(s->run.text, large, length > 0 ? (size_t)length : 0);
    free(large);
    return stop;
}

/* After a step: each sequence's tokens join its slot; those with logits sample their next. */
static void after_step(struct worker *w, bool *generated)
{
    hr_model *model = w->model;
    double now = hr_now_seconds();
    for (int32_t i = 0; i < model->n_slots; i++) {
        hr_session *s = model->slots[i].session;
        if (!s || s->run.step_tokens == 0) continue;
        struct hr_session_run *run = &s->run;
        struct hr_slot *slot = &model->slots[i];
        if (run->generating) {
            slot->tokens[slot->count++] = run->next;
        } else {
            memcpy(slot->tokens + slot->count, run->tokens + run->n_read, sizeof *run->tokens * (size_t)run->step_tokens);
            slot->count += run->step_tokens;
            run->n_read += run->step_tokens;
        }
        if (run->logits_index < 0) continue;
        if (!run->generating) {
            run->generating = true;
            run->stats.prompt_seconds = now - run->started;
        }
        hr_token token = w->engine->sample_at(run->sampler, w->em, run->logits_index);
        if (w->engine->is_end_of_generation(w->em, token)) {
            end_session(w, s, HR_OK, HR_STOP_END_OF_TEXT, "");
            continue;
        }
        run->last = now;
        if (run->first == 0) run->first = now;
        else *generated = true;
        run->stats.generated_tokens++;
        /* its log-probabilities from its own entry's logits, kept before its text is pushed, so
         * the record is the reader's once it has read the piece */
        if (s->params.logprob_fn && w->engine->token_logprobs) {
            hr_token_logprobs record;
            if (w->engine->token_logprobs(w->em, run->logits_index, token, s->params.top_logprobs, &record) == HR_OK)
                s->params.logprob_fn(&record, s->params.logprob_user_data);
        }
        int stop = emit(w, s, token);
        if (stop == HR_ENOMEM) {
            end_session(w, s, HR_ENOMEM, HR_STOP_NONE, "out of memory streaming text");
            continue;
        }
        if (stop) {
            end_session(w, s, HR_OK, hr_text_stream_matched(run->text) ? HR_STOP_SEQUENCE : HR_STOP_CANCELLED, "");
            continue;
        }
        if (run->stats.generated_tokens >= s->params.max_tokens) {
            end_session(w, s, HR_OK, HR_STOP_MAX_TOKENS, "");
            continue;
        }
        if (slot->count >= run->n_ctx) {
            end_session(w, s, HR_OK, HR_STOP_CONTEXT_FULL, "");
            continue;
        }
        run->next = token;
    }
}

/* One step: decode the batch, then sample. A failed step ends the sessions in it with its
 * error; an aborted one (cancel-all, unload) is cut back and the cancelled leave at the next
 * boundary. */
static void step(struct worker *w, int32_t count, bool prompt)
{
    hr_model *model = w->model;
    atomic_store(&model->step_epoch, atomic_load(&model->cancel_epoch));
    int rc = w->engine->decode_batch(w->em, w->entries, count);
    if (rc == HR_ECANCELLED) {
        undo_step(w);
        return;
    }
    if (rc != HR_OK) {
        char sentence[512];
        snprintf(sentence, sizeof sentence, "%s", hr_last_error());
        undo_step(w);
        for (int32_t i = 0; i < model->n_slots; i++) {
            hr_session *s = model->slots[i].session;
            if (s && s->run.step_tokens > 0) end_session(w, s, rc, HR_STOP_NONE, sentence);
        }
        return;
    }
    /* A step that samples under a grammar is judged as constrained: where the model writes what
     * the grammar refuses, each token masks the whole vocabulary, which is slower and faults fresh
     * pages, so it teaches no speed (policy/guard.h). */
    bool grammar = false;
    for (int32_t i = 0; i < model->n_slots; i++) {
        hr_session *s = model->slots[i].session;
        if (s && s->run.logits_index >= 0 && hr_generate_constrained(&s->params)) grammar = true;
    }
    bool generated = false;
    after_step(w, &generated);
    /* The last session to end has let go of the model (its reader may be in hr_generate now,
     * timing its own generation with the guard): the step is not the worker's to time. */
    if (!w->holding) return;
    /* the guard times decode steps: a step that read a prompt is no measure of decode speed */
    if (prompt) hr_guard_begin(model);
    else if (generated) hr_guard_token(model, grammar);
}

/* ---- the loop ------------------------------------------------------------------------------- */

static int worker_init(struct worker *w, hr_model *model)
{
    memset(w, 0, sizeof *w);
    w->model = model;
    w->engine = model->engine;
    w->em = model->engine_model;
    w->engine->get_info(w->em, &w->info);
    if (w->info.n_batch < 1) w->info.n_batch = 1;
    w->entries = calloc((size_t)w->info.n_batch, sizeof *w->entries);
    w->schedule_slots = calloc((size_t)model->n_slots, sizeof *w->schedule_slots);
    return w->entries && w->schedule_slots ? HR_OK : HR_ENOMEM;
}

static void worker_free(struct worker *w)
{
    free(w->entries);
    free(w->schedule_slots);
}

/* Ends every session still queued (the model is being unloaded, or the worker cannot run). */
static void cancel_queued(hr_model *model, const char *sentence)
{
    for (;;) {
        pthread_mutex_lock(&model->queue_lock);
        hr_session *s = model->queue_head;
        if (s) {
            model->queue_head = s->next;
            if (!model->queue_head) model->queue_tail = NULL;
        }
        pthread_mutex_unlock(&model->queue_lock);
        if (!s) return;
        hr_session_finish(s, HR_ECANCELLED, sentence);
        hr_session_release(s);
    }
}

void hr_batch_worker_run(hr_model *model)
{
    struct worker w;
    if (worker_init(&w, model) != HR_OK) {
        hr_log(HR_LOG_ERROR, "%s: out of memory starting the model's worker", model->name);
        pthread_mutex_lock(&model->queue_lock);
        while (!model->stopping) {
            pthread_mutex_unlock(&model->queue_lock);
            cancel_queued(model, "out of memory starting the model's worker");
            wait_for_wake(model, IDLE_WAIT_SECONDS);
            pthread_mutex_lock(&model->queue_lock);
        }
        pthread_mutex_unlock(&model->queue_lock);
        cancel_queued(model, "the model was unloaded before the generation started");
        worker_free(&w);
        return;
    }
    for (;;) {
        if (w.holding) drop_cancelled(&w);
        if (atomic_load(&model->shed_request) && hold(&w)) hr_model_take_shed_request(model);   /* shed.c */
        pthread_mutex_lock(&model->queue_lock);
        bool stopping = model->stopping;
        bool waiting = model->queue_head != NULL;
        pthread_mutex_unlock(&model->queue_lock);
        int32_t active = active_count(&w);
        if (stopping && active == 0) break;
        if (stopping) continue;   /* drop_cancelled ends the running ones */

        if (waiting && active < model->n_slots) {
            if (!hold(&w)) {   /* a synchronous hr_generate runs: wait for it */
                wait_for_wake(model, 0.01);
                continue;
            }
            if (active == 0) hr_guard_begin(model);
            pthread_mutex_lock(&model->queue_lock);
            hr_session *s = take_waiting(model);
            pthread_mutex_unlock(&model->queue_lock);
            if (s) admit(&w, s);
            continue;   /* the next waiting one, if a slot is still free */
        }
        if (active == 0) {
            let_go(&w);
            wait_for_wake(model, IDLE_WAIT_SECONDS);
            continue;
        }
        int32_t generating = build_generating(&w);
        if (generating > 0) step(&w, generating, false);
        int32_t prompt = build_prompt(&w, generating);
        if (prompt > 0) step(&w, prompt, true);
        if (generating == 0 && prompt == 0) {   /* every stream's reader is behind */
            wait_for_wake(model, IDLE_WAIT_SECONDS);
            hr_guard_begin(model);
        }
    }
    let_go(&w);
    cancel_queued(model, "the model was unloaded before the generation started");
    worker_free(&w);
}
