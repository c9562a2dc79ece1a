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
 *            "M" qid:u32be name  -> a queue's extra value (spool_queue_meta_*,
 *                                  name 1..64 bytes); read on demand only,
 *                                  so older binaries ignore these keys
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

#include "rocks.h"
#include "kv.h"

#define QREC_VERSION 1
#define QREC_FIXED (1 + 4 + 4 + 4 + 8 + 2)

void key_id(uint64_t id, char out[ID_KEY_LEN])
{
	core_put_be64(out, id);
}

uint64_t key_id_decode(const char *k)
{
	return core_get_be64(k);
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

	p = core_put_le(p, r->qid, 4);
	p = core_put_le(p, r->state, 1);
	p = core_put_le(p, (uint32_t)r->priority, 4);
	p = core_put_le(p, r->receives, 4);
	p = core_put_le(p, r->size, 8);
	p = core_put_le(p, (uint64_t)r->sent_ms, 8);
	p = core_put_le(p, (uint64_t)r->due_ms, 8);
	core_put_le(p, (uint64_t)r->first_recv_ms, 8);
}

int idx_decode(const char *v, size_t len, struct idx_rec *r)
{
	const char *p = v;

	if (len != IDX_REC_LEN)
		return -EIO;
	r->qid = (uint32_t)core_get_le(&p, 4);
	r->state = (uint8_t)core_get_le(&p, 1);
	r->priority = (int32_t)(uint32_t)core_get_le(&p, 4);
	r->receives = (uint32_t)core_get_le(&p, 4);
	r->size = core_get_le(&p, 8);
	r->sent_ms = (int64_t)core_get_le(&p, 8);
	r->due_ms = (int64_t)core_get_le(&p, 8);
	r->first_recv_ms = (int64_t)core_get_le(&p, 8);
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

void key_dedup(uint32_t qid, const uint8_t *key, char out[DKEY_LEN])
{
	key_queue(TAG_DEDUP, qid, out);
	memcpy(out + QKEY_LEN, key, DEDUP_KEY_LEN);
}

void counters_encode(const uint64_t c[CNT_N], char out[CNT_N * 8])
{
	for (int i = 0; i < CNT_N; i++)
		core_put_le(out + 8 * i, c[i], 8);
}

void counters_decode(const char *v, size_t len, uint64_t c[CNT_N])
{
	for (int i = 0; i < CNT_N; i++) {
		const char *p = v + 8 * i;

		c[i] = (size_t)(8 * i + 8) <= len ? core_get_le(&p, 8) : 0;
	}
}

char *qrec_encode(const char *name, const struct spool_queue_attr *a,
		  const struct spool_settings *s, size_t *len)
{
	size_t nlen = strlen(name);
	int slen = settings_format(s, name, NULL, 0);
	char *v = malloc(QREC_FIXED + nlen + (size_t)slen + 1), *p = v;
	uint64_t fields[] = { QREC_VERSION, a->uid, a->gid, a->mode,
			      (uint64_t)a->ctime_ms, nlen };
	const int widths[] = { 1, 4, 4, 4, 8, 2 };

	if (!v)
		return NULL;
	for (int i = 0; i < 6; i++)
		for (int j = 0; j < widths[i]; j++)
			*p++ = (char)(fields[i] >> (8 * j));
	memcpy(p, name, nlen);
	settings_format(s, name, p + nlen, (size_t)slen + 1);
	*len = QREC_FIXED + nlen + (size_t)slen;
	return v;
}

int qrec_decode(const char *v, size_t len, char name[SPOOL_NAME_MAX + 1],
		struct spool_queue_attr *a, struct spool_settings *s)
{
	uint64_t f[6] = { 0 };
	const int widths[] = { 1, 4, 4, 4, 8, 2 };
	const unsigned char *p = (const unsigned char *)v;

	if (len < QREC_FIXED)
		return -EIO;
	for (int i = 0; i < 6; i++, p += widths[i - 1])
		for (int j = widths[i] - 1; j >= 0; j--)
			f[i] = f[i] << 8 | p[j];
	if (f[0] != QREC_VERSION || f[5] > SPOOL_NAME_MAX ||
	    QREC_FIXED + f[5] > len)
		return -EIO;
	a->uid = (uint32_t)f[1];
	a->gid = (uint32_t)f[2];
	a->mode = (uint32_t)f[3];
	a->ctime_ms = (int64_t)f[4];
	memcpy(name, v + QREC_FIXED, f[5]);
	name[f[5]] = '\0';
	settings_default(s);
	return settings_parse(s, v + QREC_FIXED + f[5],
			      len - QREC_FIXED - f[5]);
}

uint32_t key_qid_decode(const char *k)
{
	return (uint32_t)(unsigned char)k[1] << 24 |
	       (uint32_t)(unsigned char)k[2] << 16 |
	       (uint32_t)(unsigned char)k[3] << 8 | (unsigned char)k[4];
}

/* ------------------------------------------- records into a batch */

void batch_put_idx(struct store_batch *b, const struct msg *m, uint32_t qid)
{
	char key[ID_KEY_LEN], val[IDX_REC_LEN];
	struct idx_rec r;

	idx_from_msg(m, qid, &r);
	key_id(m->id, key);
	idx_encode(&r, val);
	store_batch_put(b, CF_IDX, key, ID_KEY_LEN, val, IDX_REC_LEN);
}

void batch_put_body(struct store_batch *b, uint64_t id, const char *rec,
		    size_t len)
{
	char key[ID_KEY_LEN];

	key_id(id, key);
	store_batch_put(b, CF_BODY, key, ID_KEY_LEN, rec, len);
}

void batch_del_msg(struct store_batch *b, uint64_t id)
{
	char key[ID_KEY_LEN];

	key_id(id, key);
	store_batch_delete(b, CF_IDX, key, ID_KEY_LEN);
	store_batch_delete(b, CF_BODY, key, ID_KEY_LEN);
}

void batch_merge_counters(struct store_batch *b, uint32_t qid,
			  const uint64_t delta[CNT_N])
{
	char key[QKEY_LEN], v[CNT_N * 8];

	key_queue(TAG_COUNTERS, qid, key);
	counters_encode(delta, v);
	store_batch_merge(b, CF_META, key, QKEY_LEN, v, sizeof(v));
}

void batch_put_dedup(struct store_batch *b, uint32_t qid, const uint8_t *key,
		     int64_t expiry, uint64_t id)
{
	char k[DKEY_LEN], v[16];

	core_put_le(core_put_le(v, (uint64_t)expiry, 8), id, 8);
	key_dedup(qid, key, k);
	store_batch_put(b, CF_META, k, DKEY_LEN, v, sizeof(v));
}

void batch_del_dedup(struct store_batch *b, uint32_t qid, const uint8_t *key)
{
	char k[DKEY_LEN];

	key_dedup(qid, key, k);
	store_batch_delete(b, CF_META, k, DKEY_LEN);
}

void batch_put_reservation(struct store_batch *b, uint64_t r)
{
	char v[8];

	core_put_be64(v, r);
	store_batch_put(b, CF_META, KEY_RESERVATION, 1, v, 8);
}

int body_load(struct store *st, uint64_t id, char **rec, size_t *len)
{
	char key[ID_KEY_LEN];

	key_id(id, key);
	return store_get(st, CF_BODY, key, ID_KEY_LEN, rec, len);
}
