/*
 * fuzz_request.c: headroomd's request handling on any body, through the real handler
 * (http_handle: the header checks, the body limit, UTF-8 and JSON checks, then every endpoint's
 * field checks on both APIs and the registry calls they make), with libmicrohttpd replaced by
 * the few functions headroomd calls, stubbed below: a "connection" is a struct of this file, a
 * response a buffer or a reader callback that is run to its end as a client would read it.
 * Input: byte 0 picks the endpoint, byte 1 the method, the rest is the body. The model is
 * HEADROOM_FUZZ_MODEL (a real GGUF file, so generations run; max_tokens is capped at 4) or, when
 * unset, a path that does not exist (every load then fails at the preflight, which is fast).
 * Checked: no crash, no leak, and every request answered exactly once with a status in 200..599.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- libmicrohttpd, stubbed ------------------------------------------------------------------ */

struct MHD_Connection {
    unsigned int status;
    int replies;
    struct MHD_Response *response;   /* held until the request ends, as MHD holds it */
};

struct MHD_Response {
    char *buffer;
    MHD_ContentReaderCallback reader;
    void *reader_cls;
    MHD_ContentReaderFreeCallback reader_free;
    int references;
};

struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buffer, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->buffer = malloc(size + 1);
    if (r->buffer) memcpy(r->buffer, buffer, size);
    if (mode == MHD_RESPMEM_MUST_FREE) free(buffer);
    r->references = 1;
    return r;
}

struct MHD_Response *MHD_create_response_from_callback(uint64_t size, size_t block_size, MHD_ContentReaderCallback crc,
                                                       void *crc_cls, MHD_ContentReaderFreeCallback crfc)
{
    (void)size, (void)block_size;
    struct MHD_Response *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->reader = crc;
    r->reader_cls = crc_cls;
    r->reader_free = crfc;
    r->references = 1;
    return r;
}

enum MHD_Result MHD_add_response_header(struct MHD_Response *response, const char *header, const char *content)
{
    (void)response, (void)header, (void)content;
    return MHD_YES;
}

/* A queued stream is read to its end at once, as a client that keeps up would read it. */
enum MHD_Result MHD_queue_response(struct MHD_Connection *connection, unsigned int status_code,
                                   struct MHD_Response *response)
{
    connection->status = status_code;
    connection->replies++;
    if (connection->response) return MHD_NO;   /* a second reply: the check below fails the run */
    connection->response = response;
    response->references++;
    if (response->reader) {
        char block[4096];
        uint64_t position = 0;
        for (int i = 0; i < 100000; i++) {
            ssize_t n = response->reader(response->reader_cls, position, block, sizeof block);
            if (n < 0) break;   /* end of stream, or ended with an error */
            position += (uint64_t)n;
        }
    }
    return MHD_YES;
}

void MHD_destroy_response(struct MHD_Response *response)
{
    if (!response || --response->references > 0) return;
    if (response->reader_free) response->reader_free(response->reader_cls);
    free(response->buffer);
    free(response);
}

const char *MHD_lookup_connection_value(struct MHD_Connection *connection, enum MHD_ValueKind kind, const char *key)
{
    (void)connection, (void)kind, (void)key;
    return NULL;
}

const union MHD_ConnectionInfo *MHD_get_connection_info(struct MHD_Connection *connection,
                                                        enum MHD_ConnectionInfoType info_type, ...)
{
    (void)connection, (void)info_type;
    return NULL;   /* no socket: client_gone() never sees a hang-up */
}

const unsigned char dashboard_page[] = "<!doctype html><title>headroom</title>";
const size_t dashboard_page_length = sizeof dashboard_page - 1;

/* ---- the server, as main.c sets it up ---------------------------------------------------------- */

static server srv;

static void quiet(enum hr_log_level level, const char *message, void *user_data)
{
    (void)level, (void)message, (void)user_data;
}

static void start(void)
{
    pthread_mutex_init(&srv.sessions_lock, NULL);
    pthread_mutex_init(&srv.stats_lock, NULL);
    server_config *c = &srv.config;
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->keep_alive = 600;
    c->queue_capacity = 64;
    c->reader_timeout = 30;
    c->max_body_bytes = 1 << 16;
    c->max_tokens_limit = 4;   /* a generation stays short whatever the input asks */
    c->ctx_size = 256;
    c->threads = 1;
    const char *model = getenv("HEADROOM_FUZZ_MODEL");
    snprintf(srv.models[0].name, sizeof srv.models[0].name, "tiny");
    snprintf(srv.models[0].path, sizeof srv.models[0].path, "%s", model && model[0] ? model : "/nonexistent/tiny.gguf");
    srv.n_models = 1;
    hr_context_params params = hr_context_default_params();
    params.keep_alive = c->keep_alive;
    params.log_fn = quiet;
    if (hr_context_create(&params, &srv.ctx) != HR_OK || !server_register_models(&srv)) abort();
}

static const char *const paths[] = {
    "/v1/completions", "/v1/chat/completions", "/api/generate", "/api/chat", "/api/load", "/api/unload",
    "/v1/models", "/api/tags", "/api/ps", "/api/show", "/api/memory", "/api/generations", "/metrics",
    "/ready", "/health", "/api/version", "/api/active", "/nothing",
};
static const char *const methods[] = { "POST", "POST", "POST", "GET", "HEAD", "OPTIONS", "DELETE" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, start);
    if (size < 2) return 0;
    const char *path = paths[data[0] % (sizeof paths / sizeof paths[0])];
    const char *method = methods[data[1] % (sizeof methods / sizeof methods[0])];
    const char *body = (const char *)data + 2;
    size_t length = size - 2;

    struct MHD_Connection connection = { 0 };
    void *con_cls = NULL;
    size_t none = 0;
    enum MHD_Result result = http_handle(&srv, &connection, path, method, NULL, NULL, &none, &con_cls);
    size_t rest = length;
    if (result == MHD_YES && rest > 0) {
        /* the body in two parts, as MHD may hand it over */
        size_t first = rest / 2;
        size_t part = first;
        if (part > 0) result = http_handle(&srv, &connection, path, method, NULL, body, &part, &con_cls);
        part = rest - first;
        if (result == MHD_YES) result = http_handle(&srv, &connection, path, method, NULL, body + first, &part, &con_cls);
    }
    if (result == MHD_YES && connection.replies == 0) {
        none = 0;
        result = http_handle(&srv, &connection, path, method, NULL, NULL, &none, &con_cls);
    }
    http_request_completed(&srv, &connection, &con_cls, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    MHD_destroy_response(connection.response);
    if (result == MHD_YES && connection.replies != 1) abort();   /* answered exactly once */
    if (connection.replies && (connection.status < 200 || connection.status > 599)) abort();
    return 0;
}
