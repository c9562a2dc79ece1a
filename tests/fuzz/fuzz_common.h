/*
 * fuzz_common.h - what the libFuzzer targets in tests/fuzz share: one store
 * per process in a temp directory (sync none, manual timers, a quiet log),
 * removed at exit, and a check that aborts (so libFuzzer reports a crash
 * with the input) when a property does not hold.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool.h"

#define FUZZ_CHECK(cond)                                                    \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: check failed: %s\n",         \
				__FILE__, __LINE__, #cond);                  \
			abort();                                             \
		}                                                            \
	} while (0)

static char fuzz_dir[256];

static void fuzz_log(void *arg, enum spool_log_level level, const char *line)
{
	(void)arg;
	if (level <= SPOOL_LOG_WARN && getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "engine: %s\n", line);
}

static int fuzz_rm_one(const char *p, const struct stat *st, int flag,
		       struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(p);
}

static void fuzz_rm_store(void)
{
	if (fuzz_dir[0])
		nftw(fuzz_dir, fuzz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Opens a fresh store in a temp directory; aborts on failure. */
static __attribute__((unused)) spool_db *fuzz_open_store(void)
{
	struct spool_options o;
	spool_db *db;
	char store[sizeof fuzz_dir];
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	/* mkdtemp() fills in the trailing X's of the template. */
	if ((size_t)snprintf(fuzz_dir, sizeof fuzz_dir, "%s/spool-fuzz-XXXXXX",
			     tmp) >= sizeof fuzz_dir - sizeof "/store") {
		fprintf(stderr, "fuzz: TMPDIR too long: %s\n", tmp);
		abort();
	}
	if (!mkdtemp(fuzz_dir)) {
		perror("mkdtemp");
		abort();
	}
	atexit(fuzz_rm_store);
	snprintf(store, sizeof store, "%s/store", fuzz_dir);
	spool_options_init(&o);
	o.sync = SPOOL_SYNC_NONE;
	o.manual_timers = 1;
	o.log = fuzz_log;
	FUZZ_CHECK(spool_open(store, &o, &db) == 0);
	return db;
}

#endif /* FUZZ_COMMON_H */
