/*
 * model.h: the hr_model struct: one loaded model, its engine handle, its cancel flag, and the
 * queue its worker thread takes sessions from.
 */
#ifndef HR_RUNTIME_MODEL_H
#define HR_RUNTIME_MODEL_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/context.h"

struct hr_session;

struct hr_model {
    hr_context *ctx;
    const hr_engine_ops *engine;
    hr_engine_model *engine_model;
    char *path;
    char name[128];                /* general.name, or the file name: for metrics and logs */
    bool remote;                   /* opened with hr_model_load_remote: the fall-back serves it */
    atomic_bool cancel_requested;  /* set by hr_model_cancel(), read between and inside decode steps */
    atomic_bool busy;              /* a generation is running */

    pthread_mutex_t queue_lock;    /* guards the fields below */
    pthread_cond_t queue_changed;  /* a session arrived, or stopping was set */
    struct hr_session *queue_head; /* sessions waiting, oldest first */
    struct hr_session *queue_tail;
    bool worker_started;
    bool stopping;                 /* hr_model_free: the worker ends after cancelling everything */
    pthread_t worker;
};

/* The generation loop behind hr_generate(), with the metrics record's client name. */
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

/* Records a finished generation in the context's metrics ring (metrics.c). */
void hr_metrics_record(hr_model *model, const char *client, double started_at_wall,
                       const hr_generation_stats *stats, int result);

#endif
