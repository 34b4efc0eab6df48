/*
 * test_events.c: the event bus (core/events.c): delivery in order to every subscriber,
 * unsubscribe (also from inside a callback), a callback that publishes (its event follows the
 * present one, in order, and nothing deadlocks), and the subscriber limit.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/events.h"

struct record {
    int calls;
    enum hr_pressure_level last;
    hr_event_bus *bus;
    int own_id;      /* unsubscribe itself on the first call when set */
};

static void remember(const hr_event *event, void *user_data)
{
    struct record *r = user_data;
    r->calls++;
    r->last = event->level;
    if (r->own_id) {
        hr_events_unsubscribe(r->bus, r->own_id);
        r->own_id = 0;
    }
}

static hr_event pressure(enum hr_pressure_level level)
{
    hr_event event = { .type = HR_EVENT_PRESSURE, .level = level, .reason = "test" };
    return event;
}

static void every_subscriber_gets_every_event(void **state)
{
    (void)state;
    hr_event_bus bus;
    hr_events_init(&bus);
    struct record a = { 0 }, b = { 0 };
    int id_a, id_b;
    assert_int_equal(hr_events_subscribe(&bus, remember, &a, &id_a), HR_OK);
    assert_int_equal(hr_events_subscribe(&bus, remember, &b, &id_b), HR_OK);
    assert_int_not_equal(id_a, id_b);
    hr_event warn = pressure(HR_PRESSURE_WARN), critical = pressure(HR_PRESSURE_CRITICAL);
    hr_events_publish(&bus, &warn);
    hr_events_publish(&bus, &critical);
    assert_int_equal(a.calls, 2);
    assert_int_equal(b.calls, 2);
    assert_int_equal(b.last, HR_PRESSURE_CRITICAL);

    hr_events_unsubscribe(&bus, id_a);
    hr_events_publish(&bus, &warn);
    assert_int_equal(a.calls, 2);
    assert_int_equal(b.calls, 3);
    hr_events_unsubscribe(&bus, 12345);   /* unknown: ignored */
    hr_events_destroy(&bus);
}

static void a_callback_may_unsubscribe_itself(void **state)
{
    (void)state;
    hr_event_bus bus;
    hr_events_init(&bus);
    struct record once = { .bus = &bus };
    int id;
    assert_int_equal(hr_events_subscribe(&bus, remember, &once, &id), HR_OK);
    once.own_id = id;
    hr_event warn = pressure(HR_PRESSURE_WARN);
    hr_events_publish(&bus, &warn);   /* would deadlock if unsubscribe waited for itself */
    hr_events_publish(&bus, &warn);
    assert_int_equal(once.calls, 1);
    hr_events_destroy(&bus);
}

/* A callback that publishes, as one that calls hr_registry_unload does: the bus once held its
 * publish lock across callbacks, so this deadlocked. The nested event is delivered after the
 * present one, with its strings intact, and every subscriber sees the same order. */
struct chain {
    hr_event_bus *bus;
    char seen[8][32];
    int n;
};

static void publish_on_warn(const hr_event *event, void *user_data)
{
    struct chain *c = user_data;
    if (c->n < 8) snprintf(c->seen[c->n++], sizeof c->seen[0], "%s", event->reason);
    if (event->level != HR_PRESSURE_WARN) return;
    char reason[32];
    snprintf(reason, sizeof reason, "nested");
    hr_event nested = { .type = HR_EVENT_ACTION, .level = HR_PRESSURE_NORMAL, .reason = reason, .action = "x" };
    hr_events_publish(c->bus, &nested);
    memset(reason, 'z', sizeof reason - 1);   /* the bus kept its own copy */
}

static void *publish_warn(void *arg)
{
    struct chain *c = arg;
    hr_event warn = { .type = HR_EVENT_PRESSURE, .level = HR_PRESSURE_WARN, .reason = "warn" };
    hr_events_publish(c->bus, &warn);
    return NULL;
}

static void a_callback_may_publish(void **state)
{
    (void)state;
    hr_event_bus bus;
    hr_events_init(&bus);
    struct chain c = { .bus = &bus };
    int id;
    assert_int_equal(hr_events_subscribe(&bus, publish_on_warn, &c, &id), HR_OK);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, publish_warn, &c), 0);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    int rc = pthread_timedjoin_np(thread, NULL, &deadline);
    if (rc != 0) fail_msg("a callback that publishes deadlocked the bus (still stuck after 10 s)");
    assert_int_equal(c.n, 2);
    assert_string_equal(c.seen[0], "warn");
    assert_string_equal(c.seen[1], "nested");
    hr_events_destroy(&bus);
}

static void the_subscriber_limit_is_an_error(void **state)
{
    (void)state;
    hr_event_bus bus;
    hr_events_init(&bus);
    struct record r = { 0 };
    int id;
    for (int i = 0; i < HR_MAX_SUBSCRIBERS; i++) assert_int_equal(hr_events_subscribe(&bus, remember, &r, &id), HR_OK);
    assert_int_equal(hr_events_subscribe(&bus, remember, &r, &id), HR_EBUSY);
    assert_int_equal(hr_events_subscribe(&bus, NULL, &r, &id), HR_EINVAL);
    hr_events_destroy(&bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_subscriber_gets_every_event),
        cmocka_unit_test(a_callback_may_unsubscribe_itself),
        cmocka_unit_test(a_callback_may_publish),
        cmocka_unit_test(the_subscriber_limit_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
