/*
 * push.c - pushing into the RocksDB store: checks (the core's), dedup
 * (drop a push whose name or body was seen within dedup_window), fan-out
 * (a push to a topic goes to each subscriber queue instead), max_depth
 * reservations, and the one batch that writes
 * every message of a push to every destination: all or none.
 *
 * Fan-out is one level: a subscriber's own fanout setting is not followed
 * for messages that arrive through a topic (cycles are refused anyway).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rocks.h"
#include "kv.h"

/* Expired dedup keys dropped per push, at most: keeps pushes short. */
#define DEDUP_SWEEP 64

struct dest {
	struct rocks_queue *q;                 /* a counted reference */
	struct spool_settings s;
	struct msg *msgs;
	bool reserved;
};

struct push_job {
	struct rocks_queue *q;                 /* the queue pushed to */
	const struct spool_push *p;
	size_t n;
	struct spool_settings s;        /* q's settings */
	int64_t now;
	size_t *keep;                   /* indexes of pushes that are new */
	size_t nkeep;
	uint8_t (*keys)[DEDUP_KEY_LEN]; /* dedup keys taken by this push */
	size_t *key_keep;               /* keys[k] is keep[key_keep[k]]'s */
	size_t nkeys;
	uint64_t *dup_id;               /* p[i] dropped: the kept message, */
	size_t *dup_key;                /* or keys[dup_key[i] - 1]'s message */
	struct dest *d;
	size_t nd;
};

/* ---------------------------------------------------------------- dedup */

void dedup_sweep(struct rocks_queue *q, struct store_batch *b, int64_t now)
{
	uint8_t keys[DEDUP_SWEEP][DEDUP_KEY_LEN];
	size_t n = dedup_expire(&q->dedup, now, keys, DEDUP_SWEEP);

	for (size_t i = 0; i < n; i++)
		batch_del_dedup(b, q->qid, keys[i]);
}

/* Which of the first n keys of this push is key (1-based), or 0. */
static size_t dup_within(uint8_t (*keys)[DEDUP_KEY_LEN], size_t n,
			 const uint8_t *key)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(keys[i], key, DEDUP_KEY_LEN) == 0)
			return i + 1;
	return 0;
}

/* Keeps the pushes that are not duplicates, and takes their keys at once
 * so that a concurrent identical push is a duplicate of this one. */
static void dedup_filter(struct push_job *j)
{
	struct rocks_queue *q = j->q;
	int64_t expiry = j->now + j->s.dedup_window_ms;

	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < j->n; i++) {
		uint8_t key[DEDUP_KEY_LEN];

		/* with dedup=name, a push without a name has no key */
		if (!j->s.dedup || (j->s.dedup == 1 && !j->p[i].name)) {
			j->keep[j->nkeep++] = i;
			continue;
		}
		dedup_key(j->s.dedup, &j->p[i], key);
		j->dup_key[i] = dup_within(j->keys, j->nkeys, key);
		if (j->dup_key[i] ||
		    dedup_seen(&q->dedup, key, j->now, &j->dup_id[i]))
			continue;
		j->key_keep[j->nkeys] = j->nkeep;
		memcpy(j->keys[j->nkeys++], key, DEDUP_KEY_LEN);
		dedup_add(&q->dedup, key, expiry, 0);
		j->keep[j->nkeep++] = i;
	}
	pthread_mutex_unlock(&q->lock);
}

/* The push failed: its keys no longer count. */
static void dedup_unfilter(struct push_job *j)
{
	if (!j->s.dedup)
		return;
	pthread_mutex_lock(&j->q->lock);
	for (size_t i = 0; i < j->nkeys; i++)
		dedup_del(&j->q->dedup, j->keys[i]);
	pthread_mutex_unlock(&j->q->lock);
}

static void dedup_persist(struct push_job *j, struct store_batch *b)
{
	int64_t expiry = j->now + j->s.dedup_window_ms;

	for (size_t i = 0; i < j->nkeys; i++)
		batch_put_dedup(b, j->q->qid, j->keys[i], expiry,
				j->d[0].msgs[j->key_keep[i]].id);
	if (j->n > j->nkeep)
		msg_count(b, j->q, CNT_DEDUPED, j->n - j->nkeep);
	pthread_mutex_lock(&j->q->lock);
	dedup_sweep(j->q, b, j->now);
	pthread_mutex_unlock(&j->q->lock);
}

/* The push is written: its keys name their messages; every dropped
 * push's slot in ids (if not NULL) gets the id of the message kept. */
static void dedup_done(struct push_job *j, uint64_t *ids)
{
	if (!j->s.dedup)
		return;
	pthread_mutex_lock(&j->q->lock);
	for (size_t k = 0; j->nkeep && k < j->nkeys; k++)
		dedup_set_id(&j->q->dedup, j->keys[k],
			     j->d[0].msgs[j->key_keep[k]].id);
	pthread_mutex_unlock(&j->q->lock);
	for (size_t i = 0; ids && i < j->n; i++) {
		if (j->dup_key[i])
			ids[i] = j->d[0].msgs[j->key_keep[j->dup_key[i] - 1]].id;
		else if (j->dup_id[i])
			ids[i] = j->dup_id[i];
	}
}

/* -------------------------------------------------------- destinations */

/* Opens the destinations: the fanout queues, or q itself. */
static int dests_open(struct push_job *j)
{
	const char *list = j->s.fanout;
	char t[SPOOL_NAME_MAX + 1];

	j->d = calloc(fanout_count(list) ?: 1, sizeof(*j->d));
	if (!j->d)
		return -ENOMEM;
	if (!j->s.fanout[0]) {
		atomic_fetch_add(&j->q->refs, 1);
		j->d[j->nd++].q = j->q;
		return 0;
	}
	while (fanout_next(&list, t)) {
		int rc = queue_get(j->q->db, t, &j->d[j->nd].q);

		if (rc)
			return rc;
		j->nd++;
	}
	return 0;
}

/* Reserves room for the new messages in every destination. */
static int dests_reserve(struct push_job *j)
{
	for (size_t i = 0; i < j->nd; i++) {
		struct dest *d = &j->d[i];
		int rc = 0;

		pthread_mutex_lock(&d->q->lock);
		rc = queue_room(d->q, j->nkeep);
		if (!rc)
			d->q->pending += j->nkeep;
		d->s = d->q->set;
		pthread_mutex_unlock(&d->q->lock);
		d->reserved = !rc;
		if (!rc && d->q != j->q)
			rc = push_check(j->p, j->n, d->s.max_size);
		if (rc)
			return rc;
	}
	return 0;
}

static void dests_close(struct push_job *j)
{
	for (size_t i = 0; i < j->nd; i++) {
		struct dest *d = &j->d[i];

		if (d->reserved) {
			pthread_mutex_lock(&d->q->lock);
			d->q->pending -= j->nkeep;
			pthread_mutex_unlock(&d->q->lock);
		}
		free(d->msgs);
		queue_unref(d->q);
	}
	free(j->d);
}

/* ------------------------------------------------------------ building */

/* Adds every message of every destination to b; ids are consecutive, in
 * destination order then push order. */
static int push_build(struct push_job *j, struct store_batch *b)
{
	uint64_t id = id_alloc(j->q->db, j->nkeep * j->nd, b);

	for (size_t i = 0; i < j->nd; i++) {
		j->d[i].msgs = calloc(j->nkeep, sizeof(struct msg));
		if (!j->d[i].msgs)
			return -ENOMEM;
	}
	for (size_t k = 0; k < j->nkeep; k++) {
		const struct spool_push *p = &j->p[j->keep[k]];
		size_t len;
		char *rec = body_encode(p, &len);

		if (!rec)
			return -ENOMEM;
		for (size_t i = 0; i < j->nd; i++) {
			struct msg *m = &j->d[i].msgs[k];

			push_msg_init(m, id + i * j->nkeep + k, p, &j->d[i].s,
				      j->now);
			batch_put_body(b, m->id, rec, len);
			batch_put_idx(b, m, j->d[i].q->qid);
		}
		free(rec);
	}
	for (size_t i = 0; i < j->nd; i++)
		msg_count(b, j->d[i].q, CNT_PUSHED, j->nkeep);
	return 0;
}

/* Hands the written messages of d to its queue, then wakes readers and
 * the timer as needed. */
static void dest_publish(struct dest *d, size_t n)
{
	struct rocks_queue *q = d->q;
	int64_t due = INT64_MAX;
	int visible = 0;

	pthread_mutex_lock(&q->lock);
	q->pending -= n;
	d->reserved = false;
	for (size_t i = 0; i < n; i++) {
		struct node *m = node_alloc(&q->db->arena);

		if (!m)
			abort(); /* written but not servable: see heap_push */
		node_set(m, &d->msgs[i]);
		m->heap_idx = HEAP_NONE;
		queue_hash_insert(q, m);
		queue_place(q, m);
		q->bytes += m->size;
		if (m->state == SPOOL_VISIBLE)
			visible = 1;
		else if (d->msgs[i].due_ms < due)
			due = d->msgs[i].due_ms;
	}
	q->cnt[CNT_PUSHED] += n;
	if (d->s.retention_ms && n)
		due = d->msgs[0].sent_ms + d->s.retention_ms < due ?
		      d->msgs[0].sent_ms + d->s.retention_ms : due;
	pthread_mutex_unlock(&q->lock);
	if (visible)
		core_wake(&q->pub);
	if (due != INT64_MAX)
		timer_kick(q->db, due);
}

/* Writes the job: one batch, durable. */
static int push_write(struct push_job *j)
{
	struct store_batch *b = store_batch_new(j->q->db->st);
	int rc = b ? push_build(j, b) : -ENOMEM;

	if (!rc) {
		dedup_persist(j, b);
		rc = store_write(j->q->db->st, b,
				 STORE_DURABLE | STORE_GROWS);
		if (rc)
			id_write_failed(j->q->db);
	}
	store_batch_free(b);
	return rc;
}

/* Only duplicates: count them (the producer's push still succeeds). */
static int push_counted_only(struct push_job *j)
{
	struct store_batch *b = store_batch_new(j->q->db->st);
	int rc = b ? 0 : -ENOMEM;

	if (b) {
		msg_count(b, j->q, CNT_DEDUPED, j->n);
		rc = store_write(j->q->db->st, b, 0);
		store_batch_free(b);
	}
	if (!rc) {
		pthread_mutex_lock(&j->q->lock);
		j->q->cnt[CNT_DEDUPED] += j->n;
		pthread_mutex_unlock(&j->q->lock);
	}
	return rc;
}

static int push_job_init(struct push_job *j, struct rocks_queue *q,
			 const struct spool_push *p, size_t n)
{
	int rc;

	memset(j, 0, sizeof(*j));
	j->q = q;
	j->p = p;
	j->n = n;
	j->now = db_now(q->db);
	rc = rocks_settings_get(&q->pub, &j->s);
	if (!rc)
		rc = push_check(p, n, j->s.max_size);
	if (rc)
		return rc;
	j->keep = calloc(n, sizeof(*j->keep));
	if (j->s.dedup) {
		j->keys = calloc(n, DEDUP_KEY_LEN);
		j->key_keep = calloc(n, sizeof(*j->key_keep));
		j->dup_id = calloc(n, sizeof(*j->dup_id));
		j->dup_key = calloc(n, sizeof(*j->dup_key));
		if (!j->keys || !j->key_keep || !j->dup_id || !j->dup_key)
			return -ENOMEM;
	}
	if (!j->keep)
		return -ENOMEM;
	return 0;
}

int rocks_push_room(spool_queue *pq, size_t n)
{
	struct push_job j;
	int rc;

	memset(&j, 0, sizeof(j));
	j.q = RQ(pq);
	rc = rocks_settings_get(pq, &j.s);
	if (!rc)
		rc = dests_open(&j);
	for (size_t i = 0; !rc && i < j.nd; i++) {
		pthread_mutex_lock(&j.d[i].q->lock);
		rc = queue_room(j.d[i].q, n);
		pthread_mutex_unlock(&j.d[i].q->lock);
	}
	dests_close(&j);
	return rc;
}

int rocks_push_batch(spool_queue *pq, const struct spool_push *p, size_t n,
		     uint64_t *first_id, uint64_t *ids)
{
	struct rocks_queue *q = RQ(pq);
	struct push_job j;
	int rc;

	rc = push_job_init(&j, q, p, n);
	if (rc)
		goto out_free;
	dedup_filter(&j);
	if (j.nkeep == 0) {
		rc = push_counted_only(&j);
		if (!rc)
			dedup_done(&j, ids);
		goto out_free;
	}
	rc = dests_open(&j);
	if (!rc)
		rc = dests_reserve(&j);
	if (!rc)
		rc = push_write(&j);
	if (rc) {
		dedup_unfilter(&j);
		goto out_close;
	}
	for (size_t i = 0; i < j.nd; i++)
		dest_publish(&j.d[i], j.nkeep);
	if (j.n > j.nkeep) {
		pthread_mutex_lock(&q->lock);
		q->cnt[CNT_DEDUPED] += j.n - j.nkeep;
		pthread_mutex_unlock(&q->lock);
	}
	if (first_id)
		*first_id = j.d[0].msgs[0].id;
	for (size_t k = 0; ids && k < j.nkeep; k++)
		ids[j.keep[k]] = j.d[0].msgs[k].id;
	dedup_done(&j, ids);
out_close:
	dests_close(&j);
out_free:
	free(j.keep);
	free(j.keys);
	free(j.key_keep);
	free(j.dup_id);
	free(j.dup_key);
	return rc;
}
