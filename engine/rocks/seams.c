/*
 * seams.c - the RocksDB store's side of the test seams of spool_test.h
 * (api.c has the rest): a full disk, and body records read and written
 * behind the engine's back. Built into the library (they cost nothing
 * unless called) so the tests exercise the very code the daemon runs.
 */
#include <errno.h>

#include "rocks.h"
#include "kv.h"

/* Not a seam: the room is the directory's filesystem, which the caller
 * statfs's itself (it knows the directory). */
int rocks_space(spool_db *db, uint64_t *total, uint64_t *used)
{
	(void)db;
	(void)total;
	(void)used;
	return -EOPNOTSUPP;
}

void rocks_test_fail_writes(spool_db *db, int err)
{
	store_fail_writes(RDB(db)->st, err);
}

int rocks_test_body_get(spool_db *db, uint64_t id, char **rec, size_t *len)
{
	return body_load(RDB(db)->st, id, rec, len);
}

int rocks_test_body_put(spool_db *db, uint64_t id, const char *rec,
			size_t len)
{
	struct store_batch *b = store_batch_new(RDB(db)->st);
	int rc = b ? 0 : -ENOMEM;

	if (b) {
		batch_put_body(b, id, rec, len);
		rc = store_write(RDB(db)->st, b, 0);
	}
	store_batch_free(b);
	return rc;
}

/* RocksDB store only: not an operation of the store table (it makes a
 * store, it has no handle). */
int spool_test_bare_store(const char *dir, int with_record)
{
	struct store *st;
	struct store_batch *b;
	int rc = store_open(dir, 0, NULL, NULL, &st);

	if (rc)
		return rc;
	b = with_record ? store_batch_new(st) : NULL;
	if (b) {
		/* an id reservation: harmless to load */
		store_batch_put(b, CF_META, KEY_RESERVATION, 1,
				"\0\0\0\0\0\0\0\1", 8);
		rc = store_write(st, b, STORE_DURABLE);
		store_batch_free(b);
	} else if (with_record) {
		rc = -ENOMEM;
	}
	store_close(st);
	return rc;
}
