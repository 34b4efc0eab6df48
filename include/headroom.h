/*
 * headroom.h: the public C API of libheadroom, a memory-aware runtime for local language models.
 * This is the only header the tools (headroom, headroomd) and embedding applications include;
 * nothing of the engine (llama.cpp) shows through it.
 *
 * Conventions (after llama.h, libuv and sqlite):
 *   - handles are opaque; hr_x_create()/hr_x_load() pair with hr_x_free();
 *   - parameters are plain structs obtained from hr_x_default_params() and passed by pointer,
 *     so new fields (always added at the end) do not break callers;
 *   - functions return 0 (HR_OK) or a negative HR_E* code; hr_strerror(code) names the code,
 *     hr_last_error() gives the sentence a person reads for the calling thread's last failure;
 *   - every function says who owns what it returns and from which threads it may be called.
 */
#ifndef HEADROOM_H
#define HEADROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define HR_API __declspec(dllexport)
#else
#define HR_API __attribute__((visibility("default")))
#endif

/* ---- errors ------------------------------------------------------------------------------- */

enum hr_error {
    HR_OK = 0,
    HR_EINVAL = -1,     /* an argument is invalid (a NULL handle, a value out of range) */
    HR_ENOMEM = -2,     /* an allocation failed */
    HR_ENOENT = -3,     /* a file does not exist */
    HR_EACCES = -4,     /* a file exists but may not be read */
    HR_EIO = -5,        /* reading or writing failed */
    HR_EFORMAT = -6,    /* a file is not a valid model (not GGUF, truncated, corrupt) */
    HR_EENGINE = -7,    /* the inference engine failed */
    HR_ECANCELLED = -8, /* the operation was cancelled by the caller */
    HR_ECONTEXT = -9,   /* the prompt does not fit the model's context window */
    HR_ENOTSUP = -10,   /* not supported on this platform or by this engine */
    HR_EBUSY = -11,     /* the object is in use by another operation */
    HR_EAGAIN = -12,    /* nothing yet: the call timed out; try again */
    HR_EOF = -13,       /* not a failure: the stream has ended (as libuv's UV_EOF) */
    HR_EMEMORY = -14,   /* refused for want of memory: a load that would not fit, or memory
                           pressure is critical; the sentence says what binds and what to do */
    HR_EFULL = -15,     /* refused for want of a place: the model's queue of waiting sessions is
                           at its limit (hr_model_params.max_queued); retry after
                           hr_last_retry_after() seconds */
};

/* The symbolic name of an error code ("HR_EFORMAT"); a static string, never NULL.
 * Any thread. */
HR_API const char *hr_strerror(int code);

/* The sentence that explains the calling thread's most recent failed headroom call, e.g.
 * "model file is truncated: /m.gguf is 1048576 bytes, its tensor table needs 4390912".
 * Owned by the library, valid until the next headroom call on this thread; "" if none. */
HR_API const char *hr_last_error(void);

/* Seconds the calling thread's last refused call (HR_EFULL) suggests waiting before a retry, at
 * least 1; 0 when it suggested nothing. Valid as hr_last_error() is. */
HR_API double hr_last_retry_after(void);

/* Whether text[0..length) is valid UTF-8 (no overlong forms, surrogates or values past
 * U+10FFFF), for callers that take text from outside. Any thread. */
HR_API bool hr_utf8_valid(const char *text, size_t length);

/* Library version, "MAJOR.MINOR.PATCH"; a static string. Any thread. */
HR_API const char *hr_version(void);

/* ---- logging ------------------------------------------------------------------------------ */

enum hr_log_level { HR_LOG_DEBUG = 0, HR_LOG_INFO = 1, HR_LOG_WARN = 2, HR_LOG_ERROR = 3 };

/* The library never prints. Log lines (its own and the engine's) go to this callback, which may
 * be called from any of the library's threads, concurrently; `message` has no trailing newline
 * and is valid only during the call. */
typedef void (*hr_log_fn)(enum hr_log_level level, const char *message, void *user_data);

/* ---- context: owns everything else -------------------------------------------------------- */

typedef struct hr_context hr_context;

/* When memory pressure is classified as warn or critical, and when it is normal again.
 * docs/pressure.md explains each default against systemd-oomd, Android's lmkd and earlyoom. */
typedef struct hr_pressure_thresholds {
    double warn_free_percent;            /* effective available memory below this share: warn (15) */
    double critical_free_percent;        /* ... below this: critical (5) */
    double free_margin_percent;          /* leave a level only above enter + margin (5) */
    double warn_stall_some_percent;      /* PSI "some" share of the recent interval: warn (10) */
    double critical_stall_some_percent;  /* (50) */
    double critical_stall_full_percent;  /* PSI "full" share: critical (20) */
    double stall_margin_ratio;           /* leave a stall level below enter * ratio (0.5) */
    double warn_swap_in_per_second;      /* pages swapped in per second: warn (256) */
    double critical_swap_per_second;     /* swapped in and out both: thrashing, critical (2048) */
    double hold_seconds;                 /* calm time before stepping down one level (10) */
} hr_pressure_thresholds;

/* A remote OpenAI-compatible server: the fall-back when a model cannot be served here
 * (hr_context_params.fallback, hr_model_load_remote; docs/fallback.md). */
typedef struct hr_remote_params {
    const char *url;        /* base URL of an OpenAI-compatible server, e.g. "http://127.0.0.1:11436" (no trailing /v1) */
    const char *model;      /* the model name to ask it for */
    const char *api_key;    /* sent as "Authorization: Bearer ..."; NULL: none */
    double connect_timeout; /* seconds; 0: 5 */
    double timeout;         /* seconds for a whole request; 0: none (streaming) */
    bool extended_sampling; /* also send top_k and min_p, which llama.cpp's server, vLLM and
                               headroomd accept but OpenAI's own API refuses (default true) */
} hr_remote_params;

typedef struct hr_context_params {
    hr_log_fn log_fn;             /* NULL: log lines are dropped */
    void *log_user_data;
    enum hr_log_level log_level;  /* lines below this level are not passed to log_fn */
    bool monitor;                 /* run the pressure monitor thread (default true) */
    hr_pressure_thresholds thresholds;
    double sample_interval_min;   /* seconds between samples while memory moves (default 0.02) */
    double sample_interval_max;   /* ... and when all is quiet; 0 (default): 1 s where the kernel
                                     wakes the monitor on pressure (v1 pressure_level events, a
                                     1 s PSI trigger), else 0.25 s */
    int32_t metrics_capacity;     /* generations kept in the metrics ring (default 100) */

    /* The model registry's lifecycle (docs/lifecycle.md). */
    double keep_alive;            /* seconds an idle registry model stays loaded (default 600);
                                     0: unload when its last user releases it; negative: never;
                                     at most HR_KEEP_ALIVE_MAX, finite */
    bool pressure_actions;        /* under warn free caches and unload idle models, least recently
                                     used first; under critical also cancel low-priority work and
                                     refuse loads (default true; needs the monitor) */
    int32_t critical_cancel_priority; /* under critical, running work whose priority is at most
                                         this may be cancelled, lowest first (default 0, the
                                         sessions' default priority); INT32_MIN: never cancel */
    bool guard;                   /* the degradation guard: watch decode speed and page-ins per
                                     token; a registry model that thrashes is cancelled, unloaded
                                     and kept out until memory allows (default true) */

    const char *cache_dir;        /* headroom's cache directory (copied); NULL (default):
                                     $HEADROOM_CACHE_DIR, else $XDG_CACHE_HOME/headroom, else
                                     $HOME/.cache/headroom. KV snapshots live in its kv/ folder. */
    uint64_t cache_budget_bytes;  /* the most bytes of KV snapshots kept; older ones are evicted
                                     after each save. 0 (default): 2 GiB */
    hr_remote_params fallback;    /* where the registry sends a model's requests when it cannot be
                                     loaded here (preflight refuses, the load fails twice, pressure
                                     is critical, or the guard keeps it out); url NULL (default):
                                     none. model NULL: the registry name. Strings are copied. */
} hr_context_params;

HR_API hr_context_params hr_context_default_params(void);

/* Creates a context. On success *out owns it; free it with hr_context_free() after freeing every
 * model loaded through it. Any thread. */
HR_API int hr_context_create(const hr_context_params *params, hr_context **out);

/* Frees a context; NULL is ignored. Not while any other call on it is running. */
HR_API void hr_context_free(hr_context *ctx);

/* ---- memory and pressure ------------------------------------------------------------------ */

typedef struct hr_gpu_status {
    char name[96];
    uint64_t total_bytes, used_bytes, free_bytes;
} hr_gpu_status;

/* The watermark: what the machine, the scopes that bind this process, and the process hold. */
typedef struct hr_memory_status {
    double timestamp;                   /* monotonic seconds of the sample */
    uint64_t host_total_bytes;          /* MemTotal (macOS: hw.memsize); 0 if unknown */
    uint64_t host_available_bytes;      /* MemAvailable (macOS: free + inactive) */
    uint64_t swap_total_bytes;
    uint64_t swap_used_bytes;
    uint64_t effective_total_bytes;     /* the size of the binding scope */
    uint64_t effective_available_bytes; /* the least available over every scope that binds */
    char binding_scope[256];            /* "host", "cgroup /app (memory.max)", ... */
    uint64_t process_rss_bytes;
    uint64_t process_peak_rss_bytes;    /* the highest RSS since the process started */
    uint64_t process_file_rss_bytes;    /* resident file-backed pages (memory-mapped weights) */
    uint64_t process_major_faults;      /* page-ins that waited for the disk, since start */
    bool gpu_telemetry;                 /* false: no NVML (a normal state: no GPU figures) */
    int n_gpus;
    hr_gpu_status gpus[8];
} hr_memory_status;

/* Takes a fresh sample of every memory source now, on the calling thread (tens of
 * microseconds). Any thread. */
HR_API int hr_memory_sample(hr_context *ctx, hr_memory_status *out);

enum hr_pressure_level { HR_PRESSURE_NORMAL = 0, HR_PRESSURE_WARN = 1, HR_PRESSURE_CRITICAL = 2 };

/* A static name for a level: "normal", "warn", "critical". */
HR_API const char *hr_pressure_level_name(enum hr_pressure_level level);

typedef struct hr_pressure {
    enum hr_pressure_level level;
    double free_percent;                /* effective available as a share of its scope */
    uint64_t swap_used_bytes;
    uint64_t page_ins;                  /* pages swapped in since boot */
    uint64_t page_outs;                 /* pages swapped out since boot */
    double page_ins_per_second;         /* recent rates: activity now, not history */
    double page_outs_per_second;
    double stall_some_percent;          /* share of the recent interval some task waited for memory */
    double stall_full_percent;          /* share all tasks waited */
    double stall_some_avg10;            /* the kernel's 10-second average, for display */
    uint64_t effective_available_bytes;
    uint64_t effective_total_bytes;
    char binding_scope[256];
    char reason[512];                   /* in words: what drives the level or why it is held */
    char detection[256];                /* how changes reach headroom on this host */
    double sampled_at;                  /* monotonic seconds of the sample behind this */
} hr_pressure;

/* The current pressure level with its reasons. With the monitor running this is its latest
 * classification (waiting at most a second for the first one after the context starts);
 * without it, a sample taken now, compared with the previous call's. Any thread. */
HR_API int hr_pressure_check(hr_context *ctx, hr_pressure *out);

/* The same as JSON objects, one vocabulary for every tool: hr_pressure's fields (level as its
 * name; swap_used_bytes as "swap_used", as the Python SDK request named it) and
 * hr_memory_status's (with "gpus" as an array). Return strings the caller frees with hr_free(),
 * or NULL when out of memory. Any thread. */
HR_API char *hr_pressure_json(const hr_pressure *pressure);
HR_API char *hr_memory_status_json(const hr_memory_status *memory);

/* ---- events ------------------------------------------------------------------------------- */

enum hr_event_type {
    HR_EVENT_PRESSURE = 1,   /* the pressure level changed */
    HR_EVENT_MODEL = 2,      /* a registry model was loaded or unloaded, or its load refused */
    HR_EVENT_ACTION = 3,     /* the lifecycle acted on its own: caches freed, an idle model
                                unloaded, work cancelled; with the reason and the bytes freed */
    HR_EVENT_DEGRADED = 4,   /* the degradation guard: a model decodes far below its expected
                                speed ("thrashing": weights evicted and re-read; "slow": CPU contention) */
};

typedef struct hr_event {
    enum hr_event_type type;
    double timestamp;                    /* monotonic seconds */
    enum hr_pressure_level level;        /* HR_EVENT_PRESSURE: the new level ... */
    enum hr_pressure_level previous_level; /* ... and the one before; other events: the level now */
    const char *reason;                  /* valid only during the call */
    const char *model;                   /* HR_EVENT_MODEL, HR_EVENT_ACTION: the registry name, or NULL */
    const char *action;                  /* "loaded", "unloaded", "load_refused", "load_failed",
                                            "caches_freed", "cancelled", "kv_shed" (idle slots'
                                            KV given back, the model kept): valid during the call */
    int64_t bytes_freed;                 /* process RSS before minus after the action (may be
                                            negative when something else grew meanwhile) */
    double tokens_per_second;            /* HR_EVENT_DEGRADED: the window's decode speed ... */
    double expected_tokens_per_second;   /* ... what the model did when healthy (0: not known yet) */
    double faults_per_token;             /* ... and its page faults (major + minor) per token */
} hr_event;

/* Called on the library's threads ("hr-monitor" for pressure, "hr-lifecycle" for its actions) or
 * on the thread of the registry call that caused the event; while one thread is delivering, an
 * event published by another is delivered by that thread, after the events before it. Events
 * arrive one at a time and in the order they were published, and no headroom lock is held
 * during the call, so a callback may call any headroom function (an unload, a release, an
 * acquire) except hr_context_free on its own context; an event it causes is delivered after it
 * returns. It must return quickly: the publisher waits for its event's delivery. */
typedef void (*hr_event_fn)(const hr_event *event, void *user_data);

/* Adds a subscriber; *id_out identifies it for hr_unsubscribe. Any thread. */
HR_API int hr_subscribe(hr_context *ctx, hr_event_fn fn, void *user_data, int *id_out);

/* Removes a subscriber; once it returns, `fn` is not running and will not be called again
 * (unless called from inside that subscriber's own callback). Any thread. */
HR_API void hr_unsubscribe(hr_context *ctx, int id);

/* ---- models ------------------------------------------------------------------------------- */

typedef struct hr_model hr_model;

/* Called while a model loads with progress in [0, 1]; return false to cancel the load, which
 * then fails with HR_ECANCELLED. Runs on the loading thread. */
typedef bool (*hr_progress_fn)(float progress, void *user_data);

enum hr_load_mode {
    HR_LOAD_AUTO = 0,  /* the engine's choice (memory-mapped where supported) */
    HR_LOAD_MMAP,      /* file-backed pages: cheap to load, but the kernel may evict them */
    HR_LOAD_COPY,      /* an anonymous copy in memory: no page-ins from disk later */
    HR_LOAD_MLOCK,     /* mapped and locked in RAM: never evicted, never given back */
};

typedef struct hr_model_params {
    int32_t n_ctx;           /* context window in tokens; 0: the model's trained length, at most 4096 */
    int32_t n_batch;         /* tokens per prompt decode step; 0: 512 */
    int32_t n_threads;       /* decode threads; 0: the number of online CPUs */
    int32_t n_gpu_layers;    /* layers to place on a GPU; -1: all that the engine can place */
    enum hr_load_mode load_mode;
    hr_progress_fn progress_fn; /* NULL: no progress reports */
    void *progress_user_data;
    const char *type_k;      /* KV cache element types: "f16" (NULL, the default), "q8_0", "q4_0", */
    const char *type_v;      /* "f32" and the others llama.cpp accepts; a quantised V needs flash
                                attention, which the engine turns on where the device has it */
    int32_t max_queued;      /* sessions that may wait for a slot beyond those running; one more
                                fails hr_session_start with HR_EFULL. Default
                                HR_DEFAULT_MAX_QUEUED (16); 0: none wait (only a free slot
                                admits); negative: no bound */
    int32_t slots;           /* sessions generated at once (continuous batching: one decode step
                                carries a token of each), each with n_ctx tokens of its own, so
                                the KV cache is slots * n_ctx; 0: HR_DEFAULT_SLOTS; 1: one at a
                                time. At most HR_MAX_SLOTS. Engines that cannot batch use 1 */
} hr_model_params;

enum { HR_DEFAULT_SLOTS = 4, HR_MAX_SLOTS = 64, HR_DEFAULT_MAX_QUEUED = 16, HR_MAX_QUEUED = 1 << 20 };

HR_API hr_model_params hr_model_default_params(void);

/* Loads the GGUF model at `path`. A missing, unreadable, non-GGUF, truncated or otherwise corrupt
 * file fails with HR_ENOENT, HR_EACCES, HR_EFORMAT and a sentence in hr_last_error() that names
 * the path and the problem. On success *out owns the model (weights and its context window);
 * free it with hr_model_free(). Any thread; loads of different models may run concurrently. */
HR_API int hr_model_load(hr_context *ctx, const char *path, const hr_model_params *params,
                         hr_model **out);

/* Unloads a model and returns its memory; NULL is ignored. Not while a generation on it runs. */
HR_API void hr_model_free(hr_model *model);

/* What headroom calls the model at `path`: its file name without the directory and without a
 * ".gguf" ending ("/models/llama-3b.gguf" -> "llama-3b"), as hr_model_load names models and
 * headroomd's catalogue does. Writes at most `size` bytes, NUL included (cut when longer), and
 * returns the name's full length. `name` may be `path` itself. Pure; any thread. */
HR_API size_t hr_model_name_from_path(const char *path, char *name, size_t size);

typedef struct hr_model_info {
    char description[128];   /* the engine's one-line description, e.g. "llama ?B Q8_0" */
    char name[128];          /* general.name from the file, or "" */
    uint64_t n_params;       /* parameters */
    uint64_t weight_bytes;   /* bytes of all weight tensors */
    uint64_t file_bytes;     /* size of the model file */
    int32_t n_layer;         /* transformer blocks */
    int32_t n_ctx_train;     /* context length the model was trained for */
    int32_t n_ctx;           /* context window of this load */
    int32_t n_vocab;         /* vocabulary size */
    int32_t n_embd;          /* the width of its embeddings (hr_model_embed) */
    int32_t n_layer_gpu;     /* blocks placed on a GPU; 0 on a CPU-only engine */
    int32_t n_threads;       /* decode threads in use */
    enum hr_load_mode load_mode; /* how the weights are held (never HR_LOAD_AUTO for a local model) */
    bool remote;             /* a remote server generates for it (hr_model_load_remote); the
                                sizes above are then 0: nothing is held in this process */
    char endpoint[256];      /* that server's base URL, or "" */
    double expected_tokens_per_second; /* the best healthy decode speed seen (0: none yet) */
    uint64_t embed_bytes;    /* process RSS the embedding context added (0: no embedding yet) */
    int32_t slots;           /* sessions it generates at once, each with n_ctx tokens of its own
                                (hr_model_params.slots; 1 where the engine cannot batch) */
} hr_model_info;

/* Fills *out with facts about a loaded model. Any thread. */
HR_API int hr_model_get_info(const hr_model *model, hr_model_info *out);

/* How hr_model_embed() treats its input (hr_embed_default_params(): normalize, no truncation). */
typedef struct hr_embed_params {
    bool normalize;    /* scaled to length 1 (as OpenAI's and Ollama's /api/embed answer) */
    bool truncate;     /* a text longer than the model takes is cut to its first tokens (keeping
                          the end token the vocabulary appends, [SEP] or EOS); false: HR_ECONTEXT */
} hr_embed_params;

HR_API hr_embed_params hr_embed_default_params(void);

/* What one embedding took. */
typedef struct hr_embed_result {
    int32_t n_tokens;      /* tokens embedded */
    int32_t input_tokens;  /* tokens the whole text makes (more than n_tokens when truncated) */
    bool truncated;
} hr_embed_result;

/* The embedding of `text` (UTF-8, plain text: control-token text is not parsed), n_embd floats
 * (hr_model_info.n_embd) into `out`, which has room for `capacity`: pooled as the model file
 * declares (mean, CLS, last), mean where it declares none (a generative model). `params` may be
 * NULL (the defaults); `result` may be NULL. Runs in a context of its own, made on first use (its
 * memory is hr_model_info.embed_bytes), so the generation window is untouched; at most 2048
 * tokens and the model's trained length (beyond: cut when params->truncate, else HR_ECONTEXT
 * with the counts). Any thread, also while the model generates; embeddings of one model run one
 * at a time. HR_ENOTSUP for a remote model or a reranker. */
HR_API int hr_model_embed(hr_model *model, const char *text, const hr_embed_params *params, float *out,
                          size_t capacity, hr_embed_result *result);

/* The metadata in the GGUF header of the model file at `path`, read without loading the model,
 * as a JSON object in *json (hr_free it): every key with its value ("general.architecture",
 * "llama.context_length", "tokenizer.chat_template", ...; arrays such as the vocabulary as null),
 * "general.parameter_count" (counted from the tensor table where the file has none) and
 * "headroom.quantization_level" (e.g. "Q8_0": from general.file_type, else the type of most
 * weight bytes). The same file checks as hr_model_load, with their sentences. Any thread. */
HR_API int hr_model_file_metadata(const char *path, char **json);

/* One message of a conversation, for hr_model_apply_chat_template(). */
typedef struct hr_chat_message {
    const char *role;      /* "system", "user", "assistant" */
    const char *content;
} hr_chat_message;

/* Formats a conversation with the chat template stored in the model file (llama.cpp recognises
 * the common ones by their text), ending with the assistant's turn when `add_assistant` is true.
 * A local model whose file has no template gets ChatML, as llama-server gives it. On success
 * *out is a string the caller frees with hr_free(). HR_ENOTSUP when llama.cpp does not recognise
 * the template (or a remote model was opened without its local file). Any thread. */
HR_API int hr_model_apply_chat_template(const hr_model *model, const hr_chat_message *messages,
                                        size_t count, bool add_assistant, char **out);

/* ---- conversations with tools: the model's own Jinja chat template ------------------------ */

/* A conversation rendered by the chat template in the model file (tokenizer.chat_template, a Jinja
 * template, read by llama.cpp's common chat library), with the functions the model may call. It
 * holds the prompt, the grammar that makes a tool call valid and the parser that reads the
 * answer back into content and tool calls. Give it to hr_generate or hr_session_start through
 * hr_generate_params.chat; read the answer's text with hr_chat_parse. docs/api.md (tools). */
typedef struct hr_chat hr_chat;

enum hr_tool_choice {
    HR_TOOL_CHOICE_AUTO = 0,    /* the model decides; the grammar applies from a call's first marker on */
    HR_TOOL_CHOICE_NONE = 1,    /* the tools are in the prompt, the answer is content only */
    HR_TOOL_CHOICE_REQUIRED = 2,/* the answer is one or more tool calls (grammar from the first token) */
    HR_TOOL_CHOICE_FUNCTION = 3,/* the answer calls tool_name (the prompt still lists every tool) */
};

typedef struct hr_chat_params {
    /* OpenAI's chat messages, as a JSON array: role ("system", "user", "assistant", "tool"),
     * content (a string, an array of {"type": "text"} parts, or null beside tool_calls),
     * tool_calls (id, type "function", function {name, arguments: a JSON string or object}),
     * tool_call_id and name on tool results. Required. */
    const char *messages_json;
    /* OpenAI's tools, as a JSON array of {"type": "function", "function": {name, description,
     * parameters (a JSON schema)}}; NULL or "": none. */
    const char *tools_json;
    enum hr_tool_choice tool_choice;
    const char *tool_name;      /* HR_TOOL_CHOICE_FUNCTION's function */
    bool parallel_tool_calls;   /* more than one call in an answer (default true, as OpenAI's) */
} hr_chat_params;

HR_API hr_chat_params hr_chat_default_params(void);

/* Renders `params` with the chat template of the local `model` (ChatML where the file has none)
 * and builds the grammar and parser of its tool calls. The strings are read during the call only.
 * HR_EINVAL with the reason for messages or tools that do not parse, a tool_choice naming a
 * function that is not among the tools, or a template the renderer refuses; HR_ENOTSUP on a
 * remote model, or where libheadroom was built without llama.cpp's source tree (no Jinja). On
 * success *out owns the chat; free it with hr_chat_free() after every generation that uses it
 * has returned or its session was freed. Any thread; a chat is read-only, so several threads may
 * use one. */
HR_API int hr_chat_create(hr_model *model, const hr_chat_params *params, hr_chat **out);

/* The rendered prompt (UTF-8, with the template's control-token text), owned by `chat`. */
HR_API const char *hr_chat_prompt(const hr_chat *chat);

/* Whether the answer may hold tool calls (tools given and tool_choice not NONE): then the
 * generated text is the template's syntax and is read with hr_chat_parse. */
HR_API bool hr_chat_has_tools(const hr_chat *chat);

/* Reads generated text (`length` bytes) as the template writes answers: *json, a string the
 * caller frees with hr_free(), is {"content": "...", "tool_calls": [{"id": "...", "name": "...",
 * "arguments": "<JSON text>"}], "reasoning_content": "..." (only when there is some)}. `partial`
 * for text still being generated: what is whole so far (an unfinished call may show with part of
 * its arguments). ids are the model's where its format has them, else "". HR_EINVAL when text
 * that is not partial does not parse. Any thread. */
HR_API int hr_chat_parse(const hr_chat *chat, const char *text, size_t length, bool partial, char **json);

/* Releases the chat. NULL is ignored. */
HR_API void hr_chat_free(hr_chat *chat);

/* ---- remote fall-back: a model served by an OpenAI-compatible server ---------------------- */

/* Where generations go when a model is opened remotely: any server that speaks OpenAI's
 * POST /v1/completions with "stream": true (another headroomd, llama.cpp's llama-server, vLLM,
 * Ollama's /v1). docs/fallback.md says what carries over and what does not. */
/* (hr_remote_params is defined with the context's parameters, above.) */

/* The defaults above; the url and model must be set. Any thread. */
HR_API hr_remote_params hr_remote_default_params(void);

/* Opens `remote` as a model: generations on it are served by that server. `path` (may be NULL)
 * is the local model file whose name and chat template it stands in for: only its GGUF header is
 * read, never its weights. Before it returns it asks the server for GET {url}/v1/models (within
 * the connect timeout plus at most 30 s) and checks that the model is listed: an unreachable
 * server fails with HR_EIO, a refused API key with HR_EACCES, a model it does not serve with
 * HR_ENOENT (the sentence lists what it serves). Strings in `remote` are copied. On success *out
 * owns the model; hr_model_free() releases it. hr_generate(), sessions, hr_model_cancel() (which
 * hangs up on the server within about 50 ms) and the chat template (only with a `path`) work on
 * it as on a local model; the metrics record says served_by "fallback". Any thread. */
HR_API int hr_model_load_remote(hr_context *ctx, const char *path, const hr_remote_params *remote,
                                hr_model **out);

/* ---- preflight: will a model fit, before loading it ---------------------------------------- */

/* What loading a model would take, per device (host RAM, each GPU), against what is available
 * now in the scope that binds (the host, or the tightest cgroup limit; each GPU's free memory),
 * with a verdict and guidance. docs/preflight.md describes the method, its accuracy (within 10%
 * of the resident memory measured after a load and a full batch), the floors and their defaults. */

enum hr_verdict { HR_VERDICT_OK = 0, HR_VERDICT_WARN = 1, HR_VERDICT_REFUSE = 2 };

/* A static name for a verdict: "ok", "warn", "refuse". */
HR_API const char *hr_verdict_name(enum hr_verdict verdict);

typedef struct hr_preflight_params {
    int32_t n_ctx;          /* 0: what hr_model_load would choose (the model's trained length, at most 4096) */
    int32_t slots;          /* sequences, each with n_ctx tokens of KV: hr_model_params.slots
                               (0: HR_DEFAULT_SLOTS) */
    int32_t n_batch;        /* 0: 512 */
    int32_t n_gpu_layers;   /* -1: as many as fit */
    enum hr_load_mode load_mode;
    const char *type_k, *type_v;   /* KV cache types, "f16" (default, NULL) or "q8_0", "q4_0", "f32" */
    /* Floors for the host scope; 0: derived from the model's own needs (docs/preflight.md):
     * min_free the pressure classifier's critical share of the scope (5%), min_total the
     * estimate + min_free, recommended_total the estimate * 1.2 + min_free. */
    uint64_t min_total_bytes;       /* refuse when the scope is smaller than this */
    uint64_t recommended_total_bytes; /* warn when it is smaller than this */
    uint64_t min_free_bytes;        /* refuse when less than this would stay available after the load */
    const char *fallback;   /* a remote fall-back that could serve instead, named in the guidance;
                               NULL: none configured */
} hr_preflight_params;

HR_API hr_preflight_params hr_preflight_default_params(void);

typedef struct hr_device_estimate {
    char name[64];          /* "CPU" for the host, else the engine's device, "CUDA0 (NVIDIA H100 ...)" */
    bool is_gpu;
    uint64_t weights_bytes, kv_bytes, compute_bytes, total_bytes, available_bytes;
    uint64_t overhead_bytes;    /* the engine's own heap and code (host only); part of total_bytes */
} hr_device_estimate;

enum { HR_MAX_DEVICES = 8 };

typedef struct hr_preflight_result {
    enum hr_verdict verdict;
    uint64_t total_bytes;       /* the overall estimate, every device */
    uint64_t available_bytes;   /* effective available now (binding scope) */
    uint64_t missing_bytes;     /* 0 unless refused/warned for lack of memory */
    char binding_scope[64];     /* "host", "cgroup /app (memory.max)", a GPU's name */
    char method[16];            /* "engine" (llama.cpp's own dry run) or "formula" */
    int32_t n_ctx;              /* the context per slot the estimate is for */
    int32_t slots;              /* the slots it is for: KV for slots * n_ctx tokens */
    int32_t max_ctx_that_fits;  /* per slot, at these slots; 0 if none; a multiple of 256, at most
                                   the trained length */
    size_t n_devices;           /* the host first */
    hr_device_estimate devices[HR_MAX_DEVICES];
    char reason[256];           /* one line: what the verdict rests on */
    char guidance[1024];        /* what a person can do: "" when ok */
    /* the floors applied on the host, defaults resolved */
    uint64_t min_total_bytes, recommended_total_bytes, min_free_bytes;
    uint64_t weight_bytes;      /* all weight tensors */
    int32_t n_layer, n_ctx_train;
    uint64_t file_cached_bytes; /* of the model file in the page cache now: a mapped load reuses
                                   them, so they count as available in a cgroup (docs/preflight.md) */
} hr_preflight_result;

/* Estimates what hr_model_load(ctx, path, ...) with the same parameters would take, and judges
 * it against the memory available now. Returns HR_OK with *out filled in whatever the verdict
 * (a refusal is a result, not an error); a missing, unreadable or corrupt file fails with the same
 * codes and sentences as hr_model_load, a bad parameter with HR_EINVAL. Reads the model's header
 * and tokenizer only (milliseconds to a second for the largest vocabularies). Any thread. */
HR_API int hr_preflight(hr_context *ctx, const char *path, const hr_preflight_params *params,
                        hr_preflight_result *out);

/* The result as a JSON object: the fields above, verdict as its name, devices[] as an array.
 * Returns a string the caller frees with hr_free(), or NULL when out of memory. Any thread. */
HR_API char *hr_preflight_json(const hr_preflight_result *result);

/* ---- generation --------------------------------------------------------------------------- */

typedef struct hr_logit_bias {
    int32_t token;        /* a token id of the model's vocabulary */
    float bias;
} hr_logit_bias;

struct hr_token_logprobs;

typedef struct hr_generate_params {
    int32_t max_tokens;   /* stop after this many generated tokens; must be > 0 */
    float temperature;    /* 0: greedy (deterministic); default 0.8 */
    int32_t top_k;        /* 0: off; default 40 */
    float top_p;          /* 1: off; default 0.95 */
    float min_p;          /* 0: off; default 0.05 */
    uint64_t seed;        /* sampling seed; the same seed and inputs give the same tokens */
    float typical_p;      /* locally typical sampling; 1: off (default) */
    float repeat_penalty; /* divides the logits of tokens among the last repeat_last_n; 1: off (default) */
    int32_t repeat_last_n;/* generated tokens the penalties look back on; 0: off; default 64 */
    float presence_penalty;  /* subtracted once from a token that appeared; 0: off (default) */
    float frequency_penalty; /* subtracted per appearance; 0: off (default) */
    int32_t mirostat;     /* 0: off (default), 1: Mirostat, 2: Mirostat 2.0 (replaces top_k, top_p,
                             min_p and typical_p; temperature still applies) */
    float mirostat_tau;   /* target surprise; default 5 */
    float mirostat_eta;   /* learning rate; default 0.1 */
    /* Added to the logits of the tokens named before any other step (-INFINITY bans a token).
     * Borrowed as `stop` is: read during hr_generate, copied by hr_session_start. NULL: none. */
    const hr_logit_bias *logit_bias;
    size_t logit_bias_count;  /* at most HR_MAX_LOGIT_BIAS */
    /* Stop sequences (UTF-8, each non-empty, at most HR_MAX_STOP_BYTES bytes): the generation
     * ends before the first of them appears in the text (stop_reason HR_STOP_SEQUENCE), and
     * that stop text is never passed to piece_fn. Text that could be the start of one is held
     * until it is decided (passed on as soon as it cannot be, or at the end). Matched on the
     * text, so across token boundaries. NULL (default) or stop_count 0: none. Borrowed:
     * hr_generate reads them during the call only; hr_session_start copies them. */
    const char *const *stop;
    size_t stop_count;    /* at most HR_MAX_STOP_SEQUENCES */
    /* A conversation to answer instead of `prompt` (which may then be NULL): formatted with the
     * model's chat template, the assistant's turn opened. The template's own text is tokenized
     * with its control tokens ("<|im_start|>" is one token) and without a second start token
     * where the template writes one; the messages' content is plain text, so a message cannot
     * forge a control token (docs/api.md, special tokens). Borrowed as `stop` is. */
    const hr_chat_message *messages;
    size_t message_count;
    /* Control-token text in `prompt` becomes control tokens, for a prompt the caller formatted
     * itself (as llama-server reads /v1/completions). Default false: the prompt is plain text. */
    bool prompt_special;
    /* A GBNF grammar (llama.cpp's format, rule "root") the output must follow: every token is
     * chosen among those the grammar allows next, and once it is complete only the end of text is
     * allowed, so the text is whole unless max_tokens or the context cut it. hr_json_grammar()
     * makes one for JSON. Borrowed as `stop` is. NULL (default): no constraint. */
    const char *grammar;
    /* Log-probabilities of the generated tokens: when logprob_fn is set, it is called for each
     * generated token (not the end of text), on the generating thread, before that token's text
     * reaches piece_fn, with the token's log-probability under the model's distribution (the
     * softmax of its logits, before any sampling step) and the top_logprobs most likely tokens
     * (0 to HR_MAX_TOP_LOGPROBS). Sessions keep them for hr_session_logprobs when `logprobs` is
     * true (their own logprob_fn; one given is ignored). */
    bool logprobs;
    int32_t top_logprobs;
    void (*logprob_fn)(const struct hr_token_logprobs *token, void *user_data);
    void *logprob_user_data;
    /* A conversation rendered by hr_chat_create (on this model) to answer instead of `prompt`
     * and `messages` (which must then be unset): its prompt, and its tool-call grammar when it
     * has tools (then `grammar` must be NULL). Borrowed: it must outlive hr_generate's return, or
     * the session (free it after hr_session_free). NULL (default): none. */
    const struct hr_chat *chat;
} hr_generate_params;

enum { HR_MAX_TOP_LOGPROBS = 20, HR_MAX_PIECE_BYTES = 48 };

/* One token and its log-probability. `piece` holds the token's bytes (not necessarily whole
 * UTF-8: a character may span tokens), `length` of them (cut at HR_MAX_PIECE_BYTES). */
typedef struct hr_logprob {
    int32_t token;
    float logprob;
    int32_t length;
    char piece[HR_MAX_PIECE_BYTES];
} hr_logprob;

typedef struct hr_token_logprobs {
    hr_logprob chosen;                        /* the token generated */
    int32_t top_count;                        /* top_logprobs, or fewer in a smaller vocabulary */
    hr_logprob top[HR_MAX_TOP_LOGPROBS];      /* the most likely tokens, most likely first */
} hr_token_logprobs;

enum { HR_MAX_STOP_SEQUENCES = 64, HR_MAX_STOP_BYTES = 1024, HR_MAX_LOGIT_BIAS = 1024 };

HR_API hr_generate_params hr_generate_default_params(void);

/* The grammar (for hr_generate_params.grammar) of the JSON values that `schema_json`, a JSON
 * schema as text, allows, by llama.cpp's converter; NULL: any JSON object. On success *out is a
 * string the caller frees with hr_free(). HR_EINVAL with the reason for a schema that is not JSON
 * or that the converter cannot turn into a grammar; HR_ENOTSUP for a schema where libheadroom was
 * built without llama.cpp's source tree (any JSON object still works). Any thread. */
HR_API int hr_json_grammar(const char *schema_json, char **out);

/* Receives each piece of generated text, in order, on the generating thread. Pieces are whole
 * UTF-8 sequences (a token that ends inside a character is held until the character is
 * complete; bytes that never form one arrive as U+FFFD). `piece` is valid only during the call.
 * Return 0 to go on, non-zero to stop (the generation then ends with HR_ECANCELLED). */
typedef int (*hr_piece_fn)(const char *piece, size_t length, void *user_data);

enum hr_stop_reason {
    HR_STOP_NONE = 0,      /* did not finish (an error) */
    HR_STOP_MAX_TOKENS,    /* max_tokens reached */
    HR_STOP_END_OF_TEXT,   /* the model produced an end-of-generation token */
    HR_STOP_CONTEXT_FULL,  /* the context window is full */
    HR_STOP_CANCELLED,     /* cancelled by the piece callback or hr_model_cancel() */
    HR_STOP_SEQUENCE,      /* one of hr_generate_params.stop appeared (it was not passed on) */
};

typedef struct hr_generation_stats {
    int32_t prompt_tokens;
    int32_t generated_tokens;
    double prompt_seconds;        /* decoding the prompt */
    double time_to_first_token;   /* seconds from the call to the first piece */
    double decode_seconds;        /* from the first generated token to the last */
    double total_seconds;
    double prompt_tokens_per_second;
    double tokens_per_second;     /* decode speed: (generated_tokens - 1) / decode_seconds */
    enum hr_stop_reason stop_reason;
    int32_t cached_tokens;        /* prompt tokens already in the context window (from the previous
                                     generation or a restored snapshot), reused, not decoded;
                                     prompt_tokens_per_second counts only the others */
} hr_generation_stats;

/* Generates a continuation of `prompt` (UTF-8) on `model`, calling `piece_fn` for each piece.
 * The model remembers which tokens its context window holds (the last prompt and the tokens
 * generated after it); a prompt that begins with them decodes only the rest, so a conversation
 * that resends its history pays only for the new turn (stats->cached_tokens). The output is the
 * same as from an empty window. Blocks until done; returns HR_OK, HR_ECANCELLED
 * (stopped by the callback or hr_model_cancel(); the pieces delivered stand), HR_ECONTEXT (the
 * prompt does not fit), or another error. `stats` may be NULL; when given it is filled in on
 * every return. It runs on the calling thread in the model's slot 0, alone: HR_EBUSY while
 * another hr_generate runs or sessions run on the model (sessions started meanwhile wait for it). */
HR_API int hr_generate(hr_model *model, const char *prompt, const hr_generate_params *params,
                       hr_piece_fn piece_fn, void *user_data, hr_generation_stats *stats);

/* Asks every generation running on `model` (hr_generate, or the sessions in its slots) to stop:
 * decoding stops within one decode step and they end with HR_ECANCELLED. Only adds one to an
 * atomic counter, so it may be called from any thread and from a signal handler. A generation
 * that starts afterwards is not affected; a cancel with no generation running has no effect. */
HR_API void hr_model_cancel(hr_model *model);

/* ---- sessions: generations with a bounded queue, read by the caller ------------------------ */

/* A session is one generation run by the model's worker thread ("hr-worker"), which decodes
 * and pushes pieces into the session's bounded queue. A local model runs up to
 * hr_model_info.slots sessions at once (continuous batching: one decode step carries the next
 * token of each, and a newcomer's prompt is read in chunks between them); more wait, the
 * highest priority first, then in the order they were started. When a session's queue is full
 * its sequence sits the steps out while the others go on: a reader that stops reading stops
 * only its own generation, and memory stays flat. A model on the remote engine runs its
 * sessions one after another. */
typedef struct hr_session hr_session;

typedef struct hr_session_params {
    hr_generate_params generate;
    int32_t queue_capacity;   /* pieces held for the reader at most (default 64) */
    const char *client;       /* who asked, for the metrics record (may be NULL; copied) */
    double reader_timeout;    /* seconds a reader may take nothing while other sessions wait for
                                 a slot (every slot taken); then this one ends with HR_EBUSY.
                                 0 (default): wait for ever. While a slot is free, or nobody
                                 waits, it is never ended by it. */
    int32_t priority;         /* under critical pressure the lowest-priority running work is
                                 cancelled first (hr_context_params.critical_cancel_priority);
                                 default 0 */
} hr_session_params;

HR_API hr_session_params hr_session_default_params(void);

/* Queues a generation of `prompt` (copied) on `model`. On success *out owns the session; free it
 * with hr_session_free(). HR_EFULL when every slot runs a session and max_queued more wait
 * (cancelled ones do not count): the sentence gives the counts, hr_last_retry_after() when to
 * come back. Any thread. */
HR_API int hr_session_start(hr_model *model, const char *prompt, const hr_session_params *params,
                            hr_session **out);

/* Waits up to `timeout_seconds` (0: do not wait; negative: wait for ever) for the next piece
 * and copies it, NUL-terminated, into `buffer` (a piece longer than capacity - 1 arrives in
 * parts, never splitting a UTF-8 character when capacity is at least 5). Returns HR_OK with
 * *length set, HR_EAGAIN when nothing arrived in time, HR_EOF when the generation ended and every
 * piece was read, HR_ECANCELLED after hr_session_cancel(), or the generation's error (with its
 * sentence in hr_last_error()). One reader thread per session. */
HR_API int hr_session_read(hr_session *session, char *buffer, size_t capacity, size_t *length,
                           double timeout_seconds);

/* The log-probabilities of a session started with generate.logprobs, from record `from` on:
 * the tokens whose text the reader has read (all of them once a read returned HR_EOF), at most
 * `capacity` into `out`; *count how many were copied. Any thread (the reader's, typically, after
 * each read). HR_EINVAL when the session was started without logprobs. */
HR_API int hr_session_logprobs(hr_session *session, size_t from, hr_token_logprobs *out, size_t capacity,
                               size_t *count);

/* Cancels the session: a queued one never starts, a running one stops at the next decode step
 * (the others in the batch go on untouched); the flag is never cleared, so a cancel that comes
 * while the session is being started is not lost.
 * Pieces not yet read are dropped; reads return HR_ECANCELLED from now on. Any thread, any time
 * before hr_session_free(). */
HR_API void hr_session_cancel(hr_session *session);

/* The statistics of the generation, final once a read returned HR_EOF or an error (this call
 * leaves that error's sentence in hr_last_error() untouched). While it
 * runs, only generated_tokens is filled in: the pieces queued so far (a token that ends inside
 * a character is counted with the piece that completes it). */
HR_API int hr_session_stats(hr_session *session, hr_generation_stats *out);

/* Whether the session still waits for a slot of its model (queued; false once the worker took it,
 * and once it ended). Any thread; NULL gives false. */
HR_API bool hr_session_queued(hr_session *session);

/* Cancels the session if it still runs and releases it; the worker lets go of its part when it
 * has stopped. Returns at once. NULL is ignored. */
HR_API void hr_session_free(hr_session *session);

/* A model's admission: the sessions it runs and those waiting, against its limits. */
typedef struct hr_admission {
    int32_t slots;           /* sessions the model runs at once */
    int32_t running;         /* sessions running now (at most slots) */
    int32_t queued;          /* sessions waiting for a slot (cancelled ones left out) */
    int32_t max_queued;      /* hr_model_params.max_queued; negative: no bound */
    double retry_after;      /* seconds until a place is expected to free, at least 1: the mean
                                duration of the model's recent generations in the metrics ring,
                                less how long the oldest running one has run (1 without history) */
} hr_admission;

/* Fills *out for `model`. Any thread. */
HR_API int hr_model_admission(hr_model *model, hr_admission *out);

/* ---- the model registry: several models, loaded on use, unloaded when idle or pressed ------ */

/* The registry of a context holds the models an application may use, by name. A model is loaded
 * when first acquired (preflight, then the engine), stays loaded while in use and for its
 * keep-alive after, and is unloaded when that expires, when the pressure policy needs its memory
 * (idle models, least recently used first; pinned ones never), or on request. The lifecycle
 * thread ("hr-lifecycle") carries out expiries and pressure actions. docs/lifecycle.md. */

enum hr_model_state {
    HR_MODEL_UNLOADED = 0,
    HR_MODEL_LOADING,
    HR_MODEL_READY,       /* loaded, nobody uses it: keep-alive running */
    HR_MODEL_BUSY,        /* acquired by at least one user */
    HR_MODEL_UNLOADING,   /* waiting for its users to release it, then unloaded */
};

/* A static name: "unloaded", "loading", "ready", "busy", "unloading". */
HR_API const char *hr_model_state_name(enum hr_model_state state);

/* The longest keep-alive, in seconds: 100 years. A longer one (or an infinite one, or one not
 * a number) is refused by hr_keep_alive_parse, hr_registry_set_keep_alive and
 * hr_context_create with a sentence that points to -1 / "never"; hr_registry_release, which
 * cannot refuse, reads a longer or infinite one as never. Every deadline is therefore a finite
 * time not far from now. */
#define HR_KEEP_ALIVE_MAX 3153600000.0

/* Parses a keep-alive in Ollama's convention into seconds: a number of seconds ("300"), a
 * duration ("30s", "5m", "1h", "1h30m"), "never" or any negative value (-1: never unload),
 * "0" (unload after this use). HR_EINVAL with a sentence otherwise, also for a value that is
 * not finite ("inf", "nan", "1e400", "1e300h") or longer than HR_KEEP_ALIVE_MAX. Any thread. */
HR_API int hr_keep_alive_parse(const char *text, double *seconds);

/* Adds a model file to the registry under `name` (copied; unique), unloaded, with the load
 * parameters its loads use (NULL: defaults; progress_fn is not used). Cheap: the file is checked
 * when it is loaded. Any thread. */
HR_API int hr_registry_add(hr_context *ctx, const char *name, const char *path,
                           const hr_model_params *params);

/* Makes `name` ready and marks it in use: loads it if needed (a second caller waits for the
 * first's load and gets its outcome: a failed load's code and sentence, not a load of its own),
 * after a preflight; refuses with HR_EMEMORY when it would not fit or pressure
 * is critical, with guidance in the sentence. On success *out is valid until the matching
 * hr_registry_release(). HR_ENOENT for a name not in the registry. Any thread. */
HR_API int hr_registry_acquire(hr_context *ctx, const char *name, hr_model **out);

/* Ends one use of a model from hr_registry_acquire(); `keep_alive` in seconds sets its deadline
 * from now (NAN: the model's own, else the context's; 0: unload now if no one else uses it;
 * negative, infinite or longer than HR_KEEP_ALIVE_MAX: never). Any thread. */
HR_API void hr_registry_release(hr_context *ctx, hr_model *model, double keep_alive);

/* Loads `name` without using it: its keep-alive starts at once. Any thread. */
HR_API int hr_registry_load(hr_context *ctx, const char *name);

/* Unloads `name` and cancels its keep-alive. A model in use gives HR_EBUSY unless `cancel`:
 * then its generations are cancelled cleanly and it is unloaded when its users release it (the
 * call returns at once; the state is HR_MODEL_UNLOADING until then). Any thread. */
HR_API int hr_registry_unload(hr_context *ctx, const char *name, bool cancel);

/* Pins `name` (never unloaded by keep-alive or pressure; still by hr_registry_unload) or
 * unpins it. Any thread. */
HR_API int hr_registry_pin(hr_context *ctx, const char *name, bool pinned);

/* Sets the keep-alive of `name` in seconds (NAN: back to the context's; negative: never) and
 * re-arms an idle model's deadline from its last use. HR_EINVAL for an infinite keep-alive or
 * one longer than HR_KEEP_ALIVE_MAX. Any thread. */
HR_API int hr_registry_set_keep_alive(hr_context *ctx, const char *name, double keep_alive);

typedef struct hr_registry_entry {
    char name[128];
    char path[1024];
    enum hr_model_state state;
    bool pinned;
    int32_t users;             /* acquisitions not yet released */
    double keep_alive;         /* seconds; negative: never */
    double loaded_at;          /* wall-clock seconds since the Unix epoch; 0 when unloaded */
    double last_used_at;       /* wall clock; 0 never used */
    double expires_at;         /* wall clock of the keep-alive deadline; 0: none */
    uint64_t weight_bytes;     /* when loaded */
    int32_t n_ctx;             /* the context window per slot, when loaded */
    int32_t slots;             /* sessions it generates at once, when loaded: hr_model_params.slots,
                                  or fewer when the KV cache of that many did not fit */
    char slots_reason[320];    /* why fewer than asked (the bytes of KV per slot, what was
                                  missing), or "" */
    char served_by[16];        /* "local", "fallback" (the remote fall-back serves it), "" unloaded */
    int32_t running_sessions;  /* hr_admission's, when loaded; 0 otherwise */
    int32_t queued_sessions;
    int32_t max_queued;        /* the limit its loads use (hr_model_params.max_queued) */
    uint64_t rss_bytes;        /* process RSS the load added, measured; 0 when unloaded */
    int32_t loads;             /* times loaded since added */
    char last_unload_reason[160];
} hr_registry_entry;

/* A snapshot of the registry, least recently used first (the order the pressure policy unloads
 * in). *entries is freed with hr_free(). Any thread. */
HR_API int hr_registry_list(hr_context *ctx, hr_registry_entry **entries, size_t *count);

/* The same as a JSON array (state as its name); hr_free() it; NULL when out of memory. */
HR_API char *hr_registry_json(hr_context *ctx);

/* ---- cache: KV snapshots in headroom's cache directory ------------------------------------- */

/* A snapshot holds a model's context window (its tokens and their KV state) in a file under
 * <cache_dir>/kv/, so a conversation resumed after the model was unloaded does not pay for its
 * prompt again. It is restored only into the same model file (resolved path, size, modification
 * time), context window size and cache types. docs/cache.md describes the files. */

/* Saves the model's live conversations (each slot's tokens and their KV state, one file per
 * slot: one conversation each) into the cache directory, then evicts the least recently used snapshots (of any model) until
 * the cache fits hr_context_params.cache_budget_bytes. HR_OK with *saved=false when there is
 * nothing to save: empty slots, slots unchanged since they were saved or restored (that
 * snapshot's last use is refreshed instead), or a snapshot larger than the whole budget (logged).
 * A full disk is HR_EIO and leaves no file behind. HR_EBUSY while a generation runs on the
 * model (a generation that starts during a save waits for it); HR_ENOTSUP when the model
 * file's identity is unknown. Any thread. */
HR_API int hr_model_snapshot_save(hr_model *model, bool *saved);

/* Restores the newest snapshot made for this model file and window into the model's context
 * (replacing what the window held), so the next generation whose prompt begins with those
 * tokens skips them. HR_ENOENT when there is none (the sentence says when snapshots of the same
 * file exist for another window); HR_EFORMAT when the file cannot be restored (the window is
 * then empty). Marks the snapshot used, for eviction. HR_EBUSY while a generation runs on the
 * model. Any thread. */
HR_API int hr_model_snapshot_restore(hr_model *model);

typedef struct hr_cache_entry {
    char path[512];          /* the snapshot file */
    char model[128];         /* the model's name (its file name without .gguf) */
    uint64_t bytes;          /* the file's size */
    int32_t tokens;          /* tokens in the saved window */
    double created_at;       /* wall-clock seconds since the Unix epoch */
    double last_used_at;     /* saved or last restored, the same clock */
    int32_t n_ctx;           /* the context window it was saved from */
} hr_cache_entry;

/* Lists headroom's snapshots, most recently used first. On success *entries is an array of
 * *count entries the caller frees with hr_free() (NULL when there are none). Files in kv/ that
 * are not headroom's snapshots are not listed. Any thread. */
HR_API int hr_cache_list(hr_context *ctx, hr_cache_entry **entries, size_t *count);

typedef struct hr_cache_status {
    char directory[1024];    /* where snapshots live: <cache_dir>/kv ("" when no directory is known) */
    uint64_t budget_bytes;   /* the effective budget */
    uint64_t used_bytes;     /* bytes of snapshots now */
    size_t snapshots;
} hr_cache_status;

/* The cache's directory, budget and use. Any thread. */
HR_API int hr_cache_get_status(hr_context *ctx, hr_cache_status *out);

typedef struct hr_cache_clear_report {
    size_t removed;          /* snapshots (and leftovers of interrupted saves) removed */
    uint64_t bytes_removed;
    size_t failed;           /* headroom's files that could not be removed (each reported) */
    size_t skipped;          /* entries left alone: not headroom's, symbolic links, saves in progress */
} hr_cache_clear_report;

/* Called once for each of headroom's files that could not be removed, with its path, the code
 * (HR_EACCES for a permission problem) and the sentence; `path` and `sentence` are valid only
 * during the call. Runs on the calling thread. */
typedef void (*hr_cache_problem_fn)(const char *path, int code, const char *sentence, void *user_data);

/* Removes headroom's own files from <cache_dir>/kv/: files whose names follow headroom's pattern
 * and whose contents carry its snapshot trailer (or, for a save interrupted over a minute ago,
 * the engine's state header). It follows no symbolic links: links inside kv/ are left alone, a
 * kv/ that is itself a link is refused (HR_EACCES). A file that cannot be removed is reported to
 * `on_problem` (may be NULL) and clearing goes on; the call then returns its code with a sentence
 * that counts the failures. *report (may be NULL) is filled in on every return. Any thread;
 * snapshots that a model restores meanwhile may vanish under it (the restore then fails). */
HR_API int hr_cache_clear(hr_context *ctx, hr_cache_clear_report *report, hr_cache_problem_fn on_problem,
                          void *user_data);

/* Drops the page cache that headroom's snapshot files hold (posix_fadvise DONTNEED after they
 * were written or read), measured as their resident pages (mincore) before and after, into
 * *bytes_released (may be NULL). The pressure policy's first, cheapest step. HR_ENOTSUP where the
 * platform cannot drop pages. Any thread. */
HR_API int hr_cache_release_memory(hr_context *ctx, uint64_t *bytes_released);

/* ---- metrics: the last N generations, kept in memory, never sent anywhere ------------------- */

typedef struct hr_generation_record {
    double started_at;           /* wall-clock seconds since the Unix epoch */
    char model[128];             /* the model's name, or its file name */
    char client[64];
    int32_t prompt_tokens;
    int32_t generated_tokens;
    double time_to_first_token;  /* seconds */
    double total_seconds;
    double tokens_per_second;
    uint64_t peak_rss_bytes;     /* the process's peak RSS when the generation ended */
    enum hr_pressure_level pressure_level; /* when the generation ended ... */
    bool pressure_known;         /* ... false when the context runs no monitor */
    bool cancelled;
    int result;                  /* HR_OK or the error code */
    char served_by[16];          /* "local", or "fallback" for a model opened with hr_model_load_remote() */
} hr_generation_record;

/* Copies up to `capacity` records, oldest first, into `records`; returns how many were copied
 * (at most hr_context_params.metrics_capacity). Any thread. */
HR_API int hr_metrics_records(hr_context *ctx, hr_generation_record *records, int capacity);

/* The records as a JSON array (the fields above, level and result as names). Returns a string
 * the caller frees with hr_free(), or NULL when out of memory. Any thread. */
HR_API char *hr_metrics_json(hr_context *ctx);

/* Frees memory the library returned to the caller. */
HR_API void hr_free(void *pointer);

#ifdef __cplusplus
}
#endif

#endif /* HEADROOM_H */
