/*
 * fs.h - the daemon's private header: the shared state of fs/ and the
 * functions its modules call in each other.
 *
 * fs/ translates file operations into calls of the engine (engine/spool.h,
 * its one door) and engine errors into errno replies. It knows nothing of
 * RocksDB. Module map (no two files call each other, directly or in a
 * circle: tools/fs-cycles, docs/decisions.md):
 *   main.c    command line, store, mount, daemon, signals, shutdown
 *   ctx.c     the filesystem's state (struct fs_ctx): made and freed
 *   log.c     one log sink (stderr in the foreground, syslog as a daemon)
 *   inode.c   inode table, per-queue state, attributes
 *   dir.c     lookup, mkdir, rmdir, readdir, unlink, rename
 *   ops.c     open/read/write/flush/release dispatch and the ops table
 *   file.c    open files: the reply to OPEN/CREATE, the set, freeing
 *   handle.c  CREATE and reopening for writing: a new name or a draft
 *   wbuf.c    write handles: new names, push, lines, config, ctl; commit
 *   push.c    a push with its xattrs (priority, delay, user.*)
 *   draft.c   drafts (.name files and dirs): their lists and data
 *   consume.c next, claim, pop: lease on read
 *   wait.c    parked readers, interrupts, deadlines, poll handles
 *   msg.c     message files: attributes, xattrs, lease extension
 *   xattr.c   the xattr requests: dispatch by kind of inode
 *   xlist.c   xattr lists of drafts and write handles, in memory
 *   text.c    stats, config and .metrics snapshots
 *   listed.c  READDIRPLUS entries the kernel keeps, kept true
 *   names.c   names being written and just pushed, per process
 *   util.c    a set of live handles, a byte buffer, a thread's process
 */
#ifndef FS_H
#define FS_H

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>

#include "spool.h"

/* ------------------------------------------------------------ log.c */

void fs_log_init(int foreground, int debug);
void fs_log_daemonized(void);
void fs_log_capture(int on);
const char *fs_log_captured(void);
void fs_log(enum spool_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The engine's log callback (spool_options.log). */
void fs_log_engine(void *arg, enum spool_log_level level, const char *line);

/* ----------------------------------------------------------- inodes */

enum fs_kind {
	FS_ROOT,
	FS_METRICS,
	FS_QDIR,      /* a queue directory */
	FS_PUSH,
	FS_LINES,
	FS_NEXT,      /* a fresh inode per lookup, bound to a message on read */
	FS_CLAIM,
	FS_POP,
	FS_PEEKDIR,
	FS_DELAYEDDIR,
	FS_LEASEDDIR,
	FS_STATS,
	FS_CONFIG,
	FS_CTL,
	FS_MSG,       /* peek/<id>, delayed/<id>, leased/<id> */
	FS_WRITE,     /* a new name being written (CREATE) */
	FS_DRAFT,     /* .name */
	FS_DRAFTDIR,  /* a directory .name in a queue: holds drafts */
};

/* The fixed entries of a queue directory. Their inode numbers are the
 * queue's base number plus the index + 1. Only those fs_qfixed_listed()
 * says are listed (crawler safety, DESIGN §2); the others exist by name. */
#define FS_QFIXED 11
extern const char *const fs_qfixed_name[FS_QFIXED];
extern const enum fs_kind fs_qfixed_kind[FS_QFIXED];
int fs_qfixed_listed(int i);

/* Extended attributes of a draft or a message being written. */
struct fs_xattr {
	char *name;
	void *value;
	size_t len;
	struct fs_xattr *next;
};

/* ------------------------------------------------------------ util.c */

/* A growing byte buffer. */
struct fs_buf {
	char *data;
	size_t len;
	size_t cap;
};
/* Writes len bytes at off, growing b (zeros fill a gap); -ENOMEM. */
int fs_buf_put(struct fs_buf *b, const void *data, size_t len, size_t off);
void fs_buf_free(struct fs_buf *b);

/*
 * A set of live handles (open files, open directories), so that unmount can
 * free those the kernel never released. Members embed a struct fs_link.
 */
struct fs_link {
	struct fs_link *prev, *next;    /* protected by the set's lock */
};
struct fs_set {
	pthread_mutex_t lock;
	struct fs_link *head;
};
#define FS_SET_INIT { PTHREAD_MUTEX_INITIALIZER, NULL }
void fs_set_add(struct fs_set *s, struct fs_link *l);
void fs_set_remove(struct fs_set *s, struct fs_link *l);
/* Takes any one member out of s; NULL when it is empty. */
struct fs_link *fs_set_pop(struct fs_set *s);

/* Maps a thread id to its process id through /proc; 0 if unknown. */
pid_t fs_tgid(pid_t tid);

struct fs_queue;
struct fs_wbuf;
struct fs_file;

/* The in-memory file behind a draft (.name). */
struct fs_draft {
	pthread_mutex_t lock;
	struct fs_buf body;         /* protected by lock */
	struct fs_xattr *xattrs;    /* protected by lock */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	struct timespec mtime;
	struct timespec ctime;
	/* fs_draft_free, set by fs_draft_make: inode.c frees a draft's inode
	 * through it without depending on draft.c (which makes inodes). */
	void (*free)(struct fs_draft *d);
};

struct fs_inode {
	fuse_ino_t ino;
	enum fs_kind kind;
	uint64_t nlookup;           /* protected by fs->lock; dynamic kinds only */
	int linked;                 /* drafts: still in the queue's list */
	int dynamic;                /* freed when forgotten */
	struct fs_ctx *fs;          /* the filesystem it belongs to */
	struct fs_queue *q;         /* NULL for the root and .metrics */
	/* FS_MSG: which listing it came from; FS_NEXT/CLAIM: the bound one */
	enum spool_state state;
	_Atomic uint64_t msg_id;    /* 0 = none bound yet */
	struct fs_wbuf *wbuf;       /* FS_WRITE: its latest open write */
	int writers;                /* FS_WRITE: open writes; fs->lock */
	struct fs_draft *draft;     /* FS_DRAFT, FS_DRAFTDIR (mode, times) */
	char *name;                 /* FS_DRAFT/FS_WRITE: the file name */
	struct fs_inode *hnext;     /* hash chain, protected by fs->lock */
	struct fs_inode *mnext;     /* FS_MSG: fs->msgs chain; fs->lock */
	struct fs_inode *dnext;     /* draft list of q, protected by fs->lock */
	struct fs_inode *parent;    /* FS_DRAFT: its draft dir, or NULL */
	struct fs_inode *children;  /* FS_DRAFTDIR: its drafts; fs->lock */
	/* FS_WRITE, names.c; protected by fs->lock */
	int named;                  /* in q->names */
	pid_t pusher_tid;           /* the thread that opened it */
	int64_t named_until;        /* monotonic ms; INT64_MAX while writing */
	int pushed;                 /* a message was pushed from it */
	uint64_t pushed_id;         /* its last message (0: none, deduped) */
	uint64_t pushed_size;
	struct fs_inode *nnext;     /* q->names chain */
	/* FS_NEXT (fs_next_node), protected by fs->lock */
	int opens;                  /* open files on it */
	int lent;                   /* given by a LOOKUP, not opened since */
};

/* One queue the daemon has seen. Never freed before unmount (the wake hook
 * may hold a pointer at any moment); a deleted queue's entry stays, dead. */
struct fs_queue {
	spool_queue *sq;            /* one engine handle for this queue */
	char name[SPOOL_NAME_MAX + 1];
	fuse_ino_t base;            /* ino of the directory */
	int dead;                   /* rmdir'd; protected by fs->lock */
	struct fs_inode *fixed[FS_QFIXED + 1]; /* [0] the dir */
	struct fs_inode *drafts;    /* protected by fs->lock */
	struct fs_inode *next_spare; /* the last node of next; fs->lock */
	struct fs_wbuf *writing;    /* names being written; fs->lock */
	struct fs_inode **names;    /* names.c hash, NULL until used; fs->lock */
	int64_t names_swept;        /* monotonic ms of the last sweep */
	struct fs_ctx *fs;          /* the filesystem it belongs to */
	/* wait.c state, protected by fs->wait.lock */
	struct fs_waiter *waiters;
	struct fs_waiter *waiters_tail;
	uint64_t wake_seq;
	struct fs_rfile *polls;
	struct fs_queue *next;      /* all queues, protected by fs->lock */
};

/* wait.c: parked readers of every queue and the deadline thread. */
struct fs_waiter;
struct fs_wait {
	pthread_mutex_t lock;       /* the fields below, and the queues' */
	pthread_cond_t cond;
	pthread_t thread;
	int running;
	int stopping;               /* protected by lock */
	struct fs_waiter *all;      /* protected by lock */
	struct fs_waiter *reaped;   /* interrupted, to answer EINTR; lock */
};

/* listed.c: READDIRPLUS of message dirs and what keeps its entries true. */
struct fs_listed {
	int on;                     /* READDIRPLUS asked for (fs_init) */
	int ready, running;         /* lock and cond made; keeper started */
	_Atomic int64_t until;      /* CLOCK_MONOTONIC ms: entries given
	                             * may be kept until then */
	atomic_int answering;       /* READDIRPLUS replies being made */
	_Atomic int64_t answered;   /* ms the last one was written */
	atomic_ullong bumps;        /* epochs incremented (.metrics) */
	atomic_int warned;
	pthread_mutex_t lock;       /* again, stopping */
	pthread_cond_t cond;
	pthread_t thread;
	int64_t again;              /* a change during a listing: ms; 0 none */
	int stopping;
};

/*
 * The filesystem's state. main() makes one (fs_ctx_new) and gives it to
 * the FUSE session as its userdata: an operation finds it with
 * fs_of(req), a queue through q->fs, the engine's wake hook through its
 * argument. Nothing in fs/ is a mutable global but the log sink
 * (tools/fs-globals).
 */
struct fs_ctx {
	spool_db *db;
	int udata;                  /* our slot of the queues' user pointers */
	struct fuse_session *se;
	pthread_mutex_t lock;       /* inode table, queue list, drafts */
	struct fs_inode **table;
	struct fs_inode **msgs;     /* FS_MSG inodes by queue, state, id */
	size_t table_size;
	size_t ninodes;
	fuse_ino_t next_ino;
	struct fs_queue *queues;
	struct fs_inode *root;
	struct fs_inode *metrics;
	uid_t uid;
	gid_t gid;
	int64_t start_ms;
	const char *data_dir;       /* the store's directory, for statfs */
	struct fs_set open_files;   /* file.c: files not yet released */
	struct fs_set dirs;         /* dir.c: directories not yet released */
	struct fs_wait wait;
	struct fs_listed listed;
	atomic_ullong lookups;      /* LOOKUP requests answered (.metrics) */
};

/* ------------------------------------------------------------- ctx.c */

/* A zeroed state with its locks made; NULL if out of memory. */
struct fs_ctx *fs_ctx_new(void);
/* Frees fs (its locks; what it points to is freed by then). NULL is ok. */
void fs_ctx_free(struct fs_ctx *fs);
/* The state of the session req came in on (libfuse's userdata). */
static inline struct fs_ctx *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

#define FS_ROOT_INO FUSE_ROOT_ID
#define FS_METRICS_INO 2
#define FS_FIRST_INO 16

int fs_inode_init(struct fs_ctx *fs);
void fs_inode_destroy(struct fs_ctx *fs);
void fs_queue_free_all(struct fs_ctx *fs);
/* Returns the inode numbered ino, or NULL. Inodes stay valid until the
 * kernel forgets them, so no reference is taken. */
struct fs_inode *fs_inode_get(struct fs_ctx *fs, fuse_ino_t ino);
/* Makes a dynamic inode with nlookup 0 in the table. */
struct fs_inode *fs_inode_new(enum fs_kind kind, struct fs_queue *q);
/* The node a LOOKUP of q's next gives, pinned (drop it with one
 * fs_inode_forget after the reply); NULL if out of memory. */
struct fs_inode *fs_next_node(struct fs_queue *q);
/* An open file on a next node begins (+1) or ends (-1). */
void fs_next_opened(struct fs_inode *in, int delta);
/* The inode of message id in q's listing of state s, the same one while
 * the kernel knows it (a LOOKUP and a READDIRPLUS of one name give one
 * node id), with one nlookup pin taken: drop it with
 * fs_inode_forget(ino, 1). NULL if out of memory. */
struct fs_inode *fs_msg_inode(struct fs_queue *q, enum spool_state s,
			      uint64_t id);
/* A rename moved message id from q's listing of state s to nq's of ns:
 * the inode the kernel holds for the old name answers for the new one. */
void fs_msg_moved(struct fs_queue *q, enum spool_state s, uint64_t id,
		  struct fs_queue *nq, enum spool_state ns);
/* One more kernel reference (a reply_entry or reply_create). */
void fs_inode_ref(struct fs_inode *in);
void fs_inode_forget(struct fs_ctx *fs, fuse_ino_t ino, uint64_t n);
/* Frees a dynamic inode that nothing refers to any more. fs->lock held. */
void fs_inode_maybe_free(struct fs_inode *in);

/* Finds (or makes) the state of live queue name. Errors: -ENOENT. */
int fs_queue_get(struct fs_ctx *fs, const char *name,
		 struct fs_queue **out);
/* The queue struct of an engine handle (the wake hook's argument). */
struct fs_queue *fs_queue_of(struct fs_ctx *fs, spool_queue *sq);
void fs_queue_kill(struct fs_queue *q);

/* Fills st for in. Errors: -ENOENT (queue or message gone). */
int fs_inode_stat(struct fs_inode *in, struct stat *st);
/* Fills e for in, with the timeouts its kind wants, and takes a kernel
 * reference on dynamic inodes. */
int fs_inode_entry(struct fs_inode *in, struct fuse_entry_param *e);
/* The same for a message whose info the caller has just read (a lookup:
 * one store read, not two). */
int fs_inode_entry_known(struct fs_inode *in,
			 const struct spool_msg_info *known,
			 struct fuse_entry_param *e);
double fs_kind_timeout(enum fs_kind kind);
double fs_attr_timeout(enum fs_kind kind);
/* The queue's mode or owner changed: drop the kernel's copy of its fixed
 * entries' attributes. */
void fs_queue_attr_changed(struct fs_queue *q);
int fs_kind_is_dir(enum fs_kind kind);

/* ------------------------------------------------------------ dir.c */

void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
	      mode_t mode);
void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags);
void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* How long the kernel keeps a message entry a listing gave (seconds,
 * docs/decisions.md); lookups of messages give 0. */
#define FS_LIST_TIMEOUT 10.0

/* ---------------------------------------------------------- listed.c */

/* In FUSE INIT: may message dirs answer READDIRPLUS (sets listed.on)? */
int fs_listed_wanted(struct fs_ctx *fs, const struct fuse_conn_info *conn);
/* After the store is open: the keeper thread and the change hook. */
int fs_listed_start(struct fs_ctx *fs);
void fs_listed_stop(struct fs_ctx *fs);
void fs_listed_free(struct fs_ctx *fs);
/* Around each READDIRPLUS reply of a message dir: begin before its
 * listing is read, end after the reply is written. */
void fs_listed_begin(struct fs_ctx *fs);
void fs_listed_end(struct fs_ctx *fs);
/* At unmount: frees the directory handles still open. */
void fs_dir_free_all(struct fs_ctx *fs);

/* ----------------------------------------------------------- names.c */

/* How long a pushed name stays resolvable for its pusher (DESIGN §4). */
#define FS_NAME_KEEP_MS 6000

/* Adds FS_WRITE inode in to its queue's names. fs->lock held. */
void fs_names_add(struct fs_inode *in);
/* Takes in out of its queue's names. fs->lock held. */
void fs_names_drop(struct fs_inode *in);
/* A message was pushed from in: it stays findable FS_NAME_KEEP_MS. */
void fs_names_pushed(struct fs_inode *in, uint64_t id, uint64_t size);
/* The name the caller of req is writing or just pushed in q, with one
 * nlookup pin taken (drop it with fs_inode_forget(ino, 1)), or NULL. */
struct fs_inode *fs_names_find(struct fs_queue *q, const char *name,
			       fuse_req_t req);
/* Renames in (fs->lock held): rehashes it under newname. */
int fs_names_rename(struct fs_inode *in, const char *newname);

/* ------------------------------------------------------------ wbuf.c */

enum fs_wkind { FS_W_MSG, FS_W_LINES, FS_W_CONFIG, FS_W_CTL };

/* One open for writing of a new name, push, lines, config or ctl. Lock
 * order: fs->lock is never held while taking a wbuf's lock (a commit takes
 * fs->lock under it); who finds a wbuf through its inode takes a reference
 * under fs->lock instead (fs_wbuf_of). */
struct fs_wbuf {
	pthread_mutex_t lock;
	_Atomic int refs;           /* the open file's, and fs_wbuf_of's */
	_Atomic uint64_t size;      /* base + buf.len, readable unlocked */
	enum fs_wkind kind;
	struct fs_queue *q;
	struct fs_inode *in;        /* FS_WRITE: its inode, else NULL */
	struct fs_buf buf;          /* bytes since the last commit */
	uint64_t base;              /* file offset of buf.data[0] */
	struct fs_xattr *xattrs;    /* FS_WRITE: set with fsetxattr */
	pid_t opener_tid;           /* the thread that opened it */
	uid_t opener_uid;           /* its user: the messages' sender */
	int committed;              /* a message was pushed already */
	int append;                 /* every write is an append (no holes) */
	int err;                    /* a refused write: errno for close() */
	uint64_t max_size;          /* FS_W_LINES: of one line */
	size_t line_at;             /* FS_W_LINES: lines checked up to here */
	struct fs_wbuf *wnext;      /* q->writing, protected by fs->lock */
};

struct fs_wbuf *fs_wbuf_new(enum fs_wkind kind, struct fs_queue *q,
			    fuse_req_t req);
/* The open file's end of w: detaches it from its inode, drops its ref. */
void fs_wbuf_free(struct fs_wbuf *w);
/* The latest open write of FS_WRITE inode in, with a reference (drop it
 * with fs_wbuf_put), or NULL. */
struct fs_wbuf *fs_wbuf_of(struct fs_inode *in);
void fs_wbuf_put(struct fs_wbuf *w);
int fs_wbuf_write(struct fs_wbuf *w, const char *buf, size_t size,
		  off_t off);
int fs_wbuf_truncate(struct fs_wbuf *w, off_t size);
int fs_wbuf_flush(struct fs_wbuf *w, fuse_req_t req);
void fs_wbuf_release(struct fs_wbuf *w);

/* ---------------------------------------------------------- handle.c */

void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
	       mode_t mode, struct fuse_file_info *fi);
/* Opens FS_WRITE inode in (a name its caller just pushed) for writing
 * again: a new message under the same name. */
int fs_write_reopen(fuse_req_t req, struct fs_inode *in, struct fs_file *f,
		    int flags);

/* ------------------------------------------------------------ push.c */

/* Pushes body with the per-message xattrs (priority, delay, user.*), sent
 * by user uid (its SQS SenderId). */
int fs_push_with_xattrs(struct fs_queue *q, const char *name,
			const void *body, size_t len,
			const struct fs_xattr *xattrs, uid_t uid, uint64_t *id);
/* Checks the value of a spoolfs xattr; 0 or -EINVAL. */
int fs_xattr_check(const char *name, const char *value, size_t size);

/* ----------------------------------------------------------- draft.c */

/* Drafts: file data, opened like regular files. */
struct fs_draft *fs_draft_new(mode_t mode, uid_t uid, gid_t gid);
/* Makes a draft (FS_DRAFT) or draft dir inode named name in dir, linked. */
struct fs_inode *fs_draft_make(struct fs_inode *dir, enum fs_kind kind,
			       const char *name, mode_t mode,
			       const struct fuse_ctx *ctx);
void fs_draft_free(struct fs_draft *d);
int fs_draft_push(struct fs_inode *in, struct fs_queue *dst,
		  const char *name);
/* The lists of drafts. fs->lock held. dir is a queue directory or a draft
 * directory. */
struct fs_inode **fs_drafts_of(struct fs_inode *dir);
struct fs_inode *fs_draft_find(struct fs_inode *dir, const char *name);
void fs_draft_link(struct fs_inode *dir, struct fs_inode *in);
/* Takes a draft out of its list (it stays allocated) / and frees it if
 * unused. */
void fs_draft_detach(struct fs_inode *in);
void fs_draft_unlink(struct fs_inode *in);
/* Does the caller's name exist in a queue or draft directory as a
 * draft (a name starting with '.', or any name in a draft dir)? */
int fs_is_draft_name(struct fs_inode *dir, const char *name);

/* --------------------------------------------------------- consume.c */

/* What an open next, claim or pop holds. */
struct fs_rfile {
	/* A reply can let the reader close the file and RELEASE free it
	 * while the replying thread still runs: each user holds a ref. */
	_Atomic int refs;
	pthread_mutex_t lock;
	struct fs_inode *in;
	struct fs_queue *q;
	enum fs_kind kind;
	int bound;                  /* a message was taken; protected by lock */
	uint64_t id;
	char *data;                 /* pop: the body; claim: the id line */
	size_t len;
	/* poll(), protected by q->fs->wait.lock */
	struct fuse_pollhandle *ph;
	struct fs_rfile *pnext;     /* q->polls */
	int polled;                 /* on q->polls */
};

struct fs_rfile *fs_rfile_new(struct fs_inode *in);
void fs_rfile_put(struct fs_rfile *f);
void fs_consume_read(fuse_req_t req, struct fs_rfile *f, size_t size,
		     off_t off, int nonblock);
/*
 * Tries to answer a parked or fresh read of f: returns 0 when req was
 * answered, -EAGAIN when nothing is visible (req not answered).
 */
int fs_consume_try(fuse_req_t req, struct fs_rfile *f, size_t size,
		   off_t off);
/* How a parked read is tried again (fs_consume_try): wait.c calls it
 * through fs_wait_park's argument, so it needs nothing from consume.c. */
typedef int fs_wait_try_fn(fuse_req_t req, struct fs_rfile *f, size_t size,
			   off_t off);

/* ------------------------------------------------------------ wait.c */

struct fs_waiter;


int fs_wait_start(struct fs_ctx *fs);
/* Answers every parked read with EINTR and stops the deadline thread. */
void fs_wait_stop(struct fs_ctx *fs);
/* Parks req (a read of f): answered by fs_wake or EINTR or EAGAIN. try
 * answers it when its queue may have a message. */
void fs_wait_park(fuse_req_t req, struct fs_rfile *f, size_t size, off_t off,
		  uint64_t seq, fs_wait_try_fn *try);
uint64_t fs_wait_seq(struct fs_queue *q);
/* The engine's wake hook (spool_options.wake). */
void fs_wake(void *arg, spool_queue *sq);
void fs_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
	     struct fuse_pollhandle *ph);
void fs_poll_drop(struct fs_rfile *f);

/* ------------------------------------------------------------- msg.c */

/* Parses a message file name as an id. */
int fs_msg_parse(const char *name, uint64_t *id);
void fs_msg_setattr(fuse_req_t req, struct fs_inode *in, struct stat *attr,
		    int to_set);
ssize_t fs_msg_getxattr(struct fs_queue *q, uint64_t id, const char *name,
			char *buf, size_t size);
ssize_t fs_msg_listxattr(struct fs_queue *q, uint64_t id, char *buf,
			 size_t size);

/* ----------------------------------------------------------- xattr.c */

void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 const char *value, size_t size, int flags);
void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 size_t size);
void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ----------------------------------------------------------- xlist.c */

/* The in-memory list of a draft or name being written; callers hold the
 * lock of its owner. set: flags XATTR_CREATE/XATTR_REPLACE; get and list
 * answer like getxattr(2)/listxattr(2) (size 0: the size needed). */
int fs_xattr_set(struct fs_xattr **list, const char *name, const void *value,
		 size_t size, int flags);
int fs_xattr_remove(struct fs_xattr **list, const char *name);
ssize_t fs_xattr_get(struct fs_xattr *list, const char *name, char *buf,
		     size_t size);
ssize_t fs_xattr_list(struct fs_xattr *list, char *buf, size_t size);
void fs_xattr_free(struct fs_xattr *list);

/* ------------------------------------------------------------ text.c */

/* Formats a snapshot; *out is malloc'd (free it). */
int fs_text_stats(struct fs_queue *q, char **out, size_t *len);
int fs_text_config(struct fs_queue *q, char **out, size_t *len);
int fs_text_metrics(struct fs_ctx *fs, char **out, size_t *len);

/* ------------------------------------------------------------ file.c */

/* What fi->fh points to for every open file (not directories). */
struct fs_file {
	struct fs_inode *in;
	struct fs_wbuf *w;          /* opened for writing (not drafts) */
	struct fs_rfile *r;         /* next, claim, pop */
	char *snap;                 /* stats, config, .metrics: text at open */
	size_t snaplen;
	struct fs_link link;        /* in the set of open files */
};

/* Answers an OPEN or CREATE (e != NULL) with f as the handle; frees f
 * if the request was interrupted. */
void fs_reply_open(fuse_req_t req, struct fuse_file_info *fi,
		   struct fs_file *f, const struct fuse_entry_param *e);
void fs_file_free(struct fs_file *f);
/* At RELEASE: f leaves the set of open files (free it after). */
void fs_file_closed(struct fs_ctx *fs, struct fs_file *f);
static inline struct fs_file *fs_file_of(struct fuse_file_info *fi)
{
	return (struct fs_file *)(uintptr_t)fi->fh;
}
/* At unmount: frees the files still open (no RELEASE will come). */
void fs_file_free_all(struct fs_ctx *fs);

/* ------------------------------------------------------------- ops.c */

extern const struct fuse_lowlevel_ops fs_ops;

#endif /* FS_H */
