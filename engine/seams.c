/*
 * seams.c - the test seams of spool_test.h: a full disk, bit rot and
 * hostile body records on demand. Built into the library (they cost
 * nothing unless called) so the tests exercise the very code the daemon
 * runs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"
#include "spool_test.h"
#include "store.h"

void spool_test_fail_writes(spool_db *db, int err)
{
	store_fail_writes(db->st, err);
}

/* Stores v as the body record under key, behind the engine's back. */
static int put_body_record(spool_db *db, const char *key, const char *v,
			   size_t len)
{
	struct store_batch *b = store_batch_new(db->st);
	int rc = b ? 0 : -ENOMEM;

	if (b) {
		store_batch_put(b, CF_BODY, key, ID_KEY_LEN, v, len);
		rc = store_write(db->st, b, 0);
	}
	store_batch_free(b);
	return rc;
}

int spool_test_corrupt(spool_db *db, uint64_t id)
{
	char key[ID_KEY_LEN], *v;
	size_t len;
	int rc;

	key_id(id, key);
	rc = store_get(db->st, CF_BODY, key, ID_KEY_LEN, &v, &len);
	if (rc)
		return rc;
	v[len - 1] ^= 0x5a;     /* the last byte: body, name or header */
	rc = put_body_record(db, key, v, len);
	free(v);
	return rc;
}

int spool_test_put_body(spool_db *db, uint64_t id, const void *rec,
			size_t len, int seal)
{
	char key[ID_KEY_LEN], *v, *copy;
	size_t vlen;
	int rc;

	key_id(id, key);
	rc = store_get(db->st, CF_BODY, key, ID_KEY_LEN, &v, &vlen);
	if (rc)
		return rc;
	free(v);
	copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, rec, len);
	if (seal)
		body_seal(copy, len);
	rc = put_body_record(db, key, copy, len);
	free(copy);
	return rc;
}

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
		store_batch_put(b, CF_META, "I", 1, "\0\0\0\0\0\0\0\1", 8);
		rc = store_write(st, b, STORE_DURABLE);
		store_batch_free(b);
	} else if (with_record) {
		rc = -ENOMEM;
	}
	store_close(st);
	return rc;
}
