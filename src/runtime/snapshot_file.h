/*
 * snapshot_file.h: the KV snapshot file's format. The engine's state comes first, headroom's
 * trailer last; a file's name carries its model's identity hash. This room knows one file at a
 * time; the directory it lives in (cache.c) and the save and restore calls (snapshot.c) use it.
 */
#ifndef HR_RUNTIME_SNAPSHOT_FILE_H
#define HR_RUNTIME_SNAPSHOT_FILE_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/model.h"

/* The engine writes its state from the first byte and reads it back from there (llama.cpp's
 * file API takes a path, not an offset), so headroom's description of the file sits at its end:
 * a fixed 1024-byte trailer with a magic at both ends and a checksum. A file is headroom's when
 * its name follows the pattern below and this trailer is intact and says how long the file is. */
enum { HR_SNAPSHOT_NAME_LENGTH = 47 };   /* "<identity 16 hex>-<created ns 16 hex>-<pid 8 hex>.hrkv" */

struct hr_snapshot_trailer {
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
_Static_assert(sizeof(struct hr_snapshot_trailer) == 1024, "the snapshot trailer is 1024 bytes, with no padding");

/* A snapshot found in kv/, with what the directory says about it. */
struct hr_snapshot {
    char name[HR_SNAPSHOT_NAME_LENGTH + 1];
    struct hr_snapshot_trailer trailer;
    uint64_t bytes;
    double last_used_at;          /* the file's modification time: set at save, touched at restore */
};

/* "<identity>-<created ns>-<pid>.hrkv", in `out` (HR_SNAPSHOT_NAME_LENGTH + 1 bytes). */
void hr_snapshot_name(char *out, uint64_t identity_hash, uint64_t created_ns, unsigned pid);

/* Whether `name` is a snapshot's name, or ".<snapshot name>.tmp", a save in progress or the
 * leftover of one that was interrupted. */
bool hr_snapshot_is_name(const char *name);
bool hr_snapshot_is_leftover_name(const char *name);

/* Reads and checks the trailer of <dirfd>/<name> without following a link; false when the file
 * is not an intact snapshot. */
bool hr_snapshot_read(int dirfd, const char *name, struct hr_snapshot *out);

/* A trailer describing a sequence of `tokens` tokens in `model`'s window, created at wall time
 * `created_at`. */
void hr_snapshot_trailer_init(struct hr_snapshot_trailer *t, const hr_model *model, int32_t tokens,
                              double created_at);

/* Appends the trailer to the engine's file <dirfd>/<temp> and makes it durable (fsync), before
 * the caller renames it. HR_EIO with the full-disk sentence when the disk is full. */
int hr_snapshot_finish(int dirfd, const char *temp, const char *directory, struct hr_snapshot_trailer *t);

/* Whether a snapshot was made by this model file, window size, cache types and engine. */
bool hr_snapshot_matches(const struct hr_snapshot_trailer *t, const struct hr_model_identity *id);

/* The full-disk failure: HR_EIO, and a sentence that says nothing was left and what to do. */
int hr_snapshot_disk_full(const char *directory, uint64_t needed);

#endif
