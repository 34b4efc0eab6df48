/*
 * guard.h: the degradation guard's hooks in the decode loop (generate.c calls them on the
 * worker's thread; the state lives in the model).
 */
#ifndef HR_RUNTIME_GUARD_H
#define HR_RUNTIME_GUARD_H

#include "runtime/model.h"

/* Starts a window: after the first token of a generation (the prompt is not judged). */
void hr_guard_begin(hr_model *model);

/* Counts a decoded token (`constrained`: sampled under a grammar); closes and judges the window
 * when it is full. */
void hr_guard_token(hr_model *model, bool constrained);

#endif
