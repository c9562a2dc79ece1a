/*
 * test_store.c - opening and closing a store: defaults, creation, the lock
 * (same process, another process, a killed process), bad paths, and what a
 * close/reopen keeps: queues, settings, messages, leases, delays, counters.
 */
#include <dirent.h>

#include "t.h"

TEST(options_defaults)
{
	struct spool_options o;

	memset(&o, 0x5a, sizeof o);
	spool_options_init(&o);
	EQ(o.sync, SPOOL_SYNC_ALWAYS);
	CHECK(o.clock == NULL);
	CHECK(o.clock_arg == NULL);
	CHECK(o.log == NULL);
	CHECK(o.log_arg == NULL);
	EQ(o.log_level, SPOOL_LOG_INFO);
	CHECK(o.wake == NULL);
	CHECK(o.wake_arg == NULL);
	EQ(o.manual_timers, 0);
}

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

/*
 * kill -9 of the process holding the store: the lock goes with it, and every
 * push and ack that returned (SYNC_ALWAYS) is there, as is a lease.
 */
TEST(kill9_keeps_what_returned)
{
	int ready[2], status, i;
	uint64_t ids[100], list[200];
	struct spool_msg_info info;
	spool_db *db;
	spool_queue *q;
	pid_t pid;
	char c, body[32];

	OK(pipe(ready));
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		db = t_open();
		q = t_mkq(db, "q");
		for (i = 0; i < 100; i++) {
			snprintf(body, sizeof body, "m%d", i);
			ids[i] = t_push(q, body);
		}
		t_lease(q, "m0");
		t_lease(q, "m1");
		OK(spool_ack(q, ids[1]));
		if (write(ready[1], ids, sizeof ids) != sizeof ids)
			_exit(2);
		pause();
		_exit(3);
	}
	EQ(read(ready[0], ids, sizeof ids), (ssize_t)sizeof ids);
	OK(kill(pid, SIGKILL));
	EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	(void)c;

	db = t_open();
	q = t_q(db, "q");
	/* held: m0 (leased), m2..m9 (2 bytes each), m10..m99 (3 bytes) */
	CHECK_STATS(q, 98, 0, 1, 2 + 8 * 2 + 90 * 3, 100, 1, 0, 0);
	EQ(t_state(q, ids[0]), SPOOL_LEASED);
	EQ(t_state(q, ids[1]), 0);
	info = t_stat(q, ids[0]);
	EQ(info.due_ms, T_CLOCK_START + 30000);
	EQU(info.receives, 1);
	EQU(t_list_all(q, SPOOL_VISIBLE, list, 200), 98);
	for (i = 2; i < 100; i++) {
		ssize_t n = spool_msg_read(q, ids[i], 0, body, sizeof body);
		char want[32];

		EQU(list[i - 2], ids[i]);
		snprintf(want, sizeof want, "m%d", i);
		CHECK_MEM(body, (size_t)n, want, strlen(want));
	}
	spool_queue_close(q);
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
	char path[PATH_MAX + 32];
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

/* A store with a bit of everything in it. */
static void populate(spool_db *db, uint64_t ids[6])
{
	struct spool_queue_attr a = { .uid = 1000, .gid = 1001, .mode = 0750 };
	struct spool_attr attrs[2] = {
		{ "user.colour", "blue", 4 },
		{ "user.bin", "\0\1\2", 3 },
	};
	struct spool_push p = { .body = "with attrs", .len = 10,
				.name = "file.txt", .has_priority = 1,
				.priority = -4, .attrs = attrs, .nattrs = 2 };
	spool_queue *q, *r;

	OK(spool_queue_create(db, "jobs", &a));
	q = t_q(db, "jobs");
	r = t_mkq(db, "other");
	t_config(q, "visibility_timeout=10\npriority=2\nmax_depth=50\n"
		    "dedup=name\nfanout=\n");
	t_config(r, "receive_wait=5.5\nretention=3600\npaused=1\n");
	ids[0] = t_push(q, "default prio");
	OK(spool_push(q, &p, &ids[1]));
	ids[2] = t_push_prio(q, "high", 9);
	ids[3] = t_push_delay(q, "delayed", 50000);
	ids[4] = t_push(q, "to lease");
	ids[5] = t_push(r, "paused one");
	EQU(t_lease(q, "high"), ids[2]);
	t_advance(100);
	spool_queue_close(q);
	spool_queue_close(r);
}

TEST(reopen_keeps_everything)
{
	spool_db *db = t_open();
	struct spool_msg_info info;
	uint64_t ids[6];
	spool_queue *q;
	size_t n;

	populate(db, ids);
	db = t_reopen_same(db);
	/* and it goes on working: the lease order is intact */
	q = t_q(db, "jobs");
	EQU(t_lease(q, "default prio"), ids[0]);
	EQU(t_lease(q, "to lease"), ids[4]);
	EQU(t_lease(q, "with attrs"), ids[1]);
	RC(spool_lease_next(q, NULL, 0, &n, &info), -EAGAIN);
	spool_queue_close(q);
	/* once more, after those leases */
	db = t_reopen_same(db);
	spool_close(db);
}

TEST(reopen_expires_leases_that_ran_out)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info info;
	uint64_t a, b, c;

	a = t_push(q, "a");
	b = t_push(q, "b");
	c = t_push(q, "c");
	EQU(t_lease(q, "a"), a);
	EQU(t_lease(q, "b"), b);
	OK(spool_lease_extend(q, b, T_CLOCK_START + 200000));
	CHECK_STATS(q, 1, 0, 2, 3, 3, 0, 0, 0);
	spool_queue_close(q);
	spool_close(db);

	/* a's lease (30 s) runs out while the store is closed; b's does not */
	t_advance(60000);
	db = t_open();
	q = t_q(db, "q");
	EQ(t_state(q, a), SPOOL_VISIBLE);
	EQ(t_state(q, b), SPOOL_LEASED);
	EQ(t_stat(q, b).due_ms, T_CLOCK_START + 200000);
	CHECK_STATS(q, 2, 0, 1, 3, 3, 0, 1, 0);
	/* a is first again (lower id), its receive count goes to 2 */
	EQU(t_lease_at(__FILE__, __LINE__, q, "a", &info), a);
	EQU(info.receives, 2);
	EQ(info.first_received_ms, T_CLOCK_START);
	EQ(info.due_ms, T_CLOCK_START + 60000 + 30000);
	EQU(t_lease(q, "c"), c);
	/* b expires at its own time, with tick */
	t_advance(200000 - 60000 - 1);
	spool_tick(db);
	EQ(t_state(q, b), SPOOL_LEASED);
	t_advance(2);
	spool_tick(db);
	EQ(t_state(q, b), SPOOL_VISIBLE);
	spool_queue_close(q);
	spool_close(db);
}

TEST(reopen_keeps_delays)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	uint64_t a, b;

	a = t_push_delay(q, "soon", 5000);
	b = t_push_delay(q, "later", 50000);
	spool_queue_close(q);
	spool_close(db);

	t_advance(1000);
	db = t_open();
	q = t_q(db, "q");
	EQ(t_state(q, a), SPOOL_DELAYED);
	EQ(t_state(q, b), SPOOL_DELAYED);
	EQ(t_stat(q, a).due_ms, T_CLOCK_START + 5000);
	EQ(spool_tick(db), T_CLOCK_START + 5000);
	t_advance(4001);
	spool_tick(db);
	EQ(t_state(q, a), SPOOL_VISIBLE);
	EQ(t_state(q, b), SPOOL_DELAYED);
	spool_queue_close(q);
	spool_close(db);

	/* the second delay ends while closed: visible at open */
	t_advance(60000);
	db = t_open();
	q = t_q(db, "q");
	EQ(t_state(q, b), SPOOL_VISIBLE);
	CHECK_STATS(q, 2, 0, 0, 9, 2, 0, 0, 0);
	spool_queue_close(q);
	spool_close(db);
}

/* Many pushed and acked messages, then a reopen: only the rest come back. */
TEST(reopen_after_acks)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	static uint64_t ids[1000], list[1000];
	char body[16];
	int i;

	for (i = 0; i < 1000; i++) {
		snprintf(body, sizeof body, "%04d", i);
		ids[i] = t_push(q, body);
	}
	for (i = 0; i < 900; i++) {
		snprintf(body, sizeof body, "%04d", i);
		EQU(t_lease(q, body), ids[i]);
		OK(spool_ack(q, ids[i]));
	}
	spool_queue_close(q);
	spool_close(db);
	db = t_open();
	q = t_q(db, "q");
	CHECK_STATS(q, 100, 0, 0, 400, 1000, 900, 0, 0);
	EQU(t_list_all(q, SPOOL_VISIBLE, list, 1000), 100);
	for (i = 0; i < 100; i++)
		EQU(list[i], ids[900 + i]);
	snprintf(body, sizeof body, "%04d", 900);
	EQU(t_lease(q, body), ids[900]);
	spool_queue_close(q);
	spool_close(db);
}

/* Times that do not fit a node's packed form (a clock stepped back by
 * days, a lease extended to the year 9999) are kept exactly, in memory and
 * across a reopen. */
TEST(reopen_keeps_times_that_do_not_pack)
{
	const int64_t far = INT64_C(253402300799000); /* 9999-12-31 */
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "jobs");
	struct spool_msg_info info;
	uint64_t a, b;

	a = t_push(q, "a");
	t_advance(-100LL * 86400 * 1000);
	b = t_push(q, "b");
	OK(spool_msg_stat(q, b, &info));
	EQ(info.sent_ms, T_CLOCK_START - 100LL * 86400 * 1000);
	CHECK(b > a);
	OK(spool_lease_id(q, a, &info));
	OK(spool_lease_extend(q, a, far));
	OK(spool_msg_stat(q, a, &info));
	EQ(info.due_ms, far);
	EQ(info.sent_ms, T_CLOCK_START);
	EQ(info.first_received_ms, T_CLOCK_START - 100LL * 86400 * 1000);
	spool_queue_close(q);
	db = t_reopen_same(db);
	q = t_q(db, "jobs");
	OK(spool_msg_stat(q, a, &info));
	EQ(info.due_ms, far);
	/* back to a packable expiry, then gone: nothing leaks (valgrind) */
	OK(spool_lease_extend(q, a, spool_now(db) + 1000));
	OK(spool_msg_stat(q, a, &info));
	EQ(info.due_ms, spool_now(db) + 1000);
	OK(spool_ack(q, a));
	OK(spool_msg_stat(q, b, &info));
	EQ(info.sent_ms, T_CLOCK_START - 100LL * 86400 * 1000);
	spool_queue_close(q);
	spool_close(db);
}

/* A reopen rebuilds every index in one pass from the scan: priorities in
 * any order, all four states, holes left by deletes. The rebuilt store
 * lists, leases and finds exactly what the old one did. */
TEST_T(reopen_rebuilds_indexes, 60)
{
	enum { N = 3000 };
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "jobs");
	struct spool_msg_info info;
	static uint64_t ids[N];
	char body[32];
	size_t n;

	for (int i = 0; i < N; i++) {
		snprintf(body, sizeof(body), "m%d", i);
		if (i % 7 == 3)
			ids[i] = t_push_delay(q, body, 1000 + i);
		else
			ids[i] = t_push_prio(q, body, (i * 37) % 11 - 5);
	}
	for (int i = 0; i < N; i += 5)
		OK(spool_delete(q, ids[i], SPOOL_VISIBLE | SPOOL_DELAYED));
	for (int i = 0; i < 200; i++)
		OK(spool_lease_next(q, NULL, 0, &n, &info));
	spool_queue_close(q);
	db = t_reopen_same(db);
	q = t_q(db, "jobs");
	for (int i = 0; i < N; i++)
		RC(spool_msg_stat(q, ids[i], &info), i % 5 ? 0 : -ENOENT);
	/* leasing goes on in order: priority first, then id */
	int32_t last_prio = INT32_MAX;
	uint64_t last_id = 0;

	for (;;) {
		int rc = spool_lease_next(q, NULL, 0, &n, &info);

		if (rc == -EAGAIN)
			break;
		OK(rc);
		CHECK(info.priority < last_prio ||
		      (info.priority == last_prio && info.id > last_id));
		last_prio = info.priority;
		last_id = info.id;
		OK(spool_ack(q, info.id));
	}
	spool_queue_close(q);
	spool_close(db);
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
		char path[PATH_MAX + 300];
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
	t_mkq(db, "q");
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
	char path[PATH_MAX + 32];
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
