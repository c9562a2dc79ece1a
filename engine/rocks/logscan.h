/*
 * logscan.h - reads a RocksDB log file (a write-ahead log or a MANIFEST) on
 * its own, without RocksDB, to say whether it is whole, torn at the end, or
 * damaged in the middle. RocksDB's own recovery cannot tell the last two
 * apart (point-in-time recovery stops at the first bad record either way);
 * the store needs to, to recover what a crash leaves and refuse the rest.
 *
 * The format (RocksDB db/log_format.h, unchanged since LevelDB): 32 KiB
 * blocks of physical records, each a 7-byte header (masked CRC32C of type
 * and payload, u16 length, u8 type; 11 bytes with the log number for the
 * recyclable types) and its payload; a block's last < 7 bytes are zero
 * padding. A logical record is one FULL record or FIRST, MIDDLE..., LAST.
 */
#ifndef LOGSCAN_H
#define LOGSCAN_H

#include <stdint.h>

struct logscan {
	uint64_t size;          /* bytes in the file */
	uint64_t records;       /* logical records that start whole */
	uint64_t bad_at;        /* offset of the first damage (if any) */
	uint64_t bad_regions;   /* runs of unreadable bytes */
	uint64_t bad_bytes;     /* their total length */
	uint64_t lost;          /* logical records lost at the first damage:
	                         * the damaged one and the rest of its block */
	uint64_t after;         /* logical records starting after the first
	                         * damage: 0 means the damage is a torn tail */
};

/* Scans the log file at path into *out. Returns 0, or a negative errno if
 * the file cannot be read (nothing is ever written). */
int logscan_file(const char *path, struct logscan *out);

/* 1 if the scan found no damage at all. */
static inline int logscan_clean(const struct logscan *s)
{
	return s->bad_regions == 0;
}

#endif /* LOGSCAN_H */
