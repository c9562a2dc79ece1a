/*
 * settings.c - a queue's settings (DESIGN §6): defaults, the "key=value"
 * text form that config shows and takes, and validation of each value.
 * Knows nothing of other queues: checks that need them (a dead_letter or
 * fanout queue that must exist) are made in policy.c (settings_check_refs).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* Upper bounds, so that a typo cannot ask for a lease of a thousand years
 * or a body larger than the daemon could buffer. */
#define MAX_SECONDS 31536000.0          /* a year */
#define MAX_RETENTION (100 * MAX_SECONDS)
#define MAX_BODY (1ull << 30)
#define MAX_DEPTH (1ull << 48)

enum kind { K_SECONDS, K_WAIT, K_INT32, K_U64, K_BOOL, K_NAME, K_DEDUP,
	    K_LIST };

struct key {
	const char *name;
	enum kind kind;
	size_t off;
	double max;     /* K_SECONDS, K_WAIT, K_U64 */
};

#define F(field) offsetof(struct spool_settings, field)

/* In the order config lists them (DESIGN §6). */
static const struct key keys[] = {
	{ "visibility_timeout", K_SECONDS, F(visibility_timeout_ms), MAX_SECONDS },
	{ "receive_wait", K_WAIT, F(receive_wait_ms), MAX_SECONDS },
	{ "delay", K_SECONDS, F(delay_ms), MAX_SECONDS },
	{ "priority", K_INT32, F(priority), 0 },
	{ "max_size", K_U64, F(max_size), (double)MAX_BODY },
	{ "max_depth", K_U64, F(max_depth), (double)MAX_DEPTH },
	{ "max_receives", K_U64, F(max_receives), 1e9 },
	{ "dead_letter", K_NAME, F(dead_letter), 0 },
	{ "retention", K_SECONDS, F(retention_ms), MAX_RETENTION },
	{ "dedup", K_DEDUP, F(dedup), 0 },
	{ "dedup_window", K_SECONDS, F(dedup_window_ms), MAX_SECONDS },
	{ "paused", K_BOOL, F(paused), 0 },
	{ "fanout", K_LIST, F(fanout), 0 },
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const dedup_modes[] = { "off", "name", "content" };

void settings_default(struct spool_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->visibility_timeout_ms = 30000;
	s->receive_wait_ms = -1;
	s->max_size = 1048576;
	s->dedup_window_ms = 300000;
}

/* Decimal digits with at most one '.', at least one digit: what config
 * prints. Not strtod's grammar, which also takes "0x10", "1e3", "inf",
 * "nan" and a sign. */
static int is_decimal(const char *v)
{
	size_t whole = strspn(v, "0123456789"), frac = 0;

	if (v[whole] == '.')
		frac = strspn(v + whole + 1, "0123456789") + 1;
	return v[whole + frac] == '\0' && whole + frac > (frac ? 1u : 0u);
}

/* A number of seconds, decimal, fractions allowed, to ms. */
static int parse_seconds(const char *v, double max, int64_t *ms)
{
	char *end;
	double d;

	if (!is_decimal(v))
		return -EINVAL;
	errno = 0;
	d = strtod(v, &end);
	if (end == v || *end || errno || !isfinite(d) || d < 0 || d > max)
		return -EINVAL;
	*ms = llround(d * 1000.0);
	return 0;
}

/* A whole number in [lo, hi], decimal digits only (no "0x", no "1e3"); a
 * minus sign only where negatives are allowed (not "-0" for max_depth). */
static int parse_int(const char *v, long long lo, double hi, long long *out)
{
	const char *p = v + (*v == '-' && lo < 0);
	char *end;
	long long n;

	if (!*p)
		return -EINVAL;
	for (; *p; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || n < lo || (double)n > hi)
		return -EINVAL;
	*out = n;
	return 0;
}

/* Comma-separated queue names, each valid, no duplicates. */
static int parse_list(const char *v, char *out, size_t cap)
{
	const char *p = v;

	if (strlen(v) >= cap)
		return -EINVAL;
	while (*p) {
		size_t n = strcspn(p, ",");

		if (!spool_name_valid(p, n))
			return -EINVAL;
		for (const char *q = v; q < p; q += strcspn(q, ",") + 1)
			if (strncmp(q, p, n) == 0 && (q[n] == ',' || !q[n])
			    && strcspn(q, ",") == n)
				return -EINVAL;
		p += n;
		if (*p == ',' && !*++p)
			return -EINVAL;
	}
	strcpy(out, v);
	return 0;
}

static int set_value(struct spool_settings *s, const struct key *k,
		     const char *v)
{
	char *f = (char *)s + k->off;
	long long n;

	switch (k->kind) {
	case K_WAIT:
		if (strcmp(v, "inf") == 0) {
			*(int64_t *)f = -1;
			return 0;
		}
		/* fall through */
	case K_SECONDS:
		return parse_seconds(v, k->max, (int64_t *)f);
	case K_INT32:
		if (parse_int(v, INT32_MIN, INT32_MAX, &n))
			return -EINVAL;
		*(int32_t *)f = (int32_t)n;
		return 0;
	case K_U64:
		if (parse_int(v, 0, k->max, &n))
			return -EINVAL;
		if (k->off == F(max_receives))
			*(uint32_t *)f = (uint32_t)n;
		else
			*(uint64_t *)f = (uint64_t)n;
		return 0;
	case K_BOOL:
		if (strcmp(v, "0") && strcmp(v, "1"))
			return -EINVAL;
		*(int *)f = *v == '1';
		return 0;
	case K_NAME:
		if (*v && !spool_name_valid(v, strlen(v)))
			return -EINVAL;
		strcpy(f, v);
		return 0;
	case K_DEDUP:
		for (int i = 0; i < 3; i++)
			if (strcmp(v, dedup_modes[i]) == 0) {
				*(int *)f = i;
				return 0;
			}
		return -EINVAL;
	case K_LIST:
		return parse_list(v, f, sizeof(s->fanout));
	}
	return -EINVAL;
}

static char *trim(char *b, char *e)
{
	while (b < e && (*b == ' ' || *b == '\t' || *b == '\r'))
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	*e = '\0';
	return b;
}

static int apply_line(struct spool_settings *s, char *line, char *end)
{
	char *eq = memchr(line, '=', (size_t)(end - line));
	char *key, *val;

	if (!eq)
		return -EINVAL;
	val = trim(eq + 1, end);
	key = trim(line, eq);
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(key, keys[i].name) == 0)
			return set_value(s, &keys[i], val);
	return -EINVAL;
}

int settings_parse(struct spool_settings *s, const char *text, size_t len)
{
	char *buf, *p, *end;
	int rc = 0;

	if (memchr(text, '\0', len))
		return -EINVAL;
	buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, text, len);
	buf[len] = '\0';
	for (p = buf; p < buf + len && !rc; p = end + 1) {
		end = memchr(p, '\n', (size_t)(buf + len - p));
		if (!end)
			end = buf + len;
		if (*trim(p, end))
			rc = apply_line(s, p, end);
	}
	free(buf);
	return rc;
}

/* Seconds as config shows them: "30", "0.25", "inf". */
static int fmt_seconds(char *buf, size_t len, int64_t ms)
{
	if (ms < 0)
		return snprintf(buf, len, "inf");
	if (ms % 1000 == 0)
		return snprintf(buf, len, "%lld", (long long)(ms / 1000));
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "%lld.%03lld",
			 (long long)(ms / 1000), (long long)(ms % 1000));

	while (tmp[n - 1] == '0')
		tmp[--n] = '\0';
	return snprintf(buf, len, "%s", tmp);
}

static int fmt_value(const struct spool_settings *s, const struct key *k,
		     const char *qname, char *buf, size_t len)
{
	const char *f = (const char *)s + k->off;

	switch (k->kind) {
	case K_SECONDS: case K_WAIT:
		return fmt_seconds(buf, len, *(const int64_t *)f);
	case K_INT32:
		return snprintf(buf, len, "%d", *(const int32_t *)f);
	case K_U64:
		if (k->off == F(max_receives))
			return snprintf(buf, len, "%u", *(const uint32_t *)f);
		return snprintf(buf, len, "%llu",
				(unsigned long long)*(const uint64_t *)f);
	case K_BOOL:
		return snprintf(buf, len, "%d", *(const int *)f);
	case K_NAME:
		if (!*f)
			return snprintf(buf, len, "%s.dead", qname);
		return snprintf(buf, len, "%s", f);
	case K_DEDUP:
		return snprintf(buf, len, "%s", dedup_modes[*(const int *)f]);
	case K_LIST:
		return snprintf(buf, len, "%s", f);
	}
	return 0;
}

int settings_format(const struct spool_settings *s, const char *qname,
		    char *buf, size_t len)
{
	size_t total = 0;

	for (size_t i = 0; i < NKEYS; i++) {
		char val[1100];
		size_t room = total < len ? len - total : 0;

		fmt_value(s, &keys[i], qname, val, sizeof(val));
		total += (size_t)snprintf(room ? buf + total : NULL, room,
					  "%s=%s\n", keys[i].name, val);
	}
	return (int)total;
}
