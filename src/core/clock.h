/*
 * clock.h: the two clocks the library reads. Monotonic seconds measure durations and deadlines
 * (keep-alive, hysteresis, timeouts); wall seconds only label things for people and files
 * (loaded_at, a metrics record's time, a snapshot's name). Policy code reads neither: it is given
 * the time.
 */
#ifndef HR_CORE_CLOCK_H
#define HR_CORE_CLOCK_H

/* Monotonic seconds since an arbitrary origin; the clock hr_cond_wait_until's deadlines use. */
double hr_now_seconds(void);

/* Seconds since the Unix epoch (CLOCK_REALTIME), with nanoseconds. */
double hr_wall_seconds(void);

#endif
