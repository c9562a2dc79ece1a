/*
 * tree.c - an intrusive treap of messages. Each message is in at most one
 * tree (the one of its state), linked through m->l and m->r; the heap
 * priority of a node is a hash of its id (m->tprio), so the shape is random
 * whatever order ids arrive in (expected depth O(log n)). Recursion depth
 * is that expected depth.
 */
#include "engine_i.h"

/* A fixed mix of the id (splitmix64's finaliser), kept in the message so
 * that a descent does not recompute it at every level. */
void tree_init_msg(struct msg *m)
{
	uint64_t x = m->id;

	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	m->tprio = (uint32_t)(x ^ (x >> 31));
}

static uint32_t node_prio(const struct msg *m)
{
	return m->tprio;
}

int tree_cmp_id(const struct msg *a, const struct msg *b)
{
	return (a->id > b->id) - (a->id < b->id);
}

/* Leasing order: higher priority first, then lower id. */
int tree_cmp_ready(const struct msg *a, const struct msg *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority ? -1 : 1;
	return tree_cmp_id(a, b);
}

void tree_init(struct tree *t, tree_cmp_fn cmp)
{
	t->root = NULL;
	t->n = 0;
	t->cmp = cmp;
}

static struct msg *insert(struct msg *t, struct msg *m, tree_cmp_fn cmp)
{
	struct msg *c;

	if (!t)
		return m;
	if (cmp(m, t) < 0) {
		t->l = insert(t->l, m, cmp);
		if (node_prio(t->l) > node_prio(t)) {
			c = t->l;
			t->l = c->r;
			c->r = t;
			return c;
		}
	} else {
		t->r = insert(t->r, m, cmp);
		if (node_prio(t->r) > node_prio(t)) {
			c = t->r;
			t->r = c->l;
			c->l = t;
			return c;
		}
	}
	return t;
}

void tree_insert(struct tree *t, struct msg *m)
{
	m->l = m->r = NULL;
	t->root = insert(t->root, m, t->cmp);
	t->n++;
}

/* Joins two treaps where every key of a orders before every key of b. */
static struct msg *merge(struct msg *a, struct msg *b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	if (node_prio(a) > node_prio(b)) {
		a->r = merge(a->r, b);
		return a;
	}
	b->l = merge(a, b->l);
	return b;
}

static struct msg *remove_node(struct msg *t, struct msg *m, tree_cmp_fn cmp)
{
	int c;

	if (!t)
		return NULL;
	if (t == m)
		return merge(t->l, t->r);
	c = cmp(m, t);
	if (c < 0)
		t->l = remove_node(t->l, m, cmp);
	else
		t->r = remove_node(t->r, m, cmp);
	return t;
}

void tree_remove(struct tree *t, struct msg *m)
{
	t->root = remove_node(t->root, m, t->cmp);
	m->l = m->r = NULL;
	t->n--;
}

struct msg *tree_first(const struct tree *t)
{
	struct msg *m = t->root;

	while (m && m->l)
		m = m->l;
	return m;
}

struct msg *tree_after(const struct tree *t, const struct msg *key)
{
	struct msg *m = t->root, *best = NULL;

	while (m) {
		if (t->cmp(m, key) > 0) {
			best = m;
			m = m->l;
		} else {
			m = m->r;
		}
	}
	return best;
}
