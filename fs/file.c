/*
 * file.c - the open files (struct fs_file, what fi->fh points to): the
 * reply to an OPEN or CREATE, the set of open files, and freeing them.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fs.h"

void fs_file_free_all(struct fs_ctx *fs)
{
	struct fs_link *l;

	while ((l = fs_set_pop(&fs->open_files)))
		fs_file_free((struct fs_file *)((char *)l -
						offsetof(struct fs_file, link)));
}

void fs_file_free(struct fs_file *f)
{
	if (!f)
		return;
	fs_wbuf_free(f->w);
	if (f->r) {
		fs_poll_drop(f->r);
		fs_rfile_put(f->r);
	}
	free(f->snap);
	free(f);
}

void fs_file_closed(struct fs_ctx *fs, struct fs_file *f)
{
	fs_set_remove(&fs->open_files, &f->link);
}

void fs_reply_open(fuse_req_t req, struct fuse_file_info *fi,
		   struct fs_file *f, const struct fuse_entry_param *e)
{
	struct fs_inode *in = f->in;
	int rc;

	fi->fh = (uintptr_t)f;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->nonseekable = 0;
	/* FLUSH commits a write (fs_wbuf_flush) and does nothing else: an
	 * open without one is closed with one request, not two. */
	fi->noflush = !f->w;
	fs_set_add(&fs_of(req)->open_files, &f->link);
	rc = e ? fuse_reply_create(req, e, fi) : fuse_reply_open(req, fi);
	if (rc != -ENOENT)
		return;
	fs_set_remove(&fs_of(req)->open_files, &f->link);
	fs_file_free(f);
	if (e && in && in->dynamic)
		fs_inode_forget(fs_of(req), e->ino, 1);
}
