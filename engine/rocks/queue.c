/*
 * queue.c - the RocksDB store's queues: rebuilding every in-memory index
 * from the store at open, the queue table, queue records, owners and
 * modes, settings, each queue's message hash and trees.
 * Opening and closing the store is in db.c; what happens to messages is in
 * msg.c and push.c; timers are in timer.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rocks.h"
#include "kv.h"


/* ------------------------------------------------------- message hash */

/*
 * Open addressing with linear probing over node numbers: 4 bytes a slot
 * and no chain link in the node. At most 4/5 full: Fibonacci hashing
 * spreads ids, which arrive nearly consecutive, almost evenly, so runs stay
 * short even so. Any size works (the slot is a multiply-shift of the hash,
 * not a mask), so a rebuild at open sizes the table to what it holds
 * (hash_reserve) instead of to the next power of two; it doubles as it
 * fills. Deletion shifts the rest of the run back: no tombstones.
 */
static size_t hash_slot(size_t size, uint64_t id)
{
	uint64_t h = (id * 0x9e3779b97f4a7c15ull) >> 32;

	return (size_t)((h * size) >> 32);
}

static struct node *hnode(const struct rocks_queue *q, uint32_t n)
{
	return node_at(&q->db->arena, n);
}

static int hash_full(size_t count, size_t size)
{
	return count * 5 > size * 4;
}

static void hash_put(struct rocks_queue *q, uint32_t *t, size_t size,
		     uint32_t n)
{
	size_t i = hash_slot(size, hnode(q, n)->id);

	while (t[i])
		i = i + 1 == size ? 0 : i + 1;
	t[i] = n;
}

/* Rehashes into size slots; -ENOMEM keeps the old table. */
static int hash_resize(struct rocks_queue *q, size_t size)
{
	uint32_t *t;

	if (size > UINT32_MAX)
		return -ENOMEM;
	t = calloc(size, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < q->hsize; i++)
		if (q->htab[i])
			hash_put(q, t, size, q->htab[i]);
	free(q->htab);
	q->htab = t;
	q->hsize = size;
	return 0;
}

/* Makes room for n more messages at once. */
static int hash_reserve(struct rocks_queue *q, size_t n)
{
	size_t want = q->hcount + n;

	if (!hash_full(want, q->hsize))
		return 0;
	return hash_resize(q, want + want / 4 + 64);
}

void queue_hash_insert(struct rocks_queue *q, struct node *m)
{
	/* On ENOMEM the old table still has room (it is at most 4/5 full):
	 * growing is tried again at the next insert. */
	if (hash_full(q->hcount + 1, q->hsize))
		hash_resize(q, q->hsize * 2);
	if (q->hcount + 1 >= q->hsize) {
		fputs("spool: out of memory for the message hash\n", stderr);
		abort(); /* written but not servable: see heap_push */
	}
	hash_put(q, q->htab, q->hsize, node_num(m));
	q->hcount++;
	q->nstate[state_index(m->state)]++;
}

/* The slot holding id, or the empty slot ending its run. */
static size_t hash_probe(const struct rocks_queue *q, uint64_t id)
{
	size_t i = hash_slot(q->hsize, id);

	while (q->htab[i] && hnode(q, q->htab[i])->id != id)
		i = i + 1 == q->hsize ? 0 : i + 1;
	return i;
}

void queue_hash_remove(struct rocks_queue *q, struct node *m)
{
	size_t i = hash_probe(q, m->id), j = i, k;

	if (!q->htab[i])
		return;
	/* Move back every later entry of the run whose home slot does not
	 * lie cyclically in (i, j]: the hole would cut it off. */
	for (;;) {
		j = j + 1 == q->hsize ? 0 : j + 1;
		if (!q->htab[j])
			break;
		k = hash_slot(q->hsize, hnode(q, q->htab[j])->id);
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		q->htab[i] = q->htab[j];
		i = j;
	}
	q->htab[i] = NODE_NONE;
	q->hcount--;
	q->nstate[state_index(m->state)]--;
}

struct node *queue_hash_find(struct rocks_queue *q, uint64_t id)
{
	uint32_t n = q->htab[hash_probe(q, id)];

	return n ? hnode(q, n) : NULL;
}

struct tree *queue_tree(struct rocks_queue *q, int state)
{
	switch (state) {
	case SPOOL_VISIBLE: return &q->ready;
	case SPOOL_DELAYED: return &q->delayed;
	case SPOOL_LEASED: return &q->leased;
	default: return &q->corrupt;
	}
}

void queue_set_state(struct rocks_queue *q, struct node *m, int state)
{
	q->nstate[state_index(m->state)]--;
	q->nstate[state_index(state)]++;
	m->state = (uint8_t)state;
}

void queue_place(struct rocks_queue *q, struct node *m)
{
	tree_insert(queue_tree(q, m->state), m);
	if (m->state == SPOOL_DELAYED || m->state == SPOOL_LEASED)
		heap_push(&q->timers, m);
}

void queue_unplace(struct rocks_queue *q, struct node *m)
{
	tree_remove(queue_tree(q, m->state), m);
	if (m->heap_idx != HEAP_NONE)
		heap_remove(&q->timers, m);
}

/* Messages counted against max_depth: all held, and pushes in flight. */
uint64_t queue_depth(const struct rocks_queue *q)
{
	return q->hcount + q->pending;
}

int queue_room(const struct rocks_queue *q, uint64_t n)
{
	if (!q->alive)
		return -ENOENT;
	if (q->set.max_depth && queue_depth(q) + n > q->set.max_depth)
		return -EDQUOT;
	return 0;
}

/* The oldest visible message is the first (lowest id) of some priority:
 * visit the head of each priority's run. q->lock held. */
struct node *queue_oldest_visible(struct rocks_queue *q)
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

struct node *queue_oldest(struct rocks_queue *q)
{
	struct node *c[3] = { queue_oldest_visible(q), tree_first(&q->delayed),
			     tree_first(&q->leased) };
	struct node *old = NULL;

	for (int i = 0; i < 3; i++)
		if (c[i] && (!old || node_sent(c[i]) < node_sent(old)))
			old = c[i];
	return old;
}

void queue_free_msgs(struct rocks_queue *q)
{
	for (size_t i = 0; q->htab && i < q->hsize; i++)
		if (q->htab[i])
			node_free(&q->db->arena, hnode(q, q->htab[i]));
	free(q->htab);
	q->htab = NULL;
	heap_free(&q->timers);
}

/* ------------------------------------------------------ queue objects */

static struct rocks_queue *queue_new(struct rocks_db *db, uint32_t qid,
				     const char *name)
{
	struct rocks_queue *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->htab = calloc(64, sizeof(*q->htab));
	if (!q->htab) {
		free(q);
		return NULL;
	}
	q->hsize = 64;
	core_queue_init(&q->pub, &db->pub, name);
	q->db = db;
	q->qid = qid;
	atomic_init(&q->refs, 1);
	pthread_mutex_init(&q->lock, NULL);
	q->alive = true;
	settings_default(&q->set);
	tree_init(&q->ready, tree_cmp_ready, &db->arena);
	tree_init(&q->delayed, tree_cmp_id, &db->arena);
	tree_init(&q->leased, tree_cmp_id, &db->arena);
	tree_init(&q->corrupt, tree_cmp_id, &db->arena);
	return q;
}

void queue_unref(struct rocks_queue *q)
{
	if (atomic_fetch_sub(&q->refs, 1) != 1)
		return;
	queue_free_msgs(q);
	dedup_free(&q->dedup);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

/* Index of the first queue whose name is >= name; qlock held. */
static size_t table_search(struct rocks_db *db, const char *name)
{
	size_t lo = 0, hi = db->nqueues;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (strcmp(db->queues[mid]->pub.name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct rocks_queue *queue_find_locked(struct rocks_db *db, const char *name)
{
	size_t i = table_search(db, name);

	if (i < db->nqueues && strcmp(db->queues[i]->pub.name, name) == 0)
		return db->queues[i];
	return NULL;
}

static int table_insert(struct rocks_db *db, struct rocks_queue *q)
{
	size_t i = table_search(db, q->pub.name);

	if (db->nqueues == db->capqueues) {
		size_t cap = db->capqueues ? db->capqueues * 2 : 16;
		struct rocks_queue **v = realloc(db->queues, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		db->queues = v;
		db->capqueues = cap;
	}
	memmove(db->queues + i + 1, db->queues + i,
		(db->nqueues - i) * sizeof(*db->queues));
	db->queues[i] = q;
	db->nqueues++;
	if (q->qid >= db->next_qid)
		db->next_qid = q->qid + 1;
	return 0;
}

static void table_remove(struct rocks_db *db, struct rocks_queue *q)
{
	size_t i = table_search(db, q->pub.name);

	memmove(db->queues + i, db->queues + i + 1,
		(db->nqueues - i - 1) * sizeof(*db->queues));
	db->nqueues--;
}

/* ------------------------------------------------------ queue records */

/* Adds q's record, with attributes a and settings s, to b. */
static int batch_put_record(struct store_batch *b, struct rocks_queue *q,
			    const struct spool_queue_attr *a,
			    const struct spool_settings *s)
{
	char key[QKEY_LEN];
	size_t len;
	char *v = qrec_encode(q->pub.name, a, s, &len);

	if (!v)
		return -ENOMEM;
	key_queue(TAG_QUEUE, q->qid, key);
	store_batch_put(b, CF_META, key, QKEY_LEN, v, len);
	free(v);
	return 0;
}

int queue_write_record(struct rocks_queue *q, const struct spool_queue_attr *a,
		       const struct spool_settings *s)
{
	struct store_batch *b = store_batch_new(q->db->st);
	int rc = b ? batch_put_record(b, q, a, s) : -ENOMEM;

	if (!rc)
		rc = store_write(q->db->st, b, 1);
	store_batch_free(b);
	return rc;
}

/* ---------------------------------------------------- rebuild at open */

static int load_queue(void *arg, const char *k, size_t klen, const char *v,
		      size_t vlen)
{
	struct rocks_db *db = arg;
	char name[SPOOL_NAME_MAX + 1];
	struct spool_queue_attr a;
	struct spool_settings s;
	struct rocks_queue *q;
	uint32_t qid;

	if (klen != QKEY_LEN || qrec_decode(v, vlen, name, &a, &s) != 0) {
		core_log(&db->pub, SPOOL_LOG_ERR, "unreadable queue record");
		return -EIO;
	}
	qid = key_qid_decode(k);
	q = queue_new(db, qid, name);
	if (!q)
		return -ENOMEM;
	q->attr = a;
	q->set = s;
	if (table_insert(db, q)) {
		queue_unref(q);
		return -ENOMEM;
	}
	return 0;
}

static struct rocks_queue *queue_by_qid(struct rocks_db *db, uint32_t qid)
{
	for (size_t i = 0; i < db->nqueues; i++)
		if (db->queues[i]->qid == qid)
			return db->queues[i];
	return NULL;
}

static int load_counters(struct rocks_db *db)
{
	for (size_t i = 0; i < db->nqueues; i++) {
		struct rocks_queue *q = db->queues[i];
		char key[QKEY_LEN], *v;
		size_t len;
		int rc;

		key_queue(TAG_COUNTERS, q->qid, key);
		rc = store_get(db->st, CF_META, key, QKEY_LEN, &v, &len);
		if (rc == -ENOENT)
			continue;
		if (rc)
			return rc;
		counters_decode(v, len, q->cnt);
		free(v);
	}
	return 0;
}

/*
 * Rebuilding at open. The scan of idx comes in id order (keys are big-
 * endian ids), so each queue's messages arrive sorted by id: load_msg
 * appends their node numbers per state, and load_trees then builds each
 * tree in one pass (tree_build) instead of n inserts. Only the ready tree
 * (priority first) may need a sort, and only if priorities differ.
 */
struct queue_load {
	uint32_t *v[4];         /* node numbers, by state_index() */
	size_t n[4], cap[4];
};

static int load_append(struct rocks_queue *q, int si, uint32_t n)
{
	struct queue_load *l = q->load;

	if (!l && !(l = q->load = calloc(1, sizeof(*l))))
		return -ENOMEM;
	if (l->n[si] == l->cap[si]) {
		size_t cap = l->cap[si] ? l->cap[si] * 2 : 1024;
		uint32_t *v = realloc(l->v[si], cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v[si] = v;
		l->cap[si] = cap;
	}
	l->v[si][l->n[si]++] = n;
	return 0;
}

/* One idx record: rebuild its message in memory. With many queues the
 * qid lookup is linear; a store has few queues and this runs once. */
static int load_msg(void *arg, const char *k, size_t klen, const char *v,
		    size_t vlen)
{
	struct rocks_db *db = arg;
	struct idx_rec r;
	struct node *m;
	struct msg val;
	struct rocks_queue *q;

	if (klen != ID_KEY_LEN || idx_decode(v, vlen, &r) != 0) {
		core_log(&db->pub, SPOOL_LOG_ERR,
			 "unreadable message index record");
		return -EIO;
	}
	q = queue_by_qid(db, r.qid);
	if (!q) {
		core_log(&db->pub, SPOOL_LOG_WARN,
			 "message of unknown queue %u", r.qid);
		return 0;
	}
	m = node_alloc(&db->arena);
	if (!m)
		return -ENOMEM;
	val = (struct msg){ key_id_decode(k), r.sent_ms, r.due_ms,
			    r.first_recv_ms, (uint32_t)r.size, r.receives,
			    r.priority, r.state };
	node_set(m, &val);
	m->heap_idx = HEAP_NONE;
	q->bytes += m->size;
	if (m->id > db->last_id)
		db->last_id = m->id;
	if (load_append(q, state_index(m->state), node_num(m))) {
		node_free(&db->arena, m);
		return -ENOMEM;
	}
	return 0;
}

static int cmp_num(const void *a, const void *b, void *arg)
{
	const struct tree *t = arg;

	return t->cmp(node_at(t->a, *(const uint32_t *)a),
		      node_at(t->a, *(const uint32_t *)b));
}

static int sorted(const struct tree *t, const uint32_t *v, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (t->cmp(node_at(t->a, v[i - 1]), node_at(t->a, v[i])) > 0)
			return 0;
	return 1;
}

/* Builds q's hash, trees and timer heap from what load_msg collected. */
static int load_index(struct rocks_queue *q)
{
	struct tree *t[4] = { &q->ready, &q->delayed, &q->leased, &q->corrupt };
	struct queue_load *l = q->load;
	const struct arena *a = &q->db->arena;

	if (!l)
		return 0;
	if (hash_reserve(q, l->n[0] + l->n[1] + l->n[2] + l->n[3]))
		return -ENOMEM;
	for (int si = 0; si < 4; si++)
		for (size_t i = 0; i < l->n[si]; i++)
			queue_hash_insert(q, node_at(a, l->v[si][i]));
	for (int si = 0; si < 4; si++) {
		if (!sorted(t[si], l->v[si], l->n[si]))
			qsort_r(l->v[si], l->n[si], sizeof(uint32_t), cmp_num,
				t[si]);
		for (size_t i = 0; (si == 1 || si == 2) && i < l->n[si]; i++)
			heap_push(&q->timers, node_at(t[si]->a, l->v[si][i]));
		tree_build(t[si], l->v[si], l->n[si]);
		free(l->v[si]);
		l->v[si] = NULL;
	}
	free(l);
	q->load = NULL;
	return 0;
}

/* Frees what load_msg collected for q, with its nodes, after a failed
 * open (none of them is in the hash yet). */
static void load_discard(struct rocks_queue *q)
{
	struct queue_load *l = q->load;

	for (int si = 0; l && si < 4; si++) {
		for (size_t i = 0; i < l->n[si]; i++)
			node_free(&q->db->arena,
				  node_at(&q->db->arena, l->v[si][i]));
		free(l->v[si]);
	}
	free(l);
	q->load = NULL;
}

struct dedup_load {
	struct rocks_db *db;
	struct store_batch *stale;      /* expired keys to delete */
	int64_t now;
};

/* One dedup key: keep it if its window is still open. */
static int load_dedup(void *arg, const char *k, size_t klen, const char *v,
		      size_t vlen)
{
	struct dedup_load *l = arg;
	int64_t expiry = 0;
	struct rocks_queue *q;
	uint64_t id = 0;
	uint32_t qid;

	if (klen != DKEY_LEN || (vlen != 8 && vlen != 16))
		return 0;
	expiry = (int64_t)core_get_le(&v, 8);
	if (vlen == 16)
		id = core_get_le(&v, 8);
	qid = key_qid_decode(k);
	q = queue_by_qid(l->db, qid);
	if (!q || expiry <= l->now)
		store_batch_delete(l->stale, CF_META, k, klen);
	else if (dedup_add(&q->dedup, (const uint8_t *)k + QKEY_LEN, expiry,
			   id))
		return -ENOMEM;
	return 0;
}

static int load_dedups(struct rocks_db *db)
{
	struct dedup_load l = { db, store_batch_new(db->st), db_now(db) };
	int rc;

	if (!l.stale)
		return -ENOMEM;
	rc = store_scan(db->st, CF_META, KEY_DEDUPS, 1, load_dedup, &l);
	if (!rc && store_batch_count(l.stale))
		rc = store_write(db->st, l.stale, 0);
	store_batch_free(l.stale);
	return rc;
}

static int load_meta(struct rocks_db *db)
{
	char *v;
	size_t len;
	int rc = store_get(db->st, CF_META, KEY_VERSION, 1, &v, &len);

	if (rc == -ENOENT) {
		struct store_batch *b = store_batch_new(db->st);

		if (!b)
			return -ENOMEM;
		store_batch_put(b, CF_META, KEY_VERSION, 1, FORMAT_VERSION, 1);
		rc = store_write(db->st, b, 1);
		store_batch_free(b);
		/* Durable in any sync mode: a store without it is refused
		 * as not a spoolfs store (kv_check.c). */
		return rc ? rc : store_sync(db->st);
	}
	if (rc)
		return rc;
	rc = (len == 1 && v[0] == FORMAT_VERSION[0]) ? 0 : -EIO;
	if (rc)
		core_log(&db->pub, SPOOL_LOG_ERR, "store format %.*s is not %s",
		       (int)len, v, FORMAT_VERSION);
	free(v);
	if (rc)
		return rc;
	if (store_get(db->st, CF_META, KEY_RESERVATION, 1, &v, &len) == 0) {
		if (len == 8)
			db->last_id = key_id_decode(v) - 1;
		free(v);
	}
	return 0;
}

int db_load(struct rocks_db *db)
{
	int rc = load_meta(db);

	if (!rc)
		rc = store_scan(db->st, CF_META, KEY_QUEUES, 1, load_queue, db);
	if (!rc)
		rc = load_counters(db);
	if (!rc)
		rc = store_scan(db->st, CF_IDX, "", 0, load_msg, db);
	for (size_t i = 0; i < db->nqueues; i++) {
		struct rocks_queue *q = db->queues[i];

		if (!rc)
			rc = load_index(q);
		if (rc)
			load_discard(q);
	}
	/* Last: it may write (expired keys), which makes the store
	 * writable (store_writable); everything was read by then. */
	if (!rc)
		rc = load_dedups(db);
	/* The next id starts above everything seen; the first push writes a
	 * new reservation. */
	db->reserved_id = 0;
	return rc;
}

/* ------------------------------------------------------------ queues */

int rocks_queue_create(spool_db *pdb, const char *name,
		       const struct spool_queue_attr *attr)
{
	struct rocks_db *db = RDB(pdb);
	struct spool_queue_attr a = *attr;
	struct rocks_queue *q;
	int rc;

	pthread_mutex_lock(&db->cfglock);
	pthread_rwlock_wrlock(&db->qlock);
	rc = queue_find_locked(db, name) ? -EEXIST : 0;
	q = rc ? NULL : queue_new(db, db->next_qid, name);
	pthread_rwlock_unlock(&db->qlock);
	if (!rc && !q)
		rc = -ENOMEM;
	if (rc)
		goto out;
	q->attr = a;
	rc = queue_write_record(q, &q->attr, &q->set);
	pthread_rwlock_wrlock(&db->qlock);
	if (!rc)
		rc = table_insert(db, q);
	pthread_rwlock_unlock(&db->qlock);
	if (rc)
		queue_unref(q);
out:
	pthread_mutex_unlock(&db->cfglock);
	return rc;
}

static int add_delete(void *arg, const char *k, size_t klen, const char *v,
		      size_t vlen)
{
	(void)v, (void)vlen;
	store_batch_delete(arg, CF_META, k, klen);
	return 0;
}

/* Deletes the queue's record, counters, dedup keys, extra values and the
 * messages v[0..n) in one batch. */
static int queue_delete_record(struct rocks_queue *q, struct node **v,
			       size_t n)
{
	struct store_batch *b = store_batch_new(q->db->st);
	char key[QKEY_LEN];
	int rc;

	if (!b)
		return -ENOMEM;
	key_queue(TAG_DEDUP, q->qid, key);
	rc = store_scan(q->db->st, CF_META, key, QKEY_LEN, add_delete, b);
	if (rc) {
		store_batch_free(b);
		return rc;
	}
	key_queue(TAG_QMETA, q->qid, key);
	rc = store_scan(q->db->st, CF_META, key, QKEY_LEN, add_delete, b);
	if (rc) {
		store_batch_free(b);
		return rc;
	}
	key_queue(TAG_QUEUE, q->qid, key);
	store_batch_delete(b, CF_META, key, QKEY_LEN);
	key_queue(TAG_COUNTERS, q->qid, key);
	store_batch_delete(b, CF_META, key, QKEY_LEN);
	for (size_t i = 0; i < n; i++)
		batch_del_msg(b, v[i]->id);
	rc = store_write(q->db->st, b, 1);
	store_batch_free(b);
	return rc;
}

/* Takes every message of q (busy) into a malloc'd *out, for a delete with
 * its contents: -ENOTEMPTY while another operation holds one of them or a
 * push is in flight. q->lock held. */
static int grab_all(struct rocks_queue *q, struct node ***out, size_t *n)
{
	static const int states[] = { SPOOL_VISIBLE, SPOOL_DELAYED,
				      SPOOL_LEASED, SPOOL_CORRUPT };
	struct node **v;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if (q->pending)
		return -ENOTEMPTY;
	v = malloc((q->hcount + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < 4; i++) {
		struct tree *t = queue_tree(q, states[i]);

		k += grab_many(q, t, v + k, t->n);
	}
	if (k != q->hcount) {
		for (size_t i = 0; i < k; i++)
			settle(q, v[i], NULL);
		free(v);
		return -ENOTEMPTY;
	}
	*out = v;
	*n = k;
	return 0;
}

/* Ends the delete of q's messages v[0..n): gone (ok) or put back. */
static void grab_all_end(struct rocks_queue *q, struct node **v, size_t n,
			 int ok)
{
	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < n; i++)
		if (ok)
			drop(q, v[i]);
		else
			settle(q, v[i], NULL);
	pthread_mutex_unlock(&q->lock);
	for (size_t i = 0; ok && i < n; i++)
		node_free(&q->db->arena, v[i]);
	free(v);
}

int rocks_queue_delete(spool_db *pdb, const char *name, int all)
{
	struct rocks_db *db = RDB(pdb);
	struct rocks_queue *q;
	struct node **v = NULL;
	size_t n = 0;
	int rc, marked = 0;

	pthread_mutex_lock(&db->cfglock);
	pthread_rwlock_wrlock(&db->qlock);
	q = queue_find_locked(db, name);
	rc = q ? 0 : -ENOENT;
	if (q) {
		pthread_mutex_lock(&q->lock);
		if (all)
			rc = grab_all(q, &v, &n);
		else if (q->hcount || q->pending)
			rc = -ENOTEMPTY;
		if (!rc)
			q->alive = false; /* refuses pushes from now on */
		marked = !rc;
		pthread_mutex_unlock(&q->lock);
	}
	if (!rc)
		rc = queue_delete_record(q, v, n);
	if (!rc)
		table_remove(db, q);
	else if (marked)
		q->alive = true; /* the write failed: it still exists */
	if (v)
		grab_all_end(q, v, n, !rc);
	pthread_rwlock_unlock(&db->qlock);
	pthread_mutex_unlock(&db->cfglock);
	if (!rc)
		queue_unref(q);
	return rc;
}

int queue_get(struct rocks_db *db, const char *name, struct rocks_queue **out)
{
	struct rocks_queue *q;

	pthread_rwlock_rdlock(&db->qlock);
	q = queue_find_locked(db, name);
	if (q)
		atomic_fetch_add(&q->refs, 1);
	pthread_rwlock_unlock(&db->qlock);
	if (!q)
		return -ENOENT;
	*out = q;
	return 0;
}

int rocks_queue_open(spool_db *db, const char *name, spool_queue **out)
{
	struct rocks_queue *q;
	int rc = queue_get(RDB(db), name, &q);

	if (!rc)
		*out = &q->pub;
	return rc;
}

void rocks_queue_close(spool_queue *q)
{
	queue_unref(RQ(q));
}

int rocks_queue_alive(spool_queue *pq)
{
	struct spool_queue_attr a;

	return rocks_queue_getattr(pq, &a) == 0;
}

int rocks_queue_next(spool_db *pdb, const char *after,
		     char name[SPOOL_NAME_MAX + 1])
{
	struct rocks_db *db = RDB(pdb);
	size_t i;
	int rc = -ENOENT;

	pthread_rwlock_rdlock(&db->qlock);
	i = after ? table_search(db, after) : 0;
	if (after && i < db->nqueues &&
	    strcmp(db->queues[i]->pub.name, after) == 0)
		i++;
	if (i < db->nqueues) {
		strcpy(name, db->queues[i]->pub.name);
		rc = 0;
	}
	pthread_rwlock_unlock(&db->qlock);
	return rc;
}

ssize_t rocks_queue_count(spool_db *pdb)
{
	struct rocks_db *db = RDB(pdb);
	size_t n;

	pthread_rwlock_rdlock(&db->qlock);
	n = db->nqueues;
	pthread_rwlock_unlock(&db->qlock);
	return (ssize_t)n;
}

/* Copies len bytes of q's field at src into out while q lives. */
static int copy_alive(struct rocks_queue *q, void *out, const void *src,
		      size_t len)
{
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	if (q->alive)
		memcpy(out, src, len);
	else
		rc = -ENOENT;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int rocks_queue_getattr(spool_queue *pq, struct spool_queue_attr *out)
{
	return copy_alive(RQ(pq), out, &RQ(pq)->attr, sizeof(*out));
}

/* Settings and attributes change under db->cfglock, so the record written
 * is never older than one written before it. */
int rocks_queue_setattr(spool_queue *pq,
			const struct spool_queue_attr *attr)
{
	struct rocks_queue *q = RQ(pq);
	struct spool_queue_attr a = *attr;
	struct spool_settings s;
	int rc;

	pthread_mutex_lock(&q->db->cfglock);
	rc = rocks_settings_get(pq, &s);
	if (!rc)
		rc = queue_write_record(q, &a, &s);
	if (!rc) {
		pthread_mutex_lock(&q->lock);
		q->attr = a;
		pthread_mutex_unlock(&q->lock);
	}
	pthread_mutex_unlock(&q->db->cfglock);
	return rc;
}

/* ------------------------------------------------------ extra values */

/* "M" qid name: the key of a queue's extra value into out. */
static size_t meta_key(const struct rocks_queue *q, const char *name,
		       char out[QKEY_LEN + SPOOL_QMETA_KEY_MAX])
{
	size_t n = strlen(name);

	key_queue(TAG_QMETA, q->qid, out);
	memcpy(out + QKEY_LEN, name, n);
	return QKEY_LEN + n;
}

int rocks_queue_meta_get(spool_queue *pq, const char *name, char **val,
			 size_t *len)
{
	struct rocks_queue *q = RQ(pq);
	char key[QKEY_LEN + SPOOL_QMETA_KEY_MAX];
	size_t klen = meta_key(q, name, key);
	struct spool_queue_attr a;
	int rc = rocks_queue_getattr(pq, &a);

	if (rc)
		return rc;
	rc = store_get(q->db->st, CF_META, key, klen, val, len);
	return rc == -ENOENT ? -ENODATA : rc;
}

/* Under cfglock, as a queue's delete is: no value outlives its queue. */
/* Adds the setting of q's value name to val (NULL: its removal) to b. */
static void batch_meta(struct store_batch *b, const struct rocks_queue *q,
		       const char *name, const char *val, size_t len)
{
	char key[QKEY_LEN + SPOOL_QMETA_KEY_MAX];
	size_t klen = meta_key(q, name, key);

	if (val)
		store_batch_put(b, CF_META, key, klen, val, len);
	else
		store_batch_delete(b, CF_META, key, klen);
}

int rocks_queue_meta_set(spool_queue *pq, const char *name, const char *val,
			 size_t len)
{
	struct rocks_queue *q = RQ(pq);
	struct store_batch *b = store_batch_new(q->db->st);
	struct spool_queue_attr a;
	int rc;

	if (!b)
		return -ENOMEM;
	pthread_mutex_lock(&q->db->cfglock);
	rc = rocks_queue_getattr(pq, &a);
	if (!rc) {
		batch_meta(b, q, name, val, len);
		rc = store_write(q->db->st, b, 1);
	}
	pthread_mutex_unlock(&q->db->cfglock);
	store_batch_free(b);
	return rc;
}

/* ----------------------------------------------------------- settings */

int rocks_settings_get(spool_queue *pq, struct spool_settings *out)
{
	return copy_alive(RQ(pq), out, &RQ(pq)->set, sizeof(*out));
}

/* For the core's checks of queues named in settings. */
static int queue_settings_of(spool_db *db, const char *name,
			     struct spool_settings *out)
{
	struct rocks_queue *q;
	int rc = queue_get(RDB(db), name, &q);

	if (rc)
		return rc;
	rc = rocks_settings_get(&q->pub, out);
	queue_unref(q);
	return rc;
}

int rocks_config_apply(spool_queue *pq, const char *text, size_t len,
		       const char *mkey, const char *mval, size_t mlen)
{
	struct rocks_queue *q = RQ(pq);
	struct store_batch *b = store_batch_new(q->db->st);
	struct spool_settings s;
	int was_paused, rc;

	if (!b)
		return -ENOMEM;
	pthread_mutex_lock(&q->db->cfglock);
	rc = rocks_settings_get(pq, &s);
	was_paused = s.paused;
	if (!rc)
		rc = settings_parse(&s, text, len);
	if (!rc)
		rc = settings_check_refs(pq, &s, queue_settings_of);
	if (!rc)
		rc = batch_put_record(b, q, &q->attr, &s);
	if (!rc && mkey)
		batch_meta(b, q, mkey, mval, mlen);
	if (!rc)
		rc = store_write(q->db->st, b, 1);
	if (!rc) {
		pthread_mutex_lock(&q->lock);
		q->set = s;
		pthread_mutex_unlock(&q->lock);
	}
	pthread_mutex_unlock(&q->db->cfglock);
	store_batch_free(b);
	if (!rc && was_paused && !s.paused)
		core_wake(&q->pub);
	if (!rc && s.retention_ms)
		timer_kick(q->db, db_now(q->db));
	return rc;
}
