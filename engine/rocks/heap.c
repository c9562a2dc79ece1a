/*
 * heap.c - a binary min-heap of messages ordered by (due_ms, id), the
 * queue's timers: delays that end and leases that run out. Each message
 * knows its slot (m->heap_idx), so any one can be removed in O(log n).
 */
#include <stdio.h>
#include <stdlib.h>

#include "rocks.h"

static int less(const struct node *a, const struct node *b)
{
	int64_t da = node_due(a), db = node_due(b);

	if (da != db)
		return da < db;
	return a->id < b->id;
}

static void set(struct heap *h, uint32_t i, struct node *m)
{
	h->v[i] = m;
	m->heap_idx = i;
}

static void sift_up(struct heap *h, uint32_t i)
{
	struct node *m = h->v[i];

	while (i > 0) {
		uint32_t p = (i - 1) / 2;

		if (!less(m, h->v[p]))
			break;
		set(h, i, h->v[p]);
		i = p;
	}
	set(h, i, m);
}

static void sift_down(struct heap *h, uint32_t i)
{
	struct node *m = h->v[i];

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && less(h->v[c + 1], h->v[c]))
			c++;
		if (!less(h->v[c], m))
			break;
		set(h, i, h->v[c]);
		i = c;
	}
	set(h, i, m);
}

/* Out of memory here is fatal: a timer that cannot be kept would break
 * a lease or a delay silently, so the daemon stops instead. */
void heap_push(struct heap *h, struct node *m)
{
	if (h->n == h->cap) {
		uint32_t cap = h->cap ? h->cap * 2 : 64;
		struct node **v = realloc(h->v, cap * sizeof(*v));

		if (!v) {
			fputs("spool: out of memory for timers\n", stderr);
			abort();
		}
		h->v = v;
		h->cap = cap;
	}
	set(h, h->n, m);
	sift_up(h, h->n++);
}

void heap_remove(struct heap *h, struct node *m)
{
	uint32_t i = m->heap_idx;

	m->heap_idx = HEAP_NONE;
	if (--h->n == i)
		return;
	set(h, i, h->v[h->n]);
	if (i > 0 && less(h->v[i], h->v[(i - 1) / 2]))
		sift_up(h, i);
	else
		sift_down(h, i);
}

struct node *heap_top(const struct heap *h)
{
	return h->n ? h->v[0] : NULL;
}

void heap_free(struct heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}
