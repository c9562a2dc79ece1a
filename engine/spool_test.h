/*
 * spool_test.h - test seams into the engine. Not part of the public
 * interface: only tests (and the test build of tools) include this.
 */
#ifndef SPOOL_TEST_H
#define SPOOL_TEST_H

#include "spool.h"

/*
 * From now on every store write fails with err (a negative errno such as
 * -ENOSPC) before anything reaches the store, as a full disk would; 0 makes
 * writes work again. Reads are not affected.
 */
void spool_test_fail_writes(spool_db *db, int err);

/*
 * Flips one byte of the stored body record of message id behind the
 * engine's back, as bit rot would. The next read of it must fail with -EIO.
 * Errors: -ENOENT no such record; -EIO.
 */
int spool_test_corrupt(spool_db *db, uint64_t id);

/*
 * Stores rec (len bytes, any content) as the body record of message id
 * behind the engine's back. With seal, it first gets the magic and the
 * checksum of a body record (body_seal), so that the lengths and the
 * attributes inside it are what a reader meets. The message must exist.
 * Errors: -ENOENT no such record; -ENOMEM; -EIO.
 */
int spool_test_put_body(spool_db *db, uint64_t id, const void *rec,
			size_t len, int seal);

/*
 * Makes a RocksDB store in dir (missing or empty) with spoolfs's column
 * families but without the format record spool_open writes at once: what
 * a creation cut short leaves. With a record, it also holds one (an id
 * reservation), so it is not empty. Errors: those of opening a store.
 */
int spool_test_bare_store(const char *dir, int with_record);

#endif /* SPOOL_TEST_H */
