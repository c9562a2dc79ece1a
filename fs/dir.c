/*
 * dir.c - the namespace: lookup, mkdir, rmdir, unlink, rename, readdir.
 *
 * The root lists queues; a queue directory lists what can be read without
 * taking or waiting (peek/, delayed/, leased/, config, stats) and its
 * drafts, never messages, and finds the other control entries and the
 * names its caller is writing or just pushed (names.c) by name only. A
 * draft directory (.name in a queue) lists its drafts. peek/, delayed/ and
 * leased/ list message ids from the engine with a cursor kept in the
 * directory handle, so a listing streams any number of entries in order and
 * stays correct while messages come and go; READDIRPLUS gives their entries
 * with attributes, so `ls -l` needs no lookups (docs/decisions.md).
 * Negative lookups are never cached (plain ENOENT replies).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

/* Answers req with in's entry (a message's from known, if not NULL), or
 * with the error; frees an unused inode. */
static void reply_entry_known(fuse_req_t req, struct fs_inode *in,
			      const struct spool_msg_info *known)
{
	struct fs_ctx *fs = in->fs;
	struct fuse_entry_param e;
	int rc = fs_inode_entry_known(in, known, &e);

	if (rc < 0) {
		pthread_mutex_lock(&fs->lock);
		fs_inode_maybe_free(in);
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, -rc);
		return;
	}
	if (fuse_reply_entry(req, &e) == -ENOENT && in->dynamic)
		fs_inode_forget(in->fs, in->ino, 1);
}

static void reply_entry(fuse_req_t req, struct fs_inode *in)
{
	reply_entry_known(req, in, NULL);
}

static int fixed_index(const char *name)
{
	int i;

	for (i = 0; i < FS_QFIXED; i++)
		if (strcmp(name, fs_qfixed_name[i]) == 0)
			return i;
	return -1;
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

/* Replies with a pinned inode (messages, drafts, names), then drops the
 * pin. */
static void reply_pinned(fuse_req_t req, struct fs_inode *in)
{
	reply_entry(req, in);
	fs_inode_forget(in->fs, in->ino, 1);
}

static void lookup_msg(fuse_req_t req, struct fs_inode *dir,
		       const char *name)
{
	struct spool_msg_info info;
	struct fs_inode *in;
	uint64_t id;
	int rc = 0;

	/* the store's own errors (EIO: Redis unreachable) are not "no such
	 * message" */
	if (fs_msg_parse(name, &id) < 0 ||
	    ((rc = spool_msg_stat(dir->q->sq, id, &info)) < 0 &&
	     rc != -EIO) || (rc == 0 && !state_listed(dir->kind, &info))) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	in = fs_msg_inode(dir->q, dir_state(dir->kind), id);
	if (!in) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	reply_entry_known(req, in, &info);
	fs_inode_forget(in->fs, in->ino, 1);    /* the pin */
}

/* A draft, or a draft dir's draft. */
static void lookup_draft(fuse_req_t req, struct fs_inode *dir,
			 const char *name)
{
	struct fs_ctx *fs = dir->fs;
	struct fs_inode *in;

	pthread_mutex_lock(&fs->lock);
	in = fs_draft_find(dir, name);
	if (in)
		in->nlookup++; /* pins it until reply_entry's ref */
	pthread_mutex_unlock(&fs->lock);
	if (in)
		reply_pinned(req, in);
	else
		fuse_reply_err(req, ENOENT);
}

static void lookup_qdir(fuse_req_t req, struct fs_inode *dir,
			const char *name)
{
	struct fs_queue *q = dir->q;
	struct fs_inode *in = NULL;
	int i = fixed_index(name);

	if (i >= 0 && fs_qfixed_kind[i] == FS_NEXT) {
		if ((in = fs_next_node(q)))
			reply_pinned(req, in);
		else
			fuse_reply_err(req, ENOMEM);
		return;
	} else if (i >= 0)
		in = q->fixed[i + 1];
	else if (name[0] == '.') {
		lookup_draft(req, dir, name);
		return;
	} else if ((in = fs_names_find(q, name, req))) {
		reply_pinned(req, in);
		return;
	}
	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	reply_entry(req, in);
}

static void lookup_root(fuse_req_t req, const char *name)
{
	struct fs_ctx *fs = fs_of(req);
	struct fs_queue *q;
	int rc;

	if (strcmp(name, ".metrics") == 0) {
		reply_entry(req, fs->metrics);
		return;
	}
	if (!spool_name_valid(name, strlen(name))) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	rc = fs_queue_get(fs, name, &q);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	reply_entry(req, q->fixed[0]);
}

void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_inode *dir = fs_inode_get(fs_of(req), parent);

	atomic_fetch_add_explicit(&fs_of(req)->lookups, 1,
				  memory_order_relaxed);

	if (!dir) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (strlen(name) > SPOOL_MSG_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	switch (dir->kind) {
	case FS_ROOT:
		lookup_root(req, name);
		break;
	case FS_QDIR:
		lookup_qdir(req, dir, name);
		break;
	case FS_DRAFTDIR:
		lookup_draft(req, dir, name);
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

/* mkdir .name in a queue (rsync --delay-updates makes .~tmp~). */
static void mkdir_draftdir(fuse_req_t req, struct fs_inode *dir,
			   const char *name, mode_t mode)
{
	struct fs_ctx *fs = dir->fs;
	struct fs_inode *in;

	if (strlen(name) > SPOOL_MSG_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	in = fs_draft_find(dir, name);
	pthread_mutex_unlock(&fs->lock);
	if (in) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	in = fs_draft_make(dir, FS_DRAFTDIR, name, mode, fuse_req_ctx(req));
	if (!in) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	reply_entry(req, in);
}

void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
	      mode_t mode)
{
	struct fs_ctx *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct spool_queue_attr attr = {
		.uid = ctx->uid, .gid = ctx->gid, .mode = mode & 07777,
	};
	struct fs_inode *dir;
	struct fs_queue *q;
	int rc;

	if (parent != FS_ROOT_INO) {
		dir = fs_inode_get(fs, parent);
		if (dir && dir->kind == FS_QDIR && name[0] == '.')
			mkdir_draftdir(req, dir, name, mode);
		else
			fuse_reply_err(req, dir ? EPERM : ENOENT);
		return;
	}
	rc = spool_queue_create(fs->db, name, &attr);
	if (rc == 0)
		rc = fs_queue_get(fs, name, &q);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	reply_entry(req, q->fixed[0]);
}

/* rmdir inside a queue: peek/, delayed/ and leased/ "go" once empty (they
 * are part of the queue: rm -rf of a queue ends with them); a draft dir
 * goes once empty. */
static int rmdir_qdir(struct fs_inode *dir, const char *name)
{
	struct fs_ctx *fs = dir->fs;
	struct spool_stats st;
	struct fs_inode *in;
	int i = fixed_index(name), rc;

	if (i >= 0 && fs_kind_is_dir(fs_qfixed_kind[i])) {
		rc = spool_stats_get(dir->q->sq, &st);
		if (rc < 0)
			return rc;
		switch (fs_qfixed_kind[i]) {
		case FS_PEEKDIR:
			return st.visible ? -ENOTEMPTY : 0;
		case FS_DELAYEDDIR:
			return st.delayed ? -ENOTEMPTY : 0;
		default:
			return st.leased ? -ENOTEMPTY : 0;
		}
	}
	if (i >= 0)
		return -ENOTDIR;
	pthread_mutex_lock(&fs->lock);
	in = fs_is_draft_name(dir, name) ? fs_draft_find(dir, name) : NULL;
	rc = !in ? -ENOENT : in->kind != FS_DRAFTDIR ? -ENOTDIR :
	     in->children ? -ENOTEMPTY : 0;
	if (rc == 0)
		fs_draft_unlink(in);
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_ctx *fs = fs_of(req);
	struct fs_inode *dir;
	struct fs_queue *q;
	int rc;

	if (parent != FS_ROOT_INO) {
		dir = fs_inode_get(fs, parent);
		rc = !dir ? -ENOENT : dir->kind == FS_QDIR ?
		     rmdir_qdir(dir, name) : -EPERM;
		goto out;
	}
	rc = fs_queue_get(fs, name, &q);
	if (rc < 0)
		goto out;
	pthread_mutex_lock(&fs->lock);
	rc = q->drafts ? -ENOTEMPTY : 0;
	pthread_mutex_unlock(&fs->lock);
	if (rc == 0)
		rc = spool_queue_delete(fs->db, name);
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

/* unlink of stats or config: it "goes" (0, nothing changes) once the
 * queue holds no message and no draft, as rm -rf of the queue reaches them
 * after emptying peek/, delayed/, leased/ and the drafts (they are listed
 * last); until then EPERM. They go with the queue at its rmdir. */
static int queue_emptied(struct fs_queue *q)
{
	struct fs_ctx *fs = q->fs;
	struct spool_stats st;
	int rc = spool_stats_get(q->sq, &st), drafts;

	if (rc < 0)
		return rc;
	pthread_mutex_lock(&fs->lock);
	drafts = q->drafts != NULL;
	pthread_mutex_unlock(&fs->lock);
	return drafts || st.visible + st.delayed + st.leased + st.corrupt ?
	       -EPERM : 0;
}

/*
 * unlink in a queue or draft dir: drafts; stats and config (above); the
 * other control entries are EPERM. A name the caller just pushed is
 * forgotten (the message stays pushed).
 */
static int unlink_qdir(fuse_req_t req, struct fs_inode *dir,
		       const char *name)
{
	struct fs_ctx *fs = dir->fs;
	struct fs_inode *in;
	int i = dir->kind == FS_QDIR ? fixed_index(name) : -1, rc;

	if (i >= 0)
		return fs_qfixed_kind[i] == FS_STATS ||
		       fs_qfixed_kind[i] == FS_CONFIG ? queue_emptied(dir->q) :
		       fs_kind_is_dir(fs_qfixed_kind[i]) ? -EISDIR : -EPERM;
	if (!fs_is_draft_name(dir, name)) {
		in = fs_names_find(dir->q, name, req);
		if (!in)
			return -ENOENT;
		pthread_mutex_lock(&fs->lock);
		fs_names_drop(in);
		pthread_mutex_unlock(&fs->lock);
		fs_inode_forget(in->fs, in->ino, 1);
		return 0;
	}
	pthread_mutex_lock(&fs->lock);
	in = fs_draft_find(dir, name);
	rc = !in ? -ENOENT : in->kind == FS_DRAFTDIR ? -EISDIR : 0;
	if (rc == 0)
		fs_draft_unlink(in);
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_inode *dir = fs_inode_get(fs_of(req), parent);
	int rc = -EPERM;

	if (!dir)
		rc = -ENOENT;
	else if (dir->kind == FS_QDIR || dir->kind == FS_DRAFTDIR)
		rc = unlink_qdir(req, dir, name);
	else if (dir->kind == FS_PEEKDIR || dir->kind == FS_DELAYEDDIR ||
		 dir->kind == FS_LEASEDDIR)
		rc = unlink_msg(dir, name);
	fuse_reply_err(req, -rc);
}

/* ------------------------------------------------------------ rename */

/* Renames a draft to another draft name (in the queue or a draft dir of
 * the same queue), replacing a draft of that name. */
static int rename_draft_draft(struct fs_inode *dir, const char *name,
			      struct fs_inode *ndir, const char *newname)
{
	struct fs_ctx *fs = dir->fs;
	struct fs_inode *in, *old;
	char *copy;
	int rc = -ENOENT;

	if (ndir->q != dir->q)
		return -EXDEV;
	if (!(copy = strdup(newname)))
		return -ENOMEM;
	pthread_mutex_lock(&fs->lock);
	in = fs_draft_find(dir, name);
	old = in ? fs_draft_find(ndir, newname) : NULL;
	if (in && old && old != in && old->kind == FS_DRAFTDIR)
		rc = -EISDIR;
	else if (in && in->kind == FS_DRAFTDIR && ndir->kind == FS_DRAFTDIR)
		rc = -EPERM; /* one level of draft dirs */
	else if (in) {
		if (old && old != in)
			fs_draft_unlink(old);
		fs_draft_detach(in);
		free(in->name);
		in->name = copy;
		copy = NULL;
		fs_draft_link(ndir, in);
		rc = 0;
	}
	pthread_mutex_unlock(&fs->lock);
	free(copy);
	return rc;
}

/* Renaming a draft to a name of the queue without the dot pushes it. */
static int rename_draft(struct fs_inode *dir, const char *name,
			struct fs_inode *ndir, const char *newname)
{
	struct fs_ctx *fs = dir->fs;
	struct fs_inode *in;
	int rc;

	if (ndir->kind != FS_QDIR && ndir->kind != FS_DRAFTDIR)
		return -EPERM;
	if (fs_is_draft_name(ndir, newname))
		return rename_draft_draft(dir, name, ndir, newname);
	if (fixed_index(newname) >= 0)
		return -EPERM;
	pthread_mutex_lock(&fs->lock);
	in = fs_draft_find(dir, name);
	rc = !in ? -ENOENT : in->kind == FS_DRAFTDIR ? -EPERM : 0;
	if (rc == 0)
		in->nlookup++; /* pins it while pushing */
	pthread_mutex_unlock(&fs->lock);
	if (rc < 0)
		return rc;
	rc = fs_draft_push(in, ndir->q, newname);
	pthread_mutex_lock(&fs->lock);
	in->nlookup--;
	if (rc == 0 && in->linked)
		fs_draft_unlink(in);
	else
		fs_inode_maybe_free(in);
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

/* Reads message id's body into a new draft's buffer (not linked yet):
 * only while nobody took it (visible or delayed, never received). */
static int unpush_body(struct fs_queue *q, uint64_t id, struct fs_draft *d)
{
	struct spool_msg_info info;
	ssize_t n;
	int rc = spool_msg_stat(q->sq, id, &info);

	if (rc < 0 || info.receives > 0 || info.state == SPOOL_LEASED)
		return -EBUSY;
	rc = fs_buf_put(&d->body, "", 0, info.size);
	if (rc < 0)
		return rc;
	n = spool_msg_read(q->sq, id, 0, d->body.data, info.size);
	if (n != (ssize_t)info.size)
		return n < 0 ? (int)n : -EBUSY;
	return spool_delete(q->sq, id, SPOOL_VISIBLE | SPOOL_DELAYED) < 0 ?
	       -EBUSY : 0;
}

/*
 * sed -i and perl -pi on a draft write a temp file without a dot next to
 * it (pushed at its close), then rename it over the draft. The pusher's
 * rename of a just-pushed name to a draft name takes the message back, as
 * long as nobody received it, and makes it that draft (its body; the
 * replaced draft's mode). Otherwise EBUSY: the message stays pushed.
 */
static int unpush_to_draft(fuse_req_t req, struct fs_inode *in,
			   struct fs_inode *dir, const char *newname)
{
	struct fs_ctx *fs = in->fs;
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fs_inode *old, *d;
	mode_t mode = 0644;
	uint64_t id;
	int rc;

	pthread_mutex_lock(&fs->lock);
	id = in->writers ? 0 : in->pushed_id;
	old = fs_draft_find(dir, newname);
	if (old && old->kind == FS_DRAFT)
		mode = old->draft->mode;
	rc = !id ? -EBUSY : old && old->kind == FS_DRAFTDIR ? -EISDIR : 0;
	pthread_mutex_unlock(&fs->lock);
	if (rc < 0)
		return rc;
	d = fs_inode_new(FS_DRAFT, dir->q);
	if (!d)
		return -ENOMEM;
	d->name = strdup(newname);
	d->draft = fs_draft_new(mode, ctx->uid, ctx->gid);
	rc = !d->name || !d->draft ? -ENOMEM : unpush_body(dir->q, id, d->draft);
	pthread_mutex_lock(&fs->lock);
	if (rc == 0) {
		old = fs_draft_find(dir, newname);
		if (old)
			fs_draft_unlink(old);
		fs_draft_link(dir, d);
		fs_names_drop(in);
		in->pushed_id = 0;
	} else {
		fs_inode_maybe_free(d);
	}
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

/*
 * Renaming a name the caller is writing or just pushed (temp-file writers:
 * mkstemp, NamedTemporaryFile, then rename to the final name): within the
 * queue only. Being written, its message will carry the new name; pushed,
 * its message's user.spool.name changes while it is still queued.
 */
static int rename_named(fuse_req_t req, struct fs_inode *dir,
			const char *name, struct fs_inode *ndir,
			const char *newname)
{
	struct fs_ctx *fs = dir->fs;
	struct fs_inode *in;
	uint64_t id;
	int rc;

	if (ndir->kind != FS_QDIR || ndir->q != dir->q)
		return -EXDEV;
	if (fixed_index(newname) >= 0)
		return -EPERM;
	in = fs_names_find(dir->q, name, req);
	if (!in)
		return -ENOENT;
	if (newname[0] == '.') {
		rc = unpush_to_draft(req, in, ndir, newname);
		fs_inode_forget(in->fs, in->ino, 1);
		return rc;
	}
	pthread_mutex_lock(&fs->lock);
	rc = fs_names_rename(in, newname);
	id = in->writers ? 0 : in->pushed_id;
	pthread_mutex_unlock(&fs->lock);
	if (rc == 0 && id)
		spool_msg_rename(dir->q->sq, id, newname); /* gone: no matter */
	fs_inode_forget(in->fs, in->ino, 1);
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
	struct fs_inode *dir = fs_inode_get(fs_of(req), parent);
	struct fs_inode *ndir = fs_inode_get(fs_of(req), newparent);
	uint64_t id;
	int rc = -EPERM;

	if (!dir || !ndir)
		rc = -ENOENT;
	else if (flags & RENAME_EXCHANGE)
		rc = -EINVAL;
	else if (strlen(newname) > SPOOL_MSG_NAME_MAX)
		rc = -ENAMETOOLONG;
	else if ((dir->kind == FS_QDIR || dir->kind == FS_DRAFTDIR) &&
		 fs_is_draft_name(dir, name))
		rc = rename_draft(dir, name, ndir, newname);
	else if (dir->kind == FS_QDIR && fixed_index(name) < 0)
		rc = rename_named(req, dir, name, ndir, newname);
	else if (is_msgdir(dir) && is_msgdir(ndir)) {
		rc = rename_msg(dir, name, ndir, newname);
		/* the kernel moves its entry, and the inode with it */
		if (rc == 0 && fs_msg_parse(name, &id) == 0)
			fs_msg_moved(dir->q, dir_state(dir->kind), id, ndir->q,
				     dir_state(ndir->kind));
	}
	fuse_reply_err(req, -rc);
}

/* ----------------------------------------------------------- readdir */

#define DIR_BATCH 256

struct fs_dirh {
	struct fs_inode *in;
	off_t pos;                  /* offset of the last entry given */
	char last[SPOOL_NAME_MAX + 1]; /* root: last queue name given */
	char **names;               /* queue, draft dir: drafts at offset 0 */
	fuse_ino_t *inos;
	char *isdir;
	size_t nnames;
	struct spool_cursor cur;    /* message dirs */
	uint64_t ids[DIR_BATCH];
	size_t nids, idx;
	struct fs_link link;        /* in the set of open dirs */
};


void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_inode *in = fs_inode_get(fs_of(req), ino);
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
	fs_set_add(&fs_of(req)->dirs, &h->link);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		fs_set_remove(&fs_of(req)->dirs, &h->link);
		free(h);
	}
}

static void names_free(struct fs_dirh *h)
{
	size_t i;

	for (i = 0; i < h->nnames; i++)
		free(h->names[i]);
	free(h->names);
	free(h->inos);
	free(h->isdir);
	h->names = NULL;
	h->inos = NULL;
	h->isdir = NULL;
	h->nnames = 0;
}

void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_dirh *h = (struct fs_dirh *)(uintptr_t)fi->fh;

	(void)ino;
	fs_set_remove(&fs_of(req)->dirs, &h->link);
	names_free(h);
	free(h);
	fuse_reply_err(req, 0);
}

void fs_dir_free_all(struct fs_ctx *fs)
{
	struct fs_link *l;

	while ((l = fs_set_pop(&fs->dirs))) {
		struct fs_dirh *h = (struct fs_dirh *)((char *)l -
					offsetof(struct fs_dirh, link));

		names_free(h);
		free(h);
	}
}

/* No READDIRPLUS entry is smaller: struct fuse_entry_out (128 bytes) and
 * the dirent's header (24), before the name. */
#define DIRENTPLUS_MIN 152

/* Output being built for one readdir or readdirplus reply. */
struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, used;
	int plus;                   /* READDIRPLUS */
	int keep;                   /* plus, of messages the kernel keeps */
	fuse_ino_t *refs;           /* plus: inodes given with a reference */
	size_t nrefs;
};

/* Adds e's entry at offset off; returns 0 when it did not fit. */
static int dir_put(struct dirbuf *b, const char *name,
		   const struct fuse_entry_param *e, off_t off)
{
	size_t room = b->size - b->used, n;

	if (b->plus)
		n = fuse_add_direntry_plus(b->req, b->buf + b->used, room,
					   name, e, off);
	else
		n = fuse_add_direntry(b->req, b->buf + b->used, room, name,
				      &e->attr, off);
	if (n > room)
		return 0;
	b->used += n;
	return 1;
}

/*
 * Adds one entry with its type only. In a READDIRPLUS reply its node id
 * is 0: the kernel makes no inode for it and looks it up by name when
 * asked, as after a plain READDIR (root, queue and draft dirs, dots).
 */
static int dir_add(struct dirbuf *b, const char *name, fuse_ino_t ino,
		   int isdir, off_t off)
{
	struct fuse_entry_param e = {
		.attr = { .st_ino = ino, .st_mode = isdir ? S_IFDIR : S_IFREG },
	};

	return dir_put(b, name, &e, off);
}

/* The drafts of a queue or draft dir, at offset 0. */
static int drafts_snapshot(struct fs_dirh *h)
{
	struct fs_ctx *fs = h->in->fs;
	struct fs_inode *d;
	size_t n = 0;
	int rc = 0;

	names_free(h);
	pthread_mutex_lock(&fs->lock);
	for (d = *fs_drafts_of(h->in); d; d = d->dnext)
		n++;
	h->names = calloc(n + 1, sizeof *h->names);
	h->inos = calloc(n + 1, sizeof *h->inos);
	h->isdir = calloc(n + 1, 1);
	if (!h->names || !h->inos || !h->isdir)
		rc = -ENOMEM;
	for (d = *fs_drafts_of(h->in); rc == 0 && d; d = d->dnext) {
		h->inos[h->nnames] = d->ino;
		h->isdir[h->nnames] = d->kind == FS_DRAFTDIR;
		h->names[h->nnames] = strdup(d->name);
		if (!h->names[h->nnames++])
			rc = -ENOMEM;
	}
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

/* A queue dir lists ., .., its listed directories (peek/, delayed/,
 * leased/), its drafts, then its listed files (config, stats): rm -rf
 * reaches stats and config once the rest is gone. A draft dir lists .,
 * .. and its drafts. Offsets count in that order. */
static void readdir_qdir(struct fs_dirh *h, struct dirbuf *b, off_t off)
{
	struct fs_queue *q = h->in->q;
	int dirs[FS_QFIXED], files[FS_QFIXED], nd = 0, nf = 0, j;
	off_t i, nn;

	if (off == 0 && drafts_snapshot(h) < 0)
		return;
	for (j = 0; h->in->kind == FS_QDIR && j < FS_QFIXED; j++) {
		if (!fs_qfixed_listed(j))
			continue;
		if (fs_kind_is_dir(fs_qfixed_kind[j]))
			dirs[nd++] = j;
		else
			files[nf++] = j;
	}
	nn = (off_t)h->nnames;
	for (i = off; i < 2 + nd + nn + nf; i++) {
		const char *name;
		fuse_ino_t ino;
		int isdir = 1;

		if (i < 2) {
			name = i == 0 ? "." : "..";
			ino = i == 0 ? h->in->ino :
			      h->in->kind == FS_QDIR ? FS_ROOT_INO : q->base;
		} else if (i < 2 + nd || i >= 2 + nd + nn) {
			j = i < 2 + nd ? dirs[i - 2] : files[i - 2 - nd - nn];
			name = fs_qfixed_name[j];
			ino = q->base + 1 + j;
			isdir = fs_kind_is_dir(fs_qfixed_kind[j]);
		} else {
			name = h->names[i - 2 - nd];
			ino = h->inos[i - 2 - nd];
			isdir = h->isdir[i - 2 - nd];
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
	struct fs_ctx *fs = fs_of(b->req);
	char name[SPOOL_NAME_MAX + 1];

	if (!dots(h, b))
		return;
	if (h->pos == 2) {
		if (!dir_add(b, ".metrics", FS_METRICS_INO, 0, 3))
			return;
		h->pos = 3;
	}
	while (spool_queue_next(fs->db, h->last, name) == 0) {
		if (!dir_add(b, name, FS_FIRST_INO, 1, h->pos + 1))
			return;
		h->pos++;
		memcpy(h->last, name, sizeof name);
	}
}

/*
 * A message's entry in a READDIRPLUS reply: the inode lookup_msg gives
 * (nlookup taken by fs_inode_entry), kept by the kernel for
 * FS_LIST_TIMEOUT. 1: added or gone (skipped); 0: it did not fit.
 */
static int dir_add_msg(struct dirbuf *b, struct fs_dirh *h, const char *name)
{
	struct fs_inode *in = fs_msg_inode(h->in->q, dir_state(h->in->kind),
					   h->ids[h->idx]);
	struct fs_ctx *fs = h->in->fs;
	struct fuse_entry_param e;
	int rc = 1;

	if (!in)
		return 0;
	if (fs_inode_entry(in, &e) == 0) {
		e.entry_timeout = e.attr_timeout = FS_LIST_TIMEOUT;
		if (dir_put(b, name, &e, h->pos + 1))
			b->refs[b->nrefs++] = in->ino;
		else
			rc = 0;
		if (rc == 0)
			fs_inode_forget(fs, in->ino, 1);
	} /* else acked or purged since the listing: not listed */
	fs_inode_forget(fs, in->ino, 1); /* the pin */
	return rc;
}

static void readdir_msgs(struct fs_dirh *h, struct dirbuf *b)
{
	enum spool_state s = dir_state(h->in->kind);
	char text[SPOOL_ID_LEN + 1];
	ssize_t n;
	int rc;

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
		rc = b->keep ? dir_add_msg(b, h, text) :
			       dir_add(b, text, h->ids[h->idx], 0, h->pos + 1);
		if (rc == 0)
			return;
		h->pos++;
		h->idx++;
	}
}

static void readdir_any(fuse_req_t req, size_t size, off_t off,
			struct fuse_file_info *fi, int plus)
{
	struct fs_dirh *h = (struct fs_dirh *)(uintptr_t)fi->fh;
	struct dirbuf b = { .req = req, .size = size, .plus = plus };
	struct fs_ctx *fs = fs_of(req);
	size_t i;

	b.buf = malloc(size);
	if (plus)
		b.refs = malloc((size / DIRENTPLUS_MIN + 1) *
				sizeof *b.refs);
	if (!b.buf || (plus && !b.refs)) {
		free(b.buf);
		free(b.refs);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off == 0 || off < h->pos)
		readdir_reset(h);
	b.keep = plus && fs->listed.on &&
		 (h->in->kind == FS_PEEKDIR || h->in->kind == FS_DELAYEDDIR ||
		  h->in->kind == FS_LEASEDDIR);
	if (b.keep)
		fs_listed_begin(fs);
	if (h->in->kind == FS_QDIR || h->in->kind == FS_DRAFTDIR)
		readdir_qdir(h, &b, off);
	else if (h->in->kind == FS_ROOT)
		readdir_root(h, &b);
	else
		readdir_msgs(h, &b);
	/* An interrupted reply reached no kernel: its entries' lookups are
	 * ours to drop. Once replied, neither req nor h may be used: the
	 * kernel may release the handle at once. */
	if (fuse_reply_buf(req, b.buf, b.used) == -ENOENT)
		for (i = 0; i < b.nrefs; i++)
			fs_inode_forget(fs, b.refs[i], 1);
	if (b.keep)
		fs_listed_end(fs);
	free(b.buf);
	free(b.refs);
}

void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	(void)ino;
	readdir_any(req, size, off, fi, 0);
}

/*
 * READDIRPLUS (DESIGN §3, docs/decisions.md): a message dir's entries come
 * with the inode and attributes a LOOKUP of the name would give, each
 * counted as a lookup the kernel will FORGET, so `ls -l` needs no request
 * per entry; listed.c keeps them true. Other dirs answer as READDIR does:
 * nothing they list is looked up, so no listing opens, leases or waits on
 * anything.
 */
void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)ino;
	readdir_any(req, size, off, fi, 1);
}
