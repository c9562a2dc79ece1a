/*
 * parse.h - pure parsers of what is written to ctl and lines. They know
 * neither FUSE nor the engine's state (only its public struct spool_push),
 * so fuzz targets link fs/parse.c alone (tests/fuzz/fuzz_parse.c).
 */
#ifndef FS_PARSE_H
#define FS_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "spool.h"

enum fs_ctl_cmd {
	FS_CTL_NONE,    /* an empty line: nothing to do */
	FS_CTL_PURGE,
	FS_CTL_MOVE,
};

struct fs_ctl {
	enum fs_ctl_cmd cmd;
	char queue[SPOOL_NAME_MAX + 1]; /* FS_CTL_MOVE: where to */
	uint64_t max;                   /* FS_CTL_MOVE: at most, 0 = all */
};

/*
 * Parses one ctl line (len bytes, no newline; spaces around it ignored):
 * "purge", "move QUEUE" or "move QUEUE N". Returns 0 and fills *out, or
 * -EINVAL for anything else (also a NUL byte, a queue name longer than
 * SPOOL_NAME_MAX, a count that is not a decimal number).
 */
int fs_ctl_parse(const char *line, size_t len, struct fs_ctl *out);

/* The most messages fs_lines_split() can find in text: one more than its
 * newlines (at least 1). */
size_t fs_lines_max(const char *text, size_t len);

/*
 * Splits text into the messages of a lines write: every \n-terminated line
 * and a final unterminated one, empty lines skipped, each p[i].body
 * pointing into text. p must have room for fs_lines_max(text, len)
 * entries. Returns the count. Only body and len are set.
 */
size_t fs_lines_split(const char *text, size_t len, struct spool_push *p);

#endif /* FS_PARSE_H */
