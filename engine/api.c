/*
 * api.c - every spool_* entry point of spool.h: what can be checked or
 * done without a store (names, arguments, the body record, the config and
 * stats text, wake subscribers, user pointers), then the store's operation
 * (store.h) through the handle's ops.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "spool_test.h"
#include "store.h"

/* ------------------------------------------------------------ the store */

int spool_open(const char *data, const struct spool_options *o, spool_db **out)
{
	struct spool_options opt;
	spool_db tmp;

	core_options(&opt, o);
	for (size_t i = 0; store_kinds[i]; i++)
		if (store_kinds[i]->claims(data))
			return store_kinds[i]->open(data, &opt, out);
	tmp.opt = opt;
	core_log(&tmp, SPOOL_LOG_ERR, "%s: no store of this kind", data);
	return -EINVAL;
}

void spool_close(spool_db *db)
{
	if (db)
		db->ops->close(db);
}

int64_t spool_now(spool_db *db)
{
	return db->opt.clock(db->opt.clock_arg);
}

int64_t spool_tick(spool_db *db)
{
	int64_t next;

	core_changed(db, NULL);         /* as the timer thread does */
	next = db->ops->tick(db);
	core_changed(db, NULL);
	return next;
}

int spool_change_subscribe(spool_db *db, spool_change_fn fn, void *arg)
{
	spool_change_fn none = NULL;

	if (atomic_load(&db->change))
		return -EBUSY;
	db->change_arg = arg;
	if (!atomic_compare_exchange_strong(&db->change, &none, fn))
		return -EBUSY;
	return 0;
}

int spool_shared(spool_db *db)
{
	return db->shared;
}

/* The change subscriber hears of every call that may have taken messages
 * of q out of a listing or changed their attributes; rc passes through. */
static int changed(spool_queue *q, int rc)
{
	core_changed(q->db, q);
	return rc;
}

int spool_wake_subscribe(spool_db *db, spool_wake_fn fn, void *arg)
{
	int i = atomic_load(&db->nwake);

	do {
		if (i == CORE_WAKE_MAX)
			return -ENOSPC;
	} while (!atomic_compare_exchange_weak(&db->nwake, &i, i + 1));
	/* A wake running meanwhile may see the slot before fn is set: it
	 * skips it (fn is NULL until arg is in place). */
	db->wake[i].arg = arg;
	atomic_store_explicit(&db->wake[i].fn, fn, memory_order_release);
	return 0;
}

/* ------------------------------------------------------------ queues */

int spool_queue_create(spool_db *db, const char *name,
		       const struct spool_queue_attr *attr)
{
	struct spool_queue_attr a;
	int rc = core_queue_attr(db, name, attr, &a);

	return rc ? rc : db->ops->queue_create(db, name, &a);
}

int spool_queue_delete(spool_db *db, const char *name)
{
	return db->ops->queue_delete(db, name, 0);
}

int spool_queue_open(spool_db *db, const char *name, spool_queue **out)
{
	return db->ops->queue_open(db, name, out);
}

void spool_queue_close(spool_queue *q)
{
	if (q)
		q->db->ops->queue_close(q);
}

const char *spool_queue_name(const spool_queue *q)
{
	return q->name;
}

int spool_queue_alive(const spool_queue *q)
{
	return q->db->ops->queue_alive((spool_queue *)q);
}

int spool_udata_slot(spool_db *db)
{
	int i = atomic_load(&db->nudata);

	do {
		if (i == CORE_UDATA_MAX)
			return -ENOSPC;
	} while (!atomic_compare_exchange_weak(&db->nudata, &i, i + 1));
	return i;
}

void spool_queue_set_udata(spool_queue *q, int slot, void *p)
{
	atomic_store(&q->udata[slot], p);
}

void *spool_queue_udata(const spool_queue *q, int slot)
{
	return atomic_load(&((spool_queue *)q)->udata[slot]);
}

int spool_queue_next(spool_db *db, const char *after,
		     char name[SPOOL_NAME_MAX + 1])
{
	return db->ops->queue_next(db, after, name);
}

ssize_t spool_queue_count(spool_db *db)
{
	return db->ops->queue_count(db);
}

int spool_queue_getattr(spool_queue *q, struct spool_queue_attr *out)
{
	return q->db->ops->queue_getattr(q, out);
}

int spool_queue_setattr(spool_queue *q, const struct spool_queue_attr *attr)
{
	struct spool_queue_attr a;

	core_queue_attr(q->db, NULL, attr, &a);
	return changed(q, q->db->ops->queue_setattr(q, &a));
}

/* ---------------------------------------------------------- settings */

int spool_settings_get(spool_queue *q, struct spool_settings *out)
{
	return q->db->ops->settings_get(q, out);
}

int spool_config_format(spool_queue *q, char *buf, size_t len)
{
	struct spool_settings s;
	int rc = spool_settings_get(q, &s);

	return rc ? rc : settings_format(&s, q->name, buf, len);
}

int spool_config_apply(spool_queue *q, const char *text, size_t len)
{
	return q->db->ops->config_apply(q, text, len, NULL, NULL, 0);
}

static int meta_key_valid(const char *key)
{
	size_t n = strlen(key);

	return n >= 1 && n <= SPOOL_QMETA_KEY_MAX &&
	       strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			   "0123456789._-") == n;
}

ssize_t spool_queue_meta_get(spool_queue *q, const char *key, char *buf,
			     size_t len)
{
	char *v;
	size_t n;
	int rc;

	if (!meta_key_valid(key))
		return -EINVAL;
	rc = q->db->ops->queue_meta_get(q, key, &v, &n);
	if (rc)
		return rc;
	if (n >= len) {
		free(v);
		return -ERANGE;
	}
	memcpy(buf, v, n);
	buf[n] = '\0';
	free(v);
	return (ssize_t)n;
}

int spool_queue_meta_set(spool_queue *q, const char *key, const char *value)
{
	size_t n = value ? strlen(value) : 0;

	if (!meta_key_valid(key) || n > SPOOL_QMETA_VALUE_MAX)
		return -EINVAL;
	return q->db->ops->queue_meta_set(q, key, value, n);
}

int spool_config_apply_meta(spool_queue *q, const char *text, size_t len,
			    const char *key, const char *value)
{
	size_t n = value ? strlen(value) : 0;

	if (!meta_key_valid(key) || n > SPOOL_QMETA_VALUE_MAX)
		return -EINVAL;
	return q->db->ops->config_apply(q, text, len, key, value, n);
}

/* ---------------------------------------------------------- messages */

int spool_push(spool_queue *q, const struct spool_push *p, uint64_t *id)
{
	if (id)
		*id = 0;
	return q->db->ops->push_batch(q, p, 1, id, NULL);
}

int spool_push_room(spool_queue *q, size_t n)
{
	return q->db->ops->push_room(q, n);
}

int spool_push_batch(spool_queue *q, const struct spool_push *p, size_t n,
		     uint64_t *first_id)
{
	if (first_id)
		*first_id = 0;
	if (n == 0)
		return 0;
	return q->db->ops->push_batch(q, p, n, first_id, NULL);
}

int spool_push_batch_ids(spool_queue *q, const struct spool_push *p, size_t n,
			 uint64_t *ids)
{
	for (size_t i = 0; i < n; i++)
		ids[i] = 0;
	if (n == 0)
		return 0;
	return q->db->ops->push_batch(q, p, n, NULL, ids);
}

int spool_msg_stat(spool_queue *q, uint64_t id, struct spool_msg_info *out)
{
	return q->db->ops->msg_stat(q, id, out);
}

/* Loads and verifies a message's body record for reading into a malloc'd
 * *rec: -ENOENT unknown, -EIO corrupt (and set aside the first time). */
static int read_record(spool_queue *q, uint64_t id, char **rec,
		       struct body_view *bv)
{
	size_t len;
	int rc = q->db->ops->msg_record(q, id, rec, &len);

	if (rc)
		return rc;
	rc = body_decode(*rec, len, bv);
	if (rc) {
		free(*rec);
		*rec = NULL;
		q->db->ops->msg_set_corrupt(q, id);
	}
	return rc;
}

ssize_t spool_msg_read(spool_queue *q, uint64_t id, uint64_t off, void *buf,
		       size_t len)
{
	struct body_view bv;
	size_t n = 0;
	char *rec;
	int rc = read_record(q, id, &rec, &bv);

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
	size_t n;
	char *rec;
	int rc = read_record(q, id, &rec, &bv);

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
	if (strlen(name) > SPOOL_MSG_NAME_MAX)
		return -ENAMETOOLONG;
	return q->db->ops->msg_rename(q, id, name);
}

ssize_t spool_msg_getattr(spool_queue *q, uint64_t id, const char *name,
			  void *buf, size_t len)
{
	struct body_view bv;
	char *rec;
	ssize_t rc = read_record(q, id, &rec, &bv);

	if (rc)
		return rc;
	rc = body_getattr(&bv, name, buf, len);
	free(rec);
	return rc;
}

ssize_t spool_msg_listattr(spool_queue *q, uint64_t id, char *buf, size_t len)
{
	struct body_view bv;
	char *rec;
	ssize_t rc = read_record(q, id, &rec, &bv);

	if (rc)
		return rc;
	rc = body_listattr(&bv, buf, len);
	free(rec);
	return rc;
}

/* ----------------------------------------------------------- leasing */

int spool_lease_next(spool_queue *q, void *buf, size_t len, size_t *n,
		     struct spool_msg_info *info)
{
	return changed(q, q->db->ops->lease_next(q, -1, buf, len, n, info));
}

int spool_lease_next_vt(spool_queue *q, int64_t vt_ms, void *buf, size_t len,
			size_t *n, struct spool_msg_info *info)
{
	if (vt_ms < 0)
		return -EINVAL;
	return changed(q, q->db->ops->lease_next(q, vt_ms, buf, len, n, info));
}

int spool_lease_id(spool_queue *q, uint64_t id, struct spool_msg_info *info)
{
	return changed(q, q->db->ops->lease_id(q, id, info));
}

int spool_pop(spool_queue *q, void **body, struct spool_msg_info *info)
{
	return changed(q, q->db->ops->pop(q, body, info));
}

int spool_ack(spool_queue *q, uint64_t id)
{
	return changed(q, q->db->ops->ack(q, id, 0));
}

int spool_ack_receive(spool_queue *q, uint64_t id, uint32_t receives)
{
	if (receives == 0)
		return -ENOENT;
	return changed(q, q->db->ops->ack(q, id, receives));
}

int spool_ack_batch(spool_queue *q, const uint64_t *ids,
		    const uint32_t *receives, size_t n, int *results)
{
	if (n > SPOOL_ACK_BATCH_MAX)
		return -EINVAL;
	if (n == 0)
		return 0;
	return changed(q, q->db->ops->ack_batch(q, ids, receives, n, results));
}

int spool_release(spool_queue *q, uint64_t id, int uncount)
{
	return changed(q, q->db->ops->release(q, id, uncount));
}

int spool_lease_extend(spool_queue *q, uint64_t id, int64_t expiry_ms)
{
	return changed(q, q->db->ops->lease_extend(q, id, 0, expiry_ms));
}

int spool_lease_extend_receive(spool_queue *q, uint64_t id, uint32_t receives,
			       int64_t expiry_ms)
{
	if (receives == 0)
		return -ENOENT;
	return changed(q, q->db->ops->lease_extend(q, id, receives, expiry_ms));
}

int spool_delete(spool_queue *q, uint64_t id, unsigned states)
{
	return changed(q, q->db->ops->delete(q, id, states));
}

int spool_move(spool_queue *q, uint64_t id, unsigned states, spool_queue *dst)
{
	return changed(q, q->db->ops->move(q, id, states, dst));
}

int spool_move_all(spool_queue *q, spool_queue *dst, uint64_t max,
		   uint64_t *moved)
{
	if (q == dst)
		return -EINVAL;
	return changed(q, q->db->ops->move_all(q, dst, max, moved));
}

int spool_purge(spool_queue *q, uint64_t *count)
{
	return spool_purge_states(q, SPOOL_VISIBLE | SPOOL_DELAYED, count);
}

#define ALL_STATES (SPOOL_VISIBLE | SPOOL_DELAYED | SPOOL_LEASED | SPOOL_CORRUPT)

int spool_purge_states(spool_queue *q, unsigned states, uint64_t *count)
{
	if (count)
		*count = 0;
	if (states == 0 || (states & ~ALL_STATES))
		return -EINVAL;
	return changed(q, q->db->ops->purge(q, states, count));
}

/* Messages an operation holds for a moment (a lease being written) keep
 * the queue; the delete then says -ENOTEMPTY and the loop tries again. */
#define DELETE_ALL_TRIES 100

int spool_queue_delete_all(spool_db *db, const char *name)
{
	int rc = -ENOTEMPTY;

	for (int i = 0; i < DELETE_ALL_TRIES && rc == -ENOTEMPTY; i++) {
		if (i)
			sched_yield();
		rc = db->ops->queue_delete(db, name, 1);
	}
	core_changed(db, NULL);
	return rc;
}

/* ----------------------------------------------------------- listing */

ssize_t spool_list(spool_queue *q, enum spool_state state,
		   struct spool_cursor *cur, uint64_t *ids, size_t max)
{
	switch (state) {
	case SPOOL_VISIBLE: case SPOOL_DELAYED: case SPOOL_LEASED:
	case SPOOL_CORRUPT:
		return q->db->ops->list(q, state, cur, ids, max);
	}
	return -EINVAL;
}

/* ------------------------------------------------------------- stats */

int spool_stats_get(spool_queue *q, struct spool_stats *out)
{
	return q->db->ops->stats_get(q, out);
}

int spool_space(spool_db *db, uint64_t *total, uint64_t *used)
{
	return db->ops->space(db, total, used);
}

int spool_stats_format(spool_queue *q, char *buf, size_t len)
{
	struct spool_stats s;
	int rc = spool_stats_get(q, &s);

	return rc ? rc : stats_format(&s, buf, len);
}

/* --------------------------------------------------------- test seams */

void spool_test_fail_writes(spool_db *db, int err)
{
	db->ops->test_fail_writes(db, err);
}

int spool_test_corrupt(spool_db *db, uint64_t id)
{
	char *v;
	size_t len;
	int rc = db->ops->test_body_get(db, id, &v, &len);

	if (rc)
		return rc;
	v[len - 1] ^= 0x5a;     /* the last byte: body, name or header */
	rc = db->ops->test_body_put(db, id, v, len);
	free(v);
	return rc;
}

int spool_test_put_body(spool_db *db, uint64_t id, const void *rec,
			size_t len, int seal)
{
	char *v, *copy;
	size_t vlen;
	int rc = db->ops->test_body_get(db, id, &v, &vlen);

	if (rc)
		return rc;
	free(v);
	copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, rec, len);
	if (seal)
		body_seal(copy, len);
	rc = db->ops->test_body_put(db, id, copy, len);
	free(copy);
	return rc;
}
