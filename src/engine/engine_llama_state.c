/*
 * engine_llama_state.c: one sequence's state: cutting it after N tokens, and saving it to and
 * restoring it from llama.cpp's sequence state files (the KV snapshots of runtime/snapshot.c),
 * with full disks and foreign files reported in a sentence.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <llama.h>

#include "core/error.h"
#include "engine/engine_llama_internal.h"

/* ---- the window's state: truncation, save, load ------------------------------------------- */

int hr_llama_truncate(hr_engine_model *model, int32_t seq, int32_t count)
{
    if (seq < 0 || seq >= model->n_seq_max)
        return hr_fail(HR_EINVAL, "there is no sequence %d in a window of %d", seq, model->n_seq_max);
    int32_t held = hr_llama_seq_tokens(model, seq);
    if (count < 0 || count > held)
        return hr_fail(HR_EINVAL, "cannot keep %d tokens of a sequence that holds %d", count, held);
    /* Removes every position from `count` on, including any that an aborted decode left behind
     * (llama.cpp keeps the ubatches it finished before the abort). */
    if (!llama_memory_seq_rm(llama_get_memory(model->ctx), seq, count, -1))
        return hr_fail(HR_ENOTSUP, "this model's context window cannot be cut after %d tokens "
                       "(a recurrent model); it is decoded again from the start", count);
    return HR_OK;
}

uint64_t hr_llama_state_size(hr_engine_model *model, int32_t seq)
{
    /* llama.cpp's file: magic, version, token count, the tokens, then the sequence's state */
    return 3 * sizeof(uint32_t) + (uint64_t)hr_llama_seq_tokens(model, seq) * sizeof(hr_token) +
           llama_state_seq_get_size(model->ctx, seq);
}

/* Whether a failed write ran out of room: the error text llama.cpp passed on (it carries
 * strerror), or, when stdio's final flush failed silently, a file system with no room left. */
static bool out_of_room(const char *path, const char *engine_error)
{
    if (strstr(engine_error, strerror(ENOSPC)) || strstr(engine_error, strerror(EDQUOT))) return true;
    char directory[PATH_MAX];
    snprintf(directory, sizeof directory, "%s", path);
    char *slash = strrchr(directory, '/');
    if (slash) *(slash == directory ? slash + 1 : slash) = '\0';
    else snprintf(directory, sizeof directory, ".");
    struct statvfs fs;
    return statvfs(directory, &fs) == 0 && (uint64_t)fs.f_bavail * fs.f_frsize < 64 * 1024;
}

int hr_llama_state_save(hr_engine_model *model, int32_t seq, const char *path, const hr_token *tokens,
                        int32_t count)
{
    if (seq < 0 || seq >= model->n_seq_max)
        return hr_fail(HR_EINVAL, "there is no sequence %d in a window of %d", seq, model->n_seq_max);
    int32_t held = hr_llama_seq_tokens(model, seq);
    if (count < 0 || count > held)
        return hr_fail(HR_EINVAL, "cannot save %d tokens of a sequence that holds %d", count, held);
    hr_llama_clear_last_error();
    size_t written = llama_state_seq_save_file(model->ctx, path, seq, tokens, (size_t)count);
    hr_llama_flush_log();
    /* llama.cpp closes the file without checking fclose, so a final flush that failed is seen
     * only in the size: a complete file is exactly as long as llama.cpp says it wrote. */
    struct stat st;
    if (written > 0 && stat(path, &st) == 0 && (uint64_t)st.st_size == (uint64_t)written) return HR_OK;
    bool full = out_of_room(path, hr_llama_last_error());
    unlink(path);
    if (full)
        return hr_fail(HR_EIO, "the disk holding %s is full: the snapshot (%llu bytes) was not saved and "
                       "nothing of it was left; free space there or choose another cache directory", path,
                       (unsigned long long)hr_llama_state_size(model, seq));
    return hr_fail(HR_EIO, "could not write the context window's state to %s%s%s; nothing of it was left", path,
                   hr_llama_last_error()[0] ? ": " : "", hr_llama_last_error());
}

/* Forgets sequence `seq` (a whole sequence can always be removed). */
static void forget(hr_engine_model *model, int32_t seq)
{
    llama_memory_seq_rm(llama_get_memory(model->ctx), seq, -1, -1);
}

int hr_llama_state_load(hr_engine_model *model, int32_t seq, const char *path, hr_token *tokens,
                        int32_t capacity, int32_t *count)
{
    *count = 0;
    if (seq < 0 || seq >= model->n_seq_max)
        return hr_fail(HR_EINVAL, "there is no sequence %d in a window of %d", seq, model->n_seq_max);
    forget(model, seq);
    if (access(path, R_OK) != 0) {
        if (errno == ENOENT) return hr_fail(HR_ENOENT, "snapshot not found: %s", path);
        return hr_fail(hr_code_for_errno(errno), "cannot read snapshot %s: %s", path, strerror(errno));
    }
    hr_llama_clear_last_error();
    size_t n_tokens = 0;
    size_t read = llama_state_seq_load_file(model->ctx, path, seq, tokens, capacity > 0 ? (size_t)capacity : 0,
                                            &n_tokens);
    hr_llama_flush_log();
    if (read == 0 || n_tokens > (size_t)capacity) {
        forget(model, seq);
        return hr_fail(HR_EFORMAT, "snapshot %s cannot be restored into this context window%s%s", path,
                       hr_llama_last_error()[0] ? ": " : "", hr_llama_last_error());
    }
    /* The positions restored must be exactly the tokens listed, or decoding would go on from
     * the wrong place. */
    llama_pos last = llama_memory_seq_pos_max(llama_get_memory(model->ctx), seq);
    if ((size_t)(last + 1) != n_tokens) {
        forget(model, seq);
        return hr_fail(HR_EFORMAT, "snapshot %s lists %zu tokens but holds state for %d; it was not restored",
                       path, n_tokens, (int)(last + 1));
    }
    *count = (int32_t)n_tokens;
    return HR_OK;
}

int hr_llama_state_file_tokens(const char *path, hr_token *tokens, int32_t capacity, int32_t *count)
{
    /* llama.cpp's sequence file begins: magic, version, token count, the tokens (then the state) */
    *count = 0;
    FILE *file = fopen(path, "rb");
    if (!file) return hr_fail(hr_code_for_errno(errno), "cannot read snapshot %s: %s", path, strerror(errno));
    uint32_t head[3];
    bool ok = fread(head, sizeof head, 1, file) == 1 && head[0] == LLAMA_STATE_SEQ_MAGIC &&
              head[1] == LLAMA_STATE_SEQ_VERSION && head[2] <= (uint32_t)INT32_MAX;
    size_t wanted = ok ? (head[2] < (uint32_t)capacity ? head[2] : (size_t)capacity) : 0;
    if (ok && wanted > 0) ok = fread(tokens, sizeof *tokens, wanted, file) == wanted;
    fclose(file);
    if (!ok) return hr_fail(HR_EFORMAT, "%s is not a sequence state file this engine reads", path);
    *count = (int32_t)wanted;
    return HR_OK;
}

bool hr_llama_is_state_file(const unsigned char *head, size_t length)
{
    uint32_t magic;
    if (length < sizeof magic) return false;
    memcpy(&magic, head, sizeof magic);
    return magic == LLAMA_STATE_SEQ_MAGIC;
}
