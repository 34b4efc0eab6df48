/*
 * snapshot_file.c: one KV snapshot file: its name, its trailer (written after the engine's state,
 * checked when read), and the identity of the model file it belongs to. No directory walks here
 * (cache.c), no engine calls (snapshot.c).
 */
#include "runtime/snapshot_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "platform/platform.h"

#define TRAILER_MAGIC "HRKVSNAP"
#define TRAILER_END "HRKVEND"
enum { TRAILER_VERSION = 1 };

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

static uint64_t trailer_checksum(const struct hr_snapshot_trailer *t)
{
    return fnv1a(FNV_OFFSET, t, offsetof(struct hr_snapshot_trailer, checksum));
}

static bool terminated(const char *field, size_t size)
{
    return memchr(field, '\0', size) != NULL;
}

static bool is_lower_hex(const char *text, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f'))) return false;
    return true;
}

bool hr_snapshot_is_name(const char *name)
{
    return strlen(name) == HR_SNAPSHOT_NAME_LENGTH && is_lower_hex(name, 16) && name[16] == '-' &&
           is_lower_hex(name + 17, 16) && name[33] == '-' && is_lower_hex(name + 34, 8) &&
           strcmp(name + 42, ".hrkv") == 0;
}

bool hr_snapshot_is_leftover_name(const char *name)
{
    size_t length = strlen(name);
    if (length != HR_SNAPSHOT_NAME_LENGTH + 5 || name[0] != '.' || strcmp(name + length - 4, ".tmp") != 0) return false;
    char inner[HR_SNAPSHOT_NAME_LENGTH + 1];
    memcpy(inner, name + 1, HR_SNAPSHOT_NAME_LENGTH);
    inner[HR_SNAPSHOT_NAME_LENGTH] = '\0';
    return hr_snapshot_is_name(inner);
}

void hr_snapshot_name(char *out, uint64_t identity_hash, uint64_t created_ns, unsigned pid)
{
    snprintf(out, HR_SNAPSHOT_NAME_LENGTH + 1, "%016llx-%016llx-%08x.hrkv", (unsigned long long)identity_hash,
             (unsigned long long)created_ns, pid);
}

bool hr_snapshot_read(int dirfd, const char *name, struct hr_snapshot *out)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    struct hr_snapshot_trailer *t = &out->trailer;
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
    out->last_used_at = (double)hr_stat_mtime_ns(&st) * 1e-9;
    return true;
}

void hr_snapshot_trailer_init(struct hr_snapshot_trailer *t, const hr_model *model, int32_t tokens,
                              double created_at)
{
    memset(t, 0, sizeof *t);
    memcpy(t->magic, TRAILER_MAGIC, 8);
    memcpy(t->end, TRAILER_END, 8);
    t->version = TRAILER_VERSION;
    t->trailer_bytes = sizeof *t;
    t->identity_hash = model->identity.hash;
    t->model_file_bytes = model->identity.file_bytes;
    t->model_mtime_ns = model->identity.mtime_ns;
    t->created_at = created_at;
    t->n_ctx = model->identity.n_ctx;
    t->tokens = tokens;
    snprintf(t->engine, sizeof t->engine, "%s", model->identity.engine);
    snprintf(t->cache_types, sizeof t->cache_types, "%s", model->identity.cache_types);
    snprintf(t->model_name, sizeof t->model_name, "%s", model->name);
    snprintf(t->model_path, sizeof t->model_path, "%s", model->identity.path);
}

int hr_snapshot_disk_full(const char *directory, uint64_t needed)
{
    return hr_fail(HR_EIO, "the disk holding the cache directory %s is full: the snapshot (%llu bytes) was not "
                   "saved and nothing of it was left; free space there or set HEADROOM_CACHE_DIR to "
                   "another disk", directory, (unsigned long long)needed);
}

int hr_snapshot_finish(int dirfd, const char *temp, const char *directory, struct hr_snapshot_trailer *t)
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
    if (error == ENOSPC || error == EDQUOT) return hr_snapshot_disk_full(directory, t->state_bytes + sizeof *t);
    return hr_fail(HR_EIO, "could not finish the snapshot %s/%s: %s; nothing of it was left", directory, temp,
                   strerror(error));
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
    id->mtime_ns = hr_stat_mtime_ns(&st);
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


bool hr_snapshot_matches(const struct hr_snapshot_trailer *t, const struct hr_model_identity *id)
{
    return t->identity_hash == id->hash && t->model_file_bytes == id->file_bytes &&
           t->model_mtime_ns == id->mtime_ns && t->n_ctx == id->n_ctx && strcmp(t->model_path, id->path) == 0 &&
           strcmp(t->cache_types, id->cache_types) == 0 && strcmp(t->engine, id->engine) == 0;
}
