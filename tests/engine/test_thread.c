/*
 * test_thread.c - concurrency: producers and consumers on one queue
 * (every message delivered exactly once, one producer's messages in order,
 * counters adding up), leases running out under a ticking fake clock while
 * consumers work, and the real clock with the engine's own timer thread.
 */
#include <sched.h>

#include "t.h"

enum { PRODUCERS = 4, CONSUMERS = 4 };

struct run {
	spool_queue *q;
	int per_producer;
	_Atomic uint64_t acked;          /* successful acks */
	uint64_t total;
	_Atomic unsigned char *seen;     /* [producer * per + seq] acks */
	int drop_every;                  /* 0: ack every lease */
	_Atomic int failed;
	_Atomic int stop;
	char why[256];
	pthread_mutex_t why_mu;
};

static void run_fail(struct run *r, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&r->why_mu);
	if (!r->failed) {
		va_start(ap, fmt);
		vsnprintf(r->why, sizeof r->why, fmt, ap);
		va_end(ap);
		r->failed = 1;
	}
	pthread_mutex_unlock(&r->why_mu);
}

struct producer {
	struct run *r;
	int n;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	struct run *r = p->r;
	char body[32];
	int i, rc;

	for (i = 0; i < r->per_producer && !r->failed; i++) {
		struct spool_push m = { .body = body };

		m.len = (size_t)snprintf(body, sizeof body, "%d:%d", p->n, i);
		rc = spool_push(r->q, &m, NULL);
		if (rc)
			run_fail(r, "producer %d push %d: %d", p->n, i, rc);
	}
	return NULL;
}

static void *consume(void *arg)
{
	struct run *r = arg;
	int last[PRODUCERS];
	unsigned leases = 0;
	int i;

	for (i = 0; i < PRODUCERS; i++)
		last[i] = -1;
	while (!r->failed && r->acked < r->total) {
		struct spool_msg_info info;
		char body[32];
		size_t n;
		int pn, seq, rc;

		rc = spool_lease_next(r->q, body, sizeof body - 1, &n, &info);
		if (rc == -EAGAIN) {
			sched_yield();
			continue;
		}
		if (rc) {
			run_fail(r, "lease_next: %d", rc);
			break;
		}
		body[n] = '\0';
		if (sscanf(body, "%d:%d", &pn, &seq) != 2 || pn < 0 ||
		    pn >= PRODUCERS || seq < 0 || seq >= r->per_producer) {
			run_fail(r, "bad body \"%s\"", body);
			break;
		}
		/* without redeliveries, one producer's messages come to one
		 * consumer in push order */
		if (!r->drop_every && seq <= last[pn])
			run_fail(r, "producer %d: %d after %d", pn, seq,
				 last[pn]);
		last[pn] = seq;
		if (r->drop_every && ++leases % (unsigned)r->drop_every == 0)
			continue;       /* let this lease run out */
		rc = spool_ack(r->q, info.id);
		if (rc == -ENOENT && r->drop_every)
			continue;       /* acked by another after a redelivery */
		if (rc) {
			run_fail(r, "ack %s: %d", body, rc);
			break;
		}
		if (++r->seen[pn * r->per_producer + seq] != 1)
			run_fail(r, "\"%s\" acked twice", body);
		r->acked++;
	}
	return NULL;
}

static void run_check_seen(struct run *r)
{
	uint64_t i;

	for (i = 0; i < r->total; i++)
		if (r->seen[i] != 1)
			T_FAIL("message %d:%d acked %u times",
			       (int)(i / (uint64_t)r->per_producer),
			       (int)(i % (uint64_t)r->per_producer),
			       r->seen[i]);
}

static void run_init(struct run *r, spool_queue *q, int per)
{
	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->why_mu, NULL);
	r->q = q;
	r->per_producer = per;
	r->total = (uint64_t)per * PRODUCERS;
	r->seen = calloc(r->total, 1);
	CHECK(r->seen != NULL);
}

/* 4 producers and 4 consumers at once; each message acked exactly once. */
static void producers_and_consumers(enum spool_sync sync, int per)
{
	struct spool_options o;
	struct producer pr[PRODUCERS];
	pthread_t pt[PRODUCERS], ct[CONSUMERS];
	spool_db *db = NULL;
	spool_queue *q;
	struct run r;
	int i;

	t_options(&o);
	o.sync = sync;
	o.wake = NULL;
	OK(spool_open(t_store, &o, &db));
	q = t_mkq(db, "q");
	run_init(&r, q, per);
	for (i = 0; i < CONSUMERS; i++)
		EQ(pthread_create(&ct[i], NULL, consume, &r), 0);
	for (i = 0; i < PRODUCERS; i++) {
		pr[i] = (struct producer){ &r, i };
		EQ(pthread_create(&pt[i], NULL, produce, &pr[i]), 0);
	}
	for (i = 0; i < PRODUCERS; i++)
		pthread_join(pt[i], NULL);
	for (i = 0; i < CONSUMERS; i++)
		pthread_join(ct[i], NULL);
	if (r.failed)
		T_FAIL("%s", r.why);
	EQU(r.acked, r.total);
	run_check_seen(&r);
	CHECK_STATS(q, 0, 0, 0, 0, r.total, r.total, 0, 0);
	free((void *)r.seen);
	spool_queue_close(q);
	spool_close(db);
	/* the counters persist */
	db = t_open();
	q = t_q(db, "q");
	CHECK_STATS(q, 0, 0, 0, 0, r.total, r.total, 0, 0);
	spool_queue_close(q);
	spool_close(db);
}

TEST_T(concurrent_20000_sync_none, 600)
{
	producers_and_consumers(SPOOL_SYNC_NONE, 5000);
}

/* The same through fsync (writers sharing one fsync). */
TEST_T(concurrent_2000_sync_always, 600)
{
	producers_and_consumers(SPOOL_SYNC_ALWAYS, 500);
}

/* ----------------------------------- leases running out while consumers work */

struct ticker {
	spool_db *db;
	struct run *r;
};

static void *tick_loop(void *arg)
{
	struct ticker *t = arg;
	struct timespec ts = { 0, 200 * 1000 };

	while (!t->r->stop) {
		t_advance(50);
		spool_tick(t->db);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/*
 * Consumers let every 7th lease run out (visibility_timeout 1 s of fake
 * time; a ticker thread moves the clock 50 ms at a time and runs the
 * timers). Every message is still acked exactly once, nothing is left, and
 * the counters add up.
 */
TEST_T(concurrent_with_expiring_leases, 600)
{
	struct spool_options o;
	pthread_t ct[CONSUMERS], tt;
	struct ticker tk;
	struct spool_push *p;
	spool_db *db = NULL;
	spool_queue *q;
	struct run r;
	char (*bodies)[16];
	int i, j, per = 1000;

	t_options(&o);
	o.sync = SPOOL_SYNC_NONE;
	o.wake = NULL;
	OK(spool_open(t_store, &o, &db));
	q = t_mkq(db, "q");
	t_config(q, "visibility_timeout=1");
	run_init(&r, q, per);
	r.drop_every = 7;
	p = calloc((size_t)per, sizeof *p);
	bodies = calloc((size_t)per, sizeof *bodies);
	CHECK(p && bodies);
	for (i = 0; i < PRODUCERS; i++) {
		for (j = 0; j < per; j++) {
			p[j].body = bodies[j];
			p[j].len = (size_t)snprintf(bodies[j], 16, "%d:%d", i,
						    j);
		}
		OK(spool_push_batch(q, p, (size_t)per, NULL));
	}
	tk = (struct ticker){ db, &r };
	EQ(pthread_create(&tt, NULL, tick_loop, &tk), 0);
	for (i = 0; i < CONSUMERS; i++)
		EQ(pthread_create(&ct[i], NULL, consume, &r), 0);
	for (i = 0; i < CONSUMERS; i++)
		pthread_join(ct[i], NULL);
	r.stop = 1;
	pthread_join(tt, NULL);
	if (r.failed)
		T_FAIL("%s", r.why);
	EQU(r.acked, r.total);
	run_check_seen(&r);
	{
		struct spool_stats s = t_stats(q);

		EQU(s.visible, 0);
		EQU(s.delayed, 0);
		EQU(s.leased, 0);
		EQU(s.bytes, 0);
		EQU(s.pushed_total, r.total);
		EQU(s.acked_total, r.total);
		/* about one lease in seven ran out */
		CHECK_U(s.expired_total, >=, r.total / 8);
	}
	free(p);
	free(bodies);
	free((void *)r.seen);
	spool_queue_close(q);
	spool_close(db);
}

/* ------------------------------------------------- the real clock and timer */

static pthread_mutex_t wk_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wk_cond = PTHREAD_COND_INITIALIZER;
static unsigned wk_count;

static void real_wake(void *arg, spool_queue *q)
{
	(void)arg;
	(void)q;
	pthread_mutex_lock(&wk_mu);
	wk_count++;
	pthread_cond_broadcast(&wk_cond);
	pthread_mutex_unlock(&wk_mu);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static spool_db *open_real(void)
{
	struct spool_options o;
	spool_db *db = NULL;

	spool_options_init(&o);
	o.log = t_log;
	o.wake = real_wake;
	o.sync = SPOOL_SYNC_NONE;
	OK(spool_open(t_store, &o, &db));
	return db;
}

/* Waits (bounded) until the queue has want visible messages; the time it
 * took, seconds, or -1 on a timeout. */
static double wait_visible(spool_queue *q, uint64_t want, double limit)
{
	double t0 = now_s();
	struct timespec ts = { 0, 5 * 1000 * 1000 };

	while (now_s() - t0 < limit) {
		if (t_stats(q).visible == want)
			return now_s() - t0;
		nanosleep(&ts, NULL);
	}
	return -1;
}

struct leaser {
	spool_queue *q;
	int got;
	int err;
	uint64_t ids[256];
};

static void *lease_all(void *arg)
{
	struct leaser *l = arg;
	struct spool_msg_info info;
	char body[16];
	size_t n;
	int rc;

	while ((rc = spool_lease_next(l->q, body, sizeof body, &n, &info)) ==
	       0 && l->got < 256)
		l->ids[l->got++] = info.id;
	if (rc != -EAGAIN)
		l->err = rc;
	return NULL;
}

/*
 * The engine's timer thread, the real clock: 4 threads lease 40 messages
 * (visibility_timeout 0.2 s) and ack none; they come back on their own,
 * not before 0.2 s and within a bounded wait, with readers woken.
 */
TEST_T(real_clock_leases_run_out, 60)
{
	spool_db *db = open_real();
	spool_queue *q = t_mkq(db, "q");
	static struct leaser ls[4];
	static uint64_t all[1024];
	pthread_t th[4];
	struct spool_msg_info info;
	double t0, waited, lease_phase;
	unsigned wakes;
	int i, j, got = 0, distinct = 0;

	t_config(q, "visibility_timeout=0.2");
	for (i = 0; i < 40; i++)
		t_push(q, "m");
	pthread_mutex_lock(&wk_mu);
	wakes = wk_count;
	pthread_mutex_unlock(&wk_mu);
	t0 = now_s();
	for (i = 0; i < 4; i++) {
		memset(&ls[i], 0, sizeof ls[i]);
		ls[i].q = q;
		EQ(pthread_create(&th[i], NULL, lease_all, &ls[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		EQ(ls[i].err, 0);
		for (j = 0; j < ls[i].got; j++)
			all[got++] = ls[i].ids[j];
	}
	lease_phase = now_s() - t0;
	/* every message leased; one leased twice only if the leasing took
	 * longer than a lease (it may, under valgrind) */
	for (i = 0; i < got; i++) {
		for (j = 0; j < i && all[j] != all[i]; j++)
			;
		distinct += j == i;
	}
	EQ(distinct, 40);
	if (got > 40 && lease_phase < 0.19)
		T_FAIL("%d leases of 40 messages within %.3f s, before any "
		       "lease of 0.2 s could run out", got, lease_phase);
	waited = wait_visible(q, 40, 5.0);
	if (waited < 0)
		T_FAIL("leases did not run out within 5 s: %" PRIu64
		       " visible", t_stats(q).visible);
	CHECK(now_s() - t0 >= 0.19);
	EQU(t_stats(q).expired_total, got);
	pthread_mutex_lock(&wk_mu);
	CHECK_U(wk_count, >, wakes);
	pthread_mutex_unlock(&wk_mu);
	t_lease_at(__FILE__, __LINE__, q, "m", &info);
	CHECK_U(info.receives, >=, 2);
	spool_queue_close(q);
	spool_close(db);
}

/* A delayed push with the real clock: a reader waiting on the wake hook
 * gets it once the delay is over. */
TEST_T(real_clock_delay_wakes_reader, 60)
{
	spool_db *db = open_real();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info info;
	struct timespec dl;
	double t0, took;
	char body[16];
	size_t n;
	int rc;

	t0 = now_s();
	t_push_delay(q, "later", 150);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	pthread_mutex_lock(&wk_mu);
	while ((rc = spool_lease_next(q, body, sizeof body, &n, &info)) ==
	       -EAGAIN) {
		if (pthread_cond_timedwait(&wk_cond, &wk_mu, &dl) ==
		    ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&wk_mu);
	OK(rc);
	took = now_s() - t0;
	CHECK_MEM(body, n, "later", 5);
	if (took < 0.14 || took > 3.0)
		T_FAIL("delayed 150 ms message leased after %.3f s", took);
	spool_queue_close(q);
	spool_close(db);
}

/* Closing with timers pending stops the timer thread promptly. */
TEST_T(real_clock_close_with_pending_timers, 30)
{
	spool_db *db = open_real();
	spool_queue *q = t_mkq(db, "q");
	double t0;

	t_push_delay(q, "far", 3600 * 1000);
	t_push(q, "m");
	t_lease(q, "m");
	spool_queue_close(q);
	t0 = now_s();
	spool_close(db);
	CHECK(now_s() - t0 < 2.0);
	/* and everything is still there */
	db = open_real();
	q = t_q(db, "q");
	EQU(t_stats(q).delayed, 1);
	EQU(t_stats(q).leased, 1);
	spool_queue_close(q);
	spool_close(db);
}

/* Queues created and deleted while others push and lease: no crash, no
 * lost message in the queues that stay. */
struct churn {
	spool_db *db;
	int id;
	_Atomic int *stop;
	int err;
};

static void *churn_queues(void *arg)
{
	struct churn *c = arg;
	struct spool_queue_attr a = { 0, 0, 0755, 0 };
	char name[32];
	int i = 0, rc;

	while (!*c->stop) {
		snprintf(name, sizeof name, "tmp-%d-%d", c->id, i++ % 5);
		rc = spool_queue_create(c->db, name, &a);
		if (rc && rc != -EEXIST) {
			c->err = rc;
			break;
		}
		rc = spool_queue_delete(c->db, name);
		if (rc && rc != -ENOENT) {
			c->err = rc;
			break;
		}
	}
	return NULL;
}

TEST_T(concurrent_queue_churn, 300)
{
	struct spool_options o;
	spool_db *db = NULL;
	spool_queue *q;
	struct churn ch[2];
	pthread_t ct[2], pt[PRODUCERS], lt[CONSUMERS];
	struct producer pr[PRODUCERS];
	_Atomic int stop = 0;
	struct run r;
	int i;

	t_options(&o);
	o.sync = SPOOL_SYNC_NONE;
	o.wake = NULL;
	OK(spool_open(t_store, &o, &db));
	q = t_mkq(db, "q");
	run_init(&r, q, 500);
	for (i = 0; i < 2; i++) {
		ch[i] = (struct churn){ db, i, &stop, 0 };
		EQ(pthread_create(&ct[i], NULL, churn_queues, &ch[i]), 0);
	}
	for (i = 0; i < CONSUMERS; i++)
		EQ(pthread_create(&lt[i], NULL, consume, &r), 0);
	for (i = 0; i < PRODUCERS; i++) {
		pr[i] = (struct producer){ &r, i };
		EQ(pthread_create(&pt[i], NULL, produce, &pr[i]), 0);
	}
	for (i = 0; i < PRODUCERS; i++)
		pthread_join(pt[i], NULL);
	for (i = 0; i < CONSUMERS; i++)
		pthread_join(lt[i], NULL);
	stop = 1;
	for (i = 0; i < 2; i++) {
		pthread_join(ct[i], NULL);
		EQ(ch[i].err, 0);
	}
	if (r.failed)
		T_FAIL("%s", r.why);
	run_check_seen(&r);
	CHECK_STATS(q, 0, 0, 0, 0, r.total, r.total, 0, 0);
	EQU(spool_queue_count(db), 1);
	free((void *)r.seen);
	spool_queue_close(q);
	spool_close(db);
}
