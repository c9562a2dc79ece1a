/*
 * xattr.c - extended attributes.
 *
 * Drafts and names being written keep theirs in memory; at the push,
 * user.spool.priority and user.spool.delay become the message's priority
 * and delay and the other user.* ones its attributes (push.c). Message
 * files and a bound next answer the message's (msg.c); claim shares one
 * inode between its opens, so its id is what the read returns. Only the
 * user namespace is supported (other namespaces: EOPNOTSUPP).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "fs.h"


/* Where the in-memory xattrs of a draft or a name being written are. */
struct xattrs_ref {
	struct fs_xattr **list;
	pthread_mutex_t *lock;
	struct fs_wbuf *w;          /* a reference, or NULL */
};

static void xattrs_done(struct xattrs_ref *r)
{
	pthread_mutex_unlock(r->lock);
	fs_wbuf_put(r->w);
}

/*
 * The in-memory xattr list of a draft or a name being written (not yet
 * pushed), with its lock taken; 0, or -1 if in has none. Release with
 * xattrs_done().
 */
static int xattrs_of(struct fs_inode *in, struct xattrs_ref *r)
{
	r->w = NULL;
	if (in->kind == FS_DRAFT) {
		r->lock = &in->draft->lock;
		r->list = &in->draft->xattrs;
	} else if (in->kind == FS_WRITE && (r->w = fs_wbuf_of(in))) {
		r->lock = &r->w->lock;
		r->list = &r->w->xattrs;
	} else {
		return -1;
	}
	pthread_mutex_lock(r->lock);
	/* Pushed, and nothing written since: between the FLUSH that pushed
	 * and the RELEASE that follows close() the open write still exists,
	 * but its attributes would go to no message. */
	if (r->w && r->w->committed && r->w->buf.len == 0) {
		xattrs_done(r);
		return -1;
	}
	return 0;
}

/* The message an inode answers for, or 0. */
static uint64_t msg_of(struct fs_inode *in)
{
	if (in->kind == FS_MSG || in->kind == FS_NEXT)
		return atomic_load(&in->msg_id);
	return 0;
}

static void reply_size(fuse_req_t req, ssize_t n, size_t size,
		       const char *buf)
{
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, n);
	else
		fuse_reply_buf(req, buf, n);
}

void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 const char *value, size_t size, int flags)
{
	struct fs_inode *in = fs_inode_get(fs_of(req), ino);
	struct xattrs_ref r;
	int rc;

	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (strncmp(name, "user.", 5) != 0) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (xattrs_of(in, &r) < 0) {
		fuse_reply_err(req, EPERM); /* a message, or already pushed */
		return;
	}
	rc = fs_xattr_check(name, value, size);
	if (rc == 0)
		rc = fs_xattr_set(r.list, name, value, size, flags);
	xattrs_done(&r);
	fuse_reply_err(req, -rc);
}

void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 size_t size)
{
	struct fs_inode *in = fs_inode_get(fs_of(req), ino);
	struct xattrs_ref r;
	char *buf = size ? malloc(size) : NULL;
	uint64_t id;
	ssize_t n = -ENODATA;

	if (!in)
		n = -ENOENT;
	else if (strncmp(name, "user.", 5) != 0)
		/* ls -l asks every file for security.selinux and
		 * system.posix_acl_access; "not supported" it remembers for
		 * the whole filesystem, "no such attribute" it does not. */
		n = -EOPNOTSUPP;
	else if (size && !buf)
		n = -ENOMEM;
	else if (xattrs_of(in, &r) == 0) {
		n = fs_xattr_get(*r.list, name, buf, size);
		xattrs_done(&r);
	} else if ((id = msg_of(in)))
		n = fs_msg_getxattr(in->q, id, name, buf, size);
	reply_size(req, n, size, buf);
	free(buf);
}

void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs_inode *in = fs_inode_get(fs_of(req), ino);
	struct xattrs_ref r;
	char *buf = size ? malloc(size) : NULL;
	uint64_t id;
	ssize_t n = 0;

	if (!in)
		n = -ENOENT;
	else if (size && !buf)
		n = -ENOMEM;
	else if (xattrs_of(in, &r) == 0) {
		n = fs_xattr_list(*r.list, buf, size);
		xattrs_done(&r);
	} else if ((id = msg_of(in))) {
		n = fs_msg_listxattr(in->q, id, buf, size);
		if (n == -ENOENT)
			n = 0;
	}
	reply_size(req, n, size, buf);
	free(buf);
}

void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs_inode *in = fs_inode_get(fs_of(req), ino);
	struct xattrs_ref r;
	int rc;

	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (xattrs_of(in, &r) < 0) {
		/* a message, or a name already pushed: nothing to change */
		fuse_reply_err(req, msg_of(in) || in->kind == FS_WRITE ? EPERM
								       : ENODATA);
		return;
	}
	rc = fs_xattr_remove(r.list, name);
	xattrs_done(&r);
	fuse_reply_err(req, -rc);
}
