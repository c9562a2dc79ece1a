/*
 * timer_thread.h - the one timer thread loop that both stores run (the
 * RocksDB store and the Redis store): it sleeps until the earliest due
 * timer (no polling: it waits on a condition variable, on CLOCK_MONOTONIC,
 * until that time or until a kick brings a new, earlier one), then runs
 * the store's tick. A store supplies only the tick and kicks the thread
 * when it makes a timer due earlier than the one the thread sleeps for.
 *
 * Outside engine/core/ (core has no threads). Tests that replace the
 * clock and tick themselves (spool_options.manual_timers) start no thread.
 */
#ifndef TIMER_THREAD_H
#define TIMER_THREAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "spool.h"

/* Runs db's due timers; returns the store ms (db's clock) when it should
 * run again, INT64_MAX if no timer is pending. */
typedef int64_t timer_tick_fn(spool_db *db);

struct timer_thread {
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* on CLOCK_MONOTONIC */
	pthread_t thread;
	bool running;               /* started and not yet joined */
	bool stop;                  /* protected by lock */
	bool kicked;                /* protected by lock */
	int64_t next;               /* store ms it sleeps for; lock */
	spool_db *db;
	timer_tick_fn *tick;
};

/* Makes t's lock and condition; the thread is not started. */
void timer_thread_init(struct timer_thread *t, spool_db *db,
		       timer_tick_fn *tick);
/* Starts the thread (it ticks at once). 0 or -errno of pthread_create. */
int timer_thread_start(struct timer_thread *t);
/* A timer is now due at due_ms (store ms): wakes the thread if that is
 * earlier than it sleeps for, or if it is ticking now (it ticks again). */
void timer_thread_kick(struct timer_thread *t, int64_t due_ms);
/* Stops and joins the thread; nothing if it was not started. */
void timer_thread_stop(struct timer_thread *t);
/* Frees the lock and condition (after timer_thread_stop). */
void timer_thread_destroy(struct timer_thread *t);

#endif /* TIMER_THREAD_H */
