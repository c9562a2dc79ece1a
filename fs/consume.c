/*
 * consume.c - reads of next, claim and pop.
 *
 * The first read of an open file takes one message and binds it to the
 * file (and, for next and claim, to the file's own inode, so that getxattr
 * answers for it); later reads return the rest from the file offset, then
 * EOF. open and stat take nothing. A read finding the queue empty is
 * parked (wait.c). A lease whose reply could not be delivered (the reader
 * was interrupted meanwhile) is released with its receive count undone;
 * a popped body stays bound to the file, in case the read is restarted.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

struct fs_rfile *fs_rfile_new(struct fs_inode *in)
{
	struct fs_rfile *f = calloc(1, sizeof *f);

	if (!f)
		return NULL;
	f->refs = 1;
	pthread_mutex_init(&f->lock, NULL);
	f->in = in;
	f->q = in->q;
	f->kind = in->kind;
	if (in->dynamic)
		fs_inode_ref(in); /* bind() writes to it after replies */
	return f;
}

void fs_rfile_put(struct fs_rfile *f)
{
	if (atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	if (f->kind == FS_NEXT)
		fs_next_opened(f->in, -1);
	if (f->in->dynamic)
		fs_inode_forget(f->in->fs, f->in->ino, 1);
	pthread_mutex_destroy(&f->lock);
	free(f->data);
	free(f);
}

/* f->lock held. Answers from the bound message. */
static void reply_bound(fuse_req_t req, struct fs_rfile *f, size_t size,
			off_t off)
{
	ssize_t n;
	char *buf;

	if (f->kind != FS_NEXT) {
		if ((size_t)off >= f->len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, f->data + off,
				       size < f->len - off ? size
							   : f->len - off);
		return;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = spool_msg_read(f->q->sq, f->id, off, buf, size);
	if (n == -ENOENT)
		n = 0; /* acked or gone meanwhile: the body has ended */
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, n);
	free(buf);
}

static void bind(struct fs_rfile *f, uint64_t id)
{
	f->bound = 1;
	f->id = id;
	atomic_store(&f->in->msg_id, id);
}

/* f->lock held. Leases for next: returns the id to release if the reply
 * was lost, 0 if delivered, or a negative errno (nothing answered). */
static int64_t take_next(fuse_req_t req, struct fs_rfile *f, size_t size,
			 off_t off)
{
	struct spool_msg_info info;
	char *buf = malloc(size ? size : 1);
	size_t n = 0;
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = spool_lease_next(f->q->sq, buf, off == 0 ? size : 0, &n, &info);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	bind(f, info.id);
	if (off == 0)
		rc = fuse_reply_buf(req, buf, n);
	else
		reply_bound(req, f, size, off);
	free(buf);
	if (rc == -ENOENT) {
		f->bound = 0;
		atomic_store(&f->in->msg_id, 0);
		return (int64_t)info.id;
	}
	return 0;
}

static int64_t take_claim(fuse_req_t req, struct fs_rfile *f, size_t size,
			  off_t off)
{
	struct spool_msg_info info;
	size_t n = 0;
	int rc = spool_lease_next(f->q->sq, NULL, 0, &n, &info);

	if (rc < 0)
		return rc;
	f->data = malloc(SPOOL_ID_LEN + 2);
	if (!f->data) {
		spool_release(f->q->sq, info.id, 1);
		return -ENOMEM;
	}
	spool_id_format(info.id, f->data);
	f->data[SPOOL_ID_LEN] = '\n';
	f->len = SPOOL_ID_LEN + 1;
	bind(f, info.id);
	if ((size_t)off < f->len &&
	    fuse_reply_buf(req, f->data + off,
			   size < f->len - off ? size : f->len - off)
		    == -ENOENT) {
		free(f->data);
		f->data = NULL;
		f->bound = 0;
		atomic_store(&f->in->msg_id, 0);
		return (int64_t)info.id;
	}
	if ((size_t)off >= f->len)
		fuse_reply_buf(req, NULL, 0);
	return 0;
}

static int64_t take_pop(fuse_req_t req, struct fs_rfile *f, size_t size,
			off_t off)
{
	struct spool_msg_info info;
	void *body = NULL;
	int rc = spool_pop(f->q->sq, &body, &info);

	if (rc < 0)
		return rc;
	f->data = body;
	f->len = info.size;
	bind(f, info.id);
	reply_bound(req, f, size, off);
	return 0;
}

int fs_consume_try(fuse_req_t req, struct fs_rfile *f, size_t size,
		   off_t off)
{
	int64_t rc;

	atomic_fetch_add(&f->refs, 1);
	pthread_mutex_lock(&f->lock);
	if (f->bound) {
		reply_bound(req, f, size, off);
		rc = 0;
	} else if (f->kind == FS_NEXT)
		rc = take_next(req, f, size, off);
	else if (f->kind == FS_CLAIM)
		rc = take_claim(req, f, size, off);
	else
		rc = take_pop(req, f, size, off);
	pthread_mutex_unlock(&f->lock);
	if (rc > 0) {
		fs_log(SPOOL_LOG_DEBUG, "queue %s: reader gone, releasing",
		       f->q->name);
		spool_release(f->q->sq, (uint64_t)rc, 1);
		rc = 0;
	}
	fs_rfile_put(f);
	return (int)rc;
}

void fs_consume_read(fuse_req_t req, struct fs_rfile *f, size_t size,
		     off_t off, int nonblock)
{
	struct spool_settings s;
	uint64_t seq = fs_wait_seq(f->q);
	int rc = fs_consume_try(req, f, size, off);

	if (rc == 0)
		return;
	/* EIO: the store cannot be reached (DESIGN §10): a reader that would
	 * wait waits for it too, parked */
	if ((rc == -EAGAIN || rc == -EIO) && !nonblock &&
	    spool_settings_get(f->q->sq, &s) == 0 && s.receive_wait_ms != 0) {
		fs_wait_park(req, f, size, off, seq, fs_consume_try);
		return;
	}
	fuse_reply_err(req, -rc);
}
