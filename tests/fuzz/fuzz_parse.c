/*
 * fuzz_parse.c - the daemon's pure parsers (fs/parse.c): the ctl command
 * parser and the lines splitter. Properties: the parser accepts only the
 * documented commands (a refused line is -EINVAL and nothing else); an
 * accepted move names a queue of 1..SPOOL_NAME_MAX bytes without spaces;
 * the splitter's messages lie inside the input, hold no newline, are never
 * empty, and with the newlines they account for every byte.
 */
#include "fuzz_common.h"
#include "../../fs/parse.h"

static void check_ctl(const char *s, size_t len)
{
	struct fs_ctl c;
	int rc = fs_ctl_parse(s, len, &c);

	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc || c.cmd != FS_CTL_MOVE)
		return;
	size_t n = strlen(c.queue);

	FUZZ_CHECK(n >= 1 && n <= SPOOL_NAME_MAX);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(c.queue[i] != ' ' && c.queue[i] != '\n');
	FUZZ_CHECK(memmem(s, len, c.queue, n) != NULL);
}

static void check_lines(const char *s, size_t len)
{
	size_t max = fs_lines_max(s, len), n, bytes = 0;
	struct spool_push *p = calloc(max, sizeof(*p));

	FUZZ_CHECK(p != NULL && max >= 1);
	n = fs_lines_split(s, len, p);
	FUZZ_CHECK(n <= max && n <= len / 2 + 1);
	for (size_t i = 0; i < n; i++) {
		const char *b = p[i].body;

		FUZZ_CHECK(p[i].len > 0);
		FUZZ_CHECK(b >= s && b + p[i].len <= s + len);
		FUZZ_CHECK(memchr(b, '\n', p[i].len) == NULL);
		FUZZ_CHECK(i == 0 || b > (const char *)p[i - 1].body);
		bytes += p[i].len;
	}
	size_t newlines = 0;

	for (size_t i = 0; i < len; i++)
		newlines += s[i] == '\n';
	FUZZ_CHECK(bytes + newlines == len);
	free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_ctl((const char *)data, size);
	check_lines((const char *)data, size);
	return 0;
}
