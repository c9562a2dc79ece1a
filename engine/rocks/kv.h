/*
 * store.h - the engine's view of its durable store. store.c is the only
 * file that includes <rocksdb/c.h>; RocksDB's error strings never leave it
 * (each is logged and turned into a negative errno).
 *
 * Three column families:
 *   CF_META  the format version, the id reservation, queue records and
 *            per-queue counters (merged by addition);
 *   CF_IDX   one small record per message: its queue, state and times;
 *   CF_BODY  one record per message: checksum, name, attributes, body.
 * keys.c holds the layout of each key and value.
 */
#ifndef KV_H
#define KV_H

#include <stddef.h>

#include "spool.h"

enum store_cf { CF_META = 0, CF_IDX = 1, CF_BODY = 2, CF_N };

struct store;
struct store_batch;

typedef void (*store_log_fn)(void *arg, enum spool_log_level lv,
			     const char *line);

/* Opens (creating if missing) the store in dir. sync: fsync durable writes.
 * Errors: -EBUSY locked; -EACCES; -ENOTDIR; -EIO (logged). */
int store_open(const char *dir, int sync, store_log_fn log, void *log_arg,
	       struct store **out);
void store_close(struct store *st);

/* A new empty batch for st; NULL on ENOMEM. */
struct store_batch *store_batch_new(struct store *st);
void store_batch_free(struct store_batch *b);
void store_batch_put(struct store_batch *b, enum store_cf cf, const char *k,
		     size_t klen, const char *v, size_t vlen);
void store_batch_delete(struct store_batch *b, enum store_cf cf,
			const char *k, size_t klen);
void store_batch_merge(struct store_batch *b, enum store_cf cf, const char *k,
		       size_t klen, const char *v, size_t vlen);
int store_batch_count(const struct store_batch *b);

/* store_write() flags. */
#define STORE_DURABLE 1 /* fsync first when the store was opened with sync
                         * (concurrent durable writers share one fsync) */
#define STORE_GROWS 2   /* new data (a push): needs the push reserve free */

/*
 * Writes b atomically. Before it reaches RocksDB, the write must leave
 * STORE_RESERVE bytes free on the store's filesystem (STORE_GROWS writes)
 * or STORE_RESERVE_SMALL (the rest: leases, acks, settings), so that a
 * full disk refuses pushes cleanly while consumers go on. A write RocksDB
 * itself fails leaves the store refusing writes until it is reopened
 * (RocksDB cannot take another write after a failed log append; its C API
 * has no Resume), with that error, logged once.
 * Errors: -ENOSPC; -EIO; -EROFS; or the error set with store_fail_writes().
 * On error nothing is written.
 */
int store_write(struct store *st, struct store_batch *b, int flags);

/* Reads a value into a malloc'd buffer (free it with free()).
 * Errors: -ENOENT no such key; -EIO; -ENOMEM. */
int store_get(struct store *st, enum store_cf cf, const char *k, size_t klen,
	      char **v, size_t *vlen);

/* Calls fn for every key of cf with the given prefix, in key order; stops
 * when fn returns non-zero and returns that. */
typedef int (*store_scan_fn)(void *arg, const char *k, size_t klen,
			     const char *v, size_t vlen);
int store_scan(struct store *st, enum store_cf cf, const char *prefix,
	       size_t plen, store_scan_fn fn, void *arg);

/* Test seam: make every write fail with err (0 = stop). */
void store_fail_writes(struct store *st, int err);

#endif /* KV_H */
