/*
 * fuzz_body.c - the readers of a stored body record: spool_msg_read,
 * spool_msg_name, spool_msg_listattr and spool_msg_getattr, which walk the
 * name and the packed attributes (attrs_walk in engine/core/record.c). Each input
 * becomes the body record of a freshly pushed message, through the seam
 * spool_test_put_body(); the first byte's low bit says whether it is sealed
 * (given the magic and a valid checksum, so that the length fields inside
 * are what the readers meet) or stored as it is.
 *
 * Properties: no read out of bounds (ASan); every call returns success or
 * EIO (once EIO, the message is set aside: EIO or ENOENT after that); a name fits
 * its buffer; listattr's names are NUL-terminated, fill exactly the size
 * it reported, and each has a value whose size getattr reports the same
 * way twice, with ERANGE for a buffer one byte short (not empty).
 */
#include "fuzz_common.h"

#include "spool_test.h"

static spool_db *db;
static spool_queue *q;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct spool_queue_attr a = { .mode = 0700 };

	(void)argc; (void)argv;
	db = fuzz_open_store();
	FUZZ_CHECK(spool_queue_create(db, "f", &a) == 0);
	FUZZ_CHECK(spool_queue_open(db, "f", &q) == 0);
	return 0;
}

/* rc of a reader: a result; or EIO, after which the message is set aside
 * and every reader gives EIO or ENOENT. */
static int gone;

static void check_rc(ssize_t rc)
{
	if (rc >= 0)
		FUZZ_CHECK(!gone);
	else if (rc == -EIO)
		gone = 1;
	else
		FUZZ_CHECK(rc == -ENOENT && gone);
}

static void check_attrs(uint64_t id)
{
	ssize_t need = spool_msg_listattr(q, id, NULL, 0), got;
	char *names, *p;

	check_rc(need);
	if (need <= 0)
		return;
	names = malloc((size_t)need);
	FUZZ_CHECK(names);
	got = spool_msg_listattr(q, id, names, (size_t)need);
	FUZZ_CHECK(got == need);
	FUZZ_CHECK(names[need - 1] == '\0');
	if (need > 1)
		FUZZ_CHECK(spool_msg_listattr(q, id, names, (size_t)need - 1) ==
			   -ERANGE);
	for (p = names; p < names + need; p += strlen(p) + 1) {
		ssize_t vlen = spool_msg_getattr(q, id, p, NULL, 0);
		char *v;

		FUZZ_CHECK(vlen >= 0);
		v = malloc(vlen ? (size_t)vlen : 1);
		FUZZ_CHECK(v);
		FUZZ_CHECK(spool_msg_getattr(q, id, p, v, (size_t)vlen) == vlen);
		if (vlen > 1)   /* a length of 0 asks for the size */
			FUZZ_CHECK(spool_msg_getattr(q, id, p, v,
						     (size_t)vlen - 1) == -ERANGE);
		free(v);
	}
	free(names);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_push p = { .body = "x", .len = 1 };
	char name[SPOOL_MSG_NAME_MAX + 1], buf[256], *rec;
	uint64_t id;
	ssize_t n;
	size_t len = size ? size - 1 : 0;
	int rc;

	FUZZ_CHECK(spool_push(q, &p, &id) == 0);
	/* An exact-size copy, so ASan sees any read past the record. */
	rec = malloc(len ? len : 1);
	FUZZ_CHECK(rec);
	memcpy(rec, data + (size ? 1 : 0), len);
	FUZZ_CHECK(spool_test_put_body(db, id, rec, len,
				       size ? data[0] & 1 : 1) == 0);
	free(rec);
	gone = 0;

	n = spool_msg_read(q, id, 0, buf, sizeof buf);
	check_rc(n);
	FUZZ_CHECK(n <= (ssize_t)sizeof buf);
	if (n >= 0) {
		ssize_t tail = spool_msg_read(q, id, (uint64_t)n, buf, 1);

		FUZZ_CHECK(tail == 0 || (n == (ssize_t)sizeof buf && tail == 1));
	}
	rc = spool_msg_name(q, id, name);
	check_rc(rc);
	if (rc == 0)
		FUZZ_CHECK(strlen(name) <= SPOOL_MSG_NAME_MAX);
	check_attrs(id);

	rc = spool_delete(q, id, SPOOL_VISIBLE | SPOOL_CORRUPT);
	FUZZ_CHECK(rc == 0);
	return 0;
}
