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
    atomic_bool cancel_requested;  /* set by hr_model_cancel(), read between and inside decode steps */
    atomic_bool busy;              /* a generation is running */

    hr_guard_state guard;          /* the degradation guard's, touched only by the generating thread */
    double guard_window_start;
    uint64_t guard_window_faults;
    int32_t guard_window_tokens;
    unsigned char *guard_residency;   /* the weights' pages in memory at a suspicious window (mincore) */
    size_t guard_residency_pages;

    pthread_mutex_t queue_lock;    /* guards the fields below */
    pthread_cond_t queue_changed;  /* a session arrived, or stopping was set */
    struct hr_session *queue_head; /* sessions waiting, oldest first */
    struct hr_session *queue_tail;
    struct hr_session *current;    /* the session the worker runs now, or NULL */
    bool worker_started;
    bool stopping;                 /* hr_model_free: the worker ends after cancelling everything */
    pthread_t worker;

    /* Held by a generation for its whole run (after it took `busy`) and by a snapshot save or
     * restore (trylock: they answer HR_EBUSY rather than wait for a generation); a generation
     * that starts during a save waits for it instead of failing. Guards the fields below. */
    pthread_mutex_t window_lock;
    /* The tokens in the engine's context window, in order, so a prompt that begins with them
     * decodes only the rest. Invariant between calls: the engine's window holds exactly these
     * tokens; after a failed or cancelled decode whatever is uncertain is cut away. */
    hr_token *window_tokens;       /* window_capacity (n_ctx) entries, allocated on first use */
    int32_t window_count;
    int32_t window_capacity;
    bool window_saved;             /* unchanged since saved to or restored from snapshot_name */
    char snapshot_name[64];
    struct hr_model_identity identity;   /* immutable after load */

    /* The process RSS the engine's embedding context added when it was made (embed.c); 0 until
     * the first embedding. */
    _Atomic uint64_t embed_bytes;
};

/* The generation loop behind hr_generate(), with the metrics record's client name. */
/* The checks of hr_generate_params.stop, shared with hr_session_start. */
int hr_generate_check_stops(const hr_generate_params *params);

int hr_generate_for(hr_model *model, const char *prompt, const hr_generate_params *params,
                    hr_piece_fn piece_fn, void *user_data, hr_generation_stats *stats, const char *client);

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

/* Whether a generation runs or waits on the model, and the lowest priority among them. */
bool hr_model_work(hr_model *model, int32_t *lowest_priority);

/* Stops every generation running or queued on the model; their readers get HR_ECANCELLED with
 * `reason` as the sentence. The model stays loaded. */
void hr_model_cancel_work(hr_model *model, const char *reason);

/* Fills model->identity from its file and engine (runtime/snapshot_file.c); never fails the load. */
void hr_model_identity_init(hr_model *model);

/* Makes sure window_tokens can hold the whole context window. */
int hr_model_window_reserve(hr_model *model);

/* Records a finished generation in the context's metrics ring (metrics.c). */
void hr_metrics_record(hr_model *model, const char *client, double started_at_wall,
                       const hr_generation_stats *stats, int result);

#endif
