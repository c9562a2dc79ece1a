/*
 * core.h - what a queue means, whatever store holds it: the handles every
 * store's handles begin with, message fields, the id rule, the body record,
 * settings, push checks and defaults, state transitions, the expiry,
 * dead-letter and retention rules, fan-out lists, the stats text and
 * logging. Nothing here takes a lock, starts a thread or touches a store;
 * the stores (engine/rocks/, ...) call it, and engine/api.c calls it
 * before and after a store's operation (engine/store.h).
 */
#ifndef CORE_H
#define CORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "spool.h"

struct store_ops;

/* Wake subscribers and per-queue user pointers a handle can carry: one
 * each per front end in the process (the filesystem, the SQS endpoint). */
#define CORE_WAKE_MAX 4
#define CORE_UDATA_MAX 4

/*
 * The part of a store handle every store has, and its first member: a
 * store's own handle is struct { struct spool_db pub; ... }. api.c reads
 * ops and opt; stores read opt (the clock, the log).
 */
struct spool_db {
	const struct store_ops *ops;
	struct spool_options opt;       /* clock and log always set */
	struct {
		_Atomic(spool_wake_fn) fn;     /* NULL until arg is set */
		void *arg;
	} wake[CORE_WAKE_MAX];
	atomic_int nwake;               /* entries of wake[] in use */
	_Atomic(spool_change_fn) change; /* NULL until change_arg is set */
	void *change_arg;
	int shared;                     /* other hosts change it (spool_shared) */
	atomic_int nudata;              /* udata slots handed out */
};

/* The part of a queue handle every store has, and its first member. */
struct spool_queue {
	spool_db *db;
	char name[SPOOL_NAME_MAX + 1];
	_Atomic(void *) udata[CORE_UDATA_MAX];
};

/* Fills the common part of a new queue handle. */
void core_queue_init(spool_queue *q, spool_db *db, const char *name);
/* A queue's attributes as stored: in's owner, its mode bits only, ctime
 * now. -EINVAL if name (unless NULL) is not a valid queue name. */
int core_queue_attr(spool_db *db, const char *name,
		    const struct spool_queue_attr *in,
		    struct spool_queue_attr *out);
/* Tells every wake subscriber of q's store (spool_options.wake, then
 * spool_wake_subscribe's) that q gained a visible message. No engine lock
 * may be held. */
void core_wake(spool_queue *q);
/* Tells the change subscriber, if any, that messages of q (NULL: of any
 * queue) may have changed (spool_change_fn). No engine lock may be held. */
static inline void core_changed(spool_db *db, spool_queue *q)
{
	spool_change_fn fn = atomic_load_explicit(&db->change,
						  memory_order_acquire);

	if (fn)
		fn(db->change_arg, q);
}

/* ------------------------------------------------------------ logging */

void core_log(spool_db *db, enum spool_log_level lv, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Fills the options a store keeps: o's values with the defaults of
 * spool_options_init() and the real clock and stderr log where unset. */
void core_options(struct spool_options *out, const struct spool_options *o);
/* Is o's clock the real one core_options() put in (not the caller's)? */
int core_clock_is_real(const struct spool_options *o);
/* Logs that message id of q failed its checksum and was set aside. */
void core_log_corrupt(spool_queue *q, uint64_t id);

/* -------------------------------------------------------- a message */

/*
 * A message's fields at full width: the value that changes are computed on
 * (a copy, "next", applied once its write succeeded), that a push builds
 * and that a store encodes.
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

void msg_info(const struct msg *m, struct spool_msg_info *info);

/* ---------------------------------------------------------------- ids */

/* The first of n new ids after last at time now: max(last + 1, now << 21),
 * so ids increase in push order even when the clock stalls or steps back. */
uint64_t id_next(uint64_t last, int64_t now);

/* ------------------------------------------------------- the push */

/* -EFBIG (a body over max_size) or -EINVAL (a bad name, delay or
 * attribute) for the first of p[0..n) that is refused, else 0. */
int push_check(const struct spool_push *p, size_t n, uint64_t max_size);
/* A pushed message with the queue's defaults where p gives none: VISIBLE
 * now, or DELAYED until now + delay. */
void push_msg_init(struct msg *m, uint64_t id, const struct spool_push *p,
		   const struct spool_settings *s, int64_t now);

/* ------------------------------------------------- state transitions */

/* Leased until now + vt, one receive more. */
void state_lease(struct msg *m, int64_t now, int64_t vt);
/* Visible now (a release, or a move in place); with uncount its receive
 * count goes back down. */
void state_release(struct msg *m, int64_t now, int uncount);
/* A lease set to expire at expiry (< 0: now + vt); at or before now it is
 * visible at once. */
void state_extend(struct msg *m, int64_t expiry, int64_t now, int64_t vt);
/* A due timer: a delay ends or a lease runs out; visible since its due
 * time (due_ms stays). */
void state_expire(struct msg *m);

/* --------------------------------------------------------- policies */

/* Is a message leased receives times out of receives (max_receives)? */
int policy_exhausted(const struct spool_settings *s, uint32_t receives);
/* The dead-letter queue of queue qname, into out[SPOOL_NAME_MAX + 8]. */
void policy_dead_letter(const char *qname, const struct spool_settings *s,
			char *out, size_t len);
/* When a message sent at sent_ms reaches the retention age (INT64_MAX:
 * never). */
int64_t policy_retention_due(const struct spool_settings *s, int64_t sent_ms);
/* Number of queues in a fanout list (0 for ""). */
size_t fanout_count(const char *list);
/* The next name of fanout list *cur into name (advancing *cur); 0 at the
 * end. */
int fanout_next(const char **cur, char name[SPOOL_NAME_MAX + 1]);
/* The settings of queue name of db: 0, or -ENOENT if there is none. */
typedef int (*core_settings_of_fn)(spool_db *db, const char *name,
				   struct spool_settings *out);
/* Checks the settings of queue q that name other queues (dead_letter,
 * fanout: they must exist and fan-out must not lead back to q), asking the
 * store through settings_of. -EINVAL if not. The caller keeps queues from
 * being created or deleted meanwhile. */
int settings_check_refs(spool_queue *q, const struct spool_settings *s,
			core_settings_of_fn settings_of);

/* ---------------------------------------------------------- settings */

void settings_default(struct spool_settings *s);
/* Applies lines onto s; -EINVAL on any bad line (s then undefined). */
int settings_parse(struct spool_settings *s, const char *text, size_t len);
int settings_format(const struct spool_settings *s, const char *qname,
		    char *buf, size_t len);

/* ------------------------------------------------ the body record */

/*
 * A message's body record, the same bytes in every store: u8 magic(0xB1),
 * u64 XXH3-64 of everything after it, u16 name_len, u32 attrs_len, name,
 * attrs, body; attrs are packed as u16 name_len, name, u32 value_len,
 * value. Integers little-endian.
 */
char *body_encode(const struct spool_push *p, size_t *len);
struct body_view {
	const char *name;
	size_t name_len;
	const char *attrs;      /* packed: u16 nlen, name, u32 vlen, value */
	size_t attrs_len;
	const char *body;
	size_t body_len;
};
/* Verifies the checksum and the lengths: -EIO if either fails. */
int body_decode(const char *v, size_t len, struct body_view *out);
/* The record of bv with its name replaced by name, sealed; malloc'd. */
char *body_renamed(const struct body_view *bv, const char *name, size_t *len);
/* Gives rec (len bytes) a body record's magic and the checksum of what
 * follows the header's first 9 bytes, whatever the rest holds; a record
 * shorter than that is left alone. For test seams and fuzzing. */
void body_seal(char *rec, size_t len);
/* Attribute name's value into buf (len 0: its size only); returns the
 * size, -ENODATA, -ERANGE, or -EIO for a broken packing. */
ssize_t body_getattr(const struct body_view *bv, const char *name, void *buf,
		     size_t len);
/* The attribute names, NUL-terminated, into buf (len 0: the size only);
 * returns the size, -ERANGE, or -EIO. */
ssize_t body_listattr(const struct body_view *bv, char *buf, size_t len);

/* The dedup key of a push: XXH3-128 of its name (mode 1) or body (2). */
#define DEDUP_KEY_LEN 16
void dedup_key(int mode, const struct spool_push *p,
	       uint8_t out[DEDUP_KEY_LEN]);

/* Little-endian integers of n bytes, as records store them. */
static inline char *core_put_le(char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (char)(v >> (8 * i));
	return p + n;
}

static inline uint64_t core_get_le(const char **pp, int n)
{
	const unsigned char *p = (const unsigned char *)*pp;
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	*pp += n;
	return v;
}

/* Big-endian (byte order sorts numerically: keys, the dedup key). */
static inline void core_put_be64(char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (char)(v >> (56 - 8 * i));
}

static inline uint64_t core_get_be64(const char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | (unsigned char)p[i];
	return v;
}

/* -------------------------------------------------------------- text */

int stats_format(const struct spool_stats *s, char *buf, size_t len);

#endif /* CORE_H */
