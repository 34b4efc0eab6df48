/*
 * context.h: the hr_context struct, shared by the rooms that hang off it.
 * A context owns the engine table and the settings every model loaded through it uses.
 */
#ifndef HR_CORE_CONTEXT_H
#define HR_CORE_CONTEXT_H

#include "engine/engine.h"
#include "headroom.h"

struct hr_context {
    hr_context_params params;
    const hr_engine_ops *engine;   /* immutable after create */
};

/* Replaces the engine models are loaded with: the seam that lets unit tests drive the runtime
 * with a fake engine. Only before any model is loaded. */
void hr_context_use_engine(hr_context *ctx, const hr_engine_ops *engine);

/* Monotonic seconds; the one clock the runtime reads. */
double hr_now_seconds(void);

#endif
