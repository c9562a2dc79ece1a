/*
 * parse.c - the ctl command parser and the lines splitter (see parse.h).
 * Reentrant: no strtok, no static state.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "parse.h"

/* Moves *p past spaces, up to end. */
static const char *skip_space(const char *p, const char *end)
{
	while (p < end && isspace((unsigned char)*p))
		p++;
	return p;
}

/* The next word of [*p, end): its start and length; *p moves past it. */
static size_t next_word(const char **p, const char *end, const char **word)
{
	const char *s = skip_space(*p, end), *e = s;

	while (e < end && !isspace((unsigned char)*e))
		e++;
	*word = s;
	*p = e;
	return (size_t)(e - s);
}

static int parse_count(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 19)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static int parse_move(const char *p, const char *end, struct fs_ctl *out)
{
	const char *w;
	size_t n = next_word(&p, end, &w);

	if (n == 0 || n > SPOOL_NAME_MAX)
		return -EINVAL;
	memcpy(out->queue, w, n);
	out->queue[n] = '\0';
	out->cmd = FS_CTL_MOVE;
	n = next_word(&p, end, &w);
	if (n && parse_count(w, n, &out->max))
		return -EINVAL;
	return next_word(&p, end, &w) ? -EINVAL : 0;
}

int fs_ctl_parse(const char *line, size_t len, struct fs_ctl *out)
{
	const char *p = line, *end = line + len, *w;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (memchr(line, '\0', len))
		return -EINVAL;
	n = next_word(&p, end, &w);
	if (n == 0)
		return 0;
	if (n == 5 && memcmp(w, "purge", 5) == 0) {
		out->cmd = FS_CTL_PURGE;
		return next_word(&p, end, &w) ? -EINVAL : 0;
	}
	if (n == 4 && memcmp(w, "move", 4) == 0)
		return parse_move(p, end, out);
	return -EINVAL;
}

size_t fs_lines_max(const char *text, size_t len)
{
	size_t n = 1;
	const char *p = text, *end = text + len;

	while (p < end && (p = memchr(p, '\n', (size_t)(end - p)))) {
		n++;
		p++;
	}
	return n;
}

size_t fs_lines_split(const char *text, size_t len, struct spool_push *p)
{
	const char *s = text, *end = text + len;
	size_t n = 0;

	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *e = nl ? nl : end;

		if (e > s) {
			p[n].body = s;
			p[n].len = (size_t)(e - s);
			n++;
		}
		s = e + 1;
	}
	return n;
}
