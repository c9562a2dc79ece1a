/*
 * fuzz_sqs.c - what the SQS endpoint reads from the network before any
 * check of who asks (sqs/params.c, sqs/codec.c, sqs/reply.c): the form
 * decoder, the JSON intake, receipt handles, queue URLs, SQS text and
 * base64. The first byte picks which. Properties: the decoders return 0 or
 * a negative errno and nothing else; every parameter has a NUL-free key
 * and a value of its stated length; a handle that parses formats back to
 * one that parses to the same id and receive; a queue URL gives a valid
 * queue name; an XML response built from any parameter values holds no raw
 * '\r' or '<' inside text; the SigV4 check (sqs/sigv4.c) of any
 * Authorization, X-Amz-Date and body refuses with an error set (a forged
 * signature never passes).
 */
#include "fuzz_common.h"
#include "../../sqs/sqs_i.h"

static void check_params(const struct sqs_params *p)
{
	json_t *o = json_object();
	struct sqs_reply r;

	for (size_t i = 0; i < p->n; i++) {
		FUZZ_CHECK(p->v[i].key[0] != '\0');
		FUZZ_CHECK(p->v[i].val[p->v[i].len] == '\0');
		FUZZ_CHECK(sqs_param(p, p->v[i].key, NULL) != NULL);
		if (sqs_text_valid(p->v[i].val, p->v[i].len))
			json_object_set_new(o, p->v[i].key,
					    json_stringn(p->v[i].val,
							 p->v[i].len));
	}
	/* Query output: text is escaped, so no raw \r and no '<' but tags */
	FUZZ_CHECK(sqs_reply_ok(0, "GetQueueAttributes",
				json_pack("{s:O}", "Attributes", o), "id",
				&r) == 0);
	FUZZ_CHECK(memchr(r.body, '\r', r.len) == NULL);
	free(r.body);
	FUZZ_CHECK(sqs_reply_ok(1, "GetQueueAttributes", json_incref(o), "id",
				&r) == 0);
	free(r.body);
	json_decref(o);
}

static void check_handle(const char *s, size_t len)
{
	char out[SQS_HANDLE_MAX];
	uint64_t id, id2;
	uint32_t rcv, rcv2;
	int rc = sqs_handle_parse(s, len, &id, &rcv);

	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc)
		return;
	FUZZ_CHECK(rcv > 0);
	sqs_handle_format(id, rcv, out);
	FUZZ_CHECK(sqs_handle_parse(out, strlen(out), &id2, &rcv2) == 0);
	FUZZ_CHECK(id2 == id && rcv2 == rcv);
}

static void check_url(const char *s, size_t len)
{
	char *z = strndup(s, len), name[SPOOL_NAME_MAX + 1];

	FUZZ_CHECK(z != NULL);
	if (sqs_url_queue(z, name) == 0)
		FUZZ_CHECK(spool_name_valid(name, strlen(name)));
	free(z);
}

static void check_b64(const char *s, size_t len)
{
	unsigned char *out;
	size_t n;
	char *back;

	(void)sqs_text_valid(s, len);
	if (sqs_b64_decode(s, len, &out, &n) != 0)
		return;
	back = sqs_b64_encode(out, n);
	FUZZ_CHECK(back != NULL);
	free(back);
	free(out);
}

/* Header values for the SigV4 check: fields of the input split at NULs. */
struct hdrs {
	const char *auth, *date, *host;
};

static const char *hdr(void *ctx, const char *name)
{
	const struct hdrs *h = ctx;

	if (strcasecmp(name, "Authorization") == 0)
		return h->auth;
	if (strcasecmp(name, "X-Amz-Date") == 0)
		return h->date;
	return h->host;
}

static void check_sigv4(const char *s, size_t len)
{
	static int loaded;
	char *z = malloc(len + 3), err[256];
	struct sqs_req req;
	struct hdrs h;
	struct sqs_signed in = { "POST", "/", NULL, NULL, 0, hdr, &h };

	FUZZ_CHECK(z != NULL);
	if (!loaded) {
		char path[] = "/tmp/fuzz-sqs-keys-XXXXXX";
		int fd = mkstemp(path);

		FUZZ_CHECK(fd >= 0);
		FUZZ_CHECK(write(fd, "AK SECRET 0\n", 12) == 12);
		close(fd);
		FUZZ_CHECK(sqs_keys_load(path, err, sizeof err) == 0);
		unlink(path);
		loaded = 1;
	}
	memcpy(z, s, len);
	z[len] = z[len + 1] = z[len + 2] = '\0';
	h.auth = z;
	h.date = z + strlen(z) + 1;
	h.host = h.date + strlen(h.date) + 1;
	in.body = h.host;
	in.len = strlen(h.host);
	memset(&req, 0, sizeof req);
	/* Random input cannot hold the right HMAC: it must be refused. */
	FUZZ_CHECK(sqs_sigv4_check(&req, &in) == -1);
	FUZZ_CHECK(req.errmsg[0] != '\0' && !req.who.known);
	free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sqs_params p = { 0 };
	const char *s = (const char *)data + 1;
	size_t len = size ? size - 1 : 0;
	int rc;

	if (size == 0)
		return 0;
	switch (data[0] % 6) {
	case 0:
		rc = sqs_form_decode(&p, s, len);
		FUZZ_CHECK(rc == 0 || rc == -EINVAL);
		check_params(&p);
		break;
	case 1:
		rc = sqs_json_decode(&p, "SendMessageBatch", s, len);
		FUZZ_CHECK(rc == 0 || rc == -EINVAL);
		check_params(&p);
		break;
	case 2:
		check_handle(s, len);
		break;
	case 3:
		check_url(s, len);
		break;
	case 4:
		check_b64(s, len);
		break;
	default:
		check_sigv4(s, len);
		break;
	}
	sqs_params_free(&p);
	return 0;
}
