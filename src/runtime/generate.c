/*
 * generate.c: one generation on a loaded model: tokenize, decode the prompt, then sample and
 * decode token by token, handing whole UTF-8 pieces to the caller and timing every phase.
 * It owns no threads; cancellation arrives through the model's atomic flag.
 */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/stop.h"
#include "core/utf8.h"
#include "runtime/chat.h"
#include "runtime/guard.h"
#include "runtime/model.h"

enum { MAX_GENERATED_TOKENS = 1 << 20 };

HR_API hr_generate_params hr_generate_default_params(void)
{
    hr_generate_params params = {
        .max_tokens = 128,
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .seed = 42,
        .typical_p = 1.0f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .mirostat_tau = 5.0f,
        .mirostat_eta = 0.1f,
    };
    return params;
}

hr_engine_sampling hr_engine_sampling_from(const hr_generate_params *p)
{
    hr_engine_sampling sampling = {
        .temperature = p->temperature, .top_k = p->top_k, .top_p = p->top_p, .min_p = p->min_p,
        .seed = p->seed, .typical_p = p->typical_p, .repeat_penalty = p->repeat_penalty,
        .repeat_last_n = p->repeat_last_n, .presence_penalty = p->presence_penalty,
        .frequency_penalty = p->frequency_penalty, .mirostat = p->mirostat,
        .mirostat_tau = p->mirostat_tau, .mirostat_eta = p->mirostat_eta,
        .logit_bias = p->logit_bias, .logit_bias_count = p->logit_bias_count, .grammar = p->grammar,
    };
    if (p->chat) hr_chat_sampling(p->chat, &sampling);
    return sampling;
}

/* Carries bytes of a character split across tokens until the rest arrives. */
struct text_stream {
    char held[4];
    size_t held_length;
    char *buffer;            /* held bytes + one piece */
    size_t buffer_capacity;
    char *out;               /* the same, repaired; up to 3x as long */
    hr_stop_matcher stops;   /* whole text in, text before any stop sequence out */
    char *piece;             /* what goes to fn, NUL-terminated */
    size_t piece_capacity;
    hr_piece_fn fn;
    void *user_data;
};

static int reserve(struct text_stream *stream, size_t length)
{
    if (length <= stream->buffer_capacity) return HR_OK;
    size_t capacity = length * 2;
    char *buffer = realloc(stream->buffer, capacity);
    if (!buffer) return HR_ENOMEM;
    stream->buffer = buffer;
    char *out = realloc(stream->out, capacity * 3);
    if (!out) return HR_ENOMEM;
    stream->out = out;
    stream->buffer_capacity = capacity;
    return HR_OK;
}

static int pass_on(struct text_stream *stream, const char *text, size_t length);

/* Emits what of held + piece is whole and before any stop sequence; returns non-zero when the
 * caller asked to stop or a stop sequence was found (stream->stops.matched tells which). */
static int stream_bytes(struct text_stream *stream, const char *piece, size_t length, int final)
{
    size_t total = stream->held_length + length;
    if (reserve(stream, total + 1) != HR_OK) return HR_ENOMEM;
    memcpy(stream->buffer, stream->held, stream->held_length);
    memcpy(stream->buffer + stream->held_length, piece, length);
    size_t consumed = 0;
    size_t written = hr_utf8_take(stream->buffer, total, final, stream->out,
                                  stream->buffer_capacity * 3, &consumed);
    stream->held_length = total - consumed;   /* at most 3: an incomplete character */
    memcpy(stream->held, stream->buffer + consumed, stream->held_length);
    if (written == 0) return 0;
    const char *emit;
    size_t emit_length;
    if (hr_stop_feed(&stream->stops, stream->out, written, &emit, &emit_length) != HR_OK) return HR_ENOMEM;
    /* the text before a stop sequence still goes on; then the generation ends */
    if (emit_length > 0) {
        int stop = pass_on(stream, emit, emit_length);
        if (stop) return stop;
    }
    return stream->stops.matched;
}

/* Hands text to the caller NUL-terminated; returns non-zero when the caller asked to stop. */
static int pass_on(struct text_stream *stream, const char *text, size_t length)
{
    if (length + 1 > stream->piece_capacity) {
        char *piece = realloc(stream->piece, (length + 1) * 2);
        if (!piece) return HR_ENOMEM;
        stream->piece = piece;
        stream->piece_capacity = (length + 1) * 2;
    }
    memcpy(stream->piece, text, length);
    stream->piece[length] = '\0';
    return stream->fn(stream->piece, length, stream->user_data) != 0;
}

/* The text of a whole-request engine (generate_remote.c) goes through the same repair. */
static int stream_piece(const char *piece, size_t length, void *user_data)
{
    return stream_bytes(user_data, piece, length, 0) != 0;
}

void hr_generation_stats_finish(hr_generation_stats *stats, double started, double first, double last)
{
    double now = hr_now_seconds();
    stats->total_seconds = now - started;
    if (first > 0) {
        stats->time_to_first_token = first - started;
        stats->decode_seconds = last - first;
        if (stats->generated_tokens > 1 && stats->decode_seconds > 0)
            stats->tokens_per_second = (stats->generated_tokens - 1) / stats->decode_seconds;
    }
    /* the speed of what was decoded: reused tokens cost nothing */
    if (stats->prompt_seconds > 0)
        stats->prompt_tokens_per_second = (stats->prompt_tokens - stats->cached_tokens) / stats->prompt_seconds;
}

static int check_params(const hr_generate_params *p)
{
    if (p->max_tokens <= 0 || p->max_tokens > MAX_GENERATED_TOKENS)
        return hr_fail(HR_EINVAL, "max_tokens %d is out of range: use 1 to %d", p->max_tokens,
                       MAX_GENERATED_TOKENS);
    if (!isfinite(p->temperature) || p->temperature < 0 || p->temperature > 100)
        return hr_fail(HR_EINVAL, "temperature %g is out of range: use 0 (greedy) to 100", p->temperature);
    if (p->top_k < 0) return hr_fail(HR_EINVAL, "top_k %d is negative: use 0 to switch it off", p->top_k);
    if (!isfinite(p->top_p) || p->top_p <= 0 || p->top_p > 1)
        return hr_fail(HR_EINVAL, "top_p %g is out of range: use a value in (0, 1]", p->top_p);
    if (!isfinite(p->min_p) || p->min_p < 0 || p->min_p >= 1)
        return hr_fail(HR_EINVAL, "min_p %g is out of range: use a value in [0, 1)", p->min_p);
    if (!isfinite(p->typical_p) || p->typical_p <= 0 || p->typical_p > 1)
        return hr_fail(HR_EINVAL, "typical_p %g is out of range: use a value in (0, 1]", p->typical_p);
    if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0 || p->repeat_penalty > 100)
        return hr_fail(HR_EINVAL, "repeat_penalty %g is out of range: use a value in (0, 100] (1: off)", p->repeat_penalty);
    if (p->repeat_last_n < 0 || p->repeat_last_n > MAX_GENERATED_TOKENS)
        return hr_fail(HR_EINVAL, "repeat_last_n %d is out of range: use 0 (off) to %d", p->repeat_last_n,
                       MAX_GENERATED_TOKENS);
    if (!isfinite(p->presence_penalty) || fabsf(p->presence_penalty) > 100)
        return hr_fail(HR_EINVAL, "presence_penalty %g is out of range: use -100 to 100", p->presence_penalty);
    if (!isfinite(p->frequency_penalty) || fabsf(p->frequency_penalty) > 100)
        return hr_fail(HR_EINVAL, "frequency_penalty %g is out of range: use -100 to 100", p->frequency_penalty);
    if (p->mirostat < 0 || p->mirostat > 2)
        return hr_fail(HR_EINVAL, "mirostat %d is not 0 (off), 1 or 2", p->mirostat);
    if (!isfinite(p->mirostat_tau) || p->mirostat_tau < 0 || !isfinite(p->mirostat_eta) || p->mirostat_eta < 0)
        return hr_fail(HR_EINVAL, "mirostat_tau and mirostat_eta must be finite and non-negative");
    if (p->logit_bias_count > HR_MAX_LOGIT_BIAS || (p->logit_bias_count > 0 && !p->logit_bias))
        return hr_fail(HR_EINVAL, "logit_bias holds %zu entries: use at most %d, with a non-NULL array",
                       p->logit_bias_count, HR_MAX_LOGIT_BIAS);
    for (size_t i = 0; i < p->logit_bias_count; i++)
        if (p->logit_bias[i].token < 0 || isnan(p->logit_bias[i].bias) || p->logit_bias[i].bias == INFINITY)
            return hr_fail(HR_EINVAL, "logit_bias entry %zu: token %d with bias %g (a token id >= 0 and a "
                           "finite bias or -INFINITY)", i, p->logit_bias[i].token, p->logit_bias[i].bias);
    if (p->top_logprobs < 0 || p->top_logprobs > HR_MAX_TOP_LOGPROBS)
        return hr_fail(HR_EINVAL, "top_logprobs %d is out of range: use 0 to %d", p->top_logprobs, HR_MAX_TOP_LOGPROBS);
    if (p->message_count > 0 && !p->messages)
        return hr_fail(HR_EINVAL, "message_count is %zu but messages is NULL", p->message_count);
    for (size_t i = 0; i < p->message_count; i++)
        if (!p->messages[i].role || !p->messages[i].content)
            return hr_fail(HR_EINVAL, "message %zu has no role or no content", i);
    if (p->chat && p->message_count > 0)
        return hr_fail(HR_EINVAL, "give either messages or a chat, not both");
    if (p->chat && p->grammar && p->chat->rendered->grammar)
        return hr_fail(HR_EINVAL, "a grammar and a chat with tool calls cannot go together: the tool calls have a "
                       "grammar of their own");
    return hr_generate_check_stops(p);
}

int hr_generate_check_stops(const hr_generate_params *p)
{
    if (p->stop_count > HR_MAX_STOP_SEQUENCES)
        return hr_fail(HR_EINVAL, "%zu stop sequences are too many: use at most %d", p->stop_count,
                       HR_MAX_STOP_SEQUENCES);
    if (p->stop_count > 0 && !p->stop) return hr_fail(HR_EINVAL, "stop_count is %zu but stop is NULL", p->stop_count);
    for (size_t i = 0; i < p->stop_count; i++) {
        const char *text = p->stop[i];
        size_t length = text ? strlen(text) : 0;
        if (length == 0) return hr_fail(HR_EINVAL, "stop sequence %zu is empty", i);
        if (length > HR_MAX_STOP_BYTES)
            return hr_fail(HR_EINVAL, "stop sequence %zu is %zu bytes: use at most %d", i, length, HR_MAX_STOP_BYTES);
        /* whole UTF-8 only: the matcher relies on it never to pass on half a character */
        char repaired[3 * HR_MAX_STOP_BYTES];
        size_t consumed = 0;
        size_t written = hr_utf8_take(text, length, 1, repaired, sizeof repaired, &consumed);
        if (written != length || memcmp(repaired, text, length) != 0)
            return hr_fail(HR_EINVAL, "stop sequence %zu is not valid UTF-8", i);
    }
    return HR_OK;
}

static int32_t common_prefix(const hr_token *a, int32_t a_count, const hr_token *b, int32_t b_count)
{
    int32_t n = 0;
    while (n < a_count && n < b_count && a[n] == b[n]) n++;
    return n;
}

/* Cuts the window back to its first `keep` remembered tokens, restoring the invariant that the
 * engine holds exactly slots[0].tokens[0..count). Where the engine cannot cut (or
 * keep is 0) the window is emptied: forgetting too much costs a decode, never correctness. */
static void keep_window(struct hr_model *model, int32_t keep)
{
    const hr_engine_ops *engine = model->engine;
    struct hr_slot *window = &model->slots[0];
    if (keep > 0 && engine->truncate && engine->truncate(model->engine_model, 0, keep) == HR_OK) {
        window->count = keep;
        return;
    }
    /* the other slots' sequences stay where the engine can forget one alone */
    if (model->n_slots == 1 || !(engine->truncate && engine->truncate(model->engine_model, 0, 0) == HR_OK)) {
        engine->reset(model->engine_model);
        for (int32_t i = 0; i < model->n_slots; i++) model->slots[i].count = 0;
    }
    window->count = 0;
}

/* Decodes the prompt, reusing the longest prefix already in the window; returns how many
 * tokens were reused in *cached. */
static int decode_prompt(struct hr_model *model, const hr_token *tokens, int32_t count, int32_t *cached)
{
    struct hr_slot *window = &model->slots[0];
    int32_t reuse = common_prefix(window->tokens, window->count, tokens, count);
    /* The last prompt token is always decoded: its logits are what the first sample reads, and
     * the window keeps no logits between generations. */
    if (reuse >= count) reuse = count - 1;
    if (reuse != window->count) keep_window(model, reuse);
    reuse = window->count;
    *cached = reuse;
    window->saved = false;
    int rc = model->engine->decode(model->engine_model, tokens + reuse, count - reuse);
    if (rc != HR_OK) {
        int saved_rc = rc;   /* keep the decode's sentence: cutting the window may overwrite it */
        char sentence[1024];
        snprintf(sentence, sizeof sentence, "%s", hr_last_error());
        keep_window(model, reuse);
        return hr_fail(saved_rc, "%s", sentence);
    }
    memcpy(window->tokens + reuse, tokens + reuse, sizeof *tokens * (size_t)(count - reuse));
    window->count = count;
    return HR_OK;
}

/* The prompt's tokens, malloc'd: the conversation through the chat template, or the text (with
 * control tokens where the caller asked for them). */
int hr_generate_prompt_tokens(struct hr_model *model, const char *prompt, const hr_generate_params *p, int32_t n_ctx,
                              hr_token **out, int32_t *out_count)
{
    const hr_engine_ops *engine = model->engine;
    hr_engine_model *em = model->engine_model;
    *out = NULL;
    *out_count = 0;
    char *formatted = NULL;
    if (p->chat) {
        if (p->chat->model != model) return hr_fail(HR_EINVAL, "the chat was rendered for another model");
        return engine->chat_tokenize(em, p->chat->rendered, out, out_count);
    }
    if (p->message_count > 0) {
        if (engine->tokenize_chat) return engine->tokenize_chat(em, p->messages, p->message_count, out, out_count);
        int rc = engine->apply_chat_template
                     ? engine->apply_chat_template(em, p->messages, p->message_count, true, &formatted)
                     : hr_fail(HR_ENOTSUP, "the %s engine has no chat templates", engine->name);
        if (rc != HR_OK) return rc;
        prompt = formatted;
    }
    size_t prompt_length = strlen(prompt);
    int32_t capacity = (int32_t)(prompt_length < (size_t)n_ctx ? prompt_length : (size_t)n_ctx) + 8;
    hr_token *tokens = malloc(sizeof *tokens * (size_t)capacity);
    if (!tokens) {
        free(formatted);
        return hr_fail(HR_ENOMEM, "out of memory tokenizing the prompt");
    }
    bool special = (p->prompt_special || formatted) && engine->tokenize_special;
    int32_t count = special ? engine->tokenize_special(em, prompt, prompt_length, tokens, capacity)
                            : engine->tokenize(em, prompt, prompt_length, true, tokens, capacity);
    free(formatted);
    if (count < 0) {
        /* More tokens than the context window holds (INT32_MIN: more than an int32 counts). */
        free(tokens);
        if (count == INT32_MIN)
            return hr_fail(HR_ECONTEXT, "the prompt is far too long for a context window of %d tokens", n_ctx);
        return hr_fail(HR_ECONTEXT, "the prompt is %d tokens but the context window holds %d; "
                       "shorten it or load the model with a larger context", -count, n_ctx);
    }
    *out = tokens;
    *out_count = count;
    return HR_OK;
}

static int run_generation(struct hr_model *model, const char *prompt, const hr_generate_params *p,
                          struct text_stream *stream, hr_generation_stats *stats, double started)
{
    const hr_engine_ops *engine = model->engine;
    hr_engine_model *em = model->engine_model;
    hr_engine_model_info info;
    engine->get_info(em, &info);

    hr_token *tokens = NULL;
    int32_t count = 0;
    int rc = hr_generate_prompt_tokens(model, prompt, p, info.n_ctx, &tokens, &count);
    if (rc != HR_OK) return rc;
    stats->prompt_tokens = count;
    if (count == 0) {
        free(tokens);
        return hr_fail(HR_EINVAL, "the prompt is empty and this model adds no start token; give a prompt");
    }
    if (count >= info.n_ctx) {
        free(tokens);
        return hr_fail(HR_ECONTEXT, "the prompt is %d tokens but the context window holds %d; "
                       "shorten it or load the model with a larger context", count, info.n_ctx);
    }
    rc = hr_model_window_reserve(model);
    if (rc != HR_OK) {
        free(tokens);
        return rc;
    }

    rc = decode_prompt(model, tokens, count, &stats->cached_tokens);
    free(tokens);
    stats->prompt_seconds = hr_now_seconds() - started;
    if (rc != HR_OK) return rc;

    hr_engine_sampler *sampler = NULL;
    for (size_t i = 0; i < p->logit_bias_count; i++)
        if (p->logit_bias[i].token >= info.n_vocab)
            return hr_fail(HR_EINVAL, "logit_bias names token %d, but the vocabulary has %d tokens",
                           p->logit_bias[i].token, info.n_vocab);
    hr_engine_sampling sampling = hr_engine_sampling_from(p);
    rc = engine->sampler_create(em, &sampling, &sampler);
    if (rc != HR_OK) return rc;

    char small_piece[256];
    double first = 0, last = 0;
    rc = HR_OK;
    for (;;) {
        if (hr_model_step_cancelled(model)) {
            stats->stop_reason = HR_STOP_CANCELLED;
            break;
        }
        hr_token token = engine->sample(sampler, em);
        if (engine->is_end_of_generation(em, token)) {
            stats->stop_reason = HR_STOP_END_OF_TEXT;
            break;
        }
        last = hr_now_seconds();
        /* under a grammar (JSON, schemas, tool calls), a token is judged as constrained
         * (policy/guard.h) */
        if (first == 0) {
            first = last;
            hr_guard_begin(model);
        } else {
            hr_guard_token(model, hr_generate_constrained(p));
        }
        stats->generated_tokens++;
        if (p->logprob_fn && engine->token_logprobs) {
            hr_token_logprobs record;
            if (engine->token_logprobs(em, -1, token, p->top_logprobs, &record) == HR_OK)
                p->logprob_fn(&record, p->logprob_user_data);
        }

        int32_t length = engine->token_to_piece(em, token, small_piece, sizeof small_piece);
        int stop;
        if (length >= 0) {
            stop = stream_bytes(stream, small_piece, (size_t)length, 0);
        } else {
            char *large = malloc((size_t)-length);
            if (!large) { rc = hr_fail(HR_ENOMEM, "out of memory for a token's text"); break; }
            length = engine->token_to_piece(em, token, large, -length);
            stop = stream_bytes(stream, large, length > 0 ? (size_t)length : 0, 0);
            free(large);
        }
        if (stop == HR_ENOMEM) { rc = hr_fail(HR_ENOMEM, "out of memory streaming text"); break; }
        if (stop) { stats->stop_reason = stream->stops.matched ? HR_STOP_SEQUENCE : HR_STOP_CANCELLED; break; }

        if (stats->generated_tokens >= p->max_tokens) { stats->stop_reason = HR_STOP_MAX_TOKENS; break; }
        if (model->slots[0].count >= info.n_ctx) { stats->stop_reason = HR_STOP_CONTEXT_FULL; break; }
        rc = engine->decode(em, &token, 1);
        if (rc != HR_OK) {
            /* an aborted or failed step may have left part of itself in the window */
            int saved_rc = rc;
            char sentence[1024];
            snprintf(sentence, sizeof sentence, "%s", hr_last_error());
            keep_window(model, model->slots[0].count);
            if (saved_rc == HR_ECANCELLED) { stats->stop_reason = HR_STOP_CANCELLED; rc = HR_OK; break; }
            rc = hr_fail(saved_rc, "%s", sentence);
            break;
        }
        /* the answer joins the window, so a follow-up that repeats it reuses it */
        model->slots[0].tokens[model->slots[0].count++] = token;
    }
    engine->sampler_free(sampler);
    hr_generation_stats_finish(stats, started, first, last);
    return rc;
}

HR_API int hr_generate(hr_model *model, const char *prompt, const hr_generate_params *params,
                       hr_piece_fn piece_fn, void *user_data, hr_generation_stats *stats)
{
    return hr_generate_for(model, prompt, params, piece_fn, user_data, stats, NULL);
}

int hr_generate_for(hr_model *model, const char *prompt, const hr_generate_params *params,
                    hr_piece_fn piece_fn, void *user_data, hr_generation_stats *stats, const char *client)
{
    hr_clear_error();
    hr_generation_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    hr_generate_params p = params ? *params : hr_generate_default_params();
    if (!model || (!prompt && p.message_count == 0 && !p.chat) || !piece_fn)
        return hr_fail(HR_EINVAL, "hr_generate: model, a prompt (or messages) and piece_fn are required");
    int rc = check_params(&p);
    if (rc != HR_OK) return rc;
    if (p.chat && p.chat->model != model) return hr_fail(HR_EINVAL, "the chat was rendered for another model");
    char *formatted = NULL;   /* a conversation for an engine that takes text */
    if (p.message_count > 0 && model->engine->complete && !model->engine->decode) {
        rc = hr_model_apply_chat_template(model, p.messages, p.message_count, true, &formatted);
        if (rc != HR_OK) return rc;
        prompt = formatted;
    }

    bool idle = false;
    if (!atomic_compare_exchange_strong(&model->busy, &idle, true)) {
        free(formatted);
        return hr_fail(HR_EBUSY, "a generation is already running on this model");
    }
    /* what counts as cancelled from now on: a cancel before this line was for an earlier one */
    atomic_store(&model->step_epoch, atomic_load(&model->cancel_epoch));
    pthread_mutex_lock(&model->window_lock);   /* waits only for a snapshot save or restore */

    double started = hr_now_seconds();
    double wall = hr_wall_seconds();
    struct text_stream stream = { .fn = piece_fn, .user_data = user_data };
    hr_stop_init(&stream.stops, p.stop, p.stop_count);
    if (model->engine->complete && !model->engine->decode)   /* the remote engine: one request */
        rc = hr_generate_remote(model, prompt, &p, stream_piece, &stream, stats, started);
    else
        rc = run_generation(model, prompt, &p, &stream, stats, started);
    /* the remote engine sees a stop sequence as its reader stopping */
    if (stream.stops.matched && stats->stop_reason == HR_STOP_CANCELLED) stats->stop_reason = HR_STOP_SEQUENCE;
    if (stream.held_length > 0 && rc == HR_OK && stats->stop_reason != HR_STOP_CANCELLED)
        stream_bytes(&stream, "", 0, 1);   /* a character that never completed: U+FFFD */
    if (rc == HR_OK && stats->stop_reason != HR_STOP_CANCELLED && !stream.stops.matched) {
        const char *held;   /* text that might have begun a stop sequence, which never came */
        size_t held_length;
        hr_stop_flush(&stream.stops, &held, &held_length);
        if (held_length > 0) pass_on(&stream, held, held_length);
    }
    hr_stop_free(&stream.stops);
    free(stream.piece);
    free(stream.buffer);
    free(stream.out);
    if (stats->total_seconds == 0) stats->total_seconds = hr_now_seconds() - started;

    if (rc == HR_OK && stats->stop_reason == HR_STOP_CANCELLED)
        rc = hr_fail(HR_ECANCELLED, "the generation was cancelled after %d tokens", stats->generated_tokens);
    model->slots[0].last_used = ++model->slot_clock;
    pthread_mutex_unlock(&model->window_lock);
    atomic_store(&model->busy, false);
    free(formatted);
    hr_metrics_record(model, client, wall, stats, rc);
    return rc;
}

int hr_generate_check_params(const hr_generate_params *params)
{
    return check_params(params);
}

/* ---- the text stream, for the batched worker (batch.c) -------------------------------------- */

struct hr_text_stream {
    struct text_stream stream;
};

struct hr_text_stream *hr_text_stream_new(const hr_generate_params *params, hr_piece_fn piece_fn, void *user_data)
{
    struct hr_text_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->stream.fn = piece_fn;
    s->stream.user_data = user_data;
    hr_stop_init(&s->stream.stops, params->stop, params->stop_count);
    return s;
}

int hr_text_stream_feed(struct hr_text_stream *s, const char *bytes, size_t length)
{
    return stream_bytes(&s->stream, bytes, length, 0);
}

bool hr_text_stream_matched(const struct hr_text_stream *s)
{
    return s->stream.stops.matched;
}

void hr_text_stream_finish(struct hr_text_stream *s)
{
    struct text_stream *stream = &s->stream;
    if (stream->held_length > 0) stream_bytes(stream, "", 0, 1);
    if (stream->stops.matched) return;
    const char *held;
    size_t held_length;
    hr_stop_flush(&stream->stops, &held, &held_length);
    if (held_length > 0) pass_on(stream, held, held_length);
}

void hr_text_stream_free(struct hr_text_stream *s)
{
    if (!s) return;
    hr_stop_free(&s->stream.stops);
    free(s->stream.piece);
    free(s->stream.buffer);
    free(s->stream.out);
    free(s);
}
