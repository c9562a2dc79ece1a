/*
 * sqs_i.h - the SQS endpoint's private header: the functions its modules
 * call in each other.
 *   server.c  HTTP (libmicrohttpd): requests, protocol, parked long polls
 *   peer.c    who is on the other end of a loopback connection; modes
 *   params.c  request parameters: the form decoder and the JSON intake,
 *             both into one flat list of Query-protocol names
 *   reply.c   responses and errors in either protocol (XML or JSON)
 *   codec.c   MD5s, base64, SQS text, receipt handles, queue URLs
 *   actions.c the actions, on engine/spool.h
 *   receive.c ReceiveMessage: leasing, message output, waiting
 */
#ifndef SQS_I_H
#define SQS_I_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "spool.h"
#include "sqs.h"

/* ------------------------------------------------------------ params.c */

/* One request parameter, by its Query-protocol name ("MessageAttribute.1.
 * Value.StringValue"); values are NUL-terminated, len excludes the NUL. */
struct sqs_param {
	char *key;
	char *val;
	size_t len;
};

struct sqs_params {
	struct sqs_param *v;
	size_t n, cap;
};

/* Adds form-encoded pairs ("a=b&c=d", '+' and %XX decoded) from
 * text[0..len). Returns 0, -ENOMEM, or -EINVAL (a bad %-escape). */
int sqs_form_decode(struct sqs_params *p, const char *text, size_t len);
/* Adds the members of a JSON 1.0 request body, flattened to Query names
 * (Entries become <action>RequestEntry.N, maps Name/Value pairs).
 * Returns 0, -ENOMEM, or -EINVAL (not a JSON object). */
int sqs_json_decode(struct sqs_params *p, const char *action,
		    const char *text, size_t len);
int sqs_params_add(struct sqs_params *p, const char *key, const char *val,
		   size_t len);
/* The value of key, or NULL (len, if not NULL, gets its length). */
const char *sqs_param(const struct sqs_params *p, const char *key,
		      size_t *len);
/* The value of prefix + key. */
const char *sqs_paramf(const struct sqs_params *p, size_t *len,
		       const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void sqs_params_free(struct sqs_params *p);

/* ------------------------------------------------------------ codec.c */

#define SQS_MD5_HEX 33

/* One message attribute as SQS has it (type: "String", "Number.x", ...);
 * value is the UTF-8 text or the raw bytes of a Binary. */
struct sqs_attr {
	char name[257];
	char type[257];
	const unsigned char *value;
	size_t len;
	int binary;
};

void sqs_md5_hex(const void *data, size_t len, char out[SQS_MD5_HEX]);
/* MD5OfMessageAttributes over a[0..n) (sorts a by name). */
void sqs_md5_attrs(struct sqs_attr *a, size_t n, char out[SQS_MD5_HEX]);
/* Base64 of data into a malloc'd NUL-terminated string, or NULL. */
char *sqs_b64_encode(const void *data, size_t len);
/* Decodes base64 into a malloc'd *out; -EINVAL if not base64. */
int sqs_b64_decode(const char *text, size_t len, unsigned char **out,
		   size_t *outlen);
/* 1 if s[0..len) is text SQS accepts in a body (UTF-8 within XML 1.0's
 * characters), else 0. */
int sqs_text_valid(const char *s, size_t len);
/* The SQS type of a message attribute that has none stored (set through
 * the files): String for non-empty SQS text, else Binary. */
const char *sqs_inferred_type(const void *v, size_t len);

/* Receipt handle: "<message id>.<receives>" (a receive of the message). */
#define SQS_HANDLE_MAX (SPOOL_ID_LEN + 12)
void sqs_handle_format(uint64_t id, uint32_t receives,
		       char out[SQS_HANDLE_MAX]);
/* Returns 0, or -EINVAL for anything but a well-formed handle. */
int sqs_handle_parse(const char *s, size_t len, uint64_t *id,
		     uint32_t *receives);

/* The queue name of a QueueUrl ("http://host/ACCOUNT/name", "/ACCOUNT/
 * name", or a bare name) into name[SPOOL_NAME_MAX + 1]; -EINVAL if none. */
int sqs_url_queue(const char *url, char name[SPOOL_NAME_MAX + 1]);

/* ------------------------------------------------------------ reply.c */

enum sqs_err {
	E_NONEXISTENT_QUEUE,
	E_QUEUE_EXISTS,
	E_RECEIPT_INVALID,
	E_NOT_INFLIGHT,
	E_EMPTY_BATCH,
	E_TOO_MANY_ENTRIES,
	E_IDS_NOT_DISTINCT,
	E_BATCH_TOO_LONG,
	E_INVALID_BATCH_ID,
	E_INVALID_CONTENTS,
	E_INVALID_ATTR_NAME,
	E_INVALID_ATTR_VALUE,
	E_OVER_LIMIT,
	E_UNSUPPORTED,
	E_INVALID_PARAM,
	E_MISSING_PARAM,
	E_INVALID_ACTION,
	E_ACCESS_DENIED,
	E_INTERNAL,
	E_QUEUE_DELETED_RECENTLY,
	E_MISSING_AUTH,
	E_INVALID_TOKEN,
	E_SIGNATURE,
};

/* The code a Query client sees (and a batch entry's Code). */
const char *sqs_err_code(enum sqs_err e);
/* A negative errno of the engine as the SQS error a caller meets. */
enum sqs_err sqs_err_of(int rc);

/* What one request is answered with. */
struct sqs_reply {
	int status;
	const char *content_type;
	char *body;             /* malloc'd */
	size_t len;
	char query_error[160];  /* JSON: the x-amzn-query-error header */
};

/* out (the action's JSON-protocol output, taken) as the response. */
int sqs_reply_ok(int json, const char *action, json_t *out,
		 const char *request_id, struct sqs_reply *r);
int sqs_reply_err(int json, enum sqs_err e, const char *message,
		  const char *request_id, struct sqs_reply *r);

/* ------------------------------------------------------------- peer.c */

struct sqs_ident {
	uid_t uid;
	gid_t gid;
	gid_t groups[64];
	int ngroups;
	int known;              /* 0: the peer could not be found */
	/* SQS's SenderId: the access key id of a SigV4 request, else the
	 * local uid in decimal */
	char sender[SPOOL_SENDER_MAX + 1];
};

/* Finds the local user at the other end of the TCP connection fd. */
int sqs_peer_ident(int fd, struct sqs_ident *id);
/* The identity of local user uid (its groups from the user database). */
void sqs_ident_of(uid_t uid, struct sqs_ident *id);
/* 1 if id has all the want bits (4 read, 2 write) on a queue of attr a;
 * root has all. */
int sqs_may(const struct sqs_ident *id, const struct spool_queue_attr *a,
	    int want);

/* ---------------------------------------------------------- actions.c */

/* One request being served. */
struct sqs_req {
	int json;
	const char *action;
	struct sqs_params params;
	struct sqs_ident who;
	const char *host;       /* the Host header (for QueueUrls) */
	const char *path;       /* the request path (Query: the queue) */
	char request_id[40];
	/* ReceiveMessage's state while parked (receive.c) */
	struct sqs_recv *recv;
	/* output */
	enum sqs_err err;
	char errmsg[512];
	json_t *out;
};

/* The shared state of the endpoint. */
struct sqs_server {
	spool_db *db;
	struct sqs_config cfg;
	int slot;               /* our spool_udata_slot */
};
extern struct sqs_server sqs;

/* Runs req->action. Returns 0 (req->out set), -1 (req->err set), or 1:
 * a receive must wait (req->recv set; call sqs_receive_again later). */
int sqs_dispatch(struct sqs_req *req);
/* Sets req's error; returns -1. */
int sqs_fail(struct sqs_req *req, enum sqs_err e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Opens the queue the request names (QueueUrl, or the path). */
int sqs_req_queue(struct sqs_req *req, spool_queue **q);
/* A whole number v of parameter name in [lo, hi] into *out; -1 (and the
 * error InvalidParameterValue set) if not. */
int sqs_int_param(struct sqs_req *req, const char *name, const char *v,
		  long lo, long hi, long *out);
/* The queue's ReceiveMessageWaitTimeSeconds (0 unless set over SQS). */
long sqs_queue_wait(spool_queue *q);
/* Checks want (4 r, 2 w) on q for the request's user. */
int sqs_req_may(struct sqs_req *req, spool_queue *q, int want);

/* ---------------------------------------------------------- receive.c */

int sqs_receive(struct sqs_req *req);
/* After a wake-up or the deadline (timed_out): tries again. */
int sqs_receive_again(struct sqs_req *req, int timed_out);
/* The request's queue and the wake sequence seen before its last try. */
spool_queue *sqs_recv_queue(const struct sqs_req *req);
uint64_t sqs_recv_seq(const struct sqs_req *req);
int64_t sqs_recv_deadline(const struct sqs_req *req);
/* The response never reached the client: give its leases back. */
void sqs_receive_undo(struct sqs_req *req);
void sqs_receive_free(struct sqs_req *req);

/* ----------------------------------------------------------- sigv4.c */

/* What a signature covers, as it arrived. */
struct sqs_signed {
	const char *method;
	const char *path;       /* raw, before any '?' */
	const char *query;      /* raw, after '?', or NULL */
	const char *body;
	size_t len;
	const char *(*header)(void *ctx, const char *name);
	void *ctx;
};

/* Loads the keys file; -1 with one line in err. */
int sqs_keys_load(const char *file, char *err, size_t errlen);
void sqs_keys_free(void);
/* 1 when a keys file is loaded: every request must be signed. */
int sqs_keys_on(void);
/* Verifies the request's SigV4 signature and sets req->who to the key's
 * user; -1 with the error set if it does not hold. */
int sqs_sigv4_check(struct sqs_req *req, const struct sqs_signed *in);

/* ----------------------------------------------------------- server.c */

/* The wake sequence of q (bumped by every engine wake-up of q). */
uint64_t sqs_wake_seq(spool_queue *q);
/* Monotonic ms. */
int64_t sqs_mono_ms(void);

/* buf.c: a growable text buffer (zero-initialise it). A failed
 * allocation is sticky: oom stays set and later puts do nothing; check it
 * once the text is built. p is NUL-terminated (or NULL while empty). */
struct sqs_buf {
	char *p;
	size_t len, cap;
	int oom;
};
void sqs_buf_put(struct sqs_buf *b, const void *s, size_t n);
void sqs_buf_puts(struct sqs_buf *b, const char *s);
void sqs_buf_putf(struct sqs_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void sqs_buf_free(struct sqs_buf *b);

#endif /* SQS_I_H */
