/*
 * draft.c - drafts: files and directories named .name in a queue (or
 * anything in a draft directory) that hold data until they are renamed to
 * a plain name, which pushes them. Their lists (per queue, per draft
 * directory), their data, and making, finding, linking, unlinking and
 * pushing them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs.h"

/* fs->lock held. */
struct fs_inode **fs_drafts_of(struct fs_inode *dir)
{
	return dir->kind == FS_DRAFTDIR ? &dir->children : &dir->q->drafts;
}

int fs_is_draft_name(struct fs_inode *dir, const char *name)
{
	return dir->kind == FS_DRAFTDIR || name[0] == '.';
}

/* fs->lock held. */
struct fs_inode *fs_draft_find(struct fs_inode *dir, const char *name)
{
	struct fs_inode *in;

	for (in = *fs_drafts_of(dir); in; in = in->dnext)
		if (strcmp(in->name, name) == 0)
			return in;
	return NULL;
}

/* fs->lock held. Puts draft (or draft dir) in into dir's list. */
void fs_draft_link(struct fs_inode *dir, struct fs_inode *in)
{
	struct fs_inode **head = fs_drafts_of(dir);

	in->parent = dir->kind == FS_DRAFTDIR ? dir : NULL;
	in->linked = 1;
	in->dnext = *head;
	*head = in;
}

/* fs->lock held. */
void fs_draft_detach(struct fs_inode *in)
{
	struct fs_inode **p = in->parent ? &in->parent->children
					 : &in->q->drafts;

	while (*p && *p != in)
		p = &(*p)->dnext;
	if (*p)
		*p = in->dnext;
	in->linked = 0;
}

/* fs->lock held. Removes a draft from its list; frees it if unused. */
void fs_draft_unlink(struct fs_inode *in)
{
	struct fs_inode *parent = in->parent;

	fs_draft_detach(in);
	in->parent = NULL;
	fs_inode_maybe_free(in);
	if (parent)
		fs_inode_maybe_free(parent);
}

struct fs_draft *fs_draft_new(mode_t mode, uid_t uid, gid_t gid)
{
	struct fs_draft *d = calloc(1, sizeof *d);

	if (!d)
		return NULL;
	pthread_mutex_init(&d->lock, NULL);
	d->free = fs_draft_free;
	d->mode = mode & 07777;
	d->uid = uid;
	d->gid = gid;
	clock_gettime(CLOCK_REALTIME, &d->mtime);
	d->ctime = d->mtime;
	return d;
}

void fs_draft_free(struct fs_draft *d)
{
	fs_buf_free(&d->body);
	fs_xattr_free(d->xattrs);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

int fs_draft_push(struct fs_inode *in, struct fs_queue *dst,
		  const char *name)
{
	struct fs_draft *d = in->draft;
	int rc;

	pthread_mutex_lock(&d->lock);
	rc = fs_push_with_xattrs(dst, name, d->body.data, d->body.len,
				 d->xattrs, NULL);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

struct fs_inode *fs_draft_make(struct fs_inode *dir, enum fs_kind kind,
			       const char *name, mode_t mode,
			       const struct fuse_ctx *ctx)
{
	struct fs_ctx *fs = dir->fs;
	struct fs_inode *in = fs_inode_new(kind, dir->q);

	if (!in)
		return NULL;
	in->name = strdup(name);
	in->draft = fs_draft_new(mode, ctx->uid, ctx->gid);
	pthread_mutex_lock(&fs->lock);
	if (!in->name || !in->draft) {
		fs_inode_maybe_free(in);
		in = NULL;
	} else {
		fs_draft_link(dir, in);
	}
	pthread_mutex_unlock(&fs->lock);
	return in;
}
