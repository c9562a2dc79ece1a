/*
 * kv_i.h - private to the RocksDB store: kv.c (options, open, the
 * runtime calls), kv_check.c (is a directory a store that may be opened
 * as it is?) and kv_salvage.c (--salvage).
 */
#ifndef KV_I_H
#define KV_I_H

#include <stdatomic.h>
#include <stdint.h>

#include <pthread.h>
#include <rocksdb/c.h>

#include "logscan.h"
#include "kv.h"

/* The thread that gives memory back once the store falls idle
 * (kv_keep.c). */
struct keeper {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;             /* on CLOCK_MONOTONIC */
	int running;                     /* set before the store is used */
	int stop;                        /* protected by lock */
	atomic_int dirty;                /* written since the last keep */
	_Atomic int64_t last_write_ms;   /* store_mono_ms() */
};

struct store {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_options_t *cfopts[CF_N];
	rocksdb_column_family_handle_t *cf[CF_N];
	rocksdb_block_based_table_options_t *bbopts;
	rocksdb_cache_t *cache;
	rocksdb_mergeoperator_t *merge;  /* owned by cfopts[CF_META] */
	rocksdb_writeoptions_t *wsync;   /* durable writes */
	rocksdb_writeoptions_t *wnosync; /* everything else */
	rocksdb_readoptions_t *ropts;
	store_log_fn log;
	void *log_arg;
	atomic_int fail;                 /* test seam: forced write error */
	atomic_int broken;               /* a write failed: refuse writes */
	char *dir;
	int created;                     /* this open made a new store */
	int readonly;                    /* db is the read-only handle the
	                                  * check kept (store_writable()) */
	int salvaged;                    /* opened with --salvage */
	struct rescue *rescue;           /* salvage: the view kept across a
	                                  * repair (kv_salvage.c) */
	uint64_t reserve;                /* a push leaves this much free */
	uint64_t reserve_small;          /* any other write leaves this */
	pthread_mutex_t room_lock;
	int64_t room_checked_ms;         /* protected by room_lock */
	uint64_t room;                   /* free bytes then, less writes
	                                  * since */
	struct keeper keeper;            /* kv_keep.c */
};

extern const char *const store_cf_names[CF_N];

/* store.c: logging and RocksDB's error strings. */
void store_log(struct store *st, enum spool_log_level lv, const char *what,
	       const char *err);
int store_errno(const char *err);
/* Takes ownership of err: logs it, frees it, returns the errno. */
int store_fail(struct store *st, enum spool_log_level lv, const char *what,
	       char *err);

/* kv.c: milliseconds on CLOCK_MONOTONIC. */
int64_t store_mono_ms(void);
/* kv.c: writes every memtable into table files, waiting; a failure (a
 * full disk: the log keeps everything) is logged at lv with what. */
void store_flush_tables(struct store *st, enum spool_log_level lv,
			const char *what);

/* ---- kv_keep.c: memory (issue 15) */

/* Sets the C library's heap up for a store, once per process. */
void store_tune_malloc(void);
/* Starts and stops st's keeper (none if the thread cannot be made: the
 * store then keeps its memory, as before). keeper_stop() before anything
 * it uses is closed. */
void keeper_start(struct store *st);
void keeper_stop(struct store *st);
/* After every write to the store. */
void keeper_wrote(struct store *st);

/* ---- kv_check.c */

/*
 * Why an existing directory cannot be opened as it is. Each kind is one
 * line for the operator, naming the file at fault. --salvage acts on every
 * kind but DMG_FOREIGN: a directory that is not a spoolfs store is never
 * written to.
 */
enum damage_kind { DMG_NONE, DMG_FOREIGN, DMG_CURRENT, DMG_MANIFEST,
		   DMG_LOG, DMG_TABLE, DMG_MARKER, DMG_OTHER };

struct damage {
	enum damage_kind kind;
	char file[256];         /* the file at fault, or "" */
	char what[1024];        /* what is wrong, for the operator */
	struct logscan scan;    /* DMG_LOG: the scan of file */
};

/* The names in a directory, sorted; free with store_names_free(). */
struct names {
	char **v;
	size_t n;
};

int store_names_read(const char *dir, struct names *nm);
void store_names_free(struct names *nm);
int store_has_suffix(const char *s, const char *suffix);
void store_path_join(char *out, size_t len, const char *dir,
		     const char *name);

/* Makes sure dir is a directory (a missing one is made) and lists it into
 * *nm; *is_new: it was missing or empty. Errors are logged. */
int store_check_dir(struct store *st, const char *dir, int *is_new,
		    struct names *nm);
/* 0 if the MANIFEST file reads whole, record by record; else -1, *d set. */
int store_check_manifest(const char *dir, const char *manifest,
			 struct damage *d);
/* store_check() how. */
#define STORE_CHECK_INDEX 1     /* also read the message index through */
#define STORE_CHECK_KEEP 2      /* keep a sound store open read-only in st */

/*
 * Checks an existing store without changing a byte of it. Returns 0 if it
 * can be opened as it is; 1 with *d saying what is wrong; -EBUSY if
 * another process has it open; -EACCES.
 */
int store_check(struct store *st, const char *dir, const struct names *nm,
		struct damage *d, int how);
/* Logs the refusal of a store whose read-only handle failed a read (err,
 * RocksDB's words); -EIO. */
int store_refuse_unreadable(struct store *st, const char *err);
/* Logs the one line an operator sees when the store is refused; -EIO. */
int store_refuse(struct store *st, const char *dir, const struct damage *d,
		 int salvage);

/* ---- kv_salvage.c */

/*
 * Opens what can be read of a damaged store: keeps a copy aside, then
 * fixes CURRENT, or skips damaged log records (*mode gets RocksDB's
 * kSkipAnyCorruptedRecords), or runs RocksDB's repair (keeping a read-only
 * view open for store_rescue_apply()). Logs every step at error level. On
 * success the caller opens the store read-write. Never touches a directory
 * that is not a spoolfs store.
 */
int store_salvage(struct store *st, struct names *nm, struct damage *d,
		  int *mode);
/* After the read-write open of a repaired store: makes it agree with the
 * view kept before the repair. Errors: -EIO, -ENOSPC. */
int store_rescue_apply(struct store *st);
void store_rescue_free(struct rescue *rs);

#endif /* KV_I_H */
