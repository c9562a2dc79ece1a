/*
 * buf.c - a growable byte buffer for the text the endpoint builds (XML
 * responses, SigV4's canonical request). A failed allocation is sticky:
 * every later put does nothing and b->oom stays set, so a caller checks
 * once, after building, and never uses a text with bytes missing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqs_i.h"

void sqs_buf_put(struct sqs_buf *b, const void *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *p = realloc(b->p, cap);

		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void sqs_buf_puts(struct sqs_buf *b, const char *s)
{
	sqs_buf_put(b, s, strlen(s));
}

void sqs_buf_putf(struct sqs_buf *b, const char *fmt, ...)
{
	char tmp[512], *big = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = 1;
		return;
	}
	if ((size_t)n >= sizeof tmp) {
		big = malloc((size_t)n + 1);
		if (!big) {
			b->oom = 1;
			return;
		}
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	sqs_buf_put(b, big ? big : tmp, (size_t)n);
	free(big);
}

void sqs_buf_free(struct sqs_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
