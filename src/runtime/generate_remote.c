/*
 * generate_remote.c: one generation on a model whose engine works by whole requests (`complete`,
 * the remote engine): the request's text goes to the caller as it arrives, and the stats say what
 * the server reported (its token counts) and what headroom measured (first piece, speed).
 * hr_generate_for calls it in place of the token loop, with the same busy flag, cancel flag,
 * UTF-8 repair and metrics record around it.
 */
#include <string.h>

#include "core/error.h"
#include "runtime/model.h"

struct relay {
    hr_piece_fn fn;
    void *user_data;
    double first, last;   /* when the first and the latest text arrived */
};

static int relay_piece(const char *piece, size_t length, void *user_data)
{
    struct relay *relay = user_data;
    relay->last = hr_now_seconds();
    if (relay->first == 0) relay->first = relay->last;
    return relay->fn(piece, length, relay->user_data);
}

int hr_generate_remote(hr_model *model, const char *prompt, const hr_generate_params *p,
                       hr_piece_fn piece_fn, void *user_data, hr_generation_stats *stats, double started)
{
    if (p->logprob_fn)
        return hr_fail(HR_ENOTSUP, "log-probabilities cannot be read from the remote engine; they are kept for "
                       "models that run here");
    if (p->grammar)
        return hr_fail(HR_ENOTSUP, "a grammar (JSON mode, schemas) cannot be sent to the remote engine; "
                       "it is kept for models that run here");
    hr_engine_complete_params params = {
        .max_tokens = p->max_tokens,
        .sampling = hr_engine_sampling_from(p),
        .abort_fn = hr_model_abort_requested,
        .abort_user_data = model,
    };
    struct relay relay = { .fn = piece_fn, .user_data = user_data };
    hr_engine_complete_stats result;
    int rc = model->engine->complete(model->engine_model, prompt, &params, relay_piece, &relay, &result);

    stats->prompt_tokens = result.prompt_tokens;
    stats->generated_tokens = result.generated_tokens;
    stats->stop_reason = rc == HR_OK ? result.stop_reason : HR_STOP_NONE;
    stats->total_seconds = hr_now_seconds() - started;
    if (relay.first > 0) {
        /* the server's prompt processing and the network, as the caller waits for them */
        stats->time_to_first_token = relay.first - started;
        stats->prompt_seconds = stats->time_to_first_token;
        stats->decode_seconds = relay.last - relay.first;
        if (stats->generated_tokens > 1 && stats->decode_seconds > 0)
            stats->tokens_per_second = (stats->generated_tokens - 1) / stats->decode_seconds;
        if (stats->prompt_seconds > 0 && stats->prompt_tokens > 0)
            stats->prompt_tokens_per_second = stats->prompt_tokens / stats->prompt_seconds;
    }
    return rc;
}
