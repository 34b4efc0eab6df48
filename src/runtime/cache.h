/*
 * cache.h: headroom's cache directory, as the rest of the library needs it: where it is and what
 * it may hold. The public calls (snapshots, list, clear, release) are in include/headroom.h.
 */
#ifndef HR_RUNTIME_CACHE_H
#define HR_RUNTIME_CACHE_H

#include <stdint.h>

/* The budget when hr_context_params.cache_budget_bytes is 0: 2 GiB. */
#define HR_CACHE_DEFAULT_BUDGET ((uint64_t)2 << 30)

/* The cache directory: `configured` when given, else $HEADROOM_CACHE_DIR, else
 * $XDG_CACHE_HOME/headroom (an absolute XDG_CACHE_HOME only, as the XDG spec says), else
 * $HOME/.cache/headroom. A malloc'd string, or NULL when none is known. Nothing is created. */
char *hr_cache_resolve_root(const char *configured);

/* Drops the page cache of the regular file open as `fd` (posix_fadvise DONTNEED) and returns
 * the bytes that left memory, measured with mincore before and after (0 where it cannot tell or
 * the platform cannot drop pages). Never reads the file. */
uint64_t hr_file_drop_page_cache(int fd);

#endif
