/*
 * store.h - the private interface between the engine's entry points
 * (api.c) and a store: a table of operations. spool_open() picks the store
 * from the --data value (store_for); every other spool_* function checks
 * what it can without a store (core/), then calls the store's operation
 * through its handle's ops.
 *
 * A store's handles begin with the common parts of core.h: its database
 * handle is struct { struct spool_db pub; ... } and its queue handle
 * struct { struct spool_queue pub; ... }, and it converts the pointers it
 * is given back with container_of-style casts.
 *
 * Each operation has the contract of the spool_* function of the same name
 * in spool.h, with what api.c already did taken off (noted per operation).
 * A store named p declares its functions with STORE_OPS(STORE_OP_PROTO, p)
 * and fills its table with STORE_OPS(STORE_OP_ENTRY, p). A store:
 *   - makes every state change one atomic write, applies the core's rules
 *     (core.h: push_check, push_msg_init, state_*, policy_*, fanout_*,
 *     settings_*), and stores the body record of core.h byte for byte;
 *   - calls core_wake() after a queue gained a visible message;
 *   - runs due timers itself (a thread, a server's own timers) unless
 *     opt.manual_timers, and in tick() when asked.
 */
#ifndef STORE_H
#define STORE_H

#include "core.h"

/*
 * The operations, as X(ret, name, (params), p): the members of struct
 * store_ops, and for a store with prefix p its functions p_name
 * (STORE_OP_PROTO) and its table's entries (STORE_OP_ENTRY).
 */
#define STORE_OPS(X, p)                                                      \
	/* Is data (the --data value) this store's? */                       \
	X(int, claims, (const char *data), p)                                \
	/* opt is complete (core_options). Sets (*out)->ops to its table     \
	 * before it runs due timers once (wake-ups may call back). */       \
	X(int, open, (const char *data, const struct spool_options *opt,     \
		      spool_db **out), p)                                    \
	X(void, close, (spool_db *db), p)                                    \
	X(int64_t, tick, (spool_db *db), p)                                  \
	/* name is valid, attr->mode masked, attr->ctime_ms set. */          \
	X(int, queue_create, (spool_db *db, const char *name,                \
			      const struct spool_queue_attr *attr), p)       \
	/* all: also every message in it, in the same write (-ENOTEMPTY     \
	 * only while one of them is busy or a push is in flight). */        \
	X(int, queue_delete, (spool_db *db, const char *name, int all), p)   \
	X(int, queue_open, (spool_db *db, const char *name,                  \
			    spool_queue **out), p)                           \
	/* q is not NULL. */                                                 \
	X(void, queue_close, (spool_queue *q), p)                            \
	X(int, queue_alive, (spool_queue *q), p)                             \
	X(int, queue_next, (spool_db *db, const char *after,                 \
			    char name[SPOOL_NAME_MAX + 1]), p)               \
	X(ssize_t, queue_count, (spool_db *db), p)                           \
	X(int, queue_getattr, (spool_queue *q,                               \
			       struct spool_queue_attr *out), p)             \
	/* attr->mode masked, attr->ctime_ms set. */                         \
	X(int, queue_setattr, (spool_queue *q,                               \
			       const struct spool_queue_attr *attr), p)      \
	/* key checked. *val is malloc'd (not NUL-terminated); -ENODATA none. */ \
	X(int, queue_meta_get, (spool_queue *q, const char *key, char **val, \
				size_t *len), p)                             \
	/* key and value checked; val NULL removes it. */                    \
	X(int, queue_meta_set, (spool_queue *q, const char *key,             \
				const char *val, size_t len), p)             \
	X(int, settings_get, (spool_queue *q, struct spool_settings *out), p) \
	/* Parses with settings_parse, checks with settings_check_refs, all  \
	 * under the store's own serialisation of settings changes. The value \
	 * mkey (checked, or NULL: none) is set to mval (mlen bytes; NULL   \
	 * removes it) in the same write. */                                 \
	X(int, config_apply, (spool_queue *q, const char *text, size_t len,  \
			      const char *mkey, const char *mval,            \
			      size_t mlen), p)                               \
	X(int, push_room, (spool_queue *q, size_t n), p)                     \
	/* n > 0; *first_id is set to 0 before. ids, if not NULL, has n      \
	 * slots (0 before): each push's id, for a dropped duplicate the     \
	 * kept message's (spool_push_batch_ids). */                         \
	X(int, push_batch, (spool_queue *q, const struct spool_push *p,      \
			    size_t n, uint64_t *first_id, uint64_t *ids), p) \
	X(int, msg_stat, (spool_queue *q, uint64_t id,                       \
			  struct spool_msg_info *out), p)                    \
	/* The stored body record of message id, unchecked, into a malloc'd  \
	 * *rec: -ENOENT none; -EIO the message is CORRUPT already. */       \
	X(int, msg_record, (spool_queue *q, uint64_t id, char **rec,         \
			    size_t *len), p)                                 \
	/* name is at most SPOOL_MSG_NAME_MAX bytes. */                      \
	X(int, msg_rename, (spool_queue *q, uint64_t id, const char *name),  \
	  p)                                                                 \
	/* Sets message id aside as CORRUPT (its record failed body_decode)  \
	 * and logs it (core_log_corrupt). */                                \
	X(int, msg_set_corrupt, (spool_queue *q, uint64_t id), p)            \
	/* vt_ms: the lease's length; < 0 the queue's visibility_timeout. */ \
	X(int, lease_next, (spool_queue *q, int64_t vt_ms, void *buf,        \
			    size_t len, size_t *n,                           \
			    struct spool_msg_info *info), p)                 \
	X(int, lease_id, (spool_queue *q, uint64_t id,                       \
			  struct spool_msg_info *info), p)                   \
	X(int, pop, (spool_queue *q, void **body,                            \
		     struct spool_msg_info *info), p)                        \
	/* receives: 0 any; else only if the message's receive count is it. */ \
	X(int, ack, (spool_queue *q, uint64_t id, uint32_t receives), p)     \
	/* 0 < n <= SPOOL_ACK_BATCH_MAX; receives[i] as for ack; results as  \
	 * spool_ack_batch() (set by the store in every case). */            \
	X(int, ack_batch, (spool_queue *q, const uint64_t *ids,              \
			   const uint32_t *receives, size_t n,               \
			   int *results), p)                                 \
	X(int, release, (spool_queue *q, uint64_t id, int uncount), p)       \
	/* receives as for ack. */                                           \
	X(int, lease_extend, (spool_queue *q, uint64_t id,                   \
			      uint32_t receives, int64_t expiry_ms), p)      \
	X(int, delete, (spool_queue *q, uint64_t id, unsigned states), p)    \
	/* dst belongs to the same store. */                                 \
	X(int, move, (spool_queue *q, uint64_t id, unsigned states,          \
		      spool_queue *dst), p)                                  \
	/* q != dst. */                                                      \
	X(int, move_all, (spool_queue *q, spool_queue *dst, uint64_t max,    \
			  uint64_t *moved), p)                               \
	/* states: a non-empty subset of the four state bits. */             \
	X(int, purge, (spool_queue *q, unsigned states, uint64_t *count), p) \
	/* state is exactly one state bit. */                                \
	X(ssize_t, list, (spool_queue *q, enum spool_state state,            \
			  struct spool_cursor *cur, uint64_t *ids,           \
			  size_t max), p)                                    \
	X(int, stats_get, (spool_queue *q, struct spool_stats *out), p)      \
	/* The store's room in bytes, for statfs (spool_space). */           \
	X(int, space, (spool_db *db, uint64_t *total, uint64_t *used), p)    \
	/* Test seams (spool_test.h): fail every write with err; read and    \
	 * write a body record behind the engine's back. */                  \
	X(void, test_fail_writes, (spool_db *db, int err), p)                \
	X(int, test_body_get, (spool_db *db, uint64_t id, char **rec,        \
			       size_t *len), p)                              \
	X(int, test_body_put, (spool_db *db, uint64_t id, const char *rec,   \
			       size_t len), p)

#define STORE_OP_MEMBER(ret, name, params, p) ret (*name) params;
#define STORE_OP_PROTO(ret, name, params, p) ret p##_##name params;
#define STORE_OP_ENTRY(ret, name, params, p) .name = p##_##name,

struct store_ops {
	const char *kind;       /* its name, for logs and docs */
	STORE_OPS(STORE_OP_MEMBER, )
};


/* stores.c: the stores, in the order spool_open() asks them; NULL ends
 * the list. */
extern const struct store_ops *const store_kinds[];

#endif /* STORE_H */
