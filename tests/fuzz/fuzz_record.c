/*
 * fuzz_record.c - the stored-record decoders: the body record of
 * engine/core/record.c and the RocksDB store's idx records and counters
 * (engine/rocks/keys.c, the on-disk layout, format 1). White-box: it
 * includes engine/rocks/rocks.h, because no public function takes raw
 * record bytes (fuzz_body reaches the attribute walker through the seam
 * spool_test_put_body).
 *
 * The first input byte picks the case:
 *   0  idx_decode on the rest; if accepted, it encodes back to the same bytes
 *   1  body_decode on the rest as stored (the checksum nearly always fails)
 *   2  body_decode on the rest after fixing up magic and checksum, so the
 *      length fields are what is fuzzed: the views must lie in the record
 *   3  counters_decode on the rest
 *   4  body_encode of a message built from the rest, then body_decode: the
 *      name, attributes and body come back unchanged
 */
#include "fuzz_common.h"

#include <xxhash.h>

#include "rocks.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	return 0;
}

static void check_view(const char *v, size_t len, const struct body_view *bv)
{
	const char *end = v + len;

	FUZZ_CHECK(bv->name >= v && bv->name + bv->name_len <= end);
	FUZZ_CHECK(bv->attrs >= v && bv->attrs + bv->attrs_len <= end);
	FUZZ_CHECK(bv->body >= v && bv->body + bv->body_len == end);
}

static void roundtrip(const uint8_t *d, size_t n)
{
	struct spool_push p = { 0 };
	struct spool_attr at[4];
	struct body_view bv;
	char names[4][16], *name = NULL, *v;
	size_t len, off = 0, nattrs = 0;

	if (n > 0 && d[0] & 1) {
		size_t nl = n > 1 ? d[1] % 32 : 0;

		if (2 + nl <= n) {
			name = strndup((const char *)d + 2, nl);
			off = 2 + nl;
		}
	}
	while (nattrs < 4 && off + 2 <= n && (d[off] & 3) == 1) {
		size_t vl = d[off + 1] % 16;

		if (off + 2 + vl > n)
			break;
		snprintf(names[nattrs], sizeof names[0], "user.a%zu", nattrs);
		at[nattrs] = (struct spool_attr){ names[nattrs], d + off + 2, vl };
		nattrs++;
		off += 2 + vl;
	}
	p.name = name && *name ? name : NULL;
	p.attrs = at;
	p.nattrs = nattrs;
	p.body = d + off;
	p.len = n - off;
	v = body_encode(&p, &len);
	FUZZ_CHECK(v);
	FUZZ_CHECK(body_decode(v, len, &bv) == 0);
	check_view(v, len, &bv);
	FUZZ_CHECK(bv.body_len == p.len && memcmp(bv.body, p.body, p.len) == 0);
	FUZZ_CHECK(bv.name_len == (p.name ? strlen(p.name) : 0));
	if (p.name)
		FUZZ_CHECK(memcmp(bv.name, p.name, bv.name_len) == 0);
	free(v);
	free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct idx_rec r;
	struct body_view bv;
	uint64_t c[CNT_N];
	char out[IDX_REC_LEN], *v;
	size_t n;

	if (size == 0)
		return 0;
	n = size - 1;
	/* A copy of exactly n bytes, so ASan sees any read past the end. */
	v = malloc(n ? n : 1);
	FUZZ_CHECK(v);
	memcpy(v, data + 1, n);
	switch (data[0] % 5) {
	case 0:
		if (idx_decode(v, n, &r) == 0) {
			idx_encode(&r, out);
			FUZZ_CHECK(n == IDX_REC_LEN && memcmp(out, v, n) == 0);
		}
		break;
	case 1:
		if (body_decode(v, n, &bv) == 0)
			check_view(v, n, &bv);
		break;
	case 2:
		if (n >= 9) {
			uint64_t sum = XXH3_64bits(v + 9, n - 9);

			v[0] = (char)0xB1;
			for (int i = 0; i < 8; i++)
				v[1 + i] = (char)(sum >> (8 * i));
		}
		if (body_decode(v, n, &bv) == 0)
			check_view(v, n, &bv);
		break;
	case 3:
		counters_decode(v, n, c);
		break;
	case 4:
		roundtrip(data + 1, n);
		break;
	}
	free(v);
	return 0;
}
