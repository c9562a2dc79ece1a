/*
 * conn.c - the Redis store's connections: the URL, a pool of synchronous
 * hiredis contexts (a context is not thread-safe: each call takes one) to
 * the primary (the URL's, or the one the sentinels name, asked again on
 * every new connection), the start checks (DESIGN §10) on every primary
 * met, loading the function library, ?replicas=N's WAIT, one function call
 * with its errors mapped to errnos (retried with reconnects until
 * RD_DEADLINE_MS, then -EIO), and the subscriber thread of the wake-up
 * channel. redis+cluster:// runs each command through cluster.c's router
 * instead of the pool: on the node of its key's slot (KEYS[1], the
 * family's tag), with the same checks on every primary. The only files
 * that include <hiredis/hiredis.h> are here.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "cluster.h"
#include "hconn.h"
#include "redis.h"
#include "spool_lua.h"

#define RD_DEADLINE_MS 10000    /* retrying a call, at most */
#define RD_CMD_TIMEOUT_S 2      /* connecting, and the start checks */
#define RD_SENTINEL_MS 500      /* asking one sentinel, at most */
#define RD_WAIT_MS 1000         /* one WAIT for replicas, at most */

/* Two system calls saved per call. */
void rd_conn_timeout(struct rd_conn *k, int64_t ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (k->tmo_ms && k->tmo_ms - ms < 200 && ms - k->tmo_ms < 200)
		return;
	if (redisSetTimeout(k->c, tv) == REDIS_OK)
		k->tmo_ms = ms;
}

/* A pooled connection the server closed or reset while it sat idle (a
 * restart). */
int rd_ctx_stale(const redisContext *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, 0) != 0;
}

int64_t rd_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rd_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* The Cluster node whose checks this thread runs (its log lines name
 * it), NULL: the URL's server. */
static __thread const char *node_now;

/* A log line about the server: "redis HOST:PORT: ..." */
static void rd_log(struct rd_db *db, enum spool_log_level lv,
		   const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void rd_log(struct rd_db *db, enum spool_log_level lv,
		   const char *fmt, ...)
{
	char line[900], host[256];
	int port;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&db->alock);
	snprintf(host, sizeof(host), "%s", db->host);
	port = db->port;
	pthread_mutex_unlock(&db->alock);
	if (node_now)
		core_log(&db->pub, lv, "redis %s: %s", node_now, line);
	else if (db->topo == RD_CLUSTER)
		core_log(&db->pub, lv, "redis cluster %s: %s", db->seeds,
			 line);
	else if (db->topo == RD_SENTINEL && !host[0])
		core_log(&db->pub, lv, "redis sentinel master %s: %s",
			 db->master, line);
	else
		core_log(&db->pub, lv, "redis %s:%d: %s", host, port, line);
}

/* -------------------------------------------------------------- the URL */

int rd_host_port(const char *s, const char *e, char *host, size_t hlen,
		     int *port)
{
	const char *colon = NULL;
	char num[8];
	char *end;
	long v;

	for (const char *p = s; p < e; p++)
		if (*p == ':')
			colon = p;
	if (!colon || colon == s || (size_t)(colon - s) >= hlen ||
	    e - colon - 1 < 1 || e - colon - 1 >= (long)sizeof(num))
		return -EINVAL;
	memcpy(host, s, colon - s);
	host[colon - s] = '\0';
	memcpy(num, colon + 1, e - colon - 1);
	num[e - colon - 1] = '\0';
	v = strtol(num, &end, 10);
	if (*end || v <= 0 || v > 65535)
		return -EINVAL;
	*port = (int)v;
	return 0;
}

/* ?replicas=N (the only option) from q (after the '?'). */
static int url_options(struct rd_db *db, const char *q)
{
	char *end;
	long v;

	if (strncmp(q, "replicas=", 9) != 0)
		return -EINVAL;
	v = strtol(q + 9, &end, 10);
	if (end == q + 9 || *end || v < 0 || v > 100)
		return -EINVAL;
	db->replicas = (int)v;
	return 0;
}

/*
 * redis://HOST:PORT[/PREFIX][?replicas=N]
 * redis+sentinel://H1:P1[,H2:P2...]/MASTER[/PREFIX][?replicas=N]
 * redis+cluster://H1:P1[,H2:P2...][/PREFIX][?replicas=N]
 * Logs the reason of a refusal.
 */
int rd_parse_url(struct rd_db *db, const char *data)
{
	const char *usage = "redis://HOST:PORT[/PREFIX][?replicas=N], "
		"redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER[/PREFIX]"
		"[?replicas=N] or redis+cluster://HOST:PORT[,HOST:PORT...]"
		"[/PREFIX][?replicas=N]";
	const char *h, *hosts_end, *path, *q, *prefix = "spool";
	char *text = NULL;
	int rc = -EINVAL;

	if (strncmp(data, "redis+sentinel://", 17) == 0)
		db->topo = RD_SENTINEL;
	else if (strncmp(data, "redis+cluster://", 16) == 0)
		db->topo = RD_CLUSTER;
	else
		db->topo = RD_SINGLE;
	text = strdup(data);
	if (!text)
		return -ENOMEM;
	h = text + (db->topo == RD_SENTINEL ? 17 :
		    db->topo == RD_CLUSTER ? 16 : 8);
	q = strchr(h, '?');
	if (q) {
		text[q - text] = '\0';
		if (url_options(db, q + 1))
			goto bad;
	}
	hosts_end = strchr(h, '/');
	if (!hosts_end)
		hosts_end = h + strlen(h);
	path = *hosts_end ? hosts_end + 1 : hosts_end;
	if (db->topo == RD_SINGLE) {
		if (rd_host_port(h, hosts_end, db->host, sizeof(db->host),
			      &db->port))
			goto bad;
	} else if (db->topo == RD_CLUSTER) {
		/* the seeds, for rd_router_open; the first is db->host */
		for (const char *s = h; s <= hosts_end;) {
			const char *comma = memchr(s, ',', hosts_end - s);
			const char *e = comma ? comma : hosts_end;

			if (rd_host_port(s, e, db->host, sizeof(db->host),
					 &db->port))
				goto bad;
			s = e + 1;
		}
		rd_host_port(h, strcspn(h, ",/") + h, db->host,
			     sizeof(db->host), &db->port);
		db->seeds = strndup(h, hosts_end - h);
		if (!db->seeds) {
			rc = -ENOMEM;
			goto out;
		}
		db->cluster = true;
	} else {
		const char *s = h, *slash;

		while (s < hosts_end) {
			const char *comma = memchr(s, ',', hosts_end - s);
			const char *e = comma ? comma : hosts_end;

			if (db->nsent == RD_SENTINELS_MAX ||
			    rd_host_port(s, e, db->sent_host[db->nsent],
				      sizeof(db->sent_host[0]),
				      &db->sent_port[db->nsent]))
				goto bad;
			db->nsent++;
			s = comma ? comma + 1 : hosts_end;
		}
		slash = strchr(path, '/');
		if (!db->nsent || !*path || (slash ? slash - path :
		    (long)strlen(path)) >= (long)sizeof(db->master))
			goto bad;
		snprintf(db->master, sizeof(db->master), "%.*s",
			 (int)(slash ? slash - path : (long)strlen(path)), path);
		path = slash ? slash + 1 : path + strlen(path);
	}
	if (*path)
		prefix = path;
	if (strpbrk(prefix, "{}? \n\r"))
		goto bad;
	/* The Cluster's mode on one primary: a test seam, so that the
	 * suites of redis:// run the Cluster's second calls too
	 * (docs/decisions.md, "Redis Cluster: one per-family layout"). */
	if (db->topo == RD_SINGLE && getenv("SPOOL_REDIS_CLUSTER_MODE"))
		db->cluster = true;
	if (asprintf(&db->prefix, "{%s}", prefix) < 0 ||
	    asprintf(&db->marker, "2/%c/%s", db->cluster ? 'c' : 's',
		     prefix) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	rc = 0;
	goto out;
bad:
	core_log(&db->pub, SPOOL_LOG_ERR, "%s: not %s", data, usage);
out:
	free(text);
	return rc;
}

/* ---------------------------------------------------------- arguments */

void rd_args_init(struct rd_args *a)
{
	memset(a, 0, sizeof(*a));
}

void rd_args_free(struct rd_args *a)
{
	free(a->xv);
	free(a->xl);
}

void rd_arg(struct rd_args *a, const char *s, size_t len)
{
	if (a->n < 64) {
		a->v[a->n] = s;
		a->l[a->n] = len;
	} else {
		if (a->n - 64 >= a->cap) {
			a->cap = a->cap ? a->cap * 2 : 64;
			a->xv = realloc(a->xv, a->cap * sizeof(*a->xv));
			a->xl = realloc(a->xl, a->cap * sizeof(*a->xl));
			if (!a->xv || !a->xl)
				abort();
		}
		a->xv[a->n - 64] = s;
		a->xl[a->n - 64] = len;
	}
	a->n++;
}

void rd_arg_str(struct rd_args *a, const char *s)
{
	rd_arg(a, s, strlen(s));
}

/* Numbers live in a->num: only the first 64 arguments may be numbers. */
void rd_arg_int(struct rd_args *a, int64_t v)
{
	if (a->n >= 64)
		abort();
	snprintf(a->num[a->n], sizeof(a->num[0]), "%lld", (long long)v);
	rd_arg_str(a, a->num[a->n]);
}

/* ------------------------------------------------------------ replies */

static redisReply *el(const struct rd_reply *r, size_t i)
{
	redisReply *x = r->r;

	if (!x || x->type != REDIS_REPLY_ARRAY || r->base + i >= x->elements)
		return NULL;
	return x->element[r->base + i];
}

size_t rd_count(const struct rd_reply *r)
{
	redisReply *x = r->r;

	if (!x || x->type != REDIS_REPLY_ARRAY || x->elements < r->base)
		return 0;
	return x->elements - r->base;
}

const char *rd_str(const struct rd_reply *r, size_t i, size_t *len)
{
	redisReply *e = el(r, i);

	if (!e || (e->type != REDIS_REPLY_STRING &&
		   e->type != REDIS_REPLY_STATUS))
		return NULL;
	if (len)
		*len = e->len;
	return e->str;
}

int64_t rd_int(const struct rd_reply *r, size_t i)
{
	redisReply *e = el(r, i);

	if (!e)
		return 0;
	if (e->type == REDIS_REPLY_INTEGER)
		return e->integer;
	if (e->type == REDIS_REPLY_STRING)
		return strtoll(e->str, NULL, 10);
	return 0;
}

struct rd_reply rd_elem(const struct rd_reply *r, size_t i)
{
	struct rd_reply out = { el(r, i), 0 };

	return out;
}

void rd_reply_free(struct rd_reply *r)
{
	if (r && r->r && r->base)
		freeReplyObject(r->r);
	if (r)
		r->r = NULL;
}

/* ------------------------------------------------------------ the pool */

redisContext *rd_dial(const char *host, int port, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	redisContext *c = redisConnectWithTimeout(host, port, tv);

	if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK)
		return c;
	if (c)
		redisFree(c);
	return NULL;
}

static int primary_checks(struct rd_db *db, redisContext *c);

/* The primary the sentinels name (redis+sentinel://): the first sentinel
 * that answers; "" when none does. */
static void sentinel_ask(struct rd_db *db, char *host, size_t hlen,
			 int *port)
{
	host[0] = '\0';
	for (int i = 0; i < db->nsent && !host[0]; i++) {
		redisContext *c = rd_dial(db->sent_host[i], db->sent_port[i],
					    RD_SENTINEL_MS);
		redisReply *r;

		if (!c)
			continue;
		r = redisCommand(c, "SENTINEL get-master-addr-by-name %s",
				 db->master);
		if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		    r->element[0]->type == REDIS_REPLY_STRING &&
		    r->element[1]->type == REDIS_REPLY_STRING) {
			snprintf(host, hlen, "%s", r->element[0]->str);
			*port = atoi(r->element[1]->str);
		}
		if (r)
			freeReplyObject(r);
		redisFree(c);
	}
}

/* Whether the server of c says it is a primary (ROLE). */
static int is_primary(redisContext *c)
{
	redisReply *r = redisCommand(c, "ROLE");
	int yes = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
		  r->element[0]->type == REDIS_REPLY_STRING &&
		  strcmp(r->element[0]->str, "master") == 0;

	if (r)
		freeReplyObject(r);
	return yes;
}

/*
 * A connection to the primary the sentinels name, once it says it is
 * one. A primary met for the first time (the start, a failover) passes
 * the start checks and gets the library first; *rc says why not.
 */
static redisContext *dial_sentinel(struct rd_db *db, int *rc)
{
	char host[256], was[256];
	int port = 0, wasport, known;
	redisContext *c;

	sentinel_ask(db, host, sizeof(host), &port);
	if (!host[0]) {
		*rc = -EHOSTUNREACH;
		return NULL;
	}
	c = rd_dial(host, port, RD_CMD_TIMEOUT_S * 1000);
	if (!c) {
		*rc = -ECONNREFUSED;
		return NULL;
	}
	if (!is_primary(c)) {   /* the sentinels have not caught up yet */
		redisFree(c);
		*rc = -EAGAIN;
		return NULL;
	}
	pthread_mutex_lock(&db->alock);
	known = db->checked && db->port == port &&
		strcmp(db->host, host) == 0;
	snprintf(was, sizeof(was), "%s", db->host);
	wasport = db->port;
	if (!known) {
		snprintf(db->host, sizeof(db->host), "%s", host);
		db->port = port;
	}
	pthread_mutex_unlock(&db->alock);
	if (known)
		return c;
	if (was[0])
		rd_log(db, SPOOL_LOG_INFO, "sentinel master %s: the primary "
		       "is now %s:%d (was %s:%d)", db->master, host, port, was,
		       wasport);
	*rc = primary_checks(db, c);
	if (*rc) {
		redisFree(c);
		return NULL;
	}
	pthread_mutex_lock(&db->alock);
	db->checked = db->port == port && strcmp(db->host, host) == 0;
	pthread_mutex_unlock(&db->alock);
	return c;
}

/* redis+cluster://: a connection to the node that serves the slot of
 * {P} (any node would do for the channel: a Cluster sends a PUBLISH to
 * every node); the table is read again when that node does not answer. */
static redisContext *dial_cluster(struct rd_db *db)
{
	char addr[300], host[256];
	int port;
	redisContext *c;

	if (rd_router_node_of(db->router, rd_key_slot(db->prefix,
			      strlen(db->prefix)), addr, sizeof(addr)) ||
	    rd_host_port(addr, addr + strlen(addr), host, sizeof(host),
			 &port))
		return NULL;
	c = rd_dial(host, port, RD_CMD_TIMEOUT_S * 1000);
	if (!c)
		rd_router_refresh(db->router);
	return c;
}

static redisContext *dial(struct rd_db *db)
{
	char host[256];
	int port, rc;

	if (db->topo == RD_SENTINEL)
		return dial_sentinel(db, &rc);
	if (db->topo == RD_CLUSTER)
		return dial_cluster(db);
	pthread_mutex_lock(&db->alock);
	snprintf(host, sizeof(host), "%s", db->host);
	port = db->port;
	pthread_mutex_unlock(&db->alock);
	return rd_dial(host, port, RD_CMD_TIMEOUT_S * 1000);
}

static struct rd_conn *conn_take(struct rd_db *db)
{
	struct rd_conn *k;

	pthread_mutex_lock(&db->plock);
	while (!db->free && db->nconn >= RD_POOL_MAX)
		pthread_cond_wait(&db->pcond, &db->plock);
	k = db->free;
	if (k)
		db->free = k->next;
	else
		db->nconn++;
	pthread_mutex_unlock(&db->plock);
	if (!k) {
		k = calloc(1, sizeof(*k));
		if (!k)
			abort();
	}
	return k;
}

static void conn_give(struct rd_db *db, struct rd_conn *k)
{
	pthread_mutex_lock(&db->plock);
	k->next = db->free;
	db->free = k;
	pthread_cond_signal(&db->pcond);
	pthread_mutex_unlock(&db->plock);
}

void rd_pool_free(struct rd_db *db)
{
	rd_router_close(db->router);
	db->router = NULL;
	free(db->seeds);
	db->seeds = NULL;
	while (db->free) {
		struct rd_conn *k = db->free;

		db->free = k->next;
		if (k->c)
			redisFree(k->c);
		free(k);
	}
}

/* A reply that is an error a later try may not meet (the server is
 * loading, a replica, busy in a script...). */
static int transient(const redisReply *r)
{
	static const char *const words[] = { "LOADING", "BUSY", "MASTERDOWN",
		"READONLY", "TRYAGAIN", "CLUSTERDOWN", NULL };

	for (int i = 0; words[i]; i++)
		if (strncmp(r->str, words[i], strlen(words[i])) == 0)
			return 1;
	return 0;
}

static int load_library(struct rd_db *db, redisContext *c);

/*
 * ?replicas=N: waits until N replicas have every write this connection
 * made (WAIT), re-asking until the call's deadline. 0, or -EIO (logged)
 * when fewer confirm in time or the primary stops answering: the change
 * is on the primary but may be lost with it.
 */
static int replicas_wait(struct rd_db *db, struct rd_conn *k,
			 int64_t deadline)
{
	long long got = -1;

	for (;;) {
		int64_t left = deadline - rd_mono_ms();
		redisReply *r;

		if (left < 1)
			left = 1;
		if (left > RD_WAIT_MS)
			left = RD_WAIT_MS;
		r = redisCommand(k->c, "WAIT %d %lld", db->replicas,
				 (long long)left);
		if (!r) {
			redisFree(k->c);
			k->c = NULL;
			rd_log(db, SPOOL_LOG_ERR, "WAIT %d: no answer (the "
			       "change may have been done)", db->replicas);
			return -EIO;
		}
		if (r->type == REDIS_REPLY_INTEGER)
			got = r->integer;
		freeReplyObject(r);
		if (got >= db->replicas)
			return 0;
		if (rd_mono_ms() >= deadline)
			break;
	}
	rd_log(db, SPOOL_LOG_ERR, "WAIT %d: %lld replica(s) confirmed the "
	       "change within %d ms (it is on the primary, not on enough "
	       "replicas)", db->replicas, got, RD_DEADLINE_MS);
	return -EIO;
}

static int wrote_hook(void *arg, void *conn, int64_t deadline)
{
	return replicas_wait(arg, conn, deadline);
}

/*
 * command() on a Cluster: argv (an FCALL: on the node of its KEYS[1]'s
 * slot; anything else: of {P}'s) through the router, which follows
 * redirects and reconnects; the error replies mapped as command() does.
 */
static redisReply *cluster_command(struct rd_db *db, int argc,
				   const char **argv, const size_t *lens,
				   enum rd_call kind, int *rc, int *resent)
{
	int fcall = argc > 3 && strcmp(argv[0], "FCALL") == 0;
	const char *key = fcall ? argv[3] : db->prefix;
	size_t klen = fcall ? lens[3] : strlen(db->prefix);
	int flags = (kind == RD_ONCE ? RD_RT_ONCE : 0) |
		    ((kind == RD_WRITE || kind == RD_ONCE) && db->replicas ?
		     RD_RT_WAIT : 0);
	int64_t deadline = rd_mono_ms() + RD_DEADLINE_MS;
	int backoff = 20, rechecked = 0, lost = 0;
	redisReply *r;

	for (;;) {
		int l = 0;

		r = rd_router_command(db->router, key, klen, argc, argv, lens,
				      flags, rc, &l);
		lost |= l;
		if (!r) {
			if (*rc == -EIO)
				rd_log(db, SPOOL_LOG_ERR, "%s: no answer%s",
				       argv[0], l && kind == RD_ONCE ?
				       " (it may have been done)" : "");
			else if (*rc != -ENOMEM)
				*rc = -EIO;     /* a node refused: logged */
			break;
		}
		if (r->type != REDIS_REPLY_ERROR)
			break;
		if (strncmp(r->str, "OOM", 3) == 0) {
			*rc = -ENOSPC;
		} else if (!rechecked && strstr(r->str, "not found")) {
			/* the library is gone from a node: every node gets
			 * its checks (and the library) again */
			rechecked = 1;
			rd_router_recheck(db->router);
			freeReplyObject(r);
			continue;
		} else if ((transient(r) || strstr(r->str, "non local key"))
			   && rd_mono_ms() < deadline) {
			/* "a non local key": the function met its slot
			 * migrating, and stopped at its first access, before
			 * any write (spool.lua's probe); again after the
			 * move */
			if (strncmp(r->str, "READONLY", 8) == 0)
				rd_router_refresh(db->router);
			freeReplyObject(r);
			rd_sleep_ms(backoff);
			backoff = backoff < 500 ? backoff * 2 : 1000;
			continue;
		} else {
			rd_log(db, SPOOL_LOG_ERR, "%s: %s", argv[0], r->str);
			*rc = -EIO;
		}
		freeReplyObject(r);
		r = NULL;
		break;
	}
	if (resent)
		*resent = lost;
	return r;
}

/*
 * Runs one command (argv) on a pooled connection, reconnecting and
 * retrying until the deadline. Returns the reply (never an error reply:
 * those become *rc), or NULL with *rc set.
 *
 * A command sent waits for its reply until the deadline (a paused server
 * answers when it resumes): it is never sent again on a new connection
 * while the server may still run it, which would run a lease twice.
 * Only a connection that broke (refused, reset, closed) is dialled again,
 * and the command resent unless it is RD_ONCE. *resent (if not NULL) is
 * then 1: an earlier send may have been done, and its reply was lost.
 */
static redisReply *command(struct rd_db *db, int argc, const char **argv,
			   const size_t *lens, enum rd_call kind, int timeout_s,
			   int *rc, int *resent)
{
	int64_t deadline = rd_mono_ms() + RD_DEADLINE_MS;
	int backoff = 20, loaded = 0, lost = 0;
	struct rd_conn *k;
	redisReply *r = NULL;

	if (db->topo == RD_CLUSTER)
		return cluster_command(db, argc, argv, lens, kind, rc, resent);
	k = conn_take(db);
	*rc = 0;
	for (;;) {
		int sent = 0;
		int64_t left = deadline - rd_mono_ms();

		if (k->c && rd_ctx_stale(k->c)) {
			redisFree(k->c);
			k->c = NULL;
		}
		if (!k->c) {
			k->c = dial(db);
			k->tmo_ms = RD_CMD_TIMEOUT_S * 1000;
		}
		if (k->c) {
			sent = 1;
			if (left < 1000)
				left = 1000;
			rd_conn_timeout(k, left > timeout_s * 1000LL ?
				     left : timeout_s * 1000LL);
			r = redisCommandArgv(k->c, argc, argv, lens);
		}
		if (r && r->type == REDIS_REPLY_ERROR) {
			if (strncmp(r->str, "OOM", 3) == 0) {
				*rc = -ENOSPC;
			} else if (!loaded && strstr(r->str, "not found")) {
				/* the library is gone (FLUSHALL, a new
				 * server): load it and try again */
				loaded = 1;
				freeReplyObject(r);
				r = NULL;
				if (load_library(db, k->c) == 0)
					continue;
				*rc = -EIO;
			} else if (transient(r) && rd_mono_ms() < deadline) {
				if (strncmp(r->str, "READONLY", 8) == 0) {
					/* a primary turned replica (a
					 * failover): find the new one */
					redisFree(k->c);
					k->c = NULL;
				}
				freeReplyObject(r);
				r = NULL;
				rd_sleep_ms(backoff);
				backoff = backoff < 500 ? backoff * 2 : 1000;
				continue;
			} else {
				rd_log(db, SPOOL_LOG_ERR, "%s: %s", argv[0],
				       r->str);
				*rc = -EIO;
			}
			freeReplyObject(r);
			r = NULL;
			break;
		}
		if (r && (kind == RD_WRITE || kind == RD_ONCE) &&
		    db->replicas > 0 &&
		    (*rc = replicas_wait(db, k, deadline)) != 0) {
			freeReplyObject(r);
			r = NULL;
			break;
		}
		if (r)
			break;
		/* no reply: the connection is dead */
		if (k->c) {
			redisFree(k->c);
			k->c = NULL;
		}
		if ((sent && kind == RD_ONCE) || rd_mono_ms() >= deadline) {
			rd_log(db, SPOOL_LOG_ERR, "%s: "
				 "no answer%s", argv[0],
				 sent && kind == RD_ONCE ?
				 " (it may have been done)" : "");
			*rc = -EIO;
			break;
		}
		lost |= sent;
		rd_sleep_ms(backoff);
		backoff = backoff < 500 ? backoff * 2 : 1000;
	}
	conn_give(db, k);
	if (resent)
		*resent = lost;
	return r;
}

static int64_t now_arg(struct rd_db *db, char *buf, size_t len)
{
	if (db->server_clock) {
		buf[0] = '\0';
		return 0;
	}
	snprintf(buf, len, "%lld",
		 (long long)db->pub.opt.clock(db->pub.opt.clock_arg));
	return 0;
}

/*
 * The Cluster's second call: the namespace effects (spool.lua's ns_apply)
 * a function on a family's slot returned, sent to {P}'s slot. Its failure
 * is logged and never fails the caller's operation: the family's keys are
 * the truth, and the sweep repairs the namespace's (docs/decisions.md,
 * "Redis Cluster: one per-family layout").
 */
static void ns_send(struct rd_db *db, const char *fn, redisReply *fx)
{
	struct rd_args a;
	int rc;

	rd_args_init(&a);
	for (size_t i = 0; i < fx->elements; i++)
		if (fx->element[i]->type == REDIS_REPLY_STRING)
			rd_arg(&a, fx->element[i]->str, fx->element[i]->len);
	rc = rd_call(db, "ns", &a, RD_TICK, NULL);
	rd_args_free(&a);
	if (rc)
		rd_log(db, SPOOL_LOG_WARN, "spool2_%s: the namespace's "
		       "keys were not updated (%s); the sweep repairs them",
		       fn, strerror(-rc));
}

int rd_call(struct rd_db *db, const char *fn, struct rd_args *a,
	    enum rd_call kind, struct rd_reply *out)
{
	const char *fixed[] = { "FCALL", NULL, "1", NULL, NULL,
				db->origin, db->marker };
	char name[64], now[24], tag[SPOOL_NAME_MAX + 300];
	int argc = 7 + a->n, rc, resent = 0;
	const char **argv = malloc(argc * sizeof(*argv));
	size_t *lens = malloc(argc * sizeof(*lens));
	redisReply *r = NULL;
	struct rd_reply woken;

	if (out)
		out->r = NULL;
	if (!argv || !lens) {
		rc = -ENOMEM;
		goto out;
	}
	if (kind != RD_READ && (rc = atomic_load(&db->fail_writes)))
		goto out;
	snprintf(name, sizeof(name), "spool2_%s", fn);
	fixed[1] = name;
	/*
	 * KEYS[1] names the slot: "{P:F}:gen" of the queue's family, or
	 * "{P}:layout". Both are real keys, present while the slot holds
	 * anything, and never deleted: while a Cluster migrates the slot, a
	 * call goes to the node that has them (a phantom key would be
	 * missing on the source at once, and every call be sent, with
	 * -ASK, to a target that has none of the family's keys yet).
	 */
	if (a->queue)
		snprintf(tag, sizeof(tag), "%.*s:%.*s}:gen",
			 (int)strlen(db->prefix) - 1, db->prefix,
			 (int)strcspn(a->queue, "."), a->queue);
	else
		snprintf(tag, sizeof(tag), "%s:layout", db->prefix);
	fixed[3] = tag;
	now_arg(db, now, sizeof(now));
	fixed[4] = now;
	for (int i = 0; i < 7; i++) {
		argv[i] = fixed[i];
		lens[i] = strlen(fixed[i]);
	}
	for (int i = 0; i < a->n; i++) {
		argv[7 + i] = i < 64 ? a->v[i] : a->xv[i - 64];
		lens[7 + i] = i < 64 ? a->l[i] : a->xl[i - 64];
	}
	r = command(db, argc, argv, lens, kind, a->timeout_s, &rc, &resent);
	if (!r)
		goto out;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		core_log(&db->pub, SPOOL_LOG_ERR, "redis: %s: unexpected reply",
			 name);
		rc = -EIO;
		goto out;
	}
	rc = (int)r->element[0]->integer;
	if (rc && resent && kind != RD_READ) {
		/* The first send may have been done (an ack, a release, a
		 * mkdir), and this refusal be its effect: ENOENT or EEXIST
		 * would tell the caller it was not. Unknown is EIO, as for
		 * RD_ONCE. */
		rd_log(db, SPOOL_LOG_ERR, "%s: no answer, then refused on a "
		       "new connection (it may have been done)", name);
		rc = -EIO;
	}
	woken = (struct rd_reply){ r->element[1], 0 };
	for (size_t i = 0; i < rd_count(&woken); i++) {
		const char *q = rd_str(&woken, i, NULL);

		if (q)
			rd_wake_name(db, q);
	}
	/* {code, woken, namespace effects, values...} */
	if (r->element[2]->type == REDIS_REPLY_ARRAY &&
	    r->element[2]->elements)
		ns_send(db, fn, r->element[2]);
	if (out && rc == 0) {   /* the values of a failed call: none */
		out->r = r;
		out->base = 3;
		r = NULL;
	}
out:
	if (r)
		freeReplyObject(r);
	free(argv);
	free(lens);
	return rc;
}

/* A number of INFO's text, "name:value\r\n"; 0 if absent. */
static uint64_t info_field(const char *text, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = text; p && *p; p = strchr(p, '\n')) {
		p += *p == '\n';
		if (strncmp(p, name, n) == 0 && p[n] == ':')
			return strtoull(p + n + 1, NULL, 10);
	}
	return 0;
}

struct space {
	uint64_t total, used;
};

/* One Cluster node's memory into the sums (rd_router_each). */
static int node_space(void *arg, void *ctx, const char *host, int port)
{
	struct space *sp = arg;
	redisReply *r = redisCommand(ctx, "INFO memory");
	uint64_t t;

	(void)host;
	(void)port;
	if (!r || r->type != REDIS_REPLY_STRING) {
		if (r)
			freeReplyObject(r);
		return -EIO;
	}
	t = info_field(r->str, "maxmemory");
	sp->total += t ? t : info_field(r->str, "total_system_memory");
	sp->used += info_field(r->str, "used_memory");
	freeReplyObject(r);
	return 0;
}

int redis_space(spool_db *pdb, uint64_t *total, uint64_t *used)
{
	const char *argv[] = { "INFO", "memory" };
	size_t lens[] = { 4, 6 };
	int rc;
	redisReply *r;

	if (RDB(pdb)->topo == RD_CLUSTER) {   /* every primary's, summed */
		struct space sp = { 0, 0 };

		rc = rd_router_each(RDB(pdb)->router, node_space, &sp);
		*total = sp.total;
		*used = sp.used;
		return rc ? -EIO : 0;
	}
	r = command(RDB(pdb), 2, argv, lens, RD_READ, 0, &rc, NULL);
	if (!r)
		return rc;
	if (r->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		return -EIO;
	}
	*total = info_field(r->str, "maxmemory");
	if (!*total)
		*total = info_field(r->str, "total_system_memory");
	*used = info_field(r->str, "used_memory");
	freeReplyObject(r);
	return 0;
}

/* ------------------------------------------------- checks and library */

/* CONFIG GET name into val; 0 or -EIO. */
static int config_get(redisContext *c, const char *name, char *val,
		      size_t len)
{
	redisReply *r = redisCommand(c, "CONFIG GET %s", name);
	int rc = -EIO;

	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[1]->type == REDIS_REPLY_STRING) {
		snprintf(val, len, "%s", r->element[1]->str);
		rc = 0;
	}
	if (r)
		freeReplyObject(r);
	return rc;
}

/* Set while a Cluster's primaries pass their checks at start: the line
 * of what they promise is said once for all, after them. */
static __thread int checks_quiet;

/* What the checks passed promise, in one line. */
static void checks_said(struct rd_db *db)
{
	if (checks_quiet)
		return;
	if (db->pub.opt.sync != SPOOL_SYNC_ALWAYS)
		rd_log(db, SPOOL_LOG_INFO, "--sync none: a change is "
		       "acknowledged once the primary has it, fsynced as its "
		       "appendfsync says");
	else
		rd_log(db, SPOOL_LOG_INFO, "appendonly yes, appendfsync "
		       "always: a change is acknowledged once fsynced on the "
		       "primary (replicas copy it asynchronously)");
}

/* The settings the contract needs of the server (DESIGN §10). */
static int start_checks(struct rd_db *db, redisContext *c)
{
	redisReply *r = redisCommand(c, "INFO cluster");
	int cluster = r && r->type == REDIS_REPLY_STRING &&
		      info_field(r->str, "cluster_enabled") == 1;
	char v[64];

	if (r)
		freeReplyObject(r);
	if (cluster && db->topo != RD_CLUSTER) {
		/* its functions would fail on other slots' keys */
		rd_log(db, SPOOL_LOG_ERR, "the server is a Redis Cluster node "
		       "(cluster_enabled:1); redis:// and redis+sentinel:// "
		       "need one that is not: use redis+cluster://");
		return -ENOTSUP;
	}
	if (!cluster && db->topo == RD_CLUSTER) {
		rd_log(db, SPOOL_LOG_ERR, "the server is not a Redis Cluster "
		       "node (cluster_enabled:0): use redis://");
		return -ENOTSUP;
	}
	if (config_get(c, "maxmemory-policy", v, sizeof(v)))
		goto unreadable;
	if (strcmp(v, "noeviction") != 0) {
		rd_log(db, SPOOL_LOG_ERR, ""
			 "maxmemory-policy is %s; the store needs noeviction "
			 "(eviction would drop messages)",
			 v);
		return -ENOTSUP;
	}
	if (db->pub.opt.sync != SPOOL_SYNC_ALWAYS) {
		checks_said(db);
		return 0;
	}
	if (config_get(c, "appendonly", v, sizeof(v)))
		goto unreadable;
	if (strcmp(v, "yes") != 0) {
		rd_log(db, SPOOL_LOG_ERR, "appendonly is "
			 "%s; --sync always needs appendonly yes", v);
		return -ENOTSUP;
	}
	if (config_get(c, "appendfsync", v, sizeof(v)))
		goto unreadable;
	if (strcmp(v, "always") != 0) {
		rd_log(db, SPOOL_LOG_ERR, "appendfsync is "
			 "%s; --sync always needs appendfsync always", v);
		return -ENOTSUP;
	}
	checks_said(db);
	return 0;
unreadable:
	rd_log(db, SPOOL_LOG_ERR, "CONFIG GET failed: "
		 "cannot check the server's settings");
	return -EIO;
}

/* The library's text with @VERSION@ replaced by db->version. */
static char *library_text(struct rd_db *db)
{
	const char *src = (const char *)spool_lua, *at;
	size_t n = spool_lua_len;
	char *out = malloc(n + 32);

	if (!out)
		return NULL;
	at = memmem(src, n, "@VERSION@", 9);
	if (!at) {
		memcpy(out, src, n);
		out[n] = '\0';
		return out;
	}
	size_t head = at - src, vlen = strlen(db->version);

	memcpy(out, src, head);
	memcpy(out + head, db->version, vlen);
	memcpy(out + head + vlen, at + 9, n - head - 9);
	out[n - 9 + vlen] = '\0';
	return out;
}

static int load_library(struct rd_db *db, redisContext *c)
{
	char *text = library_text(db);
	redisReply *r;
	int rc = -EIO;

	if (!text)
		return -ENOMEM;
	r = redisCommand(c, "FUNCTION LOAD REPLACE %s", text);
	if (r && r->type != REDIS_REPLY_ERROR)
		rc = 0;
	else
		rd_log(db, SPOOL_LOG_ERR, "FUNCTION LOAD: "
			 "%s", r ? r->str : c->errstr);
	if (r)
		freeReplyObject(r);
	free(text);
	return rc;
}

/* Loads the library unless the server has this version. */
static int library_check(struct rd_db *db, redisContext *c)
{
	redisReply *r = redisCommand(c, "FCALL spool2_version 0");
	int same = r && r->type == REDIS_REPLY_STRING &&
		   strcmp(r->str, db->version) == 0;

	if (r)
		freeReplyObject(r);
	return same ? 0 : load_library(db, c);
}

/* The server's clock against ours. */
static int clock_offset(struct rd_db *db, redisContext *c)
{
	redisReply *r = redisCommand(c, "TIME");
	struct timespec ts;
	int rc = -EIO;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
		int64_t srv = strtoll(r->element[0]->str, NULL, 10) * 1000 +
			      strtoll(r->element[1]->str, NULL, 10) / 1000;
		int64_t me = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

		atomic_store(&db->offset, srv - me);
		rc = 0;
	}
	if (r)
		freeReplyObject(r);
	return rc;
}

/* What a primary must pass before it is used: the start checks (at
 * start, and after a failover to one not met before) and the library. */
static int primary_checks(struct rd_db *db, redisContext *c)
{
	int rc = start_checks(db, c);

	if (!rc)
		rc = library_check(db, c);
	return rc;
}

/* The number of a reply that is an integer, or -1. */
static long long reply_int(redisReply *r)
{
	long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

	if (r)
		freeReplyObject(r);
	return v;
}

/* Whether the namespace's keys are in layout 2 already ({P}:layout). */
static long long layout_done(struct rd_db *db, redisContext *c)
{
	return reply_int(redisCommand(c, "EXISTS %s:layout", db->prefix));
}

/* The mode a store is marked with ({P}:layout: "2" one primary, "2c" a
 * Cluster) is not this daemon's: ids would collide within a family
 * ({P}:seq against {P:F}:seq). Logged: -ENOTSUP. */
static int layout_mismatch(struct rd_db *db, const char *mark)
{
	int theirs = strcmp(mark, "2c") == 0;

	rd_log(db, SPOOL_LOG_ERR, "the store %s is marked for %s (%s:layout "
	       "%s) and this daemon runs %s; daemons of both modes must not "
	       "serve one store", db->prefix, theirs ? "the Cluster's mode "
	       "(ids per family)" : "a single primary (ids per namespace)",
	       db->prefix, mark, db->cluster ? "the Cluster's mode" :
	       "the single-primary mode");
	return -ENOTSUP;
}

/* 1: the layout's mark is this daemon's mode; 0: none; < 0: another
 * mode (logged), or no answer. */
static int layout_mark(struct rd_db *db, redisContext *c)
{
	redisReply *r = redisCommand(c, "GET %s:layout", db->prefix);
	int rc = -EIO;

	if (r && r->type == REDIS_REPLY_NIL)
		rc = 0;
	else if (r && r->type == REDIS_REPLY_STRING)
		rc = strcmp(r->str, db->cluster ? "2c" : "2") == 0 ? 1 :
		     layout_mismatch(db, r->str);
	if (r)
		freeReplyObject(r);
	return rc;
}

/*
 * A store of layout 1 (every key under {P}: spoolfs before per-family
 * keys) is converted, in one function call, before it is used
 * (docs/decisions.md, "Redis Cluster: one per-family layout"): unless a
 * daemon of layout 1 still serves it (a subscriber of its wake-up channel
 * while the layout is still 1; a daemon of this version subscribes only
 * once the layout is 2), which would go on writing keys of layout 1:
 * -EBUSY, logged.
 */
static int layout_convert(struct rd_db *db, redisContext *c)
{
	long long subs, old;
	redisReply *r;
	int rc = -EIO;

	rc = layout_mark(db, c);
	if (rc)
		return rc < 0 ? rc : 0;
	rc = -EIO;
	old = reply_int(redisCommand(c, "EXISTS %s:queues %s:defaults",
				     db->prefix, db->prefix));
	r = redisCommand(c, "PUBSUB NUMSUB %s:w", db->prefix);
	subs = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	       r->element[1]->type == REDIS_REPLY_INTEGER ?
	       r->element[1]->integer : -1;
	if (r)
		freeReplyObject(r);
	if (old > 0 && subs > 0 && layout_done(db, c) == 0) {
		rd_log(db, SPOOL_LOG_ERR, "the store %s has the single-slot "
		       "layout of an older spoolfs, and %lld older daemon(s) "
		       "still serve it (subscribers of %s:w): stop or upgrade "
		       "them; the first start of this version converts it",
		       db->prefix, subs, db->prefix);
		return -EBUSY;
	}
	r = redisCommand(c, "FCALL spool2_convert 1 %s %s %s %s", db->prefix,
			 "", db->origin, db->marker);
	/* {code, woken, effects, converted, queues} or {-EXDEV, woken,
	 * effects, the other mode's mark} (a daemon of that mode came
	 * first) */
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 4 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER &&
	    r->element[0]->integer == -EXDEV &&
	    r->element[3]->type == REDIS_REPLY_STRING) {
		rc = layout_mismatch(db, r->element[3]->str);
	} else if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 5 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER &&
	    r->element[0]->integer == 0) {
		if (r->element[3]->type == REDIS_REPLY_INTEGER &&
		    r->element[3]->integer == 1)
			rd_log(db, SPOOL_LOG_INFO, "converted the store %s to "
			       "per-family keys (layout 2): %lld queue(s); "
			       "daemons of an older spoolfs can no longer "
			       "open it", db->prefix, r->element[4]->integer);
		rc = 0;
	} else {
		rd_log(db, SPOOL_LOG_ERR, "converting the store %s to layout "
		       "2 failed: %s", db->prefix,
		       r && r->type == REDIS_REPLY_ERROR ? r->str :
		       "no answer");
	}
	if (r)
		freeReplyObject(r);
	return rc;
}

/* ?replicas=N: says how many the primary has now. */
static void replicas_state(struct rd_db *db, redisContext *c)
{
	redisReply *r;
	const char *at;
	int n = -1;

	if (!db->replicas)
		return;
	r = redisCommand(c, "INFO replication");
	if (r && r->type == REDIS_REPLY_STRING &&
	    (at = strstr(r->str, "connected_slaves:")))
		n = atoi(at + 17);
	if (r)
		freeReplyObject(r);
	rd_log(db, SPOOL_LOG_INFO, "?replicas=%d: a change is acknowledged "
	       "once %d replica(s) have it (WAIT), else it fails with EIO "
	       "after %d s; the primary has %d replica(s) now", db->replicas,
	       db->replicas, RD_DEADLINE_MS / 1000, n);
}

/* The router's hook: a Cluster node met for the first time (or again
 * after it failed) passes the start checks and gets the library. */
static int node_checks(void *arg, void *ctx, const char *host, int port)
{
	char where[300];
	int rc;

	snprintf(where, sizeof(where), "%s:%d", host, port);
	node_now = where;
	rc = primary_checks(arg, ctx);
	node_now = NULL;
	return rc;
}

static int node_none(void *arg, void *ctx, const char *host, int port)
{
	(void)arg;
	(void)ctx;
	(void)host;
	(void)port;
	return 0;
}

/* redis+cluster://: the slot table, then the checks on every primary
 * (each in node_checks, as the router meets it); *c: a connection to the
 * node of {P}, for what rd_connect_all asks of the namespace. */
static int connect_cluster(struct rd_db *db, redisContext **c)
{
	char err[200];
	int rc = rd_router_open(db->seeds, RD_DEADLINE_MS, node_checks, db,
				&db->router, err, sizeof(err));

	if (rc) {
		rd_log(db, SPOOL_LOG_ERR, "%s", err);
		return rc == -ENOMEM ? rc : -EIO;
	}
	rd_router_on_write(db->router, wrote_hook);
	checks_quiet = 1;
	rc = rd_router_each(db->router, node_none, NULL);
	checks_quiet = 0;
	if (rc == -EIO)
		rd_log(db, SPOOL_LOG_ERR, "a primary did not answer");
	if (rc)
		return rc;
	checks_said(db);                /* for every primary */
	*c = dial_cluster(db);
	if (!*c) {
		rd_log(db, SPOOL_LOG_ERR, "cannot connect to the node of %s",
		       db->prefix);
		return -EIO;
	}
	return 0;
}

int rd_connect_all(struct rd_db *db)
{
	struct rd_conn *k;
	redisContext *c = NULL;
	int rc = 0;

	snprintf(db->version, sizeof(db->version), "%016llx",
		 (unsigned long long)XXH3_64bits(spool_lua, spool_lua_len));
	if (db->topo == RD_CLUSTER) {
		rc = connect_cluster(db, &c);
		if (rc)
			return rc;
	} else if (db->topo == RD_SENTINEL) {
		c = dial_sentinel(db, &rc);
		if (!c && rc == -EHOSTUNREACH)
			rd_log(db, SPOOL_LOG_ERR, "no sentinel answered (or "
			       "none knows this master)");
		else if (!c && rc == -ECONNREFUSED)
			rd_log(db, SPOOL_LOG_ERR, "cannot connect to the "
			       "primary the sentinels name");
		else if (!c && rc == -EAGAIN)
			rd_log(db, SPOOL_LOG_ERR, "the server the sentinels "
			       "name is not a primary (ROLE)");
		if (!c)
			return rc == -ENOTSUP || rc == -ENOMEM ? rc : -EIO;
	} else {
		c = dial(db);
		if (!c) {
			rd_log(db, SPOOL_LOG_ERR, "cannot connect");
			return -EIO;
		}
		rc = primary_checks(db, c);
	}
	if (!rc)
		rc = layout_convert(db, c);
	if (!rc)
		rc = clock_offset(db, c);
	if (rc) {
		redisFree(c);
		return rc;
	}
	replicas_state(db, c);
	if (db->topo == RD_CLUSTER) {   /* the router has its own pools */
		redisFree(c);
		return 0;
	}
	k = conn_take(db);
	k->c = c;
	conn_give(db, k);
	return 0;
}

/* ---------------------------------------------------------- subscriber */

/* One message of the channel: "KIND ORIGIN QUEUE [ARG]". */
static void sub_message(struct rd_db *db, const char *m)
{
	char kind, origin[24], q[SPOOL_NAME_MAX + 1], arg[32] = "";
	int n = sscanf(m, "%c %23s %200s %31s", &kind, origin, q, arg);

	if (n < 3)
		return;
	if (kind == 't') {
		timer_thread_kick(&db->timer, strtoll(arg, NULL, 10));
		return;
	}
	if (strcmp(origin, db->origin) == 0)
		return;                 /* this handle woke its own already */
	if (kind == 'v')
		rd_wake_name(db, q);
	else if (kind == 'c')
		rd_settings_invalidate(db, q);
	else if (kind == 'x')
		rd_queue_gone(db, q, NULL);
}

/* SUBSCRIBE on c; 0, or -EIO when the server refused it or did not
 * answer (said once until a subscription works again). */
static int sub_subscribe(struct rd_db *db, redisContext *c, int *said)
{
	redisReply *r = redisCommand(c, "SUBSCRIBE %s:w", db->prefix);
	int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 3;

	if (!ok && !*said && !atomic_load(&db->stop)) {
		rd_log(db, SPOOL_LOG_WARN, "SUBSCRIBE %s:w: %s; wake-ups "
		       "from other hosts wait for the 2 s safety tick until "
		       "it works", db->prefix, r && r->type == REDIS_REPLY_ERROR
		       ? r->str : "no answer");
		*said = 1;
	}
	if (r)
		freeReplyObject(r);
	if (ok && *said) {
		rd_log(db, SPOOL_LOG_INFO, "subscribed to %s:w again",
		       db->prefix);
		*said = 0;
	}
	return ok ? 0 : -EIO;
}

static void *sub_main(void *arg)
{
	struct rd_db *db = arg;
	int backoff = 50, first = 1, said = 0;

	while (!atomic_load(&db->stop)) {
		redisContext *c = dial(db);
		redisReply *r;
		void *rv;

		if (c && sub_subscribe(db, c, &said)) {
			redisFree(c);
			c = NULL;
		}
		if (c) {
			struct timeval none = { 0, 0 };

			redisSetTimeout(c, none);     /* block: close shuts
			                               * the socket down */
			pthread_mutex_lock(&db->sublock);
			db->sub_fd = atomic_load(&db->stop) ? -1 : c->fd;
			pthread_mutex_unlock(&db->sublock);
			if (!first)     /* messages may have been lost */
				rd_wake_all(db);
			first = 0;
			backoff = 50;
			while (!atomic_load(&db->stop) &&
			       redisGetReply(c, &rv) == REDIS_OK) {
				r = rv;
				if (r->type == REDIS_REPLY_ARRAY &&
				    r->elements == 3 &&
				    r->element[2]->type == REDIS_REPLY_STRING)
					sub_message(db, r->element[2]->str);
				freeReplyObject(r);
			}
			pthread_mutex_lock(&db->sublock);
			db->sub_fd = -1;
			pthread_mutex_unlock(&db->sublock);
			redisFree(c);
		}
		if (atomic_load(&db->stop))
			break;
		rd_sleep_ms(backoff);
		backoff = backoff < 1000 ? backoff * 2 : 1000;
	}
	return NULL;
}

int rd_sub_start(struct rd_db *db)
{
	int rc;

	db->sub_fd = -1;
	rc = pthread_create(&db->sub, NULL, sub_main, db);
	if (rc)
		return -rc;
	db->sub_running = true;
	/* Wait (up to 2 s) until the channel is subscribed, so that a push
	 * by another host right after spool_open() wakes this one. */
	for (int i = 0; i < 200; i++) {
		int up;

		pthread_mutex_lock(&db->sublock);
		up = db->sub_fd >= 0;
		pthread_mutex_unlock(&db->sublock);
		if (up)
			break;
		rd_sleep_ms(10);
	}
	return 0;
}

void rd_sub_stop(struct rd_db *db)
{
	if (!db->sub_running)
		return;
	atomic_store(&db->stop, true);
	pthread_mutex_lock(&db->sublock);
	if (db->sub_fd >= 0)
		shutdown(db->sub_fd, SHUT_RDWR);
	pthread_mutex_unlock(&db->sublock);
	pthread_join(db->sub, NULL);
	db->sub_running = false;
}
