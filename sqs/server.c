/*
 * server.c - the HTTP side of the SQS endpoint (libmicrohttpd): a small
 * pool of threads polls the sockets; each request's body is gathered, its
 * protocol told by Content-Type (application/x-amz-json-* is JSON 1.0 with
 * X-Amz-Target; anything else is the Query protocol), its user found, and
 * the action run.
 *
 * A ReceiveMessage that finds nothing and may wait is parked with no
 * thread: its connection is suspended and put on a list; the engine's
 * wake-up for its queue (spool_wake_subscribe) or the deadline (one timer
 * thread for all of them) resumes it, and it tries again. The wake
 * sequence per queue closes the race between a try and the park: a
 * wake-up in between bumps it, and the park then tries again instead.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sqs_i.h"

/* A request body larger than this is refused: a batch of 10 messages of
 * 256 KiB, percent-encoded, stays well under it. */
#define BODY_MAX (12u << 20)
#define POOL_THREADS 4

struct sqs_server sqs;

/* Per queue, in our udata slot. Freed at stop (all are on qstates). */
struct qstate {
	uint64_t seq;                   /* protected by lock */
	struct qstate *all;
};

/* One request. */
struct conn {
	struct MHD_Connection *c;
	char *uri;              /* as it arrived, query included */
	int begun;
	struct sqs_req req;
	char *body;
	size_t len, cap;
	int too_big;
	int started;            /* the action ran once */
	int resumed, timed_out; /* protected by lock while parked */
	struct qstate *qs;
	int64_t deadline;
	struct conn *prev, *next; /* parked list, protected by lock */
	int parked;
};

static struct MHD_Daemon *mhd;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static pthread_t timer;
static int running;             /* protected by lock */
static int stopping;            /* protected by lock */
static struct conn *parked;     /* protected by lock */
static struct qstate *qstates;  /* protected by lock */
static int live;                /* requests not yet completed; by lock */
static pthread_cond_t drained;  /* live reached 0 while stopping */
static _Atomic uint64_t request_seq;

int64_t sqs_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* lock held */
static struct qstate *qstate_of(spool_queue *q)
{
	struct qstate *s = spool_queue_udata(q, sqs.slot);

	if (s)
		return s;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->all = qstates;
	qstates = s;
	spool_queue_set_udata(q, sqs.slot, s);
	return s;
}

uint64_t sqs_wake_seq(spool_queue *q)
{
	struct qstate *s;
	uint64_t seq;

	pthread_mutex_lock(&lock);
	s = qstate_of(q);
	seq = s ? s->seq : 0;
	pthread_mutex_unlock(&lock);
	return seq;
}

/* lock held */
static void unpark(struct conn *k, int timed_out)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		parked = k->next;
	if (k->next)
		k->next->prev = k->prev;
	k->prev = k->next = NULL;
	k->parked = 0;
	k->resumed = 1;
	k->timed_out = timed_out;
	MHD_resume_connection(k->c);
}

static void wake(void *arg, spool_queue *q)
{
	struct qstate *s;
	struct conn *k, *next;

	(void)arg;
	pthread_mutex_lock(&lock);
	s = running ? spool_queue_udata(q, sqs.slot) : NULL;
	if (s) {
		s->seq++;
		for (k = parked; k; k = next) {
			next = k->next;
			if (k->qs == s)
				unpark(k, 0);
		}
	}
	pthread_mutex_unlock(&lock);
}

static void *timer_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	while (!stopping) {
		int64_t now = sqs_mono_ms(), first = INT64_MAX;
		struct conn *k, *next;

		for (k = parked; k; k = next) {
			next = k->next;
			if (k->deadline <= now)
				unpark(k, 1);
			else if (k->deadline < first)
				first = k->deadline;
		}
		if (first == INT64_MAX) {
			pthread_cond_wait(&cond, &lock);
		} else {
			struct timespec ts = { first / 1000,
					       (first % 1000) * 1000000 };

			pthread_cond_timedwait(&cond, &lock, &ts);
		}
	}
	while (parked)
		unpark(parked, 1);
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* Parks k; returns 0, or 1 if a wake-up came since its try: then try
 * again now; or -1 if it cannot wait (stopping, no memory): then answer
 * with what a last try finds. */
static int park(struct conn *k)
{
	spool_queue *q = sqs_recv_queue(&k->req);
	int rc = 1;

	pthread_mutex_lock(&lock);
	k->qs = qstate_of(q);
	if (stopping || !k->qs) {
		rc = -1;
	} else if (k->qs->seq == sqs_recv_seq(&k->req)) {
		k->deadline = sqs_recv_deadline(&k->req);
		k->next = parked;
		if (parked)
			parked->prev = k;
		parked = k;
		k->parked = 1;
		k->resumed = 0;
		MHD_suspend_connection(k->c);
		pthread_cond_signal(&cond);
		rc = 0;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

/* -------------------------------------------------------- requests */

static const char *header(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind,
			       const char *key, const char *value)
{
	(void)kind;
	if (sqs_params_add(cls, key, value ? value : "",
			   value ? strlen(value) : 0))
		return MHD_NO;
	return MHD_YES;
}

static const char *header_of(void *ctx, const char *name)
{
	return header(ctx, name);
}

/* Who sends the request: the signer (a keys file) or the local user at
 * the other end of the connection. */
static int identify(struct conn *k, const char *method)
{
	struct sqs_req *r = &k->req;
	const char *q = strchr(k->uri, '?');
	char *path = strndup(k->uri, q ? (size_t)(q - k->uri)
				       : strlen(k->uri));
	struct sqs_signed in = { method, path, q ? q + 1 : NULL, k->body,
				 k->len, header_of, k->c };
	int rc;

	if (!path)
		return sqs_fail(r, E_INTERNAL, "Out of memory.");
	rc = sqs_sigv4_check(r, &in);
	free(path);
	return rc;
}

static struct sqs_ident *conn_ident(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	const union MHD_ConnectionInfo *fd =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct sqs_ident *id = ci ? ci->socket_context : NULL;

	if (id && !id->known && fd && sqs_peer_ident(fd->connect_fd, id) < 0)
		sqs.cfg.log(SPOOL_LOG_DEBUG, "sqs: no local user found for "
			    "a connection");
	return id;
}

/* Reads protocol, action and parameters; runs the action. */
static int start(struct conn *k, const char *url, const char *method)
{
	struct sqs_req *r = &k->req;
	const char *ct = header(k->c, MHD_HTTP_HEADER_CONTENT_TYPE);
	const char *target = header(k->c, "X-Amz-Target");
	struct sqs_ident *id = conn_ident(k->c);
	uint64_t n = ++request_seq;

	snprintf(r->request_id, sizeof r->request_id,
		 "%08" PRIx64 "-0000-4000-8000-%012" PRIx64,
		 (uint64_t)time(NULL) & 0xffffffff, n);
	r->host = header(k->c, MHD_HTTP_HEADER_HOST);
	r->path = url;
	r->json = ct && strncmp(ct, "application/x-amz-json", 22) == 0;
	if (id && !sqs_keys_on())
		r->who = *id;
	if (k->too_big)
		return sqs_fail(r, E_INVALID_PARAM, "The request is too large.");
	if (r->json) {
		const char *dot = target ? strrchr(target, '.') : NULL;

		r->action = dot ? dot + 1 : "";
		if (!dot)
			return sqs_fail(r, E_MISSING_PARAM,
					"The request must contain the "
					"X-Amz-Target header.");
		if (sqs_json_decode(&r->params, r->action,
				    k->body ? k->body : "{}",
				    k->body ? k->len : 2))
			return sqs_fail(r, E_INVALID_PARAM,
					"The request body is not valid JSON.");
	} else {
		MHD_get_connection_values(k->c, MHD_GET_ARGUMENT_KIND, add_arg,
					  &r->params);
		if (k->body && sqs_form_decode(&r->params, k->body, k->len))
			return sqs_fail(r, E_INVALID_PARAM,
					"The request body is not a valid form.");
		r->action = sqs_param(&r->params, "Action", NULL);
		if (!r->action)
			return sqs_fail(r, E_MISSING_PARAM, "The request must "
					"contain the parameter Action.");
	}
	if (sqs_keys_on() && identify(k, method))
		return -1;
	if (!r->who.known)
		return sqs_fail(r, E_ACCESS_DENIED, "The connection's local "
				"user could not be found.");
	if (!sqs.cfg.allow_other && r->who.uid != sqs.cfg.owner)
		return sqs_fail(r, E_ACCESS_DENIED, "Only the mounting user "
				"is served (mount with -o allow_other to "
				"serve others).");
	return sqs_dispatch(r);
}

static enum MHD_Result respond(struct conn *k, int rc)
{
	struct sqs_req *r = &k->req;
	struct MHD_Response *resp;
	struct sqs_reply out;
	enum MHD_Result ret;
	int bad;

	if (rc == 0)
		bad = sqs_reply_ok(r->json, r->action, r->out, r->request_id,
				   &out);
	else
		bad = sqs_reply_err(r->json, r->err, r->errmsg, r->request_id,
				    &out);
	r->out = NULL;
	if (bad)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(out.len, out.body,
					       MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(out.body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				out.content_type);
	MHD_add_response_header(resp, "x-amzn-RequestId", r->request_id);
	if (out.query_error[0])
		MHD_add_response_header(resp, "x-amzn-query-error",
					out.query_error);
	ret = MHD_queue_response(k->c, (unsigned)out.status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static int gather(struct conn *k, const char *data, size_t n)
{
	if (k->too_big || k->len + n > BODY_MAX) {
		k->too_big = 1;
		return 0;
	}
	if (k->len + n + 1 > k->cap) {
		size_t cap = (k->len + n + 1) * 2;
		char *p = realloc(k->body, cap);

		if (!p)
			return -ENOMEM;
		k->body = p;
		k->cap = cap;
	}
	memcpy(k->body + k->len, data, n);
	k->len += n;
	k->body[k->len] = '\0';
	return 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
			      const char *url, const char *method,
			      const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	struct conn *k = *con_cls;
	int rc;

	(void)cls, (void)url, (void)version;
	if (!k)
		return MHD_NO;
	if (!k->begun) {
		k->begun = 1;
		k->c = c;
		pthread_mutex_lock(&lock);
		live++;
		pthread_mutex_unlock(&lock);
		return MHD_YES;
	}
	if (*upload_size) {
		rc = gather(k, upload, *upload_size);
		*upload_size = 0;
		return rc ? MHD_NO : MHD_YES;
	}
	if (!k->started) {
		k->started = 1;
		rc = start(k, url, method);
	} else {
		rc = sqs_receive_again(&k->req, k->timed_out);
	}
	while (rc == 1) {
		int parked_rc = park(k);

		if (parked_rc == 0)
			return MHD_YES;
		rc = sqs_receive_again(&k->req, parked_rc < 0);
	}
	return respond(k, rc);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct conn *k = *con_cls;

	(void)cls, (void)c;
	if (!k)
		return;
	pthread_mutex_lock(&lock);
	if (k->parked) {
		/* closed while parked: take it off the list */
		if (k->prev)
			k->prev->next = k->next;
		else
			parked = k->next;
		if (k->next)
			k->next->prev = k->prev;
	}
	if (--live == 0)
		pthread_cond_broadcast(&drained);
	pthread_mutex_unlock(&lock);
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		sqs_receive_undo(&k->req);
	sqs_receive_free(&k->req);
	json_decref(k->req.out);
	sqs_params_free(&k->req.params);
	free(k->body);
	free(k->uri);
	free(k);
	*con_cls = NULL;
}

/* The first call of a request: its raw URI (the handler gets it decoded
 * and without the query, which a signature covers). */
static void *uri_seen(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct conn *k = calloc(1, sizeof(*k));

	(void)cls, (void)c;
	if (k && !(k->uri = strdup(uri))) {
		free(k);
		k = NULL;
	}
	return k;
}

static void connection(void *cls, struct MHD_Connection *c, void **ctx,
		       enum MHD_ConnectionNotificationCode code)
{
	(void)cls, (void)c;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		*ctx = calloc(1, sizeof(struct sqs_ident));
	} else {
		free(*ctx);
		*ctx = NULL;
	}
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];

	(void)cls;
	vsnprintf(line, sizeof line, fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	sqs.cfg.log(SPOOL_LOG_DEBUG, "sqs: http: %s", line);
}

/* ---------------------------------------------------------- listening */

static int loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr)
			>> 24) == 127;
	return sa->sa_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)
					     ->sin6_addr);
}

/* Splits "[ADDR:]PORT" ("[::1]:PORT" for IPv6) and binds it. */
static int listen_on(const char *spec, int *fd_out, int *v6, char *err,
		     size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char addr[256] = "127.0.0.1";
	const char *port = spec, *colon = strrchr(spec, ':');
	int fd, one = 1, rc;

	if (colon) {
		size_t n = (size_t)(colon - spec);

		if (spec[0] == '[' && n >= 2 && spec[n - 1] == ']')
			snprintf(addr, sizeof addr, "%.*s", (int)n - 2,
				 spec + 1);
		else
			snprintf(addr, sizeof addr, "%.*s", (int)n, spec);
		port = colon + 1;
	}
	if (!*port || strspn(port, "0123456789") != strlen(port) ||
	    atoi(port) > 65535) {
		snprintf(err, errlen, "--sqs takes [ADDR:]PORT, not %s", spec);
		return -1;
	}
	rc = getaddrinfo(addr, port, &hints, &ai);
	if (rc) {
		snprintf(err, errlen, "--sqs %s: %s", spec, gai_strerror(rc));
		return -1;
	}
	if (!loopback(ai->ai_addr) && !sqs.cfg.keys) {
		snprintf(err, errlen, "--sqs %s: refusing a non-loopback "
			 "address without --sqs-keys (anyone who can reach it "
			 "would be served)", spec);
		freeaddrinfo(ai);
		return -1;
	}
	*v6 = ai->ai_family == AF_INET6;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
				 sizeof one) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		snprintf(err, errlen, "--sqs %s: cannot listen: %s", spec,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	*fd_out = fd;
	return 0;
}

static void log_listening(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (void *)&ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
		sqs.cfg.log(SPOOL_LOG_INFO, "serving SQS on http://%s:%d", host,
			    port);
	} else {
		struct sockaddr_in6 *in6 = (void *)&ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		port = ntohs(in6->sin6_port);
		sqs.cfg.log(SPOOL_LOG_INFO, "serving SQS on http://[%s]:%d",
			    host, port);
	}
}

int sqs_start(spool_db *db, const struct sqs_config *cfg, char *err,
	      size_t errlen)
{
	pthread_condattr_t ca;
	int fd, v6 = 0, slot;

	sqs.db = db;
	sqs.cfg = *cfg;
	if (cfg->keys && sqs_keys_load(cfg->keys, err, errlen) < 0)
		return -1;
	if (listen_on(cfg->listen, &fd, &v6, err, errlen) < 0) {
		sqs_keys_free();
		return -1;
	}
	slot = spool_udata_slot(db);
	if (slot < 0 || spool_wake_subscribe(db, wake, NULL) < 0) {
		snprintf(err, errlen, "--sqs: the engine has no room for "
			 "another front end");
		close(fd);
		sqs_keys_free();
		return -1;
	}
	sqs.slot = slot;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cond, &ca);
	pthread_cond_init(&drained, &ca);
	pthread_condattr_destroy(&ca);
	mhd = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD |
			       MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
			       (v6 ? MHD_USE_IPv6 : 0),
			       0, NULL, NULL, handle, NULL,
			       MHD_OPTION_LISTEN_SOCKET, fd,
			       MHD_OPTION_THREAD_POOL_SIZE,
			       (unsigned)POOL_THREADS,
			       MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
			       MHD_OPTION_NOTIFY_CONNECTION, connection, NULL,
			       MHD_OPTION_URI_LOG_CALLBACK, uri_seen, NULL,
			       MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
			       MHD_OPTION_CONNECTION_TIMEOUT, 120u,
			       MHD_OPTION_END);
	if (!mhd) {
		snprintf(err, errlen, "--sqs %s: the HTTP server did not "
			 "start", cfg->listen);
		close(fd);
		sqs_keys_free();
		return -1;
	}
	pthread_mutex_lock(&lock);
	running = 1;
	stopping = 0;
	pthread_mutex_unlock(&lock);
	if (pthread_create(&timer, NULL, timer_main, NULL) != 0) {
		MHD_stop_daemon(mhd);
		mhd = NULL;
		snprintf(err, errlen, "--sqs: cannot start a thread");
		return -1;
	}
	log_listening(fd);
	return 0;
}

/* How long a stop waits for the answers of requests under way (parked
 * polls answer at once: they are resumed as timed out). */
#define DRAIN_MS 5000

void sqs_stop(void)
{
	struct timespec until;
	struct qstate *s;
	int fd;

	if (!mhd)
		return;
	fd = MHD_quiesce_daemon(mhd);   /* no new connections */
	pthread_mutex_lock(&lock);
	stopping = 1;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(timer, NULL);      /* it resumed every parked poll */
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += DRAIN_MS / 1000;
	pthread_mutex_lock(&lock);
	while (live > 0 &&
	       pthread_cond_timedwait(&drained, &lock, &until) == 0)
		;
	pthread_mutex_unlock(&lock);
	MHD_stop_daemon(mhd);
	if (fd >= 0)
		close(fd);
	mhd = NULL;
	pthread_mutex_lock(&lock);
	running = 0;
	while ((s = qstates)) {
		qstates = s->all;
		free(s);
	}
	pthread_mutex_unlock(&lock);
	pthread_cond_destroy(&cond);
	pthread_cond_destroy(&drained);
	sqs_keys_free();
}
