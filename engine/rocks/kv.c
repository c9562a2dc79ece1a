/*
 * kv.c - the durable store over RocksDB: open with column families,
 * atomic batch writes, point reads, prefix scans. kv_check.c and
 * kv_salvage.c say how an existing directory is opened. Knows key bytes,
 * not what they mean (keys.c does).
 *
 * Every RocksDB error string is logged here and turned into a negative
 * errno; none leaves these files.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include <pthread.h>
#include <rocksdb/c.h>

#include "rocks.h"
#include "kv_i.h"

/*
 * Sized from the filesystem that holds the store (its size S, at open), so
 * that a store works on a filesystem of a few MB as on a large one:
 *   - each column family's write buffer, S/128 within [64 KiB, 32 MiB]:
 *     RocksDB preallocates 1.1 times that for each log file, and a flush
 *     writes about that much;
 *   - the free space a push must leave behind, S/8 within [256 KiB,
 *     4 MiB]: up to 64 MiB of filesystem it holds what flushing all three
 *     column families and starting a new log can write in the background
 *     (3 x 2.2 write buffers), plus
 *   - what any other write must leave, S/64 within [64 KiB, 256 KiB]:
 *     room for log appends, so that consumers go on acking when producers
 *     have filled the disk;
 *   - the MANIFEST's preallocation, S/64 within [64 KiB, 4 MiB].
 * On an 8 MB filesystem that is 64 KiB, 1 MiB, 128 KiB and 128 KiB instead
 * of 8 MiB, 4 MiB, 256 KiB and 4 MiB, which with the log's preallocation
 * left no room for any push. docs/reliability.md.
 *
 * Memory, for a queue daemon rather than a database server (issue 15,
 * docs/decisions.md): the column families share one write-buffer budget
 * of WBUF_SHARED of their write buffers (RocksDB's db_write_buffer_size,
 * a write buffer manager: once all memtables together pass it, the
 * largest is flushed), so that the memtables stay near 16 MiB in all
 * instead of up to 3 families x 2 memtables x 32 MiB; and a block cache
 * of BLOCK_CACHE (a queue reads its bodies back mostly from the memtables,
 * seconds after writing them, and the index once, at open, without
 * filling the cache). kv_keep.c gives memory back when the store is idle.
 */
#define WBUF_MIN (64ull << 10)
#define WBUF_MAX (8ull << 20)
#define WBUF_SHARED 2
#define BLOCK_CACHE (8u << 20)
#define RESERVE_MIN (256ull << 10)
#define RESERVE_MAX (4ull << 20)
#define SMALL_MIN (64ull << 10)
#define SMALL_MAX (256ull << 10)
#define MANIFEST_PREALLOC_MIN (64ull << 10)
#define MANIFEST_PREALLOC_MAX (4ull << 20)
#define ROOM_TTL_MS 100
#define ROOM_PLENTY (256ull << 20)

struct store_batch {
	rocksdb_writebatch_t *wb;
	struct store *st;       /* for the column family handles */
};

const char *const store_cf_names[CF_N] = { "default", "idx", "body" };

void store_log(struct store *st, enum spool_log_level lv,
	       const char *what, const char *err)
{
	char line[1024];

	snprintf(line, sizeof(line), "store: %s: %s", what, err);
	if (st->log)
		st->log(st->log_arg, lv, line);
}

/* Maps a RocksDB error string to an errno. RocksDB reports OS errors as
 * "IO error: ...: <strerror text>", so the text is all there is. */
int store_errno(const char *err)
{
	if (strstr(err, "No space left"))
		return -ENOSPC;
	if (strstr(err, "lock") && (strstr(err, "temporarily unavailable") ||
				    strstr(err, "No locks available")))
		return -EBUSY;
	if (strstr(err, "Permission denied"))
		return -EACCES;
	if (strstr(err, "Not a directory"))
		return -ENOTDIR;
	if (strstr(err, "Read-only file system"))
		return -EROFS;
	return -EIO;
}

/* Takes ownership of err: logs it, frees it, returns the errno. */
int store_fail(struct store *st, enum spool_log_level lv,
	       const char *what, char *err)
{
	int rc = store_errno(err);

	store_log(st, lv, what, err);
	rocksdb_free(err);
	return rc;
}

/* ---- merge operator: per-queue counters, element-wise u64 addition. */

static uint64_t le64(const char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | (unsigned char)p[i];
	return v;
}

/* The counters (keys.c) are little-endian u64s; adds v into acc. */
static void add_counters(char *acc, size_t acclen, const char *v, size_t vlen)
{
	for (size_t i = 0; i + 8 <= acclen && i + 8 <= vlen; i += 8) {
		uint64_t sum = le64(acc + i) + le64(v + i);

		for (int j = 0; j < 8; j++)
			acc[i + j] = (char)(sum >> (8 * j));
	}
}

static char *merge_sum(const char *base, size_t baselen,
		       const char *const *ops, const size_t *oplen, int nops,
		       unsigned char *ok, size_t *outlen)
{
	size_t len = baselen;
	char *out;
	int i;

	for (i = 0; i < nops; i++)
		if (oplen[i] > len)
			len = oplen[i];
	out = calloc(1, len ? len : 1);
	if (!out) {
		*ok = 0;
		return NULL;
	}
	if (base)
		memcpy(out, base, baselen);
	for (i = 0; i < nops; i++)
		add_counters(out, len, ops[i], oplen[i]);
	*ok = 1;
	*outlen = len;
	return out;
}

static char *merge_full(void *state, const char *key, size_t klen,
			const char *existing, size_t exlen,
			const char *const *ops, const size_t *oplen, int nops,
			unsigned char *ok, size_t *outlen)
{
	(void)state, (void)key, (void)klen;
	return merge_sum(existing, existing ? exlen : 0, ops, oplen, nops, ok,
			 outlen);
}

static char *merge_partial(void *state, const char *key, size_t klen,
			   const char *const *ops, const size_t *oplen,
			   int nops, unsigned char *ok, size_t *outlen)
{
	(void)state, (void)key, (void)klen;
	return merge_sum(NULL, 0, ops, oplen, nops, ok, outlen);
}

static void merge_delete(void *state, const char *v, size_t len)
{
	(void)state, (void)len;
	free((char *)v);
}

static void merge_destroy(void *state)
{
	(void)state;
}

static const char *merge_name(void *state)
{
	(void)state;
	return "spool.counters.add";
}

/* ---- open / close */

static void store_tune_db(struct store *st)
{
	rocksdb_options_t *o = st->opts;

	rocksdb_options_set_create_if_missing(o, 1);
	rocksdb_options_set_create_missing_column_families(o, 1);
	rocksdb_options_increase_parallelism(o, 2);
	rocksdb_options_set_max_background_jobs(o, 2);
	rocksdb_options_set_wal_recovery_mode(o, 2 /* point in time */);
	rocksdb_options_set_max_total_wal_size(o, 256ull << 20);
	rocksdb_options_set_keep_log_file_num(o, 3);
	rocksdb_options_set_enable_pipelined_write(o, 1);
	rocksdb_options_set_paranoid_checks(o, 1);
	rocksdb_options_set_info_log_level(o, 3 /* error */);
}

/* Options of one column family; BlobDB keeps larger bodies out of the LSM. */
static rocksdb_options_t *store_cf_options(struct store *st, enum store_cf cf)
{
	rocksdb_options_t *o = rocksdb_options_create_copy(st->opts);

	rocksdb_options_set_block_based_table_factory(o, st->bbopts);
	rocksdb_options_set_compression(o, rocksdb_lz4_compression);
	rocksdb_options_set_write_buffer_size(o, WBUF_MAX);
	/* Queue keys are written once and deleted once: compact files whose
	 * deletions pile up instead of waiting for size triggers. */
	rocksdb_options_add_compact_on_deletion_collector_factory(o, 32768,
								  8192);
	if (cf == CF_META)
		rocksdb_options_set_merge_operator(o, st->merge);
	if (cf == CF_BODY) {
		rocksdb_options_set_enable_blob_files(o, 1);
		rocksdb_options_set_min_blob_size(o, 4096);
		rocksdb_options_set_blob_file_size(o, 64 << 20);
		rocksdb_options_set_enable_blob_gc(o, 1);
	}
	return o;
}

static int store_init_options(struct store *st, int sync)
{
	store_tune_malloc();
	st->opts = rocksdb_options_create();
	store_tune_db(st);
	st->cache = rocksdb_cache_create_lru(BLOCK_CACHE);
	st->bbopts = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_block_cache(st->bbopts, st->cache);
	rocksdb_block_based_options_set_filter_policy(
		st->bbopts, rocksdb_filterpolicy_create_bloom_full(10));
	st->merge = rocksdb_mergeoperator_create(NULL, merge_destroy,
						 merge_full, merge_partial,
						 merge_delete, merge_name);
	for (int i = 0; i < CF_N; i++)
		st->cfopts[i] = store_cf_options(st, i);
	st->wsync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(st->wsync, sync ? 1 : 0);
	st->wnosync = rocksdb_writeoptions_create();
	st->ropts = rocksdb_readoptions_create();
	return 0;
}

static void store_free_options(struct store *st)
{
	for (int i = 0; i < CF_N; i++)
		if (st->cfopts[i])
			rocksdb_options_destroy(st->cfopts[i]);
	if (st->opts)
		rocksdb_options_destroy(st->opts);
	if (st->bbopts)
		rocksdb_block_based_options_destroy(st->bbopts);
	if (st->cache)
		rocksdb_cache_destroy(st->cache);
	if (st->wsync)
		rocksdb_writeoptions_destroy(st->wsync);
	if (st->wnosync)
		rocksdb_writeoptions_destroy(st->wnosync);
	if (st->ropts)
		rocksdb_readoptions_destroy(st->ropts);
}

/* One clear line for the operator when RocksDB or the lock refuses. */
static int store_open_say(struct store *st, const char *dir, int rc)
{
	char what[4200];

	switch (rc) {
	case -EBUSY:
		snprintf(what, sizeof(what), "%s: store is locked by another "
			 "process (another daemon has it open)", dir);
		break;
	case -EACCES:
		snprintf(what, sizeof(what), "%s: no permission to open the "
			 "store", dir);
		break;
	default:
		snprintf(what, sizeof(what), "%s: store cannot be opened: it "
			 "is corrupt or not a spoolfs store (%s)", dir,
			 strerror(-rc));
	}
	if (st->log)
		st->log(st->log_arg, SPOOL_LOG_ERR, what);
	return rc;
}

/* Takes ownership of err; RocksDB's own words go to the debug log. */
static int store_open_error(struct store *st, const char *dir, char *err)
{
	int rc = store_errno(err);

	store_log(st, SPOOL_LOG_DEBUG, dir, err);
	rocksdb_free(err);
	return store_open_say(st, dir, rc);
}

/*
 * Decides how to open dir: a new store (missing or empty directory), an
 * existing one that checks out, or (with salvage) a damaged one. *mode is
 * the WAL recovery mode to open with. Changes nothing in a directory it
 * refuses.
 */
static int store_prepare(struct store *st, int flags, int *mode)
{
	struct names nm = { 0 };
	struct damage d;
	int is_new, rc;

	*mode = 2;      /* kPointInTimeRecovery: drops a torn tail */
	rc = store_check_dir(st, st->dir, &is_new, &nm);
	if (rc || is_new) {
		st->created = is_new;
		goto out;
	}
	/* A sound store stays open read-only: the engine loads from that
	 * handle, and store_writable() reopens it read-write only then, so
	 * a message index that cannot be read is refused with nothing
	 * changed, without reading it twice. A salvage reads it here. */
	rc = store_check(st, st->dir, &nm, &d, flags & STORE_OPEN_SALVAGE ?
			 STORE_CHECK_INDEX : STORE_CHECK_KEEP);
	if (rc < 0)
		rc = store_open_say(st, st->dir, rc);
	else if (rc && !(flags & STORE_OPEN_SALVAGE)) {
		rc = store_refuse(st, st->dir, &d, 0);
	} else if (rc) {
		rc = store_salvage(st, &nm, &d, mode);
		st->salvaged = rc == 0;
	}
out:
	store_names_free(&nm);
	return rc;
}

/* The read-write open; st->db is NULL on error. */
static int store_open_rw(struct store *st, int mode)
{
	char *err = NULL;

	rocksdb_options_set_create_if_missing(st->opts, st->created);
	rocksdb_options_set_wal_recovery_mode(st->opts, mode);
	st->db = rocksdb_open_column_families(
		st->opts, st->dir, CF_N, store_cf_names,
		(const rocksdb_options_t *const *)st->cfopts, st->cf, &err);
	if (err) {
		st->db = NULL;
		return store_open_error(st, st->dir, err);
	}
	return 0;
}

static void store_close_db(struct store *st)
{
	if (!st->db)
		return;
	for (int i = 0; i < CF_N; i++)
		rocksdb_column_family_handle_destroy(st->cf[i]);
	rocksdb_close(st->db);
	st->db = NULL;
}

int store_writable(struct store *st)
{
	uint64_t seq;
	int rc;

	if (!st->readonly)
		return 0;
	seq = rocksdb_get_latest_sequence_number(st->db);
	store_close_db(st);
	st->readonly = 0;
	rc = store_open_rw(st, 2);
	if (rc)
		return rc;
	/* Nothing may have written between the two opens (the lock is
	 * RocksDB's, taken by the read-write open): what was loaded from
	 * the read-only handle must be the store. */
	if (rocksdb_get_latest_sequence_number(st->db) != seq) {
		store_log(st, SPOOL_LOG_ERR, st->dir, "the store changed while "
			  "it was being opened (another daemon?); start again");
		return -EBUSY;
	}
	return 0;
}

static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Sizes the reserves and RocksDB's buffers from the store's filesystem
 * (see RESERVE_MIN). */
static void store_size_to_fs(struct store *st)
{
	struct statvfs sv;
	uint64_t size = UINT64_MAX, wbuf;

	if (statvfs(st->dir, &sv) == 0)
		size = (uint64_t)sv.f_blocks * sv.f_frsize;
	st->reserve = clamp_u64(size / 8, RESERVE_MIN, RESERVE_MAX);
	st->reserve_small = clamp_u64(size / 64, SMALL_MIN, SMALL_MAX);
	wbuf = clamp_u64(size / 128, WBUF_MIN, WBUF_MAX);
	for (int i = 0; i < CF_N; i++)
		rocksdb_options_set_write_buffer_size(st->cfopts[i], wbuf);
	rocksdb_options_set_db_write_buffer_size(st->opts, WBUF_SHARED * wbuf);
	rocksdb_options_set_manifest_preallocation_size(
		st->opts, clamp_u64(size / 64, MANIFEST_PREALLOC_MIN,
				    MANIFEST_PREALLOC_MAX));
}

int store_open(const char *dir, int flags, store_log_fn log, void *log_arg,
	       struct store **out)
{
	struct store *st = calloc(1, sizeof(*st));
	int rc, mode;

	if (!st)
		return -ENOMEM;
	st->log = log;
	st->log_arg = log_arg;
	st->dir = strdup(dir);
	pthread_mutex_init(&st->room_lock, NULL);
	if (!st->dir) {
		rc = -ENOMEM;
		goto out_free;
	}
	store_init_options(st, flags & STORE_OPEN_SYNC);
	rc = store_prepare(st, flags, &mode);
	if (rc)
		goto out_options;
	store_size_to_fs(st);
	if (!st->readonly) {
		rc = store_open_rw(st, mode);
		if (rc)
			goto out_options;
	}
	keeper_start(st);
	if (st->rescue) {
		rc = store_rescue_apply(st);
		store_rescue_free(st->rescue);
		st->rescue = NULL;
		if (rc) {
			store_close(st);
			return rc;
		}
	}
	*out = st;
	return 0;

out_options:
	store_rescue_free(st->rescue);
	store_free_options(st);
out_free:
	pthread_mutex_destroy(&st->room_lock);
	free(st->dir);
	free(st);
	return rc;
}

int store_sync(struct store *st)
{
	char *err = NULL;

	rocksdb_flush_wal(st->db, 1, &err);
	return err ? store_fail(st, SPOOL_LOG_ERR, "sync", err) : 0;
}

int store_created(const struct store *st)
{
	return st->created;
}

int store_salvaged(const struct store *st)
{
	return st->salvaged;
}

void store_flush_tables(struct store *st, enum spool_log_level lv,
			const char *what)
{
	rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
	char *err = NULL;

	rocksdb_flushoptions_set_wait(fo, 1);
	for (int i = 0; i < CF_N && !err; i++)
		rocksdb_flush_cf(st->db, fo, st->cf[i], &err);
	rocksdb_flushoptions_destroy(fo);
	if (err) {
		store_log(st, lv, what, err);
		rocksdb_free(err);
	}
}

void store_close(struct store *st)
{
	char *err = NULL;

	if (!st)
		return;
	keeper_stop(st);
	/* After a failed log append RocksDB cannot touch that log again.
	 * At a clean close, the write buffers go into table files, so that
	 * the next open has no log to replay (twice: once read-only for the
	 * checks and the load, once read-write). If that fails (a full
	 * disk), the log still holds everything and the next open replays
	 * it: not an error. */
	if (st->db && !st->readonly && !atomic_load(&st->broken)) {
		rocksdb_flush_wal(st->db, 1, &err);
		if (err)
			store_fail(st, SPOOL_LOG_ERR, "flush at close", err);
		else
			store_flush_tables(st, SPOOL_LOG_INFO, "flush at close "
					   "(the log keeps everything; the "
					   "next start replays it)");
	}
	store_close_db(st);
	store_rescue_free(st->rescue);
	store_free_options(st);
	pthread_mutex_destroy(&st->room_lock);
	free(st->dir);
	free(st);
}

/* ---- batches */

struct store_batch *store_batch_new(struct store *st)
{
	struct store_batch *b = malloc(sizeof(*b));

	if (!b)
		return NULL;
	b->st = st;
	b->wb = rocksdb_writebatch_create();
	return b;
}

void store_batch_free(struct store_batch *b)
{
	if (!b)
		return;
	rocksdb_writebatch_destroy(b->wb);
	free(b);
}

void store_batch_put(struct store_batch *b, enum store_cf cf, const char *k,
		     size_t klen, const char *v, size_t vlen)
{
	rocksdb_writebatch_put_cf(b->wb, b->st->cf[cf], k, klen, v,
				  vlen);
}

void store_batch_delete(struct store_batch *b, enum store_cf cf,
			const char *k, size_t klen)
{
	rocksdb_writebatch_delete_cf(b->wb, b->st->cf[cf], k, klen);
}

void store_batch_merge(struct store_batch *b, enum store_cf cf, const char *k,
		       size_t klen, const char *v, size_t vlen)
{
	rocksdb_writebatch_merge_cf(b->wb, b->st->cf[cf], k, klen, v,
				    vlen);
}

int store_batch_count(const struct store_batch *b)
{
	return rocksdb_writebatch_count(b->wb);
}

int64_t store_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Is there room for bytes more, leaving reserve free? The filesystem is
 * asked at most every ROOM_TTL_MS while space is plentiful, at every
 * write when it is not. */
static int store_room(struct store *st, size_t bytes, uint64_t reserve)
{
	int64_t now = store_mono_ms();
	int rc = 0;

	pthread_mutex_lock(&st->room_lock);
	if (st->room < ROOM_PLENTY || now - st->room_checked_ms > ROOM_TTL_MS) {
		struct statvfs sv;

		if (statvfs(st->dir, &sv) == 0) {
			st->room = (uint64_t)sv.f_bavail * sv.f_frsize;
			st->room_checked_ms = now;
		}
	}
	if (st->room < bytes + reserve)
		rc = -ENOSPC;
	else
		st->room -= bytes;
	pthread_mutex_unlock(&st->room_lock);
	return rc;
}

int store_write(struct store *st, struct store_batch *b, int flags)
{
	int durable = flags & STORE_DURABLE;
	char *err = NULL;
	size_t size;
	int rc = atomic_load(&st->fail);

	if (!rc)
		rc = atomic_load(&st->broken);
	if (!rc)
		rc = store_writable(st);
	if (rc)
		return rc;
	rocksdb_writebatch_data(b->wb, &size);
	rc = store_room(st, size, flags & STORE_GROWS ? st->reserve :
			st->reserve_small);
	if (rc)
		return rc;
	rocksdb_write(st->db, durable ? st->wsync : st->wnosync, b->wb, &err);
	if (!err) {
		keeper_wrote(st);
		return 0;
	}
	rc = store_fail(st, SPOOL_LOG_ERR, "write", err);
	if (atomic_exchange(&st->broken, rc) == 0)
		store_log(st, SPOOL_LOG_ERR, "store", "refusing writes from "
			  "now on; restart the daemon once the cause is fixed");
	return rc;
}

int store_get(struct store *st, enum store_cf cf, const char *k, size_t klen,
	      char **v, size_t *vlen)
{
	char *err = NULL;
	char *val;
	size_t len = 0;

	val = rocksdb_get_cf(st->db, st->ropts, st->cf[cf], k, klen, &len,
			     &err);
	if (err)
		return store_fail(st, SPOOL_LOG_ERR, "read", err);
	if (!val)
		return -ENOENT;
	*v = malloc(len ? len : 1);
	if (!*v) {
		rocksdb_free(val);
		return -ENOMEM;
	}
	memcpy(*v, val, len);
	rocksdb_free(val);
	*vlen = len;
	return 0;
}

int store_scan(struct store *st, enum store_cf cf, const char *prefix,
	       size_t plen, store_scan_fn fn, void *arg)
{
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_iterator_t *it;
	char *err = NULL;
	int rc = 0;

	rocksdb_readoptions_set_fill_cache(ro, 0);
	/* One sequential pass at open: read ahead in large steps (10M index
	 * records scan in 1.6-1.7 s instead of 1.9-2.0 s with 2 MiB). */
	rocksdb_readoptions_set_readahead_size(ro, 16 << 20);
	it = rocksdb_create_iterator_cf(st->db, ro, st->cf[cf]);
	for (rocksdb_iter_seek(it, prefix, plen); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v = rocksdb_iter_value(it, &vlen);

		if (klen < plen || memcmp(k, prefix, plen) != 0)
			break;
		rc = fn(arg, k, klen, v, vlen);
		if (rc)
			break;
	}
	rocksdb_iter_get_error(it, &err);
	if (err && !rc && st->readonly) {
		/* at open, before anything was written */
		store_log(st, SPOOL_LOG_DEBUG, "scan", err);
		rc = store_refuse_unreadable(st, err);
		rocksdb_free(err);
	} else if (err && !rc) {
		rc = store_fail(st, SPOOL_LOG_ERR, "scan", err);
	} else if (err) {
		rocksdb_free(err);
	}
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	return rc;
}

void store_fail_writes(struct store *st, int err)
{
	atomic_store(&st->fail, err);
}
