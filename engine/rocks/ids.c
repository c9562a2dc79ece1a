/*
 * ids.c - handing out ids in the RocksDB store. The rule is the core's
 * (id_next); ids are never reused, also across restarts: the store keeps
 * a reservation ("all ids below R may be in use"), written in the same
 * batch as the push that first passes it, a second of ids ahead; at open
 * the store starts above both R and the largest id it finds (queue.c).
 */
#include "rocks.h"

/* How far ahead a reservation reaches: 1024 ms worth of ids. */
#define ID_RESERVE_STEP (1024ull << 21)

uint64_t id_alloc(struct rocks_db *db, size_t n, struct store_batch *b)
{
	int64_t now = db_now(db);
	uint64_t first;

	pthread_mutex_lock(&db->idlock);
	first = id_next(db->last_id, now);
	db->last_id = first + n - 1;
	if (db->last_id >= db->reserved_id) {
		uint64_t r = db->last_id + ID_RESERVE_STEP;

		batch_put_reservation(b, r);
		db->reserved_id = r;
	}
	pthread_mutex_unlock(&db->idlock);
	return first;
}

/* A batch holding a reservation failed: write one again with the next. */
void id_write_failed(struct rocks_db *db)
{
	pthread_mutex_lock(&db->idlock);
	db->reserved_id = 0;
	pthread_mutex_unlock(&db->idlock);
}
