/*
 * handle.c - creating: a name being written (wbuf.c) or a draft
 * (draft.c), at CREATE or at an OPEN that writes.
 *
 * The commit rule is wbuf.c's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

/* ------------------------------------------------------------ create */

/* fs->lock held. Is name being written in q right now? */
static int writing_has(struct fs_queue *q, const char *name)
{
	struct fs_wbuf *w;

	for (w = q->writing; w; w = w->wnext)
		if (w->in && strcmp(w->in->name, name) == 0)
			return 1;
	return 0;
}

static int create_draft(fuse_req_t req, struct fs_inode *dir,
			const char *name, mode_t mode, int flags,
			struct fs_inode **out)
{
	struct fs_ctx *fs = dir->fs;
	struct fs_inode *in;
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
	in = fs_draft_find(dir, name);
	if (in && (flags & O_EXCL))
		rc = -EEXIST;
	else if (in && in->kind == FS_DRAFTDIR)
		rc = -EISDIR;
	pthread_mutex_unlock(&fs->lock);
	if (rc == 0 && !in) {
		in = fs_draft_make(dir, FS_DRAFT, name, mode, fuse_req_ctx(req));
		if (!in)
			return -ENOMEM;
	}
	*out = rc == 0 ? in : NULL;
	return rc;
}

/* fs->lock held. w writes in, which its opener can find by name. */
static void write_attach(struct fs_wbuf *w, struct fs_inode *in)
{
	in->wbuf = w;
	in->writers++;
	in->pusher_tid = w->opener_tid;
	w->in = in;
	w->wnext = in->q->writing;
	in->q->writing = w;
	if (in->named)
		in->named_until = INT64_MAX;
	else
		fs_names_add(in);
}

static int create_write(fuse_req_t req, struct fs_queue *q, const char *name,
			int flags, struct fs_file *f)
{
	struct fs_ctx *fs = q->fs;
	struct fs_inode *in;
	int rc = 0;

	f->w = fs_wbuf_new(FS_W_MSG, q, req);
	in = fs_inode_new(FS_WRITE, q);
	f->in = in;
	if (!f->w || !in || !(in->name = strdup(name)))
		return -ENOMEM;
	pthread_mutex_lock(&fs->lock);
	if ((flags & O_EXCL) && writing_has(q, name))
		rc = -EEXIST;
	else
		write_attach(f->w, in);
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

int fs_write_reopen(fuse_req_t req, struct fs_inode *in, struct fs_file *f,
		    int flags)
{
	struct fs_ctx *fs = in->fs;

	f->w = fs_wbuf_new(FS_W_MSG, in->q, req);
	if (!f->w)
		return -ENOMEM;
	/* >> appends at the kernel's idea of the size, the pushed one: the
	 * new message holds what is appended, without a hole before it. */
	f->w->append = !!(flags & O_APPEND);
	pthread_mutex_lock(&fs->lock);
	write_attach(f->w, in);
	pthread_mutex_unlock(&fs->lock);
	return 0;
}

void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
	       mode_t mode, struct fuse_file_info *fi)
{
	struct fs_ctx *fs = fs_of(req);
	struct fs_inode *dir = fs_inode_get(fs, parent);
	struct fuse_entry_param e;
	struct fs_file *f = calloc(1, sizeof *f);
	int rc;

	if (!f || !dir || (dir->kind != FS_QDIR && dir->kind != FS_DRAFTDIR)) {
		rc = !f ? -ENOMEM : !dir ? -ENOENT : -EPERM;
		goto out_fail;
	}
	/* Refused here, not at close(): the shell ignores close()'s error. */
	if (strlen(name) > SPOOL_MSG_NAME_MAX)
		rc = -ENAMETOOLONG;
	else if (fs_is_draft_name(dir, name))
		rc = create_draft(req, dir, name, mode, fi->flags, &f->in);
	else
		rc = create_write(req, dir->q, name, fi->flags, f);
	if (rc == 0 && f->in->kind == FS_DRAFT && (fi->flags & O_TRUNC)) {
		pthread_mutex_lock(&f->in->draft->lock);
		f->in->draft->body.len = 0;
		pthread_mutex_unlock(&f->in->draft->lock);
	}
	if (rc == 0)
		rc = fs_inode_entry(f->in, &e);
	if (rc < 0)
		goto out_fail;
	fs_reply_open(req, fi, f, &e);
	return;
out_fail:
	if (f && f->w && f->w->in == NULL && f->in)
		fs_wbuf_free(f->w), f->w = NULL;
	if (f && f->in) {
		pthread_mutex_lock(&fs->lock);
		fs_inode_maybe_free(f->in);
		pthread_mutex_unlock(&fs->lock);
		f->in = NULL;
	}
	fs_file_free(f);
	fuse_reply_err(req, -rc);
}
