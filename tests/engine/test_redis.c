/*
 * test_redis.c - what only the Redis store has: the start checks of the
 * server's settings (DESIGN §10), a full server (OOM: pushes get -ENOSPC,
 * everything that does not grow memory still works), a server that is not
 * there (-EIO), a library of another version replaced at open, and
 * wake-ups from another handle (another host) over pub/sub. Runs under
 * tests/redis-run.sh, which gives SPOOL_REDIS_PORT; the server's settings
 * are changed with redis-cli and put back.
 */
#include <stdarg.h>

#include "t.h"

/* redis-cli -p PORT ARGS... (a printf format), must succeed */
static __attribute__((format(printf, 1, 2))) void cli(const char *fmt, ...)
{
	char cmd[1200], args[1024];
	const char *port = getenv("SPOOL_REDIS_PORT");
	va_list ap;

	CHECK(port != NULL);
	va_start(ap, fmt);
	vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
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

/* The number after "key" in INFO section of the server, or absent when
 * no line has it. */
static long info_number(const char *section, const char *key, long absent)
{
	char cmd[256], line[512];
	const char *port = getenv("SPOOL_REDIS_PORT");
	size_t k = strlen(key);
	long n = absent;
	FILE *f;

	CHECK(port != NULL);
	snprintf(cmd, sizeof cmd, "redis-cli -p %s INFO %s", port, section);
	f = popen(cmd, "r");
	CHECK(f != NULL);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, k) == 0)
			n = atol(line + k);
	EQ(pclose(f), 0);
	return n;
}

/* The server's count of commands processed so far. */
static long commands_processed(void)
{
	long n = info_number("stats", "total_commands_processed:", -1);

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

/* The calls of FCALL so far (0 before the first). */
static long fcalls(void)
{
	return info_number("commandstats", "cmdstat_fcall:calls=", 0);
}

/* A queue's attributes and settings come from one cached qget: lookups,
 * stats and permission checks ask for the attributes, and a consume made
 * four qget calls besides its lease and ack until they were cached. A
 * change on this handle drops the copy at once; one on another handle
 * (another host) through its "c" message, well before the copy's 1 s. */
TEST(attributes_cached_with_settings)
{
	struct spool_options o;
	spool_db *a = t_open(), *b = NULL;
	spool_queue *qa = t_mkq(a, "q"), *qb;
	struct spool_queue_attr at;
	struct spool_settings s;
	struct timespec t0, t1;
	long before;

	t_options(&o);
	OK(spool_open(t_store, &o, &b));
	qb = t_q(b, "q");
	OK(spool_queue_getattr(qb, &at));
	before = fcalls();
	for (int i = 0; i < 10; i++) {
		OK(spool_queue_getattr(qb, &at));
		OK(spool_settings_get(qb, &s));
	}
	EQ(fcalls() - before, 0);
	EQ(at.mode & 07777, 0755);
	/* this handle's own change */
	at.mode = 0750;
	OK(spool_queue_setattr(qb, &at));
	OK(spool_queue_getattr(qb, &at));
	EQ(at.mode & 07777, 0750);
	/* another host's */
	OK(spool_queue_getattr(qa, &at));
	at.mode = 0700;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	OK(spool_queue_setattr(qa, &at));
	do {
		usleep(5000);
		OK(spool_queue_getattr(qb, &at));
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while ((at.mode & 07777) != 0700 && t1.tv_sec - t0.tv_sec < 5);
	EQ(at.mode & 07777, 0700);
	CHECK((t1.tv_sec - t0.tv_sec) * 1000 +
	      (t1.tv_nsec - t0.tv_nsec) / 1000000 < 800);
	/* and a queue deleted there is gone here */
	OK(spool_queue_delete(a, "q"));
	for (int i = 0; i < 100 && spool_queue_getattr(qb, &at) == 0; i++)
		usleep(5000);
	RC(spool_queue_getattr(qb, &at), -ENOENT);
	spool_queue_close(qa);
	spool_queue_close(qb);
	spool_close(a);
	spool_close(b);
}

/* ------------------------------------------- the Cluster's mode ("2/c") */

/* The store in the Cluster's mode (cluster 1: SPOOL_REDIS_CLUSTER_MODE, the
 * test seam of conn.c) or the single primary's (0). */
static spool_db *open_mode(int cluster)
{
	if (cluster)
		setenv("SPOOL_REDIS_CLUSTER_MODE", "1", 1);
	else
		unsetenv("SPOOL_REDIS_CLUSTER_MODE");
	return t_open();
}

/* The store's prefix P (its keys are {P}:... and {P:F}:...). */
static const char *prefix(void)
{
	return strchr(strstr(t_store, "://") + 3, '/') + 1;
}

/* redis-cli --raw ARGS (a printf format; keys quoted by the caller): the
 * first line of its output, into out. */
static __attribute__((format(printf, 3, 4)))
void cli_out(char *out, size_t len, const char *fmt, ...)
{
	char args[1024], cmd[1200];
	const char *port = getenv("SPOOL_REDIS_PORT");
	va_list ap;
	FILE *f;

	CHECK(port != NULL);
	va_start(ap, fmt);
	vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof cmd, "redis-cli -p %s --raw %s", port, args);
	f = popen(cmd, "r");
	CHECK(f != NULL);
	out[0] = '\0';
	if (fgets(out, (int)len, f))
		out[strcspn(out, "\n")] = '\0';
	while (fgetc(f) != EOF)
		;
	EQ(pclose(f), 0);
}

/* Whether name is among the queues spool_queue_next lists. */
static int listed(spool_db *db, const char *name)
{
	char n[SPOOL_NAME_MAX + 1] = "";

	for (;;) {
		int rc = spool_queue_next(db, n, n);

		if (rc == -ENOENT)
			return 0;
		OK(rc);
		if (!*n)
			return 0;
		if (strcmp(n, name) == 0)
			return 1;
	}
}

/* Where family f's counter starts in each millisecond (spool.lua's
 * id_base). */
static uint64_t id_base(const char *f)
{
	uint64_t h = 0;

	for (; *f; f++)
		h = (h * 31 + (unsigned char)*f) % 1048576;
	return h * 699053 % 1048576;
}

/* Ids per family in the Cluster's mode: two families take ids from their
 * own generators ({P:F}:seq), each from its own base in a millisecond, so
 * in one millisecond they differ; on a single primary one generator
 * ({P}:seq) for all. */
static void ids_in_mode(int cluster)
{
	spool_db *db = open_mode(cluster);
	spool_queue *a = t_mkq(db, "a"), *b = t_mkq(db, "b"),
		    *ax = t_mkq(db, "a.x");
	uint64_t ia = t_push(a, "1"), ib = t_push(b, "2"), iax = t_push(ax, "3");
	char v[64];

	CHECK(ia != iax);               /* one family: one generator */
	if (cluster) {
		EQ(ia >> 21, ib >> 21); /* one millisecond */
		EQ(ia & 0x1fffff, id_base("a"));
		EQ(ib & 0x1fffff, id_base("b"));
		EQ(iax, ia + 1);
		cli_out(v, sizeof v, "EXISTS '{%s:a}:seq' '{%s:b}:seq' "
			"'{%s}:seq'", prefix(), prefix(), prefix());
		EQ(atoi(v), 2);
	} else {
		CHECK(ia != ib);
		cli_out(v, sizeof v, "EXISTS '{%s:a}:seq' '{%s}:seq'",
			prefix(), prefix());
		EQ(atoi(v), 1);
	}
	spool_queue_close(a);
	spool_queue_close(b);
	spool_queue_close(ax);
	spool_close(db);
}

TEST(cluster_mode_ids_per_family)
{
	ids_in_mode(1);
}

TEST(single_primary_ids_per_namespace)
{
	ids_in_mode(0);
}

/* fanout= and dead_letter= naming another family: EINVAL in the Cluster's
 * mode (logged), allowed on a single primary; moves across families work
 * in both (the Cluster's through the outbox). */
static void refs_in_mode(int cluster)
{
	spool_db *db = open_mode(cluster);
	spool_queue *a = t_mkq(db, "a"), *b = t_mkq(db, "b"),
		    *ax = t_mkq(db, "a.x");
	uint64_t id = t_push(a, "m"), moved = 9;
	int want = cluster ? -EINVAL : 0;

	if (cluster)
		t_log_expect();
	RC(spool_config_apply(a, "fanout=b\n", 9), want);
	RC(spool_config_apply(a, "fanout=a.x,b\n", 13), want);
	RC(spool_config_apply(a, "dead_letter=b\n", 14), want);
	RC(spool_config_apply(a, "max_size=7\nfanout=\ndead_letter=\n",
			      31), 0);
	t_config(a, "dead_letter=a.x\n");       /* its own family: fine */
	t_config(a, "fanout=a.x\n");
	t_config(a, "fanout=\n");
	OK(spool_move(a, id, SPOOL_VISIBLE, ax));  /* same family */
	EQ(t_stats(ax).visible, 1);
	EQ(t_stats(a).visible, 0);
	OK(spool_move_all(ax, b, 0, &moved));
	EQ(moved, 1);
	EQ(t_stats(b).visible, 1);
	EQ(t_log_err_count(), 0);
	spool_queue_close(a);
	spool_queue_close(b);
	spool_queue_close(ax);
	spool_close(db);
}

TEST(cluster_mode_cross_family_refs_einval)
{
	refs_in_mode(1);
}

TEST(single_primary_cross_family_refs_allowed)
{
	refs_in_mode(0);
}

/* The sweep (at open, then every 30 s): names and family dues taken out of
 * {P}:queues / {P}:timers (or a stale name left in) behind the daemon's
 * back are put right from the families' own keys. */
static void sweep_in_mode(int cluster)
{
	spool_db *db = open_mode(cluster);
	spool_queue *a = t_mkq(db, "a"), *ax = t_mkq(db, "a.x");
	const char *p = prefix();
	char v[64];

	t_push_delay(a, "later", 5000);
	cli_out(v, sizeof v, "ZSCORE '{%s}:timers' a", p);
	EQ(strtoll(v, NULL, 10), t_now + 5000);
	cli("ZREM '{%s}:queues' a.x", p);
	cli("ZADD '{%s}:queues' 0 a.gone", p);
	cli("ZREM '{%s}:timers' a", p);
	CHECK(!listed(db, "a.x"));
	CHECK(listed(db, "a.gone"));
	spool_queue_close(a);
	spool_queue_close(ax);
	spool_close(db);
	db = open_mode(cluster);        /* a slice of the sweep at open */
	CHECK(listed(db, "a.x"));
	CHECK(listed(db, "a"));
	CHECK(!listed(db, "a.gone"));
	cli_out(v, sizeof v, "ZSCORE '{%s}:timers' a", p);
	EQ(strtoll(v, NULL, 10), t_now + 5000);
	EQ(spool_tick(db), t_now + 5000);
	spool_close(db);
}

TEST(cluster_mode_sweep_repairs_registry_and_timers)
{
	sweep_in_mode(1);
}

TEST(single_primary_sweep_repairs_registry_and_timers)
{
	sweep_in_mode(0);
}

/* {P}:timers in the Cluster's mode is kept by versions: an older
 * publication (a second call that arrives late) does not overwrite a
 * newer one; and a family's published due may be early (a later one is
 * not published), yet spool_tick answers the true next due. */
TEST(cluster_mode_timer_versions)
{
	spool_db *db = open_mode(1);
	spool_queue *q = t_mkq(db, "f");
	const char *p = prefix();
	char v[64];
	uint64_t id;
	int ver;

	cli("FCALL spool2_ns 1 '{%s}' '' o '2/c/%s' t fam 500 5", p, p);
	cli("FCALL spool2_ns 1 '{%s}' '' o '2/c/%s' t fam 900 3", p, p);
	cli_out(v, sizeof v, "ZSCORE '{%s}:timers' fam", p);
	EQ(atoi(v), 500);
	cli("FCALL spool2_ns 1 '{%s}' '' o '2/c/%s' t fam 700 5", p, p);
	cli_out(v, sizeof v, "ZSCORE '{%s}:timers' fam", p);
	EQ(atoi(v), 500);               /* the same version: kept */
	cli("FCALL spool2_ns 1 '{%s}' '' o '2/c/%s' t fam '' 6", p, p);
	cli_out(v, sizeof v, "ZSCORE '{%s}:timers' fam", p);
	EQ(v[0], '\0');                 /* newer: none */
	cli_out(v, sizeof v, "HGET '{%s}:tver' fam", p);
	EQ(atoi(v), 6);
	/* f: a lease of 1 s (published), then its ack: the earliest due of f
	 * is now the delayed message's, later, and not published */
	t_push_delay(q, "d", 60000);
	t_push(q, "v");
	id = t_lease(q, "v");
	cli_out(v, sizeof v, "ZSCORE '{%s}:timers' f", p);
	EQ(strtoll(v, NULL, 10), t_now + 30000);
	OK(spool_ack(q, id));
	cli_out(v, sizeof v, "ZSCORE '{%s}:timers' f", p);
	EQ(strtoll(v, NULL, 10), t_now + 30000);   /* early, still */
	EQ(spool_tick(db), t_now + 60000);         /* the truth */
	cli_out(v, sizeof v, "ZSCORE '{%s}:timers' f", p);
	EQ(strtoll(v, NULL, 10), t_now + 60000);
	/* ticks that find the index right publish nothing more */
	cli_out(v, sizeof v, "HGET '{%s}:tver' f", p);
	ver = atoi(v);
	EQ(spool_tick(db), t_now + 60000);
	EQ(spool_tick(db), t_now + 60000);
	cli_out(v, sizeof v, "HGET '{%s}:tver' f", p);
	EQ(atoi(v), ver);
	spool_queue_close(q);
	spool_close(db);
}

/* A store marked for one mode ({P}:layout "2" or "2c") is refused by a
 * daemon of the other, with one line naming both. */
TEST(layout_mode_mismatch_refused)
{
	struct spool_options o;
	spool_db *db = open_mode(1), *other = NULL;
	char v[64];

	cli_out(v, sizeof v, "GET '{%s}:layout'", prefix());
	EQ(strcmp(v, "2c"), 0);
	spool_close(db);
	t_options(&o);
	t_log_expect();
	unsetenv("SPOOL_REDIS_CLUSTER_MODE");
	RC(spool_open(t_store, &o, &other), -ENOTSUP);
	CHECK(other == NULL);
	EQ(t_log_err_count(), 1);
	db = open_mode(1);              /* its own mode: fine */
	spool_close(db);
	cli("SET '{%s}:layout' 2", prefix());
	setenv("SPOOL_REDIS_CLUSTER_MODE", "1", 1);
	RC(spool_open(t_store, &o, &other), -ENOTSUP);
	EQ(t_log_err_count(), 2);
}

/* The reply of an FCALL of spool2_<fn> (redis-cli --raw: one value a
 * line) on tag {P:f}, in the Cluster's mode, at t_now, with the arguments
 * fmt...: its line `line` (0: the code) into out. */
static __attribute__((format(printf, 6, 7)))
void fcall(char *out, size_t len, int line, const char *f, const char *fn,
	   const char *fmt, ...)
{
	char args[700], cmd[1200], buf[256];
	const char *port = getenv("SPOOL_REDIS_PORT");
	va_list ap;
	FILE *pf;

	va_start(ap, fmt);
	vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof cmd, "redis-cli -p %s --raw FCALL spool2_%s 1 "
		 "'{%s:%s}' %lld o '2/c/%s' %s", port, fn, prefix(), f,
		 (long long)t_now, prefix(), args);
	pf = popen(cmd, "r");
	CHECK(pf != NULL);
	out[0] = '\0';
	for (int i = 0; fgets(buf, sizeof buf, pf); i++)
		if (i == line)
			snprintf(out, len, "%.*s", (int)strcspn(buf, "\n"), buf);
	EQ(pclose(pf), 0);
}

/* A move across families in the Cluster's mode: the durable outbox move.
 * The message keeps its id unless the other family has it (their ids
 * come from two generators); a refusal puts it back; a transfer cut after
 * its first step is replayed by the tick 30 s later, once; a replay of
 * the second step is a no-op. */
TEST(cluster_mode_move_across_families)
{
	spool_db *db = open_mode(1);
	spool_queue *a = t_mkq(db, "a"), *b = t_mkq(db, "b");
	uint64_t ia = t_push(a, "one"), ib, i2, i3, moved;
	char v[128], text[SPOOL_ID_LEN + 1], gen[24], xn[24];
	const char *p = prefix();

	/* a clash: b's generator made to give ia next (a rare event, as the
	 * bases differ) */
	cli("HSET '{%s:b}:seq' ms %llu c %llu", p,
	    (unsigned long long)(ia >> 21),
	    (unsigned long long)((ia & 0x1fffff) - 1));
	ib = t_push(b, "two");
	EQ(ia, ib);
	OK(spool_move(a, ia, SPOOL_VISIBLE, b));
	EQ(t_stats(a).visible, 0);
	EQ(t_stats(b).visible, 2);
	EQ(t_stats(a).bytes, 0);
	RC(spool_move(a, ia, SPOOL_VISIBLE, b), -ENOENT);
	cli_out(v, sizeof v, "HLEN '{%s:a}:x'", p);
	EQ(atoi(v), 0);                 /* the outbox is empty */
	t_lease(b, "two");
	t_lease(b, "one");              /* under a new id: b had ia */
	/* a refusal: the message comes back */
	t_config(b, "max_depth=2\n");
	i2 = t_push(a, "three");
	RC(spool_move(a, i2, SPOOL_VISIBLE, b), -EDQUOT);
	EQ(t_stats(a).visible, 1);
	EQ(t_stats(b).leased, 2);
	cli_out(v, sizeof v, "HLEN '{%s:a}:x'", p);
	EQ(atoi(v), 0);
	t_config(b, "max_depth=0\n");
	OK(spool_purge_states(b, SPOOL_LEASED, &moved));
	EQ(moved, 2);
	/* cut after step 1 (xout by hand): invisible, counted nowhere, until
	 * the tick replays it 30 s later */
	spool_id_format(i2, text);
	cli_out(gen, sizeof gen, "HGET '{%s:b}:q:b:s' gen", p);
	fcall(v, sizeof v, 0, "a", "xout", "a '' %s 1 b %s", text, gen);
	if (strcmp(v, "0") != 0)
		T_FAIL("xout: %s", v);
	EQ(t_stats(a).visible, 0);
	EQ(t_stats(b).visible, 0);
	RC(spool_move(a, i2, SPOOL_VISIBLE, b), -ENOENT);
	t_log_expect();
	t_advance(29000);
	spool_tick(db);
	EQ(t_stats(b).visible, 0);
	t_advance(2000);
	spool_tick(db);
	EQ(t_stats(b).visible, 1);
	EQ(t_stats(a).visible, 0);
	cli_out(v, sizeof v, "HLEN '{%s:a}:x'", p);
	EQ(atoi(v), 0);
	EQ(t_log_err_count(), 0);
	/* step 2 again (a replay after a lost reply): the id it got, once;
	 * the transfer is a's third ({P:a}:xn) */
	cli_out(xn, sizeof xn, "GET '{%s:a}:xn'", p);
	EQ(atoi(xn), 3);
	cli_out(v, sizeof v, "HGET '{%s:b}:in' a:%s:%s", p, xn, text);
	EQ(strcmp(v, text), 0);         /* b did not have i2: kept */
	fcall(v, sizeof v, 3, "b", "xin", "b %s a:%s %s 0 0 5 1 0 x", gen,
	      xn, text);
	EQ(strcmp(v, text), 0);
	EQ(t_stats(b).visible, 1);
	/* away, back and away again (in one millisecond): a new transfer
	 * each time, never taken for a replay */
	OK(spool_move(b, i2, SPOOL_VISIBLE, a));
	OK(spool_move(a, i2, SPOOL_VISIBLE, b));
	OK(spool_move(b, i2, SPOOL_VISIBLE, a));
	EQ(t_stats(a).visible, 1);
	EQ(t_stats(b).visible, 0);
	OK(spool_move(a, i2, SPOOL_VISIBLE, b));
	EQ(t_stats(b).visible, 1);
	/* move_all across families: through the outbox, in order */
	i3 = t_push(a, "four");
	t_push(a, "five");
	OK(spool_move_all(a, b, 1, &moved));
	EQ(moved, 1);
	OK(spool_move_all(a, b, 0, &moved));
	EQ(moved, 1);
	EQ(t_stats(a).visible, 0);
	EQ(t_stats(b).visible, 3);
	CHECK(i3 != 0);
	spool_queue_close(a);
	spool_queue_close(b);
	spool_close(db);
}

T_MAIN
