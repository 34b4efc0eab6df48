/*
 * events.c: the event bus (see events.h). Subscribers are called without the bus lock held, so
 * a callback may subscribe or unsubscribe; unsubscribe waits for a delivery in progress on
 * another thread, so that after it returns the callback is never running.
 */
#include "core/events.h"

#include <string.h>

#include "core/error.h"

void hr_events_init(hr_event_bus *bus)
{
    memset(bus, 0, sizeof *bus);
    pthread_mutex_init(&bus->lock, NULL);
    pthread_mutex_init(&bus->publish, NULL);
    pthread_cond_init(&bus->delivered, NULL);
    bus->next_id = 1;
}

void hr_events_destroy(hr_event_bus *bus)
{
    pthread_mutex_destroy(&bus->lock);
    pthread_mutex_destroy(&bus->publish);
    pthread_cond_destroy(&bus->delivered);
}

int hr_events_subscribe(hr_event_bus *bus, hr_event_fn fn, void *user_data, int *id_out)
{
    if (!fn || !id_out) return hr_fail(HR_EINVAL, "hr_subscribe: fn and id_out are required");
    pthread_mutex_lock(&bus->lock);
    if (bus->n_subscribers >= HR_MAX_SUBSCRIBERS) {
        pthread_mutex_unlock(&bus->lock);
        return hr_fail(HR_EBUSY, "too many subscribers (at most %d)", HR_MAX_SUBSCRIBERS);
    }
    hr_subscriber *s = &bus->subscribers[bus->n_subscribers++];
    s->id = bus->next_id++;
    s->fn = fn;
    s->user_data = user_data;
    *id_out = s->id;
    pthread_mutex_unlock(&bus->lock);
    return HR_OK;
}

void hr_events_unsubscribe(hr_event_bus *bus, int id)
{
    pthread_mutex_lock(&bus->lock);
    for (int i = 0; i < bus->n_subscribers; i++) {
        if (bus->subscribers[i].id != id) continue;
        bus->subscribers[i] = bus->subscribers[--bus->n_subscribers];
        break;
    }
    /* From inside a callback the delivery is our own: waiting for it would never end. */
    while (bus->delivering && !pthread_equal(bus->delivering_thread, pthread_self()))
        pthread_cond_wait(&bus->delivered, &bus->lock);
    pthread_mutex_unlock(&bus->lock);
}

void hr_events_publish(hr_event_bus *bus, const hr_event *event)
{
    pthread_mutex_lock(&bus->publish);
    pthread_mutex_lock(&bus->lock);
    hr_subscriber copy[HR_MAX_SUBSCRIBERS];
    int n = bus->n_subscribers;
    memcpy(copy, bus->subscribers, sizeof copy[0] * (size_t)n);
    bus->delivering = true;
    bus->delivering_thread = pthread_self();
    pthread_mutex_unlock(&bus->lock);

    for (int i = 0; i < n; i++) {
        /* skip one that unsubscribed while earlier callbacks ran */
        bool still = false;
        pthread_mutex_lock(&bus->lock);
        for (int j = 0; j < bus->n_subscribers; j++)
            if (bus->subscribers[j].id == copy[i].id) still = true;
        pthread_mutex_unlock(&bus->lock);
        if (still) copy[i].fn(event, copy[i].user_data);
    }

    pthread_mutex_lock(&bus->lock);
    bus->delivering = false;
    pthread_cond_broadcast(&bus->delivered);
    pthread_mutex_unlock(&bus->lock);
    pthread_mutex_unlock(&bus->publish);
}
