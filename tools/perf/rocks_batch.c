/*
 * rocks_batch.c - raw RocksDB, no engine: N puts of BYTES-byte values with
 * 8-byte big-endian keys, BATCH puts per WriteBatch, one thread, default
 * options (the ceiling issue 4's target 4 sets `lines` against).
 *
 *   rocks-batch DIR [-n N] [-s BYTES] [-b BATCH] [--sync]
 *
 * DIR must not exist (a fresh store each run); it is removed afterwards.
 * Prints one line: mode=rocks-batch ops=N secs=S rate=R.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rocksdb/c.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void check(char *err, const char *what)
{
	if (!err)
		return;
	fprintf(stderr, "rocks-batch: %s: %s\n", what, err);
	exit(2);
}

int main(int argc, char **argv)
{
	long n = 1000000, batch = 100;
	size_t size = 128;
	int sync = 0;
	const char *dir = NULL;
	rocksdb_options_t *o;
	rocksdb_writeoptions_t *w;
	rocksdb_writebatch_t *wb;
	rocksdb_t *db;
	char *err = NULL, *val;
	double t0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			n = atol(argv[++i]);
		else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
			size = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "-b") == 0 && i + 1 < argc)
			batch = atol(argv[++i]);
		else if (strcmp(argv[i], "--sync") == 0)
			sync = 1;
		else
			dir = argv[i];
	}
	if (!dir || n < 1 || batch < 1 || size > (1 << 24)) {
		fprintf(stderr, "usage: rocks-batch DIR [-n N] [-s BYTES] "
			"[-b BATCH] [--sync]\n");
		return 1;
	}
	val = malloc(size + 1);
	memset(val, 'v', size);
	o = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(o, 1);
	rocksdb_options_set_error_if_exists(o, 1);
	w = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(w, sync);
	db = rocksdb_open(o, dir, &err);
	check(err, "open");
	wb = rocksdb_writebatch_create();
	t0 = now_s();
	for (long i = 0; i < n; i++) {
		unsigned char key[8];

		for (int j = 0; j < 8; j++)
			key[j] = (unsigned char)((uint64_t)i >> (56 - 8 * j));
		rocksdb_writebatch_put(wb, (char *)key, 8, val, size);
		if ((i + 1) % batch == 0 || i + 1 == n) {
			rocksdb_write(db, w, wb, &err);
			check(err, "write");
			rocksdb_writebatch_clear(wb);
		}
	}
	t0 = now_s() - t0;
	rocksdb_writebatch_destroy(wb);
	rocksdb_close(db);
	rocksdb_destroy_db(o, dir, &err);
	check(err, "destroy");
	rocksdb_writeoptions_destroy(w);
	rocksdb_options_destroy(o);
	free(val);
	printf("mode=rocks-batch ops=%ld secs=%.6f rate=%.1f\n", n, t0, n / t0);
	return 0;
}
