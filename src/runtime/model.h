/*
 * model.h: the hr_model struct: one loaded model, its engine handle, its cancel flag, and the
 * queue its worker thread takes sessions from.
 */
#ifndef HR_RUNTIME_MODEL_H
#define HR_RUNTIME_MODEL_H

#include <pthread.h>
#include <stdatomic.h>

#include "runtime/context.h"
#include "policy/guard.h"

struct hr_session;

/* One sequence of the model's context window (a slot): the tokens its KV holds, in order, so a
 * prompt that begins with them decodes only the rest. Invariant between steps: the engine's
 * sequence holds exactly these tokens; after a failed or cancelled decode whatever is uncertain
 * is cut away. Guarded by the model's window_lock (owned by whichever generation holds it). */
struct hr_slot {
    hr_token *tokens;              /* window_capacity entries */
    int32_t count;
    bool saved;                    /* unchanged since saved to or restored from snapshot_name */
    char snapshot_name[64];
    uint64_t last_used;            /* model->slot_clock when a generation last left it */
    struct hr_session *session;    /* the session the batched worker runs in it, or NULL */
};

/* What a KV snapshot must match to be restored into a model: the same file (by its resolved
 * path, size and modification time), window and cache types, on the same engine. Filled in at
 * load (runtime/snapshot_file.c), so a file replaced after the load does not change it. */
struct hr_model_identity {
    bool known;                    /* false: snapshots are refused, `problem` says why */
    char problem[256];
    char path[752];                /* the model file's resolved path */
    uint64_t file_bytes;
    int64_t mtime_ns;
    int32_t n_ctx;
    char cache_types[32];
    char engine[32];
    uint64_t hash;                 /* of all of the above: the first part of a snapshot's name */
};

struct hr_model {
    hr_context *ctx;
    const hr_engine_ops *engine;
    hr_engine_model *engine_model;
    char *path;
    char name[128];                /* general.name, or the file name: for metrics and logs */
    bool remote;                   /* opened with hr_model_load_remote: the fall-back serves it */
    /* Cancelling everything that runs: hr_model_cancel(), unloading and the lifecycle's
     * cancel-all add one; a generation (or the batched worker's step) remembers the value it
     * started under in step_epoch, and the abort callback stops a decode when they differ.
     * Nothing ever clears it, so a cancel cannot be lost between a check and a start. */
    atomic_uint cancel_epoch;
    atomic_uint step_epoch;
    /* The one session the sequential worker runs (its own cancel flag, seen inside a step), or
     * NULL; the batched worker drops a cancelled session between steps instead. */
    _Atomic(atomic_bool *) step_cancel;
    atomic_bool busy;              /* a generation is running (the batched worker: any) */

    hr_guard_state guard;          /* the degradation guard's, touched only by the generating thread */
    double guard_window_start;
    uint64_t guard_window_faults;        /* major and minor, at the window's start */
    uint64_t guard_window_major_faults;  /* major alone: reads from storage */
    int32_t guard_window_tokens;
    bool guard_window_constrained;       /* a token of the window was sampled under a grammar */

    pthread_mutex_t queue_lock;    /* guards the fields below */
    pthread_cond_t queue_changed;  /* a session arrived, or stopping was set */
    struct hr_session *queue_head; /* sessions waiting, oldest first */
    struct hr_session *queue_tail;
    struct hr_session *current;    /* the session the sequential worker runs now, or NULL */
    int32_t running;               /* sessions the batched worker runs now (in slots) */
    bool worker_started;
    bool stopping;                 /* hr_model_free: the worker ends after cancelling everything */
    pthread_t worker;
    uint64_t arrivals;             /* sessions started so far: their arrival order */
    int32_t max_queued;            /* immutable after load: hr_model_params.max_queued */

    /* The batched worker sleeps here when nothing can step; a session's arrival or cancel, a
     * reader making room and an unload wake it. Taken after a session's lock, never before. */
    pthread_mutex_t wake_lock;
    pthread_cond_t wake;
    bool wake_pending;             /* guarded by wake_lock */

    /* Held by a generation for its whole run (after it took `busy`) and by a snapshot save or
     * restore (trylock: they answer HR_EBUSY rather than wait for a generation); a generation
     * that starts during a save waits for it instead of failing. Guards the fields below. */
    pthread_mutex_t window_lock;
    /* The window's sequences: n_slots (immutable after load; 1 for engines without
     * decode_batch). hr_generate and the sequential worker use slot 0. */
    struct hr_slot *slots;
    int32_t n_slots;
    int32_t window_capacity;       /* tokens each slot's list holds (n_ctx), 0 until reserved */
    uint64_t slot_clock;
    struct hr_model_identity identity;   /* immutable after load */

    /* Set by hr_model_request_shed (1: with snapshots, 2: without), taken by the batched worker
     * between steps. */
    atomic_int shed_request;
    char shed_name[128];           /* the registry's name for the request's event; queue_lock */

    /* The process RSS the engine's embedding context added when it was made (embed.c); 0 until
     * the first embedding. */
    _Atomic uint64_t embed_bytes;
};

/* The checks of hr_generate_params.stop, shared with hr_session_start. */
int hr_generate_check_stops(const hr_generate_params *params);

/* The generation loop behind hr_generate(), with the metrics record's client name. */
int hr_generate_for(hr_model *model, const char *prompt, const hr_generate_params *params,
                    hr_piece_fn piece_fn, void *user_data, hr_generation_stats *stats, const char *client);

/* The parameter checks hr_generate makes (sessions make them at start). */
int hr_generate_check_params(const hr_generate_params *params);

/* The prompt's tokens as hr_generate reads them, malloc'd into *out: params' conversation
 * through the chat template (its control tokens real, the messages' text plain), or the
 * prompt's text (with control tokens where params->prompt_special asks); HR_ECONTEXT when they
 * exceed n_ctx by far. The batched worker tokenizes its sessions with it. */
int hr_generate_prompt_tokens(hr_model *model, const char *prompt, const hr_generate_params *params, int32_t n_ctx,
                              hr_token **out, int32_t *out_count);

/* The text of one generation on its way out (generate.c): token bytes in, whole UTF-8 before
 * any stop sequence out, to piece_fn. The batched worker keeps one per session. */
struct hr_text_stream;
struct hr_text_stream *hr_text_stream_new(const hr_generate_params *params, hr_piece_fn piece_fn,
                                          void *user_data);
/* Returns 0 to go on, HR_ENOMEM, or non-zero when piece_fn asked to stop or a stop sequence
 * was found (hr_text_stream_matched). */
int hr_text_stream_feed(struct hr_text_stream *stream, const char *bytes, size_t length);
bool hr_text_stream_matched(const struct hr_text_stream *stream);
/* The end of a generation that was not cancelled: a character that never completed, and text
 * held as the possible start of a stop sequence that never came, go out. */
void hr_text_stream_finish(struct hr_text_stream *stream);
void hr_text_stream_free(struct hr_text_stream *stream);

/* The seconds since `started` in stats, as hr_generate fills them (first/last token times). */
void hr_generation_stats_finish(hr_generation_stats *stats, double started, double first, double last);

/* The generation of a model whose engine has `complete` instead of decode (generate_remote.c):
 * one request, its text passed to piece_fn, stats filled as hr_generate's. */
int hr_generate_remote(hr_model *model, const char *prompt, const hr_generate_params *params,
                       hr_piece_fn piece_fn, void *user_data, hr_generation_stats *stats, double started);

/* True when hr_model_cancel() was called on `model` (an hr_model *): the engines' abort_fn. */
bool hr_model_abort_requested(void *model);

/* A model handle on `engine` with its locks, its flags and its name (the file name of `path`
 * without ".gguf"), before the engine loads anything; NULL when out of memory. hr_model_load and
 * hr_model_load_remote (remote.c) make theirs here. */
struct hr_model *hr_model_new(hr_context *ctx, const hr_engine_ops *engine, const char *path);

/* Frees what hr_model_new made (the engine's part is the caller's to unload first). */
void hr_model_destroy(struct hr_model *model);

/* Stops the worker (cancelling queued and running sessions) and joins it; hr_model_free's part. */
void hr_model_stop_worker(hr_model *model);

/* The sessions running and waiting (cancelled ones left out); the caller holds queue_lock. */
void hr_model_count_sessions(hr_model *model, int32_t *running, int32_t *queued);

/* Whether a generation runs or waits on the model, and the lowest priority among them. */
bool hr_model_work(hr_model *model, int32_t *lowest_priority);

/* Stops every generation running or queued on the model; their readers get HR_ECANCELLED with
 * `reason` as the sentence. The model stays loaded. */
void hr_model_cancel_work(hr_model *model, const char *reason);

/* Fills model->identity from its file and engine (runtime/snapshot_file.c); never fails the load. */
void hr_model_identity_init(hr_model *model);

/* Makes sure every slot's token list can hold a whole sequence (n_ctx). */
int hr_model_window_reserve(hr_model *model);

/* The slot a snapshot saves: the one a generation left last that holds tokens (else slot 0).
 * The caller holds window_lock. */
struct hr_slot *hr_model_snapshot_slot(hr_model *model);

/* Saves slot `seq`'s conversation to a KV snapshot (snapshot.c; *saved: a file was written);
 * the caller holds window_lock. */
int hr_model_snapshot_save_slot(hr_model *model, int32_t seq, bool *saved);

/* Restores into slot `seq` the snapshot of this model whose tokens share the longest prefix
 * with `prompt`, if that prefix is longer than `better_than` tokens (*shared: the restored
 * slot's tokens shared with the prompt; 0 when none was restored). The caller holds window_lock
 * and the slot runs nothing; the slot's former tokens are gone when one was restored, or when
 * a restore failed (its code returned, the slot empty). */
int hr_model_snapshot_restore_best(hr_model *model, int32_t seq, const hr_token *prompt, int32_t n_prompt,
                                   int32_t better_than, int32_t *shared);

/* Idle slots' KV (shed.c). The bytes of KV cache in memory held by slots that run nothing: what
 * hr_model_shed_idle_kv could give back. Any thread. */
uint64_t hr_model_idle_kv_bytes(hr_model *model);
/* Saves to snapshots (when `snapshot`) and forgets every slot that runs nothing and still holds
 * KV memory, giving that memory back; logs and publishes "kv_shed" for `name` (the registry's;
 * NULL: the model's) with `reason` and the RSS freed (*freed). The caller holds window_lock. */
int hr_model_shed_idle_kv(hr_model *model, const char *name, bool snapshot, const char *reason, uint64_t *freed);
/* Asks the batched worker to shed between its steps (it holds window_lock while sessions run),
 * and the worker's part: carries out a request, if one is pending; the caller holds window_lock. */
void hr_model_request_shed(hr_model *model, const char *name, bool snapshot);
void hr_model_take_shed_request(hr_model *model);

/* Sets up model->slots for `count` sequences (at load); HR_ENOMEM. */
int hr_model_slots_init(hr_model *model, int32_t count);

/* The batched worker (batch.c): runs the model's sessions several at a time, until `stopping`
 * and nothing left. Called on hr-worker with nothing locked. */
void hr_batch_worker_run(hr_model *model);

/* True when `model`'s generation or step should stop: hr_model_cancel and cancel-all (the
 * epoch), or the sequential worker's session was cancelled. */
bool hr_model_step_cancelled(hr_model *model);

/* Records a finished generation in the context's metrics ring (metrics.c). */
void hr_metrics_record(hr_model *model, const char *client, double started_at_wall,
                       const hr_generation_stats *stats, int result);

#endif
