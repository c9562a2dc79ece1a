/*
 * kv_check.c - is a directory a store that may be opened as it is? A
 * new store goes only into a missing or empty directory; an existing one is
 * checked without writing a byte: CURRENT names a MANIFEST that exists, the
 * MANIFEST and the write-ahead logs read record by record (logscan.c), a
 * read-only open, the queue table read through, the format record; the
 * read-only handle is then kept for the engine's load (kv.c). What a
 * crash leaves (a torn end of the log) passes; anything else is named,
 * file and damage, in one line (DESIGN §8).
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

static void damage_set(struct damage *d, enum damage_kind kind,
		       const char *file, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void damage_set(struct damage *d, enum damage_kind kind,
		       const char *file, const char *fmt, ...)
{
	va_list ap;

	d->kind = kind;
	snprintf(d->file, sizeof(d->file), "%s", file ? file : "");
	va_start(ap, fmt);
	vsnprintf(d->what, sizeof(d->what), fmt, ap);
	va_end(ap);
}

void store_names_free(struct names *nm)
{
	while (nm->n)
		free(nm->v[--nm->n]);
	free(nm->v);
	nm->v = NULL;
}

/* Names that start with a number (RocksDB's numbered files) come first,
 * in the number's order (its digits are at least 6 but may be more), then
 * the rest as strcmp orders them. */
static int cmp_name(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	size_t dx = strspn(x, "0123456789"), dy = strspn(y, "0123456789");

	if ((dx == 0) != (dy == 0))
		return dx ? -1 : 1;
	if (dx != dy)
		return dx < dy ? -1 : 1;
	return strcmp(x, y);
}

/* Lists dir, leaving out ".", ".." and "lost+found" (the root of a fresh
 * filesystem has one: it does not make the directory hold a store). */
int store_names_read(const char *dir, struct names *nm)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t cap = 0;

	nm->v = NULL;
	nm->n = 0;
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    !strcmp(e->d_name, "lost+found"))
			continue;
		if (nm->n == cap) {
			char **v = realloc(nm->v, (cap = cap * 2 + 16) *
					   sizeof(*v));

			if (!v)
				goto out_nomem;
			nm->v = v;
		}
		nm->v[nm->n] = strdup(e->d_name);
		if (!nm->v[nm->n])
			goto out_nomem;
		nm->n++;
	}
	closedir(d);
	if (nm->n)
		qsort(nm->v, nm->n, sizeof(*nm->v), cmp_name);
	return 0;
out_nomem:
	closedir(d);
	store_names_free(nm);
	return -ENOMEM;
}

int store_has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A name RocksDB (or a salvage) gives files in a store directory. */
static int store_file_name(const char *n)
{
	static const char *const prefix[] = { "CURRENT", "IDENTITY", "LOCK",
		"LOG", "MANIFEST-", "OPTIONS-", "damaged-", "lost" };
	static const char *const suffix[] = { ".log", ".sst", ".ldb",
		".blob", ".dbtmp" };

	for (size_t i = 0; i < sizeof(prefix) / sizeof(*prefix); i++)
		if (!strncmp(n, prefix[i], strlen(prefix[i])))
			return 1;
	for (size_t i = 0; i < sizeof(suffix) / sizeof(*suffix); i++)
		if (store_has_suffix(n, suffix[i]))
			return 1;
	return 0;
}

static int names_has(const struct names *nm, const char *name)
{
	return nm->n &&
	       bsearch(&name, nm->v, nm->n, sizeof(*nm->v), cmp_name) != NULL;
}

/* Logs why dir cannot hold the store, in one line; returns rc. */
static int store_dir_error(struct store *st, const char *dir, int rc)
{
	char line[PATH_MAX + 128];

	if (rc == -EACCES || rc == -EPERM)
		snprintf(line, sizeof(line), "%s: no permission to open the "
			 "store (%s)", dir, strerror(-rc));
	else
		snprintf(line, sizeof(line), "%s: cannot hold the store: %s",
			 dir, rc == -ENOTDIR ? "not a directory" :
			 strerror(-rc));
	if (st->log)
		st->log(st->log_arg, SPOOL_LOG_ERR, line);
	return rc;
}

/* Makes sure dir is a directory; a missing one is made. *is_new: it was
 * missing or empty, so a new store goes there. */
int store_check_dir(struct store *st, const char *dir, int *is_new,
		    struct names *nm)
{
	struct stat sb;
	int rc;

	*is_new = 0;
	if (stat(dir, &sb) != 0) {
		if (errno == ENOENT && mkdir(dir, 0700) == 0) {
			*is_new = 1;
			rc = store_names_read(dir, nm);
			return rc ? store_dir_error(st, dir, rc) : 0;
		}
		return store_dir_error(st, dir, -errno);
	}
	if (!S_ISDIR(sb.st_mode))
		return store_dir_error(st, dir, -ENOTDIR);
	rc = store_names_read(dir, nm);
	if (rc)
		return store_dir_error(st, dir, rc);
	*is_new = nm->n == 0;
	return 0;
}

void store_path_join(char *out, size_t len, const char *dir,
		     const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

/* Is the store's LOCK held by another process? Asked with F_GETLK, which
 * changes nothing (RocksDB locks LOCK with fcntl). */
static int store_locked(const char *dir)
{
	char path[PATH_MAX];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd, locked = 0;

	store_path_join(path, sizeof(path), dir, "LOCK");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
		locked = 1;
	close(fd);
	return locked;
}

/* CURRENT names the live MANIFEST: "MANIFEST-<number>\n". */
static int check_current(const char *dir, const struct names *nm,
			 char *manifest, size_t mlen, struct damage *d)
{
	char path[PATH_MAX], buf[64];
	size_t n = 0;
	FILE *f;

	if (!names_has(nm, "CURRENT")) {
		damage_set(d, DMG_CURRENT, "CURRENT", "CURRENT is missing");
		return -1;
	}
	store_path_join(path, sizeof(path), dir, "CURRENT");
	f = fopen(path, "re");
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	if (n < 11 || strncmp(buf, "MANIFEST-", 9) != 0 ||
	    buf[n - 1] != '\n' || strspn(buf + 9, "0123456789") != n - 10) {
		damage_set(d, DMG_CURRENT, "CURRENT", "CURRENT is damaged "
			   "(it does not name a MANIFEST file)");
		return -1;
	}
	buf[n - 1] = '\0';
	snprintf(manifest, mlen, "%s", buf);
	if (!names_has(nm, manifest)) {
		damage_set(d, DMG_CURRENT, "CURRENT", "CURRENT names %s, "
			   "which is missing", manifest);
		return -1;
	}
	return 0;
}

/* The MANIFEST is synced record by record: any damage in it is damage. */
int store_check_manifest(const char *dir, const char *manifest,
			 struct damage *d)
{
	char path[PATH_MAX];
	struct logscan s;
	int rc;

	store_path_join(path, sizeof(path), dir, manifest);
	rc = logscan_file(path, &s);
	if (rc) {
		damage_set(d, DMG_MANIFEST, manifest, "%s cannot be read (%s)",
			   manifest, strerror(-rc));
		return -1;
	}
	if (s.records == 0 || !logscan_clean(&s)) {
		damage_set(d, DMG_MANIFEST, manifest, "%s is damaged or "
			   "truncated (%llu of its %llu bytes unreadable, from "
			   "byte %llu)", manifest,
			   (unsigned long long)(s.records ? s.bad_bytes :
						s.size),
			   (unsigned long long)s.size,
			   (unsigned long long)s.bad_at);
		return -1;
	}
	return 0;
}

/*
 * The write-ahead logs, oldest first (nm is in number order), read as one
 * log: damage followed by any whole record (in the same file or a later
 * one) is damage in the middle; damage with nothing after it is what a
 * crash leaves (a torn or never-synced tail), which recovery drops without
 * a word.
 */
static int check_logs(const char *dir, const struct names *nm,
		      struct damage *d)
{
	struct damage first = { .kind = DMG_NONE };
	char path[PATH_MAX];

	for (size_t i = 0; i < nm->n; i++) {
		struct logscan s;

		if (!store_has_suffix(nm->v[i], ".log") ||
		    strspn(nm->v[i], "0123456789") != strlen(nm->v[i]) - 4)
			continue;
		store_path_join(path, sizeof(path), dir, nm->v[i]);
		if (logscan_file(path, &s) != 0)
			continue;
		if (first.kind != DMG_NONE && s.records) {
			first.scan.after += s.records;
			*d = first;
		}
		if (first.kind == DMG_NONE && !logscan_clean(&s)) {
			first.kind = DMG_LOG;
			first.scan = s;
			snprintf(first.file, sizeof(first.file), "%s",
				 nm->v[i]);
		}
	}
	if (d->kind == DMG_NONE && first.kind == DMG_LOG && first.scan.after)
		*d = first;
	if (d->kind != DMG_LOG)
		return 0;
	snprintf(d->what, sizeof(d->what), "the log %s is damaged in the "
		 "middle (at byte %llu of %llu): %llu records after the damage "
		 "would be lost", d->file,
		 (unsigned long long)d->scan.bad_at,
		 (unsigned long long)d->scan.size,
		 (unsigned long long)d->scan.after);
	return -1;
}

/* The magic number ending every block-based table file
 * (table/block_based/block_based_table_builder.cc), and the highest table
 * format version RocksDB 7.8 writes. */
#define TABLE_MAGIC 0x88e241b785f4cff7ull
#define TABLE_FORMAT_MAX 5

/* Finds a table file whose footer is not a table's: RocksDB reports such
 * damage against the MANIFEST that lists the file. */
static int find_bad_table(const char *dir, const struct names *nm,
			  char *file, size_t len)
{
	char path[PATH_MAX];
	unsigned char t[12];

	for (size_t i = 0; i < nm->n; i++) {
		uint64_t magic = 0;
		uint32_t version;
		int fd, ok;

		if (!store_has_suffix(nm->v[i], ".sst"))
			continue;
		store_path_join(path, sizeof(path), dir, nm->v[i]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ok = lseek(fd, -12, SEEK_END) >= 0 &&
		     read(fd, t, sizeof(t)) == (ssize_t)sizeof(t);
		close(fd);
		for (int k = 7; ok && k >= 0; k--)
			magic = magic << 8 | t[4 + k];
		version = t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 |
			  (uint32_t)t[3] << 24;
		if (!ok || magic != TABLE_MAGIC || version > TABLE_FORMAT_MAX) {
			snprintf(file, len, "%s", nm->v[i]);
			return 1;
		}
	}
	return 0;
}

/* The table file named in a RocksDB error ("... /000013.ldb: No such
 * file ..."), as it is named in the directory (.sst). */
static int table_in_error(const char *err, char *file, size_t len)
{
	static const char *const ext[] = { ".sst", ".ldb", ".blob" };

	for (const char *p = err; *p; p++) {
		size_t digits = strspn(p, "0123456789");

		if (!digits || (p > err && isdigit((unsigned char)p[-1])))
			continue;
		for (size_t i = 0; i < sizeof(ext) / sizeof(*ext); i++)
			if (!strncmp(p + digits, ext[i], strlen(ext[i]))) {
				snprintf(file, len, "%.*s%s", (int)digits, p,
					 i == 1 ? ".sst" : ext[i]);
				return 1;
			}
	}
	return 0;
}

/* Turns a failed read-only open into the file at fault and its damage. */
static void damage_from_rocksdb(const char *dir, const struct names *nm,
				const char *manifest, const char *err,
				struct damage *d)
{
	char file[64];

	if (strstr(err, "Column family not found") ||
	    strstr(err, "does not match existing comparator")) {
		damage_set(d, DMG_FOREIGN, "", "it is a RocksDB database of "
			   "another program (RocksDB: %s)", err);
	} else if (table_in_error(err, file, sizeof(file))) {
		damage_set(d, DMG_TABLE, file, "the table file %s is %s "
			   "(RocksDB: %s)", file, names_has(nm, file) ?
			   "damaged" : "missing", err);
	} else if (find_bad_table(dir, nm, file, sizeof(file))) {
		damage_set(d, DMG_TABLE, file, "the table file %s is damaged "
			   "(RocksDB: %s)", file, err);
	} else if (strstr(err, "MANIFEST")) {
		damage_set(d, DMG_MANIFEST, manifest, "%s is damaged "
			   "(RocksDB: %s)", manifest, err);
	} else {
		damage_set(d, DMG_OTHER, "", "RocksDB: %s", err);
	}
}

/*
 * Reads every record of one column family, checksums verified: the queues
 * and the message index must all be readable before anything is changed
 * (the engine reads them all at open anyway). Bodies are not read here: a
 * damaged body gives EIO for its message only (DESIGN §3).
 */
static void check_tables(rocksdb_t *db, rocksdb_column_family_handle_t *cf,
			 const struct names *nm, struct damage *d)
{
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_iterator_t *it;
	char *err = NULL, file[64];

	rocksdb_readoptions_set_fill_cache(ro, 0);
	rocksdb_readoptions_set_readahead_size(ro, 16 << 20);
	it = rocksdb_create_iterator_cf(db, ro, cf);
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it))
		;
	rocksdb_iter_get_error(it, &err);
	if (err && table_in_error(err, file, sizeof(file)))
		damage_set(d, DMG_TABLE, file, "the table file %s %s "
			   "(RocksDB: %s)", file, names_has(nm, file) ?
			   "cannot be read" : "is missing", err);
	else if (err)
		damage_set(d, DMG_OTHER, "", "RocksDB: %s", err);
	rocksdb_free(err);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
}

/* A store with no record at all: one whose creation was cut short before
 * its format record was written (spool_open writes it at once). */
static int store_empty(rocksdb_t *db, rocksdb_readoptions_t *ro,
		       rocksdb_column_family_handle_t *const cf[CF_N])
{
	int empty = 1;

	for (int i = 0; empty && i < CF_N; i++) {
		rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db, ro,
								   cf[i]);

		rocksdb_iter_seek_to_first(it);
		empty = !rocksdb_iter_valid(it);
		rocksdb_iter_destroy(it);
	}
	return empty;
}

/*
 * Opens the store read-only (which writes nothing in dir) and checks that
 * it is a spoolfs store: our column families and the format record, and
 * that the queue table reads through. With STORE_CHECK_INDEX the message
 * index is read through too (the engine reads all of it at open anyway:
 * without the flag that read is the engine's, on the handle kept). With
 * STORE_CHECK_KEEP a store that checks out stays open read-only in st.
 */
static int check_rocksdb(struct store *st, const char *dir,
			 const struct names *nm, const char *manifest,
			 struct damage *d, int how)
{
	rocksdb_column_family_handle_t *cf[CF_N];
	rocksdb_t *db;
	char *err = NULL, *v;
	size_t vlen;

	rocksdb_options_set_wal_recovery_mode(st->opts, 2);
	db = rocksdb_open_for_read_only_column_families(
		st->opts, dir, CF_N, store_cf_names,
		(const rocksdb_options_t *const *)st->cfopts, cf, 0, &err);
	if (err) {
		int rc = store_errno(err);

		if (rc == -EACCES || rc == -EBUSY) {
			rocksdb_free(err);
			return rc;
		}
		damage_from_rocksdb(dir, nm, manifest, err, d);
		rocksdb_free(err);
		return 1;
	}
	v = rocksdb_get_cf(db, st->ropts, cf[CF_META], KEY_VERSION,
			   strlen(KEY_VERSION), &vlen, &err);
	if (err) {
		damage_set(d, DMG_TABLE, "", "its format record cannot be "
			   "read (RocksDB: %s)", err);
		rocksdb_free(err);
	} else if (!v && !store_empty(db, st->ropts, cf)) {
		damage_set(d, DMG_MARKER, "", "it has no spoolfs format "
			   "record");
	}
	rocksdb_free(v);
	if (d->kind == DMG_NONE)
		check_tables(db, cf[CF_META], nm, d);
	if (d->kind == DMG_NONE && (how & STORE_CHECK_INDEX))
		check_tables(db, cf[CF_IDX], nm, d);
	if (d->kind == DMG_NONE && (how & STORE_CHECK_KEEP)) {
		st->db = db;
		memcpy(st->cf, cf, sizeof(cf));
		st->readonly = 1;
		return 0;
	}
	for (int i = 0; i < CF_N; i++)
		rocksdb_column_family_handle_destroy(cf[i]);
	rocksdb_close(db);
	return d->kind != DMG_NONE;
}

/* A read of the read-only handle failed before anything was written: the
 * same one line as any other damage found before opening. */
int store_refuse_unreadable(struct store *st, const char *err)
{
	struct damage d = { .kind = DMG_TABLE };
	char file[64];

	if (table_in_error(err, file, sizeof(file)))
		damage_set(&d, DMG_TABLE, file, "the table file %s cannot be "
			   "read (RocksDB: %s)", file, err);
	else
		damage_set(&d, DMG_OTHER, "", "RocksDB: %s", err);
	return store_refuse(st, st->dir, &d, 0);
}

/*
 * Checks an existing store without changing a byte of it. Returns 0 if it
 * can be opened as it is; 1 with *d saying what is wrong; -EBUSY if
 * another process has it open; -EACCES.
 */
int store_check(struct store *st, const char *dir, const struct names *nm,
		struct damage *d, int how)
{
	char manifest[64] = "";
	int foreign = 1;

	memset(d, 0, sizeof(*d));
	if (store_locked(dir))
		return -EBUSY;
	for (size_t i = 0; i < nm->n; i++)
		foreign &= !store_file_name(nm->v[i]);
	if (foreign) {
		damage_set(d, DMG_FOREIGN, "", "it holds other files (%s%s)",
			   nm->v[0], nm->n > 1 ? ", ..." : "");
		return 1;
	}
	if (check_current(dir, nm, manifest, sizeof(manifest), d) ||
	    store_check_manifest(dir, manifest, d) || check_logs(dir, nm, d))
		return 1;
	return check_rocksdb(st, dir, nm, manifest, d, how);
}

/* The one line an operator sees when the store is refused. */
int store_refuse(struct store *st, const char *dir,
		 const struct damage *d, int salvage)
{
	char line[2048];

	if (d->kind == DMG_FOREIGN)
		snprintf(line, sizeof(line), "%s: not a spoolfs store: %s; a "
			 "new store is created only in a missing or empty "
			 "directory (nothing was changed)", dir, d->what);
	else
		snprintf(line, sizeof(line), "%s: not a spoolfs store or "
			 "damaged: %s (nothing was changed%s)", dir, d->what,
			 salvage ? "" : "; --salvage opens it with what can "
			 "be read");
	if (st->log)
		st->log(st->log_arg, SPOOL_LOG_ERR, line);
	return -EIO;
}
