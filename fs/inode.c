/*
 * inode.c - the inode table and the per-queue state.
 *
 * Inode numbers are never reused within a mount, so the generation is 0.
 * Fixed inodes (the root, .metrics, each queue's directory and its control
 * entries) live until unmount; a queue gets a block of 16 numbers. Dynamic
 * inodes (next, message files, names being written, drafts) are counted
 * with the kernel's lookups and freed when forgotten (drafts only once they
 * are also unlinked). A queue's state (struct fs_queue) is never freed
 * before unmount, because the engine's wake hook may reach it at any time;
 * a deleted queue leaves a dead entry behind (a known, small leak).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"

#define TABLE_SIZE (1u << 16)
#define QUEUE_INOS 16

const char *const fs_qfixed_name[FS_QFIXED] = {
	"push", "lines", "next", "claim", "pop", "peek", "delayed",
	"leased", "stats", "config", "ctl",
};

const enum fs_kind fs_qfixed_kind[FS_QFIXED] = {
	FS_PUSH, FS_LINES, FS_NEXT, FS_CLAIM, FS_POP, FS_PEEKDIR,
	FS_DELAYEDDIR, FS_LEASEDDIR, FS_STATS, FS_CONFIG, FS_CTL,
};

/* Reading these takes a message or waits (next, claim, pop), or they are
 * write-only (push, lines, ctl): not listed, so that crawlers (grep -r,
 * cp -r, tar, backups) change nothing and never block. */
int fs_qfixed_listed(int i)
{
	switch (fs_qfixed_kind[i]) {
	case FS_PEEKDIR:
	case FS_DELAYEDDIR:
	case FS_LEASEDDIR:
	case FS_STATS:
	case FS_CONFIG:
		return 1;
	default:
		return 0;
	}
}

static size_t slot(fuse_ino_t ino)
{
	return (ino * 0x9E3779B97F4A7C15ull) >> 48 & (TABLE_SIZE - 1);
}

/* fs->lock held. */
static void table_insert(struct fs_inode *in)
{
	struct fs_ctx *fs = in->fs;
	size_t s = slot(in->ino);

	in->hnext = fs->table[s];
	fs->table[s] = in;
	fs->ninodes++;
}

/* fs->lock held. */
static void table_remove(struct fs_inode *in)
{
	struct fs_ctx *fs = in->fs;
	struct fs_inode **p = &fs->table[slot(in->ino)];

	while (*p && *p != in)
		p = &(*p)->hnext;
	if (*p) {
		*p = in->hnext;
		fs->ninodes--;
	}
}

/* fs->lock held. */
static struct fs_inode *inode_alloc(struct fs_ctx *fs, fuse_ino_t ino,
				    enum fs_kind kind, struct fs_queue *q)
{
	struct fs_inode *in = calloc(1, sizeof *in);

	if (!in)
		return NULL;
	in->fs = fs;
	in->ino = ino;
	in->kind = kind;
	in->q = q;
	table_insert(in);
	return in;
}

int fs_inode_init(struct fs_ctx *fs)
{
	fs->table = calloc(TABLE_SIZE, sizeof *fs->table);
	fs->msgs = calloc(TABLE_SIZE, sizeof *fs->msgs);
	if (!fs->table || !fs->msgs)
		return -ENOMEM;
	fs->next_ino = FS_FIRST_INO;
	fs->uid = getuid();
	fs->gid = getgid();
	fs->root = inode_alloc(fs, FS_ROOT_INO, FS_ROOT, NULL);
	fs->metrics = inode_alloc(fs, FS_METRICS_INO, FS_METRICS, NULL);
	if (!fs->root || !fs->metrics)
		return -ENOMEM;
	return 0;
}

static void inode_free(struct fs_inode *in)
{
	if (in->draft)
		in->draft->free(in->draft);
	free(in->name);
	free(in);
}

/* Frees every inode at unmount (the kernel sends no more forgets) and
 * closes the queues' engine handles; their structs stay until
 * fs_queue_free_all(). */
void fs_inode_destroy(struct fs_ctx *fs)
{
	struct fs_queue *q, *qn;
	size_t i;

	for (i = 0; fs->table && i < TABLE_SIZE; i++) {
		struct fs_inode *in, *n;

		for (in = fs->table[i]; in; in = n) {
			n = in->hnext;
			inode_free(in);
		}
	}
	free(fs->table);
	fs->table = NULL;
	free(fs->msgs);
	fs->msgs = NULL;
	for (q = fs->queues; q; q = qn) {
		qn = q->next;
		spool_queue_set_udata(q->sq, fs->udata, NULL);
		spool_queue_close(q->sq);
		q->sq = NULL;
	}
}

/* After spool_close: no wake hook can run any more. */
void fs_queue_free_all(struct fs_ctx *fs)
{
	struct fs_queue *q, *qn;

	for (q = fs->queues; q; q = qn) {
		qn = q->next;
		free(q->names);
		free(q);
	}
	fs->queues = NULL;
}

struct fs_inode *fs_inode_get(struct fs_ctx *fs, fuse_ino_t ino)
{
	struct fs_inode *in;

	pthread_mutex_lock(&fs->lock);
	for (in = fs->table[slot(ino)]; in; in = in->hnext)
		if (in->ino == ino)
			break;
	pthread_mutex_unlock(&fs->lock);
	return in;
}

struct fs_inode *fs_inode_new(enum fs_kind kind, struct fs_queue *q)
{
	struct fs_ctx *fs = q->fs;
	struct fs_inode *in;

	pthread_mutex_lock(&fs->lock);
	in = inode_alloc(fs, fs->next_ino++, kind, q);
	if (in)
		in->dynamic = 1;
	pthread_mutex_unlock(&fs->lock);
	return in;
}

/*
 * Each open of next needs a node of its own: getxattr and setattr name a
 * node, not an open file, and the node answers for the message its open
 * bound. But the kernel revalidates its entry of `next` (kept 0 s) with a
 * LOOKUP at every open, and a node other than the one it holds makes it
 * drop the entry, FORGET that node and look up again: two LOOKUPs and a
 * FORGET per open. So the last node given is given again while no open
 * file is on it and no LOOKUP has lent it since, its binding cleared; the
 * kernel's entry then stays valid and a lease takes four requests.
 */
struct fs_inode *fs_next_node(struct fs_queue *q)
{
	struct fs_ctx *fs = q->fs;
	struct fs_inode *in;

	pthread_mutex_lock(&fs->lock);
	in = q->next_spare;
	if (!in || in->opens || in->lent) {
		in = inode_alloc(fs, fs->next_ino++, FS_NEXT, q);
		if (in) {
			in->dynamic = 1;
			q->next_spare = in;
		}
	}
	if (in) {
		atomic_store(&in->msg_id, 0);
		in->lent = 1;
		in->nlookup++;              /* the pin */
	}
	pthread_mutex_unlock(&fs->lock);
	return in;
}

void fs_next_opened(struct fs_inode *in, int delta)
{
	pthread_mutex_lock(&in->fs->lock);
	in->opens += delta;
	if (delta > 0)
		in->lent = 0;
	pthread_mutex_unlock(&in->fs->lock);
}

/* fs->lock held. The inode of message id in q's listing of state s. */
static struct fs_inode *msg_find(struct fs_queue *q, enum spool_state s,
				 uint64_t id)
{
	struct fs_inode *in;

	for (in = q->fs->msgs[slot(id)]; in; in = in->mnext)
		if (in->q == q && in->state == s && in->msg_id == id)
			break;
	return in;
}

struct fs_inode *fs_msg_inode(struct fs_queue *q, enum spool_state s,
			      uint64_t id)
{
	struct fs_ctx *fs = q->fs;
	struct fs_inode **head = &fs->msgs[slot(id)], *in;

	pthread_mutex_lock(&fs->lock);
	in = msg_find(q, s, id);
	if (!in && (in = inode_alloc(fs, fs->next_ino++, FS_MSG, q))) {
		in->dynamic = 1;
		in->state = s;
		in->msg_id = id;
		in->mnext = *head;
		*head = in;
	}
	if (in)
		in->nlookup++;
	pthread_mutex_unlock(&fs->lock);
	return in;
}

/* fs->lock held. */
static void msgs_remove(struct fs_inode *in)
{
	struct fs_inode **p = &in->fs->msgs[slot(in->msg_id)];

	while (*p && *p != in)
		p = &(*p)->mnext;
	if (*p)
		*p = in->mnext;
}

void fs_msg_moved(struct fs_queue *q, enum spool_state s, uint64_t id,
		  struct fs_queue *nq, enum spool_state ns)
{
	struct fs_ctx *fs = q->fs;
	struct fs_inode **head = &fs->msgs[slot(id)], *in;
	fuse_ino_t ino = 0;

	pthread_mutex_lock(&fs->lock);
	in = msg_find(q, s, id);
	if (in) {
		/* at the head: found before an inode the kernel held for the
		 * new name, which the rename replaced */
		msgs_remove(in);
		in->q = nq;
		in->state = ns;
		in->mnext = *head;
		*head = in;
		ino = in->ino;
	}
	pthread_mutex_unlock(&fs->lock);
	/* its times are the new state's (attributes only: safe inside a
	 * request, see fs_queue_attr_changed) */
	if (ino)
		fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
}

void fs_inode_ref(struct fs_inode *in)
{
	pthread_mutex_lock(&in->fs->lock);
	in->nlookup++;
	pthread_mutex_unlock(&in->fs->lock);
}

void fs_inode_maybe_free(struct fs_inode *in)
{
	if (!in->dynamic || in->nlookup > 0 || in->linked || in->writers ||
	    in->named || in->children)
		return;
	table_remove(in);
	if (in->kind == FS_MSG)
		msgs_remove(in);
	if (in->kind == FS_NEXT && in->q->next_spare == in)
		in->q->next_spare = NULL;
	inode_free(in);
}

void fs_inode_forget(struct fs_ctx *fs, fuse_ino_t ino, uint64_t n)
{
	struct fs_inode *in;

	pthread_mutex_lock(&fs->lock);
	for (in = fs->table[slot(ino)]; in; in = in->hnext)
		if (in->ino == ino)
			break;
	if (in && in->dynamic) {
		in->nlookup = n >= in->nlookup ? 0 : in->nlookup - n;
		fs_inode_maybe_free(in);
	}
	pthread_mutex_unlock(&fs->lock);
}

/* ----------------------------------------------------------- queues */

/* fs->lock held. */
static struct fs_queue *queue_find(struct fs_ctx *fs, const char *name)
{
	struct fs_queue *q;

	for (q = fs->queues; q; q = q->next)
		if (!q->dead && strcmp(q->name, name) == 0)
			break;
	if (q && !spool_queue_alive(q->sq)) {
		q->dead = 1;
		q = NULL;
	}
	return q;
}

/* fs->lock held. Makes the state of a queue whose handle is sq. */
static struct fs_queue *queue_make(struct fs_ctx *fs, spool_queue *sq,
				   const char *name)
{
	struct fs_queue *q = calloc(1, sizeof *q);
	int i;

	if (!q)
		return NULL;
	q->fs = fs;
	q->sq = sq;
	snprintf(q->name, sizeof q->name, "%s", name);
	q->base = fs->next_ino;
	fs->next_ino += QUEUE_INOS;
	q->fixed[0] = inode_alloc(fs, q->base, FS_QDIR, q);
	for (i = 0; i < FS_QFIXED; i++)
		q->fixed[i + 1] = inode_alloc(fs, q->base + 1 + i,
					      fs_qfixed_kind[i], q);
	q->next = fs->queues;
	fs->queues = q;
	spool_queue_set_udata(sq, fs->udata, q);
	return q;
}

int fs_queue_get(struct fs_ctx *fs, const char *name, struct fs_queue **out)
{
	spool_queue *sq;
	struct fs_queue *q;
	int rc;

	pthread_mutex_lock(&fs->lock);
	q = queue_find(fs, name);
	pthread_mutex_unlock(&fs->lock);
	if (q)
		goto out;
	rc = spool_queue_open(fs->db, name, &sq);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&fs->lock);
	q = queue_find(fs, name);
	if (!q)
		q = queue_make(fs, sq, name);
	else
		spool_queue_close(sq);
	pthread_mutex_unlock(&fs->lock);
	if (!q)
		return -ENOMEM;
out:
	*out = q;
	return 0;
}

struct fs_queue *fs_queue_of(struct fs_ctx *fs, spool_queue *sq)
{
	return spool_queue_udata(sq, fs->udata);
}

/*
 * The queue's mode or owner changed, and with them the attributes of its
 * fixed entries, which the kernel keeps for a second. Safe inside a
 * request: invalidating attributes only (offset < 0) takes no inode lock
 * in the kernel. An entry the kernel does not know gives ENOENT, ignored.
 */
void fs_queue_attr_changed(struct fs_queue *q)
{
	for (int i = 1; i <= FS_QFIXED; i++)
		fuse_lowlevel_notify_inval_inode(q->fs->se, q->fixed[i]->ino, -1, 0);
}

void fs_queue_kill(struct fs_queue *q)
{
	pthread_mutex_lock(&q->fs->lock);
	q->dead = 1;
	pthread_mutex_unlock(&q->fs->lock);
}

/* ------------------------------------------------------- attributes */

int fs_kind_is_dir(enum fs_kind kind)
{
	return kind == FS_ROOT || kind == FS_QDIR || kind == FS_PEEKDIR ||
	       kind == FS_DELAYEDDIR || kind == FS_LEASEDDIR ||
	       kind == FS_DRAFTDIR;
}

/*
 * Names and attributes that change behind the kernel's back get 0; static
 * ones 1 s. A fixed entry's attributes follow its queue's mode and owner,
 * which change only through setattr on the queue directory, and that
 * invalidates them (fs_queue_attr_changed): so an open of `push` needs no
 * GETATTR for the kernel's permission check, one round trip of five.
 */
double fs_kind_timeout(enum fs_kind kind)
{
	switch (kind) {
	case FS_NEXT:
	case FS_MSG:
	case FS_WRITE:
	case FS_DRAFT:
	case FS_DRAFTDIR:
	case FS_STATS:      /* their size is their text's, which changes */
	case FS_CONFIG:
	case FS_METRICS:
		return 0.0;
	default:
		return 1.0;
	}
}

/*
 * Attributes that only a lookup of the name can bring up to date are kept
 * 1 s, though the name is not kept (0 s): every path walk asks (LOOKUP),
 * and what it brought serves the permission check and the stat right
 * after without a GETATTR (docs/decisions.md).
 *  - A message's (size, times, mode) change only by a touch or chmod
 *    through this mount, whose setattr replies carry the new ones, or
 *    elsewhere (another host, SQS): the next lookup brings those. One
 *    request per `ls -l` entry instead of two.
 *  - A `next` node's are its queue's (one node per lookup): an open of
 *    `next` makes five requests, not six.
 */
double fs_attr_timeout(enum fs_kind kind)
{
	return kind == FS_MSG || kind == FS_NEXT ? 1.0 : fs_kind_timeout(kind);
}

/* The permission bits of classes that have both r and w on the queue. */
static mode_t rw_classes(mode_t m)
{
	mode_t out = 0;
	int shift;

	for (shift = 0; shift <= 6; shift += 3)
		if ((m >> shift & 6) == 6)
			out |= (mode_t)7 << shift;
	return out;
}

static mode_t entry_mode(enum fs_kind kind, mode_t m)
{
	switch (kind) {
	case FS_QDIR:
		return S_IFDIR | (m & 07777);
	case FS_PUSH:
	case FS_LINES:
		return S_IFREG | (m & 0222);
	case FS_NEXT:
	case FS_CLAIM:
	case FS_POP:
		return S_IFREG | (rw_classes(m) & 0444);
	case FS_PEEKDIR:
	case FS_DELAYEDDIR:
	case FS_LEASEDDIR:
		return S_IFDIR | ((m & 0444) | (m & 0444) >> 2 |
				  (rw_classes(m) & 0222));
	case FS_STATS:
	case FS_MSG:
		return S_IFREG | (m & 0444);
	case FS_CONFIG:
		return S_IFREG | 0600 | (m & 0044);
	case FS_CTL:
		return S_IFREG | 0200;
	case FS_WRITE:
		return S_IFREG | 0644;
	default:
		return S_IFREG | 0444;
	}
}

static void ms_to_ts(int64_t ms, struct timespec *ts)
{
	ts->tv_sec = ms / 1000;
	ts->tv_nsec = (ms % 1000) * 1000000;
}

/* known: the message's info, when the caller just read it (a lookup),
 * else NULL: read here */
static int stat_msg(struct fs_inode *in, struct stat *st,
		    const struct spool_msg_info *known)
{
	struct spool_msg_info info;

	if (known) {
		info = *known;
	} else {
		int rc = spool_msg_stat(in->q->sq, in->msg_id, &info);

		if (rc < 0)
			return rc;
	}
	/* One st_ino for the message's whole life, whatever the lookup (ids
	 * are unique in the store and far above the counted inode numbers):
	 * cp, install and rsync compare stat() with fstat() around open. */
	st->st_ino = in->msg_id;
	st->st_size = info.size;
	ms_to_ts(info.due_ms, &st->st_mtim);
	ms_to_ts(info.sent_ms, &st->st_ctim);
	ms_to_ts(info.sent_ms, &st->st_atim);
	return 0;
}

static void stat_draft(struct fs_draft *d, mode_t type, struct stat *st)
{
	pthread_mutex_lock(&d->lock);
	st->st_mode = type | (d->mode & 07777);
	st->st_uid = d->uid;
	st->st_gid = d->gid;
	st->st_size = d->body.len;
	st->st_mtim = d->mtime;
	st->st_atim = d->mtime;
	st->st_ctim = d->ctime;
	pthread_mutex_unlock(&d->lock);
}

/* A name being written: the bytes so far; once pushed, the pushed size.
 * (No wbuf lock under fs->lock: see struct fs_wbuf.) */
static void stat_write(struct fs_inode *in, struct stat *st)
{
	struct fs_ctx *fs = in->fs;

	pthread_mutex_lock(&fs->lock);
	st->st_size = in->writers && in->wbuf ? atomic_load(&in->wbuf->size)
					      : in->pushed_size;
	pthread_mutex_unlock(&fs->lock);
}

/* stats, config and .metrics report their current text's length, so that
 * tar and rsync copy all of it. */
static void stat_text(struct fs_inode *in, struct stat *st)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (in->kind == FS_METRICS)
		rc = fs_text_metrics(in->fs, &text, &len);
	else if (in->kind == FS_STATS)
		rc = fs_text_stats(in->q, &text, &len);
	else
		rc = fs_text_config(in->q, &text, &len);
	if (rc == 0)
		st->st_size = len;
	free(text);
}

static void stat_fixed(const struct fs_ctx *fs, struct stat *st)
{
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	ms_to_ts(fs->start_ms, &st->st_mtim);
	st->st_atim = st->st_ctim = st->st_mtim;
}

/* The inode number of q's fixed entry of kind k. */
static fuse_ino_t fixed_ino(const struct fs_queue *q, enum fs_kind k)
{
	int i = 0;

	while (i < FS_QFIXED - 1 && fs_qfixed_kind[i] != k)
		i++;
	return q->fixed[i + 1]->ino;
}

static int inode_stat(struct fs_inode *in, struct stat *st,
		      const struct spool_msg_info *known)
{
	struct spool_queue_attr qa;
	int rc;

	memset(st, 0, sizeof *st);
	st->st_ino = in->ino;
	st->st_nlink = fs_kind_is_dir(in->kind) ? 2 : 1;
	st->st_blksize = 4096;
	if (!in->q) {
		stat_fixed(in->fs, st);
		st->st_mode = in->kind == FS_ROOT ? S_IFDIR | 0755
						  : S_IFREG | 0444;
		if (in->kind == FS_METRICS)
			stat_text(in, st);
		return 0;
	}
	rc = spool_queue_getattr(in->q->sq, &qa);
	if (rc < 0 && in->kind != FS_DRAFT && in->kind != FS_WRITE &&
	    in->kind != FS_DRAFTDIR)
		return rc;
	st->st_mode = entry_mode(in->kind, qa.mode);
	st->st_uid = qa.uid;
	st->st_gid = qa.gid;
	ms_to_ts(qa.ctime_ms, &st->st_mtim);
	st->st_atim = st->st_ctim = st->st_mtim;
	if (in->kind == FS_DRAFT)
		stat_draft(in->draft, S_IFREG, st);
	if (in->kind == FS_DRAFTDIR)
		stat_draft(in->draft, S_IFDIR, st);
	if (in->kind == FS_WRITE)
		stat_write(in, st);
	if (in->kind == FS_STATS || in->kind == FS_CONFIG)
		stat_text(in, st);
	/* Each lookup of next has its own inode (its xattrs answer for the
	 * message its open bound), but one st_ino per queue. */
	if (in->kind == FS_NEXT)
		st->st_ino = fixed_ino(in->q, FS_NEXT);
	if (in->kind == FS_MSG)
		return stat_msg(in, st, known);
	return 0;
}

int fs_inode_stat(struct fs_inode *in, struct stat *st)
{
	return inode_stat(in, st, NULL);
}

int fs_inode_entry_known(struct fs_inode *in,
			 const struct spool_msg_info *known,
			 struct fuse_entry_param *e)
{
	int rc;

	memset(e, 0, sizeof *e);
	rc = inode_stat(in, &e->attr, known);
	if (rc < 0)
		return rc;
	e->ino = in->ino;
	e->entry_timeout = fs_kind_timeout(in->kind);
	e->attr_timeout = fs_attr_timeout(in->kind);
	if (in->dynamic)
		fs_inode_ref(in);
	return 0;
}

int fs_inode_entry(struct fs_inode *in, struct fuse_entry_param *e)
{
	return fs_inode_entry_known(in, NULL, e);
}
