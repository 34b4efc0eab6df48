/*
 * events.h: the event bus: subscribers of a context and the delivery of events to them.
 * Publishers (the monitor, the registry, hr-lifecycle, the guard) call hr_events_publish from
 * their own thread; subscribers are called with no lock held, one event at a time, in order.
 */
#ifndef HR_CORE_EVENTS_H
#define HR_CORE_EVENTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "headroom.h"

#define HR_MAX_SUBSCRIBERS 32

typedef struct hr_subscriber {
    int id;
    hr_event_fn fn;
    void *user_data;
} hr_subscriber;

/* An event waiting in the bus's queue. A publisher's own event lives on its stack (it waits until
 * the event is delivered); one published from inside a callback is copied to the heap, because
 * that publish returns before its event is delivered. */
typedef struct hr_queued_event {
    hr_event event;
    uint64_t sequence;
    bool on_heap;
    struct hr_queued_event *next;
} hr_queued_event;

typedef struct hr_event_bus {
    pthread_mutex_t lock;          /* guards every field below */
    hr_subscriber subscribers[HR_MAX_SUBSCRIBERS];
    int n_subscribers;
    int next_id;
    hr_queued_event *head, *tail;  /* events not yet delivered, in publishing order */
    uint64_t published;            /* sequence of the last event queued ... */
    uint64_t delivered_sequence;   /* ... and of the last one every subscriber has seen */
    bool delivering;               /* a thread is calling subscribers, with no lock held ... */
    pthread_t delivering_thread;   /* ... this one; it delivers the queue until it is empty */
    pthread_cond_t delivered;      /* broadcast after each event delivered and when delivery stops */
} hr_event_bus;

void hr_events_init(hr_event_bus *bus);
void hr_events_destroy(hr_event_bus *bus);
int hr_events_subscribe(hr_event_bus *bus, hr_event_fn fn, void *user_data, int *id_out);
void hr_events_unsubscribe(hr_event_bus *bus, int id);
void hr_events_publish(hr_event_bus *bus, const hr_event *event);

#endif
