/*
 * msg.c - what happens to messages in the RocksDB store: lease, ack,
 * release, extend, delete, move, pop, purge, reads of body records,
 * listings and stats (pushes are in push.c; the rules are the core's).
 *
 * Every change follows one pattern (see rocks.h): under q->lock take the
 * message out of its tree and heap and mark it busy; write one batch with
 * no lock held; under q->lock again apply the change, or put the message
 * back as it was if the write failed. A busy message belongs to the one
 * operation that marked it; every other operation sees it as absent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rocks.h"
#include "kv.h"

static void fill_info(const struct node *m, struct spool_msg_info *info)
{
	struct msg v;

	if (!info)
		return;
	node_get(m, &v);
	msg_info(&v, info);
}

/* After a change that made next visible or set a timer. */
static void after_change(struct rocks_queue *q, const struct msg *next)
{
	if (next->state == SPOOL_VISIBLE)
		core_wake(&q->pub);
	else if (next->state == SPOOL_DELAYED || next->state == SPOOL_LEASED)
		timer_kick(q->db, next->due_ms);
}

/*
 * Rewrites the index record of message id (state in states) with the fields
 * change() sets on a copy, as one batch (with the counter c bumped when
 * c >= 0). The generic state change behind lease, release, extend, corrupt.
 */
typedef int (*change_fn)(struct rocks_queue *q, struct msg *next, void *arg);

static int update(struct rocks_queue *q, uint64_t id, unsigned states,
		  int durable, change_fn change, void *arg, int c,
		  struct spool_msg_info *info)
{
	struct store_batch *b = batch(q);
	struct node *m;
	struct msg next;
	int rc;

	if (!b)
		return -ENOMEM;
	pthread_mutex_lock(&q->lock);
	m = grab(q, id, states);
	if (m) {
		node_get(m, &next);
		rc = change(q, &next, arg);
		if (rc) {
			settle(q, m, NULL);
			m = NULL;
		}
	} else {
		rc = -ENOENT;
	}
	pthread_mutex_unlock(&q->lock);
	if (!m)
		goto out;
	batch_put_idx(b, &next, q->qid);
	if (c >= 0)
		msg_count(b, q, c, 1);
	rc = store_write(q->db->st, b, durable);
	pthread_mutex_lock(&q->lock);
	settle(q, m, rc ? NULL : &next);
	if (!rc && c >= 0)
		q->cnt[c]++;
	fill_info(m, info);
	pthread_mutex_unlock(&q->lock);
	if (!rc)
		after_change(q, &next);
out:
	store_batch_free(b);
	return rc;
}

/* ------------------------------------------------------------- bodies */

/* Reads and verifies the body record of id into a malloc'd *rec. */
static int load_record(struct rocks_queue *q, uint64_t id, char **rec,
		       size_t *len, struct body_view *bv)
{
	int rc;

	rc = body_load(q->db->st, id, rec, len);
	if (rc)
		return rc;
	rc = body_decode(*rec, *len, bv);
	if (rc) {
		free(*rec);
		*rec = NULL;
	}
	return rc;
}

static int to_corrupt(struct rocks_queue *q, struct msg *next, void *arg)
{
	(void)q, (void)arg;
	next->state = SPOOL_CORRUPT;
	return 0;
}

int msg_set_corrupt(struct rocks_queue *q, uint64_t id)
{
	int rc = update(q, id, SPOOL_VISIBLE | SPOOL_DELAYED | SPOOL_LEASED, 1,
			to_corrupt, NULL, -1, NULL);

	if (!rc)
		core_log_corrupt(&q->pub, id);
	return rc;
}

int rocks_msg_set_corrupt(spool_queue *pq, uint64_t id)
{
	return msg_set_corrupt(RQ(pq), id);
}

/* The body record of a message, for api.c to read: -ENOENT unknown, -EIO
 * corrupt (a record that cannot be read is set aside here; one that fails
 * its checksum, by api.c through msg_set_corrupt). */
int rocks_msg_record(spool_queue *pq, uint64_t id, char **rec,
		     size_t *len)
{
	struct rocks_queue *q = RQ(pq);
	struct node *m;
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	m = q->alive ? queue_hash_find(q, id) : NULL;
	if (!m)
		rc = -ENOENT;
	else if (m->state == SPOOL_CORRUPT)
		rc = -EIO;
	pthread_mutex_unlock(&q->lock);
	if (rc)
		return rc;
	rc = body_load(q->db->st, id, rec, len);
	if (rc == -EIO)
		msg_set_corrupt(q, id);
	return rc;
}

int rocks_msg_rename(spool_queue *pq, uint64_t id, const char *name)
{
	struct rocks_queue *q = RQ(pq);
	struct store_batch *b;
	struct body_view bv;
	struct node *m;
	char *rec = NULL, *nrec = NULL;
	size_t len, nlen = 0;
	struct msg cur;
	int rc;

	b = batch(q);
	if (!b)
		return -ENOMEM;
	pthread_mutex_lock(&q->lock);
	m = grab(q, id, SPOOL_VISIBLE | SPOOL_DELAYED | SPOOL_LEASED);
	pthread_mutex_unlock(&q->lock);
	rc = m ? load_record(q, id, &rec, &len, &bv) : -ENOENT;
	if (!rc && !(nrec = body_renamed(&bv, name, &nlen)))
		rc = -ENOMEM;
	if (!rc) {
		batch_put_body(b, id, nrec, nlen);
		rc = store_write(q->db->st, b, STORE_DURABLE);
	}
	if (m) {
		pthread_mutex_lock(&q->lock);
		settle(q, m, NULL);
		node_get(m, &cur);
		pthread_mutex_unlock(&q->lock);
		after_change(q, &cur);
	}
	if (rc == -EIO)
		msg_set_corrupt(q, id);
	free(rec);
	free(nrec);
	store_batch_free(b);
	return rc;
}

int rocks_msg_stat(spool_queue *pq, uint64_t id,
		   struct spool_msg_info *out)
{
	struct rocks_queue *q = RQ(pq);
	struct node *m;
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	m = q->alive ? queue_hash_find(q, id) : NULL;
	if (m)
		fill_info(m, out);
	else
		rc = -ENOENT;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* ------------------------------------------------------------ leasing */

struct lease_arg {
	int64_t now;
	int64_t vt;
};

static int to_leased(struct rocks_queue *q, struct msg *next, void *arg)
{
	const struct lease_arg *a = arg;

	(void)q;
	state_lease(next, a->now, a->vt);
	return 0;
}

/* Runs q's timers first if one is due, so that leasing never waits on the
 * timer thread for a message whose lease or delay has already run out. */
static void run_due_timers(struct rocks_queue *q, int64_t now)
{
	struct node *top;
	int due;

	pthread_mutex_lock(&q->lock);
	top = heap_top(&q->timers);
	due = top && node_due(top) <= now;
	pthread_mutex_unlock(&q->lock);
	if (due)
		queue_run_timers(q, now);
}

/* Takes the head of the ready tree; q->lock held. */
static int grab_head(struct rocks_queue *q, struct node **out)
{
	struct node *m;

	if (!q->alive)
		return -ENOENT;
	m = tree_first(&q->ready);
	if (!m || q->set.paused)
		return -EAGAIN;
	queue_unplace(q, m);
	m->busy = 1;
	*out = m;
	return 0;
}

/*
 * Takes the next visible message whose record reads back intact (setting
 * aside any that does not) and returns it busy, with its record.
 */
static int take_next(struct rocks_queue *q, struct node **out, char **rec,
		     size_t *len, struct body_view *bv)
{
	for (;;) {
		struct node *m;
		struct msg next;
		int rc, exhausted;

		pthread_mutex_lock(&q->lock);
		rc = grab_head(q, &m);
		exhausted = !rc && msg_exhausted(q, m);
		pthread_mutex_unlock(&q->lock);
		if (rc)
			return rc;
		if (exhausted && msg_dead_letter(q, &m, 1) == 0)
			continue;
		rc = load_record(q, m->id, rec, len, bv);
		if (rc == 0) {
			*out = m;
			return 0;
		}
		node_get(m, &next);
		next.state = SPOOL_CORRUPT;
		if (rc == -EIO) {
			struct store_batch *b = batch(q);

			if (b)
				batch_put_idx(b, &next, q->qid);
			if (!b || store_write(q->db->st, b, 0) != 0)
				next.state = m->state;
			store_batch_free(b);
			core_log_corrupt(&q->pub, m->id);
		}
		pthread_mutex_lock(&q->lock);
		settle(q, m, rc == -EIO ? &next : NULL);
		pthread_mutex_unlock(&q->lock);
		if (rc != -EIO)
			return rc;
	}
}

int rocks_lease_next(spool_queue *pq, int64_t vt_ms, void *buf, size_t len,
		     size_t *n, struct spool_msg_info *info)
{
	struct rocks_queue *q = RQ(pq);
	struct lease_arg a = { db_now(q->db), 0 };
	struct store_batch *b = batch(q);
	struct body_view bv;
	struct node *m;
	struct msg next;
	size_t reclen;
	char *rec;
	int rc;

	if (!b)
		return -ENOMEM;
	run_due_timers(q, a.now);
	rc = take_next(q, &m, &rec, &reclen, &bv);
	if (rc)
		goto out;
	pthread_mutex_lock(&q->lock);
	a.vt = vt_ms >= 0 ? vt_ms : q->set.visibility_timeout_ms;
	pthread_mutex_unlock(&q->lock);
	node_get(m, &next);
	to_leased(q, &next, &a);
	batch_put_idx(b, &next, q->qid);
	rc = store_write(q->db->st, b, 0);
	pthread_mutex_lock(&q->lock);
	settle(q, m, rc ? NULL : &next);
	fill_info(m, info);
	pthread_mutex_unlock(&q->lock);
	if (!rc) {
		*n = bv.body_len < len ? bv.body_len : len;
		if (*n)
			memcpy(buf, bv.body, *n);
		timer_kick(q->db, next.due_ms);
	}
	free(rec);
out:
	store_batch_free(b);
	return rc;
}

static int to_leased_checked(struct rocks_queue *q, struct msg *next, void *arg)
{
	struct lease_arg *a = arg;

	if (q->set.paused)
		return -EAGAIN;
	a->vt = q->set.visibility_timeout_ms;
	return to_leased(q, next, a);
}

int rocks_lease_id(spool_queue *pq, uint64_t id,
		   struct spool_msg_info *info)
{
	struct rocks_queue *q = RQ(pq);
	struct lease_arg a = { db_now(q->db), 0 };

	return update(q, id, SPOOL_VISIBLE, 0, to_leased_checked, &a, -1,
		      info);
}

static int to_visible(struct rocks_queue *q, struct msg *next, void *arg)
{
	const int *uncount = arg;

	state_release(next, db_now(q->db), uncount && *uncount);
	return 0;
}

int rocks_release(spool_queue *pq, uint64_t id, int uncount)
{
	return update(RQ(pq), id, SPOOL_LEASED, 1, to_visible, &uncount, -1,
		      NULL);
}

struct extend_arg {
	int64_t expiry_ms;
	uint32_t receives;      /* 0: any */
};

static int to_extended(struct rocks_queue *q, struct msg *next, void *arg)
{
	const struct extend_arg *a = arg;

	if (a->receives && next->receives != a->receives)
		return -ENOENT;
	state_extend(next, a->expiry_ms, db_now(q->db),
		     q->set.visibility_timeout_ms);
	return 0;
}

int rocks_lease_extend(spool_queue *pq, uint64_t id, uint32_t receives,
		       int64_t expiry_ms)
{
	struct extend_arg a = { expiry_ms, receives };

	return update(RQ(pq), id, SPOOL_LEASED, 0, to_extended, &a, -1, NULL);
}

/* ----------------------------------------------------------- deleting */

static int remove_msg(struct rocks_queue *q, struct node *m, int c)
{
	return remove_msgs(q, &m, 1, c, 1);
}

/* Grabs message id for an ack, or a delete (need_received 0): with
 * need_received, only a message leased before (receives > 0), and when
 * receives > 0, only while its receive count is receives. q->lock held. */
static struct node *grab_where(struct rocks_queue *q, uint64_t id,
			       unsigned states, int need_received,
			       uint32_t receives)
{
	struct node *m = grab(q, id, states);

	if (m && need_received &&
	    ((m->state == SPOOL_VISIBLE && m->receives == 0) ||
	     (receives && m->receives != receives))) {
		settle(q, m, NULL);
		m = NULL;
	}
	return m;
}

static int delete_where(struct rocks_queue *q, uint64_t id, unsigned states,
			int c, int need_received, uint32_t receives)
{
	struct node *m;

	pthread_mutex_lock(&q->lock);
	m = grab_where(q, id, states, need_received, receives);
	pthread_mutex_unlock(&q->lock);
	return m ? remove_msg(q, m, c) : -ENOENT;
}

int rocks_ack(spool_queue *pq, uint64_t id, uint32_t receives)
{
	return delete_where(RQ(pq), id, SPOOL_LEASED | SPOOL_VISIBLE,
			    CNT_ACKED, 1, receives);
}

/* Grabs every ackable one (an id repeated is busy the second time: its
 * entry is -ENOENT), then removes them in one batch. */
int rocks_ack_batch(spool_queue *pq, const uint64_t *ids,
		    const uint32_t *receives, size_t n, int *results)
{
	struct rocks_queue *q = RQ(pq);
	struct node **v = malloc(n * sizeof(*v));
	size_t k = 0;
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	if (!v)
		rc = -ENOMEM;
	else if (!q->alive)
		rc = -ENOENT;
	for (size_t i = 0; !rc && i < n; i++) {
		struct node *m = grab_where(q, ids[i],
					    SPOOL_LEASED | SPOOL_VISIBLE, 1,
					    receives ? receives[i] : 0);

		results[i] = m ? 0 : -ENOENT;
		if (m)
			v[k++] = m;
	}
	pthread_mutex_unlock(&q->lock);
	if (!rc && k)
		rc = remove_msgs(q, v, k, CNT_ACKED, 1);
	for (size_t i = 0; rc && i < n; i++)
		results[i] = rc;
	free(v);
	return rc;
}

int rocks_delete(spool_queue *pq, uint64_t id, unsigned states)
{
	return delete_where(RQ(pq), id, states, CNT_DELETED, 0, 0);
}

int rocks_pop(spool_queue *pq, void **body,
	      struct spool_msg_info *info)
{
	struct rocks_queue *q = RQ(pq);
	struct body_view bv;
	struct node *m;
	size_t reclen;
	char *rec;
	int rc;

	run_due_timers(q, db_now(q->db));
	rc = take_next(q, &m, &rec, &reclen, &bv);
	if (rc)
		return rc;
	*body = NULL;
	if (bv.body_len && !(*body = malloc(bv.body_len))) {
		pthread_mutex_lock(&q->lock);
		settle(q, m, NULL);
		pthread_mutex_unlock(&q->lock);
		free(rec);
		return -ENOMEM;
	}
	if (bv.body_len)
		memcpy(*body, bv.body, bv.body_len);
	free(rec);
	fill_info(m, info);
	rc = remove_msg(q, m, CNT_ACKED);
	if (rc) {
		free(*body);
		*body = NULL;
	}
	return rc;
}

int rocks_purge(spool_queue *pq, unsigned states, uint64_t *count_out)
{
	static const enum spool_state order[] = { SPOOL_VISIBLE, SPOOL_DELAYED,
						  SPOOL_LEASED, SPOOL_CORRUPT };
	struct rocks_queue *q = RQ(pq);
	struct node **v = NULL;
	size_t n = 0, room = 1;
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < 4; i++)
		if (states & order[i])
			room += queue_tree(q, order[i])->n;
	if (!q->alive)
		rc = -ENOENT;
	else if (!(v = malloc(room * sizeof(*v))))
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < 4; i++) {
		struct tree *t = queue_tree(q, order[i]);

		if (states & order[i])
			n += grab_many(q, t, v + n, t->n);
	}
	pthread_mutex_unlock(&q->lock);
	if (!rc && n)
		rc = remove_msgs(q, v, n, CNT_DELETED, 1);
	if (count_out)
		*count_out = rc ? 0 : n;
	free(v);
	return rc;
}

/* ------------------------------------------------------------- moving */

int rocks_move(spool_queue *pq, uint64_t id, unsigned states,
	       spool_queue *pdst)
{
	struct rocks_queue *q = RQ(pq), *dst = RQ(pdst);
	uint64_t got;
	struct node *m;
	int rc;

	if (dst == q)
		return update(q, id, states, 1, to_visible, NULL, -1, NULL);
	rc = move_reserve(dst, 1, &got);
	if (rc)
		return rc;
	if (!got)
		return -EDQUOT;
	pthread_mutex_lock(&q->lock);
	m = grab(q, id, states);
	pthread_mutex_unlock(&q->lock);
	rc = m ? move_write(q, dst, &m, 1, -1) : -ENOENT;
	if (rc)
		move_undo(q, dst, &m, m ? 1 : 0, 1);
	else
		move_publish(q, dst, &m, 1, 1);
	return rc;
}

#define MOVE_STEP 1000

/* One step of spool_move_all: moves up to want messages. */
static int move_step(struct rocks_queue *q, struct rocks_queue *dst,
		     uint64_t want, uint64_t *moved)
{
	struct node *v[MOVE_STEP];
	uint64_t got;
	size_t n;
	int rc = move_reserve(dst, want, &got);

	*moved = 0;
	if (rc)
		return rc;
	pthread_mutex_lock(&q->lock);
	n = q->alive ? grab_many(q, &q->ready, v, got) : 0;
	rc = (!q->alive) ? -ENOENT : (!got && q->ready.n) ? -EDQUOT : 0;
	pthread_mutex_unlock(&q->lock);
	if (!rc && n)
		rc = move_write(q, dst, v, n, -1);
	if (rc)
		move_undo(q, dst, v, n, got);
	else
		move_publish(q, dst, v, n, got);
	*moved = rc ? 0 : n;
	return rc;
}

int rocks_move_all(spool_queue *pq, spool_queue *pdst, uint64_t max,
		   uint64_t *moved)
{
	struct rocks_queue *q = RQ(pq), *dst = RQ(pdst);
	uint64_t total = 0, step;
	int rc = 0;

	do {
		uint64_t want = max ? max - total : MOVE_STEP;

		if (want > MOVE_STEP)
			want = MOVE_STEP;
		rc = move_step(q, dst, want, &step);
		total += step;
	} while (!rc && step && (!max || total < max));
	if (moved)
		*moved = total;
	return rc;
}

/* ------------------------------------------------------------ listing */

ssize_t rocks_list(spool_queue *pq, enum spool_state state,
		   struct spool_cursor *cur, uint64_t *ids, size_t max)
{
	struct rocks_queue *q = RQ(pq);
	struct tree *t = queue_tree(q, state);
	struct node key, *m, *last = NULL;
	ssize_t n = 0;

	memset(&key, 0, sizeof(key));
	key.id = cur->id;
	key.priority = cur->priority;
	pthread_mutex_lock(&q->lock);
	if (!q->alive) {
		pthread_mutex_unlock(&q->lock);
		return -ENOENT;
	}
	m = cur->started ? tree_after(t, &key) : tree_first(t);
	for (; m && (size_t)n < max; m = tree_after(t, m)) {
		ids[n++] = m->id;
		last = m;
	}
	if (last) {
		cur->id = last->id;
		cur->priority = last->priority;
		cur->started = 1;
	}
	pthread_mutex_unlock(&q->lock);
	return n;
}

/* -------------------------------------------------------------- stats */

int rocks_stats_get(spool_queue *pq, struct spool_stats *s)
{
	struct rocks_queue *q = RQ(pq);
	int64_t now = db_now(q->db), oldest = INT64_MAX;
	struct node *m;

	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&q->lock);
	if (!q->alive) {
		pthread_mutex_unlock(&q->lock);
		return -ENOENT;
	}
	s->visible = q->nstate[0];
	s->delayed = q->nstate[1];
	s->leased = q->nstate[2];
	s->corrupt = q->nstate[3];
	s->bytes = q->bytes;
	s->pushed_total = q->cnt[CNT_PUSHED];
	s->acked_total = q->cnt[CNT_ACKED];
	s->expired_total = q->cnt[CNT_EXPIRED];
	s->dead_total = q->cnt[CNT_DEAD];
	s->deduped_total = q->cnt[CNT_DEDUPED];
	s->deleted_total = q->cnt[CNT_DELETED];
	m = queue_oldest_visible(q);
	if (m)
		oldest = node_sent(m);
	pthread_mutex_unlock(&q->lock);
	if (oldest != INT64_MAX && now > oldest)
		s->oldest_visible_age_ms = now - oldest;
	return 0;
}
