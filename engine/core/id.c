/*
 * id.c - message ids: 43 bits of push time in ms, 21 bits of counter.
 *
 * An id is max(last + 1, now << 21), so ids increase in push order even
 * when the clock stalls or steps back. They are never reused, also across
 * restarts: the store keeps a reservation ("all ids below R may be in use"),
 * written in the same batch as the push that first passes it, a second of
 * ids ahead; at open the engine starts above both R and the largest id it
 * finds (see queue.c).
 */
#include <errno.h>
#include <string.h>

#include "rocks.h"
#include "kv.h"

#define ID_COUNTER_BITS 21
/* How far ahead a reservation reaches: 1024 ms worth of ids. */
#define ID_RESERVE_STEP (1024ull << ID_COUNTER_BITS)

static const char digits[] =
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void spool_id_format(uint64_t id, char out[SPOOL_ID_LEN + 1])
{
	for (int i = SPOOL_ID_LEN - 1; i >= 0; i--) {
		out[i] = digits[id % 62];
		id /= 62;
	}
	out[SPOOL_ID_LEN] = '\0';
}

static int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 36;
	return -1;
}

int spool_id_parse(const char *text, size_t len, uint64_t *id)
{
	unsigned __int128 v = 0;

	if (len != SPOOL_ID_LEN)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int d = digit_value(text[i]);

		if (d < 0)
			return -EINVAL;
		v = v * 62 + (unsigned)d;
	}
	if (v > UINT64_MAX)
		return -EINVAL;
	*id = (uint64_t)v;
	return 0;
}

uint64_t id_alloc(spool_db *db, size_t n, struct store_batch *b)
{
	int64_t now = spool_now(db);
	uint64_t first, floor = now > 0 ? (uint64_t)now << ID_COUNTER_BITS : 0;

	pthread_mutex_lock(&db->idlock);
	first = db->last_id + 1;
	if (floor > first)
		first = floor;
	db->last_id = first + n - 1;
	if (db->last_id >= db->reserved_id) {
		char k[1] = { 'I' };
		char v[8];
		uint64_t r = db->last_id + ID_RESERVE_STEP;

		for (int i = 0; i < 8; i++)
			v[i] = (char)(r >> (56 - 8 * i));
		store_batch_put(b, CF_META, k, 1, v, 8);
		db->reserved_id = r;
	}
	pthread_mutex_unlock(&db->idlock);
	return first;
}

/* A batch holding a reservation failed: write one again with the next. */
void id_write_failed(spool_db *db)
{
	pthread_mutex_lock(&db->idlock);
	db->reserved_id = 0;
	pthread_mutex_unlock(&db->idlock);
}
