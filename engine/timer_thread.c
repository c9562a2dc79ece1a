/*
 * timer_thread.c - the stores' shared timer thread (timer_thread.h).
 */
#include <time.h>

#include "core.h"
#include "timer_thread.h"

/* With nothing pending, the thread still wakes this often. */
#define TIMER_IDLE_MS (3600 * 1000)

static int64_t store_now(spool_db *db)
{
	return db->opt.clock(db->opt.clock_arg);
}

static void deadline_after(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static void *timer_main(void *arg)
{
	struct timer_thread *t = arg;

	pthread_mutex_lock(&t->lock);
	while (!t->stop) {
		int64_t next, wait;
		struct timespec ts;

		t->kicked = false;
		t->next = INT64_MAX; /* any kick during the tick: again */
		pthread_mutex_unlock(&t->lock);
		/* before: a name looked up again meanwhile is not kept (its
		 * lookup is exact); after: nor one a listing gave meanwhile */
		core_changed(t->db, NULL);
		next = t->tick(t->db);
		core_changed(t->db, NULL);
		pthread_mutex_lock(&t->lock);
		if (t->kicked || t->stop)
			continue;
		t->next = next;
		wait = next == INT64_MAX ? TIMER_IDLE_MS
					 : next - store_now(t->db);
		if (wait <= 0)
			continue;
		deadline_after(&ts, wait);
		pthread_cond_timedwait(&t->cond, &t->lock, &ts);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

void timer_thread_init(struct timer_thread *t, spool_db *db,
		       timer_tick_fn *tick)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	t->running = false;
	t->stop = false;
	t->kicked = false;
	t->next = INT64_MAX;
	t->db = db;
	t->tick = tick;
}

int timer_thread_start(struct timer_thread *t)
{
	int rc = pthread_create(&t->thread, NULL, timer_main, t);

	if (rc)
		return -rc;
	t->running = true;
	return 0;
}

void timer_thread_kick(struct timer_thread *t, int64_t due_ms)
{
	pthread_mutex_lock(&t->lock);
	if (due_ms < t->next) {
		t->next = due_ms;
		t->kicked = true;
		pthread_cond_signal(&t->cond);
	}
	pthread_mutex_unlock(&t->lock);
}

void timer_thread_stop(struct timer_thread *t)
{
	if (!t->running)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	t->running = false;
}

void timer_thread_destroy(struct timer_thread *t)
{
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
}
