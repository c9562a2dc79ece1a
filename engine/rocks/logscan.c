/*
 * logscan.c - checks a RocksDB log file record by record (see logscan.h).
 * Reads only; knows the physical framing and CRC32C, nothing of what the
 * records say.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "logscan.h"

#define BLOCK 32768
#define HDR 7
#define HDR_RECYCLABLE 11

enum { T_ZERO = 0, T_FULL = 1, T_FIRST = 2, T_MIDDLE = 3, T_LAST = 4,
       T_RFULL = 5, T_RFIRST = 6, T_RMIDDLE = 7, T_RLAST = 8,
       T_SETCOMP = 9, T_MAX = 9 };

static uint32_t crc_table[256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc32c(uint32_t crc, const unsigned char *p, size_t n)
{
	crc = ~crc;
	while (n--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* RocksDB stores CRCs masked (util/crc32c.h), so that a CRC of data that
 * holds CRCs is not trivially zero. */
static uint32_t crc_mask(uint32_t crc)
{
	return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static uint32_t le32(const unsigned char *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Length of the valid physical record at p (avail bytes left in its
 * block), or 0 if there is none there. *type gets its type. The CRC covers
 * the type, the log number of the recyclable types, and the payload: the
 * bytes from p + 6 on. */
static size_t record_at(const unsigned char *p, size_t avail, int *type)
{
	size_t hs, len;

	*type = p[6];
	if (*type == T_ZERO || *type > T_MAX)
		return 0;
	hs = *type >= T_RFULL && *type <= T_RLAST ? HDR_RECYCLABLE : HDR;
	len = p[4] | (size_t)p[5] << 8;
	if (hs + len > avail)
		return 0;
	if (crc_mask(crc32c(0, p + 6, hs - 6 + len)) != le32(p))
		return 0;
	return hs + len;
}

static int starts_record(int type)
{
	return type == T_FULL || type == T_FIRST || type == T_RFULL ||
	       type == T_RFIRST || type == T_SETCOMP;
}

static int all_zero(const unsigned char *p, size_t n)
{
	while (n--)
		if (*p++)
			return 0;
	return 1;
}

/* Records lost at a damaged record at p (len bytes left in its block):
 * itself, and every record after it in the block, which RocksDB's reader
 * drops with it. Found by trusting the damaged record's length field; if
 * that is damaged too, only the damaged record is counted. */
static uint64_t count_lost(const unsigned char *p, size_t len)
{
	size_t pos = HDR + (p[4] | (size_t)p[5] << 8);
	uint64_t n = 1;
	int type;

	while (pos < len && len - pos >= HDR) {
		size_t k = record_at(p + pos, len - pos, &type);

		if (!k)
			break;
		n += starts_record(type);
		pos += k;
	}
	return n;
}

/* A run of bytes that hold no record, from start. Zeros up to the end of
 * the file are a preallocated or never-written tail, not damage. */
struct run {
	int open;
	int nonzero;
	uint64_t start;
};

static void run_close(struct logscan *s, struct run *r, uint64_t end,
		      int at_eof)
{
	if (!r->open)
		return;
	r->open = 0;
	if (at_eof && !r->nonzero)
		return;
	if (!s->bad_regions++)
		s->bad_at = r->start;
	s->bad_bytes += end - r->start;
}

/* Scans one block (len bytes at file offset off). */
static void scan_block(const unsigned char *b, size_t len, uint64_t off,
		       struct logscan *s, struct run *r)
{
	size_t pos = 0;

	/* fewer than HDR bytes left: the block's zero padding */
	while (len - pos >= HDR) {
		int type;
		size_t n = record_at(b + pos, len - pos, &type);

		if (!n) {
			if (!r->open && !s->bad_regions)
				s->lost = count_lost(b + pos, len - pos);
			if (!r->open) {
				r->open = 1;
				r->nonzero = 0;
				r->start = off + pos;
			}
			r->nonzero |= !all_zero(b + pos, len - pos);
			/* RocksDB's reader resumes at the next block */
			return;
		}
		run_close(s, r, off + pos, 0);
		if (starts_record(type)) {
			s->records++;
			if (s->bad_regions)
				s->after++;
		}
		pos += n;
	}
}

int logscan_file(const char *path, struct logscan *out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	unsigned char *buf;
	struct run r = { 0 };
	uint64_t off = 0;
	int fd, rc = 0;

	pthread_once(&once, crc_init);
	memset(out, 0, sizeof(*out));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(BLOCK);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		size_t got = 0;
		ssize_t n = 1;

		while (got < BLOCK &&
		       (n = read(fd, buf + got, BLOCK - got)) > 0)
			got += (size_t)n;
		if (n < 0) {
			rc = -errno;
			break;
		}
		scan_block(buf, got, off, out, &r);
		off += got;
		if (got < BLOCK)
			break;
	}
	out->size = off;
	run_close(out, &r, off, 1);
	free(buf);
	close(fd);
	return rc;
}
