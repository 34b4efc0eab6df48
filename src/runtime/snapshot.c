/*
 * snapshot.c: hr_model_snapshot_save and _restore: a loaded model's context window written to
 * the cache directory through the engine's state files, and read back into the same model, so a
 * conversation survives an unload. The file's format is snapshot_file.c's; the directory, its
 * budget and eviction cache.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "runtime/cache.h"
#include "runtime/model.h"
#include "runtime/snapshot_file.h"

/* A snapshot call never waits for a generation (it may run for minutes); a generation that
 * starts meanwhile waits for the snapshot call instead (model.h, window_lock). */
static bool claim(hr_model *model)
{
    return pthread_mutex_trylock(&model->window_lock) == 0;
}

/* Saves slot `seq`'s sequence (one conversation); the caller holds window_lock. */
int hr_model_snapshot_save_slot(hr_model *model, int32_t seq, bool *saved)
{
    hr_context *ctx = model->ctx;
    const hr_engine_ops *engine = model->engine;
    *saved = false;
    if (!engine->state_save || !engine->state_size)
        return hr_fail(HR_ENOTSUP, "the %s engine cannot save its context window", engine->name);
    struct hr_slot *window = &model->slots[seq];
    if (window->count == 0) return HR_OK;
    if (!model->identity.known) return hr_fail(HR_ENOTSUP, "no snapshot was saved: %s", model->identity.problem);

    char directory[PATH_MAX];
    int dirfd;
    int rc = hr_cache_open_kv(ctx, HR_KV_CREATE | HR_KV_PRIVATE, &dirfd, directory, sizeof directory);
    if (rc != HR_OK) return rc;

    /* Nothing new since the last save or restore: that snapshot stands; only its use counts. */
    if (window->saved && utimensat(dirfd, window->snapshot_name, NULL, AT_SYMLINK_NOFOLLOW) == 0) {
        close(dirfd);
        return HR_OK;
    }

    uint64_t needed = engine->state_size(model->engine_model, seq) + sizeof(struct hr_snapshot_trailer);
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
            return hr_snapshot_disk_full(directory, needed);
        }
    }

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char name[HR_SNAPSHOT_NAME_LENGTH + 1], temp[HR_SNAPSHOT_NAME_LENGTH + 6], temp_path[PATH_MAX];
    hr_snapshot_name(name, model->identity.hash,
                     (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec, (unsigned)getpid());
    snprintf(temp, sizeof temp, ".%s.tmp", name);
    hr_cache_join_path(temp_path, sizeof temp_path, directory, temp);

    /* Made here first so the file is private to the user (the engine opens it with fopen). */
    int fd = openat(dirfd, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int error = errno;
        close(dirfd);
        return hr_fail(hr_code_for_errno(error) == HR_EACCES ? HR_EACCES : HR_EIO,
                       "cannot create a snapshot in %s: %s", directory, strerror(error));
    }
    close(fd);

    struct hr_snapshot_trailer t;
    hr_snapshot_trailer_init(&t, model, window->count, (double)now.tv_sec + (double)now.tv_nsec * 1e-9);

    double started = hr_now_seconds();
    rc = engine->state_save(model->engine_model, seq, temp_path, window->tokens, window->count);
    if (rc == HR_EIO && strstr(hr_last_error(), "is full")) rc = hr_snapshot_disk_full(directory, needed);
    if (rc == HR_OK) rc = hr_snapshot_finish(dirfd, temp, directory, &t);
    if (rc == HR_OK && renameat(dirfd, temp, dirfd, name) != 0)
        rc = hr_fail(HR_EIO, "could not name the snapshot %s/%s: %s", directory, name, strerror(errno));
    if (rc != HR_OK) {
        unlinkat(dirfd, temp, 0);
        close(dirfd);
        return rc;
    }
    fsync(dirfd);   /* the rename itself, durable; a failure here costs only the snapshot */
    hr_log(HR_LOG_INFO, "saved a snapshot of %s: %d tokens, %llu bytes in %.3f s, %s/%s", model->name,
           window->count, (unsigned long long)(t.state_bytes + sizeof t), hr_now_seconds() - started,
           directory, name);
    window->saved = true;
    snprintf(window->snapshot_name, sizeof window->snapshot_name, "%s", name);
    *saved = true;
    hr_cache_evict(ctx, dirfd, directory, name);
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
    /* every conversation the window holds, one file each: a later prompt restores the one that
     * shares most of it (hr_model_snapshot_restore_best) */
    int rc = HR_OK;
    for (int32_t seq = 0; seq < model->n_slots && rc == HR_OK; seq++) {
        bool wrote = false;
        rc = hr_model_snapshot_save_slot(model, seq, &wrote);
        *saved = *saved || wrote;
    }
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
    int rc = hr_cache_open_kv(ctx, HR_KV_PRIVATE, &dirfd, directory, sizeof directory);
    if (rc == HR_ENOENT)
        return hr_fail(HR_ENOENT, "there is no snapshot of %s with a window of %d tokens (%s does not exist)",
                       model->name, model->identity.n_ctx, directory);
    if (rc != HR_OK) return rc;
    struct hr_snapshot *list = NULL;
    size_t count = 0;
    rc = hr_cache_scan(dirfd, directory, &list, &count);
    if (rc != HR_OK) {
        close(dirfd);
        return rc;
    }
    const struct hr_snapshot *newest = NULL;
    size_t others = 0;
    for (size_t i = 0; i < count; i++) {
        if (!hr_snapshot_matches(&list[i].trailer, &model->identity)) {
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
        hr_cache_join_path(path, sizeof path, directory, newest->name);
        double started = hr_now_seconds();
        int32_t tokens = 0;
        /* into the slot left longest ago, which becomes the newest */
        struct hr_slot *window = &model->slots[0];
        for (int32_t i = 1; i < model->n_slots; i++)
            if (model->slots[i].last_used < window->last_used) window = &model->slots[i];
        int32_t seq = (int32_t)(window - model->slots);
        window->count = 0;
        window->saved = false;
        window->last_used = ++model->slot_clock;
        rc = engine->state_load(model->engine_model, seq, path, window->tokens, model->window_capacity, &tokens);
        if (rc == HR_OK && tokens != newest->trailer.tokens) {
            if (!(engine->truncate && engine->truncate(model->engine_model, seq, 0) == HR_OK)) {
                engine->reset(model->engine_model);
                for (int32_t i = 0; i < model->n_slots; i++) model->slots[i].count = 0;
            }
            rc = hr_fail(HR_EFORMAT, "snapshot %s holds %d tokens but its trailer says %d; it was not restored",
                         path, tokens, newest->trailer.tokens);
        }
        if (rc == HR_OK) {
            window->count = tokens;
            window->saved = true;
            snprintf(window->snapshot_name, sizeof window->snapshot_name, "%s", newest->name);
            utimensat(dirfd, newest->name, NULL, AT_SYMLINK_NOFOLLOW);   /* its last use, for eviction */
            hr_log(HR_LOG_INFO, "restored a snapshot of %s: %d tokens in %.3f s from %s", model->name, tokens,
                   hr_now_seconds() - started, path);
        }
    }
    free(list);
    close(dirfd);
    return rc;
}

static int32_t common_prefix(const hr_token *a, int32_t a_count, const hr_token *b, int32_t b_count)
{
    int32_t n = 0;
    while (n < a_count && n < b_count && a[n] == b[n]) n++;
    return n;
}

/* Loads snapshot `name` into slot `seq` (its tokens into the slot's list); on failure the slot
 * is empty. */
static int load_into(hr_model *model, int32_t seq, int dirfd, const char *directory, const struct hr_snapshot *snap)
{
    char path[PATH_MAX];
    hr_cache_join_path(path, sizeof path, directory, snap->name);
    struct hr_slot *slot = &model->slots[seq];
    int32_t tokens = 0;
    slot->count = 0;
    slot->saved = false;
    double started = hr_now_seconds();
    int rc = model->engine->state_load(model->engine_model, seq, path, slot->tokens, model->window_capacity, &tokens);
    if (rc == HR_OK && tokens != snap->trailer.tokens) {
        if (model->engine->truncate) model->engine->truncate(model->engine_model, seq, 0);
        return hr_fail(HR_EFORMAT, "snapshot %s holds %d tokens but its trailer says %d; it was not restored", path,
                       tokens, snap->trailer.tokens);
    }
    if (rc != HR_OK) return rc;
    slot->count = tokens;
    slot->saved = true;
    snprintf(slot->snapshot_name, sizeof slot->snapshot_name, "%s", snap->name);
    utimensat(dirfd, snap->name, NULL, AT_SYMLINK_NOFOLLOW);   /* its last use, for eviction */
    hr_log(HR_LOG_INFO, "restored a snapshot of %s into slot %d: %d tokens in %.3f s from %s", model->name, seq, tokens,
           hr_now_seconds() - started, path);
    return HR_OK;
}

int hr_model_snapshot_restore_best(hr_model *model, int32_t seq, const hr_token *prompt, int32_t n_prompt,
                                   int32_t better_than, int32_t *shared)
{
    *shared = 0;
    const hr_engine_ops *engine = model->engine;
    if (!engine->state_load || !engine->state_file_tokens || !model->identity.known || n_prompt <= 0) return HR_OK;
    char directory[PATH_MAX];
    int dirfd;
    if (hr_cache_open_kv(model->ctx, HR_KV_PRIVATE, &dirfd, directory, sizeof directory) != HR_OK) return HR_OK;
    struct hr_snapshot *list = NULL;
    size_t count = 0;
    hr_token *head = malloc((size_t)n_prompt * sizeof *head);
    int rc = head ? hr_cache_scan(dirfd, directory, &list, &count) : HR_ENOMEM;
    const struct hr_snapshot *best = NULL;
    int32_t best_shared = better_than;
    for (size_t i = 0; rc == HR_OK && i < count; i++) {
        if (!hr_snapshot_matches(&list[i].trailer, &model->identity)) continue;
        char path[PATH_MAX];
        hr_cache_join_path(path, sizeof path, directory, list[i].name);
        int32_t listed = 0;
        if (engine->state_file_tokens(path, head, n_prompt, &listed) != HR_OK) continue;   /* gone, or foreign */
        int32_t n = common_prefix(head, listed, prompt, n_prompt);
        if (n > best_shared) {
            best = &list[i];
            best_shared = n;
        }
    }
    if (best) {
        rc = load_into(model, seq, dirfd, directory, best);
        if (rc == HR_OK) *shared = common_prefix(model->slots[seq].tokens, model->slots[seq].count, prompt, n_prompt);
    }
    free(head);
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
