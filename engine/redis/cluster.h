/*
 * cluster.h - Redis Cluster routing for the Redis store (docs/decisions.md,
 * "Redis Cluster: one per-family layout"): the slot of a key (CRC16 of its
 * hash tag, as Redis computes it), a table of the 16384 slots filled from
 * CLUSTER SLOTS, a pool of connections per node, and one command run on
 * the node of its key's slot, following -MOVED (the table is fixed and
 * read again), -ASK (ASKING, once, the table unchanged) and backing off on
 * -TRYAGAIN and -CLUSTERDOWN until the call's deadline.
 *
 * Like redis.h, this header does not include hiredis: replies are handed
 * out as void * (a redisReply to cluster.c's callers in engine/redis/) or
 * as text (rd_router_text, for tests and logs).
 */
#ifndef RD_CLUSTER_H
#define RD_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#define RD_SLOTS 16384
#define RD_NODES_MAX 64         /* nodes a router knows, at most */

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), Redis's key hash. */
uint16_t rd_crc16(const void *buf, size_t len);
/* The slot of a key: CRC16 of the part between the first '{' and the
 * next '}' when that part is not empty, else of the whole key; mod 16384. */
unsigned rd_key_slot(const char *key, size_t len);

struct rd_router;

/* Called with a new connection (a redisContext *) to a node this router
 * has not used before, or not since it was last unreachable: the start
 * checks and the function library. Non-zero refuses the node (the call
 * that needed it fails with that code). */
typedef int (*rd_node_fn)(void *arg, void *ctx, const char *host, int port);

/* Called after a command sent with RD_RT_WAIT got a reply that is not an
 * error, on the connection that took it (a struct rd_conn *, hconn.h),
 * with the call's deadline (monotonic ms): ?replicas=N's WAIT, which must
 * ask the node that took the write. Non-zero fails the command with it
 * (the write is done on that node, not confirmed). */
typedef int (*rd_wrote_fn)(void *arg, void *conn, int64_t deadline);

struct rd_router_stats {
	long moved;             /* -MOVED replies followed */
	long ask;               /* -ASK replies followed */
	long tryagain;          /* -TRYAGAIN and -CLUSTERDOWN backoffs */
	long refreshes;         /* slot tables read (the first included) */
	int nodes;              /* nodes known */
};

/*
 * A router over the cluster whose nodes seeds lists ("HOST:PORT,..."):
 * the slot table comes from the first seed that answers CLUSTER SLOTS.
 * deadline_ms bounds each command (retries included). 0; -EINVAL (seeds
 * malformed), -EIO (no seed answered, or it is not a cluster node with
 * every slot served): err says which.
 */
int rd_router_open(const char *seeds, int deadline_ms, rd_node_fn on_node,
		   void *arg, struct rd_router **out, char *err,
		   size_t errlen);
void rd_router_close(struct rd_router *rt);
/* The hook of RD_RT_WAIT commands (NULL: none). Set before the router is
 * used by other threads. */
void rd_router_on_write(struct rd_router *rt, rd_wrote_fn fn);
/* Every node passes on_node again at its next use (after the library
 * vanished from one, say). */
void rd_router_recheck(struct rd_router *rt);
/* Runs fn on a ready connection (on_node passed) to every node that
 * serves a slot now, in the table's order; stops at the first non-zero
 * return and returns it; -EIO when a node does not answer. */
int rd_router_each(struct rd_router *rt, rd_node_fn fn, void *arg);
void rd_router_get_stats(struct rd_router *rt, struct rd_router_stats *out);
/* "HOST:PORT" of the node the table has for slot; -ENOENT if none. */
int rd_router_node_of(struct rd_router *rt, unsigned slot, char *addr,
		      size_t len);
/* Reads the slot table again (from any node that answers); 0 or -EIO. */
int rd_router_refresh(struct rd_router *rt);

/* rd_router_command's flags. */
#define RD_RT_ONCE 1    /* never sent again after a lost reply */
#define RD_RT_WAIT 2    /* a write: the on_write hook runs after it */

/*
 * Runs argv on the node that serves the slot of key (klen bytes),
 * following redirects until the deadline. Returns the reply (a
 * redisReply *, free with rd_router_reply_free): any reply but a
 * redirect, so an error reply is the caller's to read (a -TRYAGAIN or
 * -CLUSTERDOWN still there at the deadline is returned as it is). NULL
 * with *rc set when no node answered in time (-EIO), or the on_write
 * hook's refusal. A command sent whose reply was lost (the connection
 * broke) is sent again only without RD_RT_ONCE; *lost (if not NULL) is
 * then 1: an earlier send may have been done.
 */
void *rd_router_command(struct rd_router *rt, const char *key, size_t klen,
			int argc, const char **argv, const size_t *lens,
			int flags, int *rc, int *lost);
void rd_router_reply_free(void *reply);

/*
 * rd_router_command with NUL-terminated arguments, the reply written as
 * text into out: a string or status as it is, an integer in decimal, nil
 * as "(nil)", an error as "-" and its text, an array as its elements
 * joined by ' '. Returns 0 or the negative errno of rd_router_command.
 */
int rd_router_text(struct rd_router *rt, const char *key, int argc,
		   const char **argv, char *out, size_t len);

#endif /* RD_CLUSTER_H */
