/*
 * thread.c - the RocksDB store's timer thread: it sleeps until the
 * earliest due timer of any queue (no polling: it waits on a condition
 * variable until that time or until a new, earlier timer kicks it), then
 * runs the store's tick (timer.c). Tests replace the clock and tick
 * themselves (manual_timers), so they have no thread.
 */
#include <errno.h>
#include <time.h>

#include "rocks.h"

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
	struct rocks_db *db = arg;

	pthread_mutex_lock(&db->tlock);
	while (!db->timer_stop) {
		int64_t next, wait;
		struct timespec ts;

		db->timer_kicked = false;
		db->timer_next = INT64_MAX; /* any kick during the tick: again */
		pthread_mutex_unlock(&db->tlock);
		next = db->tick(&db->pub);
		pthread_mutex_lock(&db->tlock);
		if (db->timer_kicked || db->timer_stop)
			continue;
		db->timer_next = next;
		wait = next == INT64_MAX ? 3600 * 1000 : next - db_now(db);
		if (wait <= 0)
			continue;
		deadline_after(&ts, wait);
		pthread_cond_timedwait(&db->tcond, &db->tlock, &ts);
	}
	pthread_mutex_unlock(&db->tlock);
	return NULL;
}

void timer_kick(struct rocks_db *db, int64_t due_ms)
{
	pthread_mutex_lock(&db->tlock);
	if (due_ms < db->timer_next) {
		db->timer_next = due_ms;
		db->timer_kicked = true;
		pthread_cond_signal(&db->tcond);
	}
	pthread_mutex_unlock(&db->tlock);
}

int timer_start(struct rocks_db *db, int64_t (*tick)(spool_db *db))
{
	int rc;

	db->tick = tick;
	rc = pthread_create(&db->timer, NULL, timer_main, db);
	if (rc)
		return -rc;
	db->timer_running = true;
	return 0;
}

void timer_stop(struct rocks_db *db)
{
	if (!db->timer_running)
		return;
	pthread_mutex_lock(&db->tlock);
	db->timer_stop = true;
	pthread_cond_signal(&db->tcond);
	pthread_mutex_unlock(&db->tlock);
	pthread_join(db->timer, NULL);
	db->timer_running = false;
}
