/*
 * busy.c - the pattern every change of the RocksDB store follows (see
 * rocks.h): take messages out of their place and mark them busy (grab),
 * write one batch with no lock held, then apply (settle with the new
 * fields, or drop) or put them back (settle unchanged). Here are its steps
 * and the changes that more than one operation makes: deleting messages,
 * moving them to another queue, and dead-lettering them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rocks.h"
#include "kv.h"

/* Adds n to counter c, in the batch and (once it is written) in memory. */
void msg_count(struct store_batch *b, struct rocks_queue *q, int c, uint64_t n)
{
	uint64_t delta[CNT_N] = { 0 };

	delta[c] = n;
	batch_merge_counters(b, q->qid, delta);
}

/* Takes message id out of its place if its state is in states; q->lock
 * held. NULL if there is no such message, or it is busy. */
struct node *grab(struct rocks_queue *q, uint64_t id, unsigned states)
{
	struct node *m = q->alive ? queue_hash_find(q, id) : NULL;

	if (!m || m->busy || !(m->state & states))
		return NULL;
	queue_unplace(q, m);
	m->busy = 1;
	return m;
}

/* Ends a busy period: m takes the fields of next (if not NULL) and goes
 * back in the place of its state; q->lock held. */
void settle(struct rocks_queue *q, struct node *m, const struct msg *next)
{
	if (next) {
		queue_set_state(q, m, next->state);
		node_set(m, next);
	}
	m->busy = 0;
	queue_place(q, m);
}

/* Forgets m for good (deleted, or moved away); q->lock held. */
void drop(struct rocks_queue *q, struct node *m)
{
	queue_hash_remove(q, m);
	q->bytes -= m->size;
}

struct store_batch *batch(struct rocks_queue *q)
{
	return store_batch_new(q->db->st);
}

/* ----------------------------------------------------------- deleting */

int remove_msgs(struct rocks_queue *q, struct node **v, size_t n, int c,
		int durable)
{
	struct store_batch *b = batch(q);
	int rc = b ? 0 : -ENOMEM;

	for (size_t i = 0; b && i < n; i++)
		batch_del_msg(b, v[i]->id);
	if (b) {
		msg_count(b, q, c, n);
		rc = store_write(q->db->st, b, durable);
		store_batch_free(b);
	}
	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < n; i++)
		if (rc)
			settle(q, v[i], NULL);
		else
			drop(q, v[i]);
	if (!rc)
		q->cnt[c] += n;
	pthread_mutex_unlock(&q->lock);
	for (size_t i = 0; !rc && i < n; i++)
		node_free(&q->db->arena, v[i]);
	return rc;
}

/* Takes up to max messages from tree t into v (busy); q->lock held. */
size_t grab_many(struct rocks_queue *q, struct tree *t, struct node **v,
		 size_t max)
{
	size_t n = 0;
	struct node *m;

	while (n < max && (m = tree_first(t))) {
		queue_unplace(q, m);
		m->busy = 1;
		v[n++] = m;
	}
	return n;
}

/* ------------------------------------------------------------- moving */

/* Reserves room for up to want messages in dst: returns how many fit. */
int move_reserve(struct rocks_queue *dst, uint64_t want, uint64_t *got)
{
	int rc = 0;

	pthread_mutex_lock(&dst->lock);
	if (!dst->alive) {
		rc = -ENOENT;
	} else {
		uint64_t room = UINT64_MAX, depth = queue_depth(dst);

		if (dst->set.max_depth)
			room = depth >= dst->set.max_depth ? 0 :
			       dst->set.max_depth - depth;
		*got = want < room ? want : room;
		dst->pending += *got;
	}
	pthread_mutex_unlock(&dst->lock);
	return rc;
}

/* Hands moved messages (already written as dst's) over to dst. */
void move_publish(struct rocks_queue *q, struct rocks_queue *dst,
		  struct node **v, size_t n, uint64_t reserved)
{
	int64_t now = db_now(q->db);

	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < n; i++)
		drop(q, v[i]);
	pthread_mutex_unlock(&q->lock);
	pthread_mutex_lock(&dst->lock);
	dst->pending -= reserved;
	for (size_t i = 0; i < n; i++) {
		struct msg next;

		node_get(v[i], &next);
		next.state = SPOOL_VISIBLE;
		next.due_ms = now;
		node_set(v[i], &next);
		v[i]->busy = 0;
		queue_hash_insert(dst, v[i]);
		queue_place(dst, v[i]);
		dst->bytes += v[i]->size;
	}
	pthread_mutex_unlock(&dst->lock);
	if (n)
		core_wake(&dst->pub);
}

void move_undo(struct rocks_queue *q, struct rocks_queue *dst, struct node **v,
	       size_t n, uint64_t reserved)
{
	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < n; i++)
		settle(q, v[i], NULL);
	pthread_mutex_unlock(&q->lock);
	pthread_mutex_lock(&dst->lock);
	dst->pending -= reserved;
	pthread_mutex_unlock(&dst->lock);
}

/* Writes v[0..n) as VISIBLE messages of dst, durably. */
int move_write(struct rocks_queue *q, struct rocks_queue *dst, struct node **v,
	       size_t n, int c)
{
	struct store_batch *b = batch(q);
	int64_t now = db_now(q->db);
	int rc;

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct msg next;

		node_get(v[i], &next);
		next.state = SPOOL_VISIBLE;
		next.due_ms = now;
		batch_put_idx(b, &next, dst->qid);
	}
	if (c >= 0)
		msg_count(b, q, c, n);
	rc = store_write(q->db->st, b, STORE_DURABLE);
	store_batch_free(b);
	return rc;
}

/* -------------------------------------------------------- dead letters */

int msg_exhausted(const struct rocks_queue *q, const struct node *m)
{
	return policy_exhausted(&q->set, m->receives);
}

/* Opens q's dead-letter queue, creating it (with q's owner and mode) on
 * demand. */
static int dead_letter_open(struct rocks_queue *q, struct rocks_queue **out)
{
	char name[SPOOL_NAME_MAX + 8];
	struct spool_queue_attr a, qa;
	int rc;

	pthread_mutex_lock(&q->lock);
	policy_dead_letter(q->pub.name, &q->set, name, sizeof(name));
	qa = q->attr;
	pthread_mutex_unlock(&q->lock);
	rc = queue_get(q->db, name, out);
	if (rc != -ENOENT)
		return rc;
	rc = core_queue_attr(&q->db->pub, name, &qa, &a);
	if (!rc)
		rc = rocks_queue_create(&q->db->pub, name, &a);
	if (rc && rc != -EEXIST)
		return rc;
	return queue_get(q->db, name, out);
}

int msg_dead_letter(struct rocks_queue *q, struct node **v, size_t n)
{
	struct rocks_queue *dlq;
	uint64_t got = 0;
	int rc = dead_letter_open(q, &dlq);

	if (rc) {
		core_log(&q->db->pub, SPOOL_LOG_WARN, "queue %s: no "
			 "dead-letter queue (%s); messages stay", q->pub.name,
			 strerror(-rc));
		return rc;
	}
	rc = dlq == q ? -EINVAL : move_reserve(dlq, n, &got);
	if (!rc && got < n)
		rc = -EDQUOT;
	if (!rc)
		rc = move_write(q, dlq, v, n, CNT_DEAD);
	if (rc) {
		pthread_mutex_lock(&dlq->lock);
		dlq->pending -= got;
		pthread_mutex_unlock(&dlq->lock);
	} else {
		move_publish(q, dlq, v, n, got);
		pthread_mutex_lock(&q->lock);
		q->cnt[CNT_DEAD] += n;
		pthread_mutex_unlock(&q->lock);
	}
	queue_unref(dlq);
	return rc;
}
