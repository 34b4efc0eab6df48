/*
 * engine.h: the interface between headroom and an inference engine, as a table of functions.
 * engine_llama.c implements it on llama.cpp; a remote engine and fakes for unit tests can too.
 * Nothing outside src/engine/ includes an engine's own headers: they see only this file.
 */
#ifndef HR_ENGINE_H
#define HR_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "headroom.h"

typedef struct hr_engine_model hr_engine_model;     /* weights plus one context window */
typedef struct hr_engine_sampler hr_engine_sampler; /* sampling state for one generation */
typedef int32_t hr_token;

/* Returns true to abort the decode step in progress. Called from the engine's compute threads. */
typedef bool (*hr_engine_abort_fn)(void *user_data);

typedef struct hr_engine_load_params {
    int32_t n_ctx;        /* tokens per sequence; 0: the model's trained length, at most 4096 */
    int32_t n_seq_max;    /* sequences (slots) the window holds, each with n_ctx tokens of its own
                             in one KV buffer; 0: 1 */
    int32_t n_batch;      /* 0: 512 */
    int32_t n_threads;    /* > 0 */
    int32_t n_gpu_layers; /* -1: as many as fit */
    enum hr_load_mode load_mode;
    hr_progress_fn progress_fn;
    void *progress_user_data;
    hr_engine_abort_fn abort_fn; /* consulted during every decode step of this model */
    void *abort_user_data;
    const hr_remote_params *remote; /* the remote engine's endpoint; NULL for local engines */

    const char *type_k;   /* KV cache types by ggml's names ("f16", "q8_0", ...); NULL: f16 */
    const char *type_v;
} hr_engine_load_params;

typedef struct hr_engine_model_info {
    char description[128];
    char name[128];
    uint64_t n_params;
    uint64_t weight_bytes;
    uint64_t file_bytes;
    int32_t n_layer;
    int32_t n_ctx_train;
    int32_t n_ctx;           /* tokens one sequence may hold */
    int32_t n_seq_max;       /* sequences the window holds (1 for engines without decode_batch) */
    int32_t n_batch;
    int32_t n_vocab;
    int32_t n_embd;          /* the width of the model's embeddings */
    int32_t n_layer_gpu;
    int32_t n_threads;
    enum hr_load_mode load_mode;
    char cache_types[32];    /* the KV cache's element types, "f16/f16": part of a snapshot's identity */
    bool remote;             /* a server elsewhere generates; nothing is held here */
    char endpoint[256];      /* the remote engine's base URL, or "" */
} hr_engine_model_info;

typedef struct hr_engine_sampling {
    float temperature;
    int32_t top_k;
    float top_p;
    float min_p;
    uint64_t seed;
    float typical_p;          /* the fields below as in hr_generate_params */
    float repeat_penalty;
    int32_t repeat_last_n;
    float presence_penalty;
    float frequency_penalty;
    int32_t mirostat;
    float mirostat_tau;
    float mirostat_eta;
    const hr_logit_bias *logit_bias;   /* borrowed during sampler_create / complete */
    size_t logit_bias_count;
    const char *grammar;      /* GBNF the output follows, or NULL; borrowed during sampler_create */
    /* A lazy grammar constrains the output only from the first match of one of its trigger
     * patterns (regular expressions over the text generated so far) on: a tool call's marker. */
    bool grammar_lazy;
    const char *const *grammar_triggers;
    size_t grammar_trigger_count;
    const char *grammar_prefill;   /* text the grammar has already seen (a template's generation
                                      prompt that its grammar begins with), or NULL */
} hr_engine_sampling;

/* A conversation rendered by the model's own (Jinja) chat template, with its tools: what the
 * runtime needs to generate the answer and to read tool calls out of it. Made by chat_create,
 * read-only afterwards (any thread), released by chat_free. */
typedef struct hr_engine_chat {
    char *prompt;                 /* the rendered text: the template's control-token text in it */
    char *grammar;                /* GBNF of a valid answer with tool calls, or NULL */
    bool grammar_lazy;            /* the grammar starts at a trigger (tool_choice auto) */
    char **grammar_triggers;      /* regular expressions */
    size_t grammar_trigger_count;
    char *grammar_prefill;        /* see hr_engine_sampling, or NULL */
    char **contents;              /* each message's text, read as plain text in the prompt */
    size_t content_count;
    bool tools;                   /* the answer may hold tool calls: read it with chat_parse */
    const char *format_name;      /* llama.cpp's name of the output format (static) */
    void *impl;                   /* the engine's own (the parser) */
} hr_engine_chat;

/* The engine's sampling parameters for one generation's hr_generate_params (runtime/generate.c). */
hr_engine_sampling hr_engine_sampling_from(const hr_generate_params *params);

/* A whole request, for engines that cannot work token by token (the remote engine). */
typedef struct hr_engine_complete_params {
    int32_t max_tokens;
    hr_engine_sampling sampling;
    hr_engine_abort_fn abort_fn;  /* polled while the request runs; true stops it within ~50 ms */
    void *abort_user_data;
} hr_engine_complete_params;

typedef struct hr_engine_complete_stats {
    int32_t prompt_tokens;        /* the server's usage; 0 when it sent none */
    int32_t generated_tokens;     /* its usage, else the text chunks received (a token each on
                                     llama.cpp's server, vLLM and headroomd) */
    bool usage_known;             /* the counts above came from the server's usage */
    enum hr_stop_reason stop_reason;
} hr_engine_complete_stats;

/* ---- memory estimate: what a load with given parameters would take, per device ------------- */

typedef struct hr_engine_estimate_params {
    hr_engine_load_params load;  /* the load this estimate is for (callbacks are not used) */
    bool formula_only;           /* skip the engine's own dry run (tests compare the two methods) */
} hr_engine_estimate_params;

enum { HR_ENGINE_MAX_DEVICES = 8 };

typedef struct hr_engine_device_estimate {
    char name[64];                 /* "CPU" for the host, else the engine's device name */
    bool is_gpu;
    uint64_t weights_bytes;        /* model tensors placed on this device */
    uint64_t kv_bytes;             /* the KV cache (context) */
    uint64_t compute_bytes;        /* scratch buffers of one decode step at n_batch tokens */
    uint64_t overhead_bytes;       /* the engine's own heap and code: host only (docs/preflight.md) */
    uint64_t kv_bytes_per_token;   /* how kv_bytes grows with the context length (per sequence:
                                      a token more in each of the window's sequences) */
    uint64_t compute_bytes_per_token; /* how compute_bytes grows with it */
    uint64_t memory_total_bytes;   /* as the device reports it; 0: unknown (always 0 for the host) */
    uint64_t memory_free_bytes;
} hr_engine_device_estimate;

typedef struct hr_engine_estimate {
    char method[16];               /* "engine" (llama.cpp's dry run) or "formula" */
    uint64_t n_params;
    uint64_t weight_bytes;         /* all weight tensors, wherever they go */
    uint64_t file_bytes;
    int32_t n_layer;
    int32_t n_ctx_train;
    int32_t n_ctx;                 /* the context per sequence the estimate is for, as the engine
                                      rounds it; load.n_seq_max sequences of it */
    int32_t n_batch;
    size_t n_devices;              /* the host first, then each device that gets a share */
    hr_engine_device_estimate devices[HR_ENGINE_MAX_DEVICES];
} hr_engine_estimate;

/* One token of a batch (decode_batch): which sequence it extends, at which position, and whether
 * its logits are wanted (sample_at reads them by the entry's index in the batch). */
typedef struct hr_engine_batch_entry {
    hr_token token;
    int32_t seq;      /* 0 .. n_seq_max - 1 */
    int32_t pos;      /* the sequence's next position: the tokens it holds so far */
    bool logits;
} hr_engine_batch_entry;

/* Every function that can fail returns 0 or a negative HR_E* code and, on failure, has set the
 * thread's error sentence (core/error.h). */
typedef struct hr_engine_ops {
    const char *name;

    /* Loads weights and creates a context window. A cancelled load returns HR_ECANCELLED. */
    int (*load)(const char *path, const hr_engine_load_params *params, hr_engine_model **out);
    void (*unload)(hr_engine_model *model);
    void (*get_info)(const hr_engine_model *model, hr_engine_model_info *out);

    /* Writes at most `capacity` tokens; returns the count, or minus the count needed when
     * `capacity` is too small. `add_special` adds the model's start token where it wants one. */
    int32_t (*tokenize)(hr_engine_model *model, const char *text, size_t length, bool add_special,
                        hr_token *tokens, int32_t capacity);
    /* The bytes of one token (not necessarily whole UTF-8); returns the length, or minus the
     * length needed when `capacity` is too small. */
    int32_t (*token_to_piece)(hr_engine_model *model, hr_token token, char *buffer, int32_t capacity);
    bool (*is_end_of_generation)(hr_engine_model *model, hr_token token);
    /* As tokenize with add_special, but control-token text in `text` becomes control tokens
     * and a start token the text begins with is not doubled. Optional (NULL: plain tokenize). */
    int32_t (*tokenize_special)(hr_engine_model *model, const char *text, size_t length,
                                hr_token *tokens, int32_t capacity);
    /* The tokens of `messages` formatted with the chat template (assistant's turn opened) into
     * a malloc'd *tokens: the template's text with its control tokens, the content as plain text
     * (engine_llama_text.c says how). Optional (NULL: the runtime formats and tokenizes the text). */
    int (*tokenize_chat)(hr_engine_model *model, const hr_chat_message *messages, size_t count,
                         hr_token **tokens, int32_t *n_tokens);
    /* Conversations with tools through the model's Jinja template (hr_engine_chat). Optional
     * (NULL: no tools; the runtime answers HR_ENOTSUP). chat_tokenize gives the prompt's tokens
     * as tokenize_chat does (the template's text with control tokens, the messages' text plain);
     * chat_parse reads generated text into JSON {"content", "tool_calls": [{"id", "name",
     * "arguments"}], "reasoning_content"?} (a malloc'd *json). */
    int (*chat_create)(hr_engine_model *model, const hr_chat_params *params, hr_engine_chat **out);
    int (*chat_tokenize)(hr_engine_model *model, const hr_engine_chat *chat, hr_token **tokens, int32_t *n_tokens);
    int (*chat_parse)(const hr_engine_chat *chat, const char *text, size_t length, bool partial, char **json);
    void (*chat_free)(hr_engine_chat *chat);
    /* Formats messages with the model's chat template into a malloc'd string (*out). */
    int (*apply_chat_template)(const hr_engine_model *model, const hr_chat_message *messages,
                               size_t count, bool add_assistant, char **out);

    /* Forgets every token of the context window. */
    void (*reset)(hr_engine_model *model);
    /* Appends `count` tokens to sequence 0 and computes the logits of the last one.
     * Returns HR_ECANCELLED when the model's abort_fn stopped it, HR_ECONTEXT when full. */
    int (*decode)(hr_engine_model *model, const hr_token *tokens, int32_t count);
    /* Optional (NULL: one sequence only, decode above): decodes `count` entries (at most
     * n_batch, each sequence's positions consecutive from what it holds) in one step, so several
     * sequences advance together. HR_ECANCELLED when abort_fn stopped it (what it finished may
     * stay in the sequences: the caller cuts them back with truncate), HR_ECONTEXT when the
     * window had no room. */
    int (*decode_batch)(hr_engine_model *model, const hr_engine_batch_entry *entries, int32_t count);

    int (*sampler_create)(hr_engine_model *model, const hr_engine_sampling *params,
                          hr_engine_sampler **out);
    /* Picks the next token from the logits of the last decode and records it in the sampler. */
    hr_token (*sample)(hr_engine_sampler *sampler, hr_engine_model *model);
    /* The same from the logits of entry `index` of the last decode_batch (with decode_batch),
     * under the sampler's grammar as sample's. */
    hr_token (*sample_at)(hr_engine_sampler *sampler, hr_engine_model *model, int32_t index);
    /* The log-probability of `chosen` and the `top` most likely tokens under the logits of the
     * last decode (index -1) or of entry `index` of the last decode_batch (log-softmax of the raw
     * logits). Optional (NULL: no logprobs). */
    int (*token_logprobs)(hr_engine_model *model, int32_t index, hr_token chosen, int32_t top,
                          hr_token_logprobs *out);
    void (*sampler_free)(hr_engine_sampler *sampler);

    /* ---- the context window's state, for prompt-prefix reuse and KV snapshots ------------- */

    /* Keeps the first `count` tokens of sequence `seq` and forgets the rest (count 0: all of
     * it), so a prompt that shares them decodes only what follows. HR_ENOTSUP where the engine
     * cannot cut a sequence in the middle (recurrent models): the caller forgets it instead. */
    int (*truncate)(hr_engine_model *model, int32_t seq, int32_t count);
    /* Bytes that state_save would write for sequence `seq` (an upper bound is fine). */
    uint64_t (*state_size)(hr_engine_model *model, int32_t seq);
    /* Writes sequence `seq`'s state and its `count` tokens to `path`, in place. On failure (a
     * full disk is HR_EIO with a sentence that says so) `path` is removed: nothing half-written
     * is left. Atomic replacement (a temporary name, then rename) is the caller's. */
    int (*state_save)(hr_engine_model *model, int32_t seq, const char *path, const hr_token *tokens,
                      int32_t count);
    /* Replaces sequence `seq` with the state saved at `path`; its tokens go to `tokens` (at most
     * `capacity`), their count to *count. On failure the sequence is empty. */
    int (*state_load)(hr_engine_model *model, int32_t seq, const char *path, hr_token *tokens,
                      int32_t capacity, int32_t *count);
    /* Whether `head` (the first `length` bytes of a file) starts the way state_save's files do:
     * how a cache recognises its own leftovers of an interrupted save. */
    bool (*is_state_file)(const unsigned char *head, size_t length);
    /* The first `capacity` tokens a state_save file lists (*count of them), without loading its
     * state: how a restore picks the snapshot that shares most of a prompt. Any thread. Optional. */
    int (*state_file_tokens)(const char *path, hr_token *tokens, int32_t capacity, int32_t *count);
    /* Bytes of sequence `seq`'s KV cache in memory now (0 where the engine cannot tell). Any
     * thread. Optional. */
    uint64_t (*seq_resident_bytes)(hr_engine_model *model, int32_t seq);
    /* Forgets sequence `seq` and gives its KV cache's memory back to the system (*released:
     * the bytes handed back; the process's RSS falls by as much). HR_ENOTSUP when the sequence
     * was forgotten but its memory could not be given back. Not during a decode. Optional. */
    int (*seq_release)(hr_engine_model *model, int32_t seq, uint64_t *released);

    /* Optional, for engines without tokenize/decode/sample (which are then NULL): generates a
     * continuation of `prompt` as one request, calling piece_fn with text as it arrives (bytes as
     * the engine has them; the runtime makes them whole UTF-8, as it does tokens). piece_fn
     * returning non-zero or abort_fn returning true stops it: HR_OK with stop_reason
     * HR_STOP_CANCELLED. One call per model at a time (the runtime's busy flag). */
    int (*complete)(hr_engine_model *model, const char *prompt, const hr_engine_complete_params *params,
                    hr_piece_fn piece_fn, void *user_data, hr_engine_complete_stats *stats);

    /* What load() with these parameters would take, without taking it: the same file checks and
     * parameter checks as load(). Optional (NULL: the engine cannot say). Any thread. */
    int (*estimate)(const char *path, const hr_engine_estimate_params *params, hr_engine_estimate *out);

    /* The embedding of `text` (n_embd floats into `out`, pooled as the model declares, mean where
     * it declares none; scaled to length 1 when `normalize`), in a context apart from the
     * generation window, created on first use (*created then true). *n_tokens gets the tokens
     * embedded, *input_tokens those the whole text makes: more only when `truncate` cut it to the
     * context (else a longer text is HR_ECONTEXT). Any thread; embeddings of one model run one at
     * a time, beside its generations. Optional (NULL: no embeddings). */
    int (*embed)(hr_engine_model *model, const char *text, size_t length, bool normalize, bool truncate,
                 float *out, int32_t capacity, int32_t *n_tokens, int32_t *input_tokens, bool *created);
} hr_engine_ops;

/* The GGUF header of the model file at `path` as a cJSON object, without loading it
 * (engine_llama_meta.c): every key (arrays as null), general.parameter_count (from the tensor
 * table where the file has none) and headroom.quantization_level ("Q8_0": general.file_type, or
 * the type of most weight bytes). */
struct cJSON;
int hr_engine_llama_file_metadata(const char *path, struct cJSON **out);

/* The llama.cpp engine (engine_llama.c). */
const hr_engine_ops *hr_engine_llama(void);

/* The remote engine (engine_remote.c): an OpenAI-compatible server over HTTP, with libcurl. */
const hr_engine_ops *hr_engine_remote(void);

#endif /* HR_ENGINE_H */
