/*
 * test_remote.c: the remote fall-back engine against a real OpenAI-compatible server: headroomd
 * itself, started on a loopback port with the tiny model. Greedy generation through the remote
 * equals what headroomd answers (and what the local engine makes); pieces stream; sessions, the
 * chat template and the metrics record work on a remote model; a cancel hangs up on the server;
 * an unreachable server, a wrong API key, an unknown model and a server killed mid-stream give
 * clear errors and no crash (run under ASan by `make test-asan` for leaks). What headroomd never
 * does (go silent, break a stream, send an error event, answer whole, be busy) a scripted peer on
 * a loopback socket does.
 * usage: test_remote HEADROOMD TINY_MODEL.gguf SCRATCH_DIR
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdatomic.h>

#include "headroom.h"

static const char *headroomd_path, *tiny_model, *scratch;

/* ---- headroomd as the remote ------------------------------------------------------------------ */

struct server {
    pid_t pid;
    char url[64];
};

/* Starts headroomd on a free loopback port with the tiny model and `extra` options; its output
 * goes to SCRATCH/NAME.out and .err. One decode thread: fast and deterministic on a busy host. */
static void start_server(struct server *s, const char *name, const char *extra_name, const char *extra_value)
{
    char out_path[4096], err_path[4096];
    snprintf(out_path, sizeof out_path, "%s/%s.out", scratch, name);
    snprintf(err_path, sizeof err_path, "%s/%s.err", scratch, name);
    unlink(out_path);   /* a previous server's address must not be read as this one's */
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* a test that fails half-way leaves no server behind */
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(out, 1);
        dup2(err, 2);
        const char *argv[16] = { headroomd_path, "--model", tiny_model, "--port", "0", "--threads", "1",
                                 "--ctx", "8192" };
        int argc = 9;
        if (extra_name) {
            argv[argc++] = extra_name;
            argv[argc++] = extra_value;
        }
        argv[argc] = NULL;
        execv(headroomd_path, (char **)argv);
        _exit(127);
    }
    /* its first line says where it listens: "headroomd: listening on http://127.0.0.1:PORT (...)" */
    for (int i = 0; i < 300; i++) {   /* 15 s: a sanitizer build starts slowly */
        FILE *f = fopen(out_path, "r");
        char line[512];
        int port = 0;
        if (f && fgets(line, sizeof line, f) && sscanf(line, "headroomd: listening on http://127.0.0.1:%d", &port) == 1) {
            fclose(f);
            snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", port);
            return;
        }
        if (f) fclose(f);
        assert_int_equal(waitpid(s->pid, NULL, WNOHANG), 0);   /* it must not have died */
        usleep(50000);
    }
    fail_msg("headroomd did not start within 15 s; see %s", err_path);
}

/* SIGTERM and its exit status: 0 for a clean stop (a sanitizer report makes it non-zero). */
static int stop_server(struct server *s)
{
    if (s->pid <= 0) return 0;
    kill(s->pid, SIGTERM);
    int status = 0;
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- plain HTTP from the test, to ask headroomd directly ----------------------------------- */

struct buffer {
    char *text;
    size_t length;
};

static size_t append_reply(char *data, size_t size, size_t count, void *user_data)
{
    struct buffer *b = user_data;
    b->text = realloc(b->text, b->length + size * count + 1);
    memcpy(b->text + b->length, data, size * count);
    b->length += size * count;
    b->text[b->length] = '\0';
    return size * count;
}

/* GET (body NULL) or POST `body`; returns the parsed JSON reply, which the caller deletes. */
static cJSON *http_json(const char *url, const char *body)
{
    CURL *easy = curl_easy_init();
    struct buffer reply = { 0 };
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, append_reply);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT, 60L);
    if (body) curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(easy);
    curl_slist_free_all(headers);
    curl_easy_cleanup(easy);
    assert_int_equal(rc, CURLE_OK);
    cJSON *json = cJSON_Parse(reply.text ? reply.text : "");
    free(reply.text);
    assert_non_null(json);
    return json;
}

/* Waits (up to 10 s) for headroomd's metrics to hold `count` records; returns the last one's
 * copy (the caller deletes it). */
static cJSON *server_record(const struct server *s, int count)
{
    char url[128];
    snprintf(url, sizeof url, "%s/api/generations", s->url);
    for (int i = 0; i < 200; i++) {
        cJSON *records = http_json(url, NULL);
        if (cJSON_GetArraySize(records) >= count) {
            cJSON *last = cJSON_Duplicate(cJSON_GetArrayItem(records, count - 1), 1);
            cJSON_Delete(records);
            return last;
        }
        cJSON_Delete(records);
        usleep(50000);
    }
    fail_msg("headroomd recorded fewer than %d generations in 10 s", count);
    return NULL;
}

/* ---- the fixture: one headroomd, one context ---------------------------------------------------- */

struct fixture {
    struct server server;
    hr_context *ctx;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    start_server(&f->server, "main", NULL, NULL);
    hr_context_params params = hr_context_default_params();
    params.monitor = false;
    params.metrics_capacity = 16;
    if (hr_context_create(&params, &f->ctx) != HR_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hr_context_free(f->ctx);
    int status = stop_server(&f->server);
    free(f);
    if (status != 0) fprintf(stderr, "headroomd exited with %d; see %s/main.err\n", status, scratch);
    return status == 0 ? 0 : -1;
}

static hr_remote_params remote_to(const struct server *s, const char *model)
{
    hr_remote_params remote = hr_remote_default_params();
    remote.url = s->url;
    remote.model = model;
    remote.timeout = 60;   /* a test that hangs fails instead */
    return remote;
}

static hr_model *open_remote(hr_context *ctx, const char *path, const hr_remote_params *remote)
{
    hr_model *model = NULL;
    int rc = hr_model_load_remote(ctx, path, remote, &model);
    if (rc != HR_OK) fail_msg("hr_model_load_remote: %s: %s", hr_strerror(rc), hr_last_error());
    return model;
}

struct collected {
    char text[65536];
    int pieces;
    bool all_valid;
    int stop_after;              /* return non-zero from this piece on; 0: never */
    pid_t kill_after_first;      /* SIGKILL this process when the first piece arrives */
};

static int collect(const char *piece, size_t length, void *user_data)
{
    struct collected *c = user_data;
    c->pieces++;
    if (!hr_utf8_valid(piece, length)) c->all_valid = false;
    size_t used = strlen(c->text);
    if (used + length < sizeof c->text) memcpy(c->text + used, piece, length + 1);
    if (c->kill_after_first && c->pieces == 1) kill(c->kill_after_first, SIGKILL);
    return c->stop_after && c->pieces >= c->stop_after;
}

static const char prompt[] = "Once upon a time";

/* A call that must succeed; when it does not, the failure shows the library's sentence. */
#define assert_ok(call)                                                                            \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != HR_OK) fail_msg("%s: %s: %s", #call, hr_strerror(rc_), hr_last_error());        \
    } while (0)

/* ---- what a remote model does ------------------------------------------------------------------ */

static void remote_generation_equals_what_headroomd_and_the_local_engine_make(void **state)
{
    struct fixture *f = *state;
    hr_remote_params remote = remote_to(&f->server, "tiny");
    hr_model *model = open_remote(f->ctx, tiny_model, &remote);
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 24;
    params.temperature = 0;
    params.seed = 7;
    struct collected c = { .all_valid = true };
    hr_generation_stats stats;
    assert_ok(hr_generate(model, prompt, &params, collect, &c, &stats));
    assert_true(c.pieces > 1);              /* streamed, not one block at the end */
    assert_true(c.all_valid);
    assert_true(strlen(c.text) > 0);
    assert_int_equal(stats.generated_tokens, 24);   /* the server's usage */
    assert_true(stats.prompt_tokens > 0);
    assert_int_equal(stats.stop_reason, HR_STOP_MAX_TOKENS);

    /* what headroomd answers for the same request, whole */
    char url[128], body[256];
    snprintf(url, sizeof url, "%s/v1/completions", f->server.url);
    snprintf(body, sizeof body, "{\"model\":\"tiny\",\"prompt\":\"%s\",\"max_tokens\":24,\"temperature\":0,\"seed\":7}", prompt);
    cJSON *reply = http_json(url, body);
    const cJSON *text = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(reply, "choices"), 0), "text");
    assert_true(cJSON_IsString(text));
    assert_string_equal(c.text, text->valuestring);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(reply, "usage"), "prompt_tokens")->valueint,
                     stats.prompt_tokens);
    cJSON_Delete(reply);

    /* and what the local engine makes with the server's settings */
    hr_model_params local_params = hr_model_default_params();
    local_params.n_threads = 1;
    local_params.n_ctx = 8192;
    hr_model *local = NULL;
    assert_int_equal(hr_model_load(f->ctx, tiny_model, &local_params, &local), HR_OK);
    struct collected here = { .all_valid = true };
    assert_ok(hr_generate(local, prompt, &params, collect, &here, NULL));
    assert_string_equal(here.text, c.text);
    hr_model_free(local);

    /* the metrics record says who served it */
    hr_generation_record records[4];
    assert_int_equal(hr_metrics_records(f->ctx, records, 4), 2);
    assert_string_equal(records[0].served_by, "fallback");
    assert_string_equal(records[0].model, "tiny");
    assert_int_equal(records[0].generated_tokens, 24);
    assert_int_equal(records[0].result, HR_OK);
    assert_string_equal(records[1].served_by, "local");
    hr_model_free(model);
}

static void a_remote_model_describes_itself_and_formats_chats_from_the_local_file(void **state)
{
    struct fixture *f = *state;
    char url_with_v1[96];
    snprintf(url_with_v1, sizeof url_with_v1, "%s/v1/", f->server.url);   /* an OpenAI client's base URL */
    hr_remote_params remote = remote_to(&f->server, "tiny");
    remote.url = url_with_v1;
    hr_model *model = open_remote(f->ctx, tiny_model, &remote);
    hr_model_info info;
    assert_int_equal(hr_model_get_info(model, &info), HR_OK);
    assert_true(info.remote);
    assert_string_equal(info.endpoint, f->server.url);   /* without the /v1/ */
    assert_non_null(strstr(info.description, "remote: "));
    assert_non_null(strstr(info.description, "tiny"));
    assert_int_equal(info.weight_bytes, 0);               /* nothing held here */
    assert_true(info.n_ctx_train > 0);                    /* from the local file's header */

    hr_model *local = NULL;
    assert_int_equal(hr_model_load(f->ctx, tiny_model, NULL, &local), HR_OK);
    hr_model_info local_info;
    assert_int_equal(hr_model_get_info(local, &local_info), HR_OK);
    assert_string_equal(info.name, local_info.name);      /* general.name */
    assert_false(local_info.remote);
    assert_string_equal(local_info.endpoint, "");

    hr_chat_message chat[] = { { "system", "Be brief." }, { "user", "Hello there" } };
    char *remote_text = NULL, *local_text = NULL;
    assert_int_equal(hr_model_apply_chat_template(model, chat, 2, true, &remote_text), HR_OK);
    assert_int_equal(hr_model_apply_chat_template(local, chat, 2, true, &local_text), HR_OK);
    assert_string_equal(remote_text, local_text);
    assert_non_null(strstr(remote_text, "Hello there"));
    hr_free(remote_text);
    hr_free(local_text);
    hr_model_free(local);
    hr_model_free(model);

    /* without a local file there is no template to use */
    model = open_remote(f->ctx, NULL, &remote);
    assert_int_equal(hr_model_apply_chat_template(model, chat, 2, true, &remote_text), HR_ENOTSUP);
    assert_null(remote_text);
    assert_non_null(strstr(hr_last_error(), "without a local model file"));
    assert_int_equal(hr_model_get_info(model, &info), HR_OK);
    assert_string_equal(info.name, "tiny");               /* the remote model's name stands in */
    hr_model_free(model);
}

static void sessions_on_a_remote_model_stream_the_same_text(void **state)
{
    struct fixture *f = *state;
    hr_remote_params remote = remote_to(&f->server, "tiny");
    hr_model *model = open_remote(f->ctx, tiny_model, &remote);
    hr_session_params params = hr_session_default_params();
    params.generate.max_tokens = 20;
    params.generate.temperature = 0;
    params.queue_capacity = 2;   /* the worker waits for the reader: backpressure over HTTP too */
    params.client = "remote-test";
    hr_session *first = NULL, *second = NULL;
    assert_ok(hr_session_start(model, prompt, &params, &first));
    assert_ok(hr_session_start(model, prompt, &params, &second));   /* queued behind */
    char texts[2][8192] = { "", "" }, buffer[64];
    size_t length;
    int rc, pieces = 0;
    hr_session *sessions[2] = { first, second };
    for (int i = 0; i < 2; i++) {
        while ((rc = hr_session_read(sessions[i], buffer, sizeof buffer, &length, 30.0)) == HR_OK) {
            strcat(texts[i], buffer);
            pieces++;
        }
        if (rc != HR_EOF) fail_msg("session %d: %s: %s", i, hr_strerror(rc), hr_last_error());
        hr_generation_stats stats;
        assert_int_equal(hr_session_stats(sessions[i], &stats), HR_OK);
        assert_int_equal(stats.generated_tokens, 20);
        hr_session_free(sessions[i]);
    }
    assert_true(pieces > 2);
    assert_string_equal(texts[0], texts[1]);

    struct collected direct = { .all_valid = true };
    assert_ok(hr_generate(model, prompt, &params.generate, collect, &direct, NULL));
    assert_string_equal(texts[0], direct.text);
    hr_generation_record record;
    assert_int_equal(hr_metrics_records(f->ctx, &record, 1), 1);   /* the newest */
    assert_string_equal(record.served_by, "fallback");
    hr_model_free(model);
}

static void a_piece_callback_that_stops_hangs_up_on_the_server(void **state)
{
    struct fixture *f = *state;
    hr_remote_params remote = remote_to(&f->server, "tiny");
    hr_model *model = open_remote(f->ctx, NULL, &remote);
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 8000;
    struct collected c = { .all_valid = true, .stop_after = 3 };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(model, "Tell me a very long story", &params, collect, &c, &stats), HR_ECANCELLED);
    assert_int_equal(c.pieces, 3);
    assert_int_equal(stats.stop_reason, HR_STOP_CANCELLED);
    /* headroomd saw the hang-up and cancelled its generation long before 8000 tokens */
    cJSON *record = server_record(&f->server, 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(record, "cancelled")));
    assert_true(cJSON_GetObjectItem(record, "generated_tokens")->valueint < 8000);
    cJSON_Delete(record);

    /* the model goes on working after a hang-up */
    params.max_tokens = 4;
    struct collected again = { .all_valid = true };
    assert_ok(hr_generate(model, prompt, &params, collect, &again, &stats));
    assert_int_equal(stats.generated_tokens, 4);
    hr_model_free(model);
}

static void cancelling_a_session_and_unloading_mid_stream_stop_the_server_too(void **state)
{
    struct fixture *f = *state;
    hr_remote_params remote = remote_to(&f->server, "tiny");
    hr_model *model = open_remote(f->ctx, NULL, &remote);
    hr_session_params params = hr_session_default_params();
    params.generate.max_tokens = 8000;
    char buffer[64];
    size_t length;

    hr_session *s = NULL;
    assert_ok(hr_session_start(model, "Go on and on", &params, &s));
    assert_int_equal(hr_session_read(s, buffer, sizeof buffer, &length, 30.0), HR_OK);
    hr_session_cancel(s);   /* raises the model's cancel flag: the request is dropped */
    assert_int_equal(hr_session_read(s, buffer, sizeof buffer, &length, 1.0), HR_ECANCELLED);
    hr_session_free(s);
    cJSON *record = server_record(&f->server, 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(record, "cancelled")));
    cJSON_Delete(record);

    /* hr_model_free with a stream in flight whose reader stopped reading: the worker's request
     * is dropped and the worker joined, without waiting for the reader */
    params.queue_capacity = 2;
    assert_ok(hr_session_start(model, "Go on and on", &params, &s));
    assert_int_equal(hr_session_read(s, buffer, sizeof buffer, &length, 30.0), HR_OK);
    hr_generation_stats stats = { 0 };
    for (int i = 0; i < 500 && stats.generated_tokens < 1 + params.queue_capacity; i++) {
        assert_int_equal(hr_session_stats(s, &stats), HR_OK);
        usleep(10000);
    }
    assert_int_equal(stats.generated_tokens, 1 + params.queue_capacity);   /* the queue is full */
    hr_model_free(model);
    int rc;
    while ((rc = hr_session_read(s, buffer, sizeof buffer, &length, 5.0)) == HR_OK) continue;
    assert_int_equal(rc, HR_ECANCELLED);
    hr_session_free(s);
    record = server_record(&f->server, 2);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(record, "cancelled")));
    assert_true(cJSON_GetObjectItem(record, "generated_tokens")->valueint < 8000);
    cJSON_Delete(record);
}

/* ---- what goes wrong, said clearly ------------------------------------------------------------ */

/* A loopback port nobody listens on: bound, then closed. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(fd, (struct sockaddr *)&address, sizeof address), 0);
    socklen_t size = sizeof address;
    getsockname(fd, (struct sockaddr *)&address, &size);
    close(fd);
    return ntohs(address.sin_port);
}

static void an_unreachable_server_is_said_so_with_what_to_check(void **state)
{
    struct fixture *f = *state;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", free_port());
    hr_remote_params remote = hr_remote_default_params();
    remote.url = url;
    remote.model = "tiny";
    hr_model *model = (hr_model *)1;
    assert_int_equal(hr_model_load_remote(f->ctx, tiny_model, &remote, &model), HR_EIO);
    assert_null(model);
    assert_non_null(strstr(hr_last_error(), "is unreachable"));
    assert_non_null(strstr(hr_last_error(), url));
    assert_non_null(strstr(hr_last_error(), "--fallback-url"));
}

static void a_wrong_or_missing_api_key_is_refused_and_the_right_one_works(void **state)
{
    struct fixture *f = *state;
    struct server guarded;
    start_server(&guarded, "guarded", "--api-key", "s3cret");
    hr_remote_params remote = remote_to(&guarded, "tiny");
    hr_model *model = NULL;
    remote.api_key = "wrong";
    assert_int_equal(hr_model_load_remote(f->ctx, NULL, &remote, &model), HR_EACCES);
    assert_non_null(strstr(hr_last_error(), "rejected the API key"));
    assert_null(strstr(hr_last_error(), "wrong"));   /* the key is never repeated back */
    remote.api_key = NULL;
    assert_int_equal(hr_model_load_remote(f->ctx, NULL, &remote, &model), HR_EACCES);
    assert_non_null(strstr(hr_last_error(), "requires an API key"));
    remote.api_key = "bad\r\nX-Injected: 1";
    assert_int_equal(hr_model_load_remote(f->ctx, NULL, &remote, &model), HR_EINVAL);

    remote.api_key = "s3cret";
    model = open_remote(f->ctx, NULL, &remote);
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 4;
    struct collected c = { .all_valid = true };
    assert_ok(hr_generate(model, prompt, &params, collect, &c, NULL));
    assert_true(c.pieces > 0);
    hr_model_free(model);
    assert_int_equal(stop_server(&guarded), 0);
}

static void an_unknown_model_is_refused_with_what_the_server_serves(void **state)
{
    struct fixture *f = *state;
    hr_remote_params remote = remote_to(&f->server, "no-such-model");
    hr_model *model = NULL;
    assert_int_equal(hr_model_load_remote(f->ctx, tiny_model, &remote, &model), HR_ENOENT);
    assert_null(model);
    assert_non_null(strstr(hr_last_error(), "does not serve model 'no-such-model'"));
    assert_non_null(strstr(hr_last_error(), "it serves: tiny"));
}

static void bad_parameters_are_refused_before_any_request(void **state)
{
    struct fixture *f = *state;
    hr_model *model = NULL;
    hr_remote_params remote = remote_to(&f->server, "tiny");
    remote.url = "ftp://127.0.0.1:1";
    assert_int_equal(hr_model_load_remote(f->ctx, NULL, &remote, &model), HR_EINVAL);
    assert_non_null(strstr(hr_last_error(), "http://"));
    remote.url = "";
    assert_int_equal(hr_model_load_remote(f->ctx, NULL, &remote, &model), HR_EINVAL);
    assert_non_null(strstr(hr_last_error(), "--fallback-url"));
    remote = remote_to(&f->server, NULL);
    assert_int_equal(hr_model_load_remote(f->ctx, NULL, &remote, &model), HR_EINVAL);
    assert_non_null(strstr(hr_last_error(), "--fallback-model"));
    remote = remote_to(&f->server, "tiny");
    remote.connect_timeout = -1;
    assert_int_equal(hr_model_load_remote(f->ctx, NULL, &remote, &model), HR_EINVAL);
    remote = remote_to(&f->server, "tiny");
    assert_int_equal(hr_model_load_remote(f->ctx, "/nonexistent/model.gguf", &remote, &model), HR_ENOENT);
    assert_int_equal(hr_model_load_remote(NULL, NULL, &remote, &model), HR_EINVAL);
    assert_int_equal(hr_model_load_remote(f->ctx, NULL, NULL, &model), HR_EINVAL);
    assert_null(model);
}

static void a_server_killed_mid_stream_is_an_error_not_a_crash(void **state)
{
    struct fixture *f = *state;
    struct server doomed;
    start_server(&doomed, "doomed", NULL, NULL);
    hr_remote_params remote = remote_to(&doomed, "tiny");
    hr_model *model = open_remote(f->ctx, NULL, &remote);
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 8000;
    struct collected c = { .all_valid = true, .kill_after_first = doomed.pid };
    hr_generation_stats stats;
    int rc = hr_generate(model, "Tell me a very long story", &params, collect, &c, &stats);
    waitpid(doomed.pid, NULL, 0);
    doomed.pid = 0;
    assert_int_equal(rc, HR_EIO);
    assert_non_null(strstr(hr_last_error(), "broke off the stream"));
    assert_true(c.pieces >= 1);
    assert_int_equal(stats.stop_reason, HR_STOP_NONE);
    hr_generation_record record;
    assert_int_equal(hr_metrics_records(f->ctx, &record, 1), 1);
    assert_int_equal(record.result, HR_EIO);
    /* the next request finds nobody there */
    params.max_tokens = 4;
    assert_int_equal(hr_generate(model, prompt, &params, collect, &c, NULL), HR_EIO);
    assert_non_null(strstr(hr_last_error(), "is unreachable"));
    hr_model_free(model);
}

/* ---- a scripted peer, for what headroomd never does --------------------------------------------
 * A server that goes silent, breaks its stream, sends an error event, ignores "stream": true, or
 * is busy: a loopback socket that answers GET /v1/models with one model ("m") and any other
 * request with the bytes of `reply`, then closes or holds the connection until the client hangs
 * up. It records the last request, to check what the engine sends. */

struct peer {
    int listener;
    char url[64];
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock;        /* guards the fields below */
    const char *reply;           /* raw HTTP response to a completion */
    bool hold;                   /* keep the connection open after the reply, until a hang-up */
    char request[8192];          /* the last completion request, headers and body */
    bool saw_hangup;             /* the client closed a held connection */
};

/* Reads a request (headers, then Content-Length bytes of body) into `out`; false on EOF. */
static bool read_request(int fd, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (;;) {
        char *end = strstr(out, "\r\n\r\n");
        if (end) {
            const char *field = strcasestr(out, "Content-Length:");
            size_t body = field ? strtoul(field + 15, NULL, 10) : 0;
            if (used >= (size_t)(end + 4 - out) + body) return true;
        }
        if (used + 1 >= size) return true;
        ssize_t n = recv(fd, out + used, size - 1 - used, 0);
        if (n <= 0) return false;
        used += (size_t)n;
        out[used] = '\0';
    }
}

static void send_all(int fd, const char *text)
{
    size_t length = strlen(text);
    while (length > 0) {
        ssize_t n = send(fd, text, length, MSG_NOSIGNAL);
        if (n <= 0) return;
        text += n;
        length -= (size_t)n;
    }
}

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    static const char list[] = "{\"object\":\"list\",\"data\":[{\"id\":\"m\",\"max_model_len\":4096}]}";
    char models[512];
    snprintf(models, sizeof models, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n%s", strlen(list), list);
    while (!atomic_load(&p->stop)) {
        struct pollfd waiting = { .fd = p->listener, .events = POLLIN };
        if (poll(&waiting, 1, 50) <= 0) continue;
        int fd = accept(p->listener, NULL, NULL);
        if (fd < 0) continue;
        char request[8192];
        if (read_request(fd, request, sizeof request)) {
            if (strncmp(request, "GET /v1/models ", 15) == 0) {
                send_all(fd, models);
            } else {
                pthread_mutex_lock(&p->lock);
                snprintf(p->request, sizeof p->request, "%s", request);
                const char *reply = p->reply;
                bool hold = p->hold;
                pthread_mutex_unlock(&p->lock);
                send_all(fd, reply);
                /* held: wait (at most 10 s) for the client to hang up */
                for (int i = 0; hold && i < 200 && !atomic_load(&p->stop); i++) {
                    struct pollfd open_fd = { .fd = fd, .events = POLLIN };
                    char byte;
                    if (poll(&open_fd, 1, 50) > 0 && recv(fd, &byte, 1, 0) <= 0) {
                        pthread_mutex_lock(&p->lock);
                        p->saw_hangup = true;
                        pthread_mutex_unlock(&p->lock);
                        break;
                    }
                }
            }
        }
        close(fd);
    }
    return NULL;
}

static struct peer *peer_start(void)
{
    struct peer *p = calloc(1, sizeof *p);
    p->listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(p->listener, (struct sockaddr *)&address, sizeof address), 0);
    assert_int_equal(listen(p->listener, 8), 0);
    socklen_t size = sizeof address;
    getsockname(p->listener, (struct sockaddr *)&address, &size);
    snprintf(p->url, sizeof p->url, "http://127.0.0.1:%d", ntohs(address.sin_port));
    atomic_init(&p->stop, false);
    pthread_mutex_init(&p->lock, NULL);
    p->reply = "";
    pthread_create(&p->thread, NULL, peer_main, p);
    return p;
}

static void peer_script(struct peer *p, const char *reply, bool hold)
{
    pthread_mutex_lock(&p->lock);
    p->reply = reply;
    p->hold = hold;
    p->saw_hangup = false;
    p->request[0] = '\0';
    pthread_mutex_unlock(&p->lock);
}

static bool peer_saw_hangup(struct peer *p)
{
    for (int i = 0; i < 200; i++) {   /* up to 10 s */
        pthread_mutex_lock(&p->lock);
        bool seen = p->saw_hangup;
        pthread_mutex_unlock(&p->lock);
        if (seen) return true;
        usleep(50000);
    }
    return false;
}

static void peer_stop(struct peer *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    close(p->listener);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

#define SSE_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"

struct peer_fixture {
    struct peer *peer;
    hr_context *ctx;
    hr_model *model;
};

static int peer_setup(void **state)
{
    struct peer_fixture *f = calloc(1, sizeof *f);
    f->peer = peer_start();
    hr_context_params params = hr_context_default_params();
    params.monitor = false;
    if (hr_context_create(&params, &f->ctx) != HR_OK) return -1;
    hr_remote_params remote = hr_remote_default_params();
    remote.url = f->peer->url;
    remote.model = "m";
    remote.api_key = "k";
    remote.timeout = 30;
    if (hr_model_load_remote(f->ctx, NULL, &remote, &f->model) != HR_OK) {
        fprintf(stderr, "load: %s\n", hr_last_error());
        return -1;
    }
    *state = f;
    return 0;
}

static int peer_teardown(void **state)
{
    struct peer_fixture *f = *state;
    hr_model_free(f->model);
    hr_context_free(f->ctx);
    peer_stop(f->peer);
    free(f);
    return 0;
}

static void the_request_is_openais_streamed_completion_with_the_callers_settings(void **state)
{
    struct peer_fixture *f = *state;
    peer_script(f->peer, SSE_HEAD
                "data: {\"choices\":[{\"text\":\"Hi\",\"finish_reason\":null}]}\n\n"
                "data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"stop\"}]}\n\n"
                "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n"
                "data: [DONE]\n\n", false);
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 5;
    params.temperature = 0.7f;
    params.top_k = 11;
    params.seed = 12345678901234567ULL;   /* more than a double holds exactly */
    struct collected c = { .all_valid = true };
    hr_generation_stats stats;
    assert_ok(hr_generate(f->model, "say \"hi\"\n", &params, collect, &c, &stats));
    assert_string_equal(c.text, "Hi");
    assert_int_equal(stats.prompt_tokens, 3);
    assert_int_equal(stats.generated_tokens, 1);
    assert_int_equal(stats.stop_reason, HR_STOP_END_OF_TEXT);

    pthread_mutex_lock(&f->peer->lock);
    char request[8192];
    snprintf(request, sizeof request, "%s", f->peer->request);
    pthread_mutex_unlock(&f->peer->lock);
    assert_true(strncmp(request, "POST /v1/completions HTTP/1.1\r\n", 31) == 0);
    assert_non_null(strcasestr(request, "\r\nAuthorization: Bearer k\r\n"));
    cJSON *body = cJSON_Parse(strstr(request, "\r\n\r\n") + 4);
    assert_non_null(body);
    assert_string_equal(cJSON_GetObjectItem(body, "model")->valuestring, "m");
    assert_string_equal(cJSON_GetObjectItem(body, "prompt")->valuestring, "say \"hi\"\n");
    assert_int_equal(cJSON_GetObjectItem(body, "max_tokens")->valueint, 5);
    assert_true(cJSON_GetObjectItem(body, "temperature")->valuedouble == 0.7);
    assert_int_equal(cJSON_GetObjectItem(body, "top_k")->valueint, 11);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(body, "stream")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(body, "stream_options"), "include_usage")));
    cJSON_Delete(body);
    assert_non_null(strstr(request, "\"seed\":12345678901234567"));

    hr_model_info info;
    assert_int_equal(hr_model_get_info(f->model, &info), HR_OK);
    assert_int_equal(info.n_ctx, 4096);   /* the server's max_model_len */
    assert_string_equal(info.name, "m");
}

struct canceller {
    hr_model *model;
    struct peer *peer;
    pthread_t thread;
};

/* Cancels once the peer holds the completion request (then 0.2 s more): a cancel before the
 * request is sent leaves no connection to hang up, which a slow (sanitized) build can reach. */
static void *cancel_soon(void *arg)
{
    struct canceller *c = arg;
    for (int i = 0; i < 200; i++) {   /* up to 10 s */
        pthread_mutex_lock(&c->peer->lock);
        bool asked = c->peer->request[0] != '\0';
        pthread_mutex_unlock(&c->peer->lock);
        if (asked) break;
        usleep(50000);
    }
    usleep(200000);
    hr_model_cancel(c->model);
    return NULL;
}

static void a_cancel_while_the_server_is_silent_hangs_up(void **state)
{
    struct peer_fixture *f = *state;
    peer_script(f->peer, SSE_HEAD ": keep-alive\n\n", true);   /* then nothing: a long prompt, say */
    struct canceller canceller = { .model = f->model, .peer = f->peer };
    pthread_create(&canceller.thread, NULL, cancel_soon, &canceller);
    struct collected c = { .all_valid = true };
    hr_generation_stats stats;
    assert_int_equal(hr_generate(f->model, "p", NULL, collect, &c, &stats), HR_ECANCELLED);
    pthread_join(canceller.thread, NULL);
    assert_int_equal(c.pieces, 0);
    assert_int_equal(stats.stop_reason, HR_STOP_CANCELLED);
    assert_true(peer_saw_hangup(f->peer));
}

static void a_silent_server_runs_into_the_timeout(void **state)
{
    struct peer_fixture *f = *state;
    hr_model_free(f->model);
    hr_remote_params remote = hr_remote_default_params();
    remote.url = f->peer->url;
    remote.model = "m";
    remote.timeout = 0.5;
    assert_int_equal(hr_model_load_remote(f->ctx, NULL, &remote, &f->model), HR_OK);
    peer_script(f->peer, SSE_HEAD "data: {\"choices\":[{\"text\":\"a\"}]}\n\n", true);
    struct collected c = { .all_valid = true };
    assert_int_equal(hr_generate(f->model, "p", NULL, collect, &c, NULL), HR_EIO);
    assert_non_null(strstr(hr_last_error(), "did not finish within the request timeout of 0.5 s (1 pieces had arrived)"));
    assert_string_equal(c.text, "a");
}

static void broken_streams_are_errors_with_the_servers_words(void **state)
{
    struct peer_fixture *f = *state;
    struct collected c = { .all_valid = true };

    peer_script(f->peer, SSE_HEAD "data: {\"choices\":[{\"text\":\"a\"}]}\n\n", false);   /* closes early */
    assert_int_equal(hr_generate(f->model, "p", NULL, collect, &c, NULL), HR_EIO);
    assert_non_null(strstr(hr_last_error(), "without finishing it"));

    peer_script(f->peer, SSE_HEAD "data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: <html>oops\n\n", false);
    assert_int_equal(hr_generate(f->model, "p", NULL, collect, &c, NULL), HR_EFORMAT);
    assert_non_null(strstr(hr_last_error(), "not JSON: '<html>oops'"));

    peer_script(f->peer, SSE_HEAD "data: {\"error\":{\"message\":\"the server ran out of memory\"}}\n\n", false);
    assert_int_equal(hr_generate(f->model, "p", NULL, collect, &c, NULL), HR_EENGINE);
    assert_non_null(strstr(hr_last_error(), "the server ran out of memory"));

    peer_script(f->peer, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                         "{\"error\":{\"message\":\"memory pressure is critical\"}}", false);
    assert_int_equal(hr_generate(f->model, "p", NULL, collect, &c, NULL), HR_EBUSY);
    assert_non_null(strstr(hr_last_error(), "memory pressure is critical"));

    peer_script(f->peer, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                         "prompt too long\n", false);
    assert_int_equal(hr_generate(f->model, "p", NULL, collect, &c, NULL), HR_EINVAL);
    assert_non_null(strstr(hr_last_error(), "prompt too long"));
}

static void other_reply_shapes_are_understood(void **state)
{
    struct peer_fixture *f = *state;
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 50;

    /* a server that ignores "stream": true and answers whole */
    peer_script(f->peer, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                         "{\"choices\":[{\"text\":\"all at once\",\"finish_reason\":\"length\"}],"
                         "\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":50}}", false);
    struct collected whole = { .all_valid = true };
    hr_generation_stats stats;
    assert_ok(hr_generate(f->model, "p", &params, collect, &whole, &stats));
    assert_string_equal(whole.text, "all at once");
    assert_int_equal(stats.generated_tokens, 50);
    assert_int_equal(stats.stop_reason, HR_STOP_MAX_TOKENS);

    /* chat-shaped deltas, CRLF line ends, a "length" that came before max_tokens: context full */
    peer_script(f->peer, SSE_HEAD
                "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\r\n\r\n"
                "data: {\"choices\":[{\"delta\":{\"content\":\"y\"},\"finish_reason\":\"length\"}],"
                "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\r\n\r\n"
                "data: [DONE]\r\n\r\n", false);
    struct collected chat = { .all_valid = true };
    assert_ok(hr_generate(f->model, "p", &params, collect, &chat, &stats));
    assert_string_equal(chat.text, "xy");
    assert_int_equal(stats.stop_reason, HR_STOP_CONTEXT_FULL);

    /* no usage: the chunks are counted */
    peer_script(f->peer, SSE_HEAD "data: {\"choices\":[{\"text\":\"1\"}]}\n\ndata: {\"choices\":[{\"text\":\"2\"}]}\n\n"
                                  "data: [DONE]\n\n", false);
    struct collected counted = { .all_valid = true };
    assert_ok(hr_generate(f->model, "p", &params, collect, &counted, &stats));
    assert_int_equal(stats.generated_tokens, 2);
    assert_int_equal(stats.prompt_tokens, 0);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s HEADROOMD TINY_MODEL.gguf SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    headroomd_path = argv[1];
    tiny_model = argv[2];
    scratch = argv[3];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(remote_generation_equals_what_headroomd_and_the_local_engine_make, setup, teardown),
        cmocka_unit_test_setup_teardown(a_remote_model_describes_itself_and_formats_chats_from_the_local_file, setup, teardown),
        cmocka_unit_test_setup_teardown(sessions_on_a_remote_model_stream_the_same_text, setup, teardown),
        cmocka_unit_test_setup_teardown(a_piece_callback_that_stops_hangs_up_on_the_server, setup, teardown),
        cmocka_unit_test_setup_teardown(cancelling_a_session_and_unloading_mid_stream_stop_the_server_too, setup, teardown),
        cmocka_unit_test_setup_teardown(an_unreachable_server_is_said_so_with_what_to_check, setup, teardown),
        cmocka_unit_test_setup_teardown(a_wrong_or_missing_api_key_is_refused_and_the_right_one_works, setup, teardown),
        cmocka_unit_test_setup_teardown(an_unknown_model_is_refused_with_what_the_server_serves, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_parameters_are_refused_before_any_request, setup, teardown),
        cmocka_unit_test_setup_teardown(a_server_killed_mid_stream_is_an_error_not_a_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(the_request_is_openais_streamed_completion_with_the_callers_settings,
                                        peer_setup, peer_teardown),
        cmocka_unit_test_setup_teardown(a_cancel_while_the_server_is_silent_hangs_up, peer_setup, peer_teardown),
        cmocka_unit_test_setup_teardown(a_silent_server_runs_into_the_timeout, peer_setup, peer_teardown),
        cmocka_unit_test_setup_teardown(broken_streams_are_errors_with_the_servers_words, peer_setup, peer_teardown),
        cmocka_unit_test_setup_teardown(other_reply_shapes_are_understood, peer_setup, peer_teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
