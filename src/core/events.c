/*
 * events.c: the event bus (see events.h). Events are queued in publishing order and delivered by
 * one thread at a time with no lock held, so a callback may call anything that publishes (the
 * registry's unload, release, acquire) or subscribe and unsubscribe; unsubscribe waits for a
 * delivery in progress on another thread, so that after it returns the callback is never running.
 */
#include "core/events.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void hr_events_init(hr_event_bus *bus)
{
    memset(bus, 0, sizeof *bus);
    pthread_mutex_init(&bus->lock, NULL);
    pthread_cond_init(&bus->delivered, NULL);
    bus->next_id = 1;
}

void hr_events_destroy(hr_event_bus *bus)
{
    /* only copies can be left: a publisher's own event is delivered before its publish returns */
    while (bus->head) {
        hr_queued_event *q = bus->head;
        bus->head = q->next;
        if (q->on_heap) free(q);
    }
    pthread_mutex_destroy(&bus->lock);
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

/* A copy of `event` and its strings in one allocation, for an event that outlives its publish. */
static hr_queued_event *copy_event(const hr_event *event)
{
    const char *texts[3] = { event->reason, event->model, event->action };
    size_t lengths[3], total = sizeof(hr_queued_event);
    for (int i = 0; i < 3; i++) {
        lengths[i] = texts[i] ? strlen(texts[i]) + 1 : 0;
        total += lengths[i];
    }
    hr_queued_event *q = malloc(total);
    if (!q) return NULL;
    memset(q, 0, sizeof *q);
    q->event = *event;
    q->on_heap = true;
    char *at = (char *)(q + 1);
    const char **fields[3] = { &q->event.reason, &q->event.model, &q->event.action };
    for (int i = 0; i < 3; i++) {
        if (!texts[i]) continue;
        memcpy(at, texts[i], lengths[i]);
        *fields[i] = at;
        at += lengths[i];
    }
    return q;
}

/* Calls every subscriber for each queued event until the queue is empty. Called and returns with
 * the lock held; drops it around each callback. */
static void deliver_queue(hr_event_bus *bus)
{
    bus->delivering = true;
    bus->delivering_thread = pthread_self();
    while (bus->head) {
        hr_queued_event *q = bus->head;
        bus->head = q->next;
        if (!bus->head) bus->tail = NULL;
        hr_subscriber copy[HR_MAX_SUBSCRIBERS];
        int n = bus->n_subscribers;
        memcpy(copy, bus->subscribers, sizeof copy[0] * (size_t)n);
        pthread_mutex_unlock(&bus->lock);
        for (int i = 0; i < n; i++) {
            /* skip one that unsubscribed while earlier callbacks ran */
            bool still = false;
            pthread_mutex_lock(&bus->lock);
            for (int j = 0; j < bus->n_subscribers; j++)
                if (bus->subscribers[j].id == copy[i].id) still = true;
            pthread_mutex_unlock(&bus->lock);
            if (still) copy[i].fn(&q->event, copy[i].user_data);
        }
        pthread_mutex_lock(&bus->lock);
        bus->delivered_sequence = q->sequence;
        if (q->on_heap) free(q);
        pthread_cond_broadcast(&bus->delivered);
    }
    bus->delivering = false;
    pthread_cond_broadcast(&bus->delivered);
}

void hr_events_publish(hr_event_bus *bus, const hr_event *event)
{
    pthread_mutex_lock(&bus->lock);
    /* From inside a callback the delivery in progress is this thread's: the event waits in the
     * queue and is delivered after the present callback returns (waiting here would never end). */
    bool nested = bus->delivering && pthread_equal(bus->delivering_thread, pthread_self());
    hr_queued_event own = { .event = *event };
    hr_queued_event *q = nested ? copy_event(event) : &own;
    if (!q) {   /* out of memory for the copy: this one event is lost, nothing else */
        pthread_mutex_unlock(&bus->lock);
        return;
    }
    q->sequence = ++bus->published;
    if (bus->tail) bus->tail->next = q;
    else bus->head = q;
    bus->tail = q;
    if (nested) {
        pthread_mutex_unlock(&bus->lock);
        return;
    }
    /* Another thread delivering takes ours too (it empties the queue); else this thread does. */
    while (bus->delivering && bus->delivered_sequence < q->sequence)
        pthread_cond_wait(&bus->delivered, &bus->lock);
    if (bus->delivered_sequence < q->sequence) deliver_queue(bus);
    pthread_mutex_unlock(&bus->lock);
}
