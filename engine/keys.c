/*
 * keys.c - the on-disk layout: every key and value the engine stores, and
 * the body checksum. Integers in keys are big-endian (so byte order sorts
 * numerically); in values, little-endian.
 *
 * Format version 1 (meta key "V" = "1"):
 *
 *   CF_META  "V"                -> "1"
 *            "I"                -> u64be: ids below it may have been used
 *            "Q" qid:u32be      -> queue record: u8 version(1), u32 uid,
 *                                  u32 gid, u32 mode, i64 ctime_ms,
 *                                  u16 name_len, name, settings text
 *                                  ("key=value\n" lines, as config shows)
 *            "C" qid:u32be      -> CNT_N x u64 totals, merged by addition
 *            "D" qid:u32be key:16 -> i64 expiry_ms: a dedup key (XXH3-128
 *                                  of a name, or with seed 2 of a body)
 *   CF_IDX   id:u64be           -> idx record (IDX_REC_LEN bytes): u32 qid,
 *                                  u8 state, i32 priority, u32 receives,
 *                                  u64 size, i64 sent_ms, i64 due_ms,
 *                                  i64 first_received_ms
 *   CF_BODY  id:u64be           -> u8 magic(0xB1), u64 xxh3 of everything
 *                                  after it, u16 name_len, u32 attrs_len,
 *                                  name, attrs, body; attrs are packed as
 *                                  u16 name_len, name, u32 value_len, value
 *
 * A message is one idx record plus one body record; pushes write both, acks
 * delete both, every other change rewrites the idx record only, in one
 * batch with the counters' merge operands.
 *
 * Changing the layout: bump the version, teach queue.c's loader to read
 * the old one (or convert at open), and keep a test that opens a store in
 * the old format.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "engine_i.h"

#define BODY_MAGIC 0xB1
#define BODY_HDR (1 + 8 + 2 + 4)

static void put_be64(char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (char)(v >> (56 - 8 * i));
}

static uint64_t get_be64(const char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | (unsigned char)p[i];
	return v;
}

static char *put_le(char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (char)(v >> (8 * i));
	return p + n;
}

static uint64_t get_le(const char **pp, int n)
{
	const unsigned char *p = (const unsigned char *)*pp;
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	*pp += n;
	return v;
}

void key_id(uint64_t id, char out[ID_KEY_LEN])
{
	put_be64(out, id);
}

uint64_t key_id_decode(const char *k)
{
	return get_be64(k);
}

void key_queue(char tag, uint32_t qid, char out[QKEY_LEN])
{
	out[0] = tag;
	for (int i = 0; i < 4; i++)
		out[1 + i] = (char)(qid >> (24 - 8 * i));
}

void idx_encode(const struct idx_rec *r, char out[IDX_REC_LEN])
{
	char *p = out;

	p = put_le(p, r->qid, 4);
	p = put_le(p, r->state, 1);
	p = put_le(p, (uint32_t)r->priority, 4);
	p = put_le(p, r->receives, 4);
	p = put_le(p, r->size, 8);
	p = put_le(p, (uint64_t)r->sent_ms, 8);
	p = put_le(p, (uint64_t)r->due_ms, 8);
	put_le(p, (uint64_t)r->first_recv_ms, 8);
}

int idx_decode(const char *v, size_t len, struct idx_rec *r)
{
	const char *p = v;

	if (len != IDX_REC_LEN)
		return -EIO;
	r->qid = (uint32_t)get_le(&p, 4);
	r->state = (uint8_t)get_le(&p, 1);
	r->priority = (int32_t)(uint32_t)get_le(&p, 4);
	r->receives = (uint32_t)get_le(&p, 4);
	r->size = get_le(&p, 8);
	r->sent_ms = (int64_t)get_le(&p, 8);
	r->due_ms = (int64_t)get_le(&p, 8);
	r->first_recv_ms = (int64_t)get_le(&p, 8);
	switch (r->state) {
	case SPOOL_VISIBLE: case SPOOL_DELAYED: case SPOOL_LEASED:
	case SPOOL_CORRUPT:
		return 0;
	}
	return -EIO;
}

void idx_from_msg(const struct msg *m, uint32_t qid, struct idx_rec *r)
{
	r->qid = qid;
	r->state = m->state;
	r->priority = m->priority;
	r->receives = m->receives;
	r->size = m->size;
	r->sent_ms = m->sent_ms;
	r->due_ms = m->due_ms;
	r->first_recv_ms = m->first_recv_ms;
}

static size_t attrs_len(const struct spool_push *p)
{
	size_t n = 0;

	for (size_t i = 0; i < p->nattrs; i++)
		n += 2 + strlen(p->attrs[i].name) + 4 + p->attrs[i].len;
	return n;
}

char *body_encode(const struct spool_push *p, size_t *len)
{
	size_t nlen = p->name ? strlen(p->name) : 0;
	size_t alen = attrs_len(p);
	size_t total = BODY_HDR + nlen + alen + p->len;
	char *v = malloc(total), *q;

	if (!v)
		return NULL;
	q = put_le(v + 9, nlen, 2);
	q = put_le(q, alen, 4);
	if (nlen)
		memcpy(q, p->name, nlen);
	q += nlen;
	for (size_t i = 0; i < p->nattrs; i++) {
		size_t an = strlen(p->attrs[i].name);

		q = put_le(q, an, 2);
		memcpy(q, p->attrs[i].name, an);
		q = put_le(q + an, p->attrs[i].len, 4);
		memcpy(q, p->attrs[i].value, p->attrs[i].len);
		q += p->attrs[i].len;
	}
	if (p->len)
		memcpy(q, p->body, p->len);
	v[0] = (char)BODY_MAGIC;
	put_le(v + 1, XXH3_64bits(v + 9, total - 9), 8);
	*len = total;
	return v;
}

int body_decode(const char *v, size_t len, struct body_view *out)
{
	const char *p = v + 1;
	uint64_t sum;

	if (len < BODY_HDR || (unsigned char)v[0] != BODY_MAGIC)
		return -EIO;
	sum = get_le(&p, 8);
	if (sum != XXH3_64bits(v + 9, len - 9))
		return -EIO;
	out->name_len = get_le(&p, 2);
	out->attrs_len = get_le(&p, 4);
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
	q = put_le(v + 9, nlen, 2);
	q = put_le(q, bv->attrs_len, 4);
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
	put_le(rec + 1, XXH3_64bits(rec + 9, len - 9), 8);
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
	put_be64((char *)out, h.high64);
	put_be64((char *)out + 8, h.low64);
}

void key_dedup(uint32_t qid, const uint8_t *key, char out[DKEY_LEN])
{
	key_queue('D', qid, out);
	memcpy(out + QKEY_LEN, key, DEDUP_KEY_LEN);
}

void counters_encode(const uint64_t c[CNT_N], char out[CNT_N * 8])
{
	for (int i = 0; i < CNT_N; i++)
		put_le(out + 8 * i, c[i], 8);
}

void counters_decode(const char *v, size_t len, uint64_t c[CNT_N])
{
	for (int i = 0; i < CNT_N; i++) {
		const char *p = v + 8 * i;

		c[i] = (size_t)(8 * i + 8) <= len ? get_le(&p, 8) : 0;
	}
}
