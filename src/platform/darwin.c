/*
 * darwin.c: platform.h on macOS. Written against Apple's documented API but NOT compiled on this
 * project's machines (Linux only; docs/building.md): treat it as a starting point, not as tested.
 * macOS names only the calling thread, has no malloc_trim, no pthread_condattr_setclock (a
 * relative wait stands in) and no posix_fadvise.
 */
#include "platform/platform.h"

#include <errno.h>
#include <time.h>

void hr_thread_set_name(const char *name)
{
    pthread_setname_np(name);
}

void hr_heap_trim(void)
{
}

int hr_cond_init_monotonic(pthread_cond_t *cond)
{
    return pthread_cond_init(cond, NULL);
}

int hr_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex, double deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double left = deadline - ((double)now.tv_sec + (double)now.tv_nsec * 1e-9);
    if (!(left > 0)) return ETIMEDOUT;
    if (left > 1e9) left = 1e9;
    struct timespec relative = { .tv_sec = (time_t)left, .tv_nsec = (long)((left - (double)(time_t)left) * 1e9) };
    int rc = pthread_cond_timedwait_relative_np(cond, mutex, &relative);
    return rc == ETIMEDOUT ? ETIMEDOUT : 0;
}

int64_t hr_stat_mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtimespec.tv_sec * 1000000000 + st->st_mtimespec.tv_nsec;
}

uint64_t hr_file_drop_page_cache(int fd)
{
    (void)fd;
    return 0;
}

bool hr_file_residency(const char *path, unsigned char **vector, size_t *pages)
{
    (void)path;
    *vector = NULL;
    *pages = 0;
    return false;   /* mincore exists, but nothing here needs it on macOS yet */
}

bool hr_file_resident_bytes(int fd, uint64_t *out)
{
    (void)fd;
    *out = 0;
    return false;   /* not measured on macOS yet: a load there is judged without its file's cache */
}

bool hr_file_can_drop_page_cache(void)
{
    return false;
}
