/*
 * test_session.c: sessions on the real engine with the tiny model: pieces through the bounded
 * queue, backpressure (a reader that stops reading stops generation), cancellation, order of
 * queued sessions, unloading with sessions in flight, and the metrics ring.
 * usage: test_session TINY_MODEL.gguf
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "headroom.h"

static const char *tiny_model;

struct fixture {
    hr_context *ctx;
    hr_model *model;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    hr_context_params params = hr_context_default_params();
    params.monitor = false;
    params.metrics_capacity = 8;
    if (hr_context_create(&params, &f->ctx) != HR_OK) return -1;
    if (hr_model_load(f->ctx, tiny_model, NULL, &f->model) != HR_OK) {
        fprintf(stderr, "load: %s\n", hr_last_error());
        return -1;
    }
    *state = f;
    return 0;
}

/* One slot: sessions take the model in turn, as an engine that cannot batch runs them. */
static int setup_one_slot(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    hr_context_params params = hr_context_default_params();
    params.monitor = false;
    params.metrics_capacity = 8;
    if (hr_context_create(&params, &f->ctx) != HR_OK) return -1;
    hr_model_params model_params = hr_model_default_params();
    model_params.slots = 1;
    if (hr_model_load(f->ctx, tiny_model, &model_params, &f->model) != HR_OK) {
        fprintf(stderr, "load: %s\n", hr_last_error());
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hr_model_free(f->model);
    hr_context_free(f->ctx);
    free(f);
    return 0;
}

static int collect(const char *piece, size_t length, void *user_data)
{
    strncat(user_data, piece, length);
    return 0;
}

/* Reads a session to its end into `text`; returns the final code (HR_EOF on success). */
static int read_all(hr_session *s, char *text, size_t size, int *pieces)
{
    char buffer[64];
    size_t length;
    int rc;
    text[0] = '\0';
    while ((rc = hr_session_read(s, buffer, sizeof buffer, &length, 60.0)) == HR_OK) {
        if (strlen(text) + length < size) strcat(text, buffer);
        if (pieces) (*pieces)++;
    }
    return rc;
}

/* The metrics ring tells when a generation has really ended, and how far it got. */
static hr_generation_record wait_for_record(hr_context *ctx, int count)
{
    hr_generation_record records[8];
    for (int i = 0; i < 500; i++) {
        int n = hr_metrics_records(ctx, records, 8);
        if (n >= count) return records[count - 1];
        usleep(10000);
    }
    fail_msg("no metrics record %d after 5 s", count);
    return records[0];
}

static void session_text_equals_direct_generation(void **state)
{
    struct fixture *f = *state;
    hr_session_params params = hr_session_default_params();
    params.generate.max_tokens = 32;
    params.generate.seed = 11;
    params.queue_capacity = 4;
    params.client = "test";
    hr_session *s = NULL;
    assert_int_equal(hr_session_start(f->model, "Once upon a time", &params, &s), HR_OK);
    char from_session[8192];
    int pieces = 0;
    assert_int_equal(read_all(s, from_session, sizeof from_session, &pieces), HR_EOF);
    assert_true(pieces > 0);
    hr_generation_stats stats;
    assert_int_equal(hr_session_stats(s, &stats), HR_OK);
    assert_int_equal(stats.generated_tokens, 32);
    assert_int_equal(hr_session_read(s, from_session + 4000, 64, &(size_t){ 0 }, 0), HR_EOF);  /* stays ended */
    hr_session_free(s);

    char direct[8192] = "";
    assert_int_equal(hr_generate(f->model, "Once upon a time", &params.generate, collect, direct, NULL), HR_OK);
    assert_string_equal(from_session, direct);

    hr_generation_record r = wait_for_record(f->ctx, 2);
    assert_int_equal(r.generated_tokens, 32);
    assert_false(r.cancelled);
    assert_string_equal(r.served_by, "local");
    assert_true(r.peak_rss_bytes > 0);
    assert_false(r.pressure_known);   /* no monitor in this context */
    hr_generation_record first = wait_for_record(f->ctx, 1);
    assert_string_equal(first.client, "test");
}

static void a_reader_that_stops_reading_stops_generation(void **state)
{
    struct fixture *f = *state;
    hr_session_params params = hr_session_default_params();
    params.generate.max_tokens = 400;   /* a tiny model makes 400 tokens in well under a second */
    params.queue_capacity = 4;
    hr_session *s = NULL;
    assert_int_equal(hr_session_start(f->model, "Tell me a long story", &params, &s), HR_OK);
    usleep(500000);                     /* read nothing for half a second */
    hr_session_cancel(s);
    hr_generation_record r = wait_for_record(f->ctx, 1);
    /* four pieces in the queue and one waiting for room: generation paused there */
    assert_true(r.generated_tokens <= params.queue_capacity + 1);
    assert_true(r.cancelled);
    char buffer[64];
    size_t length;
    assert_int_equal(hr_session_read(s, buffer, sizeof buffer, &length, 0), HR_ECANCELLED);
    hr_session_free(s);
}

static void cancel_stops_a_running_session(void **state)
{
    struct fixture *f = *state;
    hr_session_params params = hr_session_default_params();
    params.generate.max_tokens = 400;
    hr_session *s = NULL;
    assert_int_equal(hr_session_start(f->model, "Go on and on", &params, &s), HR_OK);
    char buffer[64];
    size_t length;
    assert_int_equal(hr_session_read(s, buffer, sizeof buffer, &length, 10.0), HR_OK);
    hr_session_cancel(s);
    assert_int_equal(hr_session_read(s, buffer, sizeof buffer, &length, 1.0), HR_ECANCELLED);
    hr_generation_record r = wait_for_record(f->ctx, 1);
    assert_true(r.cancelled);
    assert_true(r.generated_tokens < 400);
    hr_session_free(s);
}

static void freeing_an_unread_session_cancels_it(void **state)
{
    struct fixture *f = *state;
    hr_session_params params = hr_session_default_params();
    params.generate.max_tokens = 400;
    params.queue_capacity = 2;
    hr_session *s = NULL;
    assert_int_equal(hr_session_start(f->model, "Anyone there?", &params, &s), HR_OK);
    usleep(100000);
    hr_session_free(s);                 /* like a client that hung up */
    hr_generation_record r = wait_for_record(f->ctx, 1);
    assert_true(r.cancelled);
    assert_true(r.generated_tokens <= 3);
}

static void queued_sessions_run_in_order(void **state)
{
    struct fixture *f = *state;
    hr_session_params first = hr_session_default_params(), second = hr_session_default_params();
    first.generate.max_tokens = 20;
    first.client = "first";
    second.generate.max_tokens = 5;
    second.client = "second";
    hr_session *a = NULL, *b = NULL;
    assert_int_equal(hr_session_start(f->model, "One", &first, &a), HR_OK);
    assert_int_equal(hr_session_start(f->model, "Two", &second, &b), HR_OK);
    char text[4096];
    assert_int_equal(read_all(b, text, sizeof text, NULL), HR_EOF);   /* read the second first */
    assert_int_equal(read_all(a, text, sizeof text, NULL), HR_EOF);
    assert_string_equal(wait_for_record(f->ctx, 1).client, "first");
    assert_string_equal(wait_for_record(f->ctx, 2).client, "second");
    hr_session_free(a);
    hr_session_free(b);
}

static void unloading_ends_sessions_in_flight(void **state)
{
    struct fixture *f = *state;
    hr_session_params params = hr_session_default_params();
    params.generate.max_tokens = 400;
    params.queue_capacity = 2;
    hr_session *running = NULL, *queued = NULL;
    assert_int_equal(hr_session_start(f->model, "Busy", &params, &running), HR_OK);
    assert_int_equal(hr_session_start(f->model, "Waiting", &params, &queued), HR_OK);
    char buffer[64];
    size_t length;
    assert_int_equal(hr_session_read(running, buffer, sizeof buffer, &length, 10.0), HR_OK);
    hr_model_free(f->model);            /* joins the worker: nothing runs after this */
    f->model = NULL;
    int rc = HR_OK;
    while ((rc = hr_session_read(running, buffer, sizeof buffer, &length, 1.0)) == HR_OK) {
    }
    assert_int_equal(rc, HR_ECANCELLED);
    assert_non_null(strstr(hr_last_error(), "unloaded"));
    /* with slots to spare the second runs too: its pieces, then the same end */
    while ((rc = hr_session_read(queued, buffer, sizeof buffer, &length, 1.0)) == HR_OK) {
    }
    assert_int_equal(rc, HR_ECANCELLED);
    assert_non_null(strstr(hr_last_error(), "unloaded"));
    hr_session_free(running);
    hr_session_free(queued);
}

/* Waits (up to 5 s) until `count` pieces are queued unread, beyond the one already read. */
static void wait_for_pieces(hr_session *s, int count)
{
    hr_generation_stats stats;
    for (int i = 0; i < 500; i++) {
        assert_int_equal(hr_session_stats(s, &stats), HR_OK);
        if (stats.generated_tokens >= 1 + count) return;
        usleep(10000);
    }
    fail_msg("the worker queued %d pieces in 5 s, not %d", stats.generated_tokens - 1, count);
}

static void unloading_does_not_wait_for_a_reader_that_stopped_reading(void **state)
{
    struct fixture *f = *state;
    hr_session_params params = hr_session_default_params();
    params.generate.max_tokens = 400;
    params.queue_capacity = 2;
    hr_session *s = NULL;
    assert_int_equal(hr_session_start(f->model, "Busy", &params, &s), HR_OK);
    char buffer[64];
    size_t length;
    assert_int_equal(hr_session_read(s, buffer, sizeof buffer, &length, 10.0), HR_OK);
    wait_for_pieces(s, params.queue_capacity);   /* the queue is full: the worker waits for room */
    hr_model_free(f->model);                     /* must not wait for the reader */
    f->model = NULL;
    int rc;
    while ((rc = hr_session_read(s, buffer, sizeof buffer, &length, 1.0)) == HR_OK) continue;
    assert_int_equal(rc, HR_ECANCELLED);
    hr_session_free(s);
}

static void a_stuck_reader_gives_way_to_waiting_sessions(void **state)
{
    struct fixture *f = *state;
    hr_session_params stuck_params = hr_session_default_params(), other = hr_session_default_params();
    stuck_params.generate.max_tokens = 400;
    stuck_params.queue_capacity = 2;
    stuck_params.reader_timeout = 0.5;
    other.generate.max_tokens = 4;
    hr_session *stuck = NULL, *waiting = NULL;
    assert_int_equal(hr_session_start(f->model, "Stuck", &stuck_params, &stuck), HR_OK);
    usleep(1000000);   /* alone on the model: a full queue for 1 s ends nothing */
    hr_generation_stats stats;
    hr_session_stats(stuck, &stats);
    assert_true(stats.generated_tokens <= 3);
    assert_int_equal(hr_metrics_records(f->ctx, (hr_generation_record[1]){ 0 }, 1), 0);

    assert_int_equal(hr_session_start(f->model, "Waiting", &other, &waiting), HR_OK);
    char text[4096];
    assert_int_equal(read_all(waiting, text, sizeof text, NULL), HR_EOF);   /* it got the model */
    int rc;
    char buffer[64];
    size_t length;
    while ((rc = hr_session_read(stuck, buffer, sizeof buffer, &length, 1.0)) == HR_OK) {
    }
    assert_int_equal(rc, HR_EBUSY);
    assert_non_null(strstr(hr_last_error(), "other requests waited"));
    hr_session_free(stuck);
    hr_session_free(waiting);
}

/* With slots free, a waiting session takes one: a reader that takes nothing is not stopped,
 * however long it waits, because nobody waits for its slot. */
static void a_stuck_reader_keeps_its_slot_while_others_are_free(void **state)
{
    struct fixture *f = *state;
    hr_session_params stuck_params = hr_session_default_params(), other = hr_session_default_params();
    stuck_params.generate.max_tokens = 400;
    stuck_params.queue_capacity = 2;
    stuck_params.reader_timeout = 0.2;
    other.generate.max_tokens = 4;
    hr_session *stuck = NULL, *waiting = NULL;
    assert_int_equal(hr_session_start(f->model, "Stuck", &stuck_params, &stuck), HR_OK);
    assert_int_equal(hr_session_start(f->model, "Waiting", &other, &waiting), HR_OK);
    char text[4096];
    assert_int_equal(read_all(waiting, text, sizeof text, NULL), HR_EOF);
    usleep(500000);
    char buffer[64];
    size_t length;
    assert_int_equal(hr_session_read(stuck, buffer, sizeof buffer, &length, 1.0), HR_OK);   /* still there */
    hr_session_cancel(stuck);
    hr_session_free(stuck);
    hr_session_free(waiting);
}

static void bad_session_parameters(void **state)
{
    struct fixture *f = *state;
    hr_session_params params = hr_session_default_params();
    hr_session *s = (hr_session *)1;
    params.queue_capacity = 0;
    assert_int_equal(hr_session_start(f->model, "x", &params, &s), HR_EINVAL);
    assert_null(s);
    params = hr_session_default_params();
    params.generate.max_tokens = -1;
    assert_int_equal(hr_session_start(f->model, "x", &params, &s), HR_EINVAL);
    params = hr_session_default_params();
    params.reader_timeout = -1;
    assert_int_equal(hr_session_start(f->model, "x", &params, &s), HR_EINVAL);
    assert_int_equal(hr_session_start(f->model, NULL, NULL, &s), HR_EINVAL);
    char buffer[1];
    size_t length;
    assert_int_equal(hr_session_read(NULL, buffer, 1, &length, 0), HR_EINVAL);
}

static void metrics_json_lists_the_ring(void **state)
{
    struct fixture *f = *state;
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 2;
    char text[256] = "";
    for (int i = 0; i < 10; i++) {
        text[0] = '\0';
        assert_int_equal(hr_generate(f->model, "Hi", &params, collect, text, NULL), HR_OK);
    }
    hr_generation_record records[16];
    assert_int_equal(hr_metrics_records(f->ctx, records, 16), 8);   /* the ring keeps the last 8 */
    char *json = hr_metrics_json(f->ctx);
    assert_non_null(json);
    assert_int_equal(json[0], '[');
    assert_non_null(strstr(json, "\"generated_tokens\":2"));
    assert_non_null(strstr(json, "\"pressure_level\":null"));
    assert_non_null(strstr(json, "\"served_by\":\"local\""));
    hr_free(json);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s TINY_MODEL.gguf\n", argv[0]);
        return 2;
    }
    tiny_model = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(session_text_equals_direct_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(a_reader_that_stops_reading_stops_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_stops_a_running_session, setup, teardown),
        cmocka_unit_test_setup_teardown(freeing_an_unread_session_cancels_it, setup, teardown),
        cmocka_unit_test_setup_teardown(queued_sessions_run_in_order, setup_one_slot, teardown),
        cmocka_unit_test_setup_teardown(unloading_ends_sessions_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(unloading_does_not_wait_for_a_reader_that_stopped_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(a_stuck_reader_gives_way_to_waiting_sessions, setup_one_slot, teardown),
        cmocka_unit_test_setup_teardown(a_stuck_reader_keeps_its_slot_while_others_are_free, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_session_parameters, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_json_lists_the_ring, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
