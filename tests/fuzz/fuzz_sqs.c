/*
 * fuzz_sqs.c - what the SQS endpoint reads from the network before any
 * check of who asks (sqs/params.c, sqs/codec.c, sqs/reply.c): the form
 * decoder, the JSON intake, receipt handles, queue URLs, SQS text and
 * base64. The first byte picks which. Properties: the decoders return 0 or
 * a negative errno and nothing else; every parameter has a NUL-free key
 * and a value of its stated length; a handle that parses formats back to
 * one that parses to the same id and receive; a queue URL gives a valid
 * queue name; an XML response built from any parameter values holds no raw
 * '\r' or '<' inside text.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sqs_params p = { 0 };
	const char *s = (const char *)data + 1;
	size_t len = size ? size - 1 : 0;
	int rc;

	if (size == 0)
		return 0;
	switch (data[0] % 5) {
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
	default:
		check_b64(s, len);
		break;
	}
	sqs_params_free(&p);
	return 0;
}
