/*
 * db.c - the RocksDB store's handle: which --data values are its, open
 * (the store, the rebuild, the first tick, the timer thread), close, and
 * its table of operations (store.h), each in the file of its kind
 * (queue.c, push.c, msg.c, timer.c, seams.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rocks.h"
#include "kv.h"

static void db_free(struct rocks_db *db)
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
	timer_thread_destroy(&db->timer);
	free(db);
}

static void db_init_locks(struct rocks_db *db)
{
	pthread_rwlock_init(&db->qlock, NULL);
	pthread_mutex_init(&db->cfglock, NULL);
	pthread_mutex_init(&db->idlock, NULL);
	timer_thread_init(&db->timer, &db->pub, rocks_tick);
}

static void store_log_cb(void *arg, enum spool_log_level lv, const char *line)
{
	core_log(arg, lv, "%s", line);
}

/* Everything but "scheme://...": a directory. */
int rocks_claims(const char *data)
{
	const char *c = strstr(data, "://");

	if (!c || c == data)
		return 1;
	for (const char *p = data; p < c; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '+' || *p == '-' || *p == '.'))
			return 1;
	return 0;
}

int rocks_open(const char *dir, const struct spool_options *o,
	       spool_db **out)
{
	struct rocks_db *db = calloc(1, sizeof(*db));
	int rc;

	if (!db)
		return -ENOMEM;
	db->pub.opt = *o;
	db->pub.ops = &rocks_store;     /* wakes during the first tick may
					 * call back into the engine */
	db_init_locks(db);
	if (arena_init(&db->arena)) {
		rc = -ENOMEM;
		goto out_free;
	}
	rc = store_open(dir, (db->pub.opt.sync == SPOOL_SYNC_ALWAYS ?
			      STORE_OPEN_SYNC : 0) |
			(db->pub.opt.salvage ? STORE_OPEN_SALVAGE : 0),
			store_log_cb, &db->pub, &db->st);
	if (rc)
		goto out_free;
	rc = db_load(db);
	if (!rc)
		rc = store_writable(db->st);
	if (rc)
		goto out_free;
	if (store_salvaged(db->st))
		salvage_report(db);
	rocks_tick(&db->pub);
	if (!db->pub.opt.manual_timers) {
		rc = timer_thread_start(&db->timer);
		if (rc)
			goto out_free;
	}
	*out = &db->pub;
	return 0;

out_free:
	db_free(db);
	return rc;
}

void rocks_close(spool_db *pdb)
{
	struct rocks_db *db = RDB(pdb);

	timer_thread_stop(&db->timer);
	db_free(db);
}

/* ---------------------------------------------------------- the table */

const struct store_ops rocks_store = {
	.kind = "rocksdb",
	STORE_OPS(STORE_OP_ENTRY, rocks)
};
