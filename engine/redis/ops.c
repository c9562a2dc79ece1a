/*
 * ops.c - the Redis store's operations (store.h): each one builds the
 * arguments of one function of spool.lua, calls it (conn.c), and turns
 * the reply into the engine's structures. The handle (open, close, the
 * timer thread, queue handles and their settings cache, wake-ups) is here
 * too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redis.h"

#define RD_GONE (-100000)       /* spool.lua's GONE */
#define RD_SAFETY_MS 2000       /* parked readers are woken this often */
#define RD_SETTINGS_TTL_MS 1000 /* a cached settings copy, at most */
#define RD_MOVE_STEP 1000
#define RD_SWEEP_MS 30000       /* a slice of the sweep this often */
#define RD_SWEEP_SLICE 64       /* families, about, per slice */

/* ------------------------------------------------------------- helpers */

size_t rd_family_len(const char *name)
{
	return strcspn(name, ".");
}

/* Whether queues a and b are of one family. */
static bool same_family(const char *a, const char *b)
{
	size_t n = rd_family_len(a);

	return n == rd_family_len(b) && strncmp(a, b, n) == 0;
}

static int64_t db_now(struct rd_db *db)
{
	return db->pub.opt.clock(db->pub.opt.clock_arg);
}

/* The clock of a store whose caller did not replace it: the server's. */
static int64_t server_clock(void *arg)
{
	struct rd_db *db = arg;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
	       atomic_load(&db->offset);
}

/* Arguments that start with the queue's name and incarnation. */
static void q_args(struct rd_args *a, struct rd_queue *q)
{
	rd_args_init(a);
	a->queue = q->pub.name;
	rd_arg_str(a, q->pub.name);
	rd_arg_str(a, q->gen);
}

static void id_arg(struct rd_args *a, uint64_t id, char text[SPOOL_ID_LEN + 1])
{
	spool_id_format(id, text);
	rd_arg(a, text, SPOOL_ID_LEN);
}

/* A call on queue q: RD_GONE marks the handle dead. */
static int q_call(struct rd_queue *q, const char *fn, struct rd_args *a,
		  enum rd_call kind, struct rd_reply *out)
{
	int rc = rd_call(RDB(q->pub.db), fn, a, kind, out);

	rd_args_free(a);
	if (rc == RD_GONE) {
		atomic_store(&q->alive, 0);
		rc = -ENOENT;
	}
	return rc;
}

/* A message's meta as spool.lua returns it (meta_list). */
static void meta_info(const struct rd_reply *m, struct spool_msg_info *info)
{
	const char *id = rd_str(m, 0, NULL);

	memset(info, 0, sizeof(*info));
	if (id)
		spool_id_parse(id, SPOOL_ID_LEN, &info->id);
	info->state = (enum spool_state)rd_int(m, 1);
	info->priority = (int32_t)rd_int(m, 2);
	info->receives = (uint32_t)rd_int(m, 3);
	info->size = (uint64_t)rd_int(m, 4);
	info->sent_ms = rd_int(m, 5);
	info->due_ms = rd_int(m, 6);
	info->first_received_ms = rd_int(m, 7);
}

static int dup_value(const struct rd_reply *r, size_t i, char **out,
		     size_t *len);

/* ------------------------------------------------------------ settings */

enum { F_INT, F_UINT, F_STR };
static const struct field {
	const char *key;
	int type;
	size_t off;
	size_t size;
} fields[] = {
#define FLD(k, t, m) { k, t, offsetof(struct spool_settings, m), \
		       sizeof(((struct spool_settings *)0)->m) }
	FLD("vt", F_INT, visibility_timeout_ms),
	FLD("rw", F_INT, receive_wait_ms),
	FLD("delay", F_INT, delay_ms),
	FLD("prio", F_INT, priority),
	FLD("max_size", F_UINT, max_size),
	FLD("max_depth", F_UINT, max_depth),
	FLD("max_recv", F_UINT, max_receives),
	FLD("dl", F_STR, dead_letter),
	FLD("ret", F_INT, retention_ms),
	FLD("dedup", F_INT, dedup),
	FLD("dwin", F_INT, dedup_window_ms),
	FLD("paused", F_INT, paused),
	FLD("fanout", F_STR, fanout),
#undef FLD
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static void field_set(struct spool_settings *s, const struct field *f,
		      const char *v, size_t len)
{
	char *p = (char *)s + f->off;

	if (f->type == F_STR) {
		size_t n = len < f->size - 1 ? len : f->size - 1;

		memcpy(p, v, n);
		p[n] = '\0';
		return;
	}
	int64_t x = f->type == F_UINT ? (int64_t)strtoull(v, NULL, 10) :
		    strtoll(v, NULL, 10);
	if (f->size == 8)
		memcpy(p, &x, 8);
	else {
		int32_t y = (int32_t)x;

		memcpy(p, &y, 4);
	}
}

/* Appends every setting of s as field, value pairs (numbers in nums). */
static void settings_args(struct rd_args *a, const struct spool_settings *s,
			  char (*nums)[24])
{
	for (size_t i = 0; i < NFIELDS; i++) {
		const struct field *f = &fields[i];
		const char *p = (const char *)s + f->off;

		rd_arg_str(a, f->key);
		if (f->type == F_STR) {
			rd_arg_str(a, p);
			continue;
		}
		if (f->size == 8) {
			int64_t x;

			memcpy(&x, p, 8);
			if (f->type == F_UINT)
				snprintf(nums[i], 24, "%llu",
					 (unsigned long long)x);
			else
				snprintf(nums[i], 24, "%lld", (long long)x);
		} else {
			int32_t y;

			memcpy(&y, p, 4);
			if (f->type == F_UINT)
				snprintf(nums[i], 24, "%u", (uint32_t)y);
			else
				snprintf(nums[i], 24, "%d", y);
		}
		rd_arg_str(a, nums[i]);
	}
}

/* Reads queue name (incarnation gen, "" any): settings, attributes and
 * its gen. */
static int q_get(struct rd_db *db, const char *name, const char *gen,
		 struct spool_settings *s, struct spool_queue_attr *attr,
		 char gen_out[24])
{
	struct rd_args a;
	struct rd_reply r, h;
	int rc;

	rd_args_init(&a);
	a.queue = name;
	rd_arg_str(&a, name);
	rd_arg_str(&a, gen);
	rc = rd_call(db, "qget", &a, RD_READ, &r);
	rd_args_free(&a);
	if (rc)
		return rc;
	if (gen_out)
		snprintf(gen_out, 24, "%s", rd_str(&r, 0, NULL) ?: "");
	h = rd_elem(&r, 1);
	if (s)
		settings_default(s);
	if (attr)
		memset(attr, 0, sizeof(*attr));
	for (size_t i = 0; i + 1 < rd_count(&h); i += 2) {
		size_t vlen;
		const char *k = rd_str(&h, i, NULL), *v = rd_str(&h, i + 1,
								 &vlen);

		if (!k || !v)
			continue;
		if (attr && strcmp(k, "uid") == 0)
			attr->uid = (uint32_t)strtoul(v, NULL, 10);
		else if (attr && strcmp(k, "gid") == 0)
			attr->gid = (uint32_t)strtoul(v, NULL, 10);
		else if (attr && strcmp(k, "mode") == 0)
			attr->mode = (uint32_t)strtoul(v, NULL, 10);
		else if (attr && strcmp(k, "ctime") == 0)
			attr->ctime_ms = strtoll(v, NULL, 10);
		for (size_t f = 0; s && f < NFIELDS; f++)
			if (strcmp(k, fields[f].key) == 0)
				field_set(s, &fields[f], v, vlen);
	}
	rd_reply_free(&r);
	return 0;
}

/*
 * The settings and attributes of queue pq (either may be NULL), from the
 * copy cached here: qget's reply, kept RD_SETTINGS_TTL_MS at most, and
 * dropped when this host or another changes them (a "c" message on the
 * wake-up channel, spool.lua's qset). A lookup, a stat and a permission
 * check each ask for the attributes: without the copy, a consume made
 * four qget calls besides its lease and ack. While Redis is unreachable
 * the settings are the last known ones; the attributes are not (-EIO).
 */
static int q_cached(spool_queue *pq, struct spool_settings *s,
		    struct spool_queue_attr *attr)
{
	struct rd_queue *q = RQ(pq);
	struct spool_settings ns;
	struct spool_queue_attr na;
	int64_t now = rd_mono_ms();
	unsigned epoch;
	int rc;

	pthread_mutex_lock(&q->slock);
	if (q->set_valid && now - q->set_at < RD_SETTINGS_TTL_MS &&
	    atomic_load(&q->alive)) {
		if (s)
			*s = q->set;
		if (attr)
			*attr = q->attr;
		pthread_mutex_unlock(&q->slock);
		return 0;
	}
	epoch = q->set_epoch;
	pthread_mutex_unlock(&q->slock);
	rc = q_get(RDB(pq->db), pq->name, q->gen, &ns, &na, NULL);
	if (rc == RD_GONE || rc == -ENOENT) {
		atomic_store(&q->alive, 0);
		return -ENOENT;
	}
	if (rc == -EIO && s && !attr) { /* the last known settings */
		pthread_mutex_lock(&q->slock);
		if (q->set_valid) {
			*s = q->set;
			rc = 0;
		}
		pthread_mutex_unlock(&q->slock);
		return rc;
	}
	if (rc)
		return rc;
	pthread_mutex_lock(&q->slock);
	if (q->set_epoch == epoch) {    /* not changed while asking */
		q->set = ns;
		q->attr = na;
		q->set_valid = true;
		q->set_at = now;
	}
	pthread_mutex_unlock(&q->slock);
	if (s)
		*s = ns;
	if (attr)
		*attr = na;
	return 0;
}

int redis_settings_get(spool_queue *pq, struct spool_settings *out)
{
	return q_cached(pq, out, NULL);
}

static int settings_of(spool_db *db, const char *name,
		       struct spool_settings *out)
{
	int rc = q_get(RDB(db), name, "", out, NULL, NULL);

	return rc == RD_GONE ? -ENOENT : rc;
}

static void q_invalidate(struct rd_queue *q)
{
	pthread_mutex_lock(&q->slock);
	q->set_valid = false;
	q->set_epoch++;
	pthread_mutex_unlock(&q->slock);
}

/* Writes field, value pairs into queue q's settings hash. */
/* The arguments of qset: q's, then the queue value mkey (NULL: none) to
 * set to mval (mlen bytes) or (mval NULL) to remove; fields follow. */
static void qset_args(struct rd_args *a, struct rd_queue *q, const char *mkey,
		      const char *mval, size_t mlen)
{
	q_args(a, q);
	rd_arg_str(a, mkey ? mkey : "");
	rd_arg_str(a, mval ? "1" : "0");
	rd_arg(a, mval ? mval : "", mval ? mlen : 0);
}

static int q_set(struct rd_queue *q, struct rd_args *a)
{
	int rc = q_call(q, "qset", a, RD_WRITE, NULL);

	q_invalidate(q);
	return rc;
}

/*
 * In the Cluster's mode a function touches one family's slot: a fan-out or
 * dead-letter queue of another family is refused (DESIGN §10's family
 * rule), logged. A single primary has no such limit.
 */
static int cluster_refs(spool_queue *pq, const struct spool_settings *s)
{
	char t[SPOOL_NAME_MAX + 1];
	const char *list = s->fanout, *bad = NULL;

	if (!RDB(pq->db)->cluster)
		return 0;
	if (s->dead_letter[0] && !same_family(pq->name, s->dead_letter))
		bad = s->dead_letter;
	while (!bad && fanout_next(&list, t))
		if (!same_family(pq->name, t))
			bad = t;
	if (!bad)
		return 0;
	core_log(pq->db, SPOOL_LOG_INFO, "queue %s: %s=%s names a queue of "
		 "another family; a Redis Cluster keeps a family in one slot, "
		 "so fanout= and dead_letter= must stay in the family %.*s",
		 pq->name, bad == s->dead_letter ? "dead_letter" : "fanout",
		 bad, (int)rd_family_len(pq->name), pq->name);
	return -EINVAL;
}

int redis_config_apply(spool_queue *pq, const char *text, size_t len,
		       const char *mkey, const char *mval, size_t mlen)
{
	struct rd_queue *q = RQ(pq);
	struct spool_settings s;
	char nums[NFIELDS][24];
	struct rd_args a;
	int rc;

	q_invalidate(q);
	rc = redis_settings_get(pq, &s);
	if (rc)
		return rc;
	rc = settings_parse(&s, text, len);
	if (rc)
		return rc;
	rc = settings_check_refs(pq, &s, settings_of);
	if (!rc)
		rc = cluster_refs(pq, &s);
	if (rc)
		return rc;
	qset_args(&a, q, mkey, mval, mlen);
	settings_args(&a, &s, nums);
	return q_set(q, &a);
}

/* ------------------------------------------------------ queue handles */

void rd_settings_invalidate(struct rd_db *db, const char *name)
{
	pthread_mutex_lock(&db->qlock);
	for (struct rd_queue *q = db->queues; q; q = q->next)
		if (strcmp(q->pub.name, name) == 0)
			q_invalidate(q);
	pthread_mutex_unlock(&db->qlock);
}

void rd_queue_gone(struct rd_db *db, const char *name, const char *gen)
{
	pthread_mutex_lock(&db->qlock);
	for (struct rd_queue *q = db->queues; q; q = q->next)
		if (strcmp(q->pub.name, name) == 0 &&
		    (!gen || strcmp(q->gen, gen) == 0))
			atomic_store(&q->alive, 0);
	pthread_mutex_unlock(&db->qlock);
	rd_settings_invalidate(db, name);
}

/* Wakes the live queue name of this process, if it has one open. */
void rd_wake_name(struct rd_db *db, const char *name)
{
	struct rd_queue *q;

	pthread_mutex_lock(&db->qlock);
	for (q = db->queues; q; q = q->next)
		if (atomic_load(&q->alive) && strcmp(q->pub.name, name) == 0)
			break;
	if (q)
		q->refs++;
	pthread_mutex_unlock(&db->qlock);
	/* a queue no handle here has open: its memory for the wake (a
	 * subscriber may keep it through the wake callback) */
	if (!q) {
		spool_queue *pq;

		if (redis_queue_open(&db->pub, name, &pq))
			return;
		q = RQ(pq);
	}
	core_wake(&q->pub);
	redis_queue_close(&q->pub);
}

/* Wakes every live queue open here (messages may have been missed). */
void rd_wake_all(struct rd_db *db)
{
	struct rd_queue **v = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&db->qlock);
	for (struct rd_queue *q = db->queues; q; q = q->next) {
		if (!atomic_load(&q->alive))
			continue;
		if (n == cap) {
			struct rd_queue **nv;

			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		q->refs++;
		v[n++] = q;
	}
	pthread_mutex_unlock(&db->qlock);
	for (size_t i = 0; i < n; i++) {
		core_wake(&v[i]->pub);
		redis_queue_close(&v[i]->pub);
	}
	free(v);
}

int redis_queue_open(spool_db *pdb, const char *name, spool_queue **out)
{
	struct rd_db *db = RDB(pdb);
	struct rd_queue *q;
	char gen[24];
	int rc;

	if (!spool_name_valid(name, strlen(name)))
		return -ENOENT;
	rc = q_get(db, name, "", NULL, NULL, gen);
	if (rc)
		return rc == RD_GONE ? -ENOENT : rc;
	pthread_mutex_lock(&db->qlock);
	for (q = db->queues; q; q = q->next)
		if (strcmp(q->pub.name, name) == 0 &&
		    strcmp(q->gen, gen) == 0 && atomic_load(&q->alive))
			break;
	if (q) {
		q->refs++;
	} else if ((q = calloc(1, sizeof(*q)))) {
		core_queue_init(&q->pub, pdb, name);
		snprintf(q->gen, sizeof(q->gen), "%s", gen);
		atomic_store(&q->alive, 1);
		pthread_mutex_init(&q->slock, NULL);
		q->refs = 1;
		q->next = db->queues;
		db->queues = q;
	}
	pthread_mutex_unlock(&db->qlock);
	if (!q)
		return -ENOMEM;
	*out = &q->pub;
	return 0;
}

void redis_queue_close(spool_queue *pq)
{
	struct rd_db *db = RDB(pq->db);
	struct rd_queue *q = RQ(pq), **pp;
	int last;

	pthread_mutex_lock(&db->qlock);
	last = --q->refs == 0;
	if (last)
		for (pp = &db->queues; *pp; pp = &(*pp)->next)
			if (*pp == q) {
				*pp = q->next;
				break;
			}
	pthread_mutex_unlock(&db->qlock);
	if (last) {
		pthread_mutex_destroy(&q->slock);
		free(q);
	}
}

int redis_queue_alive(spool_queue *pq)
{
	return atomic_load(&RQ(pq)->alive);
}

int redis_queue_create(spool_db *pdb, const char *name,
		       const struct spool_queue_attr *attr)
{
	struct spool_settings s;
	char nums[NFIELDS][24];
	struct rd_args a;
	int rc;

	/* validation first, also when writes fail (test seam) */
	if (atomic_load(&RDB(pdb)->fail_writes) &&
	    q_get(RDB(pdb), name, "", NULL, NULL, NULL) == 0)
		return -EEXIST;
	if (RDB(pdb)->cluster) {
		/* the family first (harmless if the rest fails), so that the
		 * sweep finds it: qcreate's second call adds the name */
		char fam[SPOOL_NAME_MAX + 1];

		snprintf(fam, sizeof(fam), "%.*s", (int)rd_family_len(name),
			 name);
		rd_args_init(&a);
		rd_arg_str(&a, "f+");
		rd_arg_str(&a, fam);
		rc = rd_call(RDB(pdb), "ns", &a, RD_WRITE, NULL);
		rd_args_free(&a);
		if (rc)
			return rc;
	}
	rd_args_init(&a);
	a.queue = name;
	rd_arg_str(&a, name);
	rd_arg_int(&a, attr->uid);
	rd_arg_int(&a, attr->gid);
	rd_arg_int(&a, attr->mode);
	rd_arg_int(&a, attr->ctime_ms);
	settings_default(&s);           /* the settings of a new queue */
	settings_args(&a, &s, nums);
	rc = rd_call(RDB(pdb), "qcreate", &a, RD_WRITE, NULL);
	rd_args_free(&a);
	return rc;
}

int redis_queue_delete(spool_db *pdb, const char *name, int all)
{
	struct rd_args a;
	int rc;

	rd_args_init(&a);
	a.queue = name;
	rd_arg_str(&a, name);
	rd_arg_int(&a, all ? 1 : 0);
	rc = rd_call(RDB(pdb), "qdelete", &a, RD_WRITE, NULL);
	rd_args_free(&a);
	if (!rc)
		rd_queue_gone(RDB(pdb), name, NULL);
	return rc;
}

int redis_queue_next(spool_db *pdb, const char *after,
		     char name[SPOOL_NAME_MAX + 1])
{
	struct rd_args a;
	struct rd_reply r;
	const char *n;
	int rc;

	rd_args_init(&a);
	rd_arg_str(&a, after ? after : "");
	rc = rd_call(RDB(pdb), "qnext", &a, RD_READ, &r);
	rd_args_free(&a);
	if (rc)
		return rc;
	n = rd_str(&r, 0, NULL);
	snprintf(name, SPOOL_NAME_MAX + 1, "%s", n ? n : "");
	rd_reply_free(&r);
	return 0;
}

ssize_t redis_queue_count(spool_db *pdb)
{
	struct rd_args a;
	struct rd_reply r;
	ssize_t n;
	int rc;

	rd_args_init(&a);
	rc = rd_call(RDB(pdb), "qcount", &a, RD_READ, &r);
	rd_args_free(&a);
	if (rc)
		return rc;
	n = rd_int(&r, 0);
	rd_reply_free(&r);
	return n;
}

int redis_queue_getattr(spool_queue *pq, struct spool_queue_attr *out)
{
	return q_cached(pq, NULL, out);
}

int redis_queue_setattr(spool_queue *pq, const struct spool_queue_attr *attr)
{
	struct rd_args a;

	qset_args(&a, RQ(pq), NULL, NULL, 0);
	rd_arg_str(&a, "uid");
	rd_arg_int(&a, attr->uid);
	rd_arg_str(&a, "gid");
	rd_arg_int(&a, attr->gid);
	rd_arg_str(&a, "mode");
	rd_arg_int(&a, attr->mode);
	rd_arg_str(&a, "ctime");
	rd_arg_int(&a, attr->ctime_ms);
	return q_set(RQ(pq), &a);
}

int redis_queue_meta_get(spool_queue *pq, const char *key, char **val,
			 size_t *len)
{
	struct rd_args a;
	struct rd_reply r;
	int rc;

	q_args(&a, RQ(pq));
	rd_arg_str(&a, key);
	rc = q_call(RQ(pq), "meta_get", &a, RD_READ, &r);
	if (rc)
		return rc;
	rc = dup_value(&r, 0, val, len);
	rd_reply_free(&r);
	return rc;
}

int redis_queue_meta_set(spool_queue *pq, const char *key, const char *val,
			 size_t len)
{
	struct rd_args a;

	q_args(&a, RQ(pq));
	rd_arg_str(&a, key);
	rd_arg_str(&a, val ? "1" : "0");
	rd_arg(&a, val ? val : "", val ? len : 0);
	return q_call(RQ(pq), "meta_set", &a, RD_WRITE, NULL);
}

/* ------------------------------------------------------------ pushing */

int redis_push_room(spool_queue *pq, size_t n)
{
	struct rd_args a;

	q_args(&a, RQ(pq));
	rd_arg_int(&a, (int64_t)n);
	return q_call(RQ(pq), "room", &a, RD_READ, NULL);
}

int redis_push_batch(spool_queue *pq, const struct spool_push *p, size_t n,
		     uint64_t *first_id, uint64_t *ids)
{
	struct rd_queue *q = RQ(pq);
	struct spool_settings s;
	struct rd_args a;
	struct rd_reply r;
	char **recs = calloc(n, sizeof(*recs));
	char (*keys)[2 * DEDUP_KEY_LEN + 1] = calloc(n, sizeof(*keys));
	char (*nums)[5][24] = calloc(n, sizeof(*nums));
	size_t bytes = 0;
	int rc;

	if (!recs || !keys || !nums) {
		rc = -ENOMEM;
		goto out;
	}
	rc = redis_settings_get(pq, &s);
	if (!rc)
		rc = push_check(p, n, UINT64_MAX);      /* max_size: spool.lua */
	if (rc)
		goto out;
	q_args(&a, q);
	rd_arg_int(&a, (int64_t)n);
	for (size_t i = 0; i < n; i++) {
		size_t len;

		/* a big batch is one long function call: wait for its reply
		 * a second longer per 2000 messages or 8 MiB */
		a.timeout_s = (int)(10 + i / 2000 + bytes / (8 << 20));
		bytes += p[i].len;

		recs[i] = body_encode(&p[i], &len);
		if (!recs[i]) {
			rd_args_free(&a);
			rc = -ENOMEM;
			goto out;
		}
		if (s.dedup && !(s.dedup == 1 && !p[i].name)) {
			uint8_t k[DEDUP_KEY_LEN];

			dedup_key(s.dedup, &p[i], k);
			for (int j = 0; j < DEDUP_KEY_LEN; j++)
				sprintf(keys[i] + 2 * j, "%02x", k[j]);
		}
		snprintf(nums[i][0], 24, "%zu", p[i].len);
		snprintf(nums[i][1], 24, "%d", p[i].has_priority ? 1 : 0);
		snprintf(nums[i][2], 24, "%d", p[i].priority);
		snprintf(nums[i][3], 24, "%d", p[i].has_delay ? 1 : 0);
		snprintf(nums[i][4], 24, "%lld", (long long)p[i].delay_ms);
		rd_arg(&a, recs[i], len);
		for (int j = 0; j < 5; j++)
			rd_arg_str(&a, nums[i][j]);
		rd_arg_str(&a, keys[i]);
	}
	rc = q_call(q, "push", &a, RD_ONCE, &r);
	if (!rc) {
		const char *id = rd_str(&r, 0, NULL);

		struct rd_reply l = rd_elem(&r, 1);

		if (first_id && id && *id)
			spool_id_parse(id, SPOOL_ID_LEN, first_id);
		for (size_t i = 0; ids && i < n; i++) {
			size_t len;
			const char *t = rd_str(&l, i, &len);

			ids[i] = 0;
			if (t && len == SPOOL_ID_LEN)
				spool_id_parse(t, len, &ids[i]);
		}
		rd_reply_free(&r);
	}
out:
	for (size_t i = 0; recs && i < n; i++)
		free(recs[i]);
	free(recs);
	free(keys);
	free(nums);
	return rc;
}

/* ------------------------------------------------------------ messages */

int redis_msg_stat(spool_queue *pq, uint64_t id, struct spool_msg_info *out)
{
	char text[SPOOL_ID_LEN + 1];
	struct rd_args a;
	struct rd_reply r;
	int rc;

	q_args(&a, RQ(pq));
	id_arg(&a, id, text);
	rc = q_call(RQ(pq), "stat", &a, RD_READ, &r);
	if (rc)
		return rc;
	struct rd_reply m = rd_elem(&r, 0);

	meta_info(&m, out);
	rd_reply_free(&r);
	return 0;
}

/* Copies a string value into a malloc'd buffer. */
static int dup_value(const struct rd_reply *r, size_t i, char **out,
		     size_t *len)
{
	size_t n;
	const char *v = rd_str(r, i, &n);

	if (!v)
		return -EIO;
	*out = malloc(n ? n : 1);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, v, n);
	*len = n;
	return 0;
}

int redis_msg_record(spool_queue *pq, uint64_t id, char **rec, size_t *len)
{
	char text[SPOOL_ID_LEN + 1];
	struct rd_args a;
	struct rd_reply r;
	int rc;

	q_args(&a, RQ(pq));
	id_arg(&a, id, text);
	rc = q_call(RQ(pq), "record", &a, RD_READ, &r);
	if (rc)
		return rc;
	rc = dup_value(&r, 0, rec, len);
	rd_reply_free(&r);
	return rc;
}

int redis_msg_rename(spool_queue *pq, uint64_t id, const char *name)
{
	char text[SPOOL_ID_LEN + 1], *rec, *nrec;
	struct body_view bv;
	struct rd_args a;
	size_t len, nlen;
	int rc = redis_msg_record(pq, id, &rec, &len);

	if (rc)
		return rc;
	if (body_decode(rec, len, &bv)) {
		free(rec);
		return redis_msg_set_corrupt(pq, id) ?: -EIO;
	}
	nrec = body_renamed(&bv, name, &nlen);
	free(rec);
	if (!nrec)
		return -ENOMEM;
	q_args(&a, RQ(pq));
	id_arg(&a, id, text);
	rd_arg(&a, nrec, nlen);
	rc = q_call(RQ(pq), "rename", &a, RD_WRITE, NULL);
	free(nrec);
	return rc;
}

int redis_msg_set_corrupt(spool_queue *pq, uint64_t id)
{
	char text[SPOOL_ID_LEN + 1];
	struct rd_args a;
	int rc;

	q_args(&a, RQ(pq));
	id_arg(&a, id, text);
	rc = q_call(RQ(pq), "corrupt", &a, RD_WRITE, NULL);
	if (!rc)
		core_log_corrupt(pq, id);
	return rc;
}

/*
 * Leases (or pops) the next message whose record passes its checksum;
 * one that fails is set aside as CORRUPT and the next one taken. On
 * success *r holds the meta (value 0) and the record (value 1).
 */
static int take_next(struct rd_queue *q, int pop, int64_t vt,
		     struct rd_reply *r, struct body_view *bv,
		     struct spool_msg_info *info)
{
	for (;;) {
		struct rd_args a;
		struct rd_reply m;
		const char *rec;
		size_t len;
		int rc;

		q_args(&a, q);
		rd_arg_str(&a, pop ? "pop" : "lease");
		rd_arg_int(&a, vt);
		rc = q_call(q, "lease", &a, RD_WRITE, r);
		if (rc)
			return rc;
		m = rd_elem(r, 0);
		meta_info(&m, info);
		rec = rd_str(r, 1, &len);
		if (rec && body_decode(rec, len, bv) == 0)
			return 0;
		if (pop) {      /* put it back, set aside */
			char t[SPOOL_ID_LEN + 1];

			q_args(&a, q);
			id_arg(&a, info->id, t);
			rd_arg_int(&a, SPOOL_CORRUPT);
			rd_arg_int(&a, info->priority);
			rd_arg_int(&a, info->receives);
			rd_arg_int(&a, (int64_t)info->size);
			rd_arg_int(&a, info->sent_ms);
			rd_arg_int(&a, info->due_ms);
			rd_arg_int(&a, info->first_received_ms);
			rd_arg(&a, rec ? rec : "", rec ? len : 0);
			rc = q_call(q, "restore", &a, RD_WRITE, NULL);
			if (!rc)
				core_log_corrupt(&q->pub, info->id);
		} else {
			rc = redis_msg_set_corrupt(&q->pub, info->id);
		}
		rd_reply_free(r);
		if (rc)
			return rc;
	}
}

int redis_lease_next(spool_queue *pq, int64_t vt_ms, void *buf, size_t len,
		     size_t *n, struct spool_msg_info *info)
{
	struct body_view bv;
	struct rd_reply r;
	struct spool_msg_info i;
	int rc = take_next(RQ(pq), 0, vt_ms, &r, &bv, &i);

	if (rc)
		return rc;
	*n = bv.body_len < len ? bv.body_len : len;
	if (*n)
		memcpy(buf, bv.body, *n);
	if (info)
		*info = i;
	rd_reply_free(&r);
	return 0;
}

int redis_pop(spool_queue *pq, void **body, struct spool_msg_info *info)
{
	struct body_view bv;
	struct rd_reply r;
	struct spool_msg_info i;
	int rc = take_next(RQ(pq), 1, -1, &r, &bv, &i);

	if (rc)
		return rc;
	*body = NULL;
	if (bv.body_len && !(*body = malloc(bv.body_len)))
		rc = -ENOMEM;   /* popped all the same: at most once */
	else if (bv.body_len)
		memcpy(*body, bv.body, bv.body_len);
	if (info)
		*info = i;
	rd_reply_free(&r);
	return rc;
}

/* A call on message id of q with extra integer arguments. */
static int msg_call(spool_queue *pq, const char *fn, uint64_t id, int nx,
		    const int64_t *x, struct rd_reply *out)
{
	char text[SPOOL_ID_LEN + 1];
	struct rd_args a;

	q_args(&a, RQ(pq));
	id_arg(&a, id, text);
	for (int i = 0; i < nx; i++)
		rd_arg_int(&a, x[i]);
	return q_call(RQ(pq), fn, &a, RD_WRITE, out);
}

int redis_lease_id(spool_queue *pq, uint64_t id, struct spool_msg_info *info)
{
	struct rd_reply r;
	int rc = msg_call(pq, "lease_id", id, 0, NULL, &r);

	if (rc)
		return rc;
	if (info) {
		struct rd_reply m = rd_elem(&r, 0);

		meta_info(&m, info);
	}
	rd_reply_free(&r);
	return 0;
}

int redis_ack(spool_queue *pq, uint64_t id, uint32_t receives)
{
	int64_t x = receives;

	return msg_call(pq, "ack", id, 1, &x, NULL);
}

/* ack_batch(name, gen, id, receives, id, receives, ...): a result each */
int redis_ack_batch(spool_queue *pq, const uint64_t *ids,
		    const uint32_t *receives, size_t n, int *results)
{
	char (*text)[SPOOL_ID_LEN + 1] = malloc(n * sizeof(*text));
	struct rd_args a;
	struct rd_reply r;
	int rc;

	if (!text)
		rc = -ENOMEM;
	else {
		q_args(&a, RQ(pq));
		for (size_t i = 0; i < n; i++) {
			id_arg(&a, ids[i], text[i]);
			rd_arg_int(&a, receives ? receives[i] : 0);
		}
		rc = q_call(RQ(pq), "ack_batch", &a, RD_WRITE, &r);
	}
	if (!rc) {
		struct rd_reply l = rd_elem(&r, 0);

		for (size_t i = 0; i < n; i++)
			results[i] = i < rd_count(&l) ? (int)rd_int(&l, i)
						      : -EIO;
		rd_reply_free(&r);
	}
	for (size_t i = 0; rc && i < n; i++)
		results[i] = rc;
	free(text);
	return rc;
}

int redis_release(spool_queue *pq, uint64_t id, int uncount)
{
	int64_t x = uncount ? 1 : 0;

	return msg_call(pq, "release", id, 1, &x, NULL);
}

int redis_lease_extend(spool_queue *pq, uint64_t id, uint32_t receives,
		       int64_t expiry_ms)
{
	int64_t x[2] = { receives, expiry_ms < 0 ? -1 : expiry_ms };

	return msg_call(pq, "extend", id, 2, x, NULL);
}

int redis_delete(spool_queue *pq, uint64_t id, unsigned states)
{
	int64_t x = states;

	return msg_call(pq, "delete", id, 1, &x, NULL);
}

/*
 * Steps 2 and 3 of a move across families in the Cluster's mode (the
 * durable outbox move, docs/decisions.md "Redis Cluster"), from an outbox
 * entry e (spool.lua's xentry: source, destination, its gen, meta,
 * record, transfer number): xin on the destination's slot (idempotent: {P:F}:in), then
 * xdone on the source's; a refusal (EDQUOT, ENOENT) puts the message back
 * (xback). No answer: -EIO, and the entry stays for ftick's replay.
 */
static int x_finish(struct rd_db *db, const struct rd_reply *e)
{
	const char *src = rd_str(e, 0, NULL), *dst = rd_str(e, 1, NULL),
		   *gen = rd_str(e, 2, NULL), *n = rd_str(e, 5, NULL), *id, *rec;
	struct rd_reply m = rd_elem(e, 3);
	char fam[SPOOL_NAME_MAX + 32];
	struct rd_args a;
	size_t idlen, rlen;
	int rc;

	id = rd_str(&m, 0, &idlen);
	rec = rd_str(e, 4, &rlen);
	if (!src || !dst || !gen || !id || !rec || !n)
		return -EIO;
	/* the transfer: the source's family and its number there */
	snprintf(fam, sizeof(fam), "%.*s:%s", (int)rd_family_len(src), src, n);
	rd_args_init(&a);
	a.queue = dst;
	rd_arg_str(&a, dst);
	rd_arg_str(&a, gen);
	rd_arg_str(&a, fam);
	rd_arg(&a, id, idlen);
	for (size_t i = 2; i < 8; i++)
		if (i != 6)     /* prio recv size sent first: not due */
			rd_arg_int(&a, rd_int(&m, i));
	rd_arg(&a, rec, rlen);
	rc = rd_call(db, "xin", &a, RD_WRITE, NULL);
	rd_args_free(&a);
	if (rc == RD_GONE)
		rc = -ENOENT;
	if (rc && rc != -EDQUOT && rc != -ENOENT)
		return rc;
	rd_args_init(&a);
	a.queue = src;
	rd_arg_str(&a, src);
	rd_arg(&a, id, idlen);
	if (rd_call(db, rc ? "xback" : "xdone", &a, RD_WRITE, NULL) && !rc)
		rc = -EIO;      /* done, the outbox entry stays: replayed */
	rd_args_free(&a);
	return rc;
}

/* A move of message id of q to dst, a queue of another family, in the
 * Cluster's mode: xout on q's slot, then x_finish. */
static int x_move(spool_queue *pq, uint64_t id, unsigned states,
		  spool_queue *dst)
{
	char text[SPOOL_ID_LEN + 1];
	struct rd_args a;
	struct rd_reply r, e;
	int rc;

	q_args(&a, RQ(pq));
	id_arg(&a, id, text);
	rd_arg_int(&a, states);
	rd_arg_str(&a, dst->name);
	rd_arg_str(&a, RQ(dst)->gen);
	rc = q_call(RQ(pq), "xout", &a, RD_WRITE, &r);
	if (rc)
		return rc;
	e = rd_elem(&r, 0);
	rc = x_finish(RDB(pq->db), &e);
	rd_reply_free(&r);
	return rc;
}

/* Whether a move from q to dst crosses families in the Cluster's mode. */
static bool x_needed(spool_queue *pq, spool_queue *dst)
{
	return RDB(pq->db)->cluster && !same_family(pq->name, dst->name);
}

/* move_all across families: the visible messages one by one, in order,
 * through the outbox (up to max, 0 all); stops at the first refusal. */
static int x_move_all(spool_queue *pq, spool_queue *dst, uint64_t max,
		      uint64_t *moved)
{
	uint64_t ids[100];
	int rc = 0;

	*moved = 0;
	while (!rc && (!max || *moved < max)) {
		struct spool_cursor cur = { 0 };
		ssize_t n = redis_list(pq, SPOOL_VISIBLE, &cur, ids, 100);

		if (n <= 0)
			return (int)n;
		for (ssize_t i = 0; i < n && !rc && (!max || *moved < max);
		     i++) {
			rc = x_move(pq, ids[i], SPOOL_VISIBLE, dst);
			if (rc == -ENOENT && atomic_load(&RQ(pq)->alive) &&
			    spool_queue_alive(dst))
				rc = 0; /* taken meanwhile by another */
			else if (!rc)
				(*moved)++;
		}
	}
	return rc;
}

int redis_move(spool_queue *pq, uint64_t id, unsigned states,
	       spool_queue *dst)
{
	char text[SPOOL_ID_LEN + 1];
	struct rd_args a;

	if (x_needed(pq, dst))
		return x_move(pq, id, states, dst);

	q_args(&a, RQ(pq));
	id_arg(&a, id, text);
	rd_arg_int(&a, states);
	rd_arg_str(&a, dst->name);
	rd_arg_str(&a, RQ(dst)->gen);
	return q_call(RQ(pq), "move", &a, RD_WRITE, NULL);
}

int redis_move_all(spool_queue *pq, spool_queue *dst, uint64_t max,
		   uint64_t *moved)
{
	uint64_t total = 0, step;
	int rc;

	if (x_needed(pq, dst))
		return x_move_all(pq, dst, max, moved ? moved : &total);
	do {
		uint64_t want = max ? max - total : RD_MOVE_STEP;
		struct rd_args a;
		struct rd_reply r;

		if (want > RD_MOVE_STEP)
			want = RD_MOVE_STEP;
		q_args(&a, RQ(pq));
		rd_arg_str(&a, dst->name);
		rd_arg_str(&a, RQ(dst)->gen);
		rd_arg_int(&a, (int64_t)want);
		rc = q_call(RQ(pq), "move_all", &a, RD_WRITE, &r);
		step = rc ? 0 : (uint64_t)rd_int(&r, 0);
		rd_reply_free(&r);
		total += step;
	} while (!rc && step && (!max || total < max));
	if (moved)
		*moved = total;
	return rc;
}

int redis_purge(spool_queue *pq, unsigned states, uint64_t *count)
{
	struct rd_args a;
	struct rd_reply r;
	int rc;

	q_args(&a, RQ(pq));
	rd_arg_int(&a, states);
	rc = q_call(RQ(pq), "purge", &a, RD_WRITE, &r);
	if (count)
		*count = rc ? 0 : (uint64_t)rd_int(&r, 0);
	rd_reply_free(&r);
	return rc;
}

/* ------------------------------------------------------------ listing */

ssize_t redis_list(spool_queue *pq, enum spool_state state,
		   struct spool_cursor *cur, uint64_t *ids, size_t max)
{
	char from[8 + SPOOL_ID_LEN + 1] = "", text[SPOOL_ID_LEN + 1];
	struct rd_args a;
	struct rd_reply r;
	size_t n;
	int rc;

	if (cur->started) {
		spool_id_format(cur->id, text);
		if (state == SPOOL_VISIBLE)
			snprintf(from, sizeof(from), "%08x%s",
				 (uint32_t)(0x7fffffffLL - cur->priority),
				 text);
		else
			snprintf(from, sizeof(from), "%s", text);
	}
	q_args(&a, RQ(pq));
	rd_arg_int(&a, state);
	rd_arg_str(&a, from);
	rd_arg_int(&a, (int64_t)max);
	rc = q_call(RQ(pq), "list", &a, RD_READ, &r);
	if (rc)
		return rc;
	struct rd_reply l = rd_elem(&r, 0);

	n = rd_count(&l);
	for (size_t i = 0; i < n && i < max; i++) {
		size_t len;
		const char *m = rd_str(&l, i, &len);
		const char *id = state == SPOOL_VISIBLE ? m + 8 : m;

		spool_id_parse(id, SPOOL_ID_LEN, &ids[i]);
		if (state == SPOOL_VISIBLE) {
			char p[9];

			memcpy(p, m, 8);
			p[8] = '\0';
			cur->priority = (int32_t)(0x7fffffffLL -
						  (int64_t)strtoull(p, NULL,
								    16));
		}
		cur->id = ids[i];
		cur->started = 1;
	}
	rd_reply_free(&r);
	return (ssize_t)n;
}

int redis_stats_get(spool_queue *pq, struct spool_stats *out)
{
	static const struct {
		const char *key;
		size_t off;
	} counters[] = {
		{ "bytes", offsetof(struct spool_stats, bytes) },
		{ "pushed_total", offsetof(struct spool_stats, pushed_total) },
		{ "acked_total", offsetof(struct spool_stats, acked_total) },
		{ "expired_total", offsetof(struct spool_stats, expired_total) },
		{ "dead_total", offsetof(struct spool_stats, dead_total) },
		{ "deduped_total", offsetof(struct spool_stats, deduped_total) },
		{ "deleted_total", offsetof(struct spool_stats, deleted_total) },
	};
	struct rd_args a;
	struct rd_reply r, c, h;
	const char *oldest;
	int64_t now = db_now(RDB(pq->db));
	int rc;

	q_args(&a, RQ(pq));
	rc = q_call(RQ(pq), "stats", &a, RD_READ, &r);
	if (rc)
		return rc;
	memset(out, 0, sizeof(*out));
	c = rd_elem(&r, 0);
	out->visible = (uint64_t)rd_int(&c, 0);
	out->delayed = (uint64_t)rd_int(&c, 1);
	out->leased = (uint64_t)rd_int(&c, 2);
	out->corrupt = (uint64_t)rd_int(&c, 3);
	h = rd_elem(&r, 1);
	for (size_t i = 0; i + 1 < rd_count(&h); i += 2) {
		const char *k = rd_str(&h, i, NULL);

		for (size_t j = 0; k && j < sizeof(counters) /
		     sizeof(counters[0]); j++)
			if (strcmp(k, counters[j].key) == 0)
				*(uint64_t *)((char *)out + counters[j].off) =
					(uint64_t)rd_int(&h, i + 1);
	}
	oldest = rd_str(&r, 2, NULL);
	if (oldest && *oldest && now > strtoll(oldest, NULL, 10))
		out->oldest_visible_age_ms = now - strtoll(oldest, NULL, 10);
	rd_reply_free(&r);
	return 0;
}

/* ------------------------------------------------------------- timers */

/* A due as spool.lua returns it ('' none) folded into *due. */
static void due_min(const struct rd_reply *r, size_t i, int64_t *due)
{
	const char *v = rd_str(r, i, NULL);

	if (v && *v && strtoll(v, NULL, 10) < *due)
		*due = strtoll(v, NULL, 10);
}

/* A call of fn (ftick, fsweep) on family f's slot, arguments f and
 * (ftick) seen, the due {P}:timers has for it; the due it returns folded
 * into *due (if not NULL). The outbox entries ftick returns (transfers cut
 * more than 30 s ago) are replayed. */
static int family_call(struct rd_db *db, const char *fn, const char *f,
		       size_t flen, const char *seen, int64_t *due)
{
	char fam[SPOOL_NAME_MAX + 1];
	struct rd_args a;
	struct rd_reply r, l;
	int rc;

	snprintf(fam, sizeof(fam), "%.*s", (int)flen, f);
	rd_args_init(&a);
	a.queue = fam;
	rd_arg_str(&a, fam);
	if (seen)
		rd_arg_str(&a, seen);
	rc = rd_call(db, fn, &a, RD_TICK, &r);
	rd_args_free(&a);
	if (rc)
		return rc;
	if (due)
		due_min(&r, 0, due);
	l = rd_elem(&r, 1);
	for (size_t i = 0; strcmp(fn, "ftick") == 0 && i < rd_count(&l); i++) {
		struct rd_reply e = rd_elem(&l, i), m = rd_elem(&e, 3);
		const char *src = rd_str(&e, 0, NULL), *dst = rd_str(&e, 1, NULL),
			   *id = rd_str(&m, 0, NULL);
		int x = x_finish(db, &e);

		core_log(&db->pub, x ? SPOOL_LOG_WARN : SPOOL_LOG_INFO,
			 "move of %s from %s to %s (cut, replayed): %s",
			 id ? id : "?", src ? src : "?", dst ? dst : "?",
			 x ? strerror(-x) : "done");
	}
	rd_reply_free(&r);
	return 0;
}

/*
 * The due timers of every family, and the next due. On one primary one
 * call does it all. In the Cluster's mode tick (on {P}) names the
 * families due in {P}:timers, and ftick on each one's slot promotes and
 * returns its true earliest due (published with a newer version by its
 * second call). A family publishes only an earlier due, so {P}:timers
 * holds a lower bound of each: the next due is exact once the family of
 * the earliest bound has it for true (ftick on it says so).
 */
int64_t redis_tick(spool_db *pdb)
{
	struct rd_db *db = RDB(pdb);

	for (int round = 0; round < 16; round++) {
		struct rd_args a;
		struct rd_reply r, l;
		int64_t next = INT64_MAX, truth = INT64_MAX;
		size_t n, flen = 0;
		const char *f;
		int rc;

		rd_args_init(&a);
		rc = rd_call(db, "tick", &a, RD_TICK, &r);
		rd_args_free(&a);
		if (rc)
			return db_now(db) + 1000;
		due_min(&r, 0, &next);
		if (!db->cluster) {
			rd_reply_free(&r);
			return next;
		}
		l = rd_elem(&r, 1);
		n = rd_count(&l);
		for (size_t i = 0; i + 1 < n; i += 2) {  /* family, due */
			size_t len;

			if ((f = rd_str(&l, i, &len)) &&
			    family_call(db, "ftick", f, len,
					rd_str(&l, i + 1, NULL) ?: "", NULL))
				rc = -EIO;
		}
		f = n ? NULL : rd_str(&r, 2, &flen);
		if (!rc && f && flen)
			rc = family_call(db, "ftick", f, flen,
					 rd_str(&r, 0, NULL) ?: "", &truth);
		rd_reply_free(&r);
		if (rc)
			return db_now(db) + 1000;
		if (!n && (!flen || truth == next))
			return next;
	}
	return db_now(db) + 1000;
}

int rd_sweep(struct rd_db *db, int families)
{
	int done = 0;

	do {
		struct rd_args a;
		struct rd_reply r, l;
		const char *next;
		int rc;

		rd_args_init(&a);
		rd_arg_str(&a, db->sweep_cursor[0] ? db->sweep_cursor : "0");
		rd_arg_int(&a, families);
		rc = rd_call(db, "families", &a, RD_READ, &r);
		rd_args_free(&a);
		if (rc)
			return rc;
		next = rd_str(&r, 0, NULL);
		snprintf(db->sweep_cursor, sizeof(db->sweep_cursor), "%s",
			 next ? next : "0");
		l = rd_elem(&r, 1);
		for (size_t i = 0; i < rd_count(&l); i++) {
			size_t len;
			const char *f = rd_str(&l, i, &len);

			if (f && family_call(db, "fsweep", f, len, NULL,
					     NULL) == 0)
				done++;
		}
		rd_reply_free(&r);
	} while (done < families && strcmp(db->sweep_cursor, "0") != 0);
	return done;
}

/* The tick of the timer thread (engine/timer_thread.c): the due timers,
 * and every RD_SAFETY_MS a wake of the queues open here, in case a wake-up
 * message was lost. Runs again by the earlier of the two. */
static int64_t timer_tick(spool_db *pdb)
{
	struct rd_db *db = RDB(pdb);
	int64_t next = redis_tick(pdb), safety;

	if (rd_mono_ms() >= db->safety) {
		rd_wake_all(db);
		db->safety = rd_mono_ms() + RD_SAFETY_MS;
	}
	if (rd_mono_ms() >= db->sweep_at) {
		rd_sweep(db, RD_SWEEP_SLICE);
		db->sweep_at = rd_mono_ms() + RD_SWEEP_MS;
	}
	safety = db_now(db) + (db->safety - rd_mono_ms());
	return next < safety ? next : safety;
}

/* ------------------------------------------------------ open and close */

int redis_claims(const char *data)
{
	return strncmp(data, "redis://", 8) == 0 ||
	       strncmp(data, "redis+sentinel://", 17) == 0 ||
	       strncmp(data, "redis+cluster://", 16) == 0;
}

static void db_free(struct rd_db *db)
{
	rd_sub_stop(db);
	timer_thread_stop(&db->timer);
	timer_thread_destroy(&db->timer);
	rd_pool_free(db);
	free(db->prefix);
	free(db->marker);
	free(db);
}

int redis_open(const char *data, const struct spool_options *o,
	       spool_db **out)
{
	struct rd_db *db = calloc(1, sizeof(*db));
	struct timespec ts;
	int rc;

	if (!db)
		return -ENOMEM;
	db->pub.opt = *o;
	db->pub.ops = &redis_store;
	db->pub.shared = 1;             /* other hosts change it */
	pthread_mutex_init(&db->plock, NULL);
	pthread_cond_init(&db->pcond, NULL);
	pthread_mutex_init(&db->qlock, NULL);
	pthread_mutex_init(&db->sublock, NULL);
	timer_thread_init(&db->timer, &db->pub, timer_tick);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(db->origin, sizeof(db->origin), "%lx%lx",
		 (unsigned long)getpid(),
		 (unsigned long)(ts.tv_nsec ^ (uintptr_t)db));
	pthread_mutex_init(&db->alock, NULL);
	rc = rd_parse_url(db, data);
	if (rc)
		goto fail;
	db->server_clock = core_clock_is_real(o);
	if (db->server_clock) {
		db->pub.opt.clock = server_clock;
		db->pub.opt.clock_arg = db;
	}
	rc = rd_connect_all(db);
	if (!rc)
		rc = rd_sub_start(db);
	if (rc)
		goto fail;
	rd_sweep(db, RD_SWEEP_SLICE);
	db->sweep_at = rd_mono_ms() + RD_SWEEP_MS;
	redis_tick(&db->pub);
	if (!o->manual_timers) {
		db->safety = rd_mono_ms() + RD_SAFETY_MS;
		rc = timer_thread_start(&db->timer);
		if (rc)
			goto fail;
	}
	*out = &db->pub;
	return 0;
fail:
	db_free(db);
	return rc;
}

void redis_close(spool_db *pdb)
{
	db_free(RDB(pdb));
}

/* ---------------------------------------------------------- test seams */

void redis_test_fail_writes(spool_db *pdb, int err)
{
	atomic_store(&RDB(pdb)->fail_writes, err);
}

/* The test seams' call: body_get or body_put of id (rec, len: the new
 * record, or NULL). On one primary one call finds the queue; in the
 * Cluster's mode each queue is asked on its family's slot. */
static int body_call(struct rd_db *db, uint64_t id, const char *rec,
		     size_t len, struct rd_reply *out)
{
	char text[SPOOL_ID_LEN + 1], name[SPOOL_NAME_MAX + 1] = "";
	int rc;

	do {
		struct rd_args a;

		if (db->cluster) {
			rc = redis_queue_next(&db->pub, name, name);
			if (rc || !*name)
				return rc ? rc : -ENOENT;
		}
		rd_args_init(&a);
		a.queue = db->cluster ? name : NULL;
		id_arg(&a, id, text);
		if (rec)
			rd_arg(&a, rec, len);
		rd_arg_str(&a, name);
		/* a seam: not stopped by test_fail_writes */
		rc = rd_call(db, rec ? "body_put" : "body_get", &a, RD_READ,
			     out);
		rd_args_free(&a);
	} while (db->cluster && rc == -ENOENT);
	return rc;
}

int redis_test_body_get(spool_db *pdb, uint64_t id, char **rec, size_t *len)
{
	struct rd_reply r;
	int rc = body_call(RDB(pdb), id, NULL, 0, &r);

	if (rc)
		return rc;
	rc = dup_value(&r, 0, rec, len);
	rd_reply_free(&r);
	return rc;
}

int redis_test_body_put(spool_db *pdb, uint64_t id, const char *rec,
			size_t len)
{
	return body_call(RDB(pdb), id, rec, len, NULL);
}

const struct store_ops redis_store = {
	.kind = "redis",
	STORE_OPS(STORE_OP_ENTRY, redis)
};
