/*
 * msg.c - what happens to messages: push, lease, ack, release, extend,
 * delete, move, pop, purge, reads of bodies and attributes, listings and
 * stats.
 *
 * Every change follows one pattern (see engine_i.h): under q->lock take the
 * message out of its tree and heap and mark it busy; write one batch with
 * no lock held; under q->lock again apply the change, or put the message
 * back as it was if the write failed. A busy message belongs to the one
 * operation that marked it; every other operation sees it as absent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"
#include "store.h"

/* Messages counted against max_depth: all held, and pushes in flight. */
uint64_t queue_depth(const spool_queue *q)
{
	return q->hcount + q->pending;
}

void queue_counters_merge(struct store_batch *b, uint32_t qid,
			  const uint64_t delta[CNT_N])
{
	char key[QKEY_LEN], v[CNT_N * 8];

	key_queue('C', qid, key);
	counters_encode(delta, v);
	store_batch_merge(b, CF_META, key, QKEY_LEN, v, sizeof(v));
}

/* Adds n to counter c, in the batch and (once it is written) in memory. */
void msg_count(struct store_batch *b, spool_queue *q, int c, uint64_t n)
{
	uint64_t delta[CNT_N] = { 0 };

	delta[c] = n;
	queue_counters_merge(b, q->qid, delta);
}

void msg_put_idx(struct store_batch *b, const struct msg *m, uint32_t qid)
{
	char key[ID_KEY_LEN], val[IDX_REC_LEN];
	struct idx_rec r;

	idx_from_msg(m, qid, &r);
	key_id(m->id, key);
	idx_encode(&r, val);
	store_batch_put(b, CF_IDX, key, ID_KEY_LEN, val, IDX_REC_LEN);
}

static void delete_msg(struct store_batch *b, uint64_t id)
{
	char key[ID_KEY_LEN];

	key_id(id, key);
	store_batch_delete(b, CF_IDX, key, ID_KEY_LEN);
	store_batch_delete(b, CF_BODY, key, ID_KEY_LEN);
}

static void fill_info(const struct node *m, struct spool_msg_info *info)
{
	struct msg v;

	if (!info)
		return;
	node_get(m, &v);
	info->id = v.id;
	info->state = v.state;
	info->priority = v.priority;
	info->receives = v.receives;
	info->size = v.size;
	info->sent_ms = v.sent_ms;
	info->due_ms = v.due_ms;
	info->first_received_ms = v.first_recv_ms;
}

/* Takes message id out of its place if its state is in states; q->lock
 * held. NULL if there is no such message, or it is busy. */
static struct node *grab(spool_queue *q, uint64_t id, unsigned states)
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
static void settle(spool_queue *q, struct node *m, const struct msg *next)
{
	if (next) {
		queue_set_state(q, m, next->state);
		node_set(m, next);
	}
	m->busy = 0;
	queue_place(q, m);
}

/* Forgets m for good (deleted, or moved away); q->lock held. */
static void drop(spool_queue *q, struct node *m)
{
	queue_hash_remove(q, m);
	q->bytes -= m->size;
}

static struct store_batch *batch(spool_queue *q)
{
	return store_batch_new(q->db->st);
}

/* After a change that made next visible or set a timer. */
static void after_change(spool_queue *q, const struct msg *next)
{
	if (next->state == SPOOL_VISIBLE)
		queue_wake(q);
	else if (next->state == SPOOL_DELAYED || next->state == SPOOL_LEASED)
		timer_kick(q->db, next->due_ms);
}

/*
 * Rewrites the index record of message id (state in states) with the fields
 * change() sets on a copy, as one batch (with the counter c bumped when
 * c >= 0). The generic state change behind lease, release, extend, corrupt.
 */
typedef int (*change_fn)(spool_queue *q, struct msg *next, void *arg);

static int update(spool_queue *q, uint64_t id, unsigned states, int durable,
		  change_fn change, void *arg, int c,
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
	msg_put_idx(b, &next, q->qid);
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
static int load_record(spool_queue *q, uint64_t id, char **rec, size_t *len,
		       struct body_view *bv)
{
	char key[ID_KEY_LEN];
	int rc;

	key_id(id, key);
	rc = store_get(q->db->st, CF_BODY, key, ID_KEY_LEN, rec, len);
	if (rc)
		return rc;
	rc = body_decode(*rec, *len, bv);
	if (rc) {
		free(*rec);
		*rec = NULL;
	}
	return rc;
}

static void log_corrupt(spool_queue *q, uint64_t id)
{
	char text[SPOOL_ID_LEN + 1];

	spool_id_format(id, text);
	db_log(q->db, SPOOL_LOG_ERR,
	       "queue %s: message %s failed its checksum; set aside as corrupt",
	       q->name, text);
}

static int to_corrupt(spool_queue *q, struct msg *next, void *arg)
{
	(void)q, (void)arg;
	next->state = SPOOL_CORRUPT;
	return 0;
}

int msg_set_corrupt(spool_queue *q, uint64_t id)
{
	int rc = update(q, id, SPOOL_VISIBLE | SPOOL_DELAYED | SPOOL_LEASED, 1,
			to_corrupt, NULL, -1, NULL);

	if (!rc)
		log_corrupt(q, id);
	return rc;
}

/* Loads a message's record for reading: -ENOENT unknown, -EIO corrupt
 * (and set aside the first time). */
static int read_record(spool_queue *q, uint64_t id, char **rec, size_t *len,
		       struct body_view *bv)
{
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
	rc = load_record(q, id, rec, len, bv);
	if (rc == -EIO)
		msg_set_corrupt(q, id);
	return rc;
}

ssize_t spool_msg_read(spool_queue *q, uint64_t id, uint64_t off, void *buf,
		       size_t len)
{
	struct body_view bv;
	size_t reclen, n = 0;
	char *rec;
	int rc = read_record(q, id, &rec, &reclen, &bv);

	if (rc)
		return rc;
	if (off < bv.body_len) {
		n = bv.body_len - off < len ? bv.body_len - off : len;
		memcpy(buf, bv.body + off, n);
	}
	free(rec);
	return (ssize_t)n;
}

int spool_msg_name(spool_queue *q, uint64_t id,
		   char buf[SPOOL_MSG_NAME_MAX + 1])
{
	struct body_view bv;
	size_t reclen, n;
	char *rec;
	int rc = read_record(q, id, &rec, &reclen, &bv);

	if (rc)
		return rc;
	n = bv.name_len > SPOOL_MSG_NAME_MAX ? SPOOL_MSG_NAME_MAX : bv.name_len;
	memcpy(buf, bv.name, n);
	buf[n] = '\0';
	free(rec);
	return 0;
}

int spool_msg_rename(spool_queue *q, uint64_t id, const char *name)
{
	struct store_batch *b;
	struct body_view bv;
	struct node *m;
	char key[ID_KEY_LEN], *rec = NULL, *nrec = NULL;
	size_t len, nlen = 0;
	struct msg cur;
	int rc;

	if (strlen(name) > SPOOL_MSG_NAME_MAX)
		return -ENAMETOOLONG;
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
		key_id(id, key);
		store_batch_put(b, CF_BODY, key, ID_KEY_LEN, nrec, nlen);
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

/* Walks packed attributes: calls fn(name, nlen, value, vlen) for each;
 * stops when it returns non-zero. -EIO if the packing is broken. */
typedef int (*attr_fn)(void *arg, const char *name, size_t nlen,
		       const char *val, size_t vlen);

static int attrs_walk(const struct body_view *bv, attr_fn fn, void *arg)
{
	const unsigned char *p = (const unsigned char *)bv->attrs;
	const unsigned char *end = p + bv->attrs_len;

	while (p < end) {
		size_t nlen, vlen;
		int rc;

		if (end - p < 2)
			return -EIO;
		nlen = p[0] | (size_t)p[1] << 8;
		if ((size_t)(end - p) < 2 + nlen + 4)
			return -EIO;
		/* Names are C strings, never empty (setxattr): anything else
		 * would be listed under a name that getattr cannot find. */
		if (nlen == 0 || memchr(p + 2, 0, nlen))
			return -EIO;
		p += 2 + nlen;
		vlen = p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 |
		       (size_t)p[3] << 24;
		if ((size_t)(end - p) < 4 + vlen)
			return -EIO;
		rc = fn(arg, (const char *)p - nlen, nlen, (const char *)p + 4,
			vlen);
		if (rc)
			return rc;
		p += 4 + vlen;
	}
	return 0;
}

struct attr_get {
	const char *name;
	void *buf;
	size_t len;
	ssize_t result;
};

static int attr_get_one(void *arg, const char *name, size_t nlen,
			const char *val, size_t vlen)
{
	struct attr_get *g = arg;

	if (strlen(g->name) != nlen || memcmp(g->name, name, nlen) != 0)
		return 0;
	if (g->len && g->len < vlen)
		g->result = -ERANGE;
	else {
		if (g->len)
			memcpy(g->buf, val, vlen);
		g->result = (ssize_t)vlen;
	}
	return 1;
}

ssize_t spool_msg_getattr(spool_queue *q, uint64_t id, const char *name,
			  void *buf, size_t len)
{
	struct attr_get g = { name, buf, len, -ENODATA };
	struct body_view bv;
	size_t reclen;
	char *rec;
	int rc = read_record(q, id, &rec, &reclen, &bv);

	if (rc)
		return rc;
	rc = attrs_walk(&bv, attr_get_one, &g);
	free(rec);
	return rc < 0 ? rc : g.result;
}

struct attr_list {
	char *buf;
	size_t len, used;
};

static int attr_list_one(void *arg, const char *name, size_t nlen,
			 const char *val, size_t vlen)
{
	struct attr_list *l = arg;

	(void)val, (void)vlen;
	if (l->len && l->used + nlen + 1 <= l->len) {
		memcpy(l->buf + l->used, name, nlen);
		l->buf[l->used + nlen] = '\0';
	}
	l->used += nlen + 1;
	return 0;
}

ssize_t spool_msg_listattr(spool_queue *q, uint64_t id, char *buf, size_t len)
{
	struct attr_list l = { buf, len, 0 };
	struct body_view bv;
	size_t reclen;
	char *rec;
	int rc = read_record(q, id, &rec, &reclen, &bv);

	if (rc)
		return rc;
	rc = attrs_walk(&bv, attr_list_one, &l);
	free(rec);
	if (rc < 0)
		return rc;
	if (len && l.used > len)
		return -ERANGE;
	return (ssize_t)l.used;
}

int spool_msg_stat(spool_queue *q, uint64_t id, struct spool_msg_info *out)
{
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

static int move_reserve(spool_queue *dst, uint64_t want, uint64_t *got);
static void move_publish(spool_queue *q, spool_queue *dst, struct node **v,
			 size_t n, uint64_t reserved);
static int move_write(spool_queue *q, spool_queue *dst, struct node **v,
		      size_t n, int c);

/* -------------------------------------------------------- dead letters */

int msg_exhausted(const spool_queue *q, const struct node *m)
{
	return q->set.max_receives && m->receives >= q->set.max_receives;
}

/* Opens q's dead-letter queue, creating it (with q's owner and mode) on
 * demand. */
static int dead_letter_open(spool_queue *q, spool_queue **out)
{
	char name[SPOOL_NAME_MAX + 8];
	struct spool_queue_attr a;
	int rc;

	pthread_mutex_lock(&q->lock);
	if (q->set.dead_letter[0])
		snprintf(name, sizeof(name), "%s", q->set.dead_letter);
	else
		snprintf(name, sizeof(name), "%s.dead", q->name);
	a = q->attr;
	pthread_mutex_unlock(&q->lock);
	rc = spool_queue_open(q->db, name, out);
	if (rc != -ENOENT)
		return rc;
	rc = spool_queue_create(q->db, name, &a);
	if (rc && rc != -EEXIST)
		return rc;
	return spool_queue_open(q->db, name, out);
}

int msg_dead_letter(spool_queue *q, struct node **v, size_t n)
{
	spool_queue *dlq;
	uint64_t got = 0;
	int rc = dead_letter_open(q, &dlq);

	if (rc) {
		db_log(q->db, SPOOL_LOG_WARN, "queue %s: no dead-letter queue "
		       "(%s); messages stay", q->name, strerror(-rc));
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
	spool_queue_close(dlq);
	return rc;
}

/* ------------------------------------------------------------ leasing */

struct lease_arg {
	int64_t now;
	int64_t vt;
};

static int to_leased(spool_queue *q, struct msg *next, void *arg)
{
	const struct lease_arg *a = arg;

	(void)q;
	next->state = SPOOL_LEASED;
	next->receives++;
	next->due_ms = a->now + a->vt;
	if (!next->first_recv_ms)
		next->first_recv_ms = a->now;
	return 0;
}

/* Runs q's timers first if one is due, so that leasing never waits on the
 * timer thread for a message whose lease or delay has already run out. */
static void run_due_timers(spool_queue *q, int64_t now)
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
static int grab_head(spool_queue *q, struct node **out)
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
static int take_next(spool_queue *q, struct node **out, char **rec,
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
				msg_put_idx(b, &next, q->qid);
			if (!b || store_write(q->db->st, b, 0) != 0)
				next.state = m->state;
			store_batch_free(b);
			log_corrupt(q, m->id);
		}
		pthread_mutex_lock(&q->lock);
		settle(q, m, rc == -EIO ? &next : NULL);
		pthread_mutex_unlock(&q->lock);
		if (rc != -EIO)
			return rc;
	}
}

int spool_lease_next(spool_queue *q, void *buf, size_t len, size_t *n,
		     struct spool_msg_info *info)
{
	struct lease_arg a = { spool_now(q->db), 0 };
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
	a.vt = q->set.visibility_timeout_ms;
	pthread_mutex_unlock(&q->lock);
	node_get(m, &next);
	to_leased(q, &next, &a);
	msg_put_idx(b, &next, q->qid);
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

static int to_leased_checked(spool_queue *q, struct msg *next, void *arg)
{
	struct lease_arg *a = arg;

	if (q->set.paused)
		return -EAGAIN;
	a->vt = q->set.visibility_timeout_ms;
	return to_leased(q, next, a);
}

int spool_lease_id(spool_queue *q, uint64_t id, struct spool_msg_info *info)
{
	struct lease_arg a = { spool_now(q->db), 0 };

	return update(q, id, SPOOL_VISIBLE, 0, to_leased_checked, &a, -1,
		      info);
}

static int to_visible(spool_queue *q, struct msg *next, void *arg)
{
	const int *uncount = arg;

	next->state = SPOOL_VISIBLE;
	next->due_ms = spool_now(q->db);
	if (uncount && *uncount && next->receives > 0)
		next->receives--;
	return 0;
}

int spool_release(spool_queue *q, uint64_t id, int uncount)
{
	return update(q, id, SPOOL_LEASED, 1, to_visible, &uncount, -1, NULL);
}

static int to_extended(spool_queue *q, struct msg *next, void *arg)
{
	int64_t expiry = *(const int64_t *)arg, now = spool_now(q->db);

	if (expiry < 0)
		expiry = now + q->set.visibility_timeout_ms;
	if (expiry <= now) {
		next->state = SPOOL_VISIBLE;
		next->due_ms = now;
	} else {
		next->due_ms = expiry;
	}
	return 0;
}

int spool_lease_extend(spool_queue *q, uint64_t id, int64_t expiry_ms)
{
	return update(q, id, SPOOL_LEASED, 0, to_extended, &expiry_ms, -1,
		      NULL);
}

/* ----------------------------------------------------------- deleting */

int remove_msgs(spool_queue *q, struct node **v, size_t n, int c,
		int durable)
{
	struct store_batch *b = batch(q);
	int rc = b ? 0 : -ENOMEM;

	for (size_t i = 0; b && i < n; i++)
		delete_msg(b, v[i]->id);
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

static int remove_msg(spool_queue *q, struct node *m, int c)
{
	return remove_msgs(q, &m, 1, c, 1);
}

static int delete_where(spool_queue *q, uint64_t id, unsigned states, int c,
			int need_received)
{
	struct node *m;

	pthread_mutex_lock(&q->lock);
	m = grab(q, id, states);
	if (m && need_received && m->state == SPOOL_VISIBLE &&
	    m->receives == 0) {
		settle(q, m, NULL);
		m = NULL;
	}
	pthread_mutex_unlock(&q->lock);
	return m ? remove_msg(q, m, c) : -ENOENT;
}

int spool_ack(spool_queue *q, uint64_t id)
{
	return delete_where(q, id, SPOOL_LEASED | SPOOL_VISIBLE, CNT_ACKED, 1);
}

int spool_delete(spool_queue *q, uint64_t id, unsigned states)
{
	return delete_where(q, id, states, CNT_DELETED, 0);
}

int spool_pop(spool_queue *q, void **body, struct spool_msg_info *info)
{
	struct body_view bv;
	struct node *m;
	size_t reclen;
	char *rec;
	int rc;

	run_due_timers(q, spool_now(q->db));
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

/* Takes up to max messages from tree t into v (busy); q->lock held. */
static size_t grab_many(spool_queue *q, struct tree *t, struct node **v,
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

int spool_purge(spool_queue *q, uint64_t *count_out)
{
	struct node **v = NULL;
	size_t n = 0;
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	if (!q->alive)
		rc = -ENOENT;
	else if (!(v = malloc((q->ready.n + q->delayed.n + 1) * sizeof(*v))))
		rc = -ENOMEM;
	if (!rc) {
		n = grab_many(q, &q->ready, v, q->ready.n);
		n += grab_many(q, &q->delayed, v + n, q->delayed.n);
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

/* Reserves room for up to want messages in dst: returns how many fit. */
static int move_reserve(spool_queue *dst, uint64_t want, uint64_t *got)
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
static void move_publish(spool_queue *q, spool_queue *dst, struct node **v,
			 size_t n, uint64_t reserved)
{
	int64_t now = spool_now(q->db);

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
		queue_wake(dst);
}

static void move_undo(spool_queue *q, spool_queue *dst, struct node **v,
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
static int move_write(spool_queue *q, spool_queue *dst, struct node **v,
		      size_t n, int c)
{
	struct store_batch *b = batch(q);
	int64_t now = spool_now(q->db);
	int rc;

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct msg next;

		node_get(v[i], &next);
		next.state = SPOOL_VISIBLE;
		next.due_ms = now;
		msg_put_idx(b, &next, dst->qid);
	}
	if (c >= 0)
		msg_count(b, q, c, n);
	rc = store_write(q->db->st, b, STORE_DURABLE);
	store_batch_free(b);
	return rc;
}

int spool_move(spool_queue *q, uint64_t id, unsigned states, spool_queue *dst)
{
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
static int move_step(spool_queue *q, spool_queue *dst, uint64_t want,
		     uint64_t *moved)
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

int spool_move_all(spool_queue *q, spool_queue *dst, uint64_t max,
		   uint64_t *moved)
{
	uint64_t total = 0, step;
	int rc = 0;

	if (q == dst)
		return -EINVAL;
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

static struct tree *list_tree(spool_queue *q, enum spool_state state)
{
	switch (state) {
	case SPOOL_VISIBLE: return &q->ready;
	case SPOOL_DELAYED: return &q->delayed;
	case SPOOL_LEASED: return &q->leased;
	case SPOOL_CORRUPT: return &q->corrupt;
	}
	return NULL;
}

ssize_t spool_list(spool_queue *q, enum spool_state state,
		   struct spool_cursor *cur, uint64_t *ids, size_t max)
{
	struct tree *t = list_tree(q, state);
	struct node key, *m, *last = NULL;
	ssize_t n = 0;

	if (!t)
		return -EINVAL;
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

/* The oldest visible message is the first (lowest id) of some priority:
 * visit the head of each priority's run. q->lock held. */
static struct node *oldest_visible(spool_queue *q)
{
	struct node *m = tree_first(&q->ready), *old = NULL, key;

	memset(&key, 0, sizeof(key));
	while (m) {
		if (!old || node_sent(m) < node_sent(old))
			old = m;
		key.priority = m->priority;
		key.id = UINT64_MAX;
		m = tree_after(&q->ready, &key);
	}
	return old;
}

struct node *queue_oldest(spool_queue *q)
{
	struct node *c[3] = { oldest_visible(q), tree_first(&q->delayed),
			     tree_first(&q->leased) };
	struct node *old = NULL;

	for (int i = 0; i < 3; i++)
		if (c[i] && (!old || node_sent(c[i]) < node_sent(old)))
			old = c[i];
	return old;
}

int spool_stats_get(spool_queue *q, struct spool_stats *s)
{
	int64_t now = spool_now(q->db), oldest = INT64_MAX;
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
	m = oldest_visible(q);
	if (m)
		oldest = node_sent(m);
	pthread_mutex_unlock(&q->lock);
	if (oldest != INT64_MAX && now > oldest)
		s->oldest_visible_age_ms = now - oldest;
	return 0;
}

int spool_stats_format(spool_queue *q, char *buf, size_t len)
{
	struct spool_stats s;
	int rc = spool_stats_get(q, &s);

	if (rc)
		return rc;
	return snprintf(buf, len,
		"visible=%llu\ndelayed=%llu\nleased=%llu\ncorrupt=%llu\n"
		"bytes=%llu\npushed_total=%llu\nacked_total=%llu\n"
		"expired_total=%llu\ndead_total=%llu\ndeduped_total=%llu\n"
		"deleted_total=%llu\noldest_visible_age_ms=%lld\n",
		(unsigned long long)s.visible, (unsigned long long)s.delayed,
		(unsigned long long)s.leased, (unsigned long long)s.corrupt,
		(unsigned long long)s.bytes,
		(unsigned long long)s.pushed_total,
		(unsigned long long)s.acked_total,
		(unsigned long long)s.expired_total,
		(unsigned long long)s.dead_total,
		(unsigned long long)s.deduped_total,
		(unsigned long long)s.deleted_total,
		(long long)s.oldest_visible_age_ms);
}
