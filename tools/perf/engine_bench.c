/*
 * engine_bench.c - the engine's push and lease+ack rates in-process, side
 * by side with a raw RocksDB put loop of the same value size in the same
 * run, reported as ratios (medians of several rounds). Also checks the
 * tombstone trap: the lease rate after many push/ack cycles against that of
 * a fresh queue.
 *
 * With --restart N it measures a reopen instead: it pushes N messages into
 * one queue, closes the store, then opens it again ROUNDS times, each in a
 * fresh process (so the pushes' heap does not count), and reports the open's
 * wall time and the growth of VmRSS across spool_open per queued message.
 *
 *   engine-bench [-n MESSAGES] [-r ROUNDS] [-s BYTES] [--sync always|none]
 *                [-t THREADS] [--restart N] [DIR]
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "spool.h"

struct cfg {
	long n;
	int rounds;
	size_t size;
	int sync;       /* 1 = always */
	int threads;
	long restart;   /* --restart N: measure a reopen of N messages */
	const char *dir;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void rm_rf(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "engine-bench: could not remove %s\n", dir);
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "engine-bench: %s: %s\n", what, strerror(-rc));
	exit(1);
}

/* Raw RocksDB: n puts of size-byte values with 8-byte keys, one thread. */
static double raw_puts(const struct cfg *c, const char *dir)
{
	rocksdb_options_t *o = rocksdb_options_create();
	rocksdb_writeoptions_t *w = rocksdb_writeoptions_create();
	char *err = NULL, *val = calloc(1, c->size + 1);
	rocksdb_t *db;
	double t0;

	rocksdb_options_set_create_if_missing(o, 1);
	rocksdb_writeoptions_set_sync(w, c->sync);
	db = rocksdb_open(o, dir, &err);
	if (err) {
		fprintf(stderr, "engine-bench: rocksdb: %s\n", err);
		exit(1);
	}
	t0 = now_s();
	for (long i = 0; i < c->n; i++) {
		char key[8];

		for (int j = 0; j < 8; j++)
			key[j] = (char)(i >> (56 - 8 * j));
		rocksdb_put(db, w, key, 8, val, c->size, &err);
		if (err) {
			fprintf(stderr, "engine-bench: put: %s\n", err);
			exit(1);
		}
	}
	t0 = now_s() - t0;
	rocksdb_close(db);
	rocksdb_writeoptions_destroy(w);
	rocksdb_options_destroy(o);
	free(val);
	return c->n / t0;
}

struct job {
	spool_queue *q;
	long n;
	size_t size;
};

static void *push_loop(void *arg)
{
	struct job *j = arg;
	char *body = calloc(1, j->size + 1);
	struct spool_push p = { .body = body, .len = j->size };

	for (long i = 0; i < j->n; i++) {
		int rc = spool_push(j->q, &p, NULL);

		if (rc)
			die("push", rc);
	}
	free(body);
	return NULL;
}

static void *consume_loop(void *arg)
{
	struct job *j = arg;
	char *buf = malloc(j->size + 1);
	struct spool_msg_info info;

	for (long i = 0; i < j->n; i++) {
		size_t got;
		int rc = spool_lease_next(j->q, buf, j->size + 1, &got, &info);

		if (rc)
			die("lease", rc);
		rc = spool_ack(j->q, info.id);
		if (rc)
			die("ack", rc);
	}
	free(buf);
	return NULL;
}

/* Runs fn on c->threads threads sharing n operations; returns ops/s. */
static double run_threads(const struct cfg *c, spool_queue *q, long n,
			  void *(*fn)(void *))
{
	pthread_t t[64];
	struct job j[64];
	double t0 = now_s();

	for (int i = 0; i < c->threads; i++) {
		j[i] = (struct job){ q, n / c->threads, c->size };
		pthread_create(&t[i], NULL, fn, &j[i]);
	}
	for (int i = 0; i < c->threads; i++)
		pthread_join(t[i], NULL);
	return (n / c->threads) * c->threads / (now_s() - t0);
}

struct round {
	double raw, push, consume, consume_worn;
};

static spool_db *open_db(const struct cfg *c, const char *dir)
{
	struct spool_options o;
	struct spool_queue_attr a = { 0, 0, 0755, 0 };
	spool_db *db;
	int rc;

	spool_options_init(&o);
	o.sync = c->sync ? SPOOL_SYNC_ALWAYS : SPOOL_SYNC_NONE;
	rc = spool_open(dir, &o, &db);
	if (rc)
		die("open", rc);
	spool_queue_create(db, "bench", &a);
	spool_queue_create(db, "worn", &a);
	return db;
}

static void one_round(const struct cfg *c, struct round *r)
{
	char raw[4096], eng[4096];
	spool_queue *q, *w;
	spool_db *db;

	snprintf(raw, sizeof(raw), "%s/raw", c->dir);
	snprintf(eng, sizeof(eng), "%s/engine", c->dir);
	rm_rf(raw);
	rm_rf(eng);
	r->raw = raw_puts(c, raw);
	db = open_db(c, eng);
	spool_queue_open(db, "bench", &q);
	spool_queue_open(db, "worn", &w);
	r->push = run_threads(c, q, c->n, push_loop);
	r->consume = run_threads(c, q, c->n, consume_loop);
	/* Wear a queue: push and ack 4n messages, then time n more. */
	for (int i = 0; i < 4; i++) {
		run_threads(c, w, c->n, push_loop);
		run_threads(c, w, c->n, consume_loop);
	}
	run_threads(c, w, c->n, push_loop);
	r->consume_worn = run_threads(c, w, c->n, consume_loop);
	spool_queue_close(q);
	spool_queue_close(w);
	spool_close(db);
	rm_rf(raw);
	rm_rf(eng);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void report(const char *name, double *v, int n, double base)
{
	double s[64];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	printf("%-28s %10.0f/s  (min %.0f, max %.0f)", name, s[n / 2], s[0],
	       s[n - 1]);
	if (base > 0)
		printf("  ratio %.2f", s[n / 2] / base);
	printf("\n");
}

static double median(double *v, int n)
{
	double s[64];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return s[n / 2];
}

/* ------------------------------------------------------------- restart */

/* This process's resident set, bytes (VmRSS in /proc/self/status). */
static long rss_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

/* Fills a fresh store in dir with n messages of c->size bytes. */
static void restart_fill(const struct cfg *c, const char *dir)
{
	enum { BATCH = 1000 };
	struct spool_push p[BATCH];
	char *body = calloc(1, c->size + 1);
	spool_queue *q;
	spool_db *db;

	rm_rf(dir);
	db = open_db(c, dir);
	spool_queue_open(db, "bench", &q);
	for (int i = 0; i < BATCH; i++)
		p[i] = (struct spool_push){ .body = body, .len = c->size };
	for (long i = 0; i < c->restart; i += BATCH) {
		size_t k = c->restart - i < BATCH ? (size_t)(c->restart - i) :
			   BATCH;
		int rc = spool_push_batch(q, p, k, NULL);

		if (rc)
			die("push", rc);
	}
	spool_queue_close(q);
	spool_close(db);
	free(body);
}

/* One reopen, in this (fresh) process: prints "seconds bytes-per-message". */
static int restart_open(const struct cfg *c, const char *dir)
{
	struct spool_options o;
	long before, after;
	spool_db *db;
	double t0, t;
	int rc;

	spool_options_init(&o);
	o.sync = SPOOL_SYNC_NONE;
	before = rss_bytes();
	t0 = now_s();
	rc = spool_open(dir, &o, &db);
	t = now_s() - t0;
	if (rc)
		die("open", rc);
	after = rss_bytes();
	printf("%.3f %.1f\n", t, (double)(after - before) / c->restart);
	spool_close(db);
	return 0;
}

/* Runs "self --open-only" in a child and reads its line. */
static int restart_child(const struct cfg *c, const char *self,
			 const char *dir, double *secs, double *per_msg)
{
	char cmd[8400], n[32];
	FILE *f;
	int ok;

	snprintf(n, sizeof(n), "%ld", c->restart);
	snprintf(cmd, sizeof(cmd), "'%s' --open-only %s '%s'", self, n, dir);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	ok = fscanf(f, "%lf %lf", secs, per_msg) == 2;
	return pclose(f) == 0 && ok ? 0 : -1;
}

static void report_plain(const char *name, double *v, int n)
{
	double s[64];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	printf("%-28s %10.2f  (min %.2f, max %.2f)\n", name, s[n / 2], s[0],
	       s[n - 1]);
}

static int restart_main(const struct cfg *c, const char *self)
{
	double secs[64], per[64];
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/restart", c->dir);
	printf("engine-bench: reopen of %ld queued messages of %zu bytes, "
	       "%d rounds (median, min, max)\n", c->restart, c->size, c->rounds);
	restart_fill(c, dir);
	for (int i = 0; i < c->rounds; i++)
		if (restart_child(c, self, dir, &secs[i], &per[i]))
			die("reopen", -EIO);
	report_plain("open, seconds", secs, c->rounds);
	report_plain("RSS growth, bytes/message", per, c->rounds);
	rm_rf(dir);
	return 0;
}

static int parse_args(int argc, char **argv, struct cfg *c)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			c->n = atol(argv[++i]);
		else if (!strcmp(argv[i], "-r") && i + 1 < argc)
			c->rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-s") && i + 1 < argc)
			c->size = (size_t)atol(argv[++i]);
		else if (!strcmp(argv[i], "-t") && i + 1 < argc)
			c->threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--sync") && i + 1 < argc)
			c->sync = !strcmp(argv[++i], "always");
		else if (!strcmp(argv[i], "--restart") && i + 1 < argc)
			c->restart = atol(argv[++i]);
		else if (argv[i][0] != '-')
			c->dir = argv[i];
		else
			return -1;
	}
	if (c->n <= 0 || c->rounds < 1 || c->rounds > 64 || c->threads < 1 ||
	    c->threads > 64)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct cfg c = { 100000, 3, 128, 0, 1, 0, NULL };
	double raw[64], push[64], cons[64], worn[64];
	char tmp[] = "/tmp/engine-bench.XXXXXX";

	if (argc == 4 && !strcmp(argv[1], "--open-only")) {
		c.restart = atol(argv[2]);
		return restart_open(&c, argv[3]);
	}
	if (parse_args(argc, argv, &c)) {
		fprintf(stderr, "usage: engine-bench [-n N] [-r ROUNDS] [-s BYTES] "
			"[-t THREADS] [--sync always|none] [--restart N] "
			"[DIR]\n");
		return 1;
	}
	if (!c.dir && !(c.dir = mkdtemp(tmp)))
		die("mkdtemp", -errno);
	if (c.restart > 0) {
		restart_main(&c, argv[0]);
		if (tmp == c.dir)
			rmdir(tmp);
		return 0;
	}
	printf("engine-bench: %ld messages of %zu bytes, %d thread(s), sync=%s, "
	       "%d rounds (median, min, max)\n", c.n, c.size, c.threads,
	       c.sync ? "always" : "none", c.rounds);
	for (int i = 0; i < c.rounds; i++) {
		struct round r;

		one_round(&c, &r);
		raw[i] = r.raw;
		push[i] = r.push;
		cons[i] = r.consume;
		worn[i] = r.consume_worn;
	}
	report("raw rocksdb put (1 thread)", raw, c.rounds, 0);
	report("engine push", push, c.rounds, median(raw, c.rounds));
	report("engine lease+ack", cons, c.rounds, median(raw, c.rounds));
	report("lease+ack, worn queue", worn, c.rounds,
	       median(cons, c.rounds));
	if (tmp == c.dir)
		rmdir(tmp);
	return 0;
}
