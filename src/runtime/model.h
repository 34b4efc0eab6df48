/*
 * model.h: the hr_model struct: one loaded model, its engine handle, its cancel flag, and the
 * queue its worker thread takes sessions from.
 */
#ifndef HR_RUNTIME_MODEL_H
#define HR_RUNTIME_MODEL_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/context.h"
#include "policy/guard.h"

struct hr_session;

struct hr_model {
    hr_context *ctx;
    const hr_engine_ops *engine;
    hr_engine_model *engine_model;
    char *path;
    char name[128];                /* general.name, or the file name: for metrics and logs */
    atomic_bool cancel_requested;  /* set by hr_model_cancel(), read between and inside decode steps */
    atomic_bool busy;              /* a generation is running */

    hr_guard_state guard;          /* the degradation guard's, touched only by the generating thread */
    double guard_window_start;
    uint64_t guard_window_faults;
    int32_t guard_window_tokens;

    pthread_mutex_t queue_lock;    /* guards the fields below */
    pthread_cond_t queue_changed;  /* a session arrived, or stopping was set */
    struct hr_session *queue_head; /* sessions waiting, oldest first */
    struct hr_session *queue_tail;
    struct hr_session *current;    /* the session the worker runs now, or NULL */
    bool worker_started;
    bool stopping;                 /* hr_model_free: the worker ends after cancelling everything */
    pthread_t worker;
};

/* The generation loop behind hr_generate(), with the metrics record's client name. */
int hr_generate_for(hr_model *model, const char *prompt, const hr_generate_params *params,
                    hr_piece_fn piece_fn, void *user_data, hr_generation_stats *stats, const char *client);

/* Stops the worker (cancelling queued and running sessions) and joins it; hr_model_free's part. */
void hr_model_stop_worker(hr_model *model);

/* Whether a generation runs or waits on the model, and the lowest priority among them. */
bool hr_model_work(hr_model *model, int32_t *lowest_priority);

/* Stops every generation running or queued on the model; their readers get HR_ECANCELLED with
 * `reason` as the sentence. The model stays loaded. */
void hr_model_cancel_work(hr_model *model, const char *reason);

/* Records a finished generation in the context's metrics ring (metrics.c). */
void hr_metrics_record(hr_model *model, const char *client, double started_at_wall,
                       const hr_generation_stats *stats, int result);

#endif
