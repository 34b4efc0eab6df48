/*
 * fuzz_config.c: headroomd's config file reader (tools/headroomd/config.c) on any text. Besides
 * not crashing: a refused file says why on stderr, naming the file; an accepted one says
 * nothing and leaves every option within its documented range; reading is deterministic; and a
 * file whose every line is made a comment sets nothing at all (a long or NUL-split line once let
 * the tail of a comment be read as an option).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads `text` as a config file, with stderr caught in *log (malloc'd). */
static bool read_text(const char *text, size_t length, server_config *c, char **log, size_t *log_length)
{
    config_defaults(c);
    FILE *in = fmemopen((void *)text, length, "r");
    FILE *caught = open_memstream(log, log_length);
    if (!in || !caught) abort();
    FILE *saved = stderr;
    stderr = caught;   /* glibc's stderr is a variable: the sentences land in *log */
    bool ok = config_read_stream(c, in, "fuzz.conf");
    stderr = saved;
    fclose(caught);
    fclose(in);
    return ok;
}

static bool terminated(const char *text, size_t capacity) { return memchr(text, '\0', capacity) != NULL; }

static void check_ranges(const server_config *c)
{
    if (c->port < 0 || c->port > 65535) abort();
    if (!terminated(c->host, sizeof c->host) || strncmp(c->host, "https://", 8) == 0) abort();
    if (!terminated(c->api_key, sizeof c->api_key) || !terminated(c->models_dir, sizeof c->models_dir)) abort();
    if (!terminated(c->fallback_url, sizeof c->fallback_url) || !terminated(c->fallback_model, sizeof c->fallback_model))
        abort();
    if (c->fallback_url[0] && strncmp(c->fallback_url, "http://", 7) != 0 && strncmp(c->fallback_url, "https://", 8) != 0)
        abort();
    if (c->n_model_paths < 0 || c->n_model_paths > MAX_MODELS) abort();
    for (int i = 0; i < c->n_model_paths; i++)
        if (!terminated(c->model_paths[i], sizeof c->model_paths[i])) abort();
    if (c->n_cors_origins < 0 || c->n_cors_origins > MAX_LIST_ENTRIES) abort();
    if (c->n_allowed_hosts < 0 || c->n_allowed_hosts > MAX_LIST_ENTRIES) abort();
    for (int i = 0; i < c->n_cors_origins; i++)
        if (!terminated(c->cors_origins[i], 256) || !c->cors_origins[i][0] || strchr(c->cors_origins[i], ',')) abort();
    for (int i = 0; i < c->n_allowed_hosts; i++)
        if (!terminated(c->allowed_hosts[i], 256) || !c->allowed_hosts[i][0]) abort();
    if (isnan(c->keep_alive) || (c->keep_alive >= 0 && c->keep_alive > HR_KEEP_ALIVE_MAX)) abort();
    if (!(c->reader_timeout >= 0 && c->reader_timeout <= 86400)) abort();
    if (!(c->fallback_timeout >= 0 && c->fallback_timeout <= 86400)) abort();
    if (c->ctx_size < 0 || c->threads < 0 || c->threads > 512 || c->max_queue < 0) abort();
    if (c->parallel != 0 && (c->parallel < 1 || c->parallel > HR_MAX_SLOTS)) abort();
    if (c->queue_capacity < 1 || c->max_body_bytes < 1024 || c->max_body_bytes > (1u << 30)) abort();
    if (c->max_connections < 1 || c->max_connections > 65536 || c->max_tokens_limit < 1) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static server_config first, second, commented, defaults;
    char *log = NULL;
    size_t log_length = 0;
    bool ok = read_text((const char *)data, size, &first, &log, &log_length);
    if (ok && log_length != 0) abort();   /* an accepted file says nothing */
    if (!ok && (log_length == 0 || strncmp(log, "headroomd: ", 11) != 0 || !strstr(log, "fuzz.conf"))) abort();
    if (ok) check_ranges(&first);
    free(log);

    /* the same text, the same outcome and the same options */
    log = NULL;
    if (read_text((const char *)data, size, &second, &log, &log_length) != ok) abort();
    if (ok && memcmp(&first, &second, sizeof first) != 0) abort();
    free(log);

    /* every line a comment: accepted, nothing set (a NUL-holding or overlong line may be refused) */
    char *text = malloc(2 * size + 1);
    if (!text) return 0;
    size_t length = 0;
    text[length++] = '#';
    for (size_t i = 0; i < size; i++) {
        text[length++] = (char)data[i];
        if (data[i] == '\n') text[length++] = '#';
    }
    log = NULL;
    bool comments_ok = read_text(text, length, &commented, &log, &log_length);
    config_defaults(&defaults);
    if (comments_ok && memcmp(&commented, &defaults, sizeof defaults) != 0) abort();
    if (!comments_ok && !(strstr(log, "too long") || strstr(log, "NUL byte"))) abort();
    free(log);
    free(text);
    return 0;
}
