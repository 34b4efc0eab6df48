/*
 * cache.c: headroom's cache directory: where it is, its kv/ folder of snapshots, the budget that
 * evicts the least recently used, and the public list, status, clear and page-cache release. It
 * removes only files it recognises as its own (by name and by their trailer, snapshot_file.c) and
 * follows no symbolic link inside kv/.
 */
#include "runtime/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "platform/platform.h"
#include "runtime/model.h"
#include "runtime/snapshot_file.h"

/* An interrupted save's temporary file is removed once it is this old: a save in progress
 * touches its file far more often. */
enum { LEFTOVER_AGE_SECONDS = 60 };

void hr_cache_join_path(char *out, size_t size, const char *directory, const char *name)
{
    int n = snprintf(out, size, "%s/%s", directory, name);
    if (n < 0) out[0] = '\0';
}

char *hr_cache_resolve_root(const char *configured)
{
    if (configured && configured[0]) return strdup(configured);
    const char *headroom = getenv("HEADROOM_CACHE_DIR");
    if (headroom && headroom[0]) return strdup(headroom);
    char path[PATH_MAX];
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/') n = snprintf(path, sizeof path, "%s/headroom", xdg);
    else if (home && home[0]) n = snprintf(path, sizeof path, "%s/.cache/headroom", home);
    else return NULL;
    if (n < 0 || (size_t)n >= sizeof path) return NULL;
    return strdup(path);
}

/* mkdir -p, private to the user; the components above the cache may be links (a ~/.cache
 * moved to another disk is common), so this follows them as any program would. */
static int make_directories(const char *path)
{
    char partial[PATH_MAX];
    size_t length = strlen(path);
    if (length >= sizeof partial) return hr_fail(HR_EINVAL, "the cache directory path is too long: %s", path);
    memcpy(partial, path, length + 1);
    for (size_t i = 1; i <= length; i++) {
        if (partial[i] != '/' && partial[i] != '\0') continue;
        char saved = partial[i];
        partial[i] = '\0';
        if (mkdir(partial, 0700) != 0 && errno != EEXIST) {
            int error = errno;
            return hr_fail(hr_code_for_errno(error) == HR_EACCES ? HR_EACCES : HR_EIO,
                           "cannot create the cache directory %s: %s; set HEADROOM_CACHE_DIR to a "
                           "directory you may write", partial, strerror(error));
        }
        partial[i] = saved;
    }
    return HR_OK;
}

/* kv/ must be this user's and writable by no one else: snapshots are fed to the engine's state
 * loader, and a save writes a temporary file the engine reopens by name, so a directory another
 * user may write lets them plant a crafted snapshot or swap the file in between. One that is
 * ours but open to others (made by hand, a permissive umask elsewhere) is closed up; one that
 * belongs to someone else is refused. */
static int check_private(int fd, const char *path)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return hr_fail(HR_EIO, "cannot check the cache directory %s: %s", path, strerror(errno));
    if (st.st_uid != geteuid())
        return hr_fail(HR_EACCES, "the cache directory %s belongs to uid %u, not to this user (uid %u): another user "
                       "could plant or replace the snapshots headroom reads; remove it (headroom makes it again) or "
                       "set HEADROOM_CACHE_DIR to a directory of your own", path, (unsigned)st.st_uid,
                       (unsigned)geteuid());
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        if (fchmod(fd, st.st_mode & 0700) != 0)
            return hr_fail(HR_EACCES, "the cache directory %s may be written by other users and cannot be made "
                           "private (%s): run chmod go-w on it", path, strerror(errno));
        hr_log(HR_LOG_WARN, "the cache directory %s could be written by other users; made it private to you (mode %03o)",
               path, (unsigned)(st.st_mode & 0700));
    }
    return HR_OK;
}

int hr_cache_open_kv(hr_context *ctx, int flags, int *fd_out, char *path, size_t size)
{
    *fd_out = -1;
    path[0] = '\0';
    if (!ctx->cache_root)
        return hr_fail(HR_ENOENT, "headroom has no cache directory: neither HEADROOM_CACHE_DIR, XDG_CACHE_HOME "
                       "nor HOME is set; set one of them or hr_context_params.cache_dir");
    int n = snprintf(path, size, "%s/kv", ctx->cache_root);
    if (n < 0 || (size_t)n >= size || (size_t)n + HR_SNAPSHOT_NAME_LENGTH + 8 >= PATH_MAX)
        return hr_fail(HR_EINVAL, "the cache directory path is too long: %s", ctx->cache_root);
    if (flags & HR_KV_CREATE) {
        int rc = make_directories(ctx->cache_root);
        if (rc != HR_OK) return rc;
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            int error = errno;
            return hr_fail(hr_code_for_errno(error) == HR_EACCES ? HR_EACCES : HR_EIO,
                           "cannot create %s: %s", path, strerror(error));
        }
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        int rc = flags & HR_KV_PRIVATE ? check_private(fd, path) : HR_OK;
        if (rc != HR_OK) {
            close(fd);
            return rc;
        }
        *fd_out = fd;
        return HR_OK;
    }
    int error = errno;
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        return hr_fail(HR_EACCES, "%s is a symbolic link; headroom follows no links in its cache: remove the link "
                       "(headroom makes kv/ again) or set HEADROOM_CACHE_DIR to a real directory", path);
    if (error == ENOENT) return hr_fail(HR_ENOENT, "there are no snapshots: %s does not exist", path);
    if (error == ENOTDIR)
        return hr_fail(HR_EIO, "%s is not a directory; move it away so headroom can keep its snapshots there", path);
    if (error == EACCES || error == EPERM)
        return hr_fail(HR_EACCES, "cannot open the cache directory %s: permission denied", path);
    return hr_fail(HR_EIO, "cannot open the cache directory %s: %s", path, strerror(error));
}

int hr_cache_scan(int dirfd, const char *path, struct hr_snapshot **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    /* a second open file description: fdopendir takes the fd over and moves its offset */
    int listing = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = listing >= 0 ? fdopendir(listing) : NULL;
    if (!dir) {
        int error = errno;
        if (listing >= 0) close(listing);
        return hr_fail(HR_EIO, "cannot list the cache directory %s: %s", path, strerror(error));
    }
    struct hr_snapshot *list = NULL;
    size_t used = 0, capacity = 0;
    int rc = HR_OK;
    for (struct dirent *entry; (entry = readdir(dir)) != NULL;) {
        if (!hr_snapshot_is_name(entry->d_name)) continue;
        if (used == capacity) {
            size_t bigger = capacity ? capacity * 2 : 16;
            struct hr_snapshot *grown = realloc(list, bigger * sizeof *grown);
            if (!grown) { rc = hr_fail(HR_ENOMEM, "out of memory listing the cache"); break; }
            list = grown;
            capacity = bigger;
        }
        if (hr_snapshot_read(dirfd, entry->d_name, &list[used])) used++;
    }
    closedir(dir);
    if (rc != HR_OK || used == 0) {
        free(list);
        return rc;
    }
    *out = list;
    *count = used;
    return HR_OK;
}

static int by_last_use_oldest_first(const void *a, const void *b)
{
    const struct hr_snapshot *x = a, *y = b;
    if (x->last_used_at != y->last_used_at) return x->last_used_at < y->last_used_at ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Whether kv/<name> (a regular file, opened without following links) is an interrupted save's
 * leftover: a temporary name, untouched for a minute, empty or starting as the engine's state. */
static bool is_leftover(hr_context *ctx, int dirfd, const char *name, const struct stat *st)
{
    if (!hr_snapshot_is_leftover_name(name) || hr_wall_seconds() - (double)hr_stat_mtime_ns(st) * 1e-9 < LEFTOVER_AGE_SECONDS) return false;
    if (st->st_size == 0) return true;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return false;
    unsigned char head[16];
    ssize_t n = read(fd, head, sizeof head);
    close(fd);
    return n > 0 && ctx->engine->is_state_file && ctx->engine->is_state_file(head, (size_t)n);
}

/* Removes what interrupted saves left (a crash between the engine's write and the rename). */
static void remove_leftovers(hr_context *ctx, int dirfd, const char *path)
{
    int listing = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = listing >= 0 ? fdopendir(listing) : NULL;
    if (!dir) {
        if (listing >= 0) close(listing);
        return;
    }
    for (struct dirent *entry; (entry = readdir(dir)) != NULL;) {
        struct stat st;
        if (!hr_snapshot_is_leftover_name(entry->d_name) || fstatat(dirfd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode) || !is_leftover(ctx, dirfd, entry->d_name, &st))
            continue;
        if (unlinkat(dirfd, entry->d_name, 0) == 0)
            hr_log(HR_LOG_INFO, "removed %s/%s (%llu bytes), left by a save that was interrupted", path,
                   entry->d_name, (unsigned long long)st.st_size);
    }
    closedir(dir);
}

void hr_cache_evict(hr_context *ctx, int dirfd, const char *path, const char *keep)
{
    remove_leftovers(ctx, dirfd, path);
    struct hr_snapshot *list = NULL;
    size_t count = 0;
    if (hr_cache_scan(dirfd, path, &list, &count) != HR_OK) {
        hr_log(HR_LOG_WARN, "could not check the cache's budget: %s", hr_last_error());
        return;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < count; i++) total += list[i].bytes;
    qsort(list, count, sizeof *list, by_last_use_oldest_first);
    for (size_t i = 0; i < count && total > ctx->cache_budget_bytes; i++) {
        if (keep && strcmp(list[i].name, keep) == 0) continue;
        if (unlinkat(dirfd, list[i].name, 0) != 0 && errno != ENOENT) {
            hr_log(HR_LOG_WARN, "could not evict snapshot %s/%s: %s", path, list[i].name, strerror(errno));
            continue;
        }
        total -= list[i].bytes;
        hr_log(HR_LOG_INFO, "evicted snapshot %s/%s (%s, %d tokens, %llu bytes, the least recently used): "
               "the cache was over its budget of %llu bytes", path, list[i].name, list[i].trailer.model_name,
               list[i].trailer.tokens, (unsigned long long)list[i].bytes,
               (unsigned long long)ctx->cache_budget_bytes);
    }
    free(list);
}

/* Opens kv/ for reading; *dirfd is -1 with HR_OK when there is none yet: an empty cache. */
static int open_existing_kv(hr_context *ctx, int *dirfd, char *path, size_t size)
{
    int rc = hr_cache_open_kv(ctx, 0, dirfd, path, size);
    if (rc == HR_ENOENT && ctx->cache_root) {
        hr_clear_error();
        return HR_OK;
    }
    return rc;
}

HR_API int hr_cache_list(hr_context *ctx, hr_cache_entry **entries, size_t *count)
{
    hr_clear_error();
    if (entries) *entries = NULL;
    if (count) *count = 0;
    if (!ctx || !entries || !count) return hr_fail(HR_EINVAL, "hr_cache_list: ctx, entries and count are required");
    char directory[PATH_MAX];
    int dirfd;
    int rc = open_existing_kv(ctx, &dirfd, directory, sizeof directory);
    if (rc != HR_OK || dirfd < 0) return rc;
    struct hr_snapshot *list = NULL;
    size_t n = 0;
    rc = hr_cache_scan(dirfd, directory, &list, &n);
    close(dirfd);
    if (rc != HR_OK || n == 0) return rc;
    qsort(list, n, sizeof *list, by_last_use_oldest_first);
    hr_cache_entry *out = calloc(n, sizeof *out);
    if (!out) {
        free(list);
        return hr_fail(HR_ENOMEM, "out of memory listing the cache");
    }
    for (size_t i = 0; i < n; i++) {
        const struct hr_snapshot *s = &list[n - 1 - i];   /* most recently used first */
        hr_cache_join_path(out[i].path, sizeof out[i].path, directory, s->name);
        snprintf(out[i].model, sizeof out[i].model, "%s", s->trailer.model_name);
        out[i].bytes = s->bytes;
        out[i].tokens = s->trailer.tokens;
        out[i].created_at = s->trailer.created_at;
        out[i].last_used_at = s->last_used_at;
        out[i].n_ctx = s->trailer.n_ctx;
    }
    free(list);
    *entries = out;
    *count = n;
    return HR_OK;
}

HR_API int hr_cache_get_status(hr_context *ctx, hr_cache_status *out)
{
    hr_clear_error();
    if (!ctx || !out) return hr_fail(HR_EINVAL, "hr_cache_get_status: ctx and out are required");
    memset(out, 0, sizeof *out);
    out->budget_bytes = ctx->cache_budget_bytes;
    char directory[PATH_MAX];
    int dirfd;
    int rc = open_existing_kv(ctx, &dirfd, directory, sizeof directory);
    if (snprintf(out->directory, sizeof out->directory, "%s", directory) < 0) out->directory[0] = '\0';
    if (rc != HR_OK || dirfd < 0) return rc;
    struct hr_snapshot *list = NULL;
    size_t n = 0;
    rc = hr_cache_scan(dirfd, directory, &list, &n);
    close(dirfd);
    for (size_t i = 0; i < n; i++) out->used_bytes += list[i].bytes;
    out->snapshots = n;
    free(list);
    return rc;
}

HR_API int hr_cache_clear(hr_context *ctx, hr_cache_clear_report *report, hr_cache_problem_fn on_problem,
                          void *user_data)
{
    hr_clear_error();
    hr_cache_clear_report local;
    if (!report) report = &local;
    memset(report, 0, sizeof *report);
    if (!ctx) return hr_fail(HR_EINVAL, "hr_cache_clear: ctx is required");
    char directory[PATH_MAX];
    int dirfd;
    int rc = open_existing_kv(ctx, &dirfd, directory, sizeof directory);
    if (rc != HR_OK || dirfd < 0) return rc;
    int listing = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = listing >= 0 ? fdopendir(listing) : NULL;
    if (!dir) {
        int error = errno;
        if (listing >= 0) close(listing);
        close(dirfd);
        return hr_fail(HR_EIO, "cannot list the cache directory %s: %s", directory, strerror(error));
    }
    int first_code = HR_OK;
    char first_sentence[768] = "";
    for (struct dirent *entry; (entry = readdir(dir)) != NULL;) {
        const char *name = entry->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        struct stat st;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;   /* gone meanwhile */
        struct hr_snapshot snapshot;
        bool ours = S_ISREG(st.st_mode) &&
                    ((hr_snapshot_is_name(name) && hr_snapshot_read(dirfd, name, &snapshot)) || is_leftover(ctx, dirfd, name, &st));
        if (!ours) {
            /* links, directories and files headroom did not write: never touched */
            report->skipped++;
            continue;
        }
        if (unlinkat(dirfd, name, 0) == 0) {
            report->removed++;
            report->bytes_removed += (uint64_t)st.st_size;
            continue;
        }
        if (errno == ENOENT) continue;   /* removed meanwhile (another process's eviction) */
        int error = errno;
        int code = hr_code_for_errno(error) == HR_EACCES ? HR_EACCES : HR_EIO;
        char path[PATH_MAX + 64], sentence[768];
        hr_cache_join_path(path, sizeof path, directory, name);
        int length = snprintf(sentence, sizeof sentence, "cannot remove %s: %s%s", path, strerror(error),
                 code == HR_EACCES ? " (check the file's and the directory's permissions, and `lsattr` for an "
                                     "immutable flag)" : "");
        (void)length;   /* a sentence cut short still says what failed */
        report->failed++;
        if (first_code == HR_OK) {
            first_code = code;
            snprintf(first_sentence, sizeof first_sentence, "%s", sentence);
        }
        hr_log(HR_LOG_WARN, "%s", sentence);
        if (on_problem) on_problem(path, code, sentence, user_data);
    }
    closedir(dir);
    close(dirfd);
    if (report->removed > 0)
        hr_log(HR_LOG_INFO, "cleared %zu of headroom's files (%llu bytes) from %s", report->removed,
               (unsigned long long)report->bytes_removed, directory);
    if (first_code != HR_OK)
        return hr_fail(first_code, "%zu of headroom's files could not be removed (the rest were); the first: %s",
                       report->failed, first_sentence);
    return HR_OK;
}

HR_API int hr_cache_release_memory(hr_context *ctx, uint64_t *bytes_released)
{
    hr_clear_error();
    if (bytes_released) *bytes_released = 0;
    if (!ctx) return hr_fail(HR_EINVAL, "hr_cache_release_memory: ctx is required");
    if (!hr_file_can_drop_page_cache())
        return hr_fail(HR_ENOTSUP, "this platform cannot drop a file's cached pages (no posix_fadvise)");
    char directory[PATH_MAX];
    int dirfd;
    int rc = open_existing_kv(ctx, &dirfd, directory, sizeof directory);
    if (rc != HR_OK || dirfd < 0) return rc;
    struct hr_snapshot *list = NULL;
    size_t count = 0;
    rc = hr_cache_scan(dirfd, directory, &list, &count);
    uint64_t released = 0;
    for (size_t i = 0; i < count; i++) {
        int fd = openat(dirfd, list[i].name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) continue;
        released += hr_file_drop_page_cache(fd);   /* skips what is not a regular file */
        close(fd);
    }
    free(list);
    close(dirfd);
    if (released > 0) hr_log(HR_LOG_INFO, "dropped %llu bytes of snapshot pages from the page cache", (unsigned long long)released);
    if (bytes_released) *bytes_released = released;
    return rc;
}
