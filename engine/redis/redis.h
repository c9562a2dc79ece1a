/*
 * redis.h - the Redis store (redis://HOST:PORT[/PREFIX], one primary, or
 * redis+sentinel://: the primary the sentinels name; ?replicas=N):
 * every operation is one call of a function of the library in spool.lua
 * (one atomic FCALL); the daemon keeps no index, only handles, a pool of
 * connections, a subscriber thread for the wake-up channel and, unless
 * manual_timers, a timer thread. docs/scale-out.md.
 *
 * Only engine/redis/ includes <hiredis/hiredis.h> (tools/test checks it);
 * this header does not, so that ops.c speaks in replies of its own.
 */
#ifndef REDIS_H
#define REDIS_H

#include <pthread.h>
#include <stdbool.h>

#include "store.h"
#include "timer_thread.h"

#define RD_POOL_MAX 32          /* connections, at most */

struct rd_conn;
struct rd_router;

/* A queue's memory in this process: every handle of one incarnation (gen)
 * of a queue shares it (udata). */
struct rd_queue {
	struct spool_queue pub;
	struct rd_queue *next;          /* db->queues, under db->qlock */
	int refs;                       /* under db->qlock */
	char gen[24];                   /* incarnation, as the store has it */
	atomic_int alive;
	pthread_mutex_t slock;          /* the cache of settings and
	                                 * attributes (qget's reply) */
	bool set_valid;
	int64_t set_at;                 /* monotonic ms */
	unsigned set_epoch;             /* +1 at each invalidation */
	struct spool_settings set;
	struct spool_queue_attr attr;
};

#define RD_SENTINELS_MAX 8

enum rd_topo {
	RD_SINGLE,                      /* redis://: one primary */
	RD_SENTINEL,                    /* redis+sentinel://: the sentinels
	                                 * name the primary */
	RD_CLUSTER,                     /* redis+cluster://: slots routed by
	                                 * cluster.c */
};

struct rd_db {
	struct spool_db pub;
	enum rd_topo topo;
	pthread_mutex_t alock;          /* host and port, once set */
	char host[256];                 /* the primary */
	int port;
	bool checked;                   /* host:port passed the start checks
	                                 * (redis+sentinel://) */
	int nsent;                      /* redis+sentinel:// */
	char sent_host[RD_SENTINELS_MAX][256];
	int sent_port[RD_SENTINELS_MAX];
	char master[128];
	int replicas;                   /* ?replicas=N: WAIT N after writes */
	char *seeds;                    /* redis+cluster://: "H:P,H:P..." */
	struct rd_router *router;       /* redis+cluster://: the slots */
	char *prefix;                   /* "{P}": the namespace's tag */
	char *marker;                   /* "2/s/P" or "2/c/P": the layout,
	                                 * the mode and the prefix (spool.lua's
	                                 * ARGV[3]) */
	bool cluster;                   /* the Cluster's mode ("2/c"): a
	                                 * function touches its family's slot
	                                 * only; the namespace's keys ({P})
	                                 * are written by a second call */
	char origin[24];                /* this handle's token on the channel */
	bool server_clock;              /* now comes from the server's TIME */
	atomic_llong offset;            /* server ms - local realtime ms */
	char version[24];               /* of the library this build loads */
	atomic_int fail_writes;         /* test seam: a negative errno */

	pthread_mutex_t plock;          /* the pool */
	pthread_cond_t pcond;
	struct rd_conn *free;
	int nconn;

	pthread_mutex_t qlock;          /* queues */
	struct rd_queue *queues;

	pthread_t sub;                  /* the subscriber */
	bool sub_running;
	atomic_bool stop;
	pthread_mutex_t sublock;
	int sub_fd;                     /* its socket, to shut down at close */

	int64_t sweep_at;               /* monotonic ms of the next sweep
					 * slice; the timer thread's */
	char sweep_cursor[24];          /* where it stopped (SSCAN) */
	struct timer_thread timer;      /* not started with manual_timers */
	int64_t safety;                 /* monotonic ms of the next wake of
					 * every queue; the timer thread's */
};

#define RDB(p) ((struct rd_db *)(p))
#define RQ(p) ((struct rd_queue *)(p))

/* ------------------------------------------------------------ calls */

/* The arguments of one function call, after KEYS[1], now and origin. */
struct rd_args {
	int n;
	const char *v[64];
	size_t l[64];
	char num[64][24];
	int timeout_s;                  /* the reply's, if longer than the
	                                 * default (a big batch) */
	const char *queue;              /* the queue the call is about (its
	                                 * family's slot), NULL: none */
	const char **xv;                /* beyond 64: grown */
	size_t *xl;
	int cap;
};

void rd_args_init(struct rd_args *a);
void rd_args_free(struct rd_args *a);
void rd_arg(struct rd_args *a, const char *s, size_t len);
void rd_arg_str(struct rd_args *a, const char *s);
void rd_arg_int(struct rd_args *a, int64_t v);

/* What came back: the values after the code (a hiredis reply, kept
 * opaque here): element base + i is value i. */
struct rd_reply {
	void *r;
	size_t base;
};
enum rd_call {
	RD_READ = 0,      /* retried after an I/O error */
	RD_WRITE = 1,     /* retried; fails with the test seam's errno */
	RD_ONCE = 2,      /* a write that must not run twice (a push): an
	                   * I/O error after it was sent gives -EIO */
	RD_TICK = 3,      /* a write no caller waits for (the timer's
	                   * promotions, redone by whoever comes next):
	                   * as RD_WRITE, without ?replicas's WAIT */
};
/* Calls spool2_<fn> with KEYS[1] the tag of a->queue's family ({P} when
 * a->queue is NULL); *out (free with rd_reply_free; out may be NULL) holds the values after
 * the code. Wakes the queues the call woke. Returns the code. */
int rd_call(struct rd_db *db, const char *fn, struct rd_args *a,
	    enum rd_call kind, struct rd_reply *out);
void rd_reply_free(struct rd_reply *r);
/* Element i (0 = the first after the code) of r: its string (NULL if
 * none), length, integer, or the element itself as a reply. */
const char *rd_str(const struct rd_reply *r, size_t i, size_t *len);
int64_t rd_int(const struct rd_reply *r, size_t i);
size_t rd_count(const struct rd_reply *r);
/* Value i of r, itself an array, as a reply of its own (not freed). */
struct rd_reply rd_elem(const struct rd_reply *r, size_t i);

/* conn.c: the URL, the pool, start checks and the library. */
/* Parses redis://, redis+sentinel:// (logs why it is refused). */
int rd_parse_url(struct rd_db *db, const char *data);
int rd_connect_all(struct rd_db *db);
void rd_pool_free(struct rd_db *db);
/* The subscriber thread (wake-ups from other hosts). */
int rd_sub_start(struct rd_db *db);
void rd_sub_stop(struct rd_db *db);

/* ops.c */
/* The family of queue name: its length (up to the first '.'). */
size_t rd_family_len(const char *name);
/* One slice of the sweep (docs/decisions.md, "Redis Cluster"): the next
 * families of {P}:families, each one's names and earliest due put back
 * into {P}:queues and {P}:timers. Returns the families swept, or < 0. */
int rd_sweep(struct rd_db *db, int families);
void rd_wake_name(struct rd_db *db, const char *name);
void rd_wake_all(struct rd_db *db);
void rd_queue_gone(struct rd_db *db, const char *name, const char *gen);
void rd_settings_invalidate(struct rd_db *db, const char *name);
int64_t rd_mono_ms(void);

STORE_OPS(STORE_OP_PROTO, redis)
extern const struct store_ops redis_store;

#endif /* REDIS_H */
