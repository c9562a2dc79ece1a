/*
 * tree.c - where messages live in memory: the node arena (48-byte nodes in
 * chunks that never move, numbered so that links take 32 bits), the packing
 * of a node's times, and an intrusive treap of nodes.
 *
 * Each node is in at most one tree (the one of its state), linked through
 * l and r; the heap priority of a node is a mix of its id, so the shape is
 * random whatever order ids arrive in (expected depth O(log n)). Recursion
 * depth is that expected depth. It is recomputed, not stored: two
 * multiplications cost less than the 4 bytes a node would need.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "rocks.h"

/* ---------------------------------------------------------------- arena */

#define CHUNK_BYTES (1ul << NODE_CHUNK_SHIFT)
#define CHUNK_NODES ((CHUNK_BYTES - sizeof(struct node_chunk)) / \
		     sizeof(struct node))
#define ARENA_CHUNKS (1u << (32 - NODE_SLOT_BITS))
_Static_assert(CHUNK_NODES < (1u << NODE_SLOT_BITS), "chunk too large");

int arena_init(struct arena *a)
{
	memset(a, 0, sizeof(*a));
	/* 256 KiB of which only the slots in use are ever touched */
	a->chunk = calloc(ARENA_CHUNKS, sizeof(*a->chunk));
	if (!a->chunk)
		return -1;
	pthread_mutex_init(&a->lock, NULL);
	return 0;
}

void arena_destroy(struct arena *a)
{
	if (!a->chunk)
		return;
	for (uint32_t i = 0; i < a->nchunks; i++)
		munmap(a->chunk[i], CHUNK_BYTES);
	free(a->chunk);
	a->chunk = NULL;
	pthread_mutex_destroy(&a->lock);
}

/* A CHUNK_BYTES mapping aligned to its size: map twice that, trim. */
static struct node_chunk *chunk_map(void)
{
	char *p = mmap(NULL, 2 * CHUNK_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t start, end;

	if (p == MAP_FAILED)
		return NULL;
	start = ((uintptr_t)p + CHUNK_BYTES - 1) & ~(CHUNK_BYTES - 1);
	end = start + CHUNK_BYTES;
	if (start > (uintptr_t)p)
		munmap(p, start - (uintptr_t)p);
	if ((uintptr_t)p + 2 * CHUNK_BYTES > end)
		munmap((void *)end, (uintptr_t)p + 2 * CHUNK_BYTES - end);
	return (struct node_chunk *)start;
}

/* A slot never used before; a->lock held. */
static struct node *fresh_slot(struct arena *a)
{
	struct node_chunk *c;

	if (!a->nchunks || a->unused == CHUNK_NODES) {
		if (a->nchunks == ARENA_CHUNKS || !(c = chunk_map()))
			return NULL;
		c->no = a->nchunks;
		a->chunk[a->nchunks++] = c;
		/* node number 0 means none: slot 0 of chunk 0 stays unused */
		a->unused = a->nchunks == 1;
	}
	return &a->chunk[a->nchunks - 1]->v[a->unused++];
}

struct node *node_alloc(struct arena *a)
{
	struct node *m;

	pthread_mutex_lock(&a->lock);
	if (a->free) {
		m = node_at(a, a->free);
		a->free = m->l;
	} else {
		m = fresh_slot(a);
	}
	pthread_mutex_unlock(&a->lock);
	if (m)
		memset(m, 0, sizeof(*m));
	return m;
}

void node_free(struct arena *a, struct node *m)
{
	void *w = NULL;

	if (!m)
		return;
	if (m->wide)
		memcpy(&w, m->tb, sizeof(w));
	free(w);
	m->wide = 0;
	pthread_mutex_lock(&a->lock);
	m->l = a->free;
	a->free = node_num(m);
	pthread_mutex_unlock(&a->lock);
}

uint32_t node_num(const struct node *m)
{
	const struct node_chunk *c = (const struct node_chunk *)
		((uintptr_t)m & ~(CHUNK_BYTES - 1));

	return c->no << NODE_SLOT_BITS | (uint32_t)(m - c->v);
}

/* ---------------------------------------------------------------- times */

#define T48_MAX ((int64_t)1 << 47)

static int fits48(int64_t v)
{
	return v >= -T48_MAX && v < T48_MAX;
}

static void put48(uint8_t *p, int64_t v)
{
	for (int i = 0; i < 6; i++)
		p[i] = (uint8_t)((uint64_t)v >> (8 * i));
}

static int64_t get48(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 6; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return (int64_t)(v << 16) >> 16;
}

/* The millisecond field of an id (id.c): the time it was handed out. */
static int64_t id_ms(uint64_t id)
{
	return (int64_t)(id >> 21);
}

static const struct msg_times *wide_times(const struct node *m)
{
	const struct msg_times *w;

	memcpy(&w, m->tb, sizeof(w));
	return w;
}

int64_t node_sent(const struct node *m)
{
	return m->wide ? wide_times(m)->sent_ms : id_ms(m->id) - m->sent_lag;
}

int64_t node_due(const struct node *m)
{
	return m->wide ? wide_times(m)->due_ms : get48(m->tb);
}

int64_t node_first_recv(const struct node *m)
{
	return m->wide ? wide_times(m)->first_recv_ms : get48(m->tb + 6);
}

void node_get(const struct node *m, struct msg *v)
{
	v->id = m->id;
	v->sent_ms = node_sent(m);
	v->due_ms = node_due(m);
	v->first_recv_ms = node_first_recv(m);
	v->size = m->size;
	v->receives = m->receives;
	v->priority = m->priority;
	v->state = m->state;
}

static int times_fit(const struct msg *v)
{
	int64_t lag = id_ms(v->id) - v->sent_ms;

	return v->sent_ms <= id_ms(v->id) && lag <= UINT16_MAX &&
	       fits48(v->due_ms) && fits48(v->first_recv_ms);
}

static void set_times(struct node *m, const struct msg *v)
{
	struct msg_times *w = NULL;

	if (m->wide)
		memcpy(&w, m->tb, sizeof(w));
	if (times_fit(v)) {
		free(w);
		m->wide = 0;
		m->sent_lag = (uint16_t)(id_ms(v->id) - v->sent_ms);
		put48(m->tb, v->due_ms);
		put48(m->tb + 6, v->first_recv_ms);
		return;
	}
	if (!w && !(w = malloc(sizeof(*w)))) {
		fputs("spool: out of memory for message times\n", stderr);
		abort();
	}
	*w = (struct msg_times){ v->sent_ms, v->due_ms, v->first_recv_ms };
	memcpy(m->tb, &w, sizeof(w));
	m->wide = 1;
}

void node_set(struct node *m, const struct msg *v)
{
	m->id = v->id;
	m->size = v->size;
	m->receives = v->receives;
	m->priority = v->priority;
	m->state = v->state;
	set_times(m, v);
}

/* ---------------------------------------------------------------- treap */

#define N(t, x) node_at((t)->a, (x))

/* A fixed mix of the id (splitmix64's finaliser). */
static uint32_t node_prio(const struct node *m)
{
	uint64_t x = m->id;

	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return (uint32_t)(x ^ (x >> 31));
}

int tree_cmp_id(const struct node *a, const struct node *b)
{
	return (a->id > b->id) - (a->id < b->id);
}

/* Leasing order: higher priority first, then lower id. */
int tree_cmp_ready(const struct node *a, const struct node *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority ? -1 : 1;
	return tree_cmp_id(a, b);
}

void tree_init(struct tree *t, tree_cmp_fn cmp, const struct arena *a)
{
	t->root = NODE_NONE;
	t->n = 0;
	t->cmp = cmp;
	t->a = a;
}

/* Inserts m (number mn, treap priority mp) below x; returns the subtree's
 * new root. Only m itself can come to outrank its parent, so a rotation
 * is needed only where m has just become a child. */
static uint32_t insert(const struct tree *t, uint32_t x, struct node *m,
		       uint32_t mn, uint32_t mp)
{
	struct node *n;

	if (!x)
		return mn;
	n = N(t, x);
	if (t->cmp(m, n) < 0) {
		n->l = insert(t, n->l, m, mn, mp);
		if (n->l == mn && mp > node_prio(n)) {
			n->l = m->r;
			m->r = x;
			return mn;
		}
	} else {
		n->r = insert(t, n->r, m, mn, mp);
		if (n->r == mn && mp > node_prio(n)) {
			n->r = m->l;
			m->l = x;
			return mn;
		}
	}
	return x;
}

void tree_insert(struct tree *t, struct node *m)
{
	m->l = m->r = NODE_NONE;
	t->root = insert(t, t->root, m, node_num(m), node_prio(m));
	t->n++;
}

/* Joins two treaps where every key of a orders before every key of b. */
static uint32_t merge(const struct tree *t, uint32_t a, uint32_t b)
{
	struct node *na, *nb;

	if (!a)
		return b;
	if (!b)
		return a;
	na = N(t, a);
	nb = N(t, b);
	if (node_prio(na) > node_prio(nb)) {
		na->r = merge(t, na->r, b);
		return a;
	}
	nb->l = merge(t, a, nb->l);
	return b;
}

static uint32_t remove_node(const struct tree *t, uint32_t x,
			    const struct node *m)
{
	struct node *n;

	if (!x)
		return NODE_NONE;
	n = N(t, x);
	if (n == m)
		return merge(t, n->l, n->r);
	if (t->cmp(m, n) < 0)
		n->l = remove_node(t, n->l, m);
	else
		n->r = remove_node(t, n->r, m);
	return x;
}

void tree_remove(struct tree *t, struct node *m)
{
	t->root = remove_node(t, t->root, m);
	m->l = m->r = NODE_NONE;
	t->n--;
}

struct node *tree_first(const struct tree *t)
{
	struct node *m;

	if (!t->root)
		return NULL;
	m = N(t, t->root);
	while (m->l)
		m = N(t, m->l);
	return m;
}

struct node *tree_after(const struct tree *t, const struct node *key)
{
	struct node *best = NULL;
	uint32_t x = t->root;

	while (x) {
		struct node *m = N(t, x);

		if (t->cmp(m, key) > 0) {
			best = m;
			x = m->l;
		} else {
			x = m->r;
		}
	}
	return best;
}

/*
 * The treap of sorted nodes as a Cartesian tree: one pass keeping the
 * right spine on a stack, so a rebuild at open costs O(n), not n inserts.
 * The stack lives in v itself: it never holds more nodes than were read.
 */
void tree_build(struct tree *t, uint32_t *v, size_t n)
{
	size_t sp = 0;

	for (size_t i = 0; i < n; i++) {
		uint32_t x = v[i], last = NODE_NONE;
		struct node *m = N(t, x);
		uint32_t p = node_prio(m);

		while (sp && node_prio(N(t, v[sp - 1])) < p)
			last = v[--sp];
		m->l = last;
		m->r = NODE_NONE;
		if (sp)
			N(t, v[sp - 1])->r = x;
		v[sp++] = x;
	}
	t->root = sp ? v[0] : NODE_NONE;
	t->n = n;
}
