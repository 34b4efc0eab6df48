/*
 * engine_llama_embed.c: embeddings, in a llama.cpp context of their own made on first use, so that
 * they never touch the generation window's KV; the model's pooling, mean where it declares none.
 */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <llama.h>

#include "core/error.h"
#include "engine/engine_llama_internal.h"

/* ---- embeddings ----------------------------------------------------------------------------- */

enum { EMBED_MAX_CONTEXT = 2048 };

/* The embedding context: the model's declared pooling, mean where it declares none (a
 * generative model), one sequence, the whole input in one batch (encoders need that). */
static int embed_context(hr_engine_model *model)
{
    if (model->embed_ctx) return HR_OK;
    int32_t n_ctx = model->n_ctx_seq;   /* what one request may hold in the generation window */
    int32_t n_train = llama_model_n_ctx_train(model->model);
    if (n_train > 0 && n_train < n_ctx) n_ctx = n_train;
    if (n_ctx > EMBED_MAX_CONTEXT) n_ctx = EMBED_MAX_CONTEXT;
    struct llama_context_params params = llama_context_default_params();
    params.n_ctx = (uint32_t)n_ctx;
    params.n_batch = (uint32_t)n_ctx;
    params.n_ubatch = (uint32_t)n_ctx;
    params.n_seq_max = 1;
    params.embeddings = true;
    params.pooling_type = LLAMA_POOLING_TYPE_UNSPECIFIED;   /* the model's own */
    params.n_threads = model->n_threads > 0 ? model->n_threads : 1;
    params.n_threads_batch = params.n_threads;
    params.no_perf = true;
    hr_llama_clear_last_error();
    struct llama_context *ctx = llama_init_from_model(model->model, params);
    if (ctx && llama_pooling_type(ctx) == LLAMA_POOLING_TYPE_NONE) {
        llama_free(ctx);
        params.pooling_type = LLAMA_POOLING_TYPE_MEAN;
        ctx = llama_init_from_model(model->model, params);
    }
    hr_llama_flush_log();
    if (!ctx)
        return hr_fail(HR_EENGINE, "llama.cpp could not create a context for embeddings (%d tokens)%s%s", n_ctx,
                       hr_llama_last_error()[0] ? ": " : "", hr_llama_last_error());
    if (llama_pooling_type(ctx) == LLAMA_POOLING_TYPE_RANK) {
        llama_free(ctx);
        return hr_fail(HR_ENOTSUP, "this model is a reranker (rank pooling): it scores pairs of texts and "
                       "gives no embeddings");
    }
    model->embed_ctx = ctx;
    model->embed_n_ctx = n_ctx;
    return HR_OK;
}

/* The input's tokens into a malloc'd *out, at most `limit` of them: *input_tokens gets how many
 * the whole text makes. Cut to fit when `truncate` (keeping the end token the vocabulary appends,
 * [SEP] or EOS, as the last one), else HR_ECONTEXT. Plain text: an input must not forge control
 * tokens; the start and end tokens the vocabulary wants ([CLS] ... [SEP] for BERT) are added. */
static int embed_tokens(const struct llama_vocab *vocab, const char *text, int32_t length, int32_t limit,
                        bool truncate, hr_token **out, int32_t *count, int32_t *input_tokens)
{
    *out = NULL;
    *count = 0;
    *input_tokens = 0;
    hr_token *tokens = malloc(sizeof *tokens * (size_t)limit);
    if (!tokens) return hr_fail(HR_ENOMEM, "out of memory embedding a text");
    int32_t n = llama_tokenize(vocab, text, length, tokens, limit, true, false);
    if (n < 0 && n != INT32_MIN && truncate) {
        int32_t whole = -n;
        hr_token *all = malloc(sizeof *all * (size_t)whole);
        if (!all) {
            free(tokens);
            return hr_fail(HR_ENOMEM, "out of memory embedding a text of %d tokens", whole);
        }
        n = llama_tokenize(vocab, text, length, all, whole, true, false);
        if (n == whole) {
            bool end_token = llama_vocab_get_add_eos(vocab) || llama_vocab_get_add_sep(vocab);
            memcpy(tokens, all, sizeof *tokens * (size_t)limit);
            if (end_token && limit > 1) tokens[limit - 1] = all[whole - 1];
            *input_tokens = whole;
            *count = limit;
        }
        free(all);
        if (*count == limit) {
            *out = tokens;
            return HR_OK;
        }
        n = n < 0 ? n : -whole;
    }
    if (n < 0) {
        free(tokens);
        if (n == INT32_MIN)
            return hr_fail(HR_ECONTEXT, "the input is too long to count its tokens (more than %d)", INT32_MAX);
        return hr_fail(HR_ECONTEXT, "the input is %d tokens, but embeddings take at most %d on this model; "
                       "send a shorter text, or ask for truncation", -n, limit);
    }
    if (n == 0) {
        free(tokens);
        return hr_fail(HR_EINVAL, "the input is empty and this model adds no token to it");
    }
    *out = tokens;
    *count = n;
    *input_tokens = n;
    return HR_OK;
}

int hr_llama_embed(hr_engine_model *model, const char *text, size_t length, bool normalize, bool truncate,
                   float *out, int32_t capacity, int32_t *n_tokens, int32_t *input_tokens, bool *created)
{
    *n_tokens = 0;
    *input_tokens = 0;
    *created = false;
    int32_t n_embd = llama_model_n_embd(model->model);
    if (capacity < n_embd)
        return hr_fail(HR_EINVAL, "room for %d floats, but this model's embeddings have %d", capacity, n_embd);
    if (length > INT32_MAX) return hr_fail(HR_EINVAL, "text of %zu bytes is too long to embed", length);
    pthread_mutex_lock(&model->embed_lock);
    bool existed = model->embed_ctx != NULL;
    int rc = embed_context(model);
    *created = !existed && model->embed_ctx;
    hr_token *tokens = NULL;
    int32_t count = 0;
    if (rc == HR_OK)
        rc = embed_tokens(model->vocab, text, (int32_t)length, model->embed_n_ctx, truncate, &tokens, &count,
                          input_tokens);
    if (rc == HR_OK) {
        *n_tokens = count;
        llama_memory_clear(llama_get_memory(model->embed_ctx), true);
        struct llama_batch batch = llama_batch_get_one(tokens, count);
        hr_llama_clear_last_error();
        int32_t status = llama_model_has_encoder(model->model) && !llama_model_has_decoder(model->model)
                             ? llama_encode(model->embed_ctx, batch)
                             : llama_decode(model->embed_ctx, batch);
        hr_llama_flush_log();
        const float *pooled = status == 0 ? llama_get_embeddings_seq(model->embed_ctx, 0) : NULL;
        if (status != 0 || !pooled) {
            rc = hr_fail(HR_EENGINE, "llama.cpp could not compute the embedding (code %d)%s%s", status,
                         hr_llama_last_error()[0] ? ": " : "", hr_llama_last_error());
        } else {
            double norm = 0;
            for (int32_t i = 0; i < n_embd; i++) norm += (double)pooled[i] * pooled[i];
            norm = sqrt(norm);
            double scale = normalize && norm > 0 ? 1.0 / norm : 1.0;
            for (int32_t i = 0; i < n_embd; i++) out[i] = (float)(pooled[i] * scale);
        }
    }
    pthread_mutex_unlock(&model->embed_lock);
    free(tokens);
    return rc;
}
