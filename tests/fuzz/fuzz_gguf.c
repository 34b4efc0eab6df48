/*
 * fuzz_gguf.c: a model file is outside input (downloaded, shared, truncated): headroom's checks
 * of it (engine_llama_file.c: magic, header, tensor table, length) and the formula estimate over
 * its tensor table, through the engine's estimate op, on any bytes written to a file (made 16 MiB
 * long, sparse, when the input's last byte is odd). Checked:
 * no crash, and an answer that is HR_OK with an estimate or a refusal with a sentence.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) snprintf(path, sizeof path, "/tmp/headroom-fuzz-gguf-%d.gguf", (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return 0;
    size_t written = 0;
    while (written < size) {
        ssize_t n = write(fd, data + written, size - written);
        if (n <= 0) break;
        written += (size_t)n;
    }
    /* Half the time the file is made long (sparse: nothing written) after the bytes given, so
     * that a header with a tensor table passes the length check and the formula estimate over
     * the table runs too; a seed or a mutation need not carry megabytes of weights for that.
     * 16 MiB, not more: ggml's header reader takes a string as long as the file allows, and a
     * 1 GiB file of zeros let a mutated length make it allocate 1 GiB (that is a real file's
     * right, not a bug; a short file claiming a long string is refused at 44 MiB RSS). */
    if (size > 0 && (data[size - 1] & 1)) {
        if (ftruncate(fd, (off_t)16 << 20) != 0) { /* stays as long as the input: checked short */ }
    }
    close(fd);
    hr_engine_estimate_params params = { .load = { .n_ctx = 256, .n_batch = 0, .n_threads = 1, .n_gpu_layers = 0 },
                                         .formula_only = true };
    hr_engine_estimate estimate;
    hr_clear_error();
    int rc = hr_engine_llama()->estimate(path, &params, &estimate);
    if (rc != HR_OK && !hr_last_error()[0]) abort();   /* a refusal always says why */
    unlink(path);
    return 0;
}
