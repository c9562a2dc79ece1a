/*
 * dir.c - the namespace: lookup, mkdir, rmdir, unlink, rename, readdir.
 *
 * The root lists queues; a queue directory lists its control entries and
 * its drafts, never messages; peek/, delayed/ and leased/ list message ids
 * from the engine with a cursor kept in the directory handle, so a listing
 * streams any number of entries in order and stays correct while messages
 * come and go. Negative lookups are never cached (plain ENOENT replies).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

/* Answers req with in's entry, or with the error; frees an unused inode. */
static void reply_entry(fuse_req_t req, struct fs_inode *in)
{
	struct fuse_entry_param e;
	int rc = fs_inode_entry(in, &e);

	if (rc < 0) {
		pthread_mutex_lock(&fs.lock);
		fs_inode_maybe_free(in);
		pthread_mutex_unlock(&fs.lock);
		fuse_reply_err(req, -rc);
		return;
	}
	if (fuse_reply_entry(req, &e) == -ENOENT && in->dynamic)
		fs_inode_forget(in->ino, 1);
}

static int fixed_index(const char *name)
{
	int i;

	for (i = 0; i < FS_QFIXED; i++)
		if (strcmp(name, fs_qfixed_name[i]) == 0)
			return i;
	return -1;
}

/* fs.lock held. */
struct fs_inode *fs_draft_find(struct fs_queue *q, const char *name)
{
	struct fs_inode *in;

	for (in = q->drafts; in; in = in->dnext)
		if (strcmp(in->name, name) == 0)
			return in;
	return NULL;
}

/* fs.lock held. Removes a draft from its queue's list. */
void fs_draft_unlink(struct fs_inode *in)
{
	struct fs_inode **p = &in->q->drafts;

	while (*p && *p != in)
		p = &(*p)->dnext;
	if (*p)
		*p = in->dnext;
	in->linked = 0;
	fs_inode_maybe_free(in);
}

static enum spool_state dir_state(enum fs_kind kind)
{
	return kind == FS_PEEKDIR ? SPOOL_VISIBLE :
	       kind == FS_DELAYEDDIR ? SPOOL_DELAYED : SPOOL_LEASED;
}

/* An ack is allowed for a lease that ran out if nobody leased it since. */
static int state_listed(enum fs_kind dir, const struct spool_msg_info *info)
{
	if (dir == FS_LEASEDDIR && info->state == SPOOL_VISIBLE)
		return info->receives > 0;
	return info->state == dir_state(dir);
}

static void lookup_msg(fuse_req_t req, struct fs_inode *dir,
		       const char *name)
{
	struct spool_msg_info info;
	struct fs_inode *in;
	uint64_t id;

	if (fs_msg_parse(name, &id) < 0 ||
	    spool_msg_stat(dir->q->sq, id, &info) < 0 ||
	    !state_listed(dir->kind, &info)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	in = fs_inode_new(FS_MSG, dir->q);
	if (!in) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	in->state = dir_state(dir->kind);
	in->msg_id = id;
	reply_entry(req, in);
}

static void lookup_qdir(fuse_req_t req, struct fs_queue *q, const char *name)
{
	struct fs_inode *in = NULL;
	int i = fixed_index(name);

	if (i >= 0 && fs_qfixed_kind[i] == FS_NEXT)
		in = fs_inode_new(FS_NEXT, q);
	else if (i >= 0)
		in = q->fixed[i + 1];
	else if (name[0] == '.') {
		pthread_mutex_lock(&fs.lock);
		in = fs_draft_find(q, name);
		if (in)
			in->nlookup++; /* pins it until reply_entry's ref */
		pthread_mutex_unlock(&fs.lock);
		if (in) {
			reply_entry(req, in);
			fs_inode_forget(in->ino, 1);
			return;
		}
	}
	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	reply_entry(req, in);
}

static void lookup_root(fuse_req_t req, const char *name)
{
	struct fs_queue *q;
	int rc;

	if (strcmp(name, ".metrics") == 0) {
		reply_entry(req, fs.metrics);
		return;
	}
	if (!spool_name_valid(name, strlen(name))) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	rc = fs_queue_get(name, &q);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	reply_entry(req, q->fixed[0]);
}

void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_inode *dir = fs_inode_get(parent);

	if (!dir) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	switch (dir->kind) {
	case FS_ROOT:
		lookup_root(req, name);
		break;
	case FS_QDIR:
		lookup_qdir(req, dir->q, name);
		break;
	case FS_PEEKDIR:
	case FS_DELAYEDDIR:
	case FS_LEASEDDIR:
		lookup_msg(req, dir, name);
		break;
	default:
		fuse_reply_err(req, ENOTDIR);
	}
}

void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
	      mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct spool_queue_attr attr = {
		.uid = ctx->uid, .gid = ctx->gid, .mode = mode & 07777,
	};
	struct fs_queue *q;
	int rc;

	if (parent != FS_ROOT_INO) {
		fuse_reply_err(req, EPERM);
		return;
	}
	rc = spool_queue_create(fs.db, name, &attr);
	if (rc == 0)
		rc = fs_queue_get(name, &q);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	reply_entry(req, q->fixed[0]);
}

void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_queue *q;
	int rc;

	if (parent != FS_ROOT_INO) {
		fuse_reply_err(req, EPERM);
		return;
	}
	rc = fs_queue_get(name, &q);
	if (rc < 0)
		goto out;
	pthread_mutex_lock(&fs.lock);
	rc = q->drafts ? -ENOTEMPTY : 0;
	pthread_mutex_unlock(&fs.lock);
	if (rc == 0)
		rc = spool_queue_delete(fs.db, name);
	if (rc == 0)
		fs_queue_kill(q);
out:
	fuse_reply_err(req, -rc);
}

static int unlink_msg(struct fs_inode *dir, const char *name)
{
	uint64_t id;

	if (fs_msg_parse(name, &id) < 0)
		return -ENOENT;
	if (dir->kind == FS_LEASEDDIR)
		return spool_ack(dir->q->sq, id);
	return spool_delete(dir->q->sq, id, dir_state(dir->kind));
}

static int unlink_qdir(struct fs_queue *q, const char *name)
{
	struct fs_inode *in;

	if (fixed_index(name) >= 0)
		return -EPERM;
	pthread_mutex_lock(&fs.lock);
	in = name[0] == '.' ? fs_draft_find(q, name) : NULL;
	if (in)
		fs_draft_unlink(in);
	pthread_mutex_unlock(&fs.lock);
	return in ? 0 : -ENOENT;
}

void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_inode *dir = fs_inode_get(parent);
	int rc = -EPERM;

	if (!dir)
		rc = -ENOENT;
	else if (dir->kind == FS_QDIR)
		rc = unlink_qdir(dir->q, name);
	else if (dir->kind == FS_PEEKDIR || dir->kind == FS_DELAYEDDIR ||
		 dir->kind == FS_LEASEDDIR)
		rc = unlink_msg(dir, name);
	fuse_reply_err(req, -rc);
}

/* ------------------------------------------------------------ rename */

/* Renames draft .name to another draft name in the same queue. */
static int rename_draft_draft(struct fs_queue *q, const char *name,
			      const char *newname)
{
	struct fs_inode *in, *old;
	char *copy = strdup(newname);
	int rc = -ENOENT;

	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&fs.lock);
	in = fs_draft_find(q, name);
	if (in) {
		old = fs_draft_find(q, newname);
		if (old && old != in)
			fs_draft_unlink(old);
		free(in->name);
		in->name = copy;
		copy = NULL;
		rc = 0;
	}
	pthread_mutex_unlock(&fs.lock);
	free(copy);
	return rc;
}

/* Renaming a draft to a name without the dot pushes it. */
static int rename_draft(struct fs_queue *q, const char *name,
			struct fs_inode *ndir, const char *newname)
{
	struct fs_inode *in;
	int rc;

	if (ndir->kind != FS_QDIR)
		return -EPERM;
	if (newname[0] == '.')
		return ndir->q == q ? rename_draft_draft(q, name, newname)
				    : -EXDEV;
	if (fixed_index(newname) >= 0)
		return -EPERM;
	pthread_mutex_lock(&fs.lock);
	in = fs_draft_find(q, name);
	if (in)
		in->nlookup++; /* pins it while pushing */
	pthread_mutex_unlock(&fs.lock);
	if (!in)
		return -ENOENT;
	rc = fs_draft_push(in, ndir->q, newname);
	pthread_mutex_lock(&fs.lock);
	in->nlookup--;
	if (rc == 0 && in->linked)
		fs_draft_unlink(in);
	else
		fs_inode_maybe_free(in);
	pthread_mutex_unlock(&fs.lock);
	return rc;
}

/* A message already where it is asked to go: fine if it is there. */
static int msg_stays(struct fs_queue *q, uint64_t id, enum fs_kind dir)
{
	struct spool_msg_info info;
	int rc = spool_msg_stat(q->sq, id, &info);

	if (rc < 0)
		return rc;
	return state_listed(dir, &info) ? 0 : -ENOENT;
}

static int rename_msg(struct fs_inode *dir, const char *name,
		      struct fs_inode *ndir, const char *newname)
{
	struct fs_queue *q = dir->q, *nq = ndir->q;
	enum spool_state s = dir_state(dir->kind);
	uint64_t id;

	if (fs_msg_parse(name, &id) < 0)
		return -ENOENT;
	if (strcmp(name, newname) != 0)
		return -EINVAL;
	if (dir->kind == ndir->kind && q == nq)
		return msg_stays(q, id, dir->kind);
	if (ndir->kind == FS_PEEKDIR && q != nq)
		return spool_move(q->sq, id, s, nq->sq);
	if (ndir->kind == FS_PEEKDIR && s == SPOOL_LEASED)
		return spool_release(q->sq, id, 0);
	if (ndir->kind == FS_PEEKDIR)
		return spool_move(q->sq, id, s, q->sq);
	if (ndir->kind == FS_LEASEDDIR && q == nq && s == SPOOL_VISIBLE)
		return spool_lease_id(q->sq, id, NULL);
	return -EPERM;
}

static int is_msgdir(const struct fs_inode *in)
{
	return in->kind == FS_PEEKDIR || in->kind == FS_DELAYEDDIR ||
	       in->kind == FS_LEASEDDIR;
}

void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct fs_inode *dir = fs_inode_get(parent);
	struct fs_inode *ndir = fs_inode_get(newparent);
	int rc = -EPERM;

	if (!dir || !ndir)
		rc = -ENOENT;
	else if (flags & RENAME_EXCHANGE)
		rc = -EINVAL;
	else if (dir->kind == FS_QDIR && name[0] == '.')
		rc = rename_draft(dir->q, name, ndir, newname);
	else if (is_msgdir(dir) && is_msgdir(ndir))
		rc = rename_msg(dir, name, ndir, newname);
	fuse_reply_err(req, -rc);
}

/* ----------------------------------------------------------- readdir */

#define DIR_BATCH 256

struct fs_dirh {
	struct fs_inode *in;
	off_t pos;                  /* offset of the last entry given */
	char last[SPOOL_NAME_MAX + 1]; /* root: last queue name given */
	char **names;               /* queue dir: snapshot at offset 0 */
	size_t nnames;
	struct spool_cursor cur;    /* message dirs */
	uint64_t ids[DIR_BATCH];
	size_t nids, idx;
	struct fs_link link;        /* in the set of open dirs */
};

static struct fs_set dirs = FS_SET_INIT;

void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_inode *in = fs_inode_get(ino);
	struct fs_dirh *h;

	if (!in || !fs_kind_is_dir(in->kind)) {
		fuse_reply_err(req, in ? ENOTDIR : ENOENT);
		return;
	}
	h = calloc(1, sizeof *h);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->in = in;
	fi->fh = (uintptr_t)h;
	fs_set_add(&dirs, &h->link);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		fs_set_remove(&dirs, &h->link);
		free(h);
	}
}

static void names_free(struct fs_dirh *h)
{
	size_t i;

	for (i = 0; i < h->nnames; i++)
		free(h->names[i]);
	free(h->names);
	h->names = NULL;
	h->nnames = 0;
}

void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_dirh *h = (struct fs_dirh *)(uintptr_t)fi->fh;

	(void)ino;
	fs_set_remove(&dirs, &h->link);
	names_free(h);
	free(h);
	fuse_reply_err(req, 0);
}

void fs_dir_free_all(void)
{
	struct fs_link *l;

	while ((l = fs_set_pop(&dirs))) {
		struct fs_dirh *h = (struct fs_dirh *)((char *)l -
					offsetof(struct fs_dirh, link));

		names_free(h);
		free(h);
	}
}

/* Output being built for one readdir reply. */
struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, used;
};

/* Adds one entry at offset off; returns 0 when it did not fit. */
static int dir_add(struct dirbuf *b, const char *name, fuse_ino_t ino,
		   int isdir, off_t off)
{
	struct stat st = { .st_ino = ino, .st_mode = isdir ? S_IFDIR
							    : S_IFREG };
	size_t n = fuse_add_direntry(b->req, b->buf + b->used,
				     b->size - b->used, name, &st, off);

	if (n > b->size - b->used)
		return 0;
	b->used += n;
	return 1;
}

/* The qdir snapshot: fixed entries then drafts. */
static int qdir_snapshot(struct fs_dirh *h)
{
	struct fs_inode *d;
	size_t n = 0, i = 0;

	names_free(h);
	pthread_mutex_lock(&fs.lock);
	for (d = h->in->q->drafts; d; d = d->dnext)
		n++;
	h->names = calloc(n + 1, sizeof *h->names);
	for (d = h->in->q->drafts; h->names && d; d = d->dnext)
		h->names[i++] = strdup(d->name);
	pthread_mutex_unlock(&fs.lock);
	if (!h->names)
		return -ENOMEM;
	h->nnames = i;
	return 0;
}

static void readdir_qdir(struct fs_dirh *h, struct dirbuf *b, off_t off)
{
	struct fs_queue *q = h->in->q;
	off_t i;

	if (off == 0 && qdir_snapshot(h) < 0)
		return;
	for (i = off; i < 2 + FS_QFIXED + (off_t)h->nnames; i++) {
		const char *name;
		fuse_ino_t ino;
		int isdir = 0;

		if (i < 2) {
			name = i == 0 ? "." : "..";
			ino = i == 0 ? q->base : FS_ROOT_INO;
			isdir = 1;
		} else if (i < 2 + FS_QFIXED) {
			name = fs_qfixed_name[i - 2];
			ino = q->base + i - 1;
			isdir = fs_kind_is_dir(fs_qfixed_kind[i - 2]);
		} else {
			name = h->names[i - 2 - FS_QFIXED];
			ino = FS_METRICS_INO + 1; /* any; a lookup tells */
		}
		if (!dir_add(b, name, ino, isdir, i + 1))
			break;
	}
}

/* Root and message dirs resume from the handle's own position. */
static void readdir_reset(struct fs_dirh *h)
{
	h->pos = 0;
	h->last[0] = '\0';
	memset(&h->cur, 0, sizeof h->cur);
	h->nids = h->idx = 0;
}

static int dots(struct fs_dirh *h, struct dirbuf *b)
{
	fuse_ino_t self = h->in->ino;

	while (h->pos < 2) {
		if (!dir_add(b, h->pos == 0 ? "." : "..",
			     h->pos == 0 ? self : FS_ROOT_INO, 1, h->pos + 1))
			return 0;
		h->pos++;
	}
	return 1;
}

static void readdir_root(struct fs_dirh *h, struct dirbuf *b)
{
	char name[SPOOL_NAME_MAX + 1];

	if (!dots(h, b))
		return;
	if (h->pos == 2) {
		if (!dir_add(b, ".metrics", FS_METRICS_INO, 0, 3))
			return;
		h->pos = 3;
	}
	while (spool_queue_next(fs.db, h->last, name) == 0) {
		if (!dir_add(b, name, FS_FIRST_INO, 1, h->pos + 1))
			return;
		h->pos++;
		memcpy(h->last, name, sizeof name);
	}
}

static void readdir_msgs(struct fs_dirh *h, struct dirbuf *b)
{
	enum spool_state s = dir_state(h->in->kind);
	char text[SPOOL_ID_LEN + 1];
	ssize_t n;

	if (!dots(h, b))
		return;
	for (;;) {
		if (h->idx == h->nids) {
			n = spool_list(h->in->q->sq, s, &h->cur, h->ids,
				       DIR_BATCH);
			if (n <= 0)
				return;
			h->nids = n;
			h->idx = 0;
		}
		spool_id_format(h->ids[h->idx], text);
		if (!dir_add(b, text, h->ids[h->idx], 0, h->pos + 1))
			return;
		h->pos++;
		h->idx++;
	}
}

void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct fs_dirh *h = (struct fs_dirh *)(uintptr_t)fi->fh;
	struct dirbuf b = { .req = req, .size = size };

	(void)ino;
	b.buf = malloc(size);
	if (!b.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off == 0 || off < h->pos)
		readdir_reset(h);
	if (h->in->kind == FS_QDIR)
		readdir_qdir(h, &b, off);
	else if (h->in->kind == FS_ROOT)
		readdir_root(h, &b);
	else
		readdir_msgs(h, &b);
	fuse_reply_buf(req, b.buf, b.used);
	free(b.buf);
}
