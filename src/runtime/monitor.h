/*
 * monitor.h: the pressure monitor: one thread ("hr-monitor") per context that sleeps on every
 * event source the host offers and a timer, samples, classifies and publishes level changes.
 */
#ifndef HR_RUNTIME_MONITOR_H
#define HR_RUNTIME_MONITOR_H

#include "core/events.h"
#include "headroom.h"
#include "policy/pressure.h"

typedef struct hr_monitor hr_monitor;

typedef struct hr_monitor_params {
    hr_pressure_thresholds thresholds;
    double interval_min;     /* seconds between samples while memory moves */
    double interval_max;     /* ... and when all is quiet */
    hr_event_bus *events;    /* where level changes go; outlives the monitor */
} hr_monitor_params;

/* Opens the event sources (PSI triggers where the kernel accepts them, cgroup v1
 * memory.pressure_level notifications) and starts the thread. */
int hr_monitor_start(const hr_monitor_params *params, hr_monitor **out);

/* Stops the thread within one poll wake-up, closes every source, frees the monitor. */
void hr_monitor_stop(hr_monitor *monitor);

/* The latest classification, waiting up to `wait_seconds` for the first one that has rates
 * (two samples). HR_EBUSY when none arrived in time. */
int hr_monitor_pressure(hr_monitor *monitor, double wait_seconds, hr_pressure *out);

/* The latest level without waiting; false before the first reading. */
bool hr_monitor_level(hr_monitor *monitor, enum hr_pressure_level *out);

/* The latest level with the classifier's hold, and the same signals classified afresh (a fall
 * shows at once); false before the first reading. */
bool hr_monitor_levels(hr_monitor *monitor, enum hr_pressure_level *held, enum hr_pressure_level *fresh);

/* Fills an hr_pressure from a sample, its signals and a classification (shared with the path
 * that runs without a monitor). */
void hr_pressure_fill(const hr_sample *sample, const hr_pressure_signals *signals,
                      const hr_classification *classification, const char *detection,
                      hr_pressure *out);

#endif
