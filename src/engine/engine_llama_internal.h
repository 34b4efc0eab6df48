/*
 * engine_llama_internal.h: what the llama.cpp engine's files share: the loaded model's struct, the
 * operations each file implements, the file check, the one place that turns hr_engine_load_params
 * into llama.cpp's parameters (so an estimate describes the very load that would follow), the
 * engine's last error line, and the two estimate methods.
 * Only src/engine/ includes this file.
 */
#ifndef HR_ENGINE_LLAMA_INTERNAL_H
#define HR_ENGINE_LLAMA_INTERNAL_H

#include <pthread.h>

#include <ggml.h>
#include <llama.h>

#include "engine/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The loaded model and a session's sampler, shared by the engine's files; no one outside
 * src/engine/ sees their fields. */
/* K and V for up to 512 layers. */
enum { HR_LLAMA_MAX_KV_TENSORS = 1024 };

struct hr_engine_model {
    struct llama_model *model;
    struct llama_context *ctx;
    const struct llama_vocab *vocab;
    int32_t n_seq_max;       /* sequences (slots) in the window */
    int32_t n_ctx_seq;       /* tokens each may hold: the window's cells over n_seq_max */
    struct llama_batch batch;   /* decode_batch's, n_batch entries; only the decoding thread */
    int32_t n_threads;
    int32_t n_gpu_layers;    /* as requested */
    uint64_t file_bytes;
    enum hr_load_mode load_mode;
    hr_engine_abort_fn abort_fn;
    void *abort_user_data;
    char cache_types[32];    /* "f16/f16": the KV cache's element types, as created */

    /* Embeddings run in a context of their own, created on first use, so they never touch the
     * generation window's KV. embed_lock guards the two fields below and serialises embeddings. */
    pthread_mutex_t embed_lock;
    struct llama_context *embed_ctx;
    int32_t embed_n_ctx;

    /* The KV cache's tensors (a K and a V per layer, [width, cells, sequences]), found by the
     * eval callback during the first decode (engine_llama_kv.c); written only by the decoding
     * thread until kv_found is set (with __atomic builtins: C++ reads this header too),
     * read-only after. */
    struct ggml_tensor *kv_tensors[HR_LLAMA_MAX_KV_TENSORS];
    int32_t n_kv_tensors;
    bool kv_found;
};

struct hr_engine_sampler {
    struct llama_sampler *chain;
    struct llama_sampler *grammar;   /* apart from the chain (see sample_with_grammar), or NULL */
    llama_token_data *candidates;    /* n_vocab entries, for the grammar's passes */
    int32_t n_vocab;
};

/* Flushes the log line llama.cpp is assembling on this thread (its last error included). */
void hr_llama_flush_log(void);

/* The tokens sequence `seq` holds (its positions are 0 .. n - 1). */
int32_t hr_llama_seq_tokens(hr_engine_model *model, int32_t seq);

/* engine_llama_kv.c: the eval callback that finds the KV cache's tensors, its end of a decode,
 * and one sequence's KV memory: resident bytes, and forgetting it with its pages given back. */
struct ggml_tensor;
bool hr_llama_kv_eval_callback(struct ggml_tensor *t, bool ask, void *user_data);
void hr_llama_kv_note_decoded(hr_engine_model *model);
uint64_t hr_llama_seq_resident_bytes(hr_engine_model *model, int32_t seq);
/* engine_llama_state.c: the first `capacity` tokens a sequence state file lists. */
int hr_llama_state_file_tokens(const char *path, hr_token *tokens, int32_t capacity, int32_t *count);
int hr_llama_seq_release(hr_engine_model *model, int32_t seq, uint64_t *released);

/* The engine operations (engine.h's hr_engine_ops) by file; engine_llama.c fills the table. */
/* engine_llama_text.c */
int32_t hr_llama_tokenize(hr_engine_model *model, const char *text, size_t length,
                          bool add_special, hr_token *tokens, int32_t capacity);
int32_t hr_llama_piece(hr_engine_model *model, hr_token token, char *buffer, int32_t capacity);
bool hr_llama_is_eog(hr_engine_model *model, hr_token token);
int hr_llama_apply_chat_template(const hr_engine_model *model, const hr_chat_message *messages,
                                 size_t count, bool add_assistant, char **out);
int32_t hr_llama_tokenize_special(hr_engine_model *model, const char *text, size_t length,
                                  hr_token *tokens, int32_t capacity);
int hr_llama_tokenize_chat(hr_engine_model *model, const hr_chat_message *messages, size_t count,
                           hr_token **tokens, int32_t *n_tokens);
/* engine_llama_state.c */
int hr_llama_truncate(hr_engine_model *model, int32_t seq, int32_t count);
uint64_t hr_llama_state_size(hr_engine_model *model, int32_t seq);
int hr_llama_state_save(hr_engine_model *model, int32_t seq, const char *path, const hr_token *tokens,
                        int32_t count);
int hr_llama_state_load(hr_engine_model *model, int32_t seq, const char *path, hr_token *tokens,
                        int32_t capacity, int32_t *count);
bool hr_llama_is_state_file(const unsigned char *head, size_t length);
/* engine_llama_sample.c */
int hr_llama_sampler_create(hr_engine_model *model, const hr_engine_sampling *params,
                            hr_engine_sampler **out);
hr_token hr_llama_sample(hr_engine_sampler *sampler, hr_engine_model *model);
int hr_llama_token_logprobs(hr_engine_model *model, int32_t index, hr_token chosen, int32_t top,
                            hr_token_logprobs *out);
hr_token hr_llama_sample_at(hr_engine_sampler *sampler, hr_engine_model *model, int32_t index);
void hr_llama_sampler_free(hr_engine_sampler *sampler);
/* engine_llama_chat.cpp: conversations with tools (engine.h's chat_*); only where the build found
 * llama.cpp's source tree (hr_llama_have_chat() says; else engine_llama_text.c's stubs answer). */
bool hr_llama_have_chat(void);
int hr_llama_chat_create(hr_engine_model *model, const hr_chat_params *params, hr_engine_chat **out);
int hr_llama_chat_parse(const hr_engine_chat *chat, const char *text, size_t length, bool partial, char **json);
void hr_llama_chat_free(hr_engine_chat *chat);
/* Feeds `text` (tokenized with control tokens) to a grammar sampler; HR_EINVAL when it refuses. */
int hr_llama_grammar_prefill(const struct llama_vocab *vocab, struct llama_sampler *grammar, const char *text);
/* engine_llama_text.c: a rendered conversation's tokens, its messages' text kept plain */
int hr_llama_chat_tokenize(hr_engine_model *model, const hr_engine_chat *chat, hr_token **tokens, int32_t *n_tokens);
/* engine_llama_embed.c */
int hr_llama_embed(hr_engine_model *model, const char *text, size_t length, bool normalize, bool truncate,
                   float *out, int32_t capacity, int32_t *n_tokens, int32_t *input_tokens, bool *created);

/* What the file check learned from the GGUF header on the way. */
typedef struct hr_llama_file_facts {
    uint64_t file_bytes;
    uint64_t n_tokens;    /* tokenizer.ggml.tokens entries; 0 when absent */
    uint64_t n_merges;    /* tokenizer.ggml.merges entries (BPE vocabularies) */
} hr_llama_file_facts;

/* Existence, permission, the GGUF magic, a parseable header and a file as long as its tensor
 * table says: llama.cpp reports those as a bare failure, so headroom checks them first. */
int hr_llama_check_model_file(const char *path, hr_llama_file_facts *facts);

/* llama_backend_init and the log relay, once per process. */
void hr_llama_backend_once(void);

/* The engine's last error line on this thread ("" if none), cleared before each engine call
 * whose failure it should explain. */
const char *hr_llama_last_error(void);
void hr_llama_clear_last_error(void);

/* The context and batch a load with `params` gets: 0 means the trained length, at most 4096;
 * the batch is at most the context. */
int32_t hr_llama_resolve_n_ctx(int32_t requested, int32_t n_ctx_train);
int32_t hr_llama_resolve_n_batch(int32_t requested, int32_t n_ctx);

/* llama.cpp's parameters for a load with `params`. context_params fails with HR_EINVAL on an
 * unknown KV cache type. */
struct llama_model_params hr_llama_model_params(const hr_engine_load_params *params);
int hr_llama_context_params(const hr_engine_load_params *params, int32_t n_ctx_train,
                            struct llama_context_params *out);

/* The host memory llama.cpp uses beyond its buffers (the vocabulary's tables, code, threads),
 * modelled from the vocabulary's size: docs/preflight.md shows the measurements behind it. */
uint64_t hr_llama_overhead_bytes(uint64_t n_tokens, uint64_t n_merges);

/* The two estimate methods. The dry run (engine_llama_fit.cpp) exists only when the build found
 * llama.cpp's source tree with src/llama-ext.h; hr_llama_have_dry_run() says whether it did. */
bool hr_llama_have_dry_run(void);
int hr_llama_dry_run_estimate(const char *path, const hr_engine_estimate_params *params,
                              const hr_llama_file_facts *facts, hr_engine_estimate *out);
int hr_llama_formula_estimate(const char *path, const hr_engine_estimate_params *params,
                              const hr_llama_file_facts *facts, hr_engine_estimate *out);

#ifdef __cplusplus
}
#endif

#endif /* HR_ENGINE_LLAMA_INTERNAL_H */
