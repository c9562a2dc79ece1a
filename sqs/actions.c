/*
 * actions.c - the SQS actions on engine/spool.h: queues, sending,
 * deleting, visibility and queue attributes (receiving is receive.c).
 * Each reads the request's flat parameters (params.c), checks what SQS
 * checks, calls the engine, and builds its output as the JSON protocol
 * has it (reply.c turns it into XML for the Query protocol).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqs_i.h"

#define ACCOUNT "000000000000"
#define REGION "us-east-1"
#define BATCH_MAX 10
#define ATTRS_MAX 10
#define BATCH_BYTES_MAX 1048576

int sqs_fail(struct sqs_req *req, enum sqs_err e, const char *fmt, ...)
{
	va_list ap;

	req->err = e;
	va_start(ap, fmt);
	vsnprintf(req->errmsg, sizeof req->errmsg, fmt, ap);
	va_end(ap);
	return -1;
}

static int fail_rc(struct sqs_req *req, int rc)
{
	enum sqs_err e = sqs_err_of(rc);

	if (e == E_NONEXISTENT_QUEUE)
		return sqs_fail(req, e, "The specified queue does not exist.");
	if (e == E_OVER_LIMIT)
		return sqs_fail(req, e, "The queue holds its max_depth of "
				"messages.");
	return sqs_fail(req, e, "%s", strerror(-rc));
}

static int ok(struct sqs_req *req, json_t *out)
{
	if (!out)
		return sqs_fail(req, E_INTERNAL, "Out of memory.");
	req->out = out;
	return 0;
}

int sqs_int_param(struct sqs_req *req, const char *name, const char *v,
		     long lo, long hi, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = v ? strtol(v, &end, 10) : 0;
	if (!v || !*v || *end || errno || n < lo || n > hi)
		return sqs_fail(req, E_INVALID_PARAM, "Value %s for parameter "
				"%s is invalid. Reason: Must be between %ld "
				"and %ld, if provided.", v ? v : "", name, lo,
				hi);
	*out = n;
	return 0;
}

static void queue_url(const struct sqs_req *req, const char *name, char *out,
		      size_t len)
{
	snprintf(out, len, "http://%s/" ACCOUNT "/%s",
		 req->host ? req->host : "localhost", name);
}

static void queue_arn(const char *name, char *out, size_t len)
{
	snprintf(out, len, "arn:aws:sqs:" REGION ":" ACCOUNT ":%s", name);
}

int sqs_req_queue(struct sqs_req *req, spool_queue **q)
{
	const char *url = sqs_param(&req->params, "QueueUrl", NULL);
	char name[SPOOL_NAME_MAX + 1];

	if (!url && req->path && strcmp(req->path, "/") != 0)
		url = req->path;
	if (!url)
		return sqs_fail(req, E_MISSING_PARAM, "The request must "
				"contain the parameter QueueUrl.");
	if (sqs_url_queue(url, name) || spool_queue_open(sqs.db, name, q))
		return sqs_fail(req, E_NONEXISTENT_QUEUE,
				"The specified queue does not exist.");
	return 0;
}

int sqs_req_may(struct sqs_req *req, spool_queue *q, int want)
{
	struct spool_queue_attr a;
	int rc = spool_queue_getattr(q, &a);

	if (rc)
		return fail_rc(req, rc);
	if (want == 0 ? (req->who.uid != 0 && req->who.uid != a.uid)
		      : !sqs_may(&req->who, &a, want))
		return sqs_fail(req, E_ACCESS_DENIED, "Access to the queue %s "
				"is denied (its mode is %04o, owner %u).",
				spool_queue_name(q), a.mode, a.uid);
	return 0;
}

/* Opens the request's queue and checks want (4 r, 2 w; 0 the owner). */
static int open_for(struct sqs_req *req, int want, spool_queue **q)
{
	if (sqs_req_queue(req, q))
		return -1;
	if (sqs_req_may(req, *q, want)) {
		spool_queue_close(*q);
		*q = NULL;
		return -1;
	}
	return 0;
}

/* --------------------------------------------------- queue attributes */

/* Queue attributes from Attribute.N.Name/Value as config lines, and
 * ReceiveMessageWaitTimeSeconds (kept as the queue's extra value
 * sqs.receive_wait) in *wait (-1 when not given). */
static int attrs_to_config(struct sqs_req *req, char *text, size_t len,
			   long *wait)
{
	size_t used = 0;

	text[0] = '\0';
	*wait = -1;
	for (int i = 1;; i++) {
		const char *name = sqs_paramf(&req->params, NULL,
					      "Attribute.%d.Name", i);
		const char *v = sqs_paramf(&req->params, NULL,
					   "Attribute.%d.Value", i);
		long n;

		if (!name)
			return 0;
		if (!v)
			v = "";
		if (strcmp(name, "VisibilityTimeout") == 0) {
			if (sqs_int_param(req, name, v, 0, 43200, &n))
				goto bad;
			used += (size_t)snprintf(text + used, len - used,
				"visibility_timeout=%ld\n", n);
		} else if (strcmp(name, "DelaySeconds") == 0) {
			if (sqs_int_param(req, name, v, 0, 900, &n))
				goto bad;
			used += (size_t)snprintf(text + used, len - used,
				"delay=%ld\n", n);
		} else if (strcmp(name, "MaximumMessageSize") == 0) {
			if (sqs_int_param(req, name, v, 1024, 1048576, &n))
				goto bad;
			used += (size_t)snprintf(text + used, len - used,
				"max_size=%ld\n", n);
		} else if (strcmp(name, "MessageRetentionPeriod") == 0) {
			if (sqs_int_param(req, name, v, 60, 1209600, &n))
				goto bad;
			used += (size_t)snprintf(text + used, len - used,
				"retention=%ld\n", n);
		} else if (strcmp(name, "ReceiveMessageWaitTimeSeconds") == 0) {
			if (sqs_int_param(req, name, v, 0, 20, &n))
				goto bad;
			*wait = n;
		} else if (strcmp(name, "RedrivePolicy") == 0) {
			json_t *p = *v ? json_loads(v, 0, NULL) : NULL;
			json_t *arn = json_object_get(p, "deadLetterTargetArn");
			json_t *mrc = json_object_get(p, "maxReceiveCount");
			const char *a = json_string_value(arn), *dl;
			long cnt = json_is_integer(mrc)
					   ? (long)json_integer_value(mrc)
				   : json_is_string(mrc)
					   ? atol(json_string_value(mrc)) : 0;

			dl = a ? strrchr(a, ':') : NULL;
			if (!*v) {
				used += (size_t)snprintf(text + used,
					len - used, "max_receives=0\n");
			} else if (!dl || cnt < 1 || cnt > 1000 ||
				   !spool_name_valid(dl + 1, strlen(dl + 1))) {
				json_decref(p);
				return sqs_fail(req, E_INVALID_ATTR_VALUE,
					"Value %s for parameter RedrivePolicy "
					"is invalid.", v);
			} else {
				used += (size_t)snprintf(text + used,
					len - used, "max_receives=%ld\n"
					"dead_letter=%s\n", cnt, dl + 1);
			}
			json_decref(p);
		} else if (strcmp(name, "FifoQueue") == 0 &&
			   strcmp(v, "false") != 0) {
			return sqs_fail(req, E_UNSUPPORTED, "FIFO queues are "
					"not supported by spoolfs yet.");
		} else if (strcmp(name, "FifoQueue") != 0) {
			return sqs_fail(req, E_INVALID_ATTR_NAME,
					"Unknown Attribute %s.", name);
		}
		if (used >= len)
			return sqs_fail(req, E_INVALID_ATTR_VALUE,
					"Too many attributes.");
	}
bad:
	req->err = E_INVALID_ATTR_VALUE;
	return -1;
}

static int add_attr(json_t *o, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int add_attr(json_t *o, const char *name, const char *fmt, ...)
{
	char v[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v, sizeof v, fmt, ap);
	va_end(ap);
	return json_object_set_new(o, name, json_string(v));
}

static const char *const queue_attr_names[] = {
	"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
	"ApproximateNumberOfMessagesDelayed", "VisibilityTimeout",
	"DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod",
	"ReceiveMessageWaitTimeSeconds", "CreatedTimestamp",
	"LastModifiedTimestamp", "QueueArn", "RedrivePolicy",
	"SqsManagedSseEnabled",
};
#define NQATTRS (sizeof queue_attr_names / sizeof queue_attr_names[0])

/* Queue attribute i of q into o (RedrivePolicy only when set). */
static void queue_attr(spool_queue *q, size_t i, const struct spool_stats *st,
		       const struct spool_settings *s,
		       const struct spool_queue_attr *a, json_t *o)
{
	const char *n = queue_attr_names[i], *name = spool_queue_name(q);
	char arn[512], dl[SPOOL_NAME_MAX + 8];

	switch (i) {
	case 0: add_attr(o, n, "%" PRIu64, st->visible); break;
	case 1: add_attr(o, n, "%" PRIu64, st->leased); break;
	case 2: add_attr(o, n, "%" PRIu64, st->delayed); break;
	case 3: add_attr(o, n, "%" PRId64, s->visibility_timeout_ms / 1000);
		break;
	case 4: add_attr(o, n, "%" PRId64, s->delay_ms / 1000); break;
	case 5: add_attr(o, n, "%" PRIu64, s->max_size); break;
	case 6: add_attr(o, n, "%" PRId64, s->retention_ms / 1000); break;
	case 7: add_attr(o, n, "%ld", sqs_queue_wait(q)); break;
	case 8:
		if (spool_queue_meta_get(q, "sqs.created", arn, sizeof arn) > 0)
			add_attr(o, n, "%s", arn);
		else
			add_attr(o, n, "%" PRId64, a->ctime_ms / 1000);
		break;
	case 9: add_attr(o, n, "%" PRId64, a->ctime_ms / 1000); break;
	case 10: queue_arn(name, arn, sizeof arn);
		add_attr(o, n, "%s", arn);
		break;
	case 11:
		if (!s->max_receives)
			break;
		if (s->dead_letter[0])
			snprintf(dl, sizeof dl, "%s", s->dead_letter);
		else
			snprintf(dl, sizeof dl, "%.200s.dead", name);
		queue_arn(dl, arn, sizeof arn);
		add_attr(o, n, "{\"deadLetterTargetArn\":\"%s\","
			 "\"maxReceiveCount\":%" PRIu32 "}", arn,
			 s->max_receives);
		break;
	default: add_attr(o, n, "false"); break;
	}
}

static int get_queue_attributes(struct sqs_req *req)
{
	struct spool_stats st;
	struct spool_settings s;
	struct spool_queue_attr a;
	spool_queue *q;
	json_t *attrs = json_object(), *out;
	int rc;

	if (open_for(req, 4, &q)) {
		json_decref(attrs);
		return -1;
	}
	rc = spool_stats_get(q, &st);
	if (!rc)
		rc = spool_settings_get(q, &s);
	if (!rc)
		rc = spool_queue_getattr(q, &a);
	for (int i = 1; !rc; i++) {
		const char *n = sqs_paramf(&req->params, NULL,
					   "AttributeName.%d", i);
		size_t k;

		if (!n)
			break;
		for (k = 0; k < NQATTRS; k++)
			if (strcmp(n, "All") == 0 ||
			    strcmp(n, queue_attr_names[k]) == 0)
				queue_attr(q, k, &st, &s, &a, attrs);
		if (strcmp(n, "All") != 0 && !json_object_get(attrs, n) &&
		    strcmp(n, "RedrivePolicy") != 0) {
			spool_queue_close(q);
			json_decref(attrs);
			return sqs_fail(req, E_INVALID_ATTR_NAME,
					"Unknown Attribute %s.", n);
		}
	}
	spool_queue_close(q);
	if (rc) {
		json_decref(attrs);
		return fail_rc(req, rc);
	}
	out = json_object();
	if (json_object_size(attrs))
		json_object_set(out, "Attributes", attrs);
	json_decref(attrs);
	return ok(req, out);
}

long sqs_queue_wait(spool_queue *q)
{
	char v[16];

	return spool_queue_meta_get(q, "sqs.receive_wait", v, sizeof v) > 0
		       ? atol(v) : 0;
}

/* Applies config text and the SQS wait (if >= 0) to q: one write. */
static int apply_attrs(spool_queue *q, const char *text, long wait)
{
	char v[16];

	snprintf(v, sizeof v, "%ld", wait);
	return wait >= 0 ? spool_config_apply_meta(q, text, strlen(text),
						   "sqs.receive_wait", v)
			 : spool_config_apply(q, text, strlen(text));
}

static int set_queue_attributes(struct sqs_req *req)
{
	char text[2048];
	spool_queue *q;
	long wait;
	int rc;

	if (attrs_to_config(req, text, sizeof text, &wait))
		return -1;
	if (open_for(req, 0, &q))
		return -1;
	rc = apply_attrs(q, text, wait);
	spool_queue_close(q);
	if (rc == -EINVAL)
		return sqs_fail(req, E_INVALID_ATTR_VALUE, "Invalid value "
				"for an attribute.");
	return rc ? fail_rc(req, rc) : ok(req, json_object());
}

/* -------------------------------------------------------------- queues */

static int sqs_name_valid(const char *name)
{
	size_t n = strlen(name);

	return n >= 1 && n <= 80 &&
	       strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			    "0123456789-_") == n;
}

static json_t *url_out(struct sqs_req *req, const char *name)
{
	char url[512];

	queue_url(req, name, url, sizeof url);
	return json_pack("{s:s}", "QueueUrl", url);
}

/* The same settings as the config text asks for? */
static int same_settings(spool_queue *q, const char *text)
{
	char cur[4096], line[256];
	const char *p = text;
	int n = spool_config_format(q, cur, sizeof cur);

	if (n < 0 || (size_t)n >= sizeof cur)
		return 0;
	while (*p) {
		size_t len = strcspn(p, "\n");
		char key[64];
		const char *k;

		snprintf(line, sizeof line, "%.*s", (int)len, p);
		p += len + (p[len] == '\n');
		snprintf(key, sizeof key, "%.*s", (int)strcspn(line, "="), line);
		/* the current line of that key, and its value */
		for (k = cur; k && *k; k = strchr(k, '\n') ? strchr(k, '\n') + 1
							    : NULL) {
			size_t kl = strcspn(k, "\n");

			if (strncmp(k, key, strlen(key)) == 0 &&
			    k[strlen(key)] == '=') {
				if (kl != strlen(line) ||
				    strncmp(k, line, kl) != 0)
					return 0;
				break;
			}
		}
	}
	return 1;
}

static int create_queue(struct sqs_req *req)
{
	const char *name = sqs_param(&req->params, "QueueName", NULL);
	struct spool_queue_attr a = { .mode = 0755 };
	char text[2048], now[32];
	spool_queue *q;
	long wait;
	int rc;

	if (!name)
		return sqs_fail(req, E_MISSING_PARAM, "The request must "
				"contain the parameter QueueName.");
	if (strlen(name) > 5 && strcmp(name + strlen(name) - 5, ".fifo") == 0)
		return sqs_fail(req, E_UNSUPPORTED, "FIFO queues are not "
				"supported by spoolfs yet.");
	if (!sqs_name_valid(name))
		return sqs_fail(req, E_INVALID_PARAM, "Can only include "
				"alphanumeric characters, hyphens, or "
				"underscores. 1 to 80 in length");
	if (attrs_to_config(req, text, sizeof text, &wait))
		return -1;
	if (spool_queue_open(sqs.db, name, &q) == 0) {
		rc = same_settings(q, text) &&
		     (wait < 0 || wait == sqs_queue_wait(q));
		spool_queue_close(q);
		if (!rc)
			return sqs_fail(req, E_QUEUE_EXISTS, "A queue already "
					"exists with the same name and a "
					"different value for attribute(s).");
		return ok(req, url_out(req, name));
	}
	if (req->who.uid != 0 && req->who.uid != sqs.cfg.owner)
		return sqs_fail(req, E_ACCESS_DENIED, "Only the mounting user "
				"may create queues (as with mkdir).");
	a.uid = req->who.uid;
	a.gid = req->who.gid == (gid_t)-1 ? 0 : req->who.gid;
	rc = spool_queue_create(sqs.db, name, &a);
	if (rc == -EEXIST)
		return ok(req, url_out(req, name));
	if (rc)
		return fail_rc(req, rc);
	/* The queue's SQS creation time (its ctime moves with chmod). */
	snprintf(now, sizeof now, "%" PRId64, spool_now(sqs.db) / 1000);
	if (spool_queue_open(sqs.db, name, &q) == 0) {
		rc = spool_queue_meta_set(q, "sqs.created", now);
		if (!rc)
			rc = apply_attrs(q, text, wait);
		spool_queue_close(q);
		if (rc) {
			spool_queue_delete(sqs.db, name);
			return rc == -EINVAL
				? sqs_fail(req, E_INVALID_ATTR_VALUE,
					   "Invalid value for an attribute.")
				: fail_rc(req, rc);
		}
	}
	return ok(req, url_out(req, name));
}

static int get_queue_url(struct sqs_req *req)
{
	const char *name = sqs_param(&req->params, "QueueName", NULL);
	spool_queue *q;

	if (!name)
		return sqs_fail(req, E_MISSING_PARAM, "The request must "
				"contain the parameter QueueName.");
	if (spool_queue_open(sqs.db, name, &q))
		return sqs_fail(req, E_NONEXISTENT_QUEUE,
				"The specified queue does not exist.");
	spool_queue_close(q);
	return ok(req, url_out(req, name));
}

static int list_queues(struct sqs_req *req)
{
	const char *prefix = sqs_param(&req->params, "QueueNamePrefix", NULL);
	const char *max_s = sqs_param(&req->params, "MaxResults", NULL);
	const char *token = sqs_param(&req->params, "NextToken", NULL);
	char name[SPOOL_NAME_MAX + 1], url[512];
	json_t *urls = json_array(), *out = json_object();
	long max = 1000;
	size_t plen = prefix ? strlen(prefix) : 0;

	if (max_s && sqs_int_param(req, "MaxResults", max_s, 1, 1000, &max)) {
		json_decref(urls);
		json_decref(out);
		return -1;
	}
	snprintf(name, sizeof name, "%s", token ? token : "");
	while (spool_queue_next(sqs.db, name, name) == 0) {
		if (plen && strncmp(name, prefix, plen) != 0)
			continue;
		if ((long)json_array_size(urls) == max) {
			/* more remain: the token is the last name given */
			json_object_set_new(out, "NextToken", json_string(
				strrchr(json_string_value(json_array_get(
					urls, json_array_size(urls) - 1)),
					'/') + 1));
			break;
		}
		queue_url(req, name, url, sizeof url);
		json_array_append_new(urls, json_string(url));
	}
	if (json_array_size(urls))
		json_object_set(out, "QueueUrls", urls);
	json_decref(urls);
	return ok(req, out);
}

static int delete_queue(struct sqs_req *req)
{
	spool_queue *q;
	char name[SPOOL_NAME_MAX + 1];
	int rc;

	if (open_for(req, 0, &q))
		return -1;
	snprintf(name, sizeof name, "%s", spool_queue_name(q));
	spool_queue_close(q);
	rc = spool_queue_delete_all(sqs.db, name);
	return rc ? fail_rc(req, rc) : ok(req, json_object());
}

static int purge_queue(struct sqs_req *req)
{
	spool_queue *q;
	int rc;

	if (open_for(req, 0, &q))
		return -1;
	rc = spool_purge_states(q, SPOOL_VISIBLE | SPOOL_DELAYED |
				   SPOOL_LEASED | SPOOL_CORRUPT, NULL);
	spool_queue_close(q);
	return rc ? fail_rc(req, rc) : ok(req, json_object());
}

/* A dead-letter queue's sources: queues whose max_receives sends there. */
static int list_dead_letter_sources(struct sqs_req *req)
{
	char name[SPOOL_NAME_MAX + 1] = "", url[512], dl[SPOOL_NAME_MAX + 8];
	json_t *urls = json_array(), *out = json_object();
	spool_queue *q, *s;

	if (open_for(req, 4, &q)) {
		json_decref(urls);
		json_decref(out);
		return -1;
	}
	while (spool_queue_next(sqs.db, name, name) == 0) {
		struct spool_settings set;

		if (spool_queue_open(sqs.db, name, &s))
			continue;
		if (spool_settings_get(s, &set) == 0 && set.max_receives) {
			if (set.dead_letter[0])
				snprintf(dl, sizeof dl, "%s", set.dead_letter);
			else
				snprintf(dl, sizeof dl, "%.200s.dead", name);
			if (strcmp(dl, spool_queue_name(q)) == 0) {
				queue_url(req, name, url, sizeof url);
				json_array_append_new(urls, json_string(url));
			}
		}
		spool_queue_close(s);
	}
	spool_queue_close(q);
	json_object_set_new(out, "queueUrls", urls);
	return ok(req, out);
}

/* ------------------------------------------------------------- batches */

/* Counts and checks the entries <prefix>.N.Id: 1..10, distinct, valid. */
static int batch_entries(struct sqs_req *req, const char *prefix, int *n)
{
	const char *ids[BATCH_MAX];
	int i;

	for (i = 0;; i++) {
		const char *id = sqs_paramf(&req->params, NULL, "%s.%d.Id",
					    prefix, i + 1);

		if (!id)
			break;
		if (i == BATCH_MAX)
			return sqs_fail(req, E_TOO_MANY_ENTRIES, "Maximum "
					"number of entries per request are %d. "
					"You have sent %d.", BATCH_MAX, i + 1);
		if (!sqs_name_valid(id))
			return sqs_fail(req, E_INVALID_BATCH_ID, "A batch entry "
					"id can only contain alphanumeric "
					"characters, hyphens and underscores. "
					"It can be at most 80 letters long.");
		for (int j = 0; j < i; j++)
			if (strcmp(ids[j], id) == 0)
				return sqs_fail(req, E_IDS_NOT_DISTINCT,
						"Id %s repeated.", id);
		ids[i] = id;
	}
	if (i == 0)
		return sqs_fail(req, E_EMPTY_BATCH, "There should be at least "
				"one %s in the request.", prefix);
	*n = i;
	return 0;
}

static json_t *batch_failed(const char *id, enum sqs_err e, const char *msg,
			    int sender)
{
	return json_pack("{s:s,s:b,s:s,s:s}", "Id", id, "SenderFault", sender,
			 "Code", sqs_err_code(e), "Message", msg);
}

/* Output of a batch: Successful and Failed, each left out when empty. */
static json_t *batch_out(json_t *good, json_t *failed)
{
	json_t *out = json_object();

	if (json_array_size(good))
		json_object_set(out, "Successful", good);
	if (json_array_size(failed))
		json_object_set(out, "Failed", failed);
	json_decref(good);
	json_decref(failed);
	return out;
}

/* ------------------------------------------------------------- sending */

/* One message to send, from its parameters. */
struct msg_in {
	const char *body;
	size_t len;
	struct spool_push push;
	struct sqs_attr a[ATTRS_MAX];
	unsigned char *bin[ATTRS_MAX];
	struct spool_attr sa[ATTRS_MAX + 1];
	char xname[ATTRS_MAX][262];
	char types[ATTRS_MAX * 300];
	char md5_body[SQS_MD5_HEX], md5_attrs[SQS_MD5_HEX], md5_sys[SQS_MD5_HEX];
	int has_sys;
};

static void msg_in_free(struct msg_in *m)
{
	for (int i = 0; i < ATTRS_MAX; i++)
		free(m->bin[i]);
}

/* Reads <prefix><kind>.N.{Name,Value.DataType,Value.StringValue,
 * Value.BinaryValue} into a[]. Returns the count, or -1. */
static int read_attrs(struct sqs_req *req, const char *prefix,
		      const char *kind, struct sqs_attr *a,
		      unsigned char **bin)
{
	int n;

	for (n = 0;; n++) {
		const char *name = sqs_paramf(&req->params, NULL, "%s%s.%d.Name",
					      prefix, kind, n + 1);
		const char *type = sqs_paramf(&req->params, NULL,
					      "%s%s.%d.Value.DataType", prefix,
					      kind, n + 1);
		size_t sl, bl;
		const char *sv = sqs_paramf(&req->params, &sl,
					    "%s%s.%d.Value.StringValue", prefix,
					    kind, n + 1);
		const char *bv = sqs_paramf(&req->params, &bl,
					    "%s%s.%d.Value.BinaryValue", prefix,
					    kind, n + 1);

		if (!name)
			return n;
		if (n == ATTRS_MAX)
			return sqs_fail(req, E_INVALID_PARAM, "Number of "
					"message attributes [%d] exceeds the "
					"allowed maximum [%d].", n + 1,
					ATTRS_MAX);
		if (strlen(name) == 0 || strlen(name) > 250 ||
		    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
				 "qrstuvwxyz0123456789-_.") != strlen(name) ||
		    name[0] == '.' || strstr(name, "..") ||
		    strncasecmp(name, "AWS.", 4) == 0 ||
		    strncasecmp(name, "Amazon.", 7) == 0 ||
		    strncmp(name, "spool.", 6) == 0)
			return sqs_fail(req, E_INVALID_PARAM, "Message "
					"attribute name '%s' is invalid or "
					"reserved.", name);
		if (!type || !*type || strlen(type) > 256 ||
		    (strncmp(type, "String", 6) && strncmp(type, "Number", 6) &&
		     strncmp(type, "Binary", 6)))
			return sqs_fail(req, E_INVALID_PARAM, "The message "
					"attribute '%s' has an invalid message "
					"attribute type.", name);
		snprintf(a[n].name, sizeof a[n].name, "%s", name);
		snprintf(a[n].type, sizeof a[n].type, "%s", type);
		a[n].binary = strncmp(type, "Binary", 6) == 0;
		if (a[n].binary) {
			if (!bv || sqs_b64_decode(bv, bl, &bin[n], &a[n].len))
				return sqs_fail(req, E_INVALID_PARAM, "The "
					"message attribute '%s' must contain "
					"a binary value.", name);
			a[n].value = bin[n];
		} else {
			if (!sv || !sl || !sqs_text_valid(sv, sl))
				return sqs_fail(req, E_INVALID_PARAM, "The "
					"message attribute '%s' must contain "
					"a non-empty message attribute value.",
					name);
			a[n].value = (const unsigned char *)sv;
			a[n].len = sl;
		}
	}
}

/* Reads the message under prefix ("" or "<Entry>.N."). */
static int msg_read(struct sqs_req *req, const char *prefix,
		    struct msg_in *m)
{
	const char *delay = sqs_paramf(&req->params, NULL, "%sDelaySeconds",
				       prefix);
	struct sqs_attr sys[ATTRS_MAX];
	unsigned char *sysbin[ATTRS_MAX] = { 0 };
	size_t used = 0;
	long d;
	int n, ns;

	m->body = sqs_paramf(&req->params, &m->len, "%sMessageBody", prefix);
	if (!m->body)
		return sqs_fail(req, E_MISSING_PARAM, "The request must "
				"contain the parameter MessageBody.");
	if (!m->len || !sqs_text_valid(m->body, m->len))
		return sqs_fail(req, m->len ? E_INVALID_CONTENTS
					    : E_MISSING_PARAM,
				m->len ? "Invalid binary character in the "
					 "message body."
				       : "The request must contain the "
					 "parameter MessageBody.");
	if (sqs_paramf(&req->params, NULL, "%sMessageGroupId", prefix) ||
	    sqs_paramf(&req->params, NULL, "%sMessageDeduplicationId", prefix))
		return sqs_fail(req, E_INVALID_PARAM, "The request include "
				"parameter that is not valid for this queue "
				"type.");
	m->push.body = m->body;
	m->push.len = m->len;
	if (delay) {
		if (sqs_int_param(req, "DelaySeconds", delay, 0, 900, &d))
			return -1;
		m->push.has_delay = 1;
		m->push.delay_ms = d * 1000;
	}
	sqs_md5_hex(m->body, m->len, m->md5_body);
	n = read_attrs(req, prefix, "MessageAttribute", m->a, m->bin);
	if (n < 0)
		return -1;
	ns = read_attrs(req, prefix, "MessageSystemAttribute", sys, sysbin);
	for (int i = 0; i < ATTRS_MAX; i++)
		free(sysbin[i]);
	if (ns < 0)
		return -1;
	if (ns > 0) {
		sqs_md5_attrs(sys, (size_t)ns, m->md5_sys);
		m->has_sys = 1;
	}
	for (int i = 0; i < n; i++) {
		snprintf(m->xname[i], sizeof m->xname[i], "user.%s",
			 m->a[i].name);
		m->sa[i] = (struct spool_attr){ m->xname[i], m->a[i].value,
						m->a[i].len };
		if (strcmp(m->a[i].type,
			   sqs_inferred_type(m->a[i].value, m->a[i].len)) != 0)
			used += (size_t)snprintf(m->types + used,
						 sizeof m->types - used,
						 "%s=%s\n", m->a[i].name,
						 m->a[i].type);
	}
	if (n)
		sqs_md5_attrs(m->a, (size_t)n, m->md5_attrs);
	if (used)
		m->sa[n++] = (struct spool_attr){ "user.spool.types", m->types,
						  used };
	m->push.attrs = m->sa;
	m->push.nattrs = (size_t)n;
	m->push.sender = req->who.sender;
	return 0;
}

static void msg_out(json_t *o, const struct msg_in *m, uint64_t id)
{
	char text[SPOOL_ID_LEN + 1];

	spool_id_format(id, text);
	json_object_set_new(o, "MD5OfMessageBody", json_string(m->md5_body));
	if (m->push.nattrs)
		json_object_set_new(o, "MD5OfMessageAttributes",
				    json_string(m->md5_attrs));
	if (m->has_sys)
		json_object_set_new(o, "MD5OfMessageSystemAttributes",
				    json_string(m->md5_sys));
	json_object_set_new(o, "MessageId", json_string(text));
}

static int push_error(struct sqs_req *req, int rc, spool_queue *q)
{
	struct spool_settings s;

	if (rc == -EFBIG && spool_settings_get(q, &s) == 0)
		return sqs_fail(req, E_INVALID_PARAM, "One or more parameters "
				"are invalid. Reason: Message must be shorter "
				"than %" PRIu64 " bytes.", s.max_size + 1);
	if (rc == -EINVAL)
		return sqs_fail(req, E_INVALID_PARAM, "One or more message "
				"attributes are too large.");
	return fail_rc(req, rc);
}

static int send_message(struct sqs_req *req)
{
	struct msg_in *m = calloc(1, sizeof(*m));
	spool_queue *q = NULL;
	uint64_t id = 0;
	json_t *out;
	int rc = -1;

	if (!m)
		return sqs_fail(req, E_INTERNAL, "Out of memory.");
	if (open_for(req, 2, &q) || msg_read(req, "", m))
		goto out;
	rc = spool_push_batch_ids(q, &m->push, 1, &id);
	if (rc) {
		rc = push_error(req, rc, q);
		goto out;
	}
	out = json_object();
	msg_out(out, m, id);
	rc = ok(req, out);
out:
	spool_queue_close(q);
	msg_in_free(m);
	free(m);
	return rc;
}

static int send_message_batch(struct sqs_req *req)
{
	static const char entry[] = "SendMessageBatchRequestEntry";
	struct msg_in *m = calloc(BATCH_MAX, sizeof(*m));
	struct spool_push push[BATCH_MAX];
	uint64_t ids[BATCH_MAX];
	int which[BATCH_MAX], n = 0, np = 0, rc = -1;
	json_t *good = json_array(), *failed = json_array();
	spool_queue *q = NULL;
	size_t total = 0;

	if (!m || open_for(req, 2, &q) || batch_entries(req, entry, &n))
		goto out;
	for (int i = 0; i < n; i++) {
		char prefix[64];
		const char *id = sqs_paramf(&req->params, NULL, "%s.%d.Id",
					    entry, i + 1);

		snprintf(prefix, sizeof prefix, "%s.%d.", entry, i + 1);
		if (msg_read(req, prefix, &m[i])) {
			json_array_append_new(failed, batch_failed(id,
				req->err, req->errmsg, 1));
			continue;
		}
		total += m[i].len;
		push[np] = m[i].push;
		which[np++] = i;
	}
	if (total > BATCH_BYTES_MAX) {
		rc = sqs_fail(req, E_BATCH_TOO_LONG, "Batch requests cannot be "
			      "longer than %d bytes.", BATCH_BYTES_MAX);
		goto out;
	}
	rc = np ? spool_push_batch_ids(q, push, (size_t)np, ids) : 0;
	for (int k = 0; k < np; k++) {
		const char *id = sqs_paramf(&req->params, NULL, "%s.%d.Id",
					    entry, which[k] + 1);
		json_t *o;

		if (rc) {
			push_error(req, rc, q);
			json_array_append_new(failed, batch_failed(id,
				req->err, req->errmsg, req->err != E_INTERNAL));
			continue;
		}
		o = json_pack("{s:s}", "Id", id);
		msg_out(o, &m[which[k]], ids[k]);
		json_array_append_new(good, o);
	}
	rc = ok(req, batch_out(good, failed));
	good = failed = NULL;
out:
	json_decref(good);
	json_decref(failed);
	spool_queue_close(q);
	for (int i = 0; m && i < BATCH_MAX; i++)
		msg_in_free(&m[i]);
	free(m);
	return rc;
}

/* ------------------------------------------- deleting and visibility */

/* The handle of one entry, parsed; on a bad one the error is set. */
static int handle_of(struct sqs_req *req, const char *h, uint64_t *id,
		     uint32_t *receives)
{
	if (!h)
		return sqs_fail(req, E_MISSING_PARAM, "The request must "
				"contain the parameter ReceiptHandle.");
	if (sqs_handle_parse(h, strlen(h), id, receives))
		return sqs_fail(req, E_RECEIPT_INVALID, "The input receipt "
				"handle \"%.200s\" is not a valid receipt "
				"handle.", h);
	return 0;
}

/* Acks one handle: a stale or unknown one does nothing (SQS: success). */
static int delete_one(struct sqs_req *req, spool_queue *q, const char *h)
{
	uint64_t id;
	uint32_t rcv;
	int rc;

	if (handle_of(req, h, &id, &rcv))
		return -1;
	rc = spool_ack_receive(q, id, rcv);
	return rc && rc != -ENOENT ? fail_rc(req, rc) : 0;
}

/* Changes one lease: vt seconds from now; 0 makes it visible now. */
static int change_one(struct sqs_req *req, spool_queue *q, const char *h,
		      const char *vt_s)
{
	uint64_t id;
	uint32_t rcv;
	long vt;
	int rc;

	if (handle_of(req, h, &id, &rcv))
		return -1;
	if (!vt_s)
		return sqs_fail(req, E_MISSING_PARAM, "The request must "
				"contain the parameter VisibilityTimeout.");
	if (sqs_int_param(req, "VisibilityTimeout", vt_s, 0, 43200, &vt))
		return -1;
	rc = spool_lease_extend_receive(q, id, rcv,
					spool_now(sqs.db) + vt * 1000);
	if (rc == -ENOENT)
		return sqs_fail(req, E_NOT_INFLIGHT, "Message does not exist "
				"or is not available for visibility timeout "
				"change.");
	return rc ? fail_rc(req, rc) : 0;
}

static int delete_message(struct sqs_req *req)
{
	spool_queue *q;
	int rc;

	if (open_for(req, 6, &q))
		return -1;
	rc = delete_one(req, q, sqs_param(&req->params, "ReceiptHandle", NULL));
	spool_queue_close(q);
	return rc ? -1 : ok(req, json_object());
}

static int change_visibility(struct sqs_req *req)
{
	spool_queue *q;
	int rc;

	if (open_for(req, 6, &q))
		return -1;
	rc = change_one(req, q, sqs_param(&req->params, "ReceiptHandle", NULL),
			sqs_param(&req->params, "VisibilityTimeout", NULL));
	spool_queue_close(q);
	return rc ? -1 : ok(req, json_object());
}

/* ChangeMessageVisibilityBatch: entry by entry. */
static int change_visibility_batch(struct sqs_req *req)
{
	static const char entry[] = "ChangeMessageVisibilityBatchRequestEntry";
	json_t *good = json_array(), *failed = json_array();
	spool_queue *q;
	int n;

	if (open_for(req, 6, &q))
		goto fail;
	if (batch_entries(req, entry, &n)) {
		spool_queue_close(q);
		goto fail;
	}
	for (int i = 1; i <= n; i++) {
		const char *id = sqs_paramf(&req->params, NULL, "%s.%d.Id",
					    entry, i);
		const char *h = sqs_paramf(&req->params, NULL,
					   "%s.%d.ReceiptHandle", entry, i);
		int rc = change_one(req, q, h, sqs_paramf(&req->params, NULL,
					"%s.%d.VisibilityTimeout", entry, i));

		if (rc)
			json_array_append_new(failed, batch_failed(id,
				req->err, req->errmsg, req->err != E_INTERNAL));
		else
			json_array_append_new(good, json_pack("{s:s}", "Id",
							      id));
	}
	spool_queue_close(q);
	return ok(req, batch_out(good, failed));
fail:
	json_decref(good);
	json_decref(failed);
	return -1;
}

/* Every entry with a well-formed handle is acked in one engine write; a
 * malformed handle fails its own entry; a stale or unknown one succeeds
 * without deleting anything (as DeleteMessage); a store error fails the
 * entries it was writing. */
static int delete_message_batch(struct sqs_req *req)
{
	static const char entry[] = "DeleteMessageBatchRequestEntry";
	json_t *good, *failed;
	uint64_t ids[BATCH_MAX];
	uint32_t rcv[BATCH_MAX];
	int res[BATCH_MAX], slot[BATCH_MAX];
	spool_queue *q;
	int n, k = 0;

	if (open_for(req, 6, &q))
		return -1;
	if (batch_entries(req, entry, &n)) {
		spool_queue_close(q);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		const char *h = sqs_paramf(&req->params, NULL,
					   "%s.%d.ReceiptHandle", entry, i + 1);

		slot[i] = handle_of(req, h, &ids[k], &rcv[k]) ? -1 : k++;
	}
	spool_ack_batch(q, ids, rcv, (size_t)k, res);
	spool_queue_close(q);
	good = json_array();
	failed = json_array();
	for (int i = 0; i < n; i++) {
		const char *id = sqs_paramf(&req->params, NULL, "%s.%d.Id",
					    entry, i + 1);
		int rc = slot[i] < 0 ? 0 : res[slot[i]];

		if (slot[i] < 0)        /* the entry's own error, set again */
			handle_of(req, sqs_paramf(&req->params, NULL,
						  "%s.%d.ReceiptHandle", entry,
						  i + 1), &ids[0], &rcv[0]);
		else if (rc && rc != -ENOENT)
			fail_rc(req, rc);
		if (slot[i] < 0 || (rc && rc != -ENOENT))
			json_array_append_new(failed, batch_failed(id,
				req->err, req->errmsg, req->err != E_INTERNAL));
		else
			json_array_append_new(good, json_pack("{s:s}", "Id",
							      id));
	}
	return ok(req, batch_out(good, failed));
}

/* ------------------------------------------------------------ dispatch */

struct action {
	const char *name;
	int (*run)(struct sqs_req *req);
};

static const struct action actions[] = {
	{ "CreateQueue", create_queue },
	{ "GetQueueUrl", get_queue_url },
	{ "ListQueues", list_queues },
	{ "DeleteQueue", delete_queue },
	{ "PurgeQueue", purge_queue },
	{ "SendMessage", send_message },
	{ "SendMessageBatch", send_message_batch },
	{ "ReceiveMessage", sqs_receive },
	{ "DeleteMessage", delete_message },
	{ "DeleteMessageBatch", delete_message_batch },
	{ "ChangeMessageVisibility", change_visibility },
	{ "ChangeMessageVisibilityBatch", change_visibility_batch },
	{ "GetQueueAttributes", get_queue_attributes },
	{ "SetQueueAttributes", set_queue_attributes },
	{ "ListDeadLetterSourceQueues", list_dead_letter_sources },
};

/* SQS actions not built (yet): refused as SQS refuses what a queue does
 * not support. */
static const char *const unsupported[] = {
	"TagQueue", "UntagQueue", "ListQueueTags", "AddPermission",
	"RemovePermission", "StartMessageMoveTask", "CancelMessageMoveTask",
	"ListMessageMoveTasks",
};

int sqs_dispatch(struct sqs_req *req)
{
	for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
		if (strcmp(actions[i].name, req->action) == 0)
			return actions[i].run(req);
	for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
		if (strcmp(unsupported[i], req->action) == 0)
			return sqs_fail(req, E_UNSUPPORTED, "%s is not "
					"supported by spoolfs yet "
					"(docs/sqs.md).", req->action);
	return sqs_fail(req, E_INVALID_ACTION, "The action %.100s is not "
			"valid for this endpoint.", req->action);
}
