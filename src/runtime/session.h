/*
 * session.h: the hr_session struct, shared by session.c (the caller's side and the sequential
 * worker) and batch.c (the batched worker), and the calls the workers make on a session.
 */
#ifndef HR_RUNTIME_SESSION_H
#define HR_RUNTIME_SESSION_H

#include <pthread.h>
#include <stdatomic.h>

#include "runtime/model.h"

struct piece {
    char *text;
    size_t length;
    size_t offset;   /* bytes already read, when a reader's buffer was smaller */
    size_t records;  /* logprob records made before this piece was pushed */
};

/* A batched session's ring takes this many pieces beyond its capacity: one step may yield a
 * piece and the end of a generation its held text, after the worker saw room for one. */
enum { SESSION_RING_SPARE = 4 };

struct hr_session {
    hr_model *model;            /* immutable; alive while `running` or queued (the worker holds it) */
    char *prompt;
    hr_generate_params params;  /* its stop sequences point into `stops` */
    char *stops;                /* one block: the pointer array, then the strings */
    hr_logit_bias *logit_bias;  /* the copy params.logit_bias points at */
    char *extras;               /* one block: the messages (and grammar) params point at */
    char client[64];
    struct hr_session *next;    /* the model's queue link, guarded by model->queue_lock */
    uint64_t arrival;           /* immutable: its place in arrival order on the model */
    /* Set by hr_session_cancel, the lifecycle's cancel-all and an unload; never cleared, so a
     * cancel that arrives while the worker admits the session is seen at its next step. */
    atomic_bool cancel;

    pthread_mutex_t lock;       /* guards everything below */
    pthread_cond_t readable;    /* a piece arrived or the session ended */
    pthread_cond_t writable;    /* the reader took a piece, or the session was cancelled */
    struct piece *ring;
    int capacity, head, count;  /* `capacity` pieces (+ SESSION_RING_SPARE allocated) */
    bool batched;               /* the batched worker runs it: a reader's take wakes the worker */
    bool running;               /* the worker is generating it */
    bool finished;              /* the worker is done with it */
    bool cancelled;
    int result;                 /* the generation's return code, once finished */
    char error[512];            /* its sentence */
    hr_generation_stats stats;
    int pieces_pushed;          /* while running: pieces handed to the queue so far */
    double reader_timeout;      /* seconds a full queue may wait while other sessions queue */
    bool timed_out;             /* it gave way: its reader took nothing for reader_timeout */
    int references;             /* the caller's and the worker's */
    int32_t priority;           /* immutable: the lifecycle cancels the lowest first */
    char stopped_because[200];  /* set when the lifecycle cancels it: the sentence its reader gets */
    bool logprobs;              /* immutable: started with generate.logprobs */
    hr_token_logprobs *records; /* one per generated token, appended by the worker */
    size_t record_count, record_capacity;
    size_t records_ready;       /* those of the tokens whose text the reader has read */

    /* The batched worker's own, touched only on hr-worker (batch.c). */
    struct hr_session_run {
        int32_t slot;               /* the slot it runs in */
        hr_token *tokens;           /* the prompt's tokens */
        int32_t n_tokens;
        int32_t n_read;             /* prompt tokens in the slot's sequence */
        bool generating;            /* the prompt is read; `next` is the token to decode */
        hr_token next;
        int32_t logits_index;       /* its entry with logits in the last step, or -1 */
        int32_t step_tokens;        /* its entries in the step being decoded */
        hr_engine_sampler *sampler;
        struct hr_text_stream *text;
        hr_generation_stats stats;
        double started, wall, first, last;
        double blocked_since;       /* when its ring was first seen full (0: not full) */
        unsigned epoch;             /* model->cancel_epoch when it started */
        int32_t n_ctx;
    } run;
};

/* Drops one reference; the last frees the session. */
void hr_session_release(hr_session *s);

/* Ends the session for its reader with `result` and `sentence`. */
void hr_session_finish(hr_session *s, int result, const char *sentence);

/* Queues a piece without waiting (the batched worker: it leaves a session whose ring is full
 * out of its steps instead); returns non-zero when the session was cancelled meanwhile. */
int hr_session_push_nowait(hr_session *s, const char *text, size_t length);

/* Keeps one token's log-probabilities for hr_session_logprobs (a logprob_fn; user_data is the
 * session); a piece pushed after it makes it the reader's once read. */
void hr_session_keep_logprobs(const hr_token_logprobs *record, void *user_data);

/* Whether the session's ring has room for a piece (the batched worker's backpressure). */
bool hr_session_has_room(hr_session *s);

/* Wakes the batched worker of `model` (a session arrived, was cancelled or its reader took a
 * piece); safe with a session's lock held. */
void hr_model_wake(hr_model *model);

/* Starts the model's hr-worker thread if it is not running (and the model is not stopping);
 * the caller holds queue_lock. */
int hr_model_start_worker_locked(hr_model *model);

#endif
