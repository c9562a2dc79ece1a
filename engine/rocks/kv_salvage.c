/*
 * kv_salvage.c - --salvage: opens a damaged store with what can still
 * be read (DESIGN §8). First a copy of the files at fault is kept in
 * DIR/damaged-<time>/; then CURRENT is pointed at the newest whole
 * MANIFEST, or damaged log records are skipped, or RocksDB's repair
 * rebuilds the MANIFEST and the store is made to agree with a read-only
 * view kept from before it. Every step and every loss is logged at error
 * level. Nothing is deleted.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rocks.h"
#include "kv_i.h"

static void salvage_log(struct store *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void salvage_log(struct store *st, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n = snprintf(line, sizeof(line), "salvage: %s: ", st->dir);

	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (st->log)
		st->log(st->log_arg, SPOOL_LOG_ERR, line);
}

static int copy_file(const char *from, const char *to)
{
	char buf[1 << 16];
	int in = open(from, O_RDONLY | O_CLOEXEC), out, rc = 0;
	ssize_t n;

	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	while (rc == 0 && (n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 || write(out, buf, (size_t)n) != n)
			rc = -(errno ? errno : EIO);
	}
	if (rc == 0 && fsync(out) != 0)
		rc = -errno;
	close(in);
	close(out);
	return rc;
}

/*
 * Keeps a copy of the store as it was found in dir/damaged-<time>/ before
 * anything is changed: every file but LOCK, the info logs and the table
 * files that are not at fault (tables are never rewritten in place, and
 * copying them all could fill the disk). Nothing is ever deleted.
 */
static int salvage_set_aside(struct store *st, const struct names *nm,
			     const struct damage *d, char *aside, size_t len)
{
	char from[PATH_MAX], to[PATH_MAX], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	size_t copied = 0;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(aside, len, "%s/damaged-%s", st->dir, stamp);
	if (mkdir(aside, 0700) != 0 && errno != EEXIST)
		return -errno;
	for (size_t i = 0; i < nm->n; i++) {
		const char *n = nm->v[i];
		int table = store_has_suffix(n, ".sst") ||
			    store_has_suffix(n, ".blob");
		struct stat sb;
		int rc;

		store_path_join(from, sizeof(from), st->dir, n);
		if (stat(from, &sb) != 0 || !S_ISREG(sb.st_mode) ||
		    !strcmp(n, "LOCK") || !strncmp(n, "LOG", 3) ||
		    (table && strcmp(n, d->file) != 0))
			continue;
		store_path_join(to, sizeof(to), aside, n);
		rc = copy_file(from, to);
		if (rc && rc != -EEXIST)
			return rc;
		copied++;
	}
	salvage_log(st, "kept a copy of the %zu damaged and bookkeeping files "
		    "as found in %s", copied, aside);
	return 0;
}

/* Points CURRENT at the newest MANIFEST that reads whole. */
static int salvage_current(struct store *st, const struct names *nm)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	const char *best = NULL;
	int fd, rc = 0;

	for (size_t i = 0; i < nm->n; i++) {
		struct damage d;

		if (!strncmp(nm->v[i], "MANIFEST-", 9) &&
		    strspn(nm->v[i] + 9, "0123456789") == strlen(nm->v[i]) - 9
		    && store_check_manifest(st->dir, nm->v[i], &d) == 0 &&
		    (!best || strlen(nm->v[i]) > strlen(best) ||
		     (strlen(nm->v[i]) == strlen(best) &&
		      strcmp(nm->v[i], best) > 0)))
			best = nm->v[i];
	}
	if (!best)
		return -ENOENT;
	store_path_join(tmp, sizeof(tmp), st->dir, "CURRENT.salvage");
	store_path_join(path, sizeof(path), st->dir, "CURRENT");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (dprintf(fd, "%s\n", best) < 0 || fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (!rc && rename(tmp, path) != 0)
		rc = -errno;
	if (!rc)
		salvage_log(st, "CURRENT now names %s, the newest MANIFEST "
			    "that reads whole", best);
	return rc;
}

/*
 * What a read-only open still shows of a damaged store, kept open across
 * RocksDB's repair (it holds its table files open and the logs replayed in
 * memory, so the repair moving files to lost/ does not disturb it). The
 * repair drops a table with one bad block whole and keeps only the default
 * column family of the logs; afterwards the repaired store is made to
 * agree with this view wherever the view could be read: records it lacks
 * are put back, records that differ take the view's value, and (when the
 * view's MANIFEST was sound, so the view is the store as it was) records
 * the repair brought back that the view had deleted are removed. A view
 * through a damaged MANIFEST may lack whole tables: it only adds.
 */
struct rescue {
	rocksdb_t *db;
	rocksdb_column_family_handle_t *cf[CF_N];
	rocksdb_writebatch_t *wb;
	int may_remove;         /* the view is complete where readable (its
	                         * MANIFEST was sound): remove what it lacks */
	uint64_t put, removed, gaps;
};

void store_rescue_free(struct rescue *rs)
{
	if (!rs)
		return;
	for (int i = 0; i < CF_N; i++)
		rocksdb_column_family_handle_destroy(rs->cf[i]);
	rocksdb_close(rs->db);
	if (rs->wb)
		rocksdb_writebatch_destroy(rs->wb);
	free(rs);
}

/* Before a repair: the read-only view, if the store still opens so. */
static int rescue_open(struct store *st, int may_remove)
{
	struct rescue *rs = calloc(1, sizeof(*rs));
	char *err = NULL;

	if (!rs)
		return -ENOMEM;
	rocksdb_options_set_wal_recovery_mode(st->opts, 2);
	rs->db = rocksdb_open_for_read_only_column_families(
		st->opts, st->dir, CF_N, store_cf_names,
		(const rocksdb_options_t *const *)st->cfopts, rs->cf, 0, &err);
	if (err) {
		rocksdb_free(err);      /* nothing to compare with */
		free(rs);
		return 0;
	}
	rs->may_remove = may_remove;
	st->rescue = rs;
	return 0;
}

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	return c ? c : (alen > blen) - (alen < blen);
}

static int rescue_flush(struct store *st, struct rescue *rs, int force)
{
	char *err = NULL;

	if (!force && rocksdb_writebatch_count(rs->wb) < 1024)
		return 0;
	rocksdb_write(st->db, st->wnosync, rs->wb, &err);
	rocksdb_writebatch_clear(rs->wb);
	return err ? store_fail(st, SPOOL_LOG_ERR, "salvage", err) : 0;
}

/*
 * Walks the view (from) and the repaired store (to) side by side in one
 * direction (dir 1 forward, -1 backward) until the view ends, fails, or
 * reaches stop (exclusive; NULL: no stop). On the stretch walked, makes to
 * agree with from. *last gets the last key of the view walked (malloc'd).
 * Returns 1 if the view could be read to its end, 0 if it failed, or a
 * negative errno.
 */
static int rescue_walk(struct store *st, struct rescue *rs, int cf, int dir,
		       const char *stop, size_t stoplen, char **last,
		       size_t *lastlen)
{
	rocksdb_column_family_handle_t *h = st->cf[cf];
	rocksdb_iterator_t *from = rocksdb_create_iterator_cf(rs->db,
							     st->ropts,
							     rs->cf[cf]);
	rocksdb_iterator_t *to = rocksdb_create_iterator_cf(st->db, st->ropts,
							   h);
	char *err = NULL;
	int rc = 0, whole;

	if (dir > 0) {
		rocksdb_iter_seek_to_first(from);
		rocksdb_iter_seek_to_first(to);
	} else {
		rocksdb_iter_seek_to_last(from);
		rocksdb_iter_seek_to_last(to);
	}
	for (; !rc && rocksdb_iter_valid(from);
	     dir > 0 ? rocksdb_iter_next(from) : rocksdb_iter_prev(from)) {
		size_t fk, fv, tk, tv;
		const char *k = rocksdb_iter_key(from, &fk);
		const char *v = rocksdb_iter_value(from, &fv);
		int c = 1, same;

		if (stop && dir * key_cmp(k, fk, stop, stoplen) >= 0)
			break;
		while (rocksdb_iter_valid(to)) {
			const char *t = rocksdb_iter_key(to, &tk);

			c = dir * key_cmp(t, tk, k, fk);
			if (c >= 0)
				break;
			if (rs->may_remove) {
				rocksdb_writebatch_delete_cf(rs->wb, h, t, tk);
				rs->removed++;
			}
			dir > 0 ? rocksdb_iter_next(to) : rocksdb_iter_prev(to);
		}
		same = 0;
		if (c == 0) {
			const char *t = rocksdb_iter_value(to, &tv);

			same = tv == fv && memcmp(t, v, fv) == 0;
		}
		if (!same) {
			rocksdb_writebatch_put_cf(rs->wb, h, k, fk, v, fv);
			rs->put++;
		}
		if (c == 0)
			dir > 0 ? rocksdb_iter_next(to) : rocksdb_iter_prev(to);
		free(*last);
		*last = malloc(fk ? fk : 1);
		if (!*last)
			rc = -ENOMEM;
		else
			memcpy(*last, k, fk);
		*lastlen = fk;
		if (!rc)
			rc = rescue_flush(st, rs, 0);
	}
	rocksdb_iter_get_error(from, &err);
	whole = !err;
	rocksdb_free(err);
	/* The view read to its end: what the store has beyond is extra. */
	for (; !rc && whole && !stop && rs->may_remove &&
	       rocksdb_iter_valid(to);
	     dir > 0 ? rocksdb_iter_next(to) : rocksdb_iter_prev(to)) {
		size_t tk;
		const char *t = rocksdb_iter_key(to, &tk);

		rocksdb_writebatch_delete_cf(rs->wb, h, t, tk);
		rs->removed++;
		rc = rescue_flush(st, rs, 0);
	}
	rocksdb_iter_destroy(from);
	rocksdb_iter_destroy(to);
	return rc ? rc : whole;
}

/* One column family: forward up to the damage, then backward from the end
 * down to it; the records between are lost. */
static int rescue_cf(struct store *st, struct rescue *rs, int cf)
{
	char *fwd = NULL, *bwd = NULL;
	size_t fwdlen = 0, bwdlen = 0;
	int rc = rescue_walk(st, rs, cf, 1, NULL, 0, &fwd, &fwdlen);

	if (rc == 0) {
		rs->gaps++;
		rc = rescue_walk(st, rs, cf, -1, fwd, fwdlen, &bwd, &bwdlen);
		rc = rc < 0 ? rc : 0;
	}
	free(fwd);
	free(bwd);
	return rc < 0 ? rc : 0;
}

/* After the repair and the read-write open. */
int store_rescue_apply(struct store *st)
{
	struct rescue *rs = st->rescue;
	char *err = NULL;
	int rc = 0;

	rs->wb = rocksdb_writebatch_create();
	for (int cf = 0; !rc && cf < CF_N; cf++)
		rc = rescue_cf(st, rs, cf);
	if (!rc)
		rc = rescue_flush(st, rs, 1);
	if (!rc) {
		rocksdb_flush_wal(st->db, 1, &err);
		if (err)
			rc = store_fail(st, SPOOL_LOG_ERR, "salvage", err);
	}
	if (!rc)
		salvage_log(st, "compared the repaired store with what a "
			    "read-only open still showed: put back %llu "
			    "records the repair had lost or changed, removed "
			    "%llu it had brought back; %llu damaged stretches "
			    "could not be read and are lost",
			    (unsigned long long)rs->put,
			    (unsigned long long)rs->removed,
			    (unsigned long long)rs->gaps);
	return rc;
}

/* Logical records in the write-ahead logs of the directory. */
static uint64_t log_records(const struct names *nm, const char *dir)
{
	char path[PATH_MAX];
	uint64_t n = 0;

	for (size_t i = 0; i < nm->n; i++) {
		struct logscan s;

		store_path_join(path, sizeof(path), dir, nm->v[i]);
		if (store_has_suffix(nm->v[i], ".log") &&
		    logscan_file(path, &s) == 0)
			n += s.records;
	}
	return n;
}

/* RocksDB's repair: a new MANIFEST from every table and log file it can
 * read; what it cannot read it moves to dir/lost/. */
static int salvage_repair(struct store *st, const struct names *nm)
{
	rocksdb_options_t *o = rocksdb_options_create_copy(st->cfopts[CF_META]);
	uint64_t records = log_records(nm, st->dir);
	char *err = NULL;

	rocksdb_repair_db(o, st->dir, &err);
	rocksdb_options_destroy(o);
	if (err) {
		salvage_log(st, "RocksDB's repair failed: %s", err);
		return store_fail(st, SPOOL_LOG_ERR, "repair", err);
	}
	salvage_log(st, "rebuilt the MANIFEST with RocksDB's repair from the "
		    "table and log files; files it could not read are in "
		    "%s/lost/", st->dir);
	if (records)
		salvage_log(st, "the logs held %llu records; RocksDB 7.8's "
			    "repair drops those of a column family that had "
			    "no table file yet (a store not restarted since "
			    "it was made): the message counts below say what "
			    "is left", (unsigned long long)records);
	return 0;
}

static void salvage_log_damage(struct store *st, const struct damage *d)
{
	const struct logscan *s = &d->scan;

	if (d->kind == DMG_LOG)
		salvage_log(st, "%s: skipping %llu damaged bytes from byte "
			    "%llu; lost %llu log records (the damaged one and "
			    "the rest of its 32 KiB block); kept the %llu "
			    "records after them", d->file,
			    (unsigned long long)s->bad_bytes,
			    (unsigned long long)s->bad_at,
			    (unsigned long long)s->lost,
			    (unsigned long long)s->after);
	else
		salvage_log(st, "%s", d->what);
}

/*
 * Opens what can be read of a damaged store: keeps a copy aside, then
 * fixes CURRENT, or skips damaged log records (*mode gets RocksDB's
 * kSkipAnyCorruptedRecords), or runs RocksDB's repair. Logs every step at
 * error level. On success the caller opens the store read-write.
 */
int store_salvage(struct store *st, struct names *nm,
		  struct damage *d, int *mode)
{
	char aside[PATH_MAX];
	int rc;

	if (d->kind == DMG_FOREIGN)
		return store_refuse(st, st->dir, d, 1);
	salvage_log_damage(st, d);
	rc = salvage_set_aside(st, nm, d, aside, sizeof(aside));
	if (rc) {
		salvage_log(st, "cannot keep a copy in %s (%s); the store "
			    "itself was not changed", aside, strerror(-rc));
		return rc;
	}
	if (d->kind == DMG_CURRENT && salvage_current(st, nm) == 0) {
		store_names_free(nm);
		rc = store_names_read(st->dir, nm);
		if (!rc)
			rc = store_check(st, st->dir, nm, d,
					 STORE_CHECK_INDEX);
		if (rc != 1)
			return rc;
		salvage_log_damage(st, d);
	}
	if (d->kind == DMG_LOG)
		*mode = 3;      /* kSkipAnyCorruptedRecords */
	if (d->kind == DMG_LOG || d->kind == DMG_MARKER)
		return 0;
	rc = rescue_open(st, d->kind == DMG_TABLE);
	return rc ? rc : salvage_repair(st, nm);
}
