/*
 * platform.h: the few operating-system calls that differ between Linux and macOS, behind one
 * interface (libuv's src/unix/linux.c and darwin.c). linux.c is built and tested here; darwin.c
 * is written for Apple's API but is not compiled on this project's machines (docs/building.md).
 * Nothing here includes anything above it in the tree, and nothing else calls these APIs directly.
 */
#ifndef HR_PLATFORM_PLATFORM_H
#define HR_PLATFORM_PLATFORM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/* Names the calling thread (what top, gdb and perf show); truncated to the 15 bytes Linux keeps. */
void hr_thread_set_name(const char *name);

/* Hands freed heap back to the kernel where the allocator can (glibc's malloc_trim), so that an
 * unload's measured RSS drop is memory other processes can use. Does nothing elsewhere. */
void hr_heap_trim(void);

/* Initialises `cond` for hr_cond_wait_until(): its deadlines are on the monotonic clock of
 * hr_now_seconds(), so a wall-clock step (NTP, a suspended laptop) neither stretches nor cuts a
 * wait. Returns 0 or an errno value. */
int hr_cond_init_monotonic(pthread_cond_t *cond);

/* Waits on `cond` (made by hr_cond_init_monotonic) with `mutex` held until it is signalled or the
 * monotonic time `deadline` (hr_now_seconds() seconds) passes. Returns 0, or ETIMEDOUT. A deadline
 * already past returns ETIMEDOUT at once; spurious wake-ups return 0, as with pthreads. */
int hr_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex, double deadline);

/* A file's modification time in nanoseconds since the epoch. */
int64_t hr_stat_mtime_ns(const struct stat *st);

/* Drops the page cache of the regular file open as `fd` and returns the bytes that left memory,
 * measured with mincore before and after (0 where it cannot tell, or where the platform cannot
 * drop a file's pages: macOS has no posix_fadvise). Never reads the file. */
uint64_t hr_file_drop_page_cache(int fd);

/* Which pages of the file at `path` are in the page cache, by mincore over a mapping that is
 * never touched: *vector (malloc'd, one byte per page, bit 0 set for a resident page) and *pages.
 * False where it cannot tell: not a regular file, unreadable, or a platform without this (macOS:
 * darwin.c says false). Never reads the file. */
bool hr_file_residency(const char *path, unsigned char **vector, size_t *pages);
/* The bytes of the regular file open as `fd` that are in the page cache now, by mincore over a
 * mapping that is never touched (so it faults nothing in and reads nothing); the cost is one
 * mincore call per 256 MiB of file at 4 KiB pages. False, with 0, where it cannot tell (not a
 * regular file, mmap refused, macOS). */
bool hr_file_resident_bytes(int fd, uint64_t *out);

/* False where hr_file_drop_page_cache can never drop anything. */
bool hr_file_can_drop_page_cache(void);

#endif
