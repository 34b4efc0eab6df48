/*
 * fuzz_snapshot.c: a KV snapshot file in the cache directory may be truncated, corrupt or put
 * there by someone else: its trailer reader (runtime/snapshot_file.c) on any bytes as a file
 * with a snapshot's name. Input that is at least a trailer long has a valid checksum computed
 * over it half the time, and its magic, version and lengths set right a quarter of the time, so
 * the checks after them are reached too. Checked: no crash,
 * and what it accepts says it is as long as the file.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/snapshot_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char directory[64];

static uint64_t fnv1a(const void *bytes, size_t length)
{
    const unsigned char *p = bytes;
    uint64_t hash = 14695981039346656037ull;
    for (size_t i = 0; i < length; i++) hash = (hash ^ p[i]) * 1099511628211ull;
    return hash;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!directory[0]) {
        snprintf(directory, sizeof directory, "/tmp/headroom-fuzz-kv-%d", (int)getpid());
        mkdir(directory, 0700);
    }
    int dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) return 0;
    char name[HR_SNAPSHOT_NAME_LENGTH + 1];
    hr_snapshot_name(name, 0x0123456789abcdefull, 42, 7);
    uint8_t *bytes = malloc(size ? size : 1);
    if (!bytes) return 0;
    memcpy(bytes, data, size);
    struct hr_snapshot_trailer t;
    if (size >= sizeof t && (data[0] & 1)) {   /* a correct checksum, the rest as the input says */
        memcpy(&t, bytes + size - sizeof t, sizeof t);
        if (data[0] & 2) {   /* and the frame right: the checks on its fields are reached */
            memcpy(t.magic, "HRKVSNAP", 8);
            memcpy(t.end, "HRKVEND", 8);
            t.version = 1;
            t.trailer_bytes = sizeof t;
            t.state_bytes = size - sizeof t;
        }
        t.checksum = fnv1a(&t, offsetof(struct hr_snapshot_trailer, checksum));
        memcpy(bytes + size - sizeof t, &t, sizeof t);
    }
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        size_t written = 0;
        while (written < size) {
            ssize_t n = write(fd, bytes + written, size - written);
            if (n <= 0) break;
            written += (size_t)n;
        }
        close(fd);
        struct hr_snapshot found;
        if (hr_snapshot_read(dirfd, name, &found)) {
            if (found.trailer.state_bytes + sizeof found.trailer != (uint64_t)size) abort();
            if (found.bytes != (uint64_t)size) abort();
        }
        unlinkat(dirfd, name, 0);
    }
    free(bytes);
    close(dirfd);
    return 0;
}
