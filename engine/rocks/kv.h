/*
 * kv.h - the RocksDB store's view of RocksDB. kv.c (with kv_check.c and
 * kv_salvage.c, behind kv_i.h) are the only files that call RocksDB;
 * RocksDB's error strings never leave them (each is logged and turned into
 * a negative errno).
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

/* store_open() flags. */
#define STORE_OPEN_SYNC 1       /* fsync durable writes */
#define STORE_OPEN_SALVAGE 2    /* open a damaged store with what is left */

/*
 * Opens the store in dir. A new store is created only in a missing or
 * empty directory. An existing one is first checked without writing a
 * byte (CURRENT, the MANIFEST and the write-ahead logs record by record,
 * then a read-only open and the format record KEY_VERSION); what a crash
 * leaves (a torn end of the log) passes, other damage refuses the store
 * with one error line naming the file, and nothing in dir is changed. With
 * STORE_OPEN_SALVAGE a damaged store is opened with what can be read: a
 * copy of the damaged files is kept in dir/damaged-<time>/ and each loss is
 * logged at error level.
 * Errors: -EBUSY locked; -EACCES; -ENOTDIR; -EIO damaged or not a spoolfs
 * store (logged).
 */
int store_open(const char *dir, int flags, store_log_fn log, void *log_arg,
	       struct store **out);
void store_close(struct store *st);
/*
 * An existing store that checked out is first open read-only (the engine
 * loads from it, so a table that cannot be read is refused before a byte
 * is written); this reopens it read-write. store_write() calls it; the
 * engine calls it once loaded, before any other thread uses st. Errors:
 * those of store_open(); -EBUSY if the store changed in between.
 */
int store_writable(struct store *st);
/* Makes every write so far durable (fsyncs the log), whatever the sync
 * mode. Errors: -EIO, -ENOSPC. */
int store_sync(struct store *st);
/* 1 if store_open() made a new store; 1 if it salvaged a damaged one. */
int store_created(const struct store *st);
int store_salvaged(const struct store *st);

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
 * Writes b atomically. Before it reaches RocksDB, the write must leave a
 * reserve free on the store's filesystem (sized from it in kv.c: S/8
 * within [256 KiB, 4 MiB] for STORE_GROWS writes, S/64 within [64 KiB,
 * 256 KiB] for the rest: leases, acks, settings), so that a
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
