/*
 * queue.c - the store handle and its queues: open (and rebuild every
 * in-memory index from the store), close, the queue table, queue records,
 * owners and modes, settings, and each queue's message hash.
 * What happens to messages is in msg.c; timers are in timer.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_i.h"
#include "store.h"

#define FORMAT_VERSION "1"
#define QREC_VERSION 1
#define QREC_FIXED (1 + 4 + 4 + 4 + 8 + 2)

/* ------------------------------------------------------------ logging */

static void log_stderr(void *arg, enum spool_log_level lv, const char *line)
{
	(void)arg;
	fprintf(stderr, "spool: %s%s\n", lv == SPOOL_LOG_ERR ? "error: " :
		lv == SPOOL_LOG_WARN ? "warning: " : "", line);
}

void db_log(spool_db *db, enum spool_log_level lv, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (lv > db->opt.log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	db->opt.log(db->opt.log_arg, lv, line);
}

static void store_log_cb(void *arg, enum spool_log_level lv, const char *line)
{
	db_log(arg, lv, "%s", line);
}

/* -------------------------------------------------------------- clock */

static int64_t clock_real(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t spool_now(spool_db *db)
{
	return db->opt.clock(db->opt.clock_arg);
}

void spool_options_init(struct spool_options *o)
{
	memset(o, 0, sizeof(*o));
	o->sync = SPOOL_SYNC_ALWAYS;
	o->log_level = SPOOL_LOG_INFO;
}

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

static struct node *hnode(const spool_queue *q, uint32_t n)
{
	return node_at(&q->db->arena, n);
}

static int hash_full(size_t count, size_t size)
{
	return count * 5 > size * 4;
}

static void hash_put(spool_queue *q, uint32_t *t, size_t size, uint32_t n)
{
	size_t i = hash_slot(size, hnode(q, n)->id);

	while (t[i])
		i = i + 1 == size ? 0 : i + 1;
	t[i] = n;
}

/* Rehashes into size slots; -ENOMEM keeps the old table. */
static int hash_resize(spool_queue *q, size_t size)
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
static int hash_reserve(spool_queue *q, size_t n)
{
	size_t want = q->hcount + n;

	if (!hash_full(want, q->hsize))
		return 0;
	return hash_resize(q, want + want / 4 + 64);
}

void queue_hash_insert(spool_queue *q, struct node *m)
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
static size_t hash_probe(const spool_queue *q, uint64_t id)
{
	size_t i = hash_slot(q->hsize, id);

	while (q->htab[i] && hnode(q, q->htab[i])->id != id)
		i = i + 1 == q->hsize ? 0 : i + 1;
	return i;
}

void queue_hash_remove(spool_queue *q, struct node *m)
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

struct node *queue_hash_find(spool_queue *q, uint64_t id)
{
	uint32_t n = q->htab[hash_probe(q, id)];

	return n ? hnode(q, n) : NULL;
}

static struct tree *state_tree(spool_queue *q, int state)
{
	switch (state) {
	case SPOOL_VISIBLE: return &q->ready;
	case SPOOL_DELAYED: return &q->delayed;
	case SPOOL_LEASED: return &q->leased;
	default: return &q->corrupt;
	}
}

void queue_set_state(spool_queue *q, struct node *m, int state)
{
	q->nstate[state_index(m->state)]--;
	q->nstate[state_index(state)]++;
	m->state = (uint8_t)state;
}

void queue_place(spool_queue *q, struct node *m)
{
	tree_insert(state_tree(q, m->state), m);
	if (m->state == SPOOL_DELAYED || m->state == SPOOL_LEASED)
		heap_push(&q->timers, m);
}

void queue_unplace(spool_queue *q, struct node *m)
{
	tree_remove(state_tree(q, m->state), m);
	if (m->heap_idx != HEAP_NONE)
		heap_remove(&q->timers, m);
}

void queue_free_msgs(spool_queue *q)
{
	for (size_t i = 0; q->htab && i < q->hsize; i++)
		if (q->htab[i])
			node_free(&q->db->arena, hnode(q, q->htab[i]));
	free(q->htab);
	q->htab = NULL;
	heap_free(&q->timers);
}

/* ------------------------------------------------------ queue objects */

static spool_queue *queue_new(spool_db *db, uint32_t qid, const char *name)
{
	spool_queue *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->htab = calloc(64, sizeof(*q->htab));
	if (!q->htab) {
		free(q);
		return NULL;
	}
	q->hsize = 64;
	q->db = db;
	q->qid = qid;
	snprintf(q->name, sizeof(q->name), "%s", name);
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

static void queue_unref(spool_queue *q)
{
	if (atomic_fetch_sub(&q->refs, 1) != 1)
		return;
	queue_free_msgs(q);
	dedup_free(&q->dedup);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

int spool_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > SPOOL_NAME_MAX || name[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return 0;
	}
	return 1;
}

/* Index of the first queue whose name is >= name; qlock held. */
static size_t table_search(spool_db *db, const char *name)
{
	size_t lo = 0, hi = db->nqueues;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (strcmp(db->queues[mid]->name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

spool_queue *queue_find_locked(spool_db *db, const char *name)
{
	size_t i = table_search(db, name);

	if (i < db->nqueues && strcmp(db->queues[i]->name, name) == 0)
		return db->queues[i];
	return NULL;
}

static int table_insert(spool_db *db, spool_queue *q)
{
	size_t i = table_search(db, q->name);

	if (db->nqueues == db->capqueues) {
		size_t cap = db->capqueues ? db->capqueues * 2 : 16;
		spool_queue **v = realloc(db->queues, cap * sizeof(*v));

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

static void table_remove(spool_db *db, spool_queue *q)
{
	size_t i = table_search(db, q->name);

	memmove(db->queues + i, db->queues + i + 1,
		(db->nqueues - i - 1) * sizeof(*db->queues));
	db->nqueues--;
}

/* ------------------------------------------------------ queue records */

/* Encodes a queue record (keys.c) into a malloc'd buffer. */
static char *qrec_encode(const spool_queue *q, const struct spool_queue_attr *a,
			 const struct spool_settings *s, size_t *len)
{
	size_t nlen = strlen(q->name);
	int slen = settings_format(s, q->name, NULL, 0);
	char *v = malloc(QREC_FIXED + nlen + (size_t)slen + 1), *p = v;
	uint64_t fields[] = { QREC_VERSION, a->uid, a->gid, a->mode,
			      (uint64_t)a->ctime_ms, nlen };
	const int widths[] = { 1, 4, 4, 4, 8, 2 };

	if (!v)
		return NULL;
	for (int i = 0; i < 6; i++)
		for (int j = 0; j < widths[i]; j++)
			*p++ = (char)(fields[i] >> (8 * j));
	memcpy(p, q->name, nlen);
	settings_format(s, q->name, p + nlen, (size_t)slen + 1);
	*len = QREC_FIXED + nlen + (size_t)slen;
	return v;
}

static int qrec_decode(const char *v, size_t len, char name[SPOOL_NAME_MAX + 1],
		       struct spool_queue_attr *a, struct spool_settings *s)
{
	uint64_t f[6] = { 0 };
	const int widths[] = { 1, 4, 4, 4, 8, 2 };
	const unsigned char *p = (const unsigned char *)v;

	if (len < QREC_FIXED)
		return -EIO;
	for (int i = 0; i < 6; i++, p += widths[i - 1])
		for (int j = widths[i] - 1; j >= 0; j--)
			f[i] = f[i] << 8 | p[j];
	if (f[0] != QREC_VERSION || f[5] > SPOOL_NAME_MAX ||
	    QREC_FIXED + f[5] > len)
		return -EIO;
	a->uid = (uint32_t)f[1];
	a->gid = (uint32_t)f[2];
	a->mode = (uint32_t)f[3];
	a->ctime_ms = (int64_t)f[4];
	memcpy(name, v + QREC_FIXED, f[5]);
	name[f[5]] = '\0';
	settings_default(s);
	return settings_parse(s, v + QREC_FIXED + f[5],
			      len - QREC_FIXED - f[5]);
}

int queue_write_record(spool_queue *q, const struct spool_queue_attr *a,
		       const struct spool_settings *s)
{
	struct store_batch *b = store_batch_new(q->db->st);
	char key[QKEY_LEN];
	size_t len;
	char *v = qrec_encode(q, a, s, &len);
	int rc = -ENOMEM;

	if (!b || !v)
		goto out;
	key_queue('Q', q->qid, key);
	store_batch_put(b, CF_META, key, QKEY_LEN, v, len);
	rc = store_write(q->db->st, b, 1);
out:
	free(v);
	store_batch_free(b);
	return rc;
}

/* --------------------------------------------------------- open/close */

static int load_queue(void *arg, const char *k, size_t klen, const char *v,
		      size_t vlen)
{
	spool_db *db = arg;
	char name[SPOOL_NAME_MAX + 1];
	struct spool_queue_attr a;
	struct spool_settings s;
	spool_queue *q;
	uint32_t qid;

	if (klen != QKEY_LEN || qrec_decode(v, vlen, name, &a, &s) != 0) {
		db_log(db, SPOOL_LOG_ERR, "unreadable queue record");
		return -EIO;
	}
	qid = (uint32_t)(unsigned char)k[1] << 24 |
	      (uint32_t)(unsigned char)k[2] << 16 |
	      (uint32_t)(unsigned char)k[3] << 8 | (unsigned char)k[4];
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

static spool_queue *queue_by_qid(spool_db *db, uint32_t qid)
{
	for (size_t i = 0; i < db->nqueues; i++)
		if (db->queues[i]->qid == qid)
			return db->queues[i];
	return NULL;
}

static int load_counters(spool_db *db)
{
	for (size_t i = 0; i < db->nqueues; i++) {
		spool_queue *q = db->queues[i];
		char key[QKEY_LEN], *v;
		size_t len;
		int rc;

		key_queue('C', q->qid, key);
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

static int load_append(spool_queue *q, int si, uint32_t n)
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
	spool_db *db = arg;
	struct idx_rec r;
	struct node *m;
	struct msg val;
	spool_queue *q;

	if (klen != ID_KEY_LEN || idx_decode(v, vlen, &r) != 0) {
		db_log(db, SPOOL_LOG_ERR, "unreadable message index record");
		return -EIO;
	}
	q = queue_by_qid(db, r.qid);
	if (!q) {
		db_log(db, SPOOL_LOG_WARN, "message of unknown queue %u", r.qid);
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
static int load_index(spool_queue *q)
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
static void load_discard(spool_queue *q)
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
	spool_db *db;
	struct store_batch *stale;      /* expired keys to delete */
	int64_t now;
};

/* One dedup key: keep it if its window is still open. */
static int load_dedup(void *arg, const char *k, size_t klen, const char *v,
		      size_t vlen)
{
	struct dedup_load *l = arg;
	int64_t expiry = 0;
	spool_queue *q;
	uint32_t qid;

	if (klen != DKEY_LEN || vlen != 8)
		return 0;
	for (int i = 7; i >= 0; i--)
		expiry = (int64_t)((uint64_t)expiry << 8 | (unsigned char)v[i]);
	qid = (uint32_t)(unsigned char)k[1] << 24 |
	      (uint32_t)(unsigned char)k[2] << 16 |
	      (uint32_t)(unsigned char)k[3] << 8 | (unsigned char)k[4];
	q = queue_by_qid(l->db, qid);
	if (!q || expiry <= l->now)
		store_batch_delete(l->stale, CF_META, k, klen);
	else if (dedup_add(&q->dedup, (const uint8_t *)k + QKEY_LEN, expiry))
		return -ENOMEM;
	return 0;
}

static int load_dedups(spool_db *db)
{
	struct dedup_load l = { db, store_batch_new(db->st), spool_now(db) };
	int rc;

	if (!l.stale)
		return -ENOMEM;
	rc = store_scan(db->st, CF_META, "D", 1, load_dedup, &l);
	if (!rc && store_batch_count(l.stale))
		rc = store_write(db->st, l.stale, 0);
	store_batch_free(l.stale);
	return rc;
}

static int load_meta(spool_db *db)
{
	char *v;
	size_t len;
	int rc = store_get(db->st, CF_META, "V", 1, &v, &len);

	if (rc == -ENOENT) {
		struct store_batch *b = store_batch_new(db->st);

		if (!b)
			return -ENOMEM;
		store_batch_put(b, CF_META, "V", 1, FORMAT_VERSION, 1);
		rc = store_write(db->st, b, 1);
		store_batch_free(b);
		/* Durable in any sync mode: a store without it is refused
		 * as not a spoolfs store (store.h, STORE_MARKER). */
		return rc ? rc : store_sync(db->st);
	}
	if (rc)
		return rc;
	rc = (len == 1 && v[0] == FORMAT_VERSION[0]) ? 0 : -EIO;
	if (rc)
		db_log(db, SPOOL_LOG_ERR, "store format %.*s is not %s",
		       (int)len, v, FORMAT_VERSION);
	free(v);
	if (rc)
		return rc;
	if (store_get(db->st, CF_META, "I", 1, &v, &len) == 0) {
		if (len == 8)
			db->last_id = key_id_decode(v) - 1;
		free(v);
	}
	return 0;
}

static int db_load(spool_db *db)
{
	int rc = load_meta(db);

	if (!rc)
		rc = store_scan(db->st, CF_META, "Q", 1, load_queue, db);
	if (!rc)
		rc = load_counters(db);
	if (!rc)
		rc = store_scan(db->st, CF_IDX, "", 0, load_msg, db);
	for (size_t i = 0; i < db->nqueues; i++) {
		spool_queue *q = db->queues[i];

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

static void db_free(spool_db *db)
{
	for (size_t i = 0; i < db->nqueues; i++) {
		db->queues[i]->alive = false;
		queue_unref(db->queues[i]);
	}
	free(db->queues);
	arena_destroy(&db->arena);
	store_close(db->st);
	pthread_rwlock_destroy(&db->qlock);
	pthread_mutex_destroy(&db->cfglock);
	pthread_mutex_destroy(&db->idlock);
	pthread_mutex_destroy(&db->tlock);
	pthread_cond_destroy(&db->tcond);
	free(db);
}

static void db_init_locks(spool_db *db)
{
	pthread_condattr_t ca;

	pthread_rwlock_init(&db->qlock, NULL);
	pthread_mutex_init(&db->cfglock, NULL);
	pthread_mutex_init(&db->idlock, NULL);
	pthread_mutex_init(&db->tlock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&db->tcond, &ca);
	pthread_condattr_destroy(&ca);
}

int spool_open(const char *dir, const struct spool_options *o, spool_db **out)
{
	spool_db *db = calloc(1, sizeof(*db));
	int rc;

	if (!db)
		return -ENOMEM;
	spool_options_init(&db->opt);
	if (o)
		db->opt = *o;
	if (!db->opt.clock)
		db->opt.clock = clock_real;
	if (!db->opt.log)
		db->opt.log = log_stderr;
	db_init_locks(db);
	db->timer_next = INT64_MAX;
	if (arena_init(&db->arena)) {
		rc = -ENOMEM;
		goto out_free;
	}
	rc = store_open(dir, (db->opt.sync == SPOOL_SYNC_ALWAYS ?
			      STORE_OPEN_SYNC : 0) |
			(db->opt.salvage ? STORE_OPEN_SALVAGE : 0),
			store_log_cb, db, &db->st);
	if (rc)
		goto out_free;
	rc = db_load(db);
	if (!rc)
		rc = store_writable(db->st);
	if (rc)
		goto out_free;
	if (store_salvaged(db->st))
		salvage_report(db);
	spool_tick(db);
	if (!db->opt.manual_timers) {
		rc = timer_start(db);
		if (rc)
			goto out_free;
	}
	*out = db;
	return 0;

out_free:
	db_free(db);
	return rc;
}

void spool_close(spool_db *db)
{
	if (!db)
		return;
	timer_stop(db);
	db_free(db);
}

/* ------------------------------------------------------------ queues */

int spool_queue_create(spool_db *db, const char *name,
		       const struct spool_queue_attr *attr)
{
	struct spool_queue_attr a = *attr;
	spool_queue *q;
	int rc;

	if (!spool_name_valid(name, strlen(name)))
		return -EINVAL;
	a.mode &= 07777;
	a.ctime_ms = spool_now(db);
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

/* Deletes the queue's record, counters and dedup keys in one batch. */
static int queue_delete_record(spool_queue *q)
{
	struct store_batch *b = store_batch_new(q->db->st);
	char key[QKEY_LEN];
	int rc;

	if (!b)
		return -ENOMEM;
	key_queue('D', q->qid, key);
	rc = store_scan(q->db->st, CF_META, key, QKEY_LEN, add_delete, b);
	if (rc) {
		store_batch_free(b);
		return rc;
	}
	key_queue('Q', q->qid, key);
	store_batch_delete(b, CF_META, key, QKEY_LEN);
	key_queue('C', q->qid, key);
	store_batch_delete(b, CF_META, key, QKEY_LEN);
	rc = store_write(q->db->st, b, 1);
	store_batch_free(b);
	return rc;
}

int spool_queue_delete(spool_db *db, const char *name)
{
	spool_queue *q;
	int rc;

	pthread_mutex_lock(&db->cfglock);
	pthread_rwlock_wrlock(&db->qlock);
	q = queue_find_locked(db, name);
	rc = q ? 0 : -ENOENT;
	if (q) {
		pthread_mutex_lock(&q->lock);
		if (q->hcount || q->pending)
			rc = -ENOTEMPTY;
		else
			q->alive = false; /* refuses pushes from now on */
		pthread_mutex_unlock(&q->lock);
	}
	if (!rc)
		rc = queue_delete_record(q);
	if (!rc)
		table_remove(db, q);
	else if (rc != -ENOENT && rc != -ENOTEMPTY)
		q->alive = true; /* the write failed: it still exists */
	pthread_rwlock_unlock(&db->qlock);
	pthread_mutex_unlock(&db->cfglock);
	if (!rc)
		queue_unref(q);
	return rc;
}

int spool_queue_open(spool_db *db, const char *name, spool_queue **out)
{
	spool_queue *q;

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

void spool_queue_close(spool_queue *q)
{
	if (q)
		queue_unref(q);
}

const char *spool_queue_name(const spool_queue *q)
{
	return q->name;
}

int spool_queue_alive(const spool_queue *q)
{
	spool_queue *mq = (spool_queue *)q;
	int alive;

	pthread_mutex_lock(&mq->lock);
	alive = mq->alive;
	pthread_mutex_unlock(&mq->lock);
	return alive;
}

void spool_queue_set_udata(spool_queue *q, void *p)
{
	atomic_store(&q->udata, p);
}

void *spool_queue_udata(const spool_queue *q)
{
	return atomic_load(&((spool_queue *)q)->udata);
}

int spool_queue_next(spool_db *db, const char *after,
		     char name[SPOOL_NAME_MAX + 1])
{
	size_t i;
	int rc = -ENOENT;

	pthread_rwlock_rdlock(&db->qlock);
	i = after ? table_search(db, after) : 0;
	if (after && i < db->nqueues && strcmp(db->queues[i]->name, after) == 0)
		i++;
	if (i < db->nqueues) {
		strcpy(name, db->queues[i]->name);
		rc = 0;
	}
	pthread_rwlock_unlock(&db->qlock);
	return rc;
}

size_t spool_queue_count(spool_db *db)
{
	size_t n;

	pthread_rwlock_rdlock(&db->qlock);
	n = db->nqueues;
	pthread_rwlock_unlock(&db->qlock);
	return n;
}

int spool_queue_getattr(spool_queue *q, struct spool_queue_attr *out)
{
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	if (q->alive)
		*out = q->attr;
	else
		rc = -ENOENT;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* Settings and attributes change under db->cfglock, so the record written
 * is never older than one written before it. */
int spool_queue_setattr(spool_queue *q, const struct spool_queue_attr *attr)
{
	struct spool_queue_attr a = *attr;
	struct spool_settings s;
	int rc;

	a.mode &= 07777;
	a.ctime_ms = spool_now(q->db);
	pthread_mutex_lock(&q->db->cfglock);
	rc = spool_settings_get(q, &s);
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

/* ----------------------------------------------------------- settings */

int spool_settings_get(spool_queue *q, struct spool_settings *out)
{
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	if (q->alive)
		*out = q->set;
	else
		rc = -ENOENT;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int spool_config_format(spool_queue *q, char *buf, size_t len)
{
	struct spool_settings s;
	int rc = spool_settings_get(q, &s);

	return rc ? rc : settings_format(&s, q->name, buf, len);
}

/* Does queue name exist? cfglock held (so none is created or deleted). */
static int queue_exists(spool_db *db, const char *name)
{
	int found;

	pthread_rwlock_rdlock(&db->qlock);
	found = queue_find_locked(db, name) != NULL;
	pthread_rwlock_unlock(&db->qlock);
	return found;
}

/* Does following fanout lists from target ever lead back to self? */
static int fanout_reaches(spool_db *db, const char *list, const char *self,
			  int depth)
{
	char buf[sizeof(((struct spool_settings *)0)->fanout)];

	if (depth > 64)
		return 1;
	char *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	for (char *t = strtok_r(buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		spool_queue *q;
		struct spool_settings s;

		if (strcmp(t, self) == 0)
			return 1;
		if (spool_queue_open(db, t, &q))
			continue;
		spool_settings_get(q, &s);
		spool_queue_close(q);
		if (s.fanout[0] && fanout_reaches(db, s.fanout, self, depth + 1))
			return 1;
	}
	return 0;
}

/* Checks the settings that name other queues; cfglock held. */
static int settings_check_refs(spool_queue *q, const struct spool_settings *s)
{
	char dflt[SPOOL_NAME_MAX + 8];
	char buf[sizeof(s->fanout)];

	snprintf(dflt, sizeof(dflt), "%s.dead", q->name);
	if (s->dead_letter[0] && strcmp(s->dead_letter, dflt) != 0 &&
	    (strcmp(s->dead_letter, q->name) == 0 ||
	     !queue_exists(q->db, s->dead_letter)))
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", s->fanout);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save))
		if (!queue_exists(q->db, t))
			return -EINVAL;
	if (s->fanout[0] && fanout_reaches(q->db, s->fanout, q->name, 0))
		return -EINVAL;
	return 0;
}

int spool_config_apply(spool_queue *q, const char *text, size_t len)
{
	struct spool_settings s;
	int was_paused, rc;

	pthread_mutex_lock(&q->db->cfglock);
	rc = spool_settings_get(q, &s);
	was_paused = s.paused;
	if (!rc)
		rc = settings_parse(&s, text, len);
	if (!rc)
		rc = settings_check_refs(q, &s);
	if (!rc)
		rc = queue_write_record(q, &q->attr, &s);
	if (!rc) {
		pthread_mutex_lock(&q->lock);
		q->set = s;
		pthread_mutex_unlock(&q->lock);
	}
	pthread_mutex_unlock(&q->db->cfglock);
	if (!rc && was_paused && !s.paused)
		queue_wake(q);
	if (!rc && s.retention_ms)
		timer_kick(q->db, spool_now(q->db));
	return rc;
}
