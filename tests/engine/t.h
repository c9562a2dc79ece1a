/*
 * t.h - a tiny ct-like harness for the engine's C unit tests.
 *
 * A test is a function declared with TEST(name) (or TEST_T(name, seconds)
 * for a longer time limit). main() runs every test in definition order,
 * each in its own forked child and its own fresh temp directory under
 * $TMPDIR (t_dir), so a crash,
 * a hang (SIGALRM) or a failed check fails only that test. A failed check
 * prints file:line, the expression and both values, then the tail of the
 * engine's log. The closing line is "N passed, M failed"; the exit status is
 * 0 when nothing failed, 1 otherwise. Exit 77 (skip) is never used here.
 *
 * Every test store uses a fake clock (t_now, Unix ms, which the test moves)
 * and manual timers, so no test sleeps. The engine's log is captured: a test
 * fails if the engine logs a warning or an error it did not announce with
 * t_log_expect() (STYLE: warnings and errors mean a real problem).
 *
 * The store: every test opens it through t_open() (or spool_open(t_store,
 * ...)). t_store is the --data value of a fresh store for the test, chosen
 * by SPOOL_TEST_STORE: unset or "rocksdb", a directory t_dir/store (not
 * yet created); a URL ("redis://host:port"), that URL with a path unique
 * to the test appended, so that the same contract tests run on every
 * store. A test file about one store defines T_STORE_ROCKSDB before
 * including this header and always gets a directory.
 *
 * Usage: prog [SUBSTRING...] runs only the tests whose names contain one of
 * the substrings. T_KEEP=1 keeps the temp directory of a failed test;
 * T_VERBOSE=1 echoes every log line.
 */
#ifndef T_H
#define T_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spool.h"
#include "spool_test.h"

#define T_UNUSED __attribute__((unused))

/* ------------------------------------------------------------ registry */

struct t_case {
	const char *name;
	void (*fn)(void);
	int line;
	unsigned timeout;       /* seconds */
};

#define T_MAX_CASES 256
static struct t_case t_cases[T_MAX_CASES];
static int t_ncases;

static T_UNUSED void t_register(const char *name, void (*fn)(void), int line,
				unsigned timeout)
{
	if (t_ncases == T_MAX_CASES) {
		fprintf(stderr, "t.h: too many tests\n");
		abort();
	}
	t_cases[t_ncases++] = (struct t_case){ name, fn, line, timeout };
}

#define TEST_T(name, secs)                                                   \
	static void test_##name(void);                                      \
	__attribute__((constructor)) static void t_reg_##name(void)         \
	{                                                                    \
		t_register(#name, test_##name, __LINE__, (secs));           \
	}                                                                    \
	static void test_##name(void)
#define TEST(name) TEST_T(name, 60)

/* The Redis store in the Cluster's mode: a Redis Cluster
 * (redis+cluster://), or SPOOL_REDIS_CLUSTER_MODE=1 on one primary (the
 * test seam of engine/redis/conn.c). */
static int t_cluster_mode(void) __attribute__((unused));
#define T_NA 77
/* A case that needs queues of several families together (fan-out or
 * dead-letter queues, or moves, across families): a Redis Cluster refuses
 * those (EINVAL, EXDEV: test_redis.c tests the refusals), so in the
 * Cluster's mode the case is not run, and says so ("n/a" and the count
 * at the end), never silently. */
#define T_ACROSS_FAMILIES()                                                  \
	do {                                                                 \
		if (t_cluster_mode())                                        \
			_exit(T_NA);                                         \
	} while (0)

/* main() is defined below, in this header; a test file may end with T_MAIN
 * to say so, which expands to nothing. */
#define T_MAIN

/* -------------------------------------------------------- per-test state */

static char t_dir[PATH_MAX];    /* this test's temp directory */
static char t_store[PATH_MAX + 512]; /* the store's --data value */
static const char *t_name = "?";
/* Optional context a test sets for a loop ("case 3"); printed on failure. */
static char t_ctx[256];

#define T_CLOCK_START INT64_C(1700000000000) /* 2023-11-14 */
static _Atomic int64_t t_now = T_CLOCK_START;

static T_UNUSED int64_t t_clock(void *arg)
{
	(void)arg;
	return atomic_load(&t_now);
}

/* Moves the fake clock by ms (may be negative). */
static T_UNUSED void t_advance(int64_t ms)
{
	atomic_fetch_add(&t_now, ms);
}

/* ---------------------------------------------------------------- log */

#define T_LOG_RING 32
static pthread_mutex_t t_log_mu = PTHREAD_MUTEX_INITIALIZER;
static char t_log_ring[T_LOG_RING][512];
static unsigned t_log_n;                /* lines seen, all levels */
static unsigned t_log_bad;              /* WARN and ERR lines */
static unsigned t_log_errs;             /* ERR lines */
static char t_log_first_bad[512];
static int t_log_allowed;

static const char *t_level_name(enum spool_log_level lv)
{
	switch (lv) {
	case SPOOL_LOG_ERR: return "ERR";
	case SPOOL_LOG_WARN: return "WARN";
	case SPOOL_LOG_INFO: return "INFO";
	case SPOOL_LOG_DEBUG: return "DEBUG";
	}
	return "?";
}

static T_UNUSED void t_log(void *arg, enum spool_log_level lv, const char *line)
{
	(void)arg;
	pthread_mutex_lock(&t_log_mu);
	snprintf(t_log_ring[t_log_n % T_LOG_RING], sizeof t_log_ring[0],
		 "%s %s", t_level_name(lv), line);
	t_log_n++;
	if (lv <= SPOOL_LOG_WARN) {
		if (!t_log_bad)
			snprintf(t_log_first_bad, sizeof t_log_first_bad,
				 "%s %s", t_level_name(lv), line);
		t_log_bad++;
		if (lv == SPOOL_LOG_ERR)
			t_log_errs++;
	}
	pthread_mutex_unlock(&t_log_mu);
	if (getenv("T_VERBOSE"))
		fprintf(stderr, "  log: %s %s\n", t_level_name(lv), line);
}

/* The test expects the engine to log warnings or errors from now on. */
static T_UNUSED void t_log_expect(void)
{
	t_log_allowed = 1;
}

static T_UNUSED unsigned t_log_err_count(void)
{
	unsigned n;

	pthread_mutex_lock(&t_log_mu);
	n = t_log_errs;
	pthread_mutex_unlock(&t_log_mu);
	return n;
}

static void t_log_dump(void)
{
	unsigned i, from = t_log_n > T_LOG_RING ? t_log_n - T_LOG_RING : 0;

	if (!t_log_n)
		return;
	fprintf(stderr, "  engine log (last %u of %u lines):\n",
		t_log_n - from, t_log_n);
	for (i = from; i < t_log_n; i++)
		fprintf(stderr, "    %s\n", t_log_ring[i % T_LOG_RING]);
}

/* ------------------------------------------------------------- checks */

static T_UNUSED __attribute__((noreturn, format(printf, 3, 4)))
void t_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s:%d: %s: ", file, line, t_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (t_ctx[0])
		fprintf(stderr, "  (while: %s)\n", t_ctx);
	t_log_dump();
	fflush(stderr);
	_exit(1);
}

#define T_FAIL(...) t_fail(__FILE__, __LINE__, __VA_ARGS__)

/* "-ENOENT" for -2, "0" for 0, the number otherwise. */
static T_UNUSED const char *t_errname(long long rc, char buf[32])
{
	const char *n = NULL;

	if (rc < 0 && rc > -4096)
		n = strerrorname_np((int)-rc);
	if (n)
		snprintf(buf, 32, "-%s", n);
	else
		snprintf(buf, 32, "%lld", rc);
	return buf;
}

#define CHECK(c)                                                             \
	do {                                                                 \
		if (!(c))                                                    \
			T_FAIL("CHECK(%s) failed", #c);                      \
	} while (0)

/* Signed comparison: CHECK_INT(a, <=, b). */
#define CHECK_INT(a, op, b)                                                  \
	do {                                                                 \
		long long t_a_ = (long long)(a), t_b_ = (long long)(b);      \
		if (!(t_a_ op t_b_))                                         \
			T_FAIL("%s %s %s: %lld vs %lld", #a, #op, #b, t_a_,  \
			       t_b_);                                        \
	} while (0)
#define EQ(a, b) CHECK_INT(a, ==, b)

/* Unsigned comparison. */
#define CHECK_U(a, op, b)                                                    \
	do {                                                                 \
		unsigned long long t_a_ = (unsigned long long)(a),           \
				   t_b_ = (unsigned long long)(b);           \
		if (!(t_a_ op t_b_))                                         \
			T_FAIL("%s %s %s: %llu vs %llu", #a, #op, #b, t_a_,  \
			       t_b_);                                        \
	} while (0)
#define EQU(a, b) CHECK_U(a, ==, b)

/* A return code: RC(spool_ack(q, id), -ENOENT). */
#define RC(expr, want)                                                       \
	do {                                                                 \
		long long t_r_ = (long long)(expr), t_w_ = (long long)(want);\
		char t_b1_[32], t_b2_[32];                                   \
		if (t_r_ != t_w_)                                            \
			T_FAIL("%s returned %s, want %s", #expr,             \
			       t_errname(t_r_, t_b1_),                       \
			       t_errname(t_w_, t_b2_));                      \
	} while (0)
#define OK(expr) RC(expr, 0)

/* A return code that may be any of two. */
#define RC2(expr, w1, w2)                                                    \
	do {                                                                 \
		long long t_r_ = (long long)(expr);                          \
		char t_b1_[32], t_b2_[32], t_b3_[32];                        \
		if (t_r_ != (w1) && t_r_ != (w2))                            \
			T_FAIL("%s returned %s, want %s or %s", #expr,       \
			       t_errname(t_r_, t_b1_),                       \
			       t_errname((w1), t_b2_),                       \
			       t_errname((w2), t_b3_));                      \
	} while (0)

#define CHECK_STR(a, b)                                                      \
	do {                                                                 \
		const char *t_a_ = (a), *t_b_ = (b);                         \
		if (strcmp(t_a_, t_b_))                                      \
			T_FAIL("%s == %s: \"%s\" vs \"%s\"", #a, #b, t_a_,   \
			       t_b_);                                        \
	} while (0)

#define CHECK_MEM(a, alen, b, blen)                                          \
	do {                                                                 \
		size_t t_al_ = (alen), t_bl_ = (blen);                       \
		if (t_al_ != t_bl_ || memcmp((a), (b), t_al_))               \
			T_FAIL("%s[%zu] == %s[%zu]: \"%.*s\" vs \"%.*s\"",   \
			       #a, t_al_, #b, t_bl_, (int)t_al_,             \
			       (const char *)(a), (int)t_bl_,                \
			       (const char *)(b));                           \
	} while (0)

/* ------------------------------------------------------------- wake */

#define T_WAKE_MAX 16
static pthread_mutex_t t_wake_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char name[SPOOL_NAME_MAX + 1];
	unsigned n;
} t_wake_tab[T_WAKE_MAX];

/* Called by t_wake() for every wake, after it is counted (tests set it). */
static void (*t_wake_hook)(spool_queue *q);

static T_UNUSED void t_wake(void *arg, spool_queue *q)
{
	const char *name = spool_queue_name(q);
	int i;

	(void)arg;
	pthread_mutex_lock(&t_wake_mu);
	for (i = 0; i < T_WAKE_MAX; i++) {
		if (!t_wake_tab[i].name[0])
			snprintf(t_wake_tab[i].name, sizeof t_wake_tab[i].name,
				 "%s", name);
		if (!strcmp(t_wake_tab[i].name, name)) {
			t_wake_tab[i].n++;
			break;
		}
	}
	pthread_mutex_unlock(&t_wake_mu);
	if (t_wake_hook)
		t_wake_hook(q);
}

/* Forgets every wake counted so far. */
static T_UNUSED void t_wake_reset(void)
{
	pthread_mutex_lock(&t_wake_mu);
	memset(t_wake_tab, 0, sizeof t_wake_tab);
	pthread_mutex_unlock(&t_wake_mu);
}

/* Number of wakes of queue name so far. */
static T_UNUSED unsigned t_wakes(const char *name)
{
	unsigned n = 0;
	int i;

	pthread_mutex_lock(&t_wake_mu);
	for (i = 0; i < T_WAKE_MAX; i++)
		if (!strcmp(t_wake_tab[i].name, name))
			n = t_wake_tab[i].n;
	pthread_mutex_unlock(&t_wake_mu);
	return n;
}

/* ------------------------------------------------------ store helpers */

/* The options every test store uses: fake clock, manual timers, captured
 * log, counted wakes. */
static T_UNUSED void t_options(struct spool_options *o)
{
	spool_options_init(o);
	o->clock = t_clock;
	o->log = t_log;
	o->log_level = SPOOL_LOG_INFO;
	o->wake = t_wake;
	o->manual_timers = 1;
}

static T_UNUSED spool_db *t_open(void)
{
	struct spool_options o;
	spool_db *db = NULL;

	t_options(&o);
	OK(spool_open(t_store, &o, &db));
	CHECK(db != NULL);
	return db;
}

static T_UNUSED spool_queue *t_q(spool_db *db, const char *name)
{
	spool_queue *q = NULL;

	OK(spool_queue_open(db, name, &q));
	CHECK(q != NULL);
	return q;
}

/* Creates queue name (uid/gid 0, mode 0755) and opens it. */
static T_UNUSED spool_queue *t_mkq(spool_db *db, const char *name)
{
	struct spool_queue_attr a = { .uid = 0, .gid = 0, .mode = 0755 };

	OK(spool_queue_create(db, name, &a));
	return t_q(db, name);
}

#define t_config(q, text) t_config_at(__FILE__, __LINE__, (q), (text))
static T_UNUSED void t_config_at(const char *file, int line, spool_queue *q,
				 const char *text)
{
	int rc = spool_config_apply(q, text, strlen(text));
	char b[32];

	if (rc)
		t_fail(file, line, "spool_config_apply(\"%s\") returned %s, "
		       "want 0", text, t_errname(rc, b));
}

/* Pushes body (a string); returns the id. */
#define t_push_full(q, body, has_prio, prio, has_delay, delay)               \
	t_push_at(__FILE__, __LINE__, (q), (body), (has_prio), (prio),       \
		  (has_delay), (delay))
#define t_push(q, body) t_push_full((q), (body), 0, 0, 0, 0)
#define t_push_prio(q, body, prio) t_push_full((q), (body), 1, (prio), 0, 0)
#define t_push_delay(q, body, delay)                                         \
	t_push_full((q), (body), 0, 0, 1, (delay))
static T_UNUSED uint64_t t_push_at(const char *file, int line, spool_queue *q,
				   const char *body, int has_prio,
				   int32_t prio, int has_delay, int64_t delay)
{
	struct spool_push p = { .body = body, .len = strlen(body),
				.has_priority = has_prio, .priority = prio,
				.has_delay = has_delay, .delay_ms = delay };
	uint64_t id = 0;
	int rc = spool_push(q, &p, &id);
	char b[32];

	if (rc)
		t_fail(file, line, "spool_push(\"%s\") returned %s, want 0",
		       body, t_errname(rc, b));
	if (!id)
		t_fail(file, line, "spool_push(\"%s\") gave id 0", body);
	return id;
}

/* Leases the next message, checks its body is want (if not NULL), returns
 * its id. */
#define t_lease(q, want) t_lease_at(__FILE__, __LINE__, (q), (want), NULL)
static T_UNUSED uint64_t t_lease_at(const char *file, int line, spool_queue *q,
				    const char *want,
				    struct spool_msg_info *out)
{
	char buf[4096];
	struct spool_msg_info info;
	size_t n = 0;
	int rc = spool_lease_next(q, buf, sizeof buf, &n, &info);
	char b[32];

	if (rc)
		t_fail(file, line, "spool_lease_next returned %s, want 0",
		       t_errname(rc, b));
	if (want && (n != strlen(want) || memcmp(buf, want, n)))
		t_fail(file, line, "leased body \"%.*s\", want \"%s\"",
		       (int)n, buf, want);
	if (info.state != SPOOL_LEASED)
		t_fail(file, line, "leased message state %d, want LEASED",
		       info.state);
	if (out)
		*out = info;
	return info.id;
}

static T_UNUSED struct spool_stats t_stats(spool_queue *q)
{
	struct spool_stats s;

	memset(&s, 0xa5, sizeof s);
	OK(spool_stats_get(q, &s));
	return s;
}

static T_UNUSED struct spool_msg_info t_stat(spool_queue *q, uint64_t id)
{
	struct spool_msg_info i;

	memset(&i, 0, sizeof i);
	OK(spool_msg_stat(q, id, &i));
	return i;
}

/* State of message id, or 0 if it is not in q. */
static T_UNUSED int t_state(spool_queue *q, uint64_t id)
{
	struct spool_msg_info i;

	if (spool_msg_stat(q, id, &i))
		return 0;
	return (int)i.state;
}

/* Every id in one state of q, in listing order, into ids[max]; the count. */
static T_UNUSED size_t t_list_all(spool_queue *q, enum spool_state st,
				  uint64_t *ids, size_t max)
{
	struct spool_cursor cur = { 0 };
	size_t n = 0;
	ssize_t r;

	while ((r = spool_list(q, st, &cur, ids + n, max - n)) > 0) {
		n += (size_t)r;
		if (n == max)
			break;
	}
	CHECK_INT(r, >=, 0);
	return n;
}

/* Counters in one line: visible, delayed, leased, bytes, pushed, acked,
 * expired, deleted. */
#define CHECK_STATS(q, vis, del, lea, byt, pus, ack, exp, dlt)               \
	do {                                                                 \
		struct spool_stats t_s_ = t_stats(q);                        \
		EQU(t_s_.visible, vis);                                      \
		EQU(t_s_.delayed, del);                                      \
		EQU(t_s_.leased, lea);                                       \
		EQU(t_s_.bytes, byt);                                        \
		EQU(t_s_.pushed_total, pus);                                 \
		EQU(t_s_.acked_total, ack);                                  \
		EQU(t_s_.expired_total, exp);                                \
		EQU(t_s_.deleted_total, dlt);                                \
	} while (0)

/* ------------------------------------------------------------ snapshot */

struct t_buf {
	char *p;
	size_t n, cap;
};

static T_UNUSED __attribute__((format(printf, 2, 3)))
void t_bprintf(struct t_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		CHECK(n >= 0);
		if (b->p && b->n + (size_t)n < b->cap)
			break;
		b->cap = (b->cap + (size_t)n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		CHECK(b->p != NULL);
	}
	b->n += (size_t)n;
}

static void t_bescape(struct t_buf *b, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			t_bprintf(b, "%c", c);
		else
			t_bprintf(b, "\\x%02x", c);
	}
}

static void t_snap_msg(struct t_buf *b, spool_queue *q, uint64_t id)
{
	struct spool_msg_info i;
	char text[SPOOL_ID_LEN + 1], name[SPOOL_MSG_NAME_MAX + 1];
	static char body[1 << 20], list[SPOOL_ATTRS_MAX], val[SPOOL_ATTRS_MAX];
	ssize_t n, ln, vn;
	char *a;
	int rc;

	spool_id_format(id, text);
	rc = spool_msg_stat(q, id, &i);
	t_bprintf(b, "  msg %s stat=%d", text, rc);
	if (!rc)
		t_bprintf(b, " id=%" PRIu64 " state=%d prio=%d recv=%u size=%"
			  PRIu64 " sent=%" PRId64 " due=%" PRId64
			  " first=%" PRId64, i.id, i.state, i.priority,
			  i.receives, i.size, i.sent_ms, i.due_ms,
			  i.first_received_ms);
	n = spool_msg_read(q, id, 0, body, sizeof body);
	t_bprintf(b, " read=%zd body=\"", n);
	if (n > 0)
		t_bescape(b, body, (size_t)(n > 64 ? 64 : n));
	rc = spool_msg_name(q, id, name);
	t_bprintf(b, "\" name=%d:\"%s\"", rc, rc ? "" : name);
	ln = spool_msg_listattr(q, id, list, sizeof list);
	t_bprintf(b, " attrs=%zd", ln);
	for (a = list; ln > 0 && a < list + ln; a += strlen(a) + 1) {
		vn = spool_msg_getattr(q, id, a, val, sizeof val);
		t_bprintf(b, " %s=%zd:\"", a, vn);
		if (vn > 0)
			t_bescape(b, val, (size_t)vn);
		t_bprintf(b, "\"");
	}
	t_bprintf(b, "\n");
}

/*
 * Everything a client can see of a store, as text (malloc'd, free() it):
 * queues in order with attributes, settings, counters, every listing and
 * every message's info, body, name and attributes. Two snapshots compare
 * equal when nothing observable changed.
 */
static T_UNUSED char *t_snapshot(spool_db *db)
{
	static const enum spool_state states[] = {
		SPOOL_VISIBLE, SPOOL_DELAYED, SPOOL_LEASED, SPOOL_CORRUPT };
	struct t_buf b = { 0 };
	char name[SPOOL_NAME_MAX + 1] = "", cfg[8192];
	struct spool_queue_attr a;
	struct spool_stats s;
	static uint64_t ids[100000];
	spool_queue *q;
	size_t k, j, n;

	t_bprintf(&b, "queues=%zu\n", spool_queue_count(db));
	while (spool_queue_next(db, name, name) == 0) {
		q = t_q(db, name);
		OK(spool_queue_getattr(q, &a));
		t_bprintf(&b, "queue %s uid=%u gid=%u mode=%o ctime=%" PRId64
			  "\n", name, a.uid, a.gid, a.mode, a.ctime_ms);
		CHECK_INT(spool_config_format(q, cfg, sizeof cfg), <,
			  (int)sizeof cfg);
		t_bprintf(&b, "%s", cfg);
		s = t_stats(q);
		t_bprintf(&b, "stats vis=%" PRIu64 " del=%" PRIu64 " lea=%"
			  PRIu64 " cor=%" PRIu64 " bytes=%" PRIu64 " pushed=%"
			  PRIu64 " acked=%" PRIu64 " expired=%" PRIu64
			  " dead=%" PRIu64 " deduped=%" PRIu64 " deleted=%"
			  PRIu64 " age=%" PRId64 "\n", s.visible, s.delayed,
			  s.leased, s.corrupt, s.bytes, s.pushed_total,
			  s.acked_total, s.expired_total, s.dead_total,
			  s.deduped_total, s.deleted_total,
			  s.oldest_visible_age_ms);
		for (k = 0; k < 4; k++) {
			n = t_list_all(q, states[k], ids, 100000);
			t_bprintf(&b, " state %d: %zu\n", states[k], n);
			for (j = 0; j < n; j++)
				t_snap_msg(&b, q, ids[j]);
		}
		spool_queue_close(q);
	}
	return b.p;
}

/* Fails, showing the first differing line, if two snapshots differ. */
#define CHECK_SNAP(a, b) t_check_snap(__FILE__, __LINE__, #a, #b, (a), (b))
static T_UNUSED void t_check_snap(const char *file, int line, const char *an,
				  const char *bn, const char *a, const char *b)
{
	const char *la = a, *lb = b;

	if (!strcmp(a, b))
		return;
	while (*la && *lb) {
		size_t na = strcspn(la, "\n"), nb = strcspn(lb, "\n");

		if (na != nb || memcmp(la, lb, na))
			t_fail(file, line, "snapshots %s and %s differ:\n"
			       "  %.*s\n  %.*s", an, bn, (int)na, la, (int)nb,
			       lb);
		la += na + (la[na] != 0);
		lb += nb + (lb[nb] != 0);
	}
	t_fail(file, line, "snapshots %s and %s differ in length:\n  %s\n  %s",
	       an, bn, *la ? la : "(end)", *lb ? lb : "(end)");
}

/* Compares a snapshot taken now with before. */
#define CHECK_SNAP_DB(before, db)                                            \
	do {                                                                 \
		char *t_now_snap_ = t_snapshot(db);                          \
		t_check_snap(__FILE__, __LINE__, #before, "now",             \
			     (before), t_now_snap_);                         \
		free(t_now_snap_);                                           \
	} while (0)

/* Closes db and opens its store again: what it holds must not change.
 * Returns the new handle. */
static T_UNUSED spool_db *t_reopen_same(spool_db *db)
{
	char *before = t_snapshot(db);

	spool_close(db);
	db = t_open();
	CHECK_SNAP_DB(before, db);
	free(before);
	return db;
}

/* -------------------------------------------------------------- runner */

static int t_rm_one(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

static void t_rmrf(const char *dir)
{
	nftw(dir, t_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int t_case_cmp(const void *a, const void *b)
{
	return ((const struct t_case *)a)->line -
	       ((const struct t_case *)b)->line;
}

static int t_selected(const struct t_case *c, int argc, char **argv)
{
	int i;

	if (argc < 2)
		return 1;
	for (i = 1; i < argc; i++)
		if (strstr(c->name, argv[i]))
			return 1;
	return 0;
}

static double t_secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void t_child(const struct t_case *c)
{
	t_name = c->name;
	alarm(c->timeout * (getenv("T_SLOW") ? 10 : 1));
	c->fn();
	if (t_log_bad && !t_log_allowed)
		T_FAIL("the engine logged %u unexpected warning/error line(s), "
		       "first: %s", t_log_bad, t_log_first_bad);
	fflush(stdout);
	fflush(stderr);
	exit(0);
}

/* Sets t_store for this test (see the top of this file); 0 if
 * SPOOL_TEST_STORE names no store kind. */
static int t_store_init(void)
{
	const char *kind = getenv("SPOOL_TEST_STORE");

#ifdef T_STORE_ROCKSDB
	kind = NULL;
#endif
	if (!kind || !*kind || strcmp(kind, "rocksdb") == 0) {
		snprintf(t_store, sizeof t_store, "%s/store", t_dir);
		return 1;
	}
	if (!strstr(kind, "://")) {
		fprintf(stderr, "FAIL: SPOOL_TEST_STORE=%s: neither \"rocksdb\" "
			"nor a URL\n", kind);
		return 0;
	}
	snprintf(t_store, sizeof t_store, "%s/%s", kind,
		 strrchr(t_dir, '/') + 1);
	return 1;
}

static int t_cluster_mode(void)
{
	return strncmp(t_store, "redis+cluster://", 16) == 0 ||
	       (getenv("SPOOL_REDIS_CLUSTER_MODE") &&
		strncmp(t_store, "redis", 5) == 0);
}

/* Runs one case in a forked child; 1 if it passed, T_NA if it does not
 * run in this mode. */
static int t_run(const struct t_case *c)
{
	const char *tmp = getenv("TMPDIR");
	double t0 = t_secs();
	int status, ok;
	pid_t pid;

	snprintf(t_dir, sizeof t_dir, "%s/spool-ut-%s-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp", c->name);
	if (!mkdtemp(t_dir)) {
		fprintf(stderr, "FAIL %s: mkdtemp %s: %s\n", c->name, t_dir,
			strerror(errno));
		return 0;
	}
	if (!t_store_init())
		return 0;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "FAIL %s: fork: %s\n", c->name,
			strerror(errno));
		return 0;
	}
	if (pid == 0)
		t_child(c);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == T_NA) {
		printf("n/a  %-40s queues of several families: not run in "
		       "the Redis Cluster's mode\n", c->name);
		t_rmrf(t_dir);
		return T_NA;
	}
	if (ok)
		printf("ok   %-40s %.2fs\n", c->name, t_secs() - t0);
	else if (WIFSIGNALED(status))
		printf("FAIL %-40s killed by signal %d (%s)%s\n", c->name,
		       WTERMSIG(status), strsignal(WTERMSIG(status)),
		       WTERMSIG(status) == SIGALRM ? ": timed out, a hang?"
						   : "");
	else
		printf("FAIL %-40s exit %d\n", c->name, WEXITSTATUS(status));
	fflush(stdout);
	if (ok || !getenv("T_KEEP"))
		t_rmrf(t_dir);
	else
		printf("     kept %s\n", t_dir);
	return ok;
}

int main(int argc, char **argv)
{
	int i, passed = 0, failed = 0, na = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	qsort(t_cases, (size_t)t_ncases, sizeof t_cases[0], t_case_cmp);
	for (i = 0; i < t_ncases; i++) {
		if (!t_selected(&t_cases[i], argc, argv))
			continue;
		int rc = t_run(&t_cases[i]);

		if (rc == T_NA)
			na++;
		else if (rc)
			passed++;
		else
			failed++;
	}
	if (na)
		printf("%d passed, %d failed, %d not run in the Redis "
		       "Cluster's mode (queues of several families)\n",
		       passed, failed, na);
	else
		printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

#endif /* T_H */
