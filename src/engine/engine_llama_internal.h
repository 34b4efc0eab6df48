/*
 * engine_llama_internal.h: what the llama.cpp engine's files share: the file check, the one place
 * that turns hr_engine_load_params into llama.cpp's parameters (so an estimate describes the very
 * load that would follow), the engine's last error line, and the two estimate methods.
 * Only src/engine/ includes this file.
 */
#ifndef HR_ENGINE_LLAMA_INTERNAL_H
#define HR_ENGINE_LLAMA_INTERNAL_H

#include <ggml.h>
#include <llama.h>

#include "engine/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

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
