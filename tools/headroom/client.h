/*
 * client.h: HTTP requests from the CLI to a running headroomd (client.c).
 */
#ifndef HEADROOM_CLIENT_H
#define HEADROOM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* The server's base URL from HEADROOM_HOST and HEADROOM_PORT, without a trailing '/'. */
const char *client_base_url(char *buffer, size_t size);

/* Sends METHOD PATH with `body` (JSON text, or NULL) and waits at most `timeout_seconds` (0: no
 * limit). Returns the HTTP status with *reply the parsed JSON (the caller frees it) for a 2xx;
 * otherwise -1 (no answer) or the error status, with the sentence to print in `error`. */
int client_request(const char *method, const char *path, const char *body, double timeout_seconds,
                   cJSON **reply, char *error, size_t error_size);

#endif
