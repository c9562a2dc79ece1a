/*
 * codec.c - what SQS clients check byte for byte: the MD5s of bodies and
 * of message attributes (notes/sqs-api.md §4.2), base64, what counts as
 * SQS text, and the formats of receipt handles and queue URLs.
 */
#include <errno.h>
#include <inttypes.h>
#include <nettle/base64.h>
#include <nettle/md5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqs_i.h"

static void hex(const uint8_t *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

void sqs_md5_hex(const void *data, size_t len, char out[SQS_MD5_HEX])
{
	struct md5_ctx c;
	uint8_t d[MD5_DIGEST_SIZE];

	md5_init(&c);
	md5_update(&c, len, data);
	md5_digest(&c, sizeof d, d);
	hex(d, sizeof d, out);
}

static void md5_len(struct md5_ctx *c, size_t len)
{
	uint8_t b[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16),
			 (uint8_t)(len >> 8), (uint8_t)len };

	md5_update(c, 4, b);
}

static void md5_field(struct md5_ctx *c, const void *data, size_t len)
{
	md5_len(c, len);
	md5_update(c, len, data);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct sqs_attr *)a)->name,
		      ((const struct sqs_attr *)b)->name);
}

/* Per attribute, by name: length-prefixed name, length-prefixed type, the
 * transport byte (1 string, 2 binary), length-prefixed value. */
void sqs_md5_attrs(struct sqs_attr *a, size_t n, char out[SQS_MD5_HEX])
{
	struct md5_ctx c;
	uint8_t d[MD5_DIGEST_SIZE];

	qsort(a, n, sizeof(*a), by_name);
	md5_init(&c);
	for (size_t i = 0; i < n; i++) {
		uint8_t transport = a[i].binary ? 2 : 1;

		md5_field(&c, a[i].name, strlen(a[i].name));
		md5_field(&c, a[i].type, strlen(a[i].type));
		md5_update(&c, 1, &transport);
		md5_field(&c, a[i].value, a[i].len);
	}
	md5_digest(&c, sizeof d, d);
	hex(d, sizeof d, out);
}

char *sqs_b64_encode(const void *data, size_t len)
{
	char *out = malloc(BASE64_ENCODE_RAW_LENGTH(len) + 1);

	if (!out)
		return NULL;
	base64_encode_raw(out, len, data);
	out[BASE64_ENCODE_RAW_LENGTH(len)] = '\0';
	return out;
}

int sqs_b64_decode(const char *text, size_t len, unsigned char **out,
		   size_t *outlen)
{
	struct base64_decode_ctx c;
	size_t n = BASE64_DECODE_LENGTH(len);
	unsigned char *buf = malloc(n + 1);

	if (!buf)
		return -ENOMEM;
	base64_decode_init(&c);
	if (!base64_decode_update(&c, &n, buf, len, text) ||
	    !base64_decode_final(&c)) {
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	*outlen = n;
	return 0;
}

/* Decodes one UTF-8 sequence at s (len > 0): the code point, or -1. */
static long utf8_next(const unsigned char *s, size_t len, size_t *used)
{
	static const long min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t n = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2
		 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
	long cp;

	if (n == 0 || n > len)
		return -1;
	cp = n == 1 ? s[0] : s[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*used = n;
	return cp;
}

int sqs_text_valid(const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0;

	while (i < len) {
		size_t used = 0;
		long cp = utf8_next(s + i, len - i, &used);

		if (cp < 0)
			return 0;
		if (!(cp == 0x9 || cp == 0xa || cp == 0xd ||
		      (cp >= 0x20 && cp <= 0xd7ff) ||
		      (cp >= 0xe000 && cp <= 0xfffd) || cp >= 0x10000))
			return 0;
		i += used;
	}
	return 1;
}

void sqs_handle_format(uint64_t id, uint32_t receives,
		       char out[SQS_HANDLE_MAX])
{
	char text[SPOOL_ID_LEN + 1];

	spool_id_format(id, text);
	snprintf(out, SQS_HANDLE_MAX, "%s.%" PRIu32, text, receives);
}

int sqs_handle_parse(const char *s, size_t len, uint64_t *id,
		     uint32_t *receives)
{
	uint64_t r = 0;

	if (len < SPOOL_ID_LEN + 2 || len > SPOOL_ID_LEN + 11 ||
	    s[SPOOL_ID_LEN] != '.' || spool_id_parse(s, SPOOL_ID_LEN, id))
		return -EINVAL;
	for (size_t i = SPOOL_ID_LEN + 1; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		r = r * 10 + (uint64_t)(s[i] - '0');
	}
	if (r == 0 || r > UINT32_MAX)
		return -EINVAL;
	*receives = (uint32_t)r;
	return 0;
}

int sqs_url_queue(const char *url, char name[SPOOL_NAME_MAX + 1])
{
	const char *p = strstr(url, "://"), *last;
	size_t len;

	if (p) {
		p = strchr(p + 3, '/');   /* the path */
		if (!p)
			return -EINVAL;
	} else {
		p = url;
	}
	len = strlen(p);
	while (len > 0 && p[len - 1] == '/')
		len--;
	last = p + len;
	while (last > p && last[-1] != '/')
		last--;
	len = (size_t)(p + len - last);
	if (len == 0 || len > SPOOL_NAME_MAX ||
	    !spool_name_valid(last, len))
		return -EINVAL;
	memcpy(name, last, len);
	name[len] = '\0';
	return 0;
}

const char *sqs_inferred_type(const void *v, size_t len)
{
	return len && sqs_text_valid(v, len) ? "String" : "Binary";
}
