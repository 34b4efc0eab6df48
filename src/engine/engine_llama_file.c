/*
 * engine_llama_file.c: a model file checked before llama.cpp sees it: existence, permission, the
 * GGUF magic, a header ggml's own reader can parse, and a length that holds its tensor table.
 * llama.cpp reports each of these as a bare failure (or aborts); here each gets its sentence.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gguf.h>

#include "core/error.h"
#include "engine/engine_llama_internal.h"

/* A readable sample of a file's first bytes for an error message: text as text, else hex. */
static void describe_magic(const unsigned char *bytes, size_t count, char *out, size_t size)
{
    int printable = count > 0;
    for (size_t i = 0; i < count; i++)
        if (bytes[i] < 0x20 || bytes[i] > 0x7e) printable = 0;
    if (count == 0) snprintf(out, size, "nothing: the file is empty");
    else if (printable) snprintf(out, size, "'%.*s'", (int)count, (const char *)bytes);
    else {
        size_t used = 0;
        used += (size_t)snprintf(out, size, "bytes");
        for (size_t i = 0; i < count && used < size; i++)
            used += (size_t)snprintf(out + used, size - used, " %02x", bytes[i]);
    }
}

/* Entries of a GGUF array key; 0 when the key is absent or not an array. */
static uint64_t array_length(const struct gguf_context *gguf, const char *key)
{
    int64_t id = gguf_find_key(gguf, key);
    if (id < 0 || gguf_get_kv_type(gguf, id) != GGUF_TYPE_ARRAY) return 0;
    return (uint64_t)gguf_get_arr_n(gguf, id);
}

/* The engine would report a bad file as a bare NULL or abort, so headroom checks what it can
 * first: existence, permission, the GGUF magic, a parseable header, and that the file is as
 * long as its tensor table says. */
int hr_llama_check_model_file(const char *path, hr_llama_file_facts *facts)
{
    memset(facts, 0, sizeof *facts);
    uint64_t *file_bytes = &facts->file_bytes;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return hr_fail(HR_ENOENT, "model file not found: %s", path);
        return hr_fail(HR_EIO, "cannot read model file %s: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode))
        return hr_fail(HR_EFORMAT, "%s is a directory, not a GGUF model file", path);
    if (!S_ISREG(st.st_mode))
        return hr_fail(HR_EFORMAT, "%s is not a regular file; give the path of a .gguf model file", path);
    *file_bytes = (uint64_t)st.st_size;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == EACCES || errno == EPERM)
            return hr_fail(HR_EACCES, "cannot read model file %s: permission denied", path);
        return hr_fail(HR_EIO, "cannot open model file %s: %s", path, strerror(errno));
    }
    unsigned char magic[4];
    ssize_t got = read(fd, magic, sizeof magic);
    int read_errno = errno;
    close(fd);
    if (got < 0) return hr_fail(HR_EIO, "cannot read model file %s: %s", path, strerror(read_errno));
    if (got < 4 || memcmp(magic, "GGUF", 4) != 0) {
        char seen[64];
        describe_magic(magic, (size_t)got, seen, sizeof seen);
        return hr_fail(HR_EFORMAT, "%s is not a GGUF model file: it starts with %s, a GGUF file starts with 'GGUF'",
                       path, seen);
    }

    hr_llama_clear_last_error();
    struct gguf_init_params header_only = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *gguf = gguf_init_from_file(path, header_only);
    if (!gguf) {
        const char *why = hr_llama_last_error();
        return hr_fail(HR_EFORMAT, "model file %s is corrupt: its GGUF header cannot be read%s%s%s", path,
                       why[0] ? " (" : "", why, why[0] ? ")" : "");
    }
    uint64_t needed = gguf_get_data_offset(gguf);
    for (int64_t i = 0; i < gguf_get_n_tensors(gguf); i++) {
        uint64_t end = gguf_get_data_offset(gguf) + gguf_get_tensor_offset(gguf, i) + gguf_get_tensor_size(gguf, i);
        if (end > needed) needed = end;
    }
    facts->n_tokens = array_length(gguf, "tokenizer.ggml.tokens");
    facts->n_merges = array_length(gguf, "tokenizer.ggml.merges");
    gguf_free(gguf);
    if (*file_bytes < needed)
        return hr_fail(HR_EFORMAT,
                       "model file %s is truncated: it has %llu bytes but its tensors need %llu; "
                       "the download or copy was probably interrupted, so fetch it again",
                       path, (unsigned long long)*file_bytes, (unsigned long long)needed);
    return HR_OK;
}

