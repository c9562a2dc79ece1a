/*
 * engine_i.h - the engine's private structures, shared by the engine's files only.
 *
 * Memory model: RocksDB holds the truth; each queue keeps its messages in
 * memory too, indexed four ways:
 *   - a hash by id (every message of the queue, whatever its state);
 *   - one ordered tree per state (ready: priority desc then id; the others
 *     by id), which gives leasing order and stable listing cursors;
 *   - a timer heap by due time (DELAYED and LEASED messages).
 * These are rebuilt from the store at open.
 *
 * Locking: db->qlock (rwlock) guards the queue table; q->lock guards
 * everything in a queue. Store writes happen with no queue lock held, so
 * that concurrent writers can share one fsync: an operation first takes the
 * message out of its tree/heap and marks it busy (no other operation touches
 * a busy message), then writes, then applies or undoes under the lock.
 * Lock order: db->qlock before q->lock; never two queue locks at once.
 */
#ifndef ENGINE_I_H
#define ENGINE_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "spool.h"

struct store;
struct store_batch;

/*
 * A message's fields at full width: the value that changes are computed on
 * (a copy, "next", applied once its write succeeded), that push builds and
 * that idx_from_msg() encodes. Never linked into anything.
 */
struct msg {
	uint64_t id;
	int64_t sent_ms;
	int64_t due_ms;
	int64_t first_recv_ms;
	uint32_t size;          /* body bytes (max_size is at most 1 GiB) */
	uint32_t receives;
	int32_t priority;
	uint8_t state;          /* enum spool_state */
};

/*
 * One message in memory: 48 bytes, a slot of the db's node arena (tree.c),
 * so no malloc header either. Links are node numbers (32 bits), not
 * pointers; 0 is none. The times are packed:
 *   - sent_ms is the id's own millisecond field (id >> 21, see id.c) minus
 *     sent_lag: a push takes its time just before its id, so the two agree
 *     but for a clock step or a burst of over 2^21 ids in one ms;
 *   - due_ms and first_recv_ms are 48-bit signed ms (+-4,000 years).
 * A message whose times do not fit (a clock stepped back, a lease extended
 * to the year 9999) is "wide": tb then holds a pointer to a malloc'd
 * struct msg_times with all three. Read and write them with node_get() and
 * node_set() only.
 * The treap priority is not stored: tree.c mixes it from the id.
 */
struct node {
	uint64_t id;
	uint8_t tb[12];         /* due, first received (48 bits each) or wide */
	uint32_t l, r;          /* tree links (the tree of its state) */
	uint32_t heap_idx;      /* index in q->timers, or HEAP_NONE */
	uint32_t size;
	uint32_t receives;
	int32_t priority;
	uint16_t sent_lag;
	uint8_t state;          /* enum spool_state */
	uint8_t busy : 1;       /* a store write for it is in flight */
	uint8_t wide : 1;       /* times in a struct msg_times (see above) */
};
_Static_assert(sizeof(struct node) == 48, "struct node grew");

struct msg_times {
	int64_t sent_ms, due_ms, first_recv_ms;
};

/*
 * tree.c: the node arena. Nodes live in 4 MiB chunks that never move (a
 * struct node * stays valid), each aligned to its size so that a node's
 * number follows from its address; freed nodes go on a free list. Chunks
 * come from mmap, so untouched slots cost no memory.
 * Locking: alloc and free take a->lock (a leaf lock: callers may hold
 * queue locks). Turning numbers into pointers takes no lock: a chunk's slot
 * in a->chunk is written once, before any of its nodes is handed out.
 */
#define NODE_NONE 0
struct arena {
	pthread_mutex_t lock;
	struct node_chunk **chunk;      /* ARENA_CHUNKS slots */
	uint32_t nchunks;               /* protected by lock */
	uint32_t free;                  /* free list, through l; lock */
	uint32_t unused;                /* next never used slot of the last
					 * chunk; protected by lock */
};
int arena_init(struct arena *a);
void arena_destroy(struct arena *a);
/* A zeroed node, or NULL on ENOMEM. */
struct node *node_alloc(struct arena *a);
/* Frees m (and its wide times). Accepts NULL. */
void node_free(struct arena *a, struct node *m);
uint32_t node_num(const struct node *m);
#define NODE_CHUNK_SHIFT 22     /* 4 MiB */
#define NODE_SLOT_BITS 17       /* a chunk holds under 2^17 nodes */
struct node_chunk {
	uint32_t no;            /* its number in a->chunk */
	uint32_t pad[15];
	struct node v[];
};
static inline struct node *node_at(const struct arena *a, uint32_t n)
{
	return &a->chunk[n >> NODE_SLOT_BITS]->v[n & ((1u << NODE_SLOT_BITS) - 1)];
}
/* The fields of m / sets them from v (id and state included; v->state
 * must be m's state already, see queue_set_state). node_set aborts on
 * ENOMEM for wide times: a change already written cannot be undone. */
void node_get(const struct node *m, struct msg *v);
int64_t node_sent(const struct node *m);
int64_t node_due(const struct node *m);
int64_t node_first_recv(const struct node *m);
void node_set(struct node *m, const struct msg *v);

/* tree.c: intrusive treap over struct node, ordered by cmp. */
typedef int (*tree_cmp_fn)(const struct node *a, const struct node *b);
struct tree {
	uint32_t root;
	size_t n;
	tree_cmp_fn cmp;
	const struct arena *a;
};
void tree_init(struct tree *t, tree_cmp_fn cmp, const struct arena *a);
void tree_insert(struct tree *t, struct node *m);
void tree_remove(struct tree *t, struct node *m);
struct node *tree_first(const struct tree *t);
/* First element ordered after key (key need only have the compared fields). */
struct node *tree_after(const struct tree *t, const struct node *key);
/* Builds t (empty) from nodes v[0..n), which are in t's order, in O(n).
 * Overwrites v. */
void tree_build(struct tree *t, uint32_t *v, size_t n);
int tree_cmp_ready(const struct node *a, const struct node *b);
int tree_cmp_id(const struct node *a, const struct node *b);

/* heap.c: min-heap of messages by (due_ms, id), with back-indexes. */
#define HEAP_NONE UINT32_MAX
struct heap {
	struct node **v;
	uint32_t n, cap;
};
void heap_push(struct heap *h, struct node *m);
void heap_remove(struct heap *h, struct node *m);
struct node *heap_top(const struct heap *h);
void heap_free(struct heap *h);

/* dedup.c: recently pushed names or bodies (dedup=name|content). */
#define DEDUP_KEY_LEN 16
struct dedup_entry;
struct dedup {
	struct dedup_entry **tab;
	size_t mask, n;
	struct dedup_entry *head, *tail;
};
/* 1 if key was added and has not expired by now. */
int dedup_seen(struct dedup *d, const uint8_t *key, int64_t now);
/* Adds key (or moves its expiry); -1 on ENOMEM. */
int dedup_add(struct dedup *d, const uint8_t *key, int64_t expiry_ms);
void dedup_del(struct dedup *d, const uint8_t *key);
/* Removes up to max keys expired by now, oldest first, into keys. */
size_t dedup_expire(struct dedup *d, int64_t now,
		    uint8_t (*keys)[DEDUP_KEY_LEN], size_t max);
void dedup_free(struct dedup *d);

/* Persistent per-queue totals, in store order (see keys.c). */
enum { CNT_PUSHED, CNT_ACKED, CNT_EXPIRED, CNT_DEAD, CNT_DEDUPED, CNT_DELETED,
       CNT_N };

struct spool_queue {
	spool_db *db;
	uint32_t qid;
	char name[SPOOL_NAME_MAX + 1];
	atomic_int refs;        /* the table holds one while the queue lives */
	_Atomic(void *) udata;

	pthread_mutex_t lock;
	bool alive;                     /* protected by lock */
	struct spool_queue_attr attr;   /* protected by lock */
	struct spool_settings set;      /* protected by lock */
	struct tree ready, delayed, leased, corrupt; /* protected by lock */
	struct heap timers;             /* protected by lock */
	/* by id: open addressing, linear probing, node numbers (0: empty) */
	uint32_t *htab;                 /* protected by lock */
	size_t hsize, hcount;           /* protected by lock */
	struct queue_load *load;        /* only while spool_open() runs */
	uint64_t pending;       /* pushes/moves in flight; protected by lock */
	uint64_t bytes;                 /* protected by lock */
	/* messages per state, busy ones included (in the state they are
	 * leaving), indexed by state_index(); protected by lock */
	uint64_t nstate[4];
	uint64_t cnt[CNT_N];            /* protected by lock */
	struct dedup dedup;             /* protected by lock */
};

struct spool_db {
	struct store *st;
	struct spool_options opt;
	struct arena arena;     /* every queue's messages */

	pthread_rwlock_t qlock;
	spool_queue **queues;   /* sorted by name; protected by qlock */
	size_t nqueues, capqueues;
	uint32_t next_qid;      /* protected by qlock */
	pthread_mutex_t cfglock; /* serialises settings and queue changes */

	pthread_mutex_t idlock;
	uint64_t last_id;       /* protected by idlock */
	uint64_t reserved_id;   /* ids below this may have been handed out */

	pthread_mutex_t tlock;  /* timer thread */
	pthread_cond_t tcond;
	pthread_t timer;
	bool timer_running, timer_stop, timer_kicked;
	int64_t timer_next;     /* protected by tlock */
};

/* id.c */
/* Hands out n consecutive ids; adds the reservation record to b if needed. */
uint64_t id_alloc(spool_db *db, size_t n, struct store_batch *b);
/* Call when a batch from id_alloc() failed to write. */
void id_write_failed(spool_db *db);

/* keys.c: the on-disk layout. */
struct idx_rec {
	uint32_t qid;
	uint8_t state;
	int32_t priority;
	uint32_t receives;
	uint64_t size;
	int64_t sent_ms, due_ms, first_recv_ms;
};
#define IDX_REC_LEN 45
#define ID_KEY_LEN 8
#define QKEY_LEN 5
void key_id(uint64_t id, char out[ID_KEY_LEN]);
uint64_t key_id_decode(const char *k);
void key_queue(char tag, uint32_t qid, char out[QKEY_LEN]);
void idx_encode(const struct idx_rec *r, char out[IDX_REC_LEN]);
int idx_decode(const char *v, size_t len, struct idx_rec *r);
void idx_from_msg(const struct msg *m, uint32_t qid, struct idx_rec *r);
/* Body record: encode into a malloc'd buffer; decode verifies the checksum. */
char *body_encode(const struct spool_push *p, size_t *len);
struct body_view {
	const char *name;
	size_t name_len;
	const char *attrs;      /* packed: u16 nlen, name, u32 vlen, value */
	size_t attrs_len;
	const char *body;
	size_t body_len;
};
int body_decode(const char *v, size_t len, struct body_view *out);
/* The record of bv with its name replaced by name, sealed; malloc'd. */
char *body_renamed(const struct body_view *bv, const char *name, size_t *len);
/* Gives rec (len bytes) a body record's magic and the checksum of what
 * follows the header's first 9 bytes, whatever the rest holds; a record
 * shorter than that is left alone. For test seams and fuzzing. */
void body_seal(char *rec, size_t len);
/* The dedup key of a push: XXH3-128 of its name (mode 1) or body (2). */
void dedup_key(int mode, const struct spool_push *p,
	       uint8_t out[DEDUP_KEY_LEN]);
#define DKEY_LEN (QKEY_LEN + DEDUP_KEY_LEN)
void key_dedup(uint32_t qid, const uint8_t *key, char out[DKEY_LEN]);
void counters_encode(const uint64_t c[CNT_N], char out[CNT_N * 8]);
void counters_decode(const char *v, size_t len, uint64_t c[CNT_N]);

/* settings.c */
void settings_default(struct spool_settings *s);
/* Applies lines onto s; -EINVAL on any bad line (s then undefined). */
int settings_parse(struct spool_settings *s, const char *text, size_t len);
int settings_format(const struct spool_settings *s, const char *qname,
		    char *buf, size_t len);

/* queue.c */
void db_log(spool_db *db, enum spool_log_level lv, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
spool_queue *queue_find_locked(spool_db *db, const char *name);
void queue_hash_insert(spool_queue *q, struct node *m);
void queue_hash_remove(spool_queue *q, struct node *m);
struct node *queue_hash_find(spool_queue *q, uint64_t id);
/* 0..3 for SPOOL_VISIBLE, DELAYED, LEASED, CORRUPT. */
static inline int state_index(int state)
{
	return state == SPOOL_VISIBLE ? 0 : state == SPOOL_DELAYED ? 1 :
	       state == SPOOL_LEASED ? 2 : 3;
}
/* Gives m a new state, keeping q->nstate right; q->lock held. */
void queue_set_state(spool_queue *q, struct node *m, int state);
/* Puts m into the tree (and heap) of its state / takes it out. */
void queue_place(spool_queue *q, struct node *m);
void queue_unplace(spool_queue *q, struct node *m);
void queue_free_msgs(spool_queue *q);
int queue_write_record(spool_queue *q, const struct spool_queue_attr *a,
		       const struct spool_settings *s);

/* push.c */
/* Drops expired dedup keys of q, from memory and (through b) the store;
 * q->lock held. */
void dedup_sweep(spool_queue *q, struct store_batch *b, int64_t now);

/* msg.c */
/* Adds n to counter c of q, in batch b (memory is the caller's). */
void msg_count(struct store_batch *b, spool_queue *q, int c, uint64_t n);
/* Adds m's index record, as a message of queue qid, to b. */
void msg_put_idx(struct store_batch *b, const struct msg *m, uint32_t qid);
/* Number of messages counted against max_depth. */
uint64_t queue_depth(const spool_queue *q);
void queue_counters_merge(struct store_batch *b, uint32_t qid,
			  const uint64_t delta[CNT_N]);
int msg_set_corrupt(spool_queue *q, uint64_t id);
/* Moves busy messages v[0..n) of q to its dead-letter queue (created on
 * demand), counting dead_total. On error they stay busy and out of place:
 * the caller puts them back. */
int msg_dead_letter(spool_queue *q, struct node **v, size_t n);
/* The message with the oldest sent time (any state but corrupt), or NULL;
 * q->lock held. */
struct node *queue_oldest(spool_queue *q);
/* Deletes busy messages v[0..n) in one batch, counting c; frees them, or
 * puts them back if the write fails. */
int remove_msgs(spool_queue *q, struct node **v, size_t n, int c,
		int durable);
/* Is m out of receives (max_receives)? q->lock held. */
int msg_exhausted(const spool_queue *q, const struct node *m);

/* timer.c */
int timer_start(spool_db *db);
void timer_stop(spool_db *db);
/* Tells the timer thread a timer is now due at due_ms. */
void timer_kick(spool_db *db, int64_t due_ms);
/* Runs q's due timers; returns its next due time (INT64_MAX if none). */
int64_t queue_run_timers(spool_queue *q, int64_t now);
void queue_wake(spool_queue *q);

/* salvage.c: after store_open() salvaged a damaged store, logs at error
 * level what the loaded queues lack. Reads only. */
void salvage_report(spool_db *db);

#endif /* ENGINE_I_H */
