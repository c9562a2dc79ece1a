/*
 * test_store.c - opening and closing a store, on every store: defaults, a
 * killed process, and what a close/reopen keeps: queues, settings,
 * messages, leases, delays, counters. What only the RocksDB store has (its
 * directory, its lock, its files) is in test_rocks.c.
 */
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

/* The --data value picks the store: a scheme this build has no store for
 * is refused, with one line in the log, and creates nothing. */
TEST(open_unknown_store_kind)
{
	struct spool_options o;
	spool_db *db = NULL;
	struct stat st;

	t_log_expect();
	t_options(&o);
	RC(spool_open("nosuch://127.0.0.1:1/x", &o, &db), -EINVAL);
	CHECK(db == NULL);
	EQ(t_log_err_count(), 1);
	RC(stat("nosuch:", &st), -1);
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
