/*
 * cache.h: headroom's cache directory, as the rest of the library needs it: where it is, what it
 * may hold, and the kv/ folder's walks that snapshot.c uses. The public calls (snapshots, list,
 * clear, release) are in include/headroom.h.
 */
#ifndef HR_RUNTIME_CACHE_H
#define HR_RUNTIME_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "headroom.h"

struct hr_snapshot;

/* The budget when hr_context_params.cache_budget_bytes is 0: 2 GiB. */
#define HR_CACHE_DEFAULT_BUDGET ((uint64_t)2 << 30)

/* The cache directory: `configured` when given, else $HEADROOM_CACHE_DIR, else
 * $XDG_CACHE_HOME/headroom (an absolute XDG_CACHE_HOME only, as the XDG spec says), else
 * $HOME/.cache/headroom. A malloc'd string, or NULL when none is known. Nothing is created. */
char *hr_cache_resolve_root(const char *configured);

/* How hr_cache_open_kv opens kv/. */
enum {
    HR_KV_CREATE = 1,    /* make it (and the root, private to the user) when missing */
    HR_KV_PRIVATE = 2,   /* snapshots will be loaded from it or saved into it: it must be the
                            user's own, and one others may write is made private (listing and
                            clearing need no such trust: they read names and remove files) */
};

/* Opens <root>/kv as *fd_out, refusing a kv/ that is a symbolic link; its path goes to `path`.
 * `flags` are HR_KV_*. HR_ENOENT when there is none; HR_EACCES for one that is not private. */
int hr_cache_open_kv(hr_context *ctx, int flags, int *fd_out, char *path, size_t size);

/* Every intact snapshot in kv/, in directory order; *out is malloc'd (NULL when none). */
int hr_cache_scan(int dirfd, const char *path, struct hr_snapshot **out, size_t *count);

/* Removes interrupted saves' leftovers, then the least recently used snapshots until the cache
 * fits its budget; never `keep`. Failures are logged, not returned: the save already stands. */
void hr_cache_evict(hr_context *ctx, int dirfd, const char *path, const char *keep);

/* "<directory>/<name>", cut at `size` (the callers' buffers hold any path hr_cache_open_kv
 * accepts; only hr_cache_entry.path is shorter, and says so in headroom.h). */
void hr_cache_join_path(char *out, size_t size, const char *directory, const char *name);

#endif
