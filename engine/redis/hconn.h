/*
 * hconn.h - what conn.c and cluster.c share about hiredis connections
 * (engine/redis/ only: it includes <hiredis/hiredis.h>).
 */
#ifndef RD_HCONN_H
#define RD_HCONN_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

/* A pooled connection. */
struct rd_conn {
	redisContext *c;
	int64_t tmo_ms;             /* c's socket timeout as last set */
	struct rd_conn *next;
};

/* HOST:PORT of [s, e) into host and *port; 0 or -EINVAL. */
int rd_host_port(const char *s, const char *e, char *host, size_t hlen,
		 int *port);
/* A connection to host:port with ms to connect and as socket timeout;
 * NULL if it failed. */
redisContext *rd_dial(const char *host, int port, int ms);
/* Sets k's socket timeout to ms unless it is that already (within
 * 0.2 s). */
void rd_conn_timeout(struct rd_conn *k, int64_t ms);
/* An idle connection the server closed or reset: it has something to
 * read, where an idle one has nothing. */
int rd_ctx_stale(const redisContext *c);
void rd_sleep_ms(int ms);
int64_t rd_mono_ms(void);

#endif /* RD_HCONN_H */
