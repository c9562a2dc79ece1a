/*
 * test_redis.c - what only the Redis store has: the start checks of the
 * server's settings (DESIGN §10), a full server (OOM: pushes get -ENOSPC,
 * everything that does not grow memory still works), a server that is not
 * there (-EIO), a library of another version replaced at open, and
 * wake-ups from another handle (another host) over pub/sub. Runs under
 * tests/redis-run.sh, which gives SPOOL_REDIS_PORT; the server's settings
 * are changed with redis-cli and put back.
 */
#include "t.h"

/* redis-cli -p PORT ARGS..., must succeed */
static void cli(const char *args)
{
	char cmd[512];
	const char *port = getenv("SPOOL_REDIS_PORT");

	CHECK(port != NULL);
	snprintf(cmd, sizeof cmd, "redis-cli -p %s %s >/dev/null", port,
		 args);
	EQ(system(cmd), 0);
}

/* SIGSTOP or SIGCONT to the server (tests/redis-run.sh's pid). */
static void server_signal(int sig)
{
	const char *pid = getenv("SPOOL_REDIS_PID");

	CHECK(pid != NULL);
	EQ(kill((pid_t)atoi(pid), sig), 0);
}

/* The server's count of commands processed so far (INFO stats). */
static long commands_processed(void)
{
	char cmd[256], line[256];
	const char *port = getenv("SPOOL_REDIS_PORT");
	long n = -1;
	FILE *f;

	CHECK(port != NULL);
	snprintf(cmd, sizeof cmd, "redis-cli -p %s INFO stats", port);
	f = popen(cmd, "r");
	CHECK(f != NULL);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "total_commands_processed:", 25) == 0)
			n = atol(line + 25);
	EQ(pclose(f), 0);
	CHECK(n >= 0);
	return n;
}

static void *cont_later(void *arg)
{
	usleep(*(int *)arg * 1000);
	server_signal(SIGCONT);
	return NULL;
}

static int open_rc(enum spool_sync sync)
{
	struct spool_options o;
	spool_db *db = NULL;
	int rc;

	t_options(&o);
	o.sync = sync;
	rc = spool_open(t_store, &o, &db);
	spool_close(db);
	return rc;
}

TEST(start_check_eviction_refused)
{
	cli("CONFIG SET maxmemory-policy allkeys-lru");
	t_log_expect();
	EQ(open_rc(SPOOL_SYNC_NONE), -ENOTSUP);
	EQ(t_log_err_count(), 1);
	cli("CONFIG SET maxmemory-policy noeviction");
	EQ(open_rc(SPOOL_SYNC_NONE), 0);
}

TEST(start_check_sync_always_needs_fsync_always)
{
	t_log_expect();
	cli("CONFIG SET appendfsync everysec");
	EQ(open_rc(SPOOL_SYNC_ALWAYS), -ENOTSUP);
	EQ(open_rc(SPOOL_SYNC_NONE), 0);        /* --sync none: fine */
	cli("CONFIG SET appendfsync always");
	cli("CONFIG SET appendonly no");
	EQ(open_rc(SPOOL_SYNC_ALWAYS), -ENOTSUP);
	EQ(t_log_err_count(), 2);
	cli("CONFIG SET appendonly yes");
	EQ(open_rc(SPOOL_SYNC_ALWAYS), 0);
}

TEST(no_server_eio_and_urls_refused)
{
	struct spool_options o;
	spool_db *db = NULL;

	t_options(&o);
	t_log_expect();
	/* port 1 on loopback: nothing listens (refused at once) */
	EQ(spool_open("redis://127.0.0.1:1/x", &o, &db), -EIO);
	CHECK(db == NULL);
	EQ(spool_open("redis://nohost/x", &o, &db), -EINVAL);
	/* an option the store does not know: refused, not ignored */
	EQ(spool_open("redis://127.0.0.1:6379/x?wait=1", &o, &db), -EINVAL);
	EQ(spool_open("redis://127.0.0.1:6379/x?replicas=x", &o, &db),
	   -EINVAL);
	EQ(spool_open("redis+sentinel://127.0.0.1:6379", &o, &db), -EINVAL);
	/* known forms, nobody there */
	EQ(spool_open("redis://127.0.0.1:1/x?replicas=1", &o, &db), -EIO);
	EQ(spool_open("redis+sentinel://127.0.0.1:1,127.0.0.1:1/m/x", &o, &db),
	   -EIO);
	EQ(spool_open("redis+cluster://127.0.0.1:1/x", &o, &db), -EIO);
	EQ(spool_open("redis+cluster://127.0.0.1/x", &o, &db), -EINVAL);
	EQ(spool_open("redis+cluster://127.0.0.1:1,x/x", &o, &db), -EINVAL);
	CHECK(db == NULL);
}

TEST(full_server_enospc_for_pushes_only)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info info;
	struct spool_push p = { 0 };
	uint64_t a = t_push(q, "one"), b = t_push(q, "two"), id;

	OK(spool_lease_id(q, a, &info));
	cli("CONFIG SET maxmemory 1");
	t_log_expect();
	p.body = "x";
	p.len = 1;
	EQ(spool_push(q, &p, &id), -ENOSPC);
	/* what does not grow memory still runs: consumers drain */
	OK(spool_ack(q, a));
	OK(spool_lease_id(q, b, &info));
	OK(spool_release(q, b, 0));
	EQ(t_stats(q).visible, 1);
	cli("CONFIG SET maxmemory 0");
	OK(spool_push(q, &p, &id));
	EQ(t_stats(q).visible, 2);
	spool_queue_close(q);
	spool_close(db);
}

/* An open handle with nothing to do sends next to nothing: a timer thread
 * that waited on a CLOCK_REALTIME condition with CLOCK_MONOTONIC deadlines
 * called the server ~10,000 times a second while idle. In 3 s idle it may
 * tick at each safety wake-up (every 2 s) and at the visibility timeout of
 * nothing (there are no timers): a handful of calls, far under 100. */
TEST(idle_handle_is_quiet)
{
	struct spool_options o;
	spool_db *db = NULL;
	spool_queue *q;
	long before, after;

	/* the real clock and the store's own timer thread */
	t_options(&o);
	o.clock = NULL;
	o.manual_timers = 0;
	OK(spool_open(t_store, &o, &db));
	q = t_mkq(db, "q");

	t_push(q, "waiting");
	before = commands_processed();
	sleep(3);
	after = commands_processed();
	/* the INFO call itself is one of them */
	CHECK(after - before < 100);
	EQ(t_stats(q).visible, 1);
	spool_queue_close(q);
	spool_close(db);
}

TEST(other_library_version_replaced)
{
	spool_db *db;

	cli("FUNCTION LOAD REPLACE \"#!lua name=spool2\n"
	    "redis.register_function('spool2_version', function() return 'old' end)\"");
	db = t_open();
	spool_queue *q = t_mkq(db, "q");

	t_push(q, "after the reload");
	EQ(t_stats(q).visible, 1);
	spool_queue_close(q);
	spool_close(db);
}

/* A server that stops answering for a moment (3 s, longer than one
 * command's 2 s socket timeout): calls wait, reconnect and succeed. */
TEST(paused_server_calls_wait_and_succeed)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info info;
	uint64_t a = t_push(q, "a");
	int ms = 3000, rc_stat, rc_lease;
	pthread_t th;

	server_signal(SIGSTOP);
	OK(pthread_create(&th, NULL, cont_later, &ms));
	rc_stat = spool_msg_stat(q, a, &info);
	rc_lease = spool_lease_id(q, a, &info);
	pthread_join(th, NULL);
	EQ(rc_stat, 0);
	EQ(rc_lease, 0);
	EQ(t_stats(q).leased, 1);
	spool_queue_close(q);
	spool_close(db);
}

/* A server that does not answer for longer than the 10 s deadline: -EIO
 * (a push at once once its reply is lost: it may have happened); then
 * the same handle works again when the server is back. */
TEST_T(stopped_server_eio_then_recovers, 90)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info info;
	struct spool_push p = { .body = "x", .len = 1 };
	uint64_t a = t_push(q, "a"), id;
	int rc_stat, rc_push;

	t_log_expect();
	server_signal(SIGSTOP);
	rc_stat = spool_msg_stat(q, a, &info);
	rc_push = spool_push(q, &p, &id);
	server_signal(SIGCONT);
	EQ(rc_stat, -EIO);
	EQ(rc_push, -EIO);
	CHECK(t_log_err_count() >= 2);
	OK(spool_msg_stat(q, a, &info));
	OK(spool_push(q, &p, &id));
	CHECK(t_stats(q).visible >= 2);
	spool_queue_close(q);
	spool_close(db);
}

static atomic_int woken;

static void count_wake(void *arg, spool_queue *q)
{
	(void)arg;
	if (strcmp(spool_queue_name(q), "q") == 0)
		atomic_fetch_add(&woken, 1);
}

/* Two handles on one store are two hosts: a push on one wakes the other
 * through the channel, and a delete on one is seen by the other. */
TEST(two_handles_wake_each_other)
{
	struct spool_options o;
	spool_db *a = t_open(), *b = NULL;
	spool_queue *qa = t_mkq(a, "q"), *qb;
	char buf[16];
	size_t n;
	struct spool_msg_info info;

	t_options(&o);
	o.wake = count_wake;
	OK(spool_open(t_store, &o, &b));
	qb = t_q(b, "q");
	t_push(qa, "from a");
	for (int i = 0; i < 500 && !atomic_load(&woken); i++)
		usleep(10000);
	CHECK(atomic_load(&woken) >= 1);
	OK(spool_lease_next(qb, buf, sizeof buf, &n, &info));
	EQ(n, 6);
	OK(spool_ack(qb, info.id));
	RC(spool_ack(qa, info.id), -ENOENT);
	OK(spool_queue_delete(a, "q"));
	RC(spool_push(qb, &(struct spool_push){ .body = "x", .len = 1 }, NULL),
	   -ENOENT);
	EQ(spool_queue_alive(qb), 0);
	spool_queue_close(qa);
	spool_queue_close(qb);
	spool_close(a);
	spool_close(b);
}

T_MAIN
