/*
 * config.c: headroomd's options by name, as flags, HEADROOM_* variables and config file lines
 * give them: each value checked, a bad one refused with a sentence on stderr that names it.
 * It reads text and fills server_config; it must not start anything (tests/fuzz/fuzz_config.c).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

/* A duration as the library reads a keep-alive (30s, 5m, 1h30m, 0, -1), or "never". */
static bool parse_keep_alive(const char *text, double *seconds)
{
    if (strcmp(text, "never") == 0) {
        *seconds = -1;
        return true;
    }
    return hr_keep_alive_parse(text, seconds) == HR_OK;
}

static bool parse_long(const char *name, const char *text, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < min || value > max) {
        fprintf(stderr, "headroomd: %s must be a whole number from %ld to %ld, not '%s'\n", name, min, max, text);
        return false;
    }
    *out = value;
    return true;
}

/* --host as Ollama reads OLLAMA_HOST, so one HEADROOM_HOST serves the server and the CLI: an
 * address, ADDRESS:PORT, [IPv6]:PORT or http://ADDRESS[:PORT]; a port given here sets --port. */
static bool set_host(server_config *c, const char *value)
{
    const char *at = value;
    if (strncmp(at, "https://", 8) == 0) {
        fprintf(stderr, "headroomd: --host '%s': headroomd serves plain HTTP; put a TLS proxy in front of it "
                        "(docs/deployment.md) and give the address alone\n", value);
        return false;
    }
    if (strncmp(at, "http://", 7) == 0) at += 7;
    char host[256];
    snprintf(host, sizeof host, "%s", at);
    size_t length = strlen(host);
    while (length > 0 && host[length - 1] == '/') host[--length] = '\0';
    char *port = NULL;
    if (host[0] == '[') {   /* [::1]:11435 */
        char *close = strchr(host, ']');
        if (!close || (close[1] && close[1] != ':')) {
            fprintf(stderr, "headroomd: --host '%s': expected [IPv6 address] or [IPv6 address]:PORT\n", value);
            return false;
        }
        *close = '\0';
        if (close[1] == ':') port = close + 2;
        memmove(host, host + 1, strlen(host + 1) + 1);
    } else {
        char *colon = strchr(host, ':');
        if (colon && !strchr(colon + 1, ':')) {   /* one colon: ADDRESS:PORT; more: a bare IPv6 address */
            *colon = '\0';
            port = colon + 1;
        }
    }
    if (port) {
        long number;
        if (!parse_long("the port in --host", port, 0, 65535, &number)) return false;
        c->port = (int)number;
    }
    snprintf(c->host, sizeof c->host, "%s", host);
    return true;
}

/* Adds VALUE to a list option, which also takes a comma-separated list (as Ollama's
 * OLLAMA_ORIGINS); false, with a sentence, when the list is full. */
static bool add_to_list(char (*list)[256], int *count, const char *flag, const char *value)
{
    for (const char *at = value; *at;) {
        while (*at == ' ') at++;
        size_t length = strcspn(at, ",");
        while (length > 0 && at[length - 1] == ' ') length--;
        if (length > 0) {
            if (*count >= MAX_LIST_ENTRIES || length >= 256) {
                fprintf(stderr, "headroomd: %s: at most %d entries of 255 bytes each\n", flag, MAX_LIST_ENTRIES);
                return false;
            }
            snprintf(list[(*count)++], 256, "%.*s", (int)length, at);
        }
        at += strcspn(at, ",");
        if (*at == ',') at++;
    }
    return true;
}

bool config_set_option(server_config *c, const char *name, const char *value)
{
    long number;
    if (strcmp(name, "host") == 0) {
        if (!set_host(c, value)) return false;
    } else if (strcmp(name, "port") == 0) {
        if (!parse_long("--port", value, 0, 65535, &number)) return false;
        c->port = (int)number;
    } else if (strcmp(name, "model") == 0) {
        if (c->n_model_paths >= MAX_MODELS) {
            fprintf(stderr, "headroomd: at most %d --model options\n", MAX_MODELS);
            return false;
        }
        snprintf(c->model_paths[c->n_model_paths++], sizeof c->model_paths[0], "%s", value);
    } else if (strcmp(name, "models-dir") == 0) snprintf(c->models_dir, sizeof c->models_dir, "%s", value);
    else if (strcmp(name, "keep-alive") == 0) {
        if (!parse_keep_alive(value, &c->keep_alive)) {
            fprintf(stderr, "headroomd: --keep-alive takes a duration such as 5m, 1h, 30s, 0 or -1, not '%s'\n", value);
            return false;
        }
    } else if (strcmp(name, "api-key") == 0) snprintf(c->api_key, sizeof c->api_key, "%s", value);
    else if (strcmp(name, "cors-origin") == 0) {
        if (!add_to_list(c->cors_origins, &c->n_cors_origins, "--cors-origin", value)) return false;
    }
    else if (strcmp(name, "allowed-host") == 0) {
        if (!add_to_list(c->allowed_hosts, &c->n_allowed_hosts, "--allowed-host", value)) return false;
    }
    else if (strcmp(name, "fallback-url") == 0) {
        if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0) {
            fprintf(stderr, "headroomd: --fallback-url must start with http:// or https://, not '%s'\n", value);
            return false;
        }
        snprintf(c->fallback_url, sizeof c->fallback_url, "%s", value);
    } else if (strcmp(name, "fallback-model") == 0) snprintf(c->fallback_model, sizeof c->fallback_model, "%s", value);
    else if (strcmp(name, "fallback-api-key") == 0) snprintf(c->fallback_api_key, sizeof c->fallback_api_key, "%s", value);
    else if (strcmp(name, "fallback-timeout") == 0) {
        if (!parse_keep_alive(value, &c->fallback_timeout) || c->fallback_timeout < 0 || c->fallback_timeout > 86400) {
            fprintf(stderr, "headroomd: --fallback-timeout takes a duration from 0 (none) to 24h such as 2m, not '%s'\n", value);
            return false;
        }
    }
    else if (strcmp(name, "ctx") == 0) {
        if (!parse_long("--ctx", value, 0, 1 << 20, &number)) return false;
        c->ctx_size = (int32_t)number;
    } else if (strcmp(name, "parallel") == 0) {
        if (!parse_long("--parallel", value, 1, HR_MAX_SLOTS, &number)) return false;
        c->parallel = (int32_t)number;
    } else if (strcmp(name, "max-queue") == 0) {
        if (!parse_long("--max-queue", value, 0, HR_MAX_QUEUED, &number)) return false;
        c->max_queue = (int32_t)number;
    } else if (strcmp(name, "threads") == 0) {
        if (!parse_long("--threads", value, 0, 512, &number)) return false;
        c->threads = (int32_t)number;
    } else if (strcmp(name, "queue") == 0) {
        if (!parse_long("--queue", value, 1, 65536, &number)) return false;
        c->queue_capacity = (int32_t)number;
    } else if (strcmp(name, "pressure-actions") == 0 || strcmp(name, "guard") == 0) {
        bool on = strcmp(value, "on") == 0 || strcmp(value, "true") == 0 || strcmp(value, "1") == 0;
        bool off = strcmp(value, "off") == 0 || strcmp(value, "false") == 0 || strcmp(value, "0") == 0;
        if (!on && !off) {
            fprintf(stderr, "headroomd: --%s takes on or off, not '%s'\n", name, value);
            return false;
        }
        if (strcmp(name, "guard") == 0) c->guard = on;
        else c->pressure_actions = on;
    } else if (strcmp(name, "reader-timeout") == 0) {
        if (!parse_keep_alive(value, &c->reader_timeout) || c->reader_timeout < 0 || c->reader_timeout > 86400) {
            fprintf(stderr, "headroomd: --reader-timeout takes a duration from 0 to 24h such as 30s or 2m, not '%s'\n", value);
            return false;
        }
    } else if (strcmp(name, "max-body") == 0) {
        if (!parse_long("--max-body", value, 1024, 1L << 30, &number)) return false;
        c->max_body_bytes = (size_t)number;
    } else if (strcmp(name, "max-connections") == 0) {
        if (!parse_long("--max-connections", value, 1, 65536, &number)) return false;
        c->max_connections = (unsigned int)number;
    } else if (strcmp(name, "max-connections-per-client") == 0) {
        if (!parse_long("--max-connections-per-client", value, 0, 65536, &number)) return false;
        c->max_connections_per_client = (unsigned int)number;
    } else if (strcmp(name, "max-tokens-limit") == 0) {
        if (!parse_long("--max-tokens-limit", value, 1, 1 << 20, &number)) return false;
        c->max_tokens_limit = (int32_t)number;
    } else {
        fprintf(stderr, "headroomd: unknown option '%s'\n", name);
        return false;
    }
    return true;
}

static char *trim(char *text)
{
    while (isspace((unsigned char)*text)) text++;
    char *end = text + strlen(text);
    while (end > text && isspace((unsigned char)end[-1])) *--end = '\0';
    return text;
}

enum { MAX_LINE = 4607 };   /* bytes of one config line, without its newline */

bool config_read_stream(server_config *c, FILE *f, const char *path)
{
    char *line = NULL;
    size_t capacity = 0;
    ssize_t length;
    int number = 0;
    bool ok = true;
    /* getline, not fgets: fgets splits a long line (or one with a NUL byte) and its tail would be
     * read as a line of its own, so an option at the end of a long comment would be set */
    while (ok && (length = getline(&line, &capacity, f)) >= 0) {
        number++;
        if (length > 0 && line[length - 1] == '\n') line[--length] = '\0';
        if (length > MAX_LINE || memchr(line, '\0', (size_t)length)) {
            fprintf(stderr, "headroomd: %s:%d: %s; a config line is text of at most %d bytes\n", path, number,
                    length > MAX_LINE ? "the line is too long" : "the line holds a NUL byte", MAX_LINE);
            ok = false;
            break;
        }
        char *text = trim(line);
        if (!*text || *text == '#') continue;
        char *equals = strchr(text, '=');
        if (!equals) {
            fprintf(stderr, "headroomd: %s:%d: expected 'key = value'\n", path, number);
            ok = false;
            break;
        }
        *equals = '\0';
        if (!config_set_option(c, trim(text), trim(equals + 1))) {
            fprintf(stderr, "headroomd: (in %s, line %d)\n", path, number);
            ok = false;
        }
    }
    free(line);
    return ok;
}

bool config_read_file(server_config *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "headroomd: cannot read the config file %s: %s\n", path, strerror(errno));
        return false;
    }
    bool ok = config_read_stream(c, f, path);
    fclose(f);
    return ok;
}

void config_defaults(server_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->port = 11435;
    c->keep_alive = 600;
    c->queue_capacity = 64;
    c->reader_timeout = 30;
    c->pressure_actions = true;
    c->guard = true;
    c->max_body_bytes = 1 << 20;
    c->max_connections = 256;
    c->max_connections_per_client = 32;
    c->max_tokens_limit = 8192;
    c->max_queue = HR_DEFAULT_MAX_QUEUED;
}
