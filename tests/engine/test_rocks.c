/*
 * test_rocks.c - what only the RocksDB store has: the directory it
 * creates, the lock on it (same process, another process, a parent's), a
 * path that is not a directory, a corrupt store, what an existing
 * directory must hold (issue 11). Always run on a RocksDB
 * store, whatever SPOOL_TEST_STORE says.
 */
#define T_STORE_ROCKSDB
#include <dirent.h>

#include "t.h"

/* Opens the store again and checks how many queues it holds. */
static void reopen_has_queues(size_t n)
{
	spool_db *db = t_open();

	EQU(spool_queue_count(db), n);
	spool_close(db);
}

TEST(open_creates_dir_and_close)
{
	struct stat st;
	spool_db *db;

	RC(stat(t_store, &st), -1);
	db = t_open();
	OK(stat(t_store, &st));
	CHECK(S_ISDIR(st.st_mode));
	EQ(spool_now(db), T_CLOCK_START);
	t_advance(1234);
	EQ(spool_now(db), T_CLOCK_START + 1234);
	EQ(spool_tick(db), INT64_MAX);
	EQU(spool_queue_count(db), 0);
	spool_close(db);
	spool_close(NULL);
	spool_queue_close(NULL);
	/* and again, on the existing store */
	reopen_has_queues(0);
}

TEST(open_locked_same_process)
{
	struct spool_options o;
	spool_db *db = t_open(), *db2 = NULL;

	t_log_expect();
	t_options(&o);
	RC(spool_open(t_store, &o, &db2), -EBUSY);
	CHECK(db2 == NULL);
	CHECK_INT(t_log_err_count(), >=, 1);
	/* the first handle still works */
	spool_queue *q = t_mkq(db, "q");
	t_push(q, "x");
	spool_queue_close(q);
	spool_close(db);
	/* closing released the lock */
	db = t_open();
	q = t_q(db, "q");
	EQU(t_stats(q).visible, 1);
	spool_queue_close(q);
	spool_close(db);
}

/* Child side of the cross-process lock test: open, report, wait, close. */
static void lock_holder(int ready_w, int go_r)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "held");
	char c;

	t_push(q, "from child");
	if (write(ready_w, "y", 1) != 1)
		_exit(2);
	if (read(go_r, &c, 1) != 1)
		_exit(3);
	spool_queue_close(q);
	spool_close(db);
	/* exit, not _exit: RocksDB's thread pool is joined at exit, which
	 * valgrind's leak check wants (this child is single-threaded at its
	 * fork, so exit handlers are safe here) */
	exit(0);
}

TEST(open_locked_other_process)
{
	int ready[2], go[2], status;
	struct spool_options o;
	spool_db *db = NULL;
	spool_queue *q;
	pid_t pid;
	char c;

	OK(pipe(ready));
	OK(pipe(go));
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		lock_holder(ready[1], go[0]);
	EQ(read(ready[0], &c, 1), 1);
	t_log_expect();
	t_options(&o);
	RC(spool_open(t_store, &o, &db), -EBUSY);
	CHECK(db == NULL);
	CHECK_INT(t_log_err_count(), >=, 1);
	EQ(write(go[1], "g", 1), 1);
	EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	db = t_open();
	q = t_q(db, "held");
	EQU(t_stats(q).visible, 1);
	spool_queue_close(q);
	spool_close(db);
}

/* The other way round: the store open here, a child process tries. The
 * child is forked before the store is opened, while this process has no
 * threads, so that it may run exit handlers and be leak-checked cleanly. */
TEST(open_locked_by_parent)
{
	int go[2], res[2], status, rc = 1;
	spool_db *db;
	pid_t pid;
	char c;

	OK(pipe(go));
	OK(pipe(res));
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct spool_options o;
		spool_db *db2 = NULL;

		if (read(go[0], &c, 1) != 1)
			_exit(2);
		t_log_expect();
		t_options(&o);
		rc = spool_open(t_store, &o, &db2);
		if (db2) {
			spool_close(db2);
			rc = 1;
		}
		if (write(res[1], &rc, sizeof rc) != sizeof rc)
			_exit(3);
		exit(0);
	}
	db = t_open();
	EQ(write(go[1], "g", 1), 1);
	EQ(read(res[0], &rc, sizeof rc), (ssize_t)sizeof rc);
	EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	RC(rc, -EBUSY);
	spool_close(db);
}

TEST(open_regular_file_fails)
{
	struct spool_options o;
	spool_db *db = NULL;
	int fd;

	fd = open(t_store, O_CREAT | O_WRONLY, 0644);
	CHECK(fd >= 0);
	EQ(write(fd, "not a store\n", 12), 12);
	close(fd);
	t_log_expect();
	t_options(&o);
	RC2(spool_open(t_store, &o, &db), -ENOTDIR, -EIO);
	CHECK(db == NULL);
	CHECK_INT(t_log_err_count(), >=, 1);
	/* a path under a regular file */
	snprintf(t_store + strlen(t_store), sizeof t_store - strlen(t_store),
		 "/sub");
	RC2(spool_open(t_store, &o, &db), -ENOTDIR, -EIO);
	CHECK(db == NULL);
}

TEST(open_corrupt_store_fails)
{
	struct spool_options o;
	char path[sizeof t_store + 16];
	spool_db *db = t_open();
	int fd;

	spool_close(db);
	/* CURRENT names the manifest; make it name nothing sensible */
	snprintf(path, sizeof path, "%s/CURRENT", t_store);
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0);
	EQ(write(fd, "garbage\n", 8), 8);
	close(fd);
	db = NULL;
	t_log_expect();
	t_options(&o);
	RC(spool_open(t_store, &o, &db), -EIO);
	CHECK(db == NULL);
	CHECK_INT(t_log_err_count(), >=, 1);
}

/* ------------------------------------------- what an existing dir holds */

/* A fingerprint of every entry of dir: names, sizes, mtimes (ns). */
static unsigned long long dir_print(const char *dir)
{
	unsigned long long h = 1469598103934665603ull;
	struct dirent *e;
	DIR *d = opendir(dir);

	CHECK(d != NULL);
	while ((e = readdir(d))) {
		char path[sizeof t_store + 300];
		struct stat st;

		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		OK(lstat(path, &st));
		for (const char *p = e->d_name; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		h = (h ^ (unsigned long long)st.st_size) * 1099511628211ull;
		h = (h ^ (unsigned long long)st.st_mtim.tv_nsec) *
		    1099511628211ull;
		h ^= (unsigned long long)st.st_mtim.tv_sec;
	}
	closedir(d);
	return h;
}

/* The last log line that holds text, or NULL. */
static const char *t_log_find(const char *text)
{
	for (unsigned i = t_log_n; i-- > 0 && i + T_LOG_RING >= t_log_n;)
		if (strstr(t_log_ring[i % T_LOG_RING], text))
			return t_log_ring[i % T_LOG_RING];
	return NULL;
}

TEST(store_cut_short_before_its_format_record_opens_as_new)
{
	spool_db *db;

	OK(spool_test_bare_store(t_store, 0));
	reopen_has_queues(0);
	db = t_open();
	spool_queue_close(t_mkq(db, "q"));
	spool_close(db);
	reopen_has_queues(1);
}

TEST(store_with_records_but_no_format_record_is_refused)
{
	struct spool_options o;
	spool_db *db = NULL;
	unsigned long long before;

	OK(spool_test_bare_store(t_store, 1));
	before = dir_print(t_store);
	t_log_expect();
	t_options(&o);
	for (int i = 0; i < 2; i++) {
		RC(spool_open(t_store, &o, &db), -EIO);
		CHECK(db == NULL);
		CHECK(t_log_find("no spoolfs format record") != NULL);
		CHECK(t_log_find("(nothing was changed") != NULL);
		CHECK(dir_print(t_store) == before);
	}
	/* --salvage opens it and writes the record */
	o.salvage = 1;
	OK(spool_open(t_store, &o, &db));
	spool_close(db);
	o.salvage = 0;
	OK(spool_open(t_store, &o, &db));
	spool_close(db);
}

TEST(directory_of_other_files_is_never_written)
{
	struct spool_options o;
	spool_db *db = NULL;
	unsigned long long before;
	char path[sizeof t_store + 32];
	FILE *f;

	OK(mkdir(t_store, 0700));
	snprintf(path, sizeof path, "%s/notes.txt", t_store);
	f = fopen(path, "w");
	CHECK(f != NULL);
	fputs("mine\n", f);
	fclose(f);
	before = dir_print(t_store);
	t_log_expect();
	t_options(&o);
	RC(spool_open(t_store, &o, &db), -EIO);
	CHECK(t_log_find("not a spoolfs store: it holds other files") != NULL);
	o.salvage = 1;
	RC(spool_open(t_store, &o, &db), -EIO);
	CHECK(db == NULL);
	CHECK(dir_print(t_store) == before);
}

/* ---------------------------------------------- memory: the idle flush */

/* How many table files (*.sst) dir holds. */
static int count_tables(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	CHECK(d != NULL);
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);

		n += len > 4 && strcmp(e->d_name + len - 4, ".sst") == 0;
	}
	closedir(d);
	return n;
}

/*
 * A store that falls idle writes its memtables into table files (the
 * keeper, engine/rocks/kv_keep.c) without waiting for a close or a full
 * write buffer (2 MB written here, against 8 MiB buffers); what it holds,
 * a lease with its deadline among it, reads back the same before and
 * after, and after a restart.
 */
TEST_T(idle_store_flushes_its_memtables_and_keeps_its_leases, 60)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	char body[1001];
	uint64_t leased;
	struct spool_msg_info before, after;
	int tables;

	for (int i = 0; i < 2000; i++) {
		snprintf(body, sizeof body, "%04d", i);
		memset(body + 4, 'a' + i % 26, sizeof body - 5);
		body[sizeof body - 1] = '\0';
		t_push(q, body);
	}
	leased = t_lease(q, NULL);
	before = t_stat(q, leased);
	tables = count_tables(t_store);
	/* the keeper waits 2 s without a write, then flushes */
	for (int i = 0; i < 100 && count_tables(t_store) == tables; i++)
		usleep(100 * 1000);
	CHECK_INT(count_tables(t_store), >, tables);
	after = t_stat(q, leased);
	EQ(after.state, SPOOL_LEASED);
	EQ(after.due_ms, before.due_ms);
	CHECK_STATS(q, 1999, 0, 1, 2000 * 1000, 2000, 0, 0, 0);
	spool_queue_close(q);
	db = t_reopen_same(db);
	q = t_q(db, "q");
	after = t_stat(q, leased);
	EQ(after.state, SPOOL_LEASED);
	EQ(after.due_ms, before.due_ms);
	spool_queue_close(q);
	spool_close(db);
}
