/*
 * cache.c: headroom's cache directory and the KV snapshots in its kv/ folder: save a model's
 * context window, restore it into the same model, evict by last use, list, clear, and drop the
 * snapshots' page cache. It removes only files it recognises as its own (by name and by their
 * trailer) and follows no symbolic link inside kv/.
 */
#include "runtime/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "runtime/model.h"

/* ---- the snapshot file: the engine's state, then headroom's trailer ------------------------ */

/* The engine writes its state from the first byte and reads it back from there (llama.cpp's
 * file API takes a path, not an offset), so headroom's description of the file sits at its end:
 * a fixed 1024-byte trailer with a magic at both ends and a checksum. A file is headroom's when
 * its name follows the pattern below and this trailer is intact and says how long the file is. */
#define TRAILER_MAGIC "HRKVSNAP"
#define TRAILER_END "HRKVEND"
enum { TRAILER_VERSION = 1, LEFTOVER_AGE_SECONDS = 60, SNAPSHOT_NAME_LENGTH = 47 };

struct trailer {
    char magic[8];
    uint32_t version;
    uint32_t trailer_bytes;
    uint64_t state_bytes;         /* the engine's part: everything before the trailer */
    uint64_t identity_hash;
    uint64_t model_file_bytes;
    int64_t model_mtime_ns;
    double created_at;            /* wall clock */
    int32_t n_ctx;
    int32_t tokens;
    char engine[32];
    char cache_types[32];
    char model_name[128];
    char model_path[752];
    uint64_t checksum;            /* FNV-1a of every byte before it */
    char end[8];
};
_Static_assert(sizeof(struct trailer) == 1024, "the snapshot trailer is 1024 bytes, with no padding");

/* A snapshot found in kv/, with what the directory says about it. */
struct snapshot {
    char name[SNAPSHOT_NAME_LENGTH + 1];
    struct trailer trailer;
    uint64_t bytes;
    double last_used_at;          /* the file's modification time: set at save, touched at restore */
};

static uint64_t fnv1a(uint64_t hash, const void *data, size_t length)
{
    const unsigned char *bytes = data;
    for (size_t i = 0; i < length; i++) {
        hash ^= bytes[i];
        hash *= 1099511628211ull;
    }
    return hash;
}

static const uint64_t FNV_OFFSET = 14695981039346656037ull;

static uint64_t trailer_checksum(const struct trailer *t)
{
    return fnv1a(FNV_OFFSET, t, offsetof(struct trailer, checksum));
}

static bool is_lower_hex(const char *text, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f'))) return false;
    return true;
}

/* "<identity 16 hex>-<created ns 16 hex>-<pid 8 hex>.hrkv" */
static bool is_snapshot_name(const char *name)
{
    return strlen(name) == SNAPSHOT_NAME_LENGTH && is_lower_hex(name, 16) && name[16] == '-' &&
           is_lower_hex(name + 17, 16) && name[33] == '-' && is_lower_hex(name + 34, 8) &&
           strcmp(name + 42, ".hrkv") == 0;
}

/* ".<snapshot name>.tmp": a save in progress, or the leftover of one that was interrupted */
static bool is_leftover_name(const char *name)
{
    size_t length = strlen(name);
    if (length != SNAPSHOT_NAME_LENGTH + 5 || name[0] != '.' || strcmp(name + length - 4, ".tmp") != 0) return false;
    char inner[SNAPSHOT_NAME_LENGTH + 1];
    memcpy(inner, name + 1, SNAPSHOT_NAME_LENGTH);
    inner[SNAPSHOT_NAME_LENGTH] = '\0';
    return is_snapshot_name(inner);
}

/* "<directory>/<name>", cut at `size` (the callers' buffers hold any path open_kv accepts;
 * only hr_cache_entry.path is shorter, and says so in headroom.h). */
static void join_path(char *out, size_t size, const char *directory, const char *name)
{
    int n = snprintf(out, size, "%s/%s", directory, name);
    if (n < 0) out[0] = '\0';
}

static bool terminated(const char *field, size_t size)
{
    return memchr(field, '\0', size) != NULL;
}

static double mtime_of(const struct stat *st)
{
#ifdef __APPLE__
    return (double)st->st_mtimespec.tv_sec + (double)st->st_mtimespec.tv_nsec * 1e-9;
#else
    return (double)st->st_mtim.tv_sec + (double)st->st_mtim.tv_nsec * 1e-9;
#endif
}

static double wall_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* Reads and checks the trailer of kv/<name>, without following a link. */
static bool read_snapshot(int dirfd, const char *name, struct snapshot *out)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    struct trailer *t = &out->trailer;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > sizeof *t &&
              pread(fd, t, sizeof *t, st.st_size - (off_t)sizeof *t) == (ssize_t)sizeof *t;
    close(fd);
    if (!ok) return false;
    ok = memcmp(t->magic, TRAILER_MAGIC, 8) == 0 && memcmp(t->end, TRAILER_END, 8) == 0 &&
         t->version == TRAILER_VERSION && t->trailer_bytes == sizeof *t &&
         t->state_bytes + sizeof *t == (uint64_t)st.st_size && t->checksum == trailer_checksum(t) &&
         t->tokens > 0 && t->n_ctx > 0 && t->tokens <= t->n_ctx &&
         terminated(t->engine, sizeof t->engine) && terminated(t->cache_types, sizeof t->cache_types) &&
         terminated(t->model_name, sizeof t->model_name) && terminated(t->model_path, sizeof t->model_path);
    if (!ok) return false;
    snprintf(out->name, sizeof out->name, "%s", name);
    out->bytes = (uint64_t)st.st_size;
    out->last_used_at = mtime_of(&st);
    return true;
}

/* ---- the directory ------------------------------------------------------------------------- */

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
            return hr_fail(error == EACCES || error == EPERM || error == EROFS ? HR_EACCES : HR_EIO,
                           "cannot create the cache directory %s: %s; set HEADROOM_CACHE_DIR to a "
                           "directory you may write", partial, strerror(error));
        }
        partial[i] = saved;
    }
    return HR_OK;
}

/* Opens <root>/kv, refusing a kv/ that is a symbolic link. */
static int open_kv(hr_context *ctx, bool create, int *fd_out, char *path, size_t size)
{
    *fd_out = -1;
    path[0] = '\0';
    if (!ctx->cache_root)
        return hr_fail(HR_ENOENT, "headroom has no cache directory: neither HEADROOM_CACHE_DIR, XDG_CACHE_HOME "
                       "nor HOME is set; set one of them or hr_context_params.cache_dir");
    int n = snprintf(path, size, "%s/kv", ctx->cache_root);
    if (n < 0 || (size_t)n >= size || (size_t)n + SNAPSHOT_NAME_LENGTH + 8 >= PATH_MAX)
        return hr_fail(HR_EINVAL, "the cache directory path is too long: %s", ctx->cache_root);
    if (create) {
        int rc = make_directories(ctx->cache_root);
        if (rc != HR_OK) return rc;
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            int error = errno;
            return hr_fail(error == EACCES || error == EPERM || error == EROFS ? HR_EACCES : HR_EIO,
                           "cannot create %s: %s", path, strerror(error));
        }
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
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

/* Every snapshot in kv/, in directory order; *out is malloc'd (NULL when none). */
static int scan(int dirfd, const char *path, struct snapshot **out, size_t *count)
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
    struct snapshot *list = NULL;
    size_t used = 0, capacity = 0;
    int rc = HR_OK;
    for (struct dirent *entry; (entry = readdir(dir)) != NULL;) {
        if (!is_snapshot_name(entry->d_name)) continue;
        if (used == capacity) {
            size_t bigger = capacity ? capacity * 2 : 16;
            struct snapshot *grown = realloc(list, bigger * sizeof *grown);
            if (!grown) { rc = hr_fail(HR_ENOMEM, "out of memory listing the cache"); break; }
            list = grown;
            capacity = bigger;
        }
        if (read_snapshot(dirfd, entry->d_name, &list[used])) used++;
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
    const struct snapshot *x = a, *y = b;
    if (x->last_used_at != y->last_used_at) return x->last_used_at < y->last_used_at ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Whether kv/<name> (a regular file, opened without following links) is an interrupted save's
 * leftover: a temporary name, untouched for a minute, empty or starting as the engine's state. */
static bool is_leftover(hr_context *ctx, int dirfd, const char *name, const struct stat *st)
{
    if (!is_leftover_name(name) || wall_seconds() - mtime_of(st) < LEFTOVER_AGE_SECONDS) return false;
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
        if (!is_leftover_name(entry->d_name) || fstatat(dirfd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode) || !is_leftover(ctx, dirfd, entry->d_name, &st))
            continue;
        if (unlinkat(dirfd, entry->d_name, 0) == 0)
            hr_log(HR_LOG_INFO, "removed %s/%s (%llu bytes), left by a save that was interrupted", path,
                   entry->d_name, (unsigned long long)st.st_size);
    }
    closedir(dir);
}

/* Removes the least recently used snapshots until the cache fits its budget; never `keep`. */
static void evict(hr_context *ctx, int dirfd, const char *path, const char *keep)
{
    remove_leftovers(ctx, dirfd, path);
    struct snapshot *list = NULL;
    size_t count = 0;
    if (scan(dirfd, path, &list, &count) != HR_OK) {
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

/* ---- identity ------------------------------------------------------------------------------ */

void hr_model_identity_init(hr_model *model)
{
    struct hr_model_identity *id = &model->identity;
    memset(id, 0, sizeof *id);
    char resolved[PATH_MAX];
    if (!realpath(model->path, resolved)) {
        snprintf(id->problem, sizeof id->problem, "the model file %s cannot be found again (%s), so its "
                 "snapshots cannot be told apart from another file's", model->path, strerror(errno));
        return;
    }
    struct stat st;
    if (strlen(resolved) >= sizeof id->path || stat(resolved, &st) != 0) {
        snprintf(id->problem, sizeof id->problem, "the model file's path is too long (or the file vanished) "
                 "to name its snapshots: %.100s", resolved);
        return;
    }
    hr_engine_model_info info;
    model->engine->get_info(model->engine_model, &info);
    memcpy(id->path, resolved, strlen(resolved) + 1);   /* shorter than id->path: checked above */
    id->file_bytes = (uint64_t)st.st_size;
#ifdef __APPLE__
    id->mtime_ns = (int64_t)st.st_mtimespec.tv_sec * 1000000000 + st.st_mtimespec.tv_nsec;
#else
    id->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
#endif
    id->n_ctx = info.n_ctx;
    snprintf(id->cache_types, sizeof id->cache_types, "%s", info.cache_types[0] ? info.cache_types : "default");
    snprintf(id->engine, sizeof id->engine, "%s", model->engine->name);
    uint64_t hash = FNV_OFFSET;
    hash = fnv1a(hash, id->engine, strlen(id->engine) + 1);
    hash = fnv1a(hash, id->path, strlen(id->path) + 1);
    hash = fnv1a(hash, &id->file_bytes, sizeof id->file_bytes);
    hash = fnv1a(hash, &id->mtime_ns, sizeof id->mtime_ns);
    hash = fnv1a(hash, &id->n_ctx, sizeof id->n_ctx);
    hash = fnv1a(hash, id->cache_types, strlen(id->cache_types) + 1);
    id->hash = hash;
    id->known = true;
}

static bool same_identity(const struct trailer *t, const struct hr_model_identity *id)
{
    return t->identity_hash == id->hash && t->model_file_bytes == id->file_bytes &&
           t->model_mtime_ns == id->mtime_ns && t->n_ctx == id->n_ctx && strcmp(t->model_path, id->path) == 0 &&
           strcmp(t->cache_types, id->cache_types) == 0 && strcmp(t->engine, id->engine) == 0;
}

/* ---- save and restore ---------------------------------------------------------------------- */

/* A snapshot call never waits for a generation (it may run for minutes); a generation that
 * starts meanwhile waits for the snapshot call instead (model.h, window_lock). */
static bool claim(hr_model *model)
{
    return pthread_mutex_trylock(&model->window_lock) == 0;
}

static int disk_full(const char *directory, uint64_t needed)
{
    return hr_fail(HR_EIO, "the disk holding the cache directory %s is full: the snapshot (%llu bytes) was not "
                   "saved and nothing of it was left; free space there or set HEADROOM_CACHE_DIR to "
                   "another disk", directory, (unsigned long long)needed);
}

/* Appends the trailer to the engine's file and makes both durable before the rename. */
static int finish_file(int dirfd, const char *temp, const char *directory, struct trailer *t)
{
    int fd = openat(dirfd, temp, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return hr_fail(HR_EIO, "cannot reopen %s/%s to finish the snapshot: %s", directory, temp, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return hr_fail(HR_EIO, "%s/%s changed under headroom while it was being saved", directory, temp);
    }
    t->state_bytes = (uint64_t)st.st_size;
    t->checksum = trailer_checksum(t);
    const char *bytes = (const char *)t;
    size_t done = 0;
    int error = 0;
    while (done < sizeof *t) {
        ssize_t n = write(fd, bytes + done, sizeof *t - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { error = n < 0 ? errno : EIO; break; }
        done += (size_t)n;
    }
    /* fsync: a file system that allocates late (ext4, XFS) reports a full disk only here */
    if (!error && fsync(fd) != 0) error = errno;
    if (close(fd) != 0 && !error) error = errno;
    if (!error) return HR_OK;
    if (error == ENOSPC || error == EDQUOT) return disk_full(directory, t->state_bytes + sizeof *t);
    return hr_fail(HR_EIO, "could not finish the snapshot %s/%s: %s; nothing of it was left", directory, temp,
                   strerror(error));
}

static int save_window(hr_model *model, bool *saved)
{
    hr_context *ctx = model->ctx;
    const hr_engine_ops *engine = model->engine;
    if (!engine->state_save || !engine->state_size)
        return hr_fail(HR_ENOTSUP, "the %s engine cannot save its context window", engine->name);
    if (model->window_count == 0) return HR_OK;
    if (!model->identity.known) return hr_fail(HR_ENOTSUP, "no snapshot was saved: %s", model->identity.problem);

    char directory[PATH_MAX];
    int dirfd;
    int rc = open_kv(ctx, true, &dirfd, directory, sizeof directory);
    if (rc != HR_OK) return rc;

    /* Nothing new since the last save or restore: that snapshot stands; only its use counts. */
    if (model->window_saved && utimensat(dirfd, model->snapshot_name, NULL, AT_SYMLINK_NOFOLLOW) == 0) {
        close(dirfd);
        return HR_OK;
    }

    uint64_t needed = engine->state_size(model->engine_model) + sizeof(struct trailer);
    if (needed > ctx->cache_budget_bytes) {
        hr_log(HR_LOG_INFO, "no snapshot of %s saved: its %llu bytes exceed the cache's whole budget of %llu",
               model->name, (unsigned long long)needed, (unsigned long long)ctx->cache_budget_bytes);
        close(dirfd);
        return HR_OK;
    }
    /* Leave room for the user's other programs: 1% of the file system, at most 256 MiB. */
    struct statvfs fs;
    if (fstatvfs(dirfd, &fs) == 0) {
        uint64_t available = (uint64_t)fs.f_bavail * fs.f_frsize;
        uint64_t reserve = (uint64_t)fs.f_blocks * fs.f_frsize / 100;
        if (reserve > ((uint64_t)256 << 20)) reserve = (uint64_t)256 << 20;
        if (available < needed + reserve) {
            close(dirfd);
            return disk_full(directory, needed);
        }
    }

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char name[SNAPSHOT_NAME_LENGTH + 1], temp[SNAPSHOT_NAME_LENGTH + 6], temp_path[PATH_MAX];
    snprintf(name, sizeof name, "%016llx-%016llx-%08x.hrkv", (unsigned long long)model->identity.hash,
             (unsigned long long)now.tv_sec * 1000000000ull + (unsigned long long)now.tv_nsec,
             (unsigned)getpid());
    snprintf(temp, sizeof temp, ".%s.tmp", name);
    join_path(temp_path, sizeof temp_path, directory, temp);

    /* Made here first so the file is private to the user (the engine opens it with fopen). */
    int fd = openat(dirfd, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int error = errno;
        close(dirfd);
        return hr_fail(error == EACCES || error == EPERM || error == EROFS ? HR_EACCES : HR_EIO,
                       "cannot create a snapshot in %s: %s", directory, strerror(error));
    }
    close(fd);

    struct trailer t;
    memset(&t, 0, sizeof t);
    memcpy(t.magic, TRAILER_MAGIC, 8);
    memcpy(t.end, TRAILER_END, 8);
    t.version = TRAILER_VERSION;
    t.trailer_bytes = sizeof t;
    t.identity_hash = model->identity.hash;
    t.model_file_bytes = model->identity.file_bytes;
    t.model_mtime_ns = model->identity.mtime_ns;
    t.created_at = (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
    t.n_ctx = model->identity.n_ctx;
    t.tokens = model->window_count;
    snprintf(t.engine, sizeof t.engine, "%s", model->identity.engine);
    snprintf(t.cache_types, sizeof t.cache_types, "%s", model->identity.cache_types);
    snprintf(t.model_name, sizeof t.model_name, "%s", model->name);
    snprintf(t.model_path, sizeof t.model_path, "%s", model->identity.path);

    double started = hr_now_seconds();
    rc = engine->state_save(model->engine_model, temp_path, model->window_tokens, model->window_count);
    if (rc == HR_EIO && strstr(hr_last_error(), "is full")) rc = disk_full(directory, needed);
    if (rc == HR_OK) rc = finish_file(dirfd, temp, directory, &t);
    if (rc == HR_OK && renameat(dirfd, temp, dirfd, name) != 0)
        rc = hr_fail(HR_EIO, "could not name the snapshot %s/%s: %s", directory, name, strerror(errno));
    if (rc != HR_OK) {
        unlinkat(dirfd, temp, 0);
        close(dirfd);
        return rc;
    }
    fsync(dirfd);   /* the rename itself, durable; a failure here costs only the snapshot */
    hr_log(HR_LOG_INFO, "saved a snapshot of %s: %d tokens, %llu bytes in %.3f s, %s/%s", model->name,
           model->window_count, (unsigned long long)(t.state_bytes + sizeof t), hr_now_seconds() - started,
           directory, name);
    model->window_saved = true;
    snprintf(model->snapshot_name, sizeof model->snapshot_name, "%s", name);
    *saved = true;
    evict(ctx, dirfd, directory, name);
    close(dirfd);
    return HR_OK;
}

HR_API int hr_model_snapshot_save(hr_model *model, bool *saved)
{
    hr_clear_error();
    bool ignored;
    if (!saved) saved = &ignored;
    *saved = false;
    if (!model) return hr_fail(HR_EINVAL, "hr_model_snapshot_save: model is required");
    if (!claim(model))
        return hr_fail(HR_EBUSY, "a generation is running on %s; cancel it before saving its snapshot", model->name);
    int rc = save_window(model, saved);
    pthread_mutex_unlock(&model->window_lock);
    return rc;
}

static int restore_window(hr_model *model)
{
    hr_context *ctx = model->ctx;
    const hr_engine_ops *engine = model->engine;
    if (!engine->state_load)
        return hr_fail(HR_ENOTSUP, "the %s engine cannot restore a context window", engine->name);
    if (!model->identity.known) return hr_fail(HR_ENOTSUP, "no snapshot can be restored: %s", model->identity.problem);
    char directory[PATH_MAX];
    int dirfd;
    int rc = open_kv(ctx, false, &dirfd, directory, sizeof directory);
    if (rc == HR_ENOENT)
        return hr_fail(HR_ENOENT, "there is no snapshot of %s with a window of %d tokens (%s does not exist)",
                       model->name, model->identity.n_ctx, directory);
    if (rc != HR_OK) return rc;
    struct snapshot *list = NULL;
    size_t count = 0;
    rc = scan(dirfd, directory, &list, &count);
    if (rc != HR_OK) {
        close(dirfd);
        return rc;
    }
    const struct snapshot *newest = NULL;
    size_t others = 0;
    for (size_t i = 0; i < count; i++) {
        if (!same_identity(&list[i].trailer, &model->identity)) {
            if (strcmp(list[i].trailer.model_path, model->identity.path) == 0) others++;
            continue;
        }
        if (!newest || list[i].trailer.created_at > newest->trailer.created_at ||
            (list[i].trailer.created_at == newest->trailer.created_at && strcmp(list[i].name, newest->name) > 0))
            newest = &list[i];
    }
    if (!newest) {
        free(list);
        close(dirfd);
        if (others > 0)
            return hr_fail(HR_ENOENT, "there is no snapshot of %s with a window of %d tokens: %zu snapshot%s of this "
                           "file %s made for another window, cache type or version of the file, and cannot be used",
                           model->name, model->identity.n_ctx, others, others == 1 ? "" : "s",
                           others == 1 ? "was" : "were");
        return hr_fail(HR_ENOENT, "there is no snapshot of %s with a window of %d tokens in %s", model->name,
                       model->identity.n_ctx, directory);
    }
    rc = hr_model_window_reserve(model);
    if (rc == HR_OK) {
        char path[PATH_MAX];
        join_path(path, sizeof path, directory, newest->name);
        double started = hr_now_seconds();
        int32_t tokens = 0;
        model->window_count = 0;
        model->window_saved = false;
        rc = engine->state_load(model->engine_model, path, model->window_tokens, model->window_capacity, &tokens);
        if (rc == HR_OK && tokens != newest->trailer.tokens) {
            engine->reset(model->engine_model);
            rc = hr_fail(HR_EFORMAT, "snapshot %s holds %d tokens but its trailer says %d; it was not restored",
                         path, tokens, newest->trailer.tokens);
        }
        if (rc == HR_OK) {
            model->window_count = tokens;
            model->window_saved = true;
            snprintf(model->snapshot_name, sizeof model->snapshot_name, "%s", newest->name);
            utimensat(dirfd, newest->name, NULL, AT_SYMLINK_NOFOLLOW);   /* its last use, for eviction */
            hr_log(HR_LOG_INFO, "restored a snapshot of %s: %d tokens in %.3f s from %s", model->name, tokens,
                   hr_now_seconds() - started, path);
        }
    }
    free(list);
    close(dirfd);
    return rc;
}

HR_API int hr_model_snapshot_restore(hr_model *model)
{
    hr_clear_error();
    if (!model) return hr_fail(HR_EINVAL, "hr_model_snapshot_restore: model is required");
    if (!claim(model))
        return hr_fail(HR_EBUSY, "a generation is running on %s; a snapshot can be restored only into an idle model",
                       model->name);
    int rc = restore_window(model);
    pthread_mutex_unlock(&model->window_lock);
    return rc;
}

/* ---- list, status, clear, release ---------------------------------------------------------- */

HR_API int hr_cache_list(hr_context *ctx, hr_cache_entry **entries, size_t *count)
{
    hr_clear_error();
    if (entries) *entries = NULL;
    if (count) *count = 0;
    if (!ctx || !entries || !count) return hr_fail(HR_EINVAL, "hr_cache_list: ctx, entries and count are required");
    char directory[PATH_MAX];
    int dirfd;
    int rc = open_kv(ctx, false, &dirfd, directory, sizeof directory);
    if (rc == HR_ENOENT && ctx->cache_root) {
        hr_clear_error();
        return HR_OK;   /* no kv/ yet: an empty cache */
    }
    if (rc != HR_OK) return rc;
    struct snapshot *list = NULL;
    size_t n = 0;
    rc = scan(dirfd, directory, &list, &n);
    close(dirfd);
    if (rc != HR_OK || n == 0) return rc;
    qsort(list, n, sizeof *list, by_last_use_oldest_first);
    hr_cache_entry *out = calloc(n, sizeof *out);
    if (!out) {
        free(list);
        return hr_fail(HR_ENOMEM, "out of memory listing the cache");
    }
    for (size_t i = 0; i < n; i++) {
        const struct snapshot *s = &list[n - 1 - i];   /* most recently used first */
        join_path(out[i].path, sizeof out[i].path, directory, s->name);
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
    int rc = open_kv(ctx, false, &dirfd, directory, sizeof directory);
    if (snprintf(out->directory, sizeof out->directory, "%s", directory) < 0) out->directory[0] = '\0';
    if (rc == HR_ENOENT && ctx->cache_root) {
        hr_clear_error();
        return HR_OK;
    }
    if (rc != HR_OK) return rc;
    struct snapshot *list = NULL;
    size_t n = 0;
    rc = scan(dirfd, directory, &list, &n);
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
    int rc = open_kv(ctx, false, &dirfd, directory, sizeof directory);
    if (rc == HR_ENOENT && ctx->cache_root) {
        hr_clear_error();
        return HR_OK;
    }
    if (rc != HR_OK) return rc;
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
        struct snapshot snapshot;
        bool ours = S_ISREG(st.st_mode) &&
                    ((is_snapshot_name(name) && read_snapshot(dirfd, name, &snapshot)) || is_leftover(ctx, dirfd, name, &st));
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
        int code = error == EACCES || error == EPERM || error == EROFS ? HR_EACCES : HR_EIO;
        char path[PATH_MAX + 64], sentence[768];
        join_path(path, sizeof path, directory, name);
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

/* Resident bytes of a mapped file, by mincore; false where it cannot tell. */
static bool resident_bytes(void *map, size_t length, size_t page, uint64_t *out)
{
    size_t pages = (length + page - 1) / page;
#ifdef __APPLE__
    char *vector = malloc(pages);
#else
    unsigned char *vector = malloc(pages);
#endif
    if (!vector) return false;
    bool ok = mincore(map, length, vector) == 0;
    uint64_t resident = 0;
    for (size_t i = 0; ok && i < pages; i++)
        if (vector[i] & 1) resident += page;
    free(vector);
    *out = resident;
    return ok;
}

uint64_t hr_file_drop_page_cache(int fd)
{
#ifndef POSIX_FADV_DONTNEED
    (void)fd;
    return 0;
#else
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
#endif
}

HR_API int hr_cache_release_memory(hr_context *ctx, uint64_t *bytes_released)
{
    hr_clear_error();
    if (bytes_released) *bytes_released = 0;
    if (!ctx) return hr_fail(HR_EINVAL, "hr_cache_release_memory: ctx is required");
#ifndef POSIX_FADV_DONTNEED
    return hr_fail(HR_ENOTSUP, "this platform cannot drop a file's cached pages (no posix_fadvise)");
#else
    char directory[PATH_MAX];
    int dirfd;
    int rc = open_kv(ctx, false, &dirfd, directory, sizeof directory);
    if (rc == HR_ENOENT && ctx->cache_root) {
        hr_clear_error();
        return HR_OK;
    }
    if (rc != HR_OK) return rc;
    struct snapshot *list = NULL;
    size_t count = 0;
    rc = scan(dirfd, directory, &list, &count);
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
#endif
}
