/*
 * dedup.c - the set of recently pushed names or bodies of one queue
 * (settings dedup=name|content): 128-bit keys, each with the time it stops
 * counting as a duplicate. A hash for lookups plus a list in insertion
 * order, so expired keys are found from the front without a scan. Lookups
 * check the expiry themselves; dropping expired keys is only housekeeping.
 * The store keeps each key too (keys.c), so the window survives a restart.
 * Not thread-safe: the queue's lock guards it.
 */
#include <stdlib.h>
#include <string.h>

#include "rocks.h"

struct dedup_entry {
	uint8_t key[DEDUP_KEY_LEN];
	int64_t expiry_ms;
	uint64_t id;                    /* the message kept for it */
	struct dedup_entry *hnext;      /* hash chain */
	struct dedup_entry *fnext;      /* insertion order */
};

static size_t slot(const struct dedup *d, const uint8_t *key)
{
	uint64_t h;

	memcpy(&h, key, sizeof(h));
	return (size_t)h & d->mask;
}

static struct dedup_entry **find(struct dedup *d, const uint8_t *key)
{
	struct dedup_entry **pp;

	if (!d->tab)
		return NULL;
	for (pp = &d->tab[slot(d, key)]; *pp; pp = &(*pp)->hnext)
		if (memcmp((*pp)->key, key, DEDUP_KEY_LEN) == 0)
			return pp;
	return NULL;
}

int dedup_seen(struct dedup *d, const uint8_t *key, int64_t now,
	       uint64_t *id)
{
	struct dedup_entry **pp = find(d, key);

	if (!pp || (*pp)->expiry_ms <= now)
		return 0;
	*id = (*pp)->id;
	return 1;
}

void dedup_set_id(struct dedup *d, const uint8_t *key, uint64_t id)
{
	struct dedup_entry **pp = find(d, key);

	if (pp)
		(*pp)->id = id;
}

/* Doubles the table (or makes the first); on ENOMEM keeps the old one. */
static void grow(struct dedup *d)
{
	size_t n = d->tab ? (d->mask + 1) * 2 : 64;
	struct dedup_entry **t = calloc(n, sizeof(*t));

	if (!t)
		return;
	for (size_t i = 0; d->tab && i <= d->mask; i++) {
		struct dedup_entry *e = d->tab[i], *next;

		for (; e; e = next) {
			uint64_t h;

			next = e->hnext;
			memcpy(&h, e->key, sizeof(h));
			e->hnext = t[h & (n - 1)];
			t[h & (n - 1)] = e;
		}
	}
	free(d->tab);
	d->tab = t;
	d->mask = n - 1;
}

int dedup_add(struct dedup *d, const uint8_t *key, int64_t expiry_ms,
	      uint64_t id)
{
	struct dedup_entry **pp = find(d, key), *e;

	if (pp) {
		(*pp)->expiry_ms = expiry_ms;
		(*pp)->id = id;
		return 0;
	}
	if (!d->tab || d->n >= d->mask + 1)
		grow(d);
	e = calloc(1, sizeof(*e));
	if (!e || !d->tab) {
		free(e);
		return -1;
	}
	memcpy(e->key, key, DEDUP_KEY_LEN);
	e->expiry_ms = expiry_ms;
	e->id = id;
	e->hnext = d->tab[slot(d, key)];
	d->tab[slot(d, key)] = e;
	if (d->tail)
		d->tail->fnext = e;
	else
		d->head = e;
	d->tail = e;
	d->n++;
	return 0;
}

/* Unlinks e from the insertion list; e must be there. */
static void unlink_fifo(struct dedup *d, struct dedup_entry *e)
{
	struct dedup_entry **pp = &d->head, *prev = NULL;

	for (; *pp != e; pp = &(*pp)->fnext)
		prev = *pp;
	*pp = e->fnext;
	if (d->tail == e)
		d->tail = prev;
}

void dedup_del(struct dedup *d, const uint8_t *key)
{
	struct dedup_entry **pp = find(d, key), *e;

	if (!pp)
		return;
	e = *pp;
	*pp = e->hnext;
	unlink_fifo(d, e);
	free(e);
	d->n--;
}

size_t dedup_expire(struct dedup *d, int64_t now, uint8_t (*keys)[DEDUP_KEY_LEN],
		    size_t max)
{
	size_t n = 0;

	while (n < max && d->head && d->head->expiry_ms <= now) {
		memcpy(keys[n++], d->head->key, DEDUP_KEY_LEN);
		dedup_del(d, d->head->key);
	}
	return n;
}

void dedup_free(struct dedup *d)
{
	struct dedup_entry *e = d->head, *next;

	for (; e; e = next) {
		next = e->fnext;
		free(e);
	}
	free(d->tab);
	memset(d, 0, sizeof(*d));
}
