/*
 * timer.c - time passing in the RocksDB store: delays that end, leases
 * that run out, dead letters and retention (the rules are the core's).
 * Each queue keeps its timers in a heap; rocks_tick() runs every queue's
 * due timers, called by the timer thread (engine/timer_thread.c) or,
 * with manual timers, by the caller (spool_tick).
 */
#include <errno.h>
#include <stdlib.h>

#include "rocks.h"
#include "kv.h"

/* How many timers one batch applies: bounds a batch's size and the time
 * the queue lock is held. */
#define TIMER_STEP 1000
/* After a failed write, due timers are retried this much later. */
#define TIMER_RETRY_MS 1000

/* Takes up to TIMER_STEP due messages out (busy); q->lock held. Leases
 * out of receives come first in v, *ndead of them. */
static size_t grab_due(struct rocks_queue *q, int64_t now, struct node **v,
		       size_t *ndead, uint64_t *expired)
{
	struct node *m;
	size_t n = 0;

	while (n < TIMER_STEP && (m = heap_top(&q->timers)) &&
	       node_due(m) <= now) {
		queue_unplace(q, m);
		m->busy = 1;
		v[n] = m;
		if (m->state == SPOOL_LEASED) {
			(*expired)++;
			if (msg_exhausted(q, m)) {
				v[n] = v[*ndead];
				v[(*ndead)++] = m;
			}
		}
		n++;
	}
	return n;
}

/* When q's next timer is due: the earliest delay or lease, or the oldest
 * message reaching the retention limit. q->lock held. */
static int64_t next_due(struct rocks_queue *q)
{
	struct node *m = heap_top(&q->timers), *old;
	int64_t due = m ? node_due(m) : INT64_MAX;

	if (q->set.retention_ms && (old = queue_oldest(q)) &&
	    policy_retention_due(&q->set, node_sent(old)) < due)
		due = policy_retention_due(&q->set, node_sent(old));
	return due;
}

/* Makes v[0..n) visible (and counts expired leases) in one batch. */
static int expire_all(struct rocks_queue *q, struct node **v, size_t n,
		      uint64_t expired)
{
	struct store_batch *b = store_batch_new(q->db->st);
	int rc = b ? 0 : -ENOMEM;

	for (size_t i = 0; b && i < n; i++) {
		struct msg next;

		node_get(v[i], &next);
		state_expire(&next);
		batch_put_idx(b, &next, q->qid);
	}
	if (b && expired)
		msg_count(b, q, CNT_EXPIRED, expired);
	if (b && (n || expired))
		rc = store_write(q->db->st, b, 0);
	store_batch_free(b);
	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < n; i++) {
		if (!rc)
			queue_set_state(q, v[i], SPOOL_VISIBLE);
		v[i]->busy = 0;
		queue_place(q, v[i]);
	}
	if (!rc)
		q->cnt[CNT_EXPIRED] += expired;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* One step: applies up to TIMER_STEP due timers. Leases out of receives
 * go to the dead-letter queue (or, if that fails, become visible like the
 * rest). Returns how many were applied, or a negative errno. */
static int timer_step(struct rocks_queue *q, int64_t now)
{
	struct node *v[TIMER_STEP];
	uint64_t expired = 0;
	size_t n, ndead = 0;
	int rc;

	pthread_mutex_lock(&q->lock);
	n = q->alive ? grab_due(q, now, v, &ndead, &expired) : 0;
	pthread_mutex_unlock(&q->lock);
	if (!n)
		return 0;
	if (ndead && msg_dead_letter(q, v, ndead) == 0)
		rc = expire_all(q, v + ndead, n - ndead, expired);
	else
		rc = expire_all(q, v, n, expired);
	return rc ? rc : (int)n;
}

/* Deletes up to TIMER_STEP messages older than retention; returns how
 * many, or a negative errno. */
static int retention_step(struct rocks_queue *q, int64_t now)
{
	struct node *v[TIMER_STEP], *m;
	size_t n = 0;

	pthread_mutex_lock(&q->lock);
	while (q->alive && q->set.retention_ms && n < TIMER_STEP &&
	       (m = queue_oldest(q)) &&
	       policy_retention_due(&q->set, node_sent(m)) <= now) {
		queue_unplace(q, m);
		m->busy = 1;
		v[n++] = m;
	}
	pthread_mutex_unlock(&q->lock);
	if (!n)
		return 0;
	return remove_msgs(q, v, n, CNT_DELETED, 0) ?: (int)n;
}

int64_t queue_run_timers(struct rocks_queue *q, int64_t now)
{
	int64_t due;
	int rc, woke = 0;

	do {
		rc = timer_step(q, now);
		if (rc > 0)
			woke = 1;
	} while (rc == TIMER_STEP);
	while (rc >= 0 && (rc = retention_step(q, now)) == TIMER_STEP)
		;
	if (woke)
		core_wake(&q->pub);
	pthread_mutex_lock(&q->lock);
	due = next_due(q);
	pthread_mutex_unlock(&q->lock);
	if (rc < 0 && due <= now)
		due = now + TIMER_RETRY_MS;
	return due;
}

int64_t rocks_tick(spool_db *pdb)
{
	struct rocks_db *db = RDB(pdb);
	int64_t now = db_now(db), next = INT64_MAX;
	struct rocks_queue **v;
	size_t n;

	pthread_rwlock_rdlock(&db->qlock);
	n = db->nqueues;
	v = malloc((n + 1) * sizeof(*v));
	for (size_t i = 0; v && i < n; i++) {
		v[i] = db->queues[i];
		atomic_fetch_add(&v[i]->refs, 1);
	}
	pthread_rwlock_unlock(&db->qlock);
	if (!v)
		return now + TIMER_RETRY_MS;
	for (size_t i = 0; i < n; i++) {
		int64_t due = queue_run_timers(v[i], now);

		if (due < next)
			next = due;
		queue_unref(v[i]);
	}
	free(v);
	return next;
}
