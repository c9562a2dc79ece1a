/*
 * sqs.h - the SQS endpoint: the Amazon SQS API over HTTP on the daemon's
 * queues (DESIGN §11, docs/sqs.md). It is a second front end beside fs/,
 * in the daemon's process, on engine/spool.h only: no FUSE, no store.
 *
 * The daemon starts it after opening the store and before mounting, and
 * stops it after unmounting (before closing the store).
 */
#ifndef SQS_H
#define SQS_H

#include <stddef.h>
#include <sys/types.h>

#include "spool.h"

struct sqs_config {
	const char *listen;     /* "[ADDR:]PORT"; ADDR default 127.0.0.1 */
	uid_t owner;            /* the mounting user */
	int allow_other;        /* 0: only owner is served */
	const char *keys;       /* --sqs-keys FILE, or NULL */
	/* The daemon's log sink. */
	void (*log)(enum spool_log_level level, const char *fmt, ...)
		__attribute__((format(printf, 2, 3)));
};

/*
 * Starts serving on cfg->listen with its own threads. Returns 0, or -1
 * with one line of explanation in err[errlen] (a bad address, a
 * non-loopback address without a keys file, a port in use).
 */
int sqs_start(spool_db *db, const struct sqs_config *cfg, char *err,
	      size_t errlen);

/* Answers every parked long poll, stops the threads, frees everything.
 * Does nothing if sqs_start() did not succeed. */
void sqs_stop(void);

#endif /* SQS_H */
