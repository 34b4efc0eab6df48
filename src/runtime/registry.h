/*
 * registry.h: the context's model registry and its lifecycle thread ("hr-lifecycle"), which
 * unloads models whose keep-alive expired and carries out the pressure plan (policy/plan.c).
 */
#ifndef HR_RUNTIME_REGISTRY_H
#define HR_RUNTIME_REGISTRY_H

#include <stdbool.h>

#include "headroom.h"

struct hr_registry;

/* Creates the context's (empty) registry; the thread starts with the first model. */
int hr_registry_create(hr_context *ctx, struct hr_registry **out);

/* Stops the thread, cancels what runs, unloads every model, frees the registry. */
void hr_registry_destroy(struct hr_registry *registry);

/* The guard found `model` thrashing. Frees other memory (idle models) first and returns true
 * when it did, so the model gets another chance; otherwise cancels its work with `reason`,
 * unloads it when its users let go, and refuses to load it again until memory allows (returns
 * false). A model not in the registry is only reported. Called on the generating thread. */
bool hr_registry_degraded(hr_context *ctx, hr_model *model, const char *reason);

/* A model's worker finished its work (no session left running or queued). The lifecycle
 * thread skips a model that still works when it plans, and a release that comes as the last
 * piece is read (before the worker has let go of the session) would otherwise leave its
 * keep-alive unarmed until other news. Called with no lock held; any thread. */
void hr_registry_work_ended(hr_context *ctx);

#endif
