/*
 * util.c - small tools of the daemon that know nothing of queues: a set of
 * live handles, a growing byte buffer, and a thread's process.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

void fs_set_add(struct fs_set *s, struct fs_link *l)
{
	pthread_mutex_lock(&s->lock);
	l->prev = NULL;
	l->next = s->head;
	if (s->head)
		s->head->prev = l;
	s->head = l;
	pthread_mutex_unlock(&s->lock);
}

void fs_set_remove(struct fs_set *s, struct fs_link *l)
{
	pthread_mutex_lock(&s->lock);
	if (l->prev)
		l->prev->next = l->next;
	else if (s->head == l)
		s->head = l->next;
	if (l->next)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
	pthread_mutex_unlock(&s->lock);
}

struct fs_link *fs_set_pop(struct fs_set *s)
{
	struct fs_link *l;

	pthread_mutex_lock(&s->lock);
	l = s->head;
	if (l) {
		s->head = l->next;
		if (s->head)
			s->head->prev = NULL;
		l->prev = l->next = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	return l;
}

int fs_buf_put(struct fs_buf *b, const void *data, size_t len, size_t off)
{
	size_t end = off + len;

	if (end > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < end)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return -ENOMEM;
		b->data = p;
		b->cap = cap;
	}
	if (off > b->len)
		memset(b->data + b->len, 0, off - b->len);
	if (len) /* b->data may still be NULL: a truncate to 0 of nothing */
		memcpy(b->data + off, data, len);
	if (end > b->len)
		b->len = end;
	return 0;
}

void fs_buf_free(struct fs_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

pid_t fs_tgid(pid_t tid)
{
	char path[64], line[256];
	pid_t tgid = 0;
	FILE *f;

	if (tid <= 0)
		return 0;
	snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Tgid: %d", &tgid) == 1)
			break;
	fclose(f);
	return tgid;
}
