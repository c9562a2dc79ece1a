/*
 * file.c - whole-file reads and writes, the only I/O the CLI needs, plus
 * the small parsers for the key=value files (stats, config).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cli_read_fd(int fd, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1), *p;
	ssize_t r;

	*out = NULL;
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (n == cap) {
			p = realloc(buf, cap * 2 + 1);
			if (!p)
				goto out_free;
			buf = p;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto out_free;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return 0;
out_free:
	r = errno ? -errno : -ENOMEM;
	free(buf);
	return (int)r;
}

int cli_read_file(const char *path, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	*out = NULL;
	if (fd < 0)
		return -errno;
	rc = cli_read_fd(fd, out, len);
	close(fd);
	return rc;
}

int cli_write_all(int fd, const char *buf, size_t len)
{
	ssize_t w;

	while (len > 0) {
		w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* The push (or the setting) is committed at close(), which reports its
 * failure: close's error counts as much as write's. */
int cli_write_file(const char *path, const char *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC), rc;

	if (fd < 0)
		return -errno;
	rc = cli_write_all(fd, buf, len);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

int cli_copy_fd(int in, int out)
{
	char buf[65536];
	ssize_t r;
	int rc;

	for (;;) {
		r = read(in, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return 0;
		rc = cli_write_all(out, buf, (size_t)r);
		if (rc)
			return rc;
	}
}

char *cli_kv_get(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *p = text, *end;

	while (p && *p) {
		end = strchr(p, '\n');
		if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
			p += klen + 1;
			return strndup(p, end ? (size_t)(end - p) : strlen(p));
		}
		p = end ? end + 1 : NULL;
	}
	return NULL;
}

double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds: a non-negative decimal number, or "inf" (returned as -1). */
int cli_parse_seconds(const char *s, double *out)
{
	char *end;

	if (strcmp(s, "inf") == 0) {
		*out = -1;
		return 0;
	}
	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || *out < 0 || *out != *out)
		return -EINVAL;
	return 0;
}
