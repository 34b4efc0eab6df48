/*
 * test_events.c: the event bus (core/events.c): delivery in order to every subscriber,
 * unsubscribe (also from inside a callback), and the subscriber limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
        cmocka_unit_test(the_subscriber_limit_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
