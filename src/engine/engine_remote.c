/*
 * engine_remote.c: the engine interface (engine.h) on an OpenAI-compatible server, with libcurl:
 * the fall-back that serves a model headroom cannot load here. A server cannot tokenize or decode
 * token by token for us, so this engine offers the whole-request `complete` entry instead:
 * POST {url}/v1/completions streamed as server-sent events (sse.c), each event's JSON read with
 * cJSON. The chat template comes from the local file's GGUF header, read without its weights.
 * It holds no policy: it asks, streams and turns every failure into a sentence a person can act on.
 * Embeddings are one POST /v1/embeddings each. Over 600 lines on purpose: one request's state
 * (struct request) runs through the transfer, the server's answers and the completion stream,
 * and the file reads best as that one story.
 */
#include "engine/engine.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <gguf.h>

#include "core/error.h"
#include "core/log.h"
#include "engine/chat_template.h"
#include "engine/sse.h"

enum {
    POLL_MILLISECONDS = 50,       /* the longest a cancel waits to be seen while the server is silent */
    MODEL_LIST_SECONDS = 30,      /* GET /v1/models: what the check at load may take after connecting */
    MAX_BODY_BYTES = 1 << 20,     /* a non-streamed reply (a model list, an error) kept at most */
    EMBED_SECONDS = 300,          /* an embedding request's limit where no request timeout is set */
};

struct hr_engine_model {
    char url[256];                /* the base URL, without a trailing '/' or '/v1' */
    char *model_name;             /* what the server calls the model */
    struct curl_slist *headers;   /* Content-Type, Accept, Authorization (the key lives only here) */
    bool has_api_key;
    double connect_timeout;       /* seconds */
    double timeout;               /* seconds for a whole request; 0: none */
    bool extended_sampling;
    char *chat_template;          /* from the local file, or NULL */
    bool has_local_file;
    char local_name[128];         /* general.name of the local file, or "" */
    int32_t n_ctx_train;          /* the local file's trained context, or 0 */
    int32_t n_embd;               /* the local file's embedding width, or 0 */
    int32_t n_ctx;                /* the server's context window when it says, or 0 */
    /* Kept between requests so that connections (and TLS sessions) are reused. One request at a
     * time: the runtime runs one generation per model, and load finishes before anyone sees it. */
    CURLM *multi;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void)
{
    /* Once per process and never undone: curl_global_cleanup is not thread-safe, and other
     * parts of the application may use libcurl too. */
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- one HTTP transfer ---------------------------------------------------------------------- */

/* The state of one request, shared by libcurl's callbacks and the code that reads the result. */
struct request {
    hr_engine_model *model;
    CURL *easy;
    char curl_error[CURL_ERROR_SIZE];
    long status;                  /* the HTTP status, once the first body bytes arrived */
    bool started;
    bool event_stream;            /* the reply is text/event-stream */
    char *body;                   /* any other reply (errors, JSON), up to MAX_BODY_BYTES */
    size_t body_length;
    hr_sse_parser sse;

    /* a completion */
    const hr_engine_complete_params *params;
    hr_piece_fn piece_fn;
    void *user_data;
    hr_engine_complete_stats *stats;
    int32_t chunks;               /* text chunks delivered */
    bool done;                    /* "data: [DONE]" arrived */
    char finish_reason[32];       /* the server's, once it sent one */
    bool stopped;                 /* piece_fn asked to stop */
    int failure;                  /* a failure found in the reply, with its sentence: */
    char failure_text[512];
};

static int request_fail(struct request *r, int code, const char *format, ...) __attribute__((format(printf, 3, 4)));

/* Records a failure found inside a callback (the sentence is set for the caller when the
 * transfer has ended: a piece callback in between may make headroom calls of its own). */
static int request_fail(struct request *r, int code, const char *format, ...)
{
    if (r->failure) return 1;   /* the first failure explains the rest */
    va_list args;
    va_start(args, format);
    vsnprintf(r->failure_text, sizeof r->failure_text, format, args);
    va_end(args);
    r->failure = code;
    return 1;
}

static int on_event(const char *type, const char *data, size_t length, void *user_data);

static size_t on_body(char *data, size_t size, size_t count, void *user_data)
{
    struct request *r = user_data;
    size_t length = size * count;
    if (!r->started) {
        r->started = true;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
        char *type = NULL;
        curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &type);
        r->event_stream = r->status == 200 && r->piece_fn && type && strstr(type, "text/event-stream");
    }
    if (r->event_stream) {
        int rc = hr_sse_feed(&r->sse, data, length, on_event, r);
        if (rc == HR_ENOMEM) request_fail(r, HR_ENOMEM, "out of memory reading the fall-back endpoint's stream");
        else if (rc == HR_EFORMAT)
            request_fail(r, HR_EFORMAT, "the fall-back endpoint %s sent an event longer than %d bytes; "
                         "is it an OpenAI-compatible server?", r->model->url, MAX_BODY_BYTES);
        return rc == 0 ? length : 0;   /* anything but `length` ends the transfer */
    }
    if (r->body_length + length > MAX_BODY_BYTES) {
        request_fail(r, HR_EFORMAT, "the fall-back endpoint %s sent a reply longer than %d bytes where a short "
                     "JSON document was expected", r->model->url, MAX_BODY_BYTES);
        return 0;
    }
    char *bigger = realloc(r->body, r->body_length + length + 1);
    if (!bigger) {
        request_fail(r, HR_ENOMEM, "out of memory reading the fall-back endpoint's reply");
        return 0;
    }
    r->body = bigger;
    memcpy(r->body + r->body_length, data, length);
    r->body_length += length;
    r->body[r->body_length] = '\0';
    return length;
}

static int request_init(struct request *r, hr_engine_model *m, const char *path, double total_timeout)
{
    memset(r, 0, sizeof *r);
    r->model = m;
    hr_sse_init(&r->sse, MAX_BODY_BYTES);
    r->easy = curl_easy_init();
    if (!r->easy) return hr_fail(HR_ENOMEM, "out of memory starting a request to %s", m->url);
    char url[512];
    snprintf(url, sizeof url, "%s%s", m->url, path);
    curl_easy_setopt(r->easy, CURLOPT_URL, url);
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, m->headers);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);   /* a library in a threaded program */
    curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->curl_error);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(m->connect_timeout * 1000));
    if (total_timeout > 0) curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)(total_timeout * 1000));
    curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    return HR_OK;
}

static void request_free(struct request *r)
{
    if (r->easy) curl_easy_cleanup(r->easy);
    free(r->body);
    hr_sse_free(&r->sse);
}

/* Runs the transfer to its end on the calling thread. curl_multi_poll wakes at least every
 * POLL_MILLISECONDS, so `abort_fn` is seen that soon even while the server sends nothing (a
 * CURLOPT_XFERINFOFUNCTION is called only about once a second when no data moves). An aborted
 * transfer is removed unfinished, which closes its connection: the server sees the hang-up. */
static CURLcode run_transfer(struct request *r, hr_engine_abort_fn abort_fn, void *abort_user_data, bool *aborted)
{
    CURLM *multi = r->model->multi;
    *aborted = false;
    if (curl_multi_add_handle(multi, r->easy) != CURLM_OK) return CURLE_OUT_OF_MEMORY;
    CURLcode result = CURLE_OK;
    bool finished = false;
    for (;;) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(multi, &running);
        if (mc != CURLM_OK) {
            snprintf(r->curl_error, sizeof r->curl_error, "%s", curl_multi_strerror(mc));
            result = CURLE_FAILED_INIT;
            break;
        }
        if (running == 0) {
            finished = true;
            break;
        }
        if (abort_fn && abort_fn(abort_user_data)) {
            *aborted = true;
            break;
        }
        mc = curl_multi_poll(multi, NULL, 0, POLL_MILLISECONDS, NULL);
        if (mc != CURLM_OK) {
            snprintf(r->curl_error, sizeof r->curl_error, "%s", curl_multi_strerror(mc));
            result = CURLE_FAILED_INIT;
            break;
        }
    }
    if (finished) {
        CURLMsg *message;
        int left = 0;
        while ((message = curl_multi_info_read(multi, &left)))
            if (message->msg == CURLMSG_DONE && message->easy_handle == r->easy) result = message->data.result;
    }
    curl_multi_remove_handle(multi, r->easy);
    if (r->status == 0) curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
    return result;
}

/* ---- what a server says ---------------------------------------------------------------------- */

/* The text of an error reply: OpenAI's {"error": {"message"}}, {"error": "..."} (Ollama and
 * others), FastAPI's {"detail"}, a bare {"message"}, or the start of the body as text. */
static void error_message(const struct request *r, char *out, size_t size)
{
    out[0] = '\0';
    if (!r->body || r->body_length == 0) {
        snprintf(out, size, "an empty reply");
        return;
    }
    cJSON *json = cJSON_ParseWithLength(r->body, r->body_length);
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(json, "error");
    const cJSON *text = NULL;
    if (cJSON_IsObject(error)) text = cJSON_GetObjectItemCaseSensitive(error, "message");
    else if (cJSON_IsString(error)) text = error;
    if (!cJSON_IsString(text)) text = cJSON_GetObjectItemCaseSensitive(json, "detail");
    if (!cJSON_IsString(text)) text = cJSON_GetObjectItemCaseSensitive(json, "message");
    if (cJSON_IsString(text)) {
        snprintf(out, size, "%s", text->valuestring);
    } else {
        /* not JSON: its first line, printable characters only */
        size_t n = 0;
        for (size_t i = 0; i < r->body_length && n + 1 < size && n < 200; i++) {
            unsigned char c = (unsigned char)r->body[i];
            if (c == '\n' || c == '\r') break;
            out[n++] = (char)(c >= 0x20 && c != 0x7f ? c : '?');
        }
        out[n] = '\0';
    }
    cJSON_Delete(json);
}

/* Whether the request was sent to the server: a timeout after that is the server's slowness (it
 * took the request and sent nothing back in time), not an unreachable address. (Not the connect
 * time: that is 0 on a reused connection.) */
static bool connected(const struct request *r)
{
    long request_bytes = 0;
    return curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &request_bytes) == CURLE_OK && request_bytes > 0;
}

/* The sentence for a transfer that did not get an answer at all. */
static int unreachable(const struct request *r, CURLcode result)
{
    const char *detail = r->curl_error[0] ? r->curl_error : curl_easy_strerror(result);
    if (result == CURLE_GOT_NOTHING)
        return hr_fail(HR_EIO, "fall-back endpoint %s closed the connection without answering: %s", r->model->url, detail);
    if (r->started)
        return hr_fail(HR_EIO, "fall-back endpoint %s broke off its answer: %s", r->model->url, detail);
    if (result == CURLE_OPERATION_TIMEDOUT && connected(r))
        return hr_fail(HR_EIO, "fall-back endpoint %s accepted the connection but did not answer in time: %s; "
                       "check that it is an OpenAI-compatible server and not stuck or overloaded", r->model->url, detail);
    return hr_fail(HR_EIO, "fall-back endpoint %s is unreachable: %s; check --fallback-url", r->model->url, detail);
}

/* The sentence for an HTTP status other than 200. */
static int refused(const struct request *r, const char *what)
{
    char message[400];
    error_message(r, message, sizeof message);
    const hr_engine_model *m = r->model;
    switch (r->status) {
    case 401:
    case 403:
        if (!m->has_api_key)
            return hr_fail(HR_EACCES, "fall-back endpoint %s requires an API key (HTTP %ld: %s); set --fallback-api-key",
                           m->url, r->status, message);
        return hr_fail(HR_EACCES, "fall-back endpoint %s rejected the API key (HTTP %ld: %s); check --fallback-api-key",
                       m->url, r->status, message);
    case 404:
        return hr_fail(HR_ENOENT, "fall-back endpoint %s has no %s or no model '%s' (HTTP 404: %s)", m->url, what,
                       m->model_name, message);
    case 400:
    case 413:
    case 422:
        return hr_fail(HR_EINVAL, "fall-back endpoint %s refused the request (HTTP %ld): %s", m->url, r->status, message);
    case 429:
    case 503:
        return hr_fail(HR_EBUSY, "fall-back endpoint %s is busy (HTTP %ld): %s; try again later", m->url, r->status, message);
    default:
        return hr_fail(HR_EIO, "fall-back endpoint %s answered %s with HTTP %ld: %s", m->url, what, r->status, message);
    }
}

/* A positive whole number from a JSON field, or 0. */
static int32_t positive_int(const cJSON *object, const char *name)
{
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(object, name);
    if (!cJSON_IsNumber(value) || !(value->valuedouble >= 1) || value->valuedouble > INT32_MAX) return 0;
    return (int32_t)value->valuedouble;
}

/* The context window a server reports for a model, where it does: vLLM's max_model_len,
 * llama.cpp's meta.n_ctx_train, OpenRouter's context_length. */
static int32_t reported_context(const cJSON *entry)
{
    int32_t n = positive_int(entry, "max_model_len");
    if (!n) n = positive_int(cJSON_GetObjectItemCaseSensitive(entry, "meta"), "n_ctx_train");
    if (!n) n = positive_int(entry, "context_length");
    if (!n) n = positive_int(entry, "n_ctx");
    return n;
}

/* GET /v1/models: the server answers, accepts the key and lists the model. */
static int check_server(hr_engine_model *m)
{
    struct request r;
    double limit = m->connect_timeout + MODEL_LIST_SECONDS;
    if (m->timeout > 0 && m->timeout < limit) limit = m->timeout;
    int rc = request_init(&r, m, "/v1/models", limit);
    if (rc != HR_OK) return rc;
    bool aborted = false;
    CURLcode result = run_transfer(&r, NULL, NULL, &aborted);
    if (r.failure) rc = hr_fail(r.failure, "%s", r.failure_text);
    else if (result != CURLE_OK) rc = unreachable(&r, result);
    else if (r.status != 200) rc = refused(&r, "GET /v1/models");
    if (rc != HR_OK) {
        request_free(&r);
        return rc;
    }
    cJSON *json = cJSON_ParseWithLength(r.body ? r.body : "", r.body_length);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(json, "data");
    if (!cJSON_IsArray(data)) {
        cJSON_Delete(json);
        request_free(&r);
        return hr_fail(HR_EFORMAT, "fall-back endpoint %s answered GET /v1/models with something other than "
                       "OpenAI's model list; is it an OpenAI-compatible server?", m->url);
    }
    char served[400] = "";
    size_t used = 0;
    bool found = false;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, data) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(entry, "id");
        if (!cJSON_IsString(id)) continue;
        if (strcmp(id->valuestring, m->model_name) == 0) {
            found = true;
            m->n_ctx = reported_context(entry);
            break;
        }
        if (used < sizeof served - 1) {
            int n = snprintf(served + used, sizeof served - used, "%s%s", used ? ", " : "", id->valuestring);
            used = n < 0 ? used : used + (size_t)n;
            if (used >= sizeof served - 1) snprintf(served + sizeof served - 6, 6, ", ...");
        }
    }
    cJSON_Delete(json);
    request_free(&r);
    if (found) return HR_OK;
    if (!served[0])
        return hr_fail(HR_ENOENT, "fall-back endpoint %s serves no models, so not '%s'; check --fallback-model",
                       m->url, m->model_name);
    return hr_fail(HR_ENOENT, "fall-back endpoint %s does not serve model '%s'; it serves: %s; check --fallback-model",
                   m->url, m->model_name, served);
}

/* ---- load and unload -------------------------------------------------------------------------- */

/* The base URL as given, checked, without a trailing '/' and without the "/v1" that OpenAI
 * clients' base URLs carry (this engine adds its own). */
static int set_url(hr_engine_model *m, const char *url)
{
    if (!url || !url[0])
        return hr_fail(HR_EINVAL, "no fall-back URL given; set --fallback-url to an OpenAI-compatible server "
                       "such as http://127.0.0.1:11436");
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
        return hr_fail(HR_EINVAL, "fall-back URL '%s' must start with http:// or https://", url);
    size_t length = strlen(url);
    if (length >= sizeof m->url) return hr_fail(HR_EINVAL, "fall-back URL is %zu characters long; the limit is %zu",
                                                length, sizeof m->url - 1);
    for (size_t i = 0; i < length; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            return hr_fail(HR_EINVAL, "fall-back URL '%s' contains a space or a control character", url);
    memcpy(m->url, url, length + 1);
    while (length > 0 && m->url[length - 1] == '/') m->url[--length] = '\0';
    if (length > 3 && strcmp(m->url + length - 3, "/v1") == 0) {
        length -= 3;
        m->url[length] = '\0';
        while (length > 0 && m->url[length - 1] == '/') m->url[--length] = '\0';
    }
    return HR_OK;
}

static int set_headers(hr_engine_model *m, const char *api_key)
{
    /* "Expect:" off: libcurl would otherwise wait for a "100 Continue" before sending a large body */
    static const char *const fixed[] = { "Content-Type: application/json", "Accept: text/event-stream, application/json",
                                         "Expect:" };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        struct curl_slist *list = curl_slist_append(m->headers, fixed[i]);
        if (!list) return hr_fail(HR_ENOMEM, "out of memory setting up the fall-back endpoint");
        m->headers = list;
    }
    if (!api_key || !api_key[0]) return HR_OK;
    for (const char *p = api_key; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return hr_fail(HR_EINVAL, "the fall-back API key contains a control character (a line break?); "
                           "give the key alone");
    size_t size = strlen(api_key) + sizeof "Authorization: Bearer ";
    char *header = malloc(size);
    if (!header) return hr_fail(HR_ENOMEM, "out of memory setting up the fall-back endpoint");
    snprintf(header, size, "Authorization: Bearer %s", api_key);
    struct curl_slist *list = curl_slist_append(m->headers, header);
    memset(header, 0, size);   /* the key stays in one place only */
    free(header);
    if (!list) return hr_fail(HR_ENOMEM, "out of memory setting up the fall-back endpoint");
    m->headers = list;
    m->has_api_key = true;
    return HR_OK;
}

/* The local file's name, trained context and chat template, from its GGUF header alone. */
static int read_local_file(hr_engine_model *m, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return hr_fail(HR_ENOENT, "model file not found: %s", path);
        return hr_fail(HR_EIO, "cannot read model file %s: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) return hr_fail(HR_EFORMAT, "%s is not a regular file; give the path of a .gguf model file", path);
    if (access(path, R_OK) != 0) return hr_fail(HR_EACCES, "cannot read model file %s: permission denied", path);
    struct gguf_init_params header_only = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *gguf = gguf_init_from_file(path, header_only);
    if (!gguf) return hr_fail(HR_EFORMAT, "%s is not a GGUF model file, or its header is corrupt", path);
    int64_t key = gguf_find_key(gguf, "general.name");
    if (key >= 0 && gguf_get_kv_type(gguf, key) == GGUF_TYPE_STRING)
        snprintf(m->local_name, sizeof m->local_name, "%s", gguf_get_val_str(gguf, key));
    key = gguf_find_key(gguf, "general.architecture");
    if (key >= 0 && gguf_get_kv_type(gguf, key) == GGUF_TYPE_STRING) {
        char name[160];
        snprintf(name, sizeof name, "%.120s.context_length", gguf_get_val_str(gguf, key));
        int64_t context = gguf_find_key(gguf, name);
        if (context >= 0 && gguf_get_kv_type(gguf, context) == GGUF_TYPE_UINT32 && gguf_get_val_u32(gguf, context) <= INT32_MAX)
            m->n_ctx_train = (int32_t)gguf_get_val_u32(gguf, context);
        snprintf(name, sizeof name, "%.120s.embedding_length", gguf_get_val_str(gguf, key));
        int64_t width = gguf_find_key(gguf, name);
        if (width >= 0 && gguf_get_kv_type(gguf, width) == GGUF_TYPE_UINT32 && gguf_get_val_u32(gguf, width) <= 65536)
            m->n_embd = (int32_t)gguf_get_val_u32(gguf, width);
    }
    key = gguf_find_key(gguf, "tokenizer.chat_template");
    int rc = HR_OK;
    if (key >= 0 && gguf_get_kv_type(gguf, key) == GGUF_TYPE_STRING) {
        m->chat_template = strdup(gguf_get_val_str(gguf, key));
        if (!m->chat_template) rc = hr_fail(HR_ENOMEM, "out of memory reading %s", path);
    }
    gguf_free(gguf);
    m->has_local_file = true;
    return rc;
}

static void remote_unload(hr_engine_model *m)
{
    if (!m) return;
    if (m->multi) curl_multi_cleanup(m->multi);
    curl_slist_free_all(m->headers);
    free(m->model_name);
    free(m->chat_template);
    free(m);
}

static int remote_load(const char *path, const hr_engine_load_params *params, hr_engine_model **out)
{
    *out = NULL;
    const hr_remote_params *remote = params->remote;
    if (!remote) return hr_fail(HR_EINVAL, "the remote engine needs an endpoint: use hr_model_load_remote()");
    pthread_once(&curl_once, curl_init);
    if (curl_init_result != CURLE_OK)
        return hr_fail(HR_EIO, "libcurl cannot start: %s", curl_easy_strerror(curl_init_result));
    if (!remote->model || !remote->model[0])
        return hr_fail(HR_EINVAL, "no fall-back model name given; set --fallback-model to a model the server lists "
                       "at GET /v1/models");
    if (!isfinite(remote->connect_timeout) || remote->connect_timeout < 0 || remote->connect_timeout > 3600)
        return hr_fail(HR_EINVAL, "connect timeout %g s is out of range: use 0 (5 s) to 3600", remote->connect_timeout);
    if (!isfinite(remote->timeout) || remote->timeout < 0 || remote->timeout > 86400)
        return hr_fail(HR_EINVAL, "request timeout %g s is out of range: use 0 (none) to 86400", remote->timeout);

    hr_engine_model *m = calloc(1, sizeof *m);
    if (!m) return hr_fail(HR_ENOMEM, "out of memory opening the fall-back endpoint");
    m->connect_timeout = remote->connect_timeout > 0 ? remote->connect_timeout : 5;
    m->timeout = remote->timeout;
    m->extended_sampling = remote->extended_sampling;
    int rc = set_url(m, remote->url);
    if (rc == HR_OK) rc = set_headers(m, remote->api_key);
    if (rc == HR_OK) {
        m->model_name = strdup(remote->model);
        m->multi = curl_multi_init();
        if (!m->model_name || !m->multi) rc = hr_fail(HR_ENOMEM, "out of memory opening the fall-back endpoint");
    }
    if (rc == HR_OK && path) rc = read_local_file(m, path);
    if (rc == HR_OK && params->progress_fn && !params->progress_fn(0.0f, params->progress_user_data))
        rc = hr_fail(HR_ECANCELLED, "opening the fall-back endpoint was cancelled");
    if (rc == HR_OK) rc = check_server(m);
    if (rc == HR_OK && params->progress_fn && !params->progress_fn(1.0f, params->progress_user_data))
        rc = hr_fail(HR_ECANCELLED, "opening the fall-back endpoint was cancelled");
    if (rc != HR_OK) {
        remote_unload(m);
        return rc;
    }
    hr_log(HR_LOG_INFO, "fall-back endpoint %s serves '%s'%s", m->url, m->model_name,
           m->n_ctx > 0 ? " (it reports its context window)" : "");
    *out = m;
    return HR_OK;
}

static void remote_get_info(const hr_engine_model *m, hr_engine_model_info *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->description, sizeof out->description, "remote: %.80s %.38s", m->url, m->model_name);
    snprintf(out->name, sizeof out->name, "%s", m->local_name[0] ? m->local_name : m->model_name);
    out->n_ctx_train = m->n_ctx_train;
    out->n_ctx = m->n_ctx;
    out->n_embd = m->n_embd;
    out->load_mode = HR_LOAD_AUTO;   /* nothing is loaded here */
    out->remote = true;
    snprintf(out->endpoint, sizeof out->endpoint, "%s", m->url);
}

static int remote_chat_template(const hr_engine_model *m, const hr_chat_message *messages, size_t count,
                                bool add_assistant, char **out)
{
    *out = NULL;
    if (!m->has_local_file)
        return hr_fail(HR_ENOTSUP, "the fall-back model '%s' was opened without a local model file, so headroom has no "
                       "chat template for it; give the local file's path or send a plain prompt", m->model_name);
    if (!m->chat_template)
        return hr_fail(HR_ENOTSUP, "this model has no chat template; use a completion endpoint with a plain prompt");
    return hr_engine_format_chat(m->chat_template, messages, count, add_assistant, out);
}

/* ---- a completion ------------------------------------------------------------------------------ */

/* A float as the short decimal a person wrote (0.8, not 0.800000011920929). */
static double shortest(float value)
{
    char text[32];
    snprintf(text, sizeof text, "%.6g", (double)value);
    return strtod(text, NULL);
}

static char *completion_body(const hr_engine_model *m, const char *prompt, const hr_engine_complete_params *p)
{
    cJSON *body = cJSON_CreateObject();
    if (!body) return NULL;
    cJSON_AddStringToObject(body, "model", m->model_name);
    cJSON_AddStringToObject(body, "prompt", prompt);
    cJSON_AddNumberToObject(body, "max_tokens", p->max_tokens);
    cJSON_AddNumberToObject(body, "temperature", shortest(p->sampling.temperature));
    cJSON_AddNumberToObject(body, "top_p", shortest(p->sampling.top_p));
    if (m->extended_sampling) {
        cJSON_AddNumberToObject(body, "top_k", p->sampling.top_k);
        cJSON_AddNumberToObject(body, "min_p", shortest(p->sampling.min_p));
        /* llama.cpp's server names; sent only when they change something */
        if (p->sampling.typical_p < 1.0f) cJSON_AddNumberToObject(body, "typical_p", shortest(p->sampling.typical_p));
        if (p->sampling.repeat_penalty != 1.0f) {
            cJSON_AddNumberToObject(body, "repeat_penalty", shortest(p->sampling.repeat_penalty));
            cJSON_AddNumberToObject(body, "repeat_last_n", p->sampling.repeat_last_n);
        }
        if (p->sampling.mirostat > 0) {
            cJSON_AddNumberToObject(body, "mirostat", p->sampling.mirostat);
            cJSON_AddNumberToObject(body, "mirostat_tau", shortest(p->sampling.mirostat_tau));
            cJSON_AddNumberToObject(body, "mirostat_eta", shortest(p->sampling.mirostat_eta));
        }
    }
    /* OpenAI's own fields: every compatible server takes them */
    if (p->sampling.presence_penalty != 0)
        cJSON_AddNumberToObject(body, "presence_penalty", shortest(p->sampling.presence_penalty));
    if (p->sampling.frequency_penalty != 0)
        cJSON_AddNumberToObject(body, "frequency_penalty", shortest(p->sampling.frequency_penalty));
    if (p->sampling.logit_bias_count > 0) {
        cJSON *bias = cJSON_AddObjectToObject(body, "logit_bias");
        for (size_t i = 0; bias && i < p->sampling.logit_bias_count; i++) {
            char token[16];
            snprintf(token, sizeof token, "%d", (int)p->sampling.logit_bias[i].token);
            float value = p->sampling.logit_bias[i].bias;
            cJSON_AddNumberToObject(bias, token, isinf(value) ? -100 : shortest(value));   /* OpenAI's ban */
        }
    }
    char seed[24];
    snprintf(seed, sizeof seed, "%" PRIu64, p->sampling.seed);   /* exact: a double holds 53 bits */
    cJSON_AddRawToObject(body, "seed", seed);
    cJSON_AddBoolToObject(body, "stream", true);
    cJSON *options = cJSON_AddObjectToObject(body, "stream_options");
    if (options) cJSON_AddBoolToObject(options, "include_usage", true);
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    return text;
}

static int deliver(struct request *r, const char *text, size_t length)
{
    if (length == 0) return 0;
    r->chunks++;
    if (r->piece_fn(text, length, r->user_data) != 0) {
        r->stopped = true;
        return 1;
    }
    return 0;
}

/* One completion object (a streamed chunk or a whole reply): its text, finish_reason, usage. */
static int take_completion(struct request *r, const cJSON *json)
{
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(json, "error");
    if (error && !cJSON_IsNull(error)) {
        const cJSON *message = cJSON_IsObject(error) ? cJSON_GetObjectItemCaseSensitive(error, "message") : error;
        return request_fail(r, HR_EENGINE, "the fall-back endpoint %s failed during the generation: %s", r->model->url,
                            cJSON_IsString(message) ? message->valuestring : "(no message)");
    }
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(json, "usage");
    if (cJSON_IsObject(usage)) {
        r->stats->prompt_tokens = positive_int(usage, "prompt_tokens");
        r->stats->generated_tokens = positive_int(usage, "completion_tokens");
        r->stats->usage_known = true;
    }
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(json, "choices");
    const cJSON *choice = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
    if (!choice) return 0;   /* the usage chunk has no choices */
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason");
    if (cJSON_IsString(reason)) snprintf(r->finish_reason, sizeof r->finish_reason, "%s", reason->valuestring);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(choice, "text");
    if (!cJSON_IsString(text)) {   /* a server that answers in the chat shape */
        const cJSON *delta = cJSON_GetObjectItemCaseSensitive(choice, "delta");
        text = cJSON_GetObjectItemCaseSensitive(delta, "content");
    }
    if (!cJSON_IsString(text)) return 0;
    return deliver(r, text->valuestring, strlen(text->valuestring));
}

static int on_event(const char *type, const char *data, size_t length, void *user_data)
{
    (void)type;   /* "message", or "error" on some servers: the JSON says which */
    struct request *r = user_data;
    if (r->done) return 0;
    if (strcmp(data, "[DONE]") == 0) {
        r->done = true;
        return 0;
    }
    cJSON *json = cJSON_ParseWithLength(data, length);
    if (!json)
        return request_fail(r, HR_EFORMAT, "the fall-back endpoint %s sent an event that is not JSON: '%.80s'",
                            r->model->url, data);
    int rc = take_completion(r, json);
    cJSON_Delete(json);
    return rc;
}

static enum hr_stop_reason stop_reason(const struct request *r)
{
    if (strcmp(r->finish_reason, "length") == 0) {
        /* "length" also ends a generation that filled the server's context window */
        if (r->stats->usage_known && r->stats->generated_tokens < r->params->max_tokens) return HR_STOP_CONTEXT_FULL;
        return HR_STOP_MAX_TOKENS;
    }
    return HR_STOP_END_OF_TEXT;   /* "stop", or a stream that ended properly without saying why */
}

static int remote_complete(hr_engine_model *m, const char *prompt, const hr_engine_complete_params *params,
                           hr_piece_fn piece_fn, void *user_data, hr_engine_complete_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    char *body = completion_body(m, prompt, params);
    if (!body) return hr_fail(HR_ENOMEM, "out of memory building a request for %s", m->url);
    struct request r;
    int rc = request_init(&r, m, "/v1/completions", m->timeout);
    if (rc != HR_OK) {
        free(body);
        return rc;
    }
    r.params = params;
    r.piece_fn = piece_fn;
    r.user_data = user_data;
    r.stats = stats;
    curl_easy_setopt(r.easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(r.easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));

    bool aborted = false;
    CURLcode result = run_transfer(&r, params->abort_fn, params->abort_user_data, &aborted);
    free(body);
    if (r.event_stream && result == CURLE_OK && !r.failure && !r.stopped) {
        /* a last event without the blank line after it: the stream ended, so it is complete */
        hr_sse_feed(&r.sse, "\n\n", 2, on_event, &r);
    }
    if (!r.event_stream && result == CURLE_OK && r.status == 200 && !r.failure && !aborted) {
        /* a server that ignored "stream": true and sent the whole completion as JSON */
        cJSON *json = cJSON_ParseWithLength(r.body ? r.body : "", r.body_length);
        if (!json) request_fail(&r, HR_EFORMAT, "the fall-back endpoint %s answered with neither an event stream nor JSON",
                                m->url);
        else take_completion(&r, json);
        if (json) r.done = true;
        cJSON_Delete(json);
    }
    if (!stats->usage_known) stats->generated_tokens = r.chunks;

    if (aborted || r.stopped) {
        stats->stop_reason = HR_STOP_CANCELLED;
        rc = HR_OK;
    } else if (r.failure) {
        rc = hr_fail(r.failure, "%s", r.failure_text);
    } else if (r.status != 0 && r.status != 200) {
        rc = refused(&r, "POST /v1/completions");
    } else if (result == CURLE_OPERATION_TIMEDOUT && (r.started || connected(&r))) {
        rc = hr_fail(HR_EIO, "the fall-back endpoint %s did not finish within the request timeout of %g s "
                     "(%d pieces had arrived)", m->url, m->timeout, r.chunks);
    } else if (result != CURLE_OK && !r.started) {
        rc = unreachable(&r, result);
    } else if (result != CURLE_OK && !r.done) {
        rc = hr_fail(HR_EIO, "the fall-back endpoint %s broke off the stream after %d pieces: %s", m->url, r.chunks,
                     r.curl_error[0] ? r.curl_error : curl_easy_strerror(result));
    } else if (!r.done && !r.finish_reason[0]) {
        rc = hr_fail(HR_EIO, "the fall-back endpoint %s ended the stream after %d pieces without finishing it "
                     "(no finish_reason, no [DONE]); it may have stopped", m->url, r.chunks);
    } else {
        stats->stop_reason = stop_reason(&r);
        rc = HR_OK;
    }
    request_free(&r);
    return rc;
}

/* ---- an embedding ------------------------------------------------------------------------------ */

/* POST /v1/embeddings for one text, on a handle of its own and without the model's multi handle:
 * embeddings run on any thread, beside a completion that holds the multi. The width comes from
 * the local file (n_embd); a vector of another width, or none, is a sentence. Truncation is the
 * server's business (it has the tokenizer): asked to, headroom says so where the server refuses. */
static int remote_embed(hr_engine_model *m, const char *text, size_t length, bool normalize, bool truncate,
                        float *out, int32_t capacity, int32_t *n_tokens, int32_t *input_tokens, bool *created)
{
    (void)length;   /* the text is a C string (hr_model_embed's) */
    *n_tokens = 0;
    *input_tokens = 0;
    *created = false;
    if (m->n_embd <= 0)
        return hr_fail(HR_ENOTSUP, "the fall-back model '%s' was opened without a local model file that gives its "
                       "embedding width; give the local file's path", m->model_name);
    if (capacity < m->n_embd)
        return hr_fail(HR_EINVAL, "room for %d floats, but this model's embeddings have %d", capacity, m->n_embd);
    cJSON *request_body = cJSON_CreateObject();
    if (request_body) {
        cJSON_AddStringToObject(request_body, "model", m->model_name);
        cJSON_AddItemToObject(request_body, "input", cJSON_CreateStringReference(text));
        cJSON_AddStringToObject(request_body, "encoding_format", "float");
    }
    char *body = request_body ? cJSON_PrintUnformatted(request_body) : NULL;
    cJSON_Delete(request_body);
    if (!body) return hr_fail(HR_ENOMEM, "out of memory building an embedding request for %s", m->url);
    struct request r;
    int rc = request_init(&r, m, "/v1/embeddings", m->timeout > 0 ? m->timeout : EMBED_SECONDS);
    if (rc != HR_OK) {
        free(body);
        return rc;
    }
    curl_easy_setopt(r.easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(r.easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    CURLcode result = curl_easy_perform(r.easy);
    free(body);
    if (r.status == 0) curl_easy_getinfo(r.easy, CURLINFO_RESPONSE_CODE, &r.status);
    if (r.failure) rc = hr_fail(r.failure, "%s", r.failure_text);
    else if (result != CURLE_OK) rc = unreachable(&r, result);
    else if (r.status != 200) rc = refused(&r, "POST /v1/embeddings");
    if (rc == HR_EINVAL && truncate)
        rc = hr_fail(HR_EINVAL, "%s (the fall-back server truncates long inputs itself, or refuses them)",
                     hr_last_error());
    cJSON *json = rc == HR_OK ? cJSON_ParseWithLength(r.body ? r.body : "", r.body_length) : NULL;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(json, "data");
    const cJSON *first = cJSON_IsArray(data) ? cJSON_GetArrayItem(data, 0) : NULL;
    const cJSON *vector = cJSON_GetObjectItemCaseSensitive(first, "embedding");
    if (rc == HR_OK && !cJSON_IsArray(vector))
        rc = hr_fail(HR_EFORMAT, "the fall-back endpoint %s answered POST /v1/embeddings without OpenAI's "
                     "data[0].embedding; is it an OpenAI-compatible server?", m->url);
    if (rc == HR_OK && cJSON_GetArraySize(vector) != m->n_embd)
        rc = hr_fail(HR_EFORMAT, "the fall-back endpoint %s sent an embedding of %d floats, but the local file "
                     "says '%s' gives %d: is it the same model?", m->url, cJSON_GetArraySize(vector),
                     m->model_name, m->n_embd);
    if (rc == HR_OK) {
        int32_t i = 0;
        double norm = 0;
        const cJSON *value;
        cJSON_ArrayForEach(value, vector) {
            if (!cJSON_IsNumber(value) || !isfinite(value->valuedouble)) {
                rc = hr_fail(HR_EFORMAT, "the fall-back endpoint %s sent an embedding with a value that is not "
                             "a finite number", m->url);
                break;
            }
            out[i++] = (float)value->valuedouble;
            norm += value->valuedouble * value->valuedouble;
        }
        norm = sqrt(norm);
        if (rc == HR_OK && normalize && norm > 0)
            for (i = 0; i < m->n_embd; i++) out[i] = (float)(out[i] / norm);
        int32_t tokens = positive_int(cJSON_GetObjectItemCaseSensitive(json, "usage"), "prompt_tokens");
        *n_tokens = tokens;
        *input_tokens = tokens;
    }
    cJSON_Delete(json);
    request_free(&r);
    return rc;
}

static const hr_engine_ops remote_ops = {
    .name = "remote",
    .load = remote_load,
    .unload = remote_unload,
    .get_info = remote_get_info,
    .apply_chat_template = remote_chat_template,
    .complete = remote_complete,
    .embed = remote_embed,
};

const hr_engine_ops *hr_engine_remote(void)
{
    return &remote_ops;
}
