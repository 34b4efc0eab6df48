/*
 * events.h: the event bus: subscribers of a context and the delivery of events to them.
 * Publishers (the monitor, later the lifecycle) call hr_events_publish from their own thread.
 */
#ifndef HR_CORE_EVENTS_H
#define HR_CORE_EVENTS_H

#include <pthread.h>
#include <stdbool.h>

#include "headroom.h"

#define HR_MAX_SUBSCRIBERS 32

typedef struct hr_subscriber {
    int id;
    hr_event_fn fn;
    void *user_data;
} hr_subscriber;

typedef struct hr_event_bus {
    pthread_mutex_t lock;          /* guards subscribers, n_subscribers, next_id, delivering */
    hr_subscriber subscribers[HR_MAX_SUBSCRIBERS];
    int n_subscribers;
    int next_id;
    bool delivering;               /* a publish is calling subscribers ... */
    pthread_t delivering_thread;   /* ... on this thread */
    pthread_cond_t delivered;      /* signalled when a publish finishes */
    pthread_mutex_t publish;       /* one publish at a time, so events arrive in order */
} hr_event_bus;

void hr_events_init(hr_event_bus *bus);
void hr_events_destroy(hr_event_bus *bus);
int hr_events_subscribe(hr_event_bus *bus, hr_event_fn fn, void *user_data, int *id_out);
void hr_events_unsubscribe(hr_event_bus *bus, int id);
void hr_events_publish(hr_event_bus *bus, const hr_event *event);

#endif
