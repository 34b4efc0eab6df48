/*
 * engine_llama_sample.c: sampling: the sampler chain each session gets (the sampling set, seeds,
 * grammars), the grammar checked on the chosen token before the whole vocabulary is masked, and
 * logprobs from the model's logits before sampling.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <llama.h>

#include "core/error.h"
#include "engine/engine_llama_internal.h"

/* ---- sampling ------------------------------------------------------------------------------- */

int hr_llama_sampler_create(hr_engine_model *model, const hr_engine_sampling *params,
                            hr_engine_sampler **out)
{
    hr_engine_sampler *sampler = calloc(1, sizeof *sampler);
    if (!sampler) return hr_fail(HR_ENOMEM, "out of memory creating a sampler");
    struct llama_sampler_chain_params chain_params = llama_sampler_chain_default_params();
    chain_params.no_perf = true;
    sampler->chain = llama_sampler_chain_init(chain_params);
    struct llama_sampler *chain = sampler->chain;
    int32_t n_vocab = llama_vocab_n_tokens(model->vocab);
    /* the grammar is kept apart from the chain: sample_with_grammar asks it about the chain's
     * choice first and masks the whole vocabulary only when it refuses that one */
    if (params->grammar) {
        hr_llama_clear_last_error();
        if (params->grammar_lazy)
            sampler->grammar = llama_sampler_init_grammar_lazy_patterns(
                model->vocab, params->grammar, "root", (const char **)params->grammar_triggers,
                params->grammar_trigger_count, NULL, 0);
        else
            sampler->grammar = llama_sampler_init_grammar(model->vocab, params->grammar, "root");
        hr_llama_flush_log();
        sampler->n_vocab = n_vocab;
        sampler->candidates = sampler->grammar ? malloc(sizeof *sampler->candidates * (size_t)n_vocab) : NULL;
        if (!sampler->grammar || !sampler->candidates) {
            bool parsed = sampler->grammar != NULL;
            if (sampler->grammar) llama_sampler_free(sampler->grammar);
            llama_sampler_free(chain);
            free(sampler);
            if (parsed) return hr_fail(HR_ENOMEM, "out of memory creating a sampler");
            return hr_fail(HR_EINVAL, "the grammar does not parse%s%s", hr_llama_last_error()[0] ? ": " : "",
                           hr_llama_last_error());
        }
    }
    if (sampler->grammar && params->grammar_prefill && !params->grammar_lazy &&
        hr_llama_grammar_prefill(model->vocab, sampler->grammar, params->grammar_prefill) != HR_OK) {
        hr_llama_sampler_free(sampler);
        return HR_EINVAL;
    }
    /* llama.cpp's common sampler order: biases and penalties first, so greedy decoding sees them */
    if (params->logit_bias_count > 0) {
        llama_logit_bias biases[HR_MAX_LOGIT_BIAS];
        for (size_t i = 0; i < params->logit_bias_count; i++)
            biases[i] = (llama_logit_bias){ params->logit_bias[i].token, params->logit_bias[i].bias };
        llama_sampler_chain_add(chain, llama_sampler_init_logit_bias(n_vocab, (int32_t)params->logit_bias_count, biases));
    }
    if (params->repeat_last_n > 0 && (params->repeat_penalty != 1.0f || params->presence_penalty != 0 ||
                                      params->frequency_penalty != 0))
        llama_sampler_chain_add(chain, llama_sampler_init_penalties(n_vocab, params->repeat_last_n, params->repeat_penalty,
                                                                    params->frequency_penalty,
                                                                    params->presence_penalty));
    /* llama.cpp takes a 32-bit seed; fold the high half in so 64-bit seeds still differ. */
    uint32_t seed = (uint32_t)(params->seed ^ (params->seed >> 32));
    if (seed == LLAMA_DEFAULT_SEED) seed ^= 1; /* LLAMA_DEFAULT_SEED would mean "random" */
    if (params->temperature <= 0.0f) {
        llama_sampler_chain_add(chain, llama_sampler_init_greedy());
    } else if (params->mirostat == 1) {
        llama_sampler_chain_add(chain, llama_sampler_init_temp(params->temperature));
        llama_sampler_chain_add(chain, llama_sampler_init_mirostat(n_vocab, seed, params->mirostat_tau,
                                                                   params->mirostat_eta, 100));
    } else if (params->mirostat == 2) {
        llama_sampler_chain_add(chain, llama_sampler_init_temp(params->temperature));
        llama_sampler_chain_add(chain, llama_sampler_init_mirostat_v2(seed, params->mirostat_tau, params->mirostat_eta));
    } else {
        if (params->top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(params->top_k));
        if (params->typical_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_typical(params->typical_p, 1));
        if (params->top_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_p(params->top_p, 1));
        if (params->min_p > 0.0f) llama_sampler_chain_add(chain, llama_sampler_init_min_p(params->min_p, 1));
        llama_sampler_chain_add(chain, llama_sampler_init_temp(params->temperature));
        llama_sampler_chain_add(chain, llama_sampler_init_dist(seed));
    }
    *out = sampler;
    return HR_OK;
}

/* The candidates of the last decode's logits, every token. */
static llama_token_data_array fill_candidates(hr_engine_sampler *sampler, const float *logits)
{
    for (int32_t i = 0; i < sampler->n_vocab; i++)
        sampler->candidates[i] = (llama_token_data){ i, logits[i], 0.0f };
    return (llama_token_data_array){ sampler->candidates, (size_t)sampler->n_vocab, -1, false };
}

/* llama.cpp's own way (common/sampling.cpp): the chain chooses as if there were no grammar; the
 * grammar checks that one token; only when it refuses is the whole vocabulary masked by the
 * grammar and the chain asked again. The result is the masked distribution, but a model that
 * mostly writes what the grammar allows costs one token's check per step instead of a pass over
 * the vocabulary (which also allocates: its page faults would read as thrash to the guard). */
static hr_token sample_with_grammar(hr_engine_sampler *sampler, hr_engine_model *model, int32_t index)
{
    const float *logits = llama_get_logits_ith(model->ctx, index);
    llama_token_data_array all = fill_candidates(sampler, logits);
    llama_sampler_apply(sampler->chain, &all);
    hr_token token = all.selected >= 0 ? all.data[all.selected].id : 0;
    llama_token_data single = { token, 1.0f, 0.0f };
    llama_token_data_array one = { &single, 1, -1, false };
    llama_sampler_apply(sampler->grammar, &one);
    if (single.logit == -INFINITY) {
        all = fill_candidates(sampler, logits);
        llama_sampler_apply(sampler->grammar, &all);
        llama_sampler_apply(sampler->chain, &all);
        token = all.selected >= 0 ? all.data[all.selected].id : 0;
    }
    llama_sampler_accept(sampler->grammar, token);
    llama_sampler_accept(sampler->chain, token);
    return token;
}

hr_token hr_llama_sample(hr_engine_sampler *sampler, hr_engine_model *model)
{
    if (sampler->grammar) return sample_with_grammar(sampler, model, -1);
    return llama_sampler_sample(sampler->chain, model->ctx, -1);
}

static void fill_logprob(hr_engine_model *model, hr_token token, float logprob, hr_logprob *out)
{
    out->token = token;
    out->logprob = logprob;
    char piece[256];
    int32_t length = llama_token_to_piece(model->vocab, token, piece, sizeof piece, 0, false);
    if (length < 0) length = 0;
    if (length > HR_MAX_PIECE_BYTES) length = HR_MAX_PIECE_BYTES;
    memcpy(out->piece, piece, (size_t)length);
    out->length = length;
}

int hr_llama_token_logprobs(hr_engine_model *model, int32_t index, hr_token chosen, int32_t top,
                            hr_token_logprobs *out)
{
    memset(out, 0, sizeof *out);
    const float *logits = llama_get_logits_ith(model->ctx, index);
    int32_t n_vocab = llama_vocab_n_tokens(model->vocab);
    if (!logits || chosen < 0 || chosen >= n_vocab) return hr_fail(HR_EENGINE, "no logits to read log-probabilities from");
    float max = logits[0];
    for (int32_t i = 1; i < n_vocab; i++) if (logits[i] > max) max = logits[i];
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - max);
    double log_sum = max + log(sum);
    fill_logprob(model, chosen, (float)(logits[chosen] - log_sum), &out->chosen);
    if (top > HR_MAX_TOP_LOGPROBS) top = HR_MAX_TOP_LOGPROBS;
    if (top > n_vocab) top = n_vocab;
    /* the top few by insertion: top is at most 20 */
    int32_t best[HR_MAX_TOP_LOGPROBS];
    int32_t found = 0;
    for (int32_t i = 0; i < n_vocab && top > 0; i++) {
        if (found == top && logits[i] <= logits[best[found - 1]]) continue;
        int32_t at = found < top ? found++ : top - 1;
        while (at > 0 && logits[best[at - 1]] < logits[i]) {
            best[at] = best[at - 1];
            at--;
        }
        best[at] = i;
    }
    for (int32_t k = 0; k < found; k++) fill_logprob(model, best[k], (float)(logits[best[k]] - log_sum), &out->top[k]);
    out->top_count = found;
    return HR_OK;
}

hr_token hr_llama_sample_at(hr_engine_sampler *sampler, hr_engine_model *model, int32_t index)
{
    if (sampler->grammar) return sample_with_grammar(sampler, model, index);
    return llama_sampler_sample(sampler->chain, model->ctx, index);
}

void hr_llama_sampler_free(hr_engine_sampler *sampler)
{
    if (!sampler) return;
    llama_sampler_free(sampler->chain);
    if (sampler->grammar) llama_sampler_free(sampler->grammar);
    free(sampler->candidates);
    free(sampler);
}
