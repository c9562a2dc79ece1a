/*
 * rocks.h - the RocksDB store's private structures, shared by the files of
 * engine/rocks/ only. Its table of operations (store.h) is rocks_store,
 * in db.c.
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
#ifndef ROCKS_H
#define ROCKS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "store.h"
#include "timer_thread.h"

struct store;
struct store_batch;

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

/* dedup.c: recently pushed names or bodies (dedup=name|content); keys are
 * the core's dedup_key(). */
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

struct rocks_queue {
	struct spool_queue pub; /* first: name, udata (core.h) */
	struct rocks_db *db;
	uint32_t qid;
	atomic_int refs;        /* the table holds one while the queue lives */

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

struct rocks_db {
	struct spool_db pub;    /* first: ops, options, wake subscribers */
	struct store *st;
	struct arena arena;     /* every queue's messages */

	pthread_rwlock_t qlock;
	struct rocks_queue **queues;   /* sorted by name; protected by qlock */
	size_t nqueues, capqueues;
	uint32_t next_qid;      /* protected by qlock */
	pthread_mutex_t cfglock; /* serialises settings and queue changes */

	pthread_mutex_t idlock;
	uint64_t last_id;       /* protected by idlock */
	uint64_t reserved_id;   /* ids below this may have been handed out */

	struct timer_thread timer; /* runs rocks_tick; not started with
				    * manual_timers */
};

/* From the common handles to the store's own (their first members). */
static inline struct rocks_db *RDB(spool_db *db)
{
	return (struct rocks_db *)db;
}

static inline struct rocks_queue *RQ(spool_queue *q)
{
	return (struct rocks_queue *)q;
}

static inline int64_t db_now(struct rocks_db *db)
{
	return db->pub.opt.clock(db->pub.opt.clock_arg);
}

/* ids.c */
/* Hands out n consecutive ids; adds the reservation record to b if needed. */
uint64_t id_alloc(struct rocks_db *db, size_t n, struct store_batch *b);
/* Call when a batch from id_alloc() failed to write. */
void id_write_failed(struct rocks_db *db);

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
/* Meta keys (CF_META) and the tags of per-queue meta keys. */
#define FORMAT_VERSION "1"
#define KEY_VERSION "V"
#define KEY_RESERVATION "I"
#define KEY_QUEUES "Q"          /* prefix of every queue record */
#define KEY_DEDUPS "D"          /* prefix of every dedup key */
#define TAG_QUEUE 'Q'
#define TAG_COUNTERS 'C'
#define TAG_DEDUP 'D'
#define TAG_QMETA 'M'           /* a queue's extra values (queue_meta) */
/* A queue record: owner, mode, ctime, name and settings text. encode
 * gives a malloc'd buffer; decode gives -EIO for a bad record and
 * -EINVAL for settings it cannot parse. */
char *qrec_encode(const char *name, const struct spool_queue_attr *a,
		  const struct spool_settings *s, size_t *len);
int qrec_decode(const char *v, size_t len, char name[SPOOL_NAME_MAX + 1],
		struct spool_queue_attr *a, struct spool_settings *s);
#define ID_KEY_LEN 8
#define QKEY_LEN 5
void key_id(uint64_t id, char out[ID_KEY_LEN]);
uint64_t key_id_decode(const char *k);
void key_queue(char tag, uint32_t qid, char out[QKEY_LEN]);
void idx_encode(const struct idx_rec *r, char out[IDX_REC_LEN]);
int idx_decode(const char *v, size_t len, struct idx_rec *r);
void idx_from_msg(const struct msg *m, uint32_t qid, struct idx_rec *r);
#define DKEY_LEN (QKEY_LEN + DEDUP_KEY_LEN)
void key_dedup(uint32_t qid, const uint8_t *key, char out[DKEY_LEN]);
void counters_encode(const uint64_t c[CNT_N], char out[CNT_N * 8]);
void counters_decode(const char *v, size_t len, uint64_t c[CNT_N]);
/* The qid of a key made by key_queue() (or key_dedup()). */
uint32_t key_qid_decode(const char *k);
/* Records into a batch: a message's index record (as one of queue qid),
 * its body record, the deletion of both; an addition to q's counters; a
 * dedup key with its expiry, or its deletion; the id reservation record
 * (ids below r may be in use). */
void batch_put_idx(struct store_batch *b, const struct msg *m, uint32_t qid);
void batch_put_body(struct store_batch *b, uint64_t id, const char *rec,
		    size_t len);
void batch_del_msg(struct store_batch *b, uint64_t id);
void batch_merge_counters(struct store_batch *b, uint32_t qid,
			  const uint64_t delta[CNT_N]);
void batch_put_dedup(struct store_batch *b, uint32_t qid, const uint8_t *key,
		     int64_t expiry);
void batch_del_dedup(struct store_batch *b, uint32_t qid, const uint8_t *key);
void batch_put_reservation(struct store_batch *b, uint64_t r);
/* Reads message id's body record, unchecked, into a malloc'd *rec. */
int body_load(struct store *st, uint64_t id, char **rec, size_t *len);

/* queue.c */
/* Rebuilds db's queues and messages from its store. On failure, what was
 * loaded is freed with db_free() (db.c). */
int db_load(struct rocks_db *db);
struct rocks_queue *queue_find_locked(struct rocks_db *db, const char *name);
void queue_hash_insert(struct rocks_queue *q, struct node *m);
void queue_hash_remove(struct rocks_queue *q, struct node *m);
struct node *queue_hash_find(struct rocks_queue *q, uint64_t id);
/* 0..3 for SPOOL_VISIBLE, DELAYED, LEASED, CORRUPT. */
static inline int state_index(int state)
{
	return state == SPOOL_VISIBLE ? 0 : state == SPOOL_DELAYED ? 1 :
	       state == SPOOL_LEASED ? 2 : 3;
}
/* Gives m a new state, keeping q->nstate right; q->lock held. */
void queue_set_state(struct rocks_queue *q, struct node *m, int state);
/* Puts m into the tree (and heap) of its state / takes it out. */
void queue_place(struct rocks_queue *q, struct node *m);
void queue_unplace(struct rocks_queue *q, struct node *m);
void queue_free_msgs(struct rocks_queue *q);
/* The tree of messages in state (one state bit). */
struct tree *queue_tree(struct rocks_queue *q, int state);
/* Number of messages counted against max_depth. */
uint64_t queue_depth(const struct rocks_queue *q);
/* Can q take n more messages? 0, -EDQUOT (max_depth), -ENOENT (deleted);
 * q->lock held. */
int queue_room(const struct rocks_queue *q, uint64_t n);
/* The oldest visible message / the message with the oldest sent time (any
 * state but corrupt), or NULL; q->lock held. */
struct node *queue_oldest_visible(struct rocks_queue *q);
struct node *queue_oldest(struct rocks_queue *q);
int queue_write_record(struct rocks_queue *q, const struct spool_queue_attr *a,
		       const struct spool_settings *s);

/* push.c */
/* Drops expired dedup keys of q, from memory and (through b) the store;
 * q->lock held. */
void dedup_sweep(struct rocks_queue *q, struct store_batch *b, int64_t now);

/* msg.c */
int msg_set_corrupt(struct rocks_queue *q, uint64_t id);

/* busy.c */
/* Adds n to counter c of q, in batch b (memory is the caller's). */
void msg_count(struct store_batch *b, struct rocks_queue *q, int c, uint64_t n);
/* Takes message id out of its place if its state is in states; q->lock
 * held. NULL if there is no such message, or it is busy. */
struct node *grab(struct rocks_queue *q, uint64_t id, unsigned states);
/* Takes up to max messages from tree t into v (busy); q->lock held. */
size_t grab_many(struct rocks_queue *q, struct tree *t, struct node **v,
		 size_t max);
/* Ends a busy period: m takes the fields of next (if not NULL) and goes
 * back in the place of its state; q->lock held. */
void settle(struct rocks_queue *q, struct node *m, const struct msg *next);
/* Forgets m for good (deleted, or moved away); q->lock held. */
void drop(struct rocks_queue *q, struct node *m);
struct store_batch *batch(struct rocks_queue *q);
/* Moving busy messages v[0..n) of q to dst: reserve room in dst (*got of
 * want fit), write them as dst's VISIBLE messages (counting c in q if
 * c >= 0), then hand them over, or undo. */
int move_reserve(struct rocks_queue *dst, uint64_t want, uint64_t *got);
int move_write(struct rocks_queue *q, struct rocks_queue *dst, struct node **v,
	       size_t n, int c);
void move_publish(struct rocks_queue *q, struct rocks_queue *dst,
		  struct node **v, size_t n, uint64_t reserved);
void move_undo(struct rocks_queue *q, struct rocks_queue *dst, struct node **v,
	       size_t n, uint64_t reserved);
/* Moves busy messages v[0..n) of q to its dead-letter queue (created on
 * demand), counting dead_total. On error they stay busy and out of place:
 * the caller puts them back. */
int msg_dead_letter(struct rocks_queue *q, struct node **v, size_t n);
/* Deletes busy messages v[0..n) in one batch, counting c; frees them, or
 * puts them back if the write fails. */
int remove_msgs(struct rocks_queue *q, struct node **v, size_t n, int c,
		int durable);
/* Is m out of receives (max_receives)? q->lock held. */
int msg_exhausted(const struct rocks_queue *q, const struct node *m);

/* timer.c */
/* Runs q's due timers; returns its next due time (INT64_MAX if none). */
int64_t queue_run_timers(struct rocks_queue *q, int64_t now);

/* Tells the timer thread a timer is now due at due_ms. */
static inline void timer_kick(struct rocks_db *db, int64_t due_ms)
{
	timer_thread_kick(&db->timer, due_ms);
}

/* The operations of rocks_store (store.h): rocks_claims, rocks_open, ...;
 * each is in the file of its kind (db.c, queue.c, push.c, msg.c, timer.c,
 * seams.c). */
STORE_OPS(STORE_OP_PROTO, rocks)
extern const struct store_ops rocks_store;
/* queue.c: takes a reference on queue name / drops one. */
int queue_get(struct rocks_db *db, const char *name, struct rocks_queue **out);
void queue_unref(struct rocks_queue *q);

/* salvage.c: after store_open() salvaged a damaged store, logs at error
 * level what the loaded queues lack. Reads only. */
void salvage_report(struct rocks_db *db);

#endif /* ROCKS_H */
