/*
 * spool-migrate - copies every queue of one store into another through the
 * engine: queues (owner, mode), settings, the SQS endpoint's queue values,
 * and messages with their bodies, names, user.* attributes, priorities and
 * remaining delays (docs/scale-out.md, "Moving a store from RocksDB to
 * Redis"). It links the engine, so it is a program of its own: the spool CLI
 * works through a mount only (DESIGN §9).
 *
 *   spool-migrate [--dry-run] SOURCE DESTINATION
 *
 * SOURCE and DESTINATION are --data values (a RocksDB directory, a
 * redis://HOST:PORT/PREFIX URL). The source must not be mounted (a RocksDB
 * store is locked by its daemon: exit 2). Every destination queue must be
 * new or empty. Messages get new ids in the destination, in the order of
 * their old ids. A LEASED message is copied as VISIBLE (the lease belongs to
 * a consumer of the old store, which cannot ack it in the new one: it will
 * be delivered again); receive counts start at 0; CORRUPT messages are not
 * copied (counted and named). Settings are applied after the messages, so
 * that fanout, dedup and max_depth do not act on the copy itself.
 *
 * Exit status: 0 all copied; 1 an error (the line says which queue and
 * message); 2 a store could not be opened, or bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"

#define BATCH 100

static const char *const QMETA_KEYS[] = { "sqs.created", "sqs.receive_wait" };

struct msg {
	struct spool_push p;
	struct spool_attr *attrs;
	size_t nattrs;          /* attrs[] whose value is allocated */
	char *body, *names, name[SPOOL_MSG_NAME_MAX + 1];
};

static int fail(const char *q, const char *what, int rc)
{
	fprintf(stderr, "spool-migrate: queue %s: %s: %s\n", q, what,
		strerror(-rc));
	return 1;
}

static int cmp_id(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The ids of q's VISIBLE, DELAYED and LEASED messages, in id order, in
 * *out (free() it); *corrupt counts the CORRUPT ones. Returns the count. */
static ssize_t all_ids(spool_queue *q, uint64_t **out, size_t *corrupt)
{
	static const enum spool_state states[] = { SPOOL_VISIBLE,
		SPOOL_DELAYED, SPOOL_LEASED, SPOOL_CORRUPT };
	uint64_t *ids = NULL, *grown;
	size_t n = 0, cap = 0;

	*corrupt = 0;
	for (size_t s = 0; s < 4; s++) {
		struct spool_cursor cur = { 0 };
		ssize_t got;

		do {
			if (cap - n < 1000) {
				cap = cap ? cap * 2 : 4096;
				grown = realloc(ids, cap * sizeof(*ids));
				if (!grown) {
					free(ids);
					return -ENOMEM;
				}
				ids = grown;
			}
			got = spool_list(q, states[s], &cur, ids + n, 1000);
			if (got < 0) {
				free(ids);
				return got;
			}
			if (states[s] == SPOOL_CORRUPT)
				*corrupt += (size_t)got;
			else
				n += (size_t)got;
		} while (got > 0);
	}
	qsort(ids, n, sizeof(*ids), cmp_id);
	*out = ids;
	return (ssize_t)n;
}

static void msg_free(struct msg *m)
{
	free(m->body);
	free(m->names);
	free(m->attrs);
	memset(m, 0, sizeof(*m));
}

/* Reads message id of q into m (as a push of it into another store). */
static int msg_read(spool_queue *q, uint64_t id, int64_t now, struct msg *m)
{
	struct spool_msg_info info;
	ssize_t len, n;
	size_t na = 0;
	int rc;

	memset(m, 0, sizeof(*m));
	if ((rc = spool_msg_stat(q, id, &info)))
		return rc;
	m->body = malloc(info.size ? info.size : 1);
	if (!m->body)
		return -ENOMEM;
	n = spool_msg_read(q, id, 0, m->body, info.size);
	if (n < 0)
		return (int)n;
	if ((uint64_t)n != info.size)
		return -EIO;
	if ((rc = spool_msg_name(q, id, m->name)))
		return rc;
	len = spool_msg_listattr(q, id, NULL, 0);
	if (len < 0)
		return (int)len;
	m->names = malloc(len ? (size_t)len : 1);
	if (!m->names)
		return -ENOMEM;
	if ((n = spool_msg_listattr(q, id, m->names, (size_t)len)) < 0)
		return (int)n;
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(m->names + i) + 1)
		na++;
	m->attrs = calloc(na ? na : 1, sizeof(*m->attrs));
	if (!m->attrs)
		return -ENOMEM;
	na = 0;
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(m->names + i) + 1) {
		struct spool_attr *a = &m->attrs[na++];
		ssize_t vlen = spool_msg_getattr(q, id, m->names + i, NULL, 0);
		void *v;

		if (vlen < 0)
			return (int)vlen;
		if (!(v = malloc(vlen ? (size_t)vlen : 1)))
			return -ENOMEM;
		m->nattrs = na;
		a->name = m->names + i;
		a->value = v;
		a->len = (size_t)vlen;
		n = spool_msg_getattr(q, id, a->name, v, (size_t)vlen);
		if (n < 0)
			return (int)n;
	}
	m->p = (struct spool_push){
		.body = m->body, .len = info.size,
		.name = m->name[0] ? m->name : NULL,
		.has_priority = 1, .priority = info.priority,
		.has_delay = 1,
		.delay_ms = info.state == SPOOL_DELAYED && info.due_ms > now ?
			    info.due_ms - now : 0,
		.attrs = m->attrs, .nattrs = na,
	};
	return 0;
}

static void msgs_free(struct msg *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t a = 0; a < v[i].nattrs; a++)
			free((void *)v[i].attrs[a].value);
		msg_free(&v[i]);
	}
}

/* Pushes q's messages (ids[0..n)) into d, BATCH at a time. */
static int copy_msgs(const char *name, spool_db *src, spool_queue *q,
		     spool_queue *d, const uint64_t *ids, size_t n)
{
	static struct msg v[BATCH];
	struct spool_push p[BATCH];
	size_t k = 0;
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		rc = msg_read(q, ids[i], spool_now(src), &v[k]);
		if (rc) {
			char t[SPOOL_ID_LEN + 1];

			spool_id_format(ids[i], t);
			fprintf(stderr, "spool-migrate: queue %s: message %s: "
				"%s\n", name, t, strerror(-rc));
			k++;
			break;
		}
		p[k] = v[k].p;
		if (++k == BATCH || i + 1 == n) {
			rc = spool_push_batch(d, p, k, NULL);
			if (rc)
				fail(name, "push into the destination", rc);
			msgs_free(v, k);
			k = 0;
		}
	}
	msgs_free(v, k);
	return rc ? 1 : 0;
}

/* Queue values the engine keeps for front ends (the SQS endpoint's). */
static int copy_qmeta(const char *name, spool_queue *q, spool_queue *d)
{
	char buf[SPOOL_QMETA_VALUE_MAX + 1];

	for (size_t i = 0; i < sizeof(QMETA_KEYS) / sizeof(*QMETA_KEYS); i++) {
		ssize_t n = spool_queue_meta_get(q, QMETA_KEYS[i], buf,
						 sizeof(buf));
		int rc;

		if (n == -ENODATA)
			continue;
		if (n < 0)
			return fail(name, "read a queue value", (int)n);
		if ((rc = spool_queue_meta_set(d, QMETA_KEYS[i], buf)))
			return fail(name, "write a queue value", rc);
	}
	return 0;
}

/* Creates queue name in dst (or takes the empty one there). */
static int make_queue(spool_db *dst, const char *name, spool_queue *q,
		      spool_queue **d)
{
	struct spool_queue_attr attr;
	struct spool_stats st;
	int rc;

	if ((rc = spool_queue_getattr(q, &attr)))
		return fail(name, "owner and mode", rc);
	rc = spool_queue_create(dst, name, &attr);
	if (rc && rc != -EEXIST)
		return fail(name, "create in the destination", rc);
	if ((rc = spool_queue_open(dst, name, d)))
		return fail(name, "open in the destination", rc);
	if ((rc = spool_stats_get(*d, &st)))
		return fail(name, "destination stats", rc);
	if (st.visible + st.delayed + st.leased + st.corrupt) {
		fprintf(stderr, "spool-migrate: queue %s: the destination "
			"queue is not empty; nothing copied into it\n", name);
		return 1;
	}
	rc = spool_queue_setattr(*d, &attr);
	return rc ? fail(name, "owner and mode", rc) : 0;
}

static int copy_queue(spool_db *src, spool_db *dst, const char *name,
		      int dry)
{
	spool_queue *q = NULL, *d = NULL;
	uint64_t *ids = NULL;
	size_t corrupt;
	ssize_t n;
	int rc;

	if ((rc = spool_queue_open(src, name, &q)))
		return fail(name, "open", rc);
	n = all_ids(q, &ids, &corrupt);
	if (n < 0) {
		spool_queue_close(q);
		return fail(name, "list", (int)n);
	}
	rc = dry ? 0 : make_queue(dst, name, q, &d);
	if (!rc && !dry)
		rc = copy_msgs(name, src, q, d, ids, (size_t)n);
	if (!rc && !dry)
		rc = copy_qmeta(name, q, d);
	if (!rc)
		printf("%s: %zd message%s%s", name, n, n == 1 ? "" : "s",
		       dry ? " to copy" : " copied");
	if (!rc && corrupt)
		printf(", %zu corrupt not copied", corrupt);
	if (!rc)
		printf("\n");
	free(ids);
	spool_queue_close(d);
	spool_queue_close(q);
	return rc;
}

/* Applies every source queue's settings to its copy (after the messages:
 * fanout, dedup and max_depth must not act on the copy). */
static int copy_settings(spool_db *src, spool_db *dst, const char *name)
{
	spool_queue *q = NULL, *d = NULL;
	char text[4096];
	int rc, len;

	if ((rc = spool_queue_open(src, name, &q)))
		return fail(name, "open", rc);
	len = spool_config_format(q, text, sizeof(text));
	rc = len < 0 ? len : (size_t)len >= sizeof(text) ? -E2BIG : 0;
	if (!rc)
		rc = spool_queue_open(dst, name, &d);
	if (!rc)
		rc = spool_config_apply(d, text, (size_t)len);
	spool_queue_close(d);
	spool_queue_close(q);
	return rc ? fail(name, "settings", rc) : 0;
}

static spool_db *open_store(const char *data, enum spool_sync sync)
{
	struct spool_options o;
	spool_db *db;
	int rc;

	spool_options_init(&o);
	o.sync = sync;
	o.manual_timers = 1;    /* nothing moves while it is copied */
	o.log_level = SPOOL_LOG_WARN;
	rc = spool_open(data, &o, &db);
	if (rc) {
		fprintf(stderr, "spool-migrate: cannot open the store %s: %s\n",
			data, strerror(-rc));
		return NULL;
	}
	return db;
}

int main(int argc, char **argv)
{
	char name[SPOOL_NAME_MAX + 1] = "", after[SPOOL_NAME_MAX + 1];
	spool_db *src, *dst = NULL;
	int dry = 0, rc = 0, a = 1;

	if (argc > 1 && strcmp(argv[1], "--dry-run") == 0) {
		dry = 1;
		a++;
	}
	if (argc - a != 2 || argv[a][0] == '-') {
		fprintf(stderr, "usage: spool-migrate [--dry-run] SOURCE "
			"DESTINATION\n(each a --data value: a RocksDB "
			"directory or redis://HOST:PORT/PREFIX)\n");
		return 2;
	}
	if (!(src = open_store(argv[a], SPOOL_SYNC_NONE)))
		return 2;
	if (!dry && !(dst = open_store(argv[a + 1], SPOOL_SYNC_ALWAYS))) {
		spool_close(src);
		return 2;
	}
	for (after[0] = '\0'; !rc && spool_queue_next(src, after, name) == 0;
	     strcpy(after, name))
		rc = copy_queue(src, dst, name, dry);
	for (after[0] = '\0'; !rc && !dry &&
	     spool_queue_next(src, after, name) == 0; strcpy(after, name))
		rc = copy_settings(src, dst, name);
	spool_close(dst);
	spool_close(src);
	return rc;
}
