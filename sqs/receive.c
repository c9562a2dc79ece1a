/*
 * receive.c - ReceiveMessage: up to 10 leases, each with the request's
 * visibility timeout in the lease's own write; the messages with their
 * system and message attributes and MD5s; and, when nothing is there and
 * the request may wait, a park (server.c) until a wake-up of the queue or
 * the deadline. A response that never reaches the client gives its leases
 * back uncounted (as a file read that was interrupted does).
 *
 * A body that is not SQS text (bytes written through the files) goes out
 * base64-encoded with the message attribute spool.encoding=base64.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqs_i.h"

#define RECV_MAX 10
#define WAIT_MAX_S 20
/* Bodies up to this size are leased straight into the buffer; longer
 * ones read their rest after. */
#define LEASE_BUF (256u << 10)

struct sqs_recv {
	spool_queue *q;
	long max;
	int64_t vt_ms;          /* -1: the queue's */
	int64_t deadline;       /* monotonic ms */
	uint64_t seq;           /* wake sequence before the last try */
	char *buf;
	uint64_t ids[RECV_MAX];
	uint32_t receives[RECV_MAX];
	int n;                  /* leased for the response */
};

spool_queue *sqs_recv_queue(const struct sqs_req *req)
{
	return req->recv->q;
}

uint64_t sqs_recv_seq(const struct sqs_req *req)
{
	return req->recv->seq;
}

int64_t sqs_recv_deadline(const struct sqs_req *req)
{
	return req->recv->deadline;
}

void sqs_receive_undo(struct sqs_req *req)
{
	struct sqs_recv *r = req->recv;

	for (int i = 0; r && i < r->n; i++)
		spool_release(r->q, r->ids[i], 1);
	if (r)
		r->n = 0;
}

void sqs_receive_free(struct sqs_req *req)
{
	struct sqs_recv *r = req->recv;

	if (!r)
		return;
	spool_queue_close(r->q);
	free(r->buf);
	free(r);
	req->recv = NULL;
}

/* Is name asked for by the list <list>.N (All, .*, prefix.*, exact)? */
static int wanted(const struct sqs_req *req, const char *list,
		  const char *name)
{
	for (int i = 1;; i++) {
		const char *w = sqs_paramf(&req->params, NULL, "%s.%d", list,
					   i);
		size_t n;

		if (!w)
			return 0;
		n = strlen(w);
		if (strcmp(w, "All") == 0 || strcmp(w, ".*") == 0 ||
		    strcmp(w, name) == 0 ||
		    (n > 2 && strcmp(w + n - 2, ".*") == 0 &&
		     strncmp(w, name, n - 1) == 0))
			return 1;
	}
}

/* SenderId: as stored at the send (spool_push.sender); a message stored
 * without one (before senders were kept) has SQS's anonymous account. */
static void sender_of(spool_queue *q, uint64_t id,
		      char v[SPOOL_SENDER_MAX + 1])
{
	ssize_t n = spool_msg_getattr(q, id, SPOOL_ATTR_SENDER, v,
				      SPOOL_SENDER_MAX);

	if (n <= 0)
		n = snprintf(v, SPOOL_SENDER_MAX + 1, "000000000000");
	v[n] = '\0';
}

static void system_attrs(const struct sqs_req *req, spool_queue *q,
			 const struct spool_msg_info *info, json_t *msg)
{
	static const char *const names[] = {
		"SenderId", "SentTimestamp", "ApproximateReceiveCount",
		"ApproximateFirstReceiveTimestamp",
	};
	json_t *a = json_object();
	char v[SPOOL_SENDER_MAX + 1];

	for (size_t i = 0; i < 4; i++) {
		if (!wanted(req, "AttributeName", names[i]) &&
		    !wanted(req, "MessageSystemAttributeName", names[i]))
			continue;
		if (i == 0)
			sender_of(q, info->id, v);
		else if (i == 1)
			snprintf(v, sizeof v, "%" PRId64, info->sent_ms);
		else if (i == 2)
			snprintf(v, sizeof v, "%" PRIu32, info->receives);
		else
			snprintf(v, sizeof v, "%" PRId64,
				 info->first_received_ms);
		json_object_set_new(a, names[i], json_string(v));
	}
	if (json_object_size(a))
		json_object_set(msg, "Attributes", a);
	json_decref(a);
}

/* The stored type of attribute name (user.spool.types), or the inferred. */
static void attr_type(const char *types, const char *name, const void *v,
		      size_t len, char *out, size_t outlen)
{
	size_t nl = strlen(name);

	for (const char *p = types; p && *p;) {
		size_t ll = strcspn(p, "\n");

		if (ll > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			snprintf(out, outlen, "%.*s", (int)(ll - nl - 1),
				 p + nl + 1);
			return;
		}
		p += ll + (p[ll] == '\n');
	}
	snprintf(out, outlen, "%s", sqs_inferred_type(v, len));
}

/* Adds attribute a to the message's MessageAttributes (and a[] for MD5). */
static void put_attr(json_t *attrs, const struct sqs_attr *a)
{
	json_t *o;

	if (a->binary) {
		char *b = sqs_b64_encode(a->value, a->len);

		o = json_pack("{s:s,s:s}", "BinaryValue", b ? b : "",
			      "DataType", a->type);
		free(b);
	} else {
		o = json_pack("{s:s%,s:s}", "StringValue", (const char *)a->value,
			      a->len, "DataType", a->type);
	}
	json_object_set_new(attrs, a->name, o);
}

/* The message's user.* attributes (not user.spool.*) the request asks for,
 * plus spool.encoding when the body went out base64. */
static void message_attrs(const struct sqs_req *req, spool_queue *q,
			  uint64_t id, int b64, json_t *msg)
{
	struct sqs_attr a[64];
	char *vals[64] = { 0 }, *list = NULL, types[4096] = "";
	ssize_t len = spool_msg_listattr(q, id, NULL, 0);
	ssize_t tl = spool_msg_getattr(q, id, "user.spool.types", types,
				       sizeof types - 1);
	json_t *attrs = json_object();
	char md5[SQS_MD5_HEX];
	size_t n = 0;

	types[tl > 0 ? tl : 0] = '\0';
	if (len > 0 && (!(list = malloc((size_t)len)) ||
			spool_msg_listattr(q, id, list, (size_t)len) != len))
		len = 0;
	for (ssize_t off = 0; len > 0 && off < len && n < 63;
	     off += (ssize_t)strlen(list + off) + 1) {
		const char *xn = list + off, *name = xn + 5;
		ssize_t vl;

		if (strncmp(xn, "user.", 5) || strncmp(name, "spool.", 6) == 0 ||
		    strlen(name) >= sizeof a[n].name ||
		    !wanted(req, "MessageAttributeName", name))
			continue;
		vl = spool_msg_getattr(q, id, xn, NULL, 0);
		if (vl < 0 || !(vals[n] = malloc((size_t)vl + 1)))
			continue;
		vl = spool_msg_getattr(q, id, xn, vals[n], (size_t)vl);
		if (vl < 0) {
			free(vals[n]);
			vals[n] = NULL;
			continue;
		}
		snprintf(a[n].name, sizeof a[n].name, "%s", name);
		attr_type(types, name, vals[n], (size_t)vl, a[n].type,
			  sizeof a[n].type);
		a[n].value = (unsigned char *)vals[n];
		a[n].len = (size_t)vl;
		a[n].binary = strncmp(a[n].type, "Binary", 6) == 0;
		n++;
	}
	if (b64) {
		snprintf(a[n].name, sizeof a[n].name, "spool.encoding");
		snprintf(a[n].type, sizeof a[n].type, "String");
		a[n].value = (const unsigned char *)"base64";
		a[n].len = 6;
		a[n].binary = 0;
		n++;
	}
	for (size_t i = 0; i < n; i++)
		put_attr(attrs, &a[i]);
	if (n) {
		sqs_md5_attrs(a, n, md5);
		json_object_set_new(msg, "MD5OfMessageAttributes",
				    json_string(md5));
		json_object_set(msg, "MessageAttributes", attrs);
	}
	json_decref(attrs);
	for (size_t i = 0; i < 64; i++)
		free(vals[i]);
	free(list);
}

/* The message just leased: its JSON, or NULL. */
static json_t *message(struct sqs_req *req, const struct spool_msg_info *info,
		       size_t got)
{
	struct sqs_recv *r = req->recv;
	char *body = r->buf, *b64 = NULL, idtext[SPOOL_ID_LEN + 1];
	char handle[SQS_HANDLE_MAX], md5[SQS_MD5_HEX];
	size_t len = got;
	json_t *msg;
	int text;

	if (info->size > got) {
		body = malloc(info->size);
		if (!body)
			return NULL;
		memcpy(body, r->buf, got);
		if (spool_msg_read(r->q, info->id, got, body + got,
				   info->size - got) != (ssize_t)(info->size - got)) {
			free(body);
			return NULL;
		}
		len = info->size;
	}
	text = sqs_text_valid(body, len);
	if (!text)
		b64 = sqs_b64_encode(body, len);
	spool_id_format(info->id, idtext);
	sqs_handle_format(info->id, info->receives, handle);
	if (text)
		sqs_md5_hex(body, len, md5);
	else if (b64)
		sqs_md5_hex(b64, strlen(b64), md5);
	msg = (text || b64) ? json_pack("{s:s,s:s,s:s,s:s%}", "MessageId",
					idtext, "ReceiptHandle", handle,
					"MD5OfBody", md5, "Body",
					text ? body : b64,
					text ? len : strlen(b64))
			    : NULL;
	if (msg) {
		system_attrs(req, r->q, info, msg);
		message_attrs(req, r->q, info->id, !text, msg);
	}
	free(b64);
	if (body != r->buf)
		free(body);
	return msg;
}

/* One try: leases up to max. 0 with req->out (maybe no message when
 * final), 1 to wait, -1 on an error. */
static int try_receive(struct sqs_req *req, int final)
{
	struct sqs_recv *r = req->recv;
	json_t *msgs = json_array(), *out;
	int rc = 0;

	r->seq = sqs_wake_seq(r->q);
	while ((long)json_array_size(msgs) < r->max) {
		struct spool_msg_info info;
		size_t got = 0;
		json_t *m;

		rc = r->vt_ms >= 0
			? spool_lease_next_vt(r->q, r->vt_ms, r->buf, LEASE_BUF,
					      &got, &info)
			: spool_lease_next(r->q, r->buf, LEASE_BUF, &got, &info);
		if (rc)
			break;
		r->ids[r->n] = info.id;
		r->receives[r->n++] = info.receives;
		m = message(req, &info, got);
		if (!m) {
			spool_release(r->q, info.id, 1);
			r->n--;
			rc = -ENOMEM;
			break;
		}
		json_array_append_new(msgs, m);
	}
	if (json_array_size(msgs) == 0 && rc != -EAGAIN) {
		json_decref(msgs);
		if (rc == -ENOENT)
			return sqs_fail(req, E_NONEXISTENT_QUEUE,
					"The specified queue does not exist.");
		return sqs_fail(req, E_INTERNAL, "%s", strerror(-rc));
	}
	if (json_array_size(msgs) == 0 && !final &&
	    sqs_mono_ms() < r->deadline) {
		json_decref(msgs);
		return 1;
	}
	out = json_object();
	if (json_array_size(msgs))
		json_object_set(out, "Messages", msgs);
	json_decref(msgs);
	req->out = out;
	return 0;
}

static int opt_int(struct sqs_req *req, const char *name, long lo, long hi,
		   long *out)
{
	const char *v = sqs_param(&req->params, name, NULL);

	return v ? sqs_int_param(req, name, v, lo, hi, out) : 0;
}

int sqs_receive(struct sqs_req *req)
{
	struct sqs_recv *r = calloc(1, sizeof(*r));
	long vt = -1, wait = -1;
	spool_queue *q;

	if (!r)
		return sqs_fail(req, E_INTERNAL, "Out of memory.");
	r->max = 1;
	if (opt_int(req, "MaxNumberOfMessages", 1, RECV_MAX, &r->max) ||
	    opt_int(req, "VisibilityTimeout", 0, 43200, &vt) ||
	    opt_int(req, "WaitTimeSeconds", 0, WAIT_MAX_S, &wait) ||
	    sqs_req_queue(req, &q)) {
		free(r);
		return -1;
	}
	r->q = q;
	req->recv = r;
	if (sqs_req_may(req, q, 6))
		return -1;
	if (wait < 0)
		wait = sqs_queue_wait(q);
	r->vt_ms = vt >= 0 ? vt * 1000 : -1;
	r->deadline = sqs_mono_ms() + wait * 1000;
	r->buf = malloc(LEASE_BUF);
	if (!r->buf)
		return sqs_fail(req, E_INTERNAL, "Out of memory.");
	return try_receive(req, wait == 0);
}

int sqs_receive_again(struct sqs_req *req, int timed_out)
{
	return try_receive(req, timed_out);
}
