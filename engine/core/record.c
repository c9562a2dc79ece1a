/*
 * record.c - a message's body record, the same bytes in every store (the
 * layout is in core.h): encoding, the checksum, decoding, the packed user
 * attributes, and the dedup key of a push.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "core.h"

#define BODY_MAGIC 0xB1
#define BODY_HDR (1 + 8 + 2 + 4)

static size_t attr_len(const char *name, size_t vlen)
{
	return 2 + strlen(name) + 4 + vlen;
}

static size_t attrs_len(const struct spool_push *p)
{
	size_t n = p->sender ? attr_len(SPOOL_ATTR_SENDER,
					strlen(p->sender)) : 0;

	for (size_t i = 0; i < p->nattrs; i++)
		n += attr_len(p->attrs[i].name, p->attrs[i].len);
	return n;
}

/* Packs one attribute at q; returns the end. */
static char *attr_put(char *q, const char *name, const void *val,
		      size_t vlen)
{
	size_t an = strlen(name);

	q = core_put_le(q, an, 2);
	memcpy(q, name, an);
	q = core_put_le(q + an, vlen, 4);
	if (vlen)
		memcpy(q, val, vlen);
	return q + vlen;
}

char *body_encode(const struct spool_push *p, size_t *len)
{
	size_t nlen = p->name ? strlen(p->name) : 0;
	size_t alen = attrs_len(p);
	size_t total = BODY_HDR + nlen + alen + p->len;
	char *v = malloc(total), *q;

	if (!v)
		return NULL;
	q = core_put_le(v + 9, nlen, 2);
	q = core_put_le(q, alen, 4);
	if (nlen)
		memcpy(q, p->name, nlen);
	q += nlen;
	for (size_t i = 0; i < p->nattrs; i++)
		q = attr_put(q, p->attrs[i].name, p->attrs[i].value,
			     p->attrs[i].len);
	if (p->sender)
		q = attr_put(q, SPOOL_ATTR_SENDER, p->sender,
			     strlen(p->sender));
	if (p->len)
		memcpy(q, p->body, p->len);
	v[0] = (char)BODY_MAGIC;
	core_put_le(v + 1, XXH3_64bits(v + 9, total - 9), 8);
	*len = total;
	return v;
}

int body_decode(const char *v, size_t len, struct body_view *out)
{
	const char *p = v + 1;
	uint64_t sum;

	if (len < BODY_HDR || (unsigned char)v[0] != BODY_MAGIC)
		return -EIO;
	sum = core_get_le(&p, 8);
	if (sum != XXH3_64bits(v + 9, len - 9))
		return -EIO;
	out->name_len = core_get_le(&p, 2);
	out->attrs_len = core_get_le(&p, 4);
	if (out->name_len + out->attrs_len > len - BODY_HDR)
		return -EIO;
	out->name = p;
	out->attrs = p + out->name_len;
	out->body = out->attrs + out->attrs_len;
	out->body_len = len - BODY_HDR - out->name_len - out->attrs_len;
	return 0;
}

char *body_renamed(const struct body_view *bv, const char *name, size_t *len)
{
	size_t nlen = strlen(name);
	size_t total = BODY_HDR + nlen + bv->attrs_len + bv->body_len;
	char *v = malloc(total), *q;

	if (!v)
		return NULL;
	q = core_put_le(v + 9, nlen, 2);
	q = core_put_le(q, bv->attrs_len, 4);
	memcpy(q, name, nlen);
	q += nlen;
	if (bv->attrs_len)
		memcpy(q, bv->attrs, bv->attrs_len);
	q += bv->attrs_len;
	if (bv->body_len)
		memcpy(q, bv->body, bv->body_len);
	body_seal(v, total);
	*len = total;
	return v;
}

void body_seal(char *rec, size_t len)
{
	if (len < 9)
		return;
	rec[0] = (char)BODY_MAGIC;
	core_put_le(rec + 1, XXH3_64bits(rec + 9, len - 9), 8);
}

/* Walks packed attributes: calls fn(name, nlen, value, vlen) for each;
 * stops when it returns non-zero. -EIO if the packing is broken. */
typedef int (*attr_fn)(void *arg, const char *name, size_t nlen,
		       const char *val, size_t vlen);

static int attrs_walk(const struct body_view *bv, attr_fn fn, void *arg)
{
	const unsigned char *p = (const unsigned char *)bv->attrs;
	const unsigned char *end = p + bv->attrs_len;

	while (p < end) {
		size_t nlen, vlen;
		int rc;

		if (end - p < 2)
			return -EIO;
		nlen = p[0] | (size_t)p[1] << 8;
		if ((size_t)(end - p) < 2 + nlen + 4)
			return -EIO;
		/* Names are C strings, never empty (setxattr): anything else
		 * would be listed under a name that getattr cannot find. */
		if (nlen == 0 || memchr(p + 2, 0, nlen))
			return -EIO;
		p += 2 + nlen;
		vlen = p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 |
		       (size_t)p[3] << 24;
		if ((size_t)(end - p) < 4 + vlen)
			return -EIO;
		rc = fn(arg, (const char *)p - nlen, nlen, (const char *)p + 4,
			vlen);
		if (rc)
			return rc;
		p += 4 + vlen;
	}
	return 0;
}

struct attr_get {
	const char *name;
	void *buf;
	size_t len;
	ssize_t result;
};

static int attr_get_one(void *arg, const char *name, size_t nlen,
			const char *val, size_t vlen)
{
	struct attr_get *g = arg;

	if (strlen(g->name) != nlen || memcmp(g->name, name, nlen) != 0)
		return 0;
	if (g->len && g->len < vlen)
		g->result = -ERANGE;
	else {
		if (g->len)
			memcpy(g->buf, val, vlen);
		g->result = (ssize_t)vlen;
	}
	return 1;
}

ssize_t body_getattr(const struct body_view *bv, const char *name, void *buf,
		     size_t len)
{
	struct attr_get g = { name, buf, len, -ENODATA };
	int rc = attrs_walk(bv, attr_get_one, &g);

	return rc < 0 ? rc : g.result;
}

struct attr_list {
	char *buf;
	size_t len, used;
};

static int attr_list_one(void *arg, const char *name, size_t nlen,
			 const char *val, size_t vlen)
{
	struct attr_list *l = arg;

	(void)val, (void)vlen;
	if (nlen < 5 || memcmp(name, "user.", 5))
		return 0;       /* a system attribute (the sender): not listed */
	if (l->len && l->used + nlen + 1 <= l->len) {
		memcpy(l->buf + l->used, name, nlen);
		l->buf[l->used + nlen] = '\0';
	}
	l->used += nlen + 1;
	return 0;
}

ssize_t body_listattr(const struct body_view *bv, char *buf, size_t len)
{
	struct attr_list l = { buf, len, 0 };
	int rc = attrs_walk(bv, attr_list_one, &l);

	if (rc < 0)
		return rc;
	if (len && l.used > len)
		return -ERANGE;
	return (ssize_t)l.used;
}

void dedup_key(int mode, const struct spool_push *p,
	       uint8_t out[DEDUP_KEY_LEN])
{
	XXH128_hash_t h;

	if (mode == 1)
		h = XXH3_128bits_withSeed(p->name ? p->name : "",
					  p->name ? strlen(p->name) : 0, 1);
	else
		h = XXH3_128bits_withSeed(p->body, p->len, 2);
	core_put_be64((char *)out, h.high64);
	core_put_be64((char *)out + 8, h.low64);
}
