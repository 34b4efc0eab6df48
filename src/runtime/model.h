/*
 * model.h: the hr_model struct: one loaded model, its engine handle and its cancel flag.
 */
#ifndef HR_RUNTIME_MODEL_H
#define HR_RUNTIME_MODEL_H

#include <stdatomic.h>

#include "core/context.h"

struct hr_model {
    hr_context *ctx;
    const hr_engine_ops *engine;
    hr_engine_model *engine_model;
    char *path;
    atomic_bool cancel_requested;  /* set by hr_model_cancel(), read between and inside decode steps */
    atomic_bool busy;              /* a generation is running */
};

#endif
