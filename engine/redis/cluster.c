/*
 * cluster.c - Redis Cluster routing (cluster.h): CRC16 key slots, the
 * slot table from CLUSTER SLOTS, a pool of connections per node, and a
 * command run on its slot's node through -MOVED, -ASK, -TRYAGAIN and
 * -CLUSTERDOWN. docs/decisions.md, "Redis Cluster: one per-family layout".
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "hconn.h"

#define RD_DIAL_MS 2000         /* connecting to a node, at most */
#define RD_REFRESH_GAP_MS 100   /* two table reads after MOVED, at least */

/* ---------------------------------------------------------------- slots */

uint16_t rd_crc16(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint16_t crc = 0;

	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021)
					   : (uint16_t)(crc << 1);
	}
	return crc;
}

unsigned rd_key_slot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len), *close;

	if (open) {
		size_t rest = len - (size_t)(open - key) - 1;

		close = memchr(open + 1, '}', rest);
		if (close && close > open + 1) {
			key = open + 1;
			len = (size_t)(close - key);
		}
	}
	return rd_crc16(key, len) & (RD_SLOTS - 1);
}

/* ----------------------------------------------------------- the router */

struct rd_node {
	char host[256];
	int port;
	pthread_mutex_t lock;       /* free, checked */
	struct rd_conn *free;
	int checked;                /* on_node passed since the last failure */
};

struct rd_router {
	int deadline_ms;
	rd_node_fn on_node;
	rd_wrote_fn on_write;
	void *arg;

	pthread_rwlock_t tlock;     /* slot[], nodes[], nnodes */
	int16_t slot[RD_SLOTS];     /* index in nodes, -1: none */
	struct rd_node *nodes[RD_NODES_MAX];
	int nnodes;

	pthread_mutex_t slock;      /* stats, refreshed_at */
	struct rd_router_stats stats;
	int64_t refreshed_at;       /* monotonic ms */
};

static void stat_add(struct rd_router *rt, long *field)
{
	pthread_mutex_lock(&rt->slock);
	(*field)++;
	pthread_mutex_unlock(&rt->slock);
}

/* The index of node host:port, added if new; -1 when the table is full.
 * Under tlock held for writing. */
static int node_index(struct rd_router *rt, const char *host, int port)
{
	struct rd_node *n;

	for (int i = 0; i < rt->nnodes; i++)
		if (rt->nodes[i]->port == port &&
		    strcmp(rt->nodes[i]->host, host) == 0)
			return i;
	if (rt->nnodes == RD_NODES_MAX || strlen(host) >= sizeof(n->host))
		return -1;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -1;
	snprintf(n->host, sizeof(n->host), "%s", host);
	n->port = port;
	pthread_mutex_init(&n->lock, NULL);
	rt->nodes[rt->nnodes] = n;
	return rt->nnodes++;
}

static struct rd_node *node_at(struct rd_router *rt, int i)
{
	struct rd_node *n;

	pthread_rwlock_rdlock(&rt->tlock);
	n = i >= 0 && i < rt->nnodes ? rt->nodes[i] : NULL;
	pthread_rwlock_unlock(&rt->tlock);
	return n;
}

/* A connection of node n's pool (its context NULL when none is open). */
static struct rd_conn *conn_take(struct rd_node *n)
{
	struct rd_conn *k;

	pthread_mutex_lock(&n->lock);
	k = n->free;
	if (k)
		n->free = k->next;
	pthread_mutex_unlock(&n->lock);
	if (!k && !(k = calloc(1, sizeof(*k))))
		abort();
	return k;
}

static void conn_give(struct rd_node *n, struct rd_conn *k)
{
	pthread_mutex_lock(&n->lock);
	k->next = n->free;
	n->free = k;
	pthread_mutex_unlock(&n->lock);
}

static void conn_drop(struct rd_node *n, struct rd_conn *k)
{
	if (k->c)
		redisFree(k->c);
	k->c = NULL;
	pthread_mutex_lock(&n->lock);
	n->checked = 0;         /* it may come back as another server */
	pthread_mutex_unlock(&n->lock);
}

/* k connected to n (dialled if it is not): 0, -EIO (no answer) or what
 * on_node refused the node with. */
static int conn_ready(struct rd_router *rt, struct rd_node *n,
		      struct rd_conn *k)
{
	int checked, rc = 0;

	if (k->c && rd_ctx_stale(k->c)) {
		redisFree(k->c);
		k->c = NULL;
	}
	if (!k->c) {
		k->c = rd_dial(n->host, n->port, RD_DIAL_MS);
		k->tmo_ms = RD_DIAL_MS;
		if (!k->c) {
			conn_drop(n, k);        /* checked again when back */
			return -EIO;
		}
	}
	pthread_mutex_lock(&n->lock);
	checked = n->checked;
	pthread_mutex_unlock(&n->lock);
	if (!checked && rt->on_node)
		rc = rt->on_node(rt->arg, k->c, n->host, n->port);
	if (rc) {
		redisFree(k->c);
		k->c = NULL;
		return rc;
	}
	pthread_mutex_lock(&n->lock);
	n->checked = 1;
	pthread_mutex_unlock(&n->lock);
	return 0;
}

/* ----------------------------------------------------------- the table */

/* The slot ranges of a CLUSTER SLOTS reply r, asked of node `from`, into
 * slot[] (as node indexes, nodes added as met). Under tlock for writing.
 * Returns the number of slots served. */
static long table_fill(struct rd_router *rt, const redisReply *r,
		       const struct rd_node *from, int16_t *slot)
{
	long served = 0;

	for (int i = 0; i < RD_SLOTS; i++)
		slot[i] = -1;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i], *m;
		const char *host;
		long long lo, hi;
		int idx;

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER)
			continue;
		m = e->element[2];
		if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
		    m->element[0]->type != REDIS_REPLY_STRING ||
		    m->element[1]->type != REDIS_REPLY_INTEGER)
			continue;
		/* an empty or unknown endpoint: the node we asked (Redis 7) */
		host = m->element[0]->str;
		if (!*host || strcmp(host, "?") == 0)
			host = from->host;
		idx = node_index(rt, host, (int)m->element[1]->integer);
		lo = e->element[0]->integer;
		hi = e->element[1]->integer;
		if (idx < 0 || lo < 0 || hi >= RD_SLOTS || lo > hi)
			continue;
		for (long long s = lo; s <= hi; s++)
			slot[s] = (int16_t)idx;
		served += hi - lo + 1;
	}
	return served;
}

/* Reads CLUSTER SLOTS from node n into the table; the number of slots
 * served, or -EIO. */
static long table_read(struct rd_router *rt, struct rd_node *n)
{
	struct rd_conn *k = conn_take(n);
	redisReply *r = NULL;
	int16_t *slot;
	long served = -EIO;

	if (conn_ready(rt, n, k) == 0) {
		rd_conn_timeout(k, RD_DIAL_MS);
		r = redisCommand(k->c, "CLUSTER SLOTS");
		if (!r)
			conn_drop(n, k);
	}
	conn_give(n, k);
	if (!r)
		return -EIO;
	slot = malloc(RD_SLOTS * sizeof(*slot));
	if (slot && r->type == REDIS_REPLY_ARRAY) {
		pthread_rwlock_wrlock(&rt->tlock);
		served = table_fill(rt, r, n, slot);
		if (served > 0)
			memcpy(rt->slot, slot, sizeof(rt->slot));
		pthread_rwlock_unlock(&rt->tlock);
		if (served == 0)
			served = -EIO;
	}
	free(slot);
	freeReplyObject(r);
	if (served > 0) {
		pthread_mutex_lock(&rt->slock);
		rt->stats.refreshes++;
		rt->refreshed_at = rd_mono_ms();
		pthread_mutex_unlock(&rt->slock);
	}
	return served;
}

/* The table read again from the first node that answers; the slots
 * served, or -EIO. */
static long table_refresh(struct rd_router *rt)
{
	int n;

	pthread_rwlock_rdlock(&rt->tlock);
	n = rt->nnodes;
	pthread_rwlock_unlock(&rt->tlock);
	for (int i = 0; i < n; i++) {
		long served = table_read(rt, node_at(rt, i));

		if (served > 0)
			return served;
	}
	return -EIO;
}

int rd_router_refresh(struct rd_router *rt)
{
	return table_refresh(rt) > 0 ? 0 : -EIO;
}

/* After a -MOVED: the table again, unless it was read a moment ago (the
 * slot the reply named is fixed already). */
static void table_refresh_soon(struct rd_router *rt)
{
	int64_t at;

	pthread_mutex_lock(&rt->slock);
	at = rt->refreshed_at;
	pthread_mutex_unlock(&rt->slock);
	if (rd_mono_ms() - at >= RD_REFRESH_GAP_MS)
		table_refresh(rt);
}

/* "SLOT HOST:PORT" of a -MOVED or -ASK reply (after the word): the index
 * of that node (added if new; slot re-pointed if moved), or -1. */
static int redirect_node(struct rd_router *rt, const char *text, int moved)
{
	const char *sp = strchr(text, ' '), *addr;
	char host[256];
	long slot;
	int port, idx;

	if (!sp)
		return -1;
	slot = strtol(sp + 1, NULL, 10);
	addr = strchr(sp + 1, ' ');
	if (!addr || slot < 0 || slot >= RD_SLOTS ||
	    rd_host_port(addr + 1, addr + 1 + strlen(addr + 1), host,
			 sizeof(host), &port))
		return -1;
	pthread_rwlock_wrlock(&rt->tlock);
	idx = node_index(rt, host, port);
	if (idx >= 0 && moved)
		rt->slot[slot] = (int16_t)idx;
	pthread_rwlock_unlock(&rt->tlock);
	return idx;
}

/* ---------------------------------------------------------- open, close */

int rd_router_open(const char *seeds, int deadline_ms, rd_node_fn on_node,
		   void *arg, struct rd_router **out, char *err,
		   size_t errlen)
{
	struct rd_router *rt = calloc(1, sizeof(*rt));
	const char *s = seeds, *end = seeds + strlen(seeds);
	long served = -EIO;

	if (!rt)
		return -ENOMEM;
	rt->deadline_ms = deadline_ms;
	rt->on_node = on_node;
	rt->arg = arg;
	pthread_rwlock_init(&rt->tlock, NULL);
	pthread_mutex_init(&rt->slock, NULL);
	for (int i = 0; i < RD_SLOTS; i++)
		rt->slot[i] = -1;
	while (s < end) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *e = comma ? comma : end;
		char host[256];
		int port;

		if (rd_host_port(s, e, host, sizeof(host), &port) ||
		    node_index(rt, host, port) < 0) {
			snprintf(err, errlen, "not HOST:PORT[,HOST:PORT...]");
			rd_router_close(rt);
			return -EINVAL;
		}
		s = comma ? comma + 1 : end;
	}
	if (!rt->nnodes) {
		snprintf(err, errlen, "no node given");
		rd_router_close(rt);
		return -EINVAL;
	}
	served = table_refresh(rt);
	if (served != RD_SLOTS) {
		if (served < 0)
			snprintf(err, errlen, "no node answered CLUSTER SLOTS "
				 "(unreachable, or not a cluster node)");
		else
			snprintf(err, errlen, "the cluster serves %ld of "
				 "%d slots (cluster_state is not ok)", served,
				 RD_SLOTS);
		rd_router_close(rt);
		return -EIO;
	}
	*out = rt;
	return 0;
}

void rd_router_close(struct rd_router *rt)
{
	if (!rt)
		return;
	for (int i = 0; i < rt->nnodes; i++) {
		struct rd_node *n = rt->nodes[i];

		while (n->free) {
			struct rd_conn *k = n->free;

			n->free = k->next;
			if (k->c)
				redisFree(k->c);
			free(k);
		}
		pthread_mutex_destroy(&n->lock);
		free(n);
	}
	pthread_rwlock_destroy(&rt->tlock);
	pthread_mutex_destroy(&rt->slock);
	free(rt);
}

void rd_router_on_write(struct rd_router *rt, rd_wrote_fn fn)
{
	rt->on_write = fn;
}

void rd_router_recheck(struct rd_router *rt)
{
	pthread_rwlock_rdlock(&rt->tlock);
	for (int i = 0; i < rt->nnodes; i++) {
		pthread_mutex_lock(&rt->nodes[i]->lock);
		rt->nodes[i]->checked = 0;
		pthread_mutex_unlock(&rt->nodes[i]->lock);
	}
	pthread_rwlock_unlock(&rt->tlock);
}

int rd_router_each(struct rd_router *rt, rd_node_fn fn, void *arg)
{
	int16_t seen[RD_NODES_MAX] = { 0 };
	int idx[RD_NODES_MAX], n = 0, rc = 0;

	pthread_rwlock_rdlock(&rt->tlock);
	for (int s = 0; s < RD_SLOTS; s++)
		if (rt->slot[s] >= 0 && !seen[rt->slot[s]]) {
			seen[rt->slot[s]] = 1;
			idx[n++] = rt->slot[s];
		}
	pthread_rwlock_unlock(&rt->tlock);
	for (int i = 0; i < n && !rc; i++) {
		struct rd_node *nd = node_at(rt, idx[i]);
		struct rd_conn *k = conn_take(nd);

		rc = conn_ready(rt, nd, k);
		if (!rc) {
			rd_conn_timeout(k, RD_DIAL_MS);
			rc = fn(arg, k->c, nd->host, nd->port);
			if (rc && rd_ctx_stale(k->c))
				conn_drop(nd, k);
		}
		conn_give(nd, k);
	}
	return rc;
}

void rd_router_get_stats(struct rd_router *rt, struct rd_router_stats *out)
{
	pthread_mutex_lock(&rt->slock);
	*out = rt->stats;
	pthread_mutex_unlock(&rt->slock);
	pthread_rwlock_rdlock(&rt->tlock);
	out->nodes = rt->nnodes;
	pthread_rwlock_unlock(&rt->tlock);
}

int rd_router_node_of(struct rd_router *rt, unsigned slot, char *addr,
		      size_t len)
{
	int rc = -ENOENT;

	pthread_rwlock_rdlock(&rt->tlock);
	if (slot < RD_SLOTS && rt->slot[slot] >= 0) {
		const struct rd_node *n = rt->nodes[rt->slot[slot]];

		snprintf(addr, len, "%s:%d", n->host, n->port);
		rc = 0;
	}
	pthread_rwlock_unlock(&rt->tlock);
	return rc;
}

/* ------------------------------------------------------------ commands */

/* One send of argv on k (after ASKING when asking): the reply, or NULL
 * when the connection broke. */
static redisReply *send_once(struct rd_conn *k, int asking, int argc,
			     const char **argv, const size_t *lens)
{
	void *ok = NULL, *r = NULL;

	if (!asking)
		return redisCommandArgv(k->c, argc, argv, lens);
	if (redisAppendCommand(k->c, "ASKING") != REDIS_OK ||
	    redisAppendCommandArgv(k->c, argc, argv, lens) != REDIS_OK ||
	    redisGetReply(k->c, &ok) != REDIS_OK ||
	    redisGetReply(k->c, &r) != REDIS_OK) {
		if (ok)
			freeReplyObject(ok);
		return NULL;
	}
	freeReplyObject(ok);
	return r;
}

static int starts(const redisReply *r, const char *word)
{
	size_t n = strlen(word);

	return r->len >= n && strncmp(r->str, word, n) == 0 &&
	       (r->len == n || r->str[n] == ' ');
}

void *rd_router_command(struct rd_router *rt, const char *key, size_t klen,
			int argc, const char **argv, const size_t *lens,
			int flags, int *rc, int *lost)
{
	int once = flags & RD_RT_ONCE;
	int64_t deadline = rd_mono_ms() + rt->deadline_ms;
	unsigned slot = rd_key_slot(key, klen);
	int backoff = 50, ask = -1;

	*rc = 0;
	if (lost)
		*lost = 0;
	for (;;) {
		int64_t left = deadline - rd_mono_ms();
		struct rd_node *n;
		struct rd_conn *k;
		redisReply *r;
		int idx, asking = ask >= 0, why;

		if (asking) {
			idx = ask;
		} else {
			pthread_rwlock_rdlock(&rt->tlock);
			idx = rt->slot[slot];
			pthread_rwlock_unlock(&rt->tlock);
		}
		ask = -1;
		n = node_at(rt, idx);
		if (!n) {               /* a slot no node serves (yet) */
			if (left <= 0) {
				*rc = -EIO;
				return NULL;
			}
			table_refresh(rt);
			goto backoff;
		}
		k = conn_take(n);
		why = conn_ready(rt, n, k);
		if (why) {
			conn_give(n, k);
			if (why != -EIO || left <= 0) {
				*rc = why;
				return NULL;
			}
			table_refresh(rt);
			goto backoff;
		}
		rd_conn_timeout(k, left > 1000 ? left : 1000);
		r = send_once(k, asking, argc, argv, lens);
		if (!r) {               /* the connection broke: sent or not? */
			conn_drop(n, k);
			conn_give(n, k);
			if (lost)
				*lost = 1;
			if (once || left <= 0) {
				*rc = -EIO;
				return NULL;
			}
			table_refresh(rt);
			goto backoff;
		}
		if (r->type != REDIS_REPLY_ERROR && (flags & RD_RT_WAIT) &&
		    rt->on_write &&
		    (*rc = rt->on_write(rt->arg, k, deadline)) != 0) {
			if (!k->c)
				conn_drop(n, k);
			conn_give(n, k);
			freeReplyObject(r);
			return NULL;
		}
		conn_give(n, k);
		if (r->type != REDIS_REPLY_ERROR || left <= 0)
			return r;
		if (starts(r, "MOVED") || starts(r, "ASK")) {
			int moved = starts(r, "MOVED");
			int to = redirect_node(rt, r->str, moved);

			if (to < 0)
				return r;
			freeReplyObject(r);
			stat_add(rt, moved ? &rt->stats.moved : &rt->stats.ask);
			if (moved)
				table_refresh_soon(rt);
			else
				ask = to;
			continue;
		}
		if (!starts(r, "TRYAGAIN") && !starts(r, "CLUSTERDOWN"))
			return r;
		freeReplyObject(r);
		stat_add(rt, &rt->stats.tryagain);
backoff:
		if (rd_mono_ms() >= deadline) {
			*rc = -EIO;
			return NULL;
		}
		rd_sleep_ms(backoff);
		backoff = backoff < 500 ? backoff * 2 : 1000;
	}
}

void rd_router_reply_free(void *reply)
{
	if (reply)
		freeReplyObject(reply);
}

/* Appends reply r as text to out (len bytes, at *at). */
static void reply_text(const redisReply *r, char *out, size_t len,
		       size_t *at)
{
	int n = 0;

	if (*at >= len)
		return;
	switch (r->type) {
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
		n = snprintf(out + *at, len - *at, "%.*s", (int)r->len,
			     r->str);
		break;
	case REDIS_REPLY_ERROR:
		n = snprintf(out + *at, len - *at, "-%.*s", (int)r->len,
			     r->str);
		break;
	case REDIS_REPLY_INTEGER:
		n = snprintf(out + *at, len - *at, "%lld", r->integer);
		break;
	case REDIS_REPLY_NIL:
		n = snprintf(out + *at, len - *at, "(nil)");
		break;
	case REDIS_REPLY_ARRAY:
		for (size_t i = 0; i < r->elements; i++) {
			if (i && *at < len - 1) {
				out[(*at)++] = ' ';
				out[*at] = '\0';
			}
			reply_text(r->element[i], out, len, at);
		}
		return;
	default:
		n = snprintf(out + *at, len - *at, "?");
	}
	*at += n < 0 ? 0 : (size_t)n;
	if (*at >= len)
		*at = len - 1;
}

int rd_router_text(struct rd_router *rt, const char *key, int argc,
		   const char **argv, char *out, size_t len)
{
	size_t *lens = malloc((size_t)argc * sizeof(*lens)), at = 0;
	redisReply *r;
	int rc;

	if (!lens)
		return -ENOMEM;
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	out[0] = '\0';
	r = rd_router_command(rt, key, strlen(key), argc, argv, lens, 0, &rc,
			      NULL);
	free(lens);
	if (!r)
		return rc;
	reply_text(r, out, len, &at);
	freeReplyObject(r);
	return 0;
}
