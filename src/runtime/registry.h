/*
 * registry.h: the context's model registry and its lifecycle thread ("hr-lifecycle"), which
 * unloads models whose keep-alive expired and carries out the pressure plan (policy/plan.c).
 */
#ifndef HR_RUNTIME_REGISTRY_H
#define HR_RUNTIME_REGISTRY_H

#include "headroom.h"

struct hr_registry;

/* Creates the context's (empty) registry; the thread starts with the first model. */
int hr_registry_create(hr_context *ctx, struct hr_registry **out);

/* Stops the thread, cancels what runs, unloads every model, frees the registry. */
void hr_registry_destroy(struct hr_registry *registry);

#endif
