/*
 * push.c - pushing a message with the xattrs of its draft or name being
 * written: user.spool.priority and user.spool.delay become its priority
 * and delay (checked at setxattr by fs_xattr_check), the other user.*
 * ones its attributes.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

static int parse_priority(const char *v, size_t len, int32_t *out)
{
	char text[32], *end;
	long long n;

	if (len == 0 || len >= sizeof text)
		return -EINVAL;
	memcpy(text, v, len);
	text[len] = '\0';
	n = strtoll(text, &end, 10);
	while (isspace((unsigned char)*end))
		end++;
	if (*end || end == text || n < INT32_MIN || n > INT32_MAX)
		return -EINVAL;
	*out = (int32_t)n;
	return 0;
}

/* Seconds, fractions allowed, into ms. */
static int parse_delay(const char *v, size_t len, int64_t *out)
{
	char text[64], *end;
	double s;

	if (len == 0 || len >= sizeof text)
		return -EINVAL;
	memcpy(text, v, len);
	text[len] = '\0';
	s = strtod(text, &end);
	while (isspace((unsigned char)*end))
		end++;
	if (*end || end == text || !(s >= 0) || s > 1e12)
		return -EINVAL;
	*out = (int64_t)(s * 1000 + 0.5);
	return 0;
}

int fs_xattr_check(const char *name, const char *value, size_t size)
{
	int32_t p;
	int64_t d;

	if (strcmp(name, "user.spool.priority") == 0)
		return parse_priority(value, size, &p);
	if (strcmp(name, "user.spool.delay") == 0)
		return parse_delay(value, size, &d);
	return 0;
}

static size_t count_xattrs(const struct fs_xattr *x)
{
	size_t n = 0;

	for (; x; x = x->next)
		n++;
	return n;
}

/* Turns xattrs into push options; attrs[] has room for all of them. */
static int push_options(struct spool_push *p, const struct fs_xattr *x,
			struct spool_attr *attrs)
{
	for (; x; x = x->next) {
		if (strcmp(x->name, "user.spool.priority") == 0) {
			if (parse_priority(x->value, x->len, &p->priority) < 0)
				return -EINVAL;
			p->has_priority = 1;
		} else if (strcmp(x->name, "user.spool.delay") == 0) {
			if (parse_delay(x->value, x->len, &p->delay_ms) < 0)
				return -EINVAL;
			p->has_delay = 1;
		} else if (strncmp(x->name, "user.", 5) == 0 &&
			   strncmp(x->name, "user.spool.", 11) != 0) {
			attrs[p->nattrs].name = x->name;
			attrs[p->nattrs].value = x->value;
			attrs[p->nattrs].len = x->len;
			p->nattrs++;
		}
	}
	p->attrs = attrs;
	return 0;
}

int fs_push_with_xattrs(struct fs_queue *q, const char *name,
			const void *body, size_t len,
			const struct fs_xattr *xattrs, uid_t uid, uint64_t *id)
{
	struct spool_push p = { .body = body, .len = len, .name = name };
	struct spool_attr *attrs;
	char sender[16];
	int rc;

	snprintf(sender, sizeof sender, "%u", (unsigned)uid);
	p.sender = sender;
	attrs = calloc(count_xattrs(xattrs) + 1, sizeof *attrs);
	if (!attrs)
		return -ENOMEM;
	rc = push_options(&p, xattrs, attrs);
	if (rc == 0)
		rc = spool_push(q->sq, &p, id);
	free(attrs);
	return rc;
}
