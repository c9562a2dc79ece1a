/*
 * conn.c - the Redis store's connections: a pool of synchronous hiredis
 * contexts (a context is not thread-safe: each call takes one), the start
 * checks (DESIGN §10), loading the function library, one function call
 * with its errors mapped to errnos (retried with reconnects until
 * RD_DEADLINE_MS, then -EIO), and the subscriber thread of the wake-up
 * channel. The only files that include <hiredis/hiredis.h> are here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <xxhash.h>

#include "redis.h"
#include "spool_lua.h"

#define RD_DEADLINE_MS 10000    /* retrying a call, at most */
#define RD_CMD_TIMEOUT_S 2      /* one command's socket timeout */

static void set_timeout(redisContext *c, int s)
{
	struct timeval tv = { s, 0 };

	redisSetTimeout(c, tv);
}

struct rd_conn {
	redisContext *c;
	struct rd_conn *next;
};

int64_t rd_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
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

static redisContext *dial(struct rd_db *db)
{
	struct timeval tv = { RD_CMD_TIMEOUT_S, 0 };
	redisContext *c = redisConnectWithTimeout(db->host, db->port, tv);

	if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK)
		return c;
	if (c)
		redisFree(c);
	return NULL;
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
 * Runs one command (argv) on a pooled connection, reconnecting and
 * retrying until the deadline. Returns the reply (never an error reply:
 * those become *rc), or NULL with *rc set.
 */
static redisReply *command(struct rd_db *db, int argc, const char **argv,
			   const size_t *lens, enum rd_call kind, int timeout_s,
			   int *rc)
{
	int64_t deadline = rd_mono_ms() + RD_DEADLINE_MS;
	int backoff = 20, loaded = 0;
	struct rd_conn *k = conn_take(db);
	redisReply *r = NULL;

	*rc = 0;
	for (;;) {
		int sent = 0;

		if (!k->c)
			k->c = dial(db);
		if (k->c) {
			sent = 1;
			if (timeout_s > RD_CMD_TIMEOUT_S)
				set_timeout(k->c, timeout_s);
			r = redisCommandArgv(k->c, argc, argv, lens);
			if (k->c && timeout_s > RD_CMD_TIMEOUT_S && r)
				set_timeout(k->c, RD_CMD_TIMEOUT_S);
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
				freeReplyObject(r);
				r = NULL;
				sleep_ms(backoff);
				backoff = backoff < 500 ? backoff * 2 : 1000;
				continue;
			} else {
				core_log(&db->pub, SPOOL_LOG_ERR,
					 "redis %s:%d: %s: %s", db->host,
					 db->port, argv[0], r->str);
				*rc = transient(r) ? -EIO : -EIO;
			}
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
			core_log(&db->pub, SPOOL_LOG_ERR, "redis %s:%d: %s: "
				 "no answer%s", db->host, db->port, argv[0],
				 sent && kind == RD_ONCE ?
				 " (it may have been done)" : "");
			*rc = -EIO;
			break;
		}
		sleep_ms(backoff);
		backoff = backoff < 500 ? backoff * 2 : 1000;
	}
	conn_give(db, k);
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

int rd_call(struct rd_db *db, const char *fn, struct rd_args *a,
	    enum rd_call kind, struct rd_reply *out)
{
	const char *fixed[] = { "FCALL", NULL, "1", db->prefix, NULL,
				db->origin };
	char name[64], now[24];
	int argc = 6 + a->n, rc;
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
	snprintf(name, sizeof(name), "spool_%s", fn);
	fixed[1] = name;
	now_arg(db, now, sizeof(now));
	fixed[4] = now;
	for (int i = 0; i < 6; i++) {
		argv[i] = fixed[i];
		lens[i] = strlen(fixed[i]);
	}
	for (int i = 0; i < a->n; i++) {
		argv[6 + i] = i < 64 ? a->v[i] : a->xv[i - 64];
		lens[6 + i] = i < 64 ? a->l[i] : a->xl[i - 64];
	}
	r = command(db, argc, argv, lens, kind, a->timeout_s, &rc);
	if (!r)
		goto out;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		core_log(&db->pub, SPOOL_LOG_ERR, "redis: %s: unexpected reply",
			 name);
		rc = -EIO;
		goto out;
	}
	rc = (int)r->element[0]->integer;
	woken = (struct rd_reply){ r->element[1], 0 };
	for (size_t i = 0; i < rd_count(&woken); i++) {
		const char *q = rd_str(&woken, i, NULL);

		if (q)
			rd_wake_name(db, q);
	}
	if (out && rc == 0) {   /* the values of a failed call: none */
		out->r = r;
		out->base = 2;
		r = NULL;
	}
out:
	if (r)
		freeReplyObject(r);
	free(argv);
	free(lens);
	return rc;
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

/* The settings the contract needs of the server (DESIGN §10). */
static int start_checks(struct rd_db *db, redisContext *c)
{
	char v[64];

	if (config_get(c, "maxmemory-policy", v, sizeof(v)))
		goto unreadable;
	if (strcmp(v, "noeviction") != 0) {
		core_log(&db->pub, SPOOL_LOG_ERR, "redis %s:%d: "
			 "maxmemory-policy is %s; the store needs noeviction "
			 "(eviction would drop messages)", db->host, db->port,
			 v);
		return -ENOTSUP;
	}
	if (db->pub.opt.sync != SPOOL_SYNC_ALWAYS) {
		core_log(&db->pub, SPOOL_LOG_INFO, "redis %s:%d: --sync none: "
			 "a change is acknowledged once the primary has it, "
			 "fsynced as its appendfsync says", db->host, db->port);
		return 0;
	}
	if (config_get(c, "appendonly", v, sizeof(v)))
		goto unreadable;
	if (strcmp(v, "yes") != 0) {
		core_log(&db->pub, SPOOL_LOG_ERR, "redis %s:%d: appendonly is "
			 "%s; --sync always needs appendonly yes", db->host,
			 db->port, v);
		return -ENOTSUP;
	}
	if (config_get(c, "appendfsync", v, sizeof(v)))
		goto unreadable;
	if (strcmp(v, "always") != 0) {
		core_log(&db->pub, SPOOL_LOG_ERR, "redis %s:%d: appendfsync is "
			 "%s; --sync always needs appendfsync always",
			 db->host, db->port, v);
		return -ENOTSUP;
	}
	core_log(&db->pub, SPOOL_LOG_INFO, "redis %s:%d: appendonly yes, "
		 "appendfsync always: a change is acknowledged once fsynced on "
		 "the primary (replicas copy it asynchronously)", db->host,
		 db->port);
	return 0;
unreadable:
	core_log(&db->pub, SPOOL_LOG_ERR, "redis %s:%d: CONFIG GET failed: "
		 "cannot check the server's settings", db->host, db->port);
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
		core_log(&db->pub, SPOOL_LOG_ERR, "redis %s:%d: FUNCTION LOAD: "
			 "%s", db->host, db->port, r ? r->str : c->errstr);
	if (r)
		freeReplyObject(r);
	free(text);
	return rc;
}

/* Loads the library unless the server has this version. */
static int library_check(struct rd_db *db, redisContext *c)
{
	redisReply *r = redisCommand(c, "FCALL spool_version 0");
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

int rd_connect_all(struct rd_db *db)
{
	struct rd_conn *k;
	redisContext *c = dial(db);
	int rc;

	snprintf(db->version, sizeof(db->version), "%016llx",
		 (unsigned long long)XXH3_64bits(spool_lua, spool_lua_len));
	if (!c) {
		core_log(&db->pub, SPOOL_LOG_ERR, "redis %s:%d: cannot "
			 "connect", db->host, db->port);
		return -EIO;
	}
	rc = start_checks(db, c);
	if (!rc)
		rc = library_check(db, c);
	if (!rc)
		rc = clock_offset(db, c);
	if (rc) {
		redisFree(c);
		return rc;
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

static void *sub_main(void *arg)
{
	struct rd_db *db = arg;
	int backoff = 50, first = 1;

	while (!atomic_load(&db->stop)) {
		redisContext *c = dial(db);
		redisReply *r;
		void *rv;

		if (c) {
			struct timeval none = { 0, 0 };

			redisSetTimeout(c, none);     /* block: close shuts
			                               * the socket down */
			r = redisCommand(c, "SUBSCRIBE %s:w", db->prefix);
			if (r)
				freeReplyObject(r);
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
		sleep_ms(backoff);
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
