/*
 * salvage.c - after a damaged store was opened with --salvage (store.c
 * said what it skipped at the file level): says, at error level, what the
 * rebuilt queues lack. Messages whose index record was lost leave their
 * bodies behind, and index records whose body was lost give EIO when read;
 * queue counters that no longer add up are named. Reads only: nothing is
 * deleted or rewritten, so a later, better salvage can still use it all.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rocks.h"
#include "kv.h"

struct ids {
	uint64_t *v;
	size_t n, cap;
	uint64_t orphans;       /* keys of the other family not in v */
	struct ids *other;      /* set while counting orphans */
};

static int in_ids(const struct ids *s, uint64_t id)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid] == id)
			return 1;
		if (s->v[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* Collects ids (keys come in id order) or counts those not in other. */
static int collect_id(void *arg, const char *k, size_t klen, const char *v,
		      size_t vlen)
{
	struct ids *s = arg;
	uint64_t id;

	(void)v, (void)vlen;
	if (klen != ID_KEY_LEN)
		return 0;
	id = key_id_decode(k);
	if (s->other) {
		s->orphans += !in_ids(s->other, id);
		return 0;
	}
	if (s->n == s->cap) {
		uint64_t *nv = realloc(s->v, (s->cap = s->cap * 2 + 1024) *
				       sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		s->v = nv;
	}
	s->v[s->n++] = id;
	return 0;
}

/* Counts the keys of cf without a twin in ids. */
static int count_orphans(struct rocks_db *db, enum store_cf cf, struct ids *ids,
			 uint64_t *out)
{
	struct ids scan = { .other = ids };
	int rc = store_scan(db->st, cf, "", 0, collect_id, &scan);

	*out = scan.orphans;
	return rc;
}

static void report_messages(struct rocks_db *db)
{
	struct ids idx = { 0 }, body = { 0 };
	uint64_t no_idx = 0, no_body = 0;
	int rc = store_scan(db->st, CF_IDX, "", 0, collect_id, &idx);

	if (!rc)
		rc = store_scan(db->st, CF_BODY, "", 0, collect_id, &body);
	if (!rc)
		rc = count_orphans(db, CF_BODY, &idx, &no_idx);
	if (!rc)
		rc = count_orphans(db, CF_IDX, &body, &no_body);
	if (rc)
		core_log(&db->pub, SPOOL_LOG_ERR, "salvage: cannot cross-check "
			 "message index and bodies: %s", strerror(-rc));
	else
		core_log(&db->pub, SPOOL_LOG_ERR, "salvage: %zu messages have "
			 "an index record; %llu bodies have none (those "
			 "messages are lost; their bodies stay in the store); "
			 "%llu index records have no body (reading those "
			 "gives EIO)", idx.n, (unsigned long long)no_idx,
			 (unsigned long long)no_body);
	free(idx.v);
	free(body.v);
}

/* A queue's totals balance: everything pushed was acked, deleted, moved
 * to the dead-letter queue, or is still held. A lost log record can break
 * that (a lost push with its ack kept, or the reverse). */
static void report_counters(struct rocks_db *db)
{
	for (size_t i = 0; i < db->nqueues; i++) {
		struct rocks_queue *q = db->queues[i];
		struct spool_stats s;
		uint64_t out, held;

		if (rocks_stats_get(&q->pub, &s))
			continue;
		out = s.acked_total + s.deleted_total + s.dead_total;
		held = s.visible + s.delayed + s.leased + s.corrupt;
		if (s.pushed_total != out + held)
			core_log(&db->pub, SPOOL_LOG_ERR, "salvage: queue %s: "
				 "counters may be off: pushed_total=%llu, "
				 "but acked, deleted and dead add up to %llu "
				 "and it holds %llu messages", q->pub.name,
				 (unsigned long long)s.pushed_total,
				 (unsigned long long)out,
				 (unsigned long long)held);
	}
}

void salvage_report(struct rocks_db *db)
{
	report_messages(db);
	report_counters(db);
	core_log(&db->pub, SPOOL_LOG_ERR, "salvage: %zu queues loaded; the "
		 "listings and stats show what is left", db->nqueues);
}
