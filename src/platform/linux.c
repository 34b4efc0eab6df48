/*
 * linux.c: platform.h on Linux (glibc): thread names, malloc_trim, monotonic condition
 * variables, st_mtim, posix_fadvise with mincore. Built wherever the library is not built for Apple.
 */
#include "platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

void hr_thread_set_name(const char *name)
{
    char truncated[16];   /* the kernel's TASK_COMM_LEN, with its NUL */
    snprintf(truncated, sizeof truncated, "%s", name);
    pthread_setname_np(pthread_self(), truncated);
}

void hr_heap_trim(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

int hr_cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attributes;
    int rc = pthread_condattr_init(&attributes);
    if (rc != 0) return rc;
    rc = pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    if (rc == 0) rc = pthread_cond_init(cond, &attributes);
    pthread_condattr_destroy(&attributes);
    return rc;
}

int hr_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex, double deadline)
{
    if (!(deadline > 0)) deadline = 0;   /* NaN or negative: already past */
    if (deadline > 1e15) deadline = 1e15;   /* "for ever" must not overflow time_t */
    struct timespec at;
    double whole = floor(deadline);
    at.tv_sec = (time_t)whole;
    at.tv_nsec = (long)((deadline - whole) * 1e9);
    if (at.tv_nsec >= 1000000000L) at.tv_nsec = 999999999L;
    int rc = pthread_cond_timedwait(cond, mutex, &at);
    return rc == ETIMEDOUT ? ETIMEDOUT : 0;
}

int64_t hr_stat_mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* Resident bytes of a mapped file, by mincore, a window at a time so that the vector stays small
 * (64 KiB) whatever the file's size; false where it cannot tell. */
static bool resident_bytes(void *map, size_t length, size_t page, uint64_t *out)
{
    enum { VECTOR_PAGES = 64 * 1024 };
    unsigned char *vector = malloc(VECTOR_PAGES);
    if (!vector) return false;
    uint64_t resident = 0;
    bool ok = true;
    for (size_t offset = 0; ok && offset < length; offset += (size_t)VECTOR_PAGES * page) {
        size_t window = length - offset < (size_t)VECTOR_PAGES * page ? length - offset : (size_t)VECTOR_PAGES * page;
        ok = mincore((char *)map + offset, window, vector) == 0;
        size_t pages = (window + page - 1) / page;
        for (size_t i = 0; ok && i < pages; i++)
            if (vector[i] & 1) resident += page;
    }
    free(vector);
    *out = resident;
    return ok;
}

bool hr_file_resident_bytes(int fd, uint64_t *out)
{
    *out = 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
    if (st.st_size == 0) return true;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    /* a mapping that is never touched faults nothing in: it only lets mincore look */
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) return false;
    bool measured = resident_bytes(map, (size_t)st.st_size, page, out);
    munmap(map, (size_t)st.st_size);
    uint64_t size = (uint64_t)st.st_size;
    if (*out > size) *out = size;   /* the last page counts whole */
    return measured;
}

uint64_t hr_file_drop_page_cache(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return 0;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    /* a mapping that is never touched faults nothing in: it only lets mincore look */
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    uint64_t before = 0, after = 0;
    bool measured = map != MAP_FAILED && resident_bytes(map, (size_t)st.st_size, page, &before);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    measured = measured && resident_bytes(map, (size_t)st.st_size, page, &after);
    if (map != MAP_FAILED) munmap(map, (size_t)st.st_size);
    return measured && after < before ? before - after : 0;
}

bool hr_file_residency(const char *path, unsigned char **vector, size_t *pages)
{
    *vector = NULL;
    *pages = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
    void *map = ok ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    close(fd);
    if (map == MAP_FAILED) return false;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), count = ((size_t)st.st_size + page - 1) / page;
    unsigned char *v = malloc(count);
    ok = v && mincore(map, (size_t)st.st_size, v) == 0;
    munmap(map, (size_t)st.st_size);
    if (!ok) {
        free(v);
        return false;
    }
    *vector = v;
    *pages = count;
    return true;
}

bool hr_file_can_drop_page_cache(void)
{
    return true;
}
