/*
 * client.c: the CLI's way to a running headroomd (`headroom ps`, `load`, `unload`, `top`): one
 * HTTP request at a time with libcurl, to HEADROOM_HOST (as Ollama's OLLAMA_HOST: "host",
 * "host:port" or a URL; default http://127.0.0.1:11435), with HEADROOM_API_KEY as the bearer key.
 * Failures come back as one sentence a person can act on. This is the tool's, not the library's:
 * libheadroom runs models; a client of headroomd's HTTP API is a user of it, as curl's tool is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "client.h"

const char *client_base_url(char *buffer, size_t size)
{
    const char *host = getenv("HEADROOM_HOST");
    const char *port = getenv("HEADROOM_PORT");
    if (!port || !*port) port = "11435";
    if (!host || !*host) host = "127.0.0.1";
    const char *scheme = strstr(host, "://") ? "" : "http://";
    /* the port is there when the part after the scheme has a ':' after its last ']' (IPv6) */
    const char *authority = strstr(host, "://") ? strstr(host, "://") + 3 : host;
    const char *bracket = strrchr(authority, ']');
    const char *colon = strchr(bracket ? bracket : authority, ':');
    bool bare_ipv6 = !bracket && colon && strchr(colon + 1, ':');
    if (bare_ipv6) snprintf(buffer, size, "%s[%s]:%s", scheme, authority, port);
    else if (colon) snprintf(buffer, size, "%s%s", scheme, host);
    else snprintf(buffer, size, "%s%s:%s", scheme, host, port);
    size_t length = strlen(buffer);
    while (length > 0 && buffer[length - 1] == '/') buffer[--length] = '\0';
    return buffer;
}

struct growing {
    char *text;
    size_t length;
};

static size_t collect(char *data, size_t size, size_t count, void *user_data)
{
    struct growing *g = user_data;
    size_t n = size * count;
    char *bigger = realloc(g->text, g->length + n + 1);
    if (!bigger) return 0;
    g->text = bigger;
    memcpy(g->text + g->length, data, n);
    g->length += n;
    g->text[g->length] = '\0';
    return n;
}

int client_request(const char *method, const char *path, const char *body, double timeout_seconds,
                   cJSON **reply, char *error, size_t error_size)
{
    static bool initialized;
    if (!initialized) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        initialized = true;
    }
    char base[1024], url[1400];
    client_base_url(base, sizeof base);
    snprintf(url, sizeof url, "%s%s", base, path);
    *reply = NULL;
    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(error, error_size, "cannot start an HTTP client (out of memory)");
        return -1;
    }
    struct growing got = { 0 };
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    const char *key = getenv("HEADROOM_API_KEY");
    char authorization[400];
    if (key && *key) {
        snprintf(authorization, sizeof authorization, "Authorization: Bearer %s", key);
        headers = curl_slist_append(headers, authorization);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    if (timeout_seconds > 0) curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(timeout_seconds * 1000));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK) {
        if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_OPERATION_TIMEDOUT)
            snprintf(error, error_size, "no headroomd answers at %s (%s); start one with 'headroomd --model "
                     "PATH', or point HEADROOM_HOST at it", base, curl_easy_strerror(rc));
        else snprintf(error, error_size, "the request to %s failed: %s", base, curl_easy_strerror(rc));
        free(got.text);
        return -1;
    }
    cJSON *json = got.text ? cJSON_Parse(got.text) : NULL;
    if (status == 401) {
        snprintf(error, error_size, "headroomd at %s needs an API key; set HEADROOM_API_KEY to the one it was "
                 "started with (--api-key)", base);
        cJSON_Delete(json);
        free(got.text);
        return (int)status;
    }
    if (status >= 400) {
        /* the server's own sentence: Ollama's {"error":"..."} or OpenAI's {"error":{"message"}} */
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(json, "error");
        const cJSON *message = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : e;
        snprintf(error, error_size, "%s", cJSON_IsString(message) ? message->valuestring : "headroomd answered an error");
        if (!cJSON_IsString(message)) snprintf(error, error_size, "headroomd at %s answered HTTP %ld", base, status);
        cJSON_Delete(json);
        free(got.text);
        return (int)status;
    }
    if (!json) {
        snprintf(error, error_size, "%s%s did not answer JSON: is it a headroomd?", base, path);
        free(got.text);
        return -1;
    }
    free(got.text);
    *reply = json;
    return (int)status;
}
