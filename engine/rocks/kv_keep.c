/*
 * kv_keep.c - the RocksDB store's memory, sized for a queue daemon rather
 * than a database server (issue 15; docs/decisions.md, "RocksDB store:
 * memory"):
 *   - the C library's heap (store_tune_malloc);
 *   - the keeper: a thread that, once the store has had no write for
 *     KEEP_IDLE_MS, flushes the memtables into table files and gives the
 *     freed heap back to the system, so that a daemon whose queues were
 *     drained or purged shrinks back instead of holding its peak.
 * The write-buffer budget and the block cache are set with the other
 * options, in kv.c.
 */
#include <malloc.h>
#include <stdatomic.h>
#include <time.h>

#include <pthread.h>
#include <rocksdb/c.h>

#include "rocks.h"
#include "kv_i.h"

/* glibc's heap: at most this many arenas (store_tune_malloc). */
#define HEAP_ARENAS 2
/* The keeper acts after this long without a write ... */
#define KEEP_IDLE_MS 2000
/* ... if the memtables hold at least this much (a flush of less writes
 * small table files for little memory). */
#define KEEP_FLUSH_MIN (1ull << 20)

/*
 * mallopt() is process-wide: it changes the heap of every thread of the
 * program that links the engine (the daemon's FUSE threads, the SQS
 * endpoint, the CLI tools), not only RocksDB's; so one setting only, for
 * the store, that costs the rest nothing measurable (docs/decisions.md):
 * M_ARENA_MAX. glibc gives threads up to 8 arenas per core. The daemon's
 * threads (FUSE workers, RocksDB's flush and compaction, the timer, the
 * keeper) free memtable and request memory into whichever arena they last
 * used, and each arena keeps its free chunks: a soak held 61 MB of heap for
 * 34 MB in use over 16 arenas. With two, freed memory is reused by the next
 * allocation instead of stranded; small allocations still go through each
 * thread's own cache (tcache) without taking an arena lock.
 * Not set: M_MMAP_THRESHOLD. Fixed at 256 KiB (so that memtable blocks
 * were mapped and unmapped on their own), it made every large buffer a
 * fresh mapping, faulted in page by page: batch pushes through `lines` fell
 * from about 410,000 to 158,000 lines/s. keep()'s malloc_trim() gives the
 * free pages back instead, wherever they are in the heap.
 * Set once, before the first store starts threads of its own.
 */
static void tune_malloc_once(void)
{
	mallopt(M_ARENA_MAX, HEAP_ARENAS);
}

void store_tune_malloc(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, tune_malloc_once);
}

/* Bytes in all memtables (mutable and immutable) of every family. */
static uint64_t memtable_bytes(struct store *st)
{
	uint64_t sum = 0, v;

	for (int i = 0; i < CF_N; i++)
		if (rocksdb_property_int_cf(st->db, st->cf[i],
					    "rocksdb.cur-size-all-mem-tables",
					    &v) == 0)
			sum += v;
	return sum;
}

/*
 * Flushes the memtables (the log has everything they hold already: no
 * change for durability, as a flush by RocksDB itself) and trims the heap.
 * Runs only between keeper_start() and keeper_stop(), and only after a
 * write, so st->db is the read-write handle (store_writable() swapped it
 * before the first write). A flush that fails (a full disk) leaves the
 * memtables as they were.
 */
static void keep(struct store *st)
{
	if (atomic_load(&st->broken) || memtable_bytes(st) < KEEP_FLUSH_MIN)
		return;
	store_flush_tables(st, SPOOL_LOG_DEBUG, "flush when idle");
	malloc_trim(0);
}

/* Absolute CLOCK_MONOTONIC time ms from now. */
static struct timespec after_ms(int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += ms % 1000 * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

/* Sleeps until there was a write, then until KEEP_IDLE_MS passed without
 * one, then keeps; until keeper_stop(). */
static void *keeper_main(void *arg)
{
	struct store *st = arg;
	struct keeper *k = &st->keeper;

	pthread_mutex_lock(&k->lock);
	while (!k->stop) {
		int64_t idle = store_mono_ms() - atomic_load(&k->last_write_ms);

		if (!atomic_load(&k->dirty)) {
			pthread_cond_wait(&k->cond, &k->lock);
		} else if (idle < KEEP_IDLE_MS) {
			struct timespec ts = after_ms(KEEP_IDLE_MS - idle);

			pthread_cond_timedwait(&k->cond, &k->lock, &ts);
		} else {
			atomic_store(&k->dirty, 0);
			pthread_mutex_unlock(&k->lock);
			keep(st);
			pthread_mutex_lock(&k->lock);
		}
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

void keeper_wrote(struct store *st)
{
	struct keeper *k = &st->keeper;

	atomic_store(&k->last_write_ms, store_mono_ms());
	/* the first write since the last keep wakes the keeper */
	if (!k->running || atomic_load(&k->dirty) ||
	    atomic_exchange(&k->dirty, 1))
		return;
	pthread_mutex_lock(&k->lock);
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->lock);
}

void keeper_start(struct store *st)
{
	struct keeper *k = &st->keeper;
	pthread_condattr_t ca;

	pthread_mutex_init(&k->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&k->cond, &ca);
	pthread_condattr_destroy(&ca);
	k->stop = 0;
	atomic_store(&k->dirty, 0);
	/* Without the thread the store works as before, only larger. */
	k->running = pthread_create(&k->thread, NULL, keeper_main, st) == 0;
	if (!k->running) {
		pthread_cond_destroy(&k->cond);
		pthread_mutex_destroy(&k->lock);
	}
}

void keeper_stop(struct store *st)
{
	struct keeper *k = &st->keeper;

	if (!k->running)
		return;
	pthread_mutex_lock(&k->lock);
	k->stop = 1;
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->lock);
	pthread_join(k->thread, NULL);
	k->running = 0;
	pthread_cond_destroy(&k->cond);
	pthread_mutex_destroy(&k->lock);
}
