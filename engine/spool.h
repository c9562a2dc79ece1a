/*
 * spool.h - the queue engine's public interface: the one door into engine/.
 *
 * A store (spool_db) holds named queues (spool_queue); a queue holds messages.
 * A message is in exactly one state at a time:
 *
 *   VISIBLE  ready to be leased, ordered by priority (higher first), then id
 *   DELAYED  not visible before its due time (a push with a delay)
 *   LEASED   handed out; becomes VISIBLE again at its due time unless acked
 *   CORRUPT  its stored record failed the checksum; set aside, never served
 *
 * The engine knows nothing of FUSE, and nothing here names the store behind
 * it. spool_open() picks the store from its data argument (the daemon's
 * --data value): a directory is a RocksDB store (engine/rocks/); a
 * redis://HOST:PORT[/PREFIX] URL a store over Redis (engine/redis/) that
 * several processes and hosts share. Where
 * stores differ, a function says so ("RocksDB store: ...").
 *
 * Several callers may share one handle in one process (the filesystem and
 * the SQS endpoint): each subscribes to wake-ups (spool_wake_subscribe) and
 * keeps its per-queue pointer in a slot of its own (spool_udata_slot).
 *
 * Conventions:
 * - Functions return 0 (or a count) on success and a negative errno on
 *   failure. Unless a function says otherwise, on failure nothing changed,
 *   in memory or in the store.
 * - Every state change is one atomic write: all of it or none of it.
 * - Times are Unix milliseconds (int64_t) from the store's clock, which the
 *   caller may replace (tests do, so that no test sleeps).
 * - -EIO also means "the store could not be reached" for a store over the
 *   network; any function that returns an errno may return it.
 * - All functions are thread-safe. Callbacks (log, wake) are called with no
 *   engine lock held, so they may call back into the engine.
 * - Anything the engine allocates for a caller is named in the function's
 *   comment together with the function that frees it.
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct spool_db spool_db;
typedef struct spool_queue spool_queue;

/* ---------------------------------------------------------------- ids */

/*
 * A message id is a 64-bit number: the push time in ms (43 bits) and a
 * counter (21 bits). Ids increase in push order and are never reused by a
 * store, also across restarts. Their text form is SPOOL_ID_LEN characters
 * of [0-9A-Za-z] (base 62, zero-padded), so text order is numeric order.
 */
#define SPOOL_ID_LEN 11

/* Writes the text form of id and a NUL into out[SPOOL_ID_LEN + 1]. */
void spool_id_format(uint64_t id, char out[SPOOL_ID_LEN + 1]);

/* Parses exactly len bytes of text form. Returns 0, or -EINVAL if the text
 * is not a well-formed id (wrong length or character, out of range). */
int spool_id_parse(const char *text, size_t len, uint64_t *id);

/* ---------------------------------------------------------- the store */

enum spool_sync {
	SPOOL_SYNC_ALWAYS = 0, /* push, ack, release, move, delete, purge return
	                        * after the write is fsynced (concurrent
	                        * writers share one fsync) */
	SPOOL_SYNC_NONE = 1,   /* written to the log without fsync: survives a
	                        * crash of the process, not of the machine */
};

enum spool_log_level {
	SPOOL_LOG_ERR = 0,  /* a real problem an operator must see */
	SPOOL_LOG_WARN = 1, /* a real problem the engine worked around */
	SPOOL_LOG_INFO = 2,
	SPOOL_LOG_DEBUG = 3,
};

/* Returns the current time, Unix ms. */
typedef int64_t (*spool_clock_fn)(void *arg);
/* Receives one line of log text, without a trailing newline. */
typedef void (*spool_log_fn)(void *arg, enum spool_log_level level,
			     const char *line);
/*
 * Called after queue q gained at least one visible message (a push, a delay
 * or lease that ran out, a release, a message moved in, an unpause). Called
 * with no engine lock held, from whatever thread caused it: possibly the
 * store's timer thread, or (a store several hosts share) the thread that
 * learnt of another host's change. The caller typically tries spool_lease_next() for each of its
 * waiting readers until that returns -EAGAIN. Every subscriber is called
 * (spool_options.wake first, then those of spool_wake_subscribe()).
 */
typedef void (*spool_wake_fn)(void *arg, spool_queue *q);
/*
 * Called after a change that can take messages of queue q out of a
 * listing or change what stat shows of them: a lease, ack, release,
 * delete, move, purge, a lease's new expiry, a change of the queue's owner
 * or mode, its deletion. q is NULL after the timers ran (delays ending,
 * leases running out, retention, dead-lettering: any queue). Called from
 * the thread that made the change, with no engine lock held, before the
 * call that made it returns; also for a call that changed nothing.
 */
typedef void (*spool_change_fn)(void *arg, spool_queue *q);

struct spool_options {
	enum spool_sync sync;    /* default SPOOL_SYNC_ALWAYS */
	spool_clock_fn clock;    /* NULL: the real clock (CLOCK_REALTIME) */
	void *clock_arg;
	spool_log_fn log;        /* NULL: errors and warnings to stderr */
	void *log_arg;
	enum spool_log_level log_level; /* lines above this level are dropped;
	                                 * default SPOOL_LOG_INFO */
	spool_wake_fn wake;      /* NULL: none */
	void *wake_arg;
	int manual_timers;       /* 1: the store runs no timers on its own
	                          * (no timer thread); the caller runs due
	                          * timers with spool_tick() (tests) */
	int salvage;             /* 1: open a damaged store with what can be
	                          * read, logging each loss (DESIGN §8) */
};

/* Fills o with the defaults above. */
void spool_options_init(struct spool_options *o);

/*
 * Opens the store that data names (the daemon's --data value) and returns
 * its handle in *out; free it with spool_close(). Leases whose expiry
 * passed while the store was closed are expired at once.
 * - A directory (anything without "scheme://"): the RocksDB store in it,
 *   created only if the directory is missing or empty (never over
 *   anything else); its in-memory indexes are rebuilt from it. An
 *   existing store is checked first; a damaged one is refused without a
 *   byte changed, unless o->salvage (docs/reliability.md). Errors: -EBUSY
 *   the store is open in another process (its lock is held); -EACCES no
 *   permission; -ENOTDIR data is not a directory; -EIO the store is
 *   damaged or not a spool store.
 * - "redis://HOST:PORT[/PREFIX]": the Redis store (docs/scale-out.md).
 *   Errors: -EINVAL a malformed URL; -EIO the server cannot be reached;
 *   -ENOTSUP the server's settings do not fit (maxmemory-policy must be
 *   noeviction; SPOOL_SYNC_ALWAYS needs appendonly yes and appendfsync
 *   always).
 * - "scheme://..." of no store this build has: -EINVAL.
 * Errors of every store: -ENOMEM. Each failure also logs one line at
 * SPOOL_LOG_ERR saying which.
 */
int spool_open(const char *data, const struct spool_options *o,
	       spool_db **out);

/* Stops the store's timers (the RocksDB store: its timer thread), flushes
 * and closes the store. Every spool_queue handle must have been closed.
 * Accepts NULL. */
void spool_close(spool_db *db);

/* The store's clock, Unix ms. */
int64_t spool_now(spool_db *db);

/*
 * Adds a wake-up subscriber: fn(arg, q) is called as spool_options.wake is
 * (see spool_wake_fn), for the life of the handle. For a second caller in
 * the process (the first may use spool_options.wake). Errors: -ENOSPC
 * already 4 subscribers.
 */
int spool_wake_subscribe(spool_db *db, spool_wake_fn fn, void *arg);

/*
 * Sets the one change subscriber (see spool_change_fn) of the handle, for
 * its life; for a caller that keeps what it listed (the filesystem gives
 * the kernel entries to cache). Errors: -EBUSY one is set already.
 */
int spool_change_subscribe(spool_db *db, spool_change_fn fn, void *arg);

/*
 * 1 when processes on other hosts change this store too (Redis): their
 * changes call no spool_change_fn here, so nothing listed may be kept.
 * 0 when every change goes through this handle (RocksDB).
 */
int spool_shared(spool_db *db);

/*
 * Runs every timer that is due: delays ending, leases running out (a lease
 * that was the message's max_receives-th moves it to the dead-letter queue,
 * created on demand with the queue's owner and mode), messages reaching
 * the retention age (deleted, in any state but corrupt); wakes the queues
 * that gained visible messages, and returns the due time of the earliest
 * timer still pending, or INT64_MAX if none. The store's own timers
 * (the RocksDB store: its timer thread) call this; with manual_timers, the
 * caller does.
 */
int64_t spool_tick(spool_db *db);

/* ----------------------------------------------------------- queues */

/* Longest queue name, bytes. Names are 1..SPOOL_NAME_MAX bytes of
 * [A-Za-z0-9._-], not starting with '.'. */
#define SPOOL_NAME_MAX 200

/* Returns 1 if name (len bytes) is a valid queue name, else 0. */
int spool_name_valid(const char *name, size_t len);

/* Owner and mode of a queue, as a directory has them. */
struct spool_queue_attr {
	uint32_t uid;
	uint32_t gid;
	uint32_t mode;      /* permission bits only (07777) */
	int64_t ctime_ms;   /* creation, or the last attribute change */
};

/*
 * Creates queue name with attr (ctime_ms is set by the engine) and the
 * default settings. Durable before it returns.
 * Errors: -EINVAL bad name; -EEXIST exists; -ENOSPC/-EIO store write failed.
 */
int spool_queue_create(spool_db *db, const char *name,
		       const struct spool_queue_attr *attr);

/*
 * Deletes queue name with its settings and counters. Handles still open on
 * it stay valid but every operation on them then fails with -ENOENT.
 * Errors: -ENOENT no such queue; -ENOTEMPTY it holds a message in any state
 * (visible, delayed, leased; corrupt ones count too); -ENOSPC/-EIO.
 */
int spool_queue_delete(spool_db *db, const char *name);

/*
 * Looks up queue name and returns a counted handle in *out; release it with
 * spool_queue_close(). Handles are cheap; one stays valid after a delete
 * (operations then fail with -ENOENT).
 * Errors: -ENOENT no such queue (or the name is not valid).
 */
int spool_queue_open(spool_db *db, const char *name, spool_queue **out);

/* Releases a handle from spool_queue_open(). Accepts NULL. */
void spool_queue_close(spool_queue *q);

/* The queue's name; valid while the handle is. */
const char *spool_queue_name(const spool_queue *q);

/* 1 while the queue exists, 0 once it was deleted (as this handle knows
 * it: a store over the network learns of a delete by another host at its
 * next operation on the queue). */
int spool_queue_alive(const spool_queue *q);

/*
 * Takes a slot for one caller's per-queue pointer: each caller in the
 * process (the filesystem, the SQS endpoint) takes its own once, after
 * spool_open(), and passes it to the two functions below. Returns the
 * slot (>= 0), or -ENOSPC when 4 are taken.
 */
int spool_udata_slot(spool_db *db);

/*
 * One pointer of the caller's own per slot, kept on the queue for the
 * lifetime of the queue's memory (the filesystem hangs its waiting readers
 * here). The engine never looks at it. Set and get are atomic. Every handle
 * of one queue in one spool_db shares it.
 */
void spool_queue_set_udata(spool_queue *q, int slot, void *p);
void *spool_queue_udata(const spool_queue *q, int slot);

/*
 * Queue names in byte order, for listing: writes the first name greater than
 * after (NULL or "" for the first) into name[SPOOL_NAME_MAX + 1].
 * Returns 0, or -ENOENT when there is none.
 */
int spool_queue_next(spool_db *db, const char *after,
		     char name[SPOOL_NAME_MAX + 1]);

/* Number of queues, or a negative errno (-EIO: a store over the network
 * could not be read). */
ssize_t spool_queue_count(spool_db *db);

/* Reads the queue's owner, mode and ctime. Errors: -ENOENT deleted. */
int spool_queue_getattr(spool_queue *q, struct spool_queue_attr *out);

/* Sets uid, gid and mode (ctime_ms is set to now), durably.
 * Errors: -ENOENT deleted; -ENOSPC/-EIO. */
int spool_queue_setattr(spool_queue *q, const struct spool_queue_attr *attr);

/*
 * A queue's extra values: small named texts a front end keeps with a queue
 * (the SQS endpoint: ReceiveMessageWaitTimeSeconds, CreatedTimestamp). The
 * engine never reads them; they are deleted with the queue. Keys are
 * 1..SPOOL_QMETA_KEY_MAX bytes of [A-Za-z0-9._-]; values at most
 * SPOOL_QMETA_VALUE_MAX bytes, any but NUL.
 */
#define SPOOL_QMETA_KEY_MAX 64
#define SPOOL_QMETA_VALUE_MAX 4096

/* Copies the value of key and a NUL into buf (len bytes); returns its
 * length. Errors: -ENODATA no such key; -ERANGE buf too small; -EINVAL bad
 * key; -ENOENT queue deleted; -EIO. */
ssize_t spool_queue_meta_get(spool_queue *q, const char *key, char *buf,
			     size_t len);

/* Sets key to value (NULL: removes it), durably.
 * Errors: -EINVAL bad key or value; -ENOENT queue deleted; -ENOSPC/-EIO. */
int spool_queue_meta_set(spool_queue *q, const char *key, const char *value);

/* ---------------------------------------------------------- settings */

/* Settings of one queue, in the units the engine uses. */
struct spool_settings {
	int64_t visibility_timeout_ms; /* default 30000 */
	int64_t receive_wait_ms;       /* -1 = inf (default) */
	int64_t delay_ms;              /* default 0 */
	int32_t priority;              /* default 0 */
	uint64_t max_size;             /* bytes, default 1048576 */
	uint64_t max_depth;            /* 0 = no limit */
	uint32_t max_receives;         /* 0 = never dead-letter */
	char dead_letter[SPOOL_NAME_MAX + 1]; /* "" = "<queue>.dead" */
	int64_t retention_ms;          /* 0 = forever */
	int dedup;                     /* 0 off, 1 name, 2 content */
	int64_t dedup_window_ms;       /* default 300000 */
	int paused;                    /* 0 or 1 */
	char fanout[1024];             /* comma-separated queue names, or "" */
};

/* Copies the queue's current settings. Errors: -ENOENT deleted. */
int spool_settings_get(spool_queue *q, struct spool_settings *out);

/*
 * Writes every setting as "key=value\n" lines (DESIGN §6 keys, in table
 * order) into buf. Returns the length of the whole text, which may exceed
 * len (then only len bytes were written, as snprintf does).
 * Errors: -ENOENT deleted.
 */
int spool_config_format(spool_queue *q, char *buf, size_t len);

/*
 * Applies "key=value" lines (newline-separated; blank lines and spaces
 * around key and value ignored) from text[0..len). All or nothing: any
 * unknown key, malformed line or bad value fails with -EINVAL and changes
 * nothing. Durable before it returns. Changes take effect at once (a shorter
 * visibility_timeout does not shorten leases already given).
 * Errors: -EINVAL; -ENOENT deleted; -ENOSPC/-EIO.
 */
int spool_config_apply(spool_queue *q, const char *text, size_t len);

/*
 * As spool_config_apply(), and in the same atomic write sets the queue
 * value key to value (as spool_queue_meta_set(); value NULL removes it).
 * Errors: as both.
 */
int spool_config_apply_meta(spool_queue *q, const char *text, size_t len,
			    const char *key, const char *value);

/* ---------------------------------------------------------- messages */

enum spool_state {
	SPOOL_VISIBLE = 1,
	SPOOL_DELAYED = 2,
	SPOOL_LEASED = 4,
	SPOOL_CORRUPT = 8,
};

/* The largest message name (the file name it was pushed under), bytes. */
#define SPOOL_MSG_NAME_MAX 255

/* One user attribute given at push time: name is the full xattr name,
 * e.g. "user.colour"; value is len bytes, not NUL-terminated. */
struct spool_attr {
	const char *name;
	const void *value;
	size_t len;
};

/* Largest total size of a message's attributes (names + values), bytes. */
#define SPOOL_ATTRS_MAX 65536

/* What to push. Zero-initialise, then set what applies. */
struct spool_push {
	const void *body;
	size_t len;
	const char *name;       /* the name pushed under, or NULL */
	int has_priority;       /* 0: the queue's default priority */
	int32_t priority;
	int has_delay;          /* 0: the queue's default delay */
	int64_t delay_ms;       /* >= 0 */
	const struct spool_attr *attrs;
	size_t nattrs;
	/* Who sent it (SQS's SenderId), or NULL: at most SPOOL_SENDER_MAX
	 * bytes, kept in the body record as the system attribute
	 * SPOOL_ATTR_SENDER, which spool_msg_getattr() reads and
	 * spool_msg_listattr() does not list. */
	const char *sender;
};

#define SPOOL_SENDER_MAX 128
#define SPOOL_ATTR_SENDER "sys.sender"

/*
 * Pushes one message: VISIBLE now, or DELAYED when its delay is > 0.
 * Durable (per the sync mode) before it returns; then readers are woken.
 * If id is not NULL, *id is the new id.
 *
 * The queue's policies apply:
 * - dedup=name|content: a push whose name (pushes without a name have
 *   none) or body was pushed within dedup_window succeeds but adds nothing
 *   (*id is 0) and counts in deduped_total;
 * - fanout=a,b: the message goes to each listed queue instead (with their
 *   own defaults, ids and max_depth), one atomic write for all; if any of
 *   them refuses it (-ENOENT gone, -EDQUOT full, -EFBIG too large for it),
 *   none gets it. *id is the id in the first listed queue. One level only:
 *   a listed queue's own fanout is not followed.
 * Errors: -ENOENT queue deleted; -EFBIG body over max_size; -EINVAL bad
 * attribute (name not "user.*", too large, a sender over
 * SPOOL_SENDER_MAX, or a negative delay); -EDQUOT
 * the queue holds max_depth messages; -ENOSPC store full; -EIO.
 */
int spool_push(spool_queue *q, const struct spool_push *p, uint64_t *id);

/*
 * Pushes n messages in one atomic write: all or none. They get increasing
 * ids; *first_id (if not NULL) is the first (0 if all were duplicates).
 * Errors as for spool_push (-EDQUOT if all n do not fit); n == 0 is a
 * no-op. With dedup, the duplicates among them are dropped and the rest
 * pushed.
 */
int spool_push_batch(spool_queue *q, const struct spool_push *p, size_t n,
		     uint64_t *first_id);

/*
 * As spool_push_batch, but ids[0..n) receives every push's id: the id of
 * p[i] in q (in the first fanout queue with fanout), or where p[i] was
 * dropped as a duplicate, the id of the message kept for its name or body
 * (pushed earlier within dedup_window, or earlier in this batch; as FIFO
 * SQS returns the original MessageId). That id is 0 only while the
 * original push is still being written, or for a key stored before ids
 * were kept. Every slot is 0 on failure.
 */
int spool_push_batch_ids(spool_queue *q, const struct spool_push *p, size_t n,
			 uint64_t *ids);

/*
 * Would q take n more messages now? Checks what a push of n messages would
 * meet first: q deleted, or max_depth (of q, or of each queue of its
 * fanout list). Only a forecast: other pushes may fill a queue before the
 * caller's own. For a caller that must refuse early what it pushes later
 * (the filesystem's empty files, pushed at release). Returns 0.
 * Errors: -ENOENT q (or a fanout queue) deleted; -EDQUOT.
 */
int spool_push_room(spool_queue *q, size_t n);

/* What the engine knows of a message without reading its body. */
struct spool_msg_info {
	uint64_t id;
	enum spool_state state;
	int32_t priority;
	uint32_t receives;        /* leases so far */
	uint64_t size;            /* body bytes */
	int64_t sent_ms;          /* pushed at */
	int64_t due_ms;           /* VISIBLE: when it became visible;
	                           * DELAYED: end of delay;
	                           * LEASED: lease expiry */
	int64_t first_received_ms; /* 0 if never leased */
};

/* Looks up message id in q without reading its body (the RocksDB store:
 * in memory, no store read).
 * Errors: -ENOENT not in this queue (or queue deleted); -EIO. */
int spool_msg_stat(spool_queue *q, uint64_t id, struct spool_msg_info *out);

/*
 * Reads up to len bytes of the body of message id from offset off into buf
 * (any state but CORRUPT; no lease, no receive count change). Returns the
 * number of bytes read (0 at or past the end).
 * Errors: -ENOENT no such message; -EIO its record failed the checksum (it
 * is then logged once and set aside as CORRUPT).
 */
ssize_t spool_msg_read(spool_queue *q, uint64_t id, uint64_t off, void *buf,
		       size_t len);

/*
 * Copies the name message id was pushed under (NUL-terminated) into
 * buf[SPOOL_MSG_NAME_MAX + 1]; "" if it had none.
 * Errors: -ENOENT; -EIO as spool_msg_read.
 */
int spool_msg_name(spool_queue *q, uint64_t id,
		   char buf[SPOOL_MSG_NAME_MAX + 1]);

/*
 * Sets the name message id was pushed under (user.spool.name) to name, in
 * any state but CORRUPT; body, attributes, id and place are kept. Durable.
 * Errors: -ENOENT no such message (or busy with another change);
 * -ENAMETOOLONG name over SPOOL_MSG_NAME_MAX; -EIO; -ENOSPC.
 * On error nothing is written.
 */
int spool_msg_rename(spool_queue *q, uint64_t id, const char *name);

/*
 * Reads user attribute name of message id into buf (len bytes). With len 0
 * returns the value's size only. Returns the value's size.
 * Errors: -ENODATA no such attribute; -ERANGE buf too small; -ENOENT; -EIO.
 */
ssize_t spool_msg_getattr(spool_queue *q, uint64_t id, const char *name,
			  void *buf, size_t len);

/*
 * Lists the user attribute names of message id, each NUL-terminated, into
 * buf (len bytes). With len 0 returns the size needed only. Returns the size.
 * Errors: -ERANGE buf too small; -ENOENT; -EIO.
 */
ssize_t spool_msg_listattr(spool_queue *q, uint64_t id, char *buf,
			   size_t len);

/* ----------------------------------------------------------- leasing */

/*
 * Leases the next visible message (highest priority, then lowest id): it
 * becomes LEASED until now + visibility_timeout, and its receive count goes
 * up. Copies up to len bytes of its body into buf and sets *n to that count
 * (buf may be NULL when len is 0); *info describes the message (info->size
 * is the whole body's length). A message that fails its checksum is set
 * aside and the next one is taken; one already leased max_receives times
 * (after max_receives was lowered) goes to the dead-letter queue instead.
 * The lease write is not fsynced.
 * Errors: -EAGAIN nothing visible (or the queue is paused); -ENOENT queue
 * deleted; -ENOSPC/-EIO store write failed (nothing leased).
 */
int spool_lease_next(spool_queue *q, void *buf, size_t len, size_t *n,
		     struct spool_msg_info *info);

/*
 * As spool_lease_next(), but the lease runs until now + vt_ms (>= 0; 0
 * makes it visible again at once, as SQS's VisibilityTimeout=0 does) instead
 * of the queue's visibility_timeout: still one write.
 * Errors: as spool_lease_next(); -EINVAL vt_ms < 0.
 */
int spool_lease_next_vt(spool_queue *q, int64_t vt_ms, void *buf, size_t len,
			size_t *n, struct spool_msg_info *info);

/*
 * Leases the given visible message, as spool_lease_next() does.
 * Errors: -ENOENT it is not VISIBLE in q (another consumer won); -EIO.
 */
int spool_lease_id(spool_queue *q, uint64_t id, struct spool_msg_info *info);

/*
 * Takes the next visible message and deletes it (at most once delivery).
 * On success *body is the whole body, allocated with malloc() (free() it;
 * NULL when the body is empty) and *info describes it. The delete is
 * durable (per the sync mode) before this returns.
 * Errors: -EAGAIN nothing visible (or paused); -ENOENT queue deleted;
 * -ENOSPC/-EIO; -ENOMEM.
 */
int spool_pop(spool_queue *q, void **body, struct spool_msg_info *info);

/*
 * Acknowledges message id: deletes it. Allowed while it is LEASED, and while
 * it is VISIBLE after a lease ran out (receives > 0); a message never leased
 * cannot be acked. Durable before it returns.
 * Errors: -ENOENT no such message, or not in an ackable state; -ENOSPC/-EIO.
 */
int spool_ack(spool_queue *q, uint64_t id);

/*
 * As spool_ack(), but only for the receive that made the message's receive
 * count receives (what a receipt handle names): once the message was leased
 * again, an older receive's ack does nothing.
 * Errors: -ENOENT no such message, not ackable, or its receive count is not
 * receives (receives 0 always); -ENOSPC/-EIO.
 */
int spool_ack_receive(spool_queue *q, uint64_t id, uint32_t receives);

/*
 * Acknowledges n messages in one atomic write: ids[i] as
 * spool_ack_receive(q, ids[i], receives[i]) would (receives NULL, or a 0
 * in it: as spool_ack()). results[i] is 0 for each message deleted, or
 * -ENOENT for one that was not (no such message, not ackable, a stale
 * receive, or an id already acked earlier in the batch). Returns 0 when
 * the write succeeded (even if every entry was -ENOENT); on an error no
 * message is deleted and every results[i] is that error.
 * Errors: -ENOENT queue deleted; -ENOSPC/-EIO; -ENOMEM; -EINVAL n >
 * SPOOL_ACK_BATCH_MAX.
 */
#define SPOOL_ACK_BATCH_MAX 1000
int spool_ack_batch(spool_queue *q, const uint64_t *ids,
		    const uint32_t *receives, size_t n, int *results);

/*
 * Releases leased message id: VISIBLE now (a nack). With uncount, its receive
 * count goes back down too (the lease was never seen by anyone, e.g. the
 * reader was interrupted before the body reached it). Durable.
 * Errors: -ENOENT not LEASED in q; -ENOSPC/-EIO.
 */
int spool_release(spool_queue *q, uint64_t id, int uncount);

/*
 * Sets the lease expiry of leased message id to expiry_ms, or to now +
 * visibility_timeout when expiry_ms < 0 (a heartbeat). An expiry at or
 * before now makes it VISIBLE at once, as a release does (it does not count
 * in expired_total: the holder gave it back).
 * Errors: -ENOENT not LEASED in q; -ENOSPC/-EIO.
 */
int spool_lease_extend(spool_queue *q, uint64_t id, int64_t expiry_ms);

/* As spool_lease_extend(), but only while the message's receive count is
 * receives (as spool_ack_receive()). Errors: as spool_lease_extend(). */
int spool_lease_extend_receive(spool_queue *q, uint64_t id, uint32_t receives,
			       int64_t expiry_ms);

/*
 * Deletes message id if its state is one of the bits in states (e.g.
 * SPOOL_VISIBLE | SPOOL_DELAYED). Durable.
 * Errors: -ENOENT no such message in such a state; -ENOSPC/-EIO.
 */
int spool_delete(spool_queue *q, uint64_t id, unsigned states);

/*
 * Moves message id, if its state is one of the bits in states, from q to
 * dst, where it is VISIBLE now (its id, priority, body, attributes and
 * receive count travel with it). One atomic write; durable. dst == q makes it
 * visible in place (a release that also applies to delayed messages).
 * Errors: -ENOENT no such message in such a state, or a queue deleted;
 * -EDQUOT dst is at max_depth; -ENOSPC/-EIO.
 */
int spool_move(spool_queue *q, uint64_t id, unsigned states, spool_queue *dst);

/*
 * Moves up to max (0 = all) visible messages, in lease order, from q to dst.
 * *moved (if not NULL) is the count. Done in atomic steps of up to 1000
 * messages, each durable; on an error the steps already taken stay done and
 * *moved says how many.
 * Errors: -EINVAL q == dst; -ENOENT; -EDQUOT; -ENOSPC/-EIO.
 */
int spool_move_all(spool_queue *q, spool_queue *dst, uint64_t max,
		   uint64_t *moved);

/*
 * Deletes every VISIBLE and DELAYED message (leased ones stay) in one atomic
 * write; *count (if not NULL) is how many. Durable.
 * Errors: -ENOENT queue deleted; -ENOSPC/-EIO.
 */
int spool_purge(spool_queue *q, uint64_t *count);

/*
 * As spool_purge(), for the messages in any of the states bits (all four:
 * everything, leased and corrupt ones too, as SQS's PurgeQueue). One atomic
 * write. Messages another call is changing at that moment are left.
 * Errors: -EINVAL states empty or not state bits; -ENOENT; -ENOSPC/-EIO.
 */
int spool_purge_states(spool_queue *q, unsigned states, uint64_t *count);

/*
 * Deletes queue name with every message in it, in any state (SQS's
 * DeleteQueue), in one atomic write: the queue and its messages go
 * together or not at all. Retried while a concurrent push, move or other
 * change of one of its messages is in flight.
 * Errors: -ENOENT no such queue; -ENOTEMPTY changes kept coming for 100
 * tries; -ENOSPC/-EIO.
 */
int spool_queue_delete_all(spool_db *db, const char *name);

/* ----------------------------------------------------------- listing */

/*
 * A position in a listing. Zero-initialise it to start; spool_list() moves
 * it on. It names the last message returned, not an index, so a listing
 * stays correct while messages come and go: nothing is returned twice, and
 * every message present for the whole listing is returned once.
 */
struct spool_cursor {
	uint64_t id;
	int32_t priority;
	int started;
};

/*
 * Lists messages in one state (SPOOL_VISIBLE: in lease order, priority then
 * id; the others: id order) after cur, up to max ids into ids[], and moves
 * cur past them. Returns the count; 0 means the end.
 * Errors: -EINVAL state is not exactly one state bit; -ENOENT queue deleted.
 */
ssize_t spool_list(spool_queue *q, enum spool_state state,
		   struct spool_cursor *cur, uint64_t *ids, size_t max);

/* ------------------------------------------------------------- stats */

struct spool_stats {
	uint64_t visible;
	uint64_t delayed;
	uint64_t leased;
	uint64_t corrupt;
	uint64_t bytes;           /* body bytes of all messages held */
	uint64_t pushed_total;    /* these totals persist across restarts */
	uint64_t acked_total;     /* acks and pops */
	uint64_t expired_total;   /* leases that ran out */
	uint64_t dead_total;      /* moved to the dead-letter queue */
	uint64_t deduped_total;   /* pushes dropped as duplicates */
	uint64_t deleted_total;   /* deleted unleased (delete, purge) */
	int64_t oldest_visible_age_ms; /* 0 when nothing is visible */
};

/* Copies the queue's counters. Errors: -ENOENT deleted. */
int spool_stats_get(spool_queue *q, struct spool_stats *out);

/*
 * The room of a store that is not a local directory, in bytes, for df
 * (DESIGN §12): Redis's maxmemory (the host's RAM when it has none) and
 * its used_memory. Errors: -EOPNOTSUPP the store is a directory (RocksDB:
 * statfs that directory's filesystem instead); -EIO unreachable.
 */
int spool_space(spool_db *db, uint64_t *total, uint64_t *used);

/*
 * Writes the stats as "key=value\n" lines (DESIGN §7) into buf. Returns the
 * length of the whole text, which may exceed len, as snprintf does.
 * Errors: -ENOENT deleted.
 */
int spool_stats_format(spool_queue *q, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* SPOOL_H */
