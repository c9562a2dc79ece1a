/*
 * ops.c - the operations table, and open/read/write/flush/release,
 * getattr/setattr, forget and statfs: dispatch by the kind of inode.
 *
 * Every open file is direct_io (sizes of most entries are meaningless and
 * bodies change state behind the kernel's back). Every one is seekable:
 * head -n1 seeks back within what it read (of pop, stats, ...), and the
 * bound body or the text taken at open stays for the open file, so a
 * read at any offset answers from it. The daemon refuses writing to
 * read-only entries and reading write-only ones itself, since the kernel's
 * mode check does not stop root.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "fs.h"

#define DRAFT_MAX (256u << 20)

/* ------------------------------------------------------------ open */

static int open_consume(struct fs_file *f, struct fs_inode *in)
{
	f->r = fs_rfile_new(in);
	return f->r ? 0 : -ENOMEM;
}

static int open_write(fuse_req_t req, struct fs_file *f, enum fs_wkind kind)
{
	f->w = fs_wbuf_new(kind, f->in->q, req);
	return f->w ? 0 : -ENOMEM;
}

static int open_draft(struct fs_inode *in, int flags)
{
	struct fs_draft *d = in->draft;

	if (!(flags & O_TRUNC) || (flags & O_ACCMODE) == O_RDONLY)
		return 0;
	pthread_mutex_lock(&d->lock);
	d->body.len = 0;
	clock_gettime(CLOCK_REALTIME, &d->mtime);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static int open_msg(struct fs_inode *in)
{
	struct spool_msg_info info;

	return spool_msg_stat(in->q->sq, in->msg_id, &info);
}

/* What each kind allows: 1 read, 2 write. */
static int kind_access(enum fs_kind kind)
{
	switch (kind) {
	case FS_PUSH:
	case FS_LINES:
	case FS_CTL:
	case FS_WRITE:
		return 2;
	case FS_CONFIG:
	case FS_DRAFT:
		return 3;
	default:
		return 1;
	}
}

static int open_kind(fuse_req_t req, struct fs_file *f, int flags)
{
	struct fs_inode *in = f->in;
	int acc = flags & O_ACCMODE, wr = acc != O_RDONLY, rd = acc != O_WRONLY;

	if ((wr && !(kind_access(in->kind) & 2)) ||
	    (rd && !(kind_access(in->kind) & 1)))
		return -EACCES;
	switch (in->kind) {
	case FS_METRICS:
		return fs_text_metrics(in->fs, &f->snap, &f->snaplen);
	case FS_STATS:
		return fs_text_stats(in->q, &f->snap, &f->snaplen);
	case FS_CONFIG:
		if (rd && fs_text_config(in->q, &f->snap, &f->snaplen) < 0)
			return -ENOENT;
		return wr ? open_write(req, f, FS_W_CONFIG) : 0;
	case FS_PUSH:
		return open_write(req, f, FS_W_MSG);
	case FS_LINES:
		return open_write(req, f, FS_W_LINES);
	case FS_CTL:
		return open_write(req, f, FS_W_CTL);
	case FS_NEXT:
	case FS_CLAIM:
	case FS_POP:
		return open_consume(f, in);
	case FS_MSG:
		return open_msg(in);
	case FS_DRAFT:
		return open_draft(in, flags);
	case FS_WRITE:
		/* The pusher opens a name it just pushed: a new message. */
		return fs_write_reopen(req, in, f, flags);
	default:
		return -EISDIR;
	}
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_inode *in = fs_inode_get(fs_of(req), ino);
	struct fs_file *f = calloc(1, sizeof *f);
	int rc = !in ? -ENOENT : !f ? -ENOMEM : 0;

	if (rc == 0) {
		f->in = in;
		rc = open_kind(req, f, fi->flags);
	}
	if (rc < 0) {
		fs_file_free(f);
		fuse_reply_err(req, -rc);
		return;
	}
	fs_reply_open(req, fi, f, NULL);
}

/* ------------------------------------------------------- read, write */

static void read_msg(fuse_req_t req, struct fs_inode *in, size_t size,
		     off_t off)
{
	char *buf = malloc(size ? size : 1);
	ssize_t n;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = spool_msg_read(in->q->sq, in->msg_id, off, buf, size);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, n);
	free(buf);
}

/* Once the reply is written the reader may close the file, and its
 * RELEASE may free it on another thread while this one still runs: the
 * reply comes from a private copy. */
static void read_snap(fuse_req_t req, struct fs_file *f, size_t size,
		      off_t off)
{
	size_t n = (size_t)off < f->snaplen ? f->snaplen - off : 0;
	char *copy;

	n = n < size ? n : size;
	copy = malloc(n ? n : 1);
	if (!copy) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(copy, f->snap + off, n);
	fuse_reply_buf(req, copy, n);
	free(copy);
}

/* Copies out under the lock: the reply may let the file be closed. */
static void read_draft(fuse_req_t req, struct fs_draft *d, size_t size,
		       off_t off)
{
	char *copy = NULL;
	size_t n = 0;

	pthread_mutex_lock(&d->lock);
	if ((size_t)off < d->body.len) {
		n = size < d->body.len - off ? size : d->body.len - off;
		copy = malloc(n);
		if (copy)
			memcpy(copy, d->body.data + off, n);
	}
	pthread_mutex_unlock(&d->lock);
	if (n && !copy)
		fuse_reply_err(req, ENOMEM);
	else
		fuse_reply_buf(req, copy, n);
	free(copy);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_file *f = fs_file_of(fi);
	struct fs_draft *d;

	(void)ino;
	if (f->r) {
		fs_consume_read(req, f->r, size, off, fi->flags & O_NONBLOCK);
	} else if (f->snap) {
		read_snap(req, f, size, off);
	} else if (f->in->kind == FS_MSG) {
		read_msg(req, f->in, size, off);
	} else if (f->in->kind == FS_DRAFT) {
		d = f->in->draft;
		read_draft(req, d, size, off);
	} else {
		fuse_reply_err(req, EBADF);
	}
}

static int write_draft(struct fs_draft *d, const char *buf, size_t size,
		       off_t off)
{
	int rc = -EFBIG;

	pthread_mutex_lock(&d->lock);
	if ((uint64_t)off + size <= DRAFT_MAX)
		rc = fs_buf_put(&d->body, buf, size, off);
	clock_gettime(CLOCK_REALTIME, &d->mtime);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs_file *f = fs_file_of(fi);
	int rc = -EBADF;

	(void)ino;
	if (f->w)
		rc = fs_wbuf_write(f->w, buf, size, off);
	else if (f->in->kind == FS_DRAFT)
		rc = write_draft(f->in->draft, buf, size, off);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi)
{
	struct fs_file *f = fs_file_of(fi);

	(void)ino;
	fuse_reply_err(req, f->w ? -fs_wbuf_flush(f->w, req) : 0);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_file *f = fs_file_of(fi);

	(void)ino;
	fs_file_closed(fs_of(req), f);
	if (f->w) {
		fs_wbuf_release(f->w);
		f->w = NULL;
	}
	fs_file_free(f);
	fuse_reply_err(req, 0);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

/* --------------------------------------------------------- attributes */

static void reply_attr(fuse_req_t req, struct fs_inode *in,
		       struct fuse_file_info *fi)
{
	struct stat st;
	int rc = fs_inode_stat(in, &st);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (in->kind == FS_WRITE && fi && fs_file_of(fi)->w) {
		struct fs_wbuf *w = fs_file_of(fi)->w;

		pthread_mutex_lock(&w->lock);
		st.st_size = w->base + w->buf.len;
		pthread_mutex_unlock(&w->lock);
	}
	fuse_reply_attr(req, &st, fs_attr_timeout(in->kind));
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_inode *in = fs_inode_get(fs_of(req), ino);

	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	reply_attr(req, in, fi);
}

static int setattr_qdir(struct fs_queue *q, struct stat *attr, int to_set)
{
	struct spool_queue_attr qa;
	int rc;

	if (to_set & FUSE_SET_ATTR_SIZE)
		return -EISDIR;
	if (!(to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
			FUSE_SET_ATTR_GID)))
		return 0;
	rc = spool_queue_getattr(q->sq, &qa);
	if (rc < 0)
		return rc;
	if (to_set & FUSE_SET_ATTR_MODE)
		qa.mode = attr->st_mode & 07777;
	if (to_set & FUSE_SET_ATTR_UID)
		qa.uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		qa.gid = attr->st_gid;
	rc = spool_queue_setattr(q->sq, &qa);
	if (rc == 0)
		fs_queue_attr_changed(q);
	return rc;
}

static int setattr_draft(struct fs_draft *d, struct stat *attr, int to_set)
{
	int rc = 0;

	pthread_mutex_lock(&d->lock);
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if ((uint64_t)attr->st_size > DRAFT_MAX)
			rc = -EFBIG;
		else if ((size_t)attr->st_size > d->body.len)
			rc = fs_buf_put(&d->body, "", 0, attr->st_size);
		else
			d->body.len = attr->st_size;
	}
	if (to_set & FUSE_SET_ATTR_MODE)
		d->mode = attr->st_mode & 07777;
	if (to_set & FUSE_SET_ATTR_UID)
		d->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		d->gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_MTIME)
		d->mtime = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		clock_gettime(CLOCK_REALTIME, &d->mtime);
	clock_gettime(CLOCK_REALTIME, &d->ctime);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

static int setattr_write(struct fs_inode *in, struct fuse_file_info *fi,
			 struct stat *attr, int to_set)
{
	struct fs_wbuf *w = fi ? fs_file_of(fi)->w : NULL, *ref = NULL;
	int rc;

	if (!(to_set & FUSE_SET_ATTR_SIZE))
		return 0;
	if (!w && in->kind == FS_WRITE)
		w = ref = fs_wbuf_of(in);
	rc = w ? fs_wbuf_truncate(w, attr->st_size) : 0;
	fs_wbuf_put(ref);
	return rc;
}

static int setattr_kind(struct fs_inode *in, struct stat *attr, int to_set,
			struct fuse_file_info *fi)
{
	switch (in->kind) {
	case FS_ROOT:
		return 0;
	case FS_QDIR:
		return setattr_qdir(in->q, attr, to_set);
	case FS_DRAFT:
		return setattr_draft(in->draft, attr, to_set);
	case FS_DRAFTDIR:
		return to_set & FUSE_SET_ATTR_SIZE ? -EISDIR :
		       setattr_draft(in->draft, attr, to_set);
	case FS_WRITE:
	case FS_PUSH:
	case FS_LINES:
	case FS_CONFIG:
	case FS_CTL:
		return setattr_write(in, fi, attr, to_set);
	default:
		return to_set & FUSE_SET_ATTR_SIZE ? -EACCES : -EPERM;
	}
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct fs_inode *in = fs_inode_get(fs_of(req), ino);
	int rc;

	if (!in) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (in->kind == FS_MSG) {
		fs_msg_setattr(req, in, attr, to_set);
		return;
	}
	rc = setattr_kind(in, attr, to_set, fi);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		reply_attr(req, in, fi);
}

/* ------------------------------------------------------------- misc */

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_inode_forget(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count; i++)
		fs_inode_forget(fs_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* Messages held in all queues (visible, delayed, leased, set aside). */
static uint64_t messages_held(struct fs_ctx *fs)
{
	char name[SPOOL_NAME_MAX + 1], after[SPOOL_NAME_MAX + 1] = "";
	struct spool_stats st;
	struct fs_queue *q;
	uint64_t n = 0;

	while (spool_queue_next(fs->db, after, name) == 0) {
		if (fs_queue_get(fs, name, &q) == 0 &&
		    spool_stats_get(q->sq, &st) == 0)
			n += st.visible + st.delayed + st.leased + st.corrupt;
		memcpy(after, name, sizeof name);
	}
	return n;
}

/* Inodes free, for df -i: messages take no inode of their own, so this
 * is only "large", and f_files - f_ffree is the number of messages. */
#define FREE_FILES (1ull << 32)

/*
 * df: the room of the filesystem that holds the store, since that is
 * where messages go (Redis: maxmemory and used_memory, DESIGN §12); inodes: the messages held as used, a large number
 * free, so that disk and inode monitors do not alarm on an empty spool.
 */
static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_ctx *fs = fs_of(req);
	struct statvfs st = { .f_bsize = 4096, .f_frsize = 4096 }, disk;
	uint64_t total, used;

	(void)ino;
	if (spool_space(fs->db, &total, &used) == 0) {  /* Redis: its memory */
		st.f_blocks = total / st.f_frsize;
		st.f_bfree = st.f_bavail = used < total ?
			(total - used) / st.f_frsize : 0;
	} else if (fs->data_dir && statvfs(fs->data_dir, &disk) == 0) {
		st.f_bsize = disk.f_bsize;
		st.f_frsize = disk.f_frsize;
		st.f_blocks = disk.f_blocks;
		st.f_bfree = disk.f_bfree;
		st.f_bavail = disk.f_bavail;
	}
	st.f_ffree = st.f_favail = FREE_FILES;
	st.f_files = messages_held(fs) + FREE_FILES;
	st.f_namemax = SPOOL_MSG_NAME_MAX;
	fuse_reply_statfs(req, &st);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	fuse_reply_err(req, EPERM);
}

/* Links have no meaning among queues and messages: say so plainly, rather
 * than libfuse's ENOSYS ("Function not implemented"). */
static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	(void)link;
	(void)parent;
	(void)name;
	fuse_reply_err(req, EPERM);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fuse_reply_err(req, EPERM);
}

/* Bodies are buffers, not blocks: nothing to allocate ahead. Like a
 * refused write, it makes the open file's close() fail: nothing pushed. */
static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			 off_t offset, off_t length, struct fuse_file_info *fi)
{
	struct fs_wbuf *w = fi ? fs_file_of(fi)->w : NULL;

	(void)ino;
	(void)mode;
	(void)offset;
	(void)length;
	if (w) {
		pthread_mutex_lock(&w->lock);
		if (!w->err)
			w->err = EOPNOTSUPP;
		pthread_mutex_unlock(&w->lock);
	}
	fuse_reply_err(req, EOPNOTSUPP);
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ |
			FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE |
			FUSE_CAP_EXPORT_SUPPORT);
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* READDIRPLUS where its entries can be kept true (listed.c): the
	 * kernel then chooses it for a listing followed by lookups (`ls
	 * -l`), plain READDIR otherwise. libfuse asks for it whenever the op
	 * is set, so it is cleared where not. */
	if (fs_listed_wanted(userdata, conn))
		conn->want |= FUSE_CAP_READDIRPLUS |
			      (conn->capable & FUSE_CAP_READDIRPLUS_AUTO);
	else
		conn->want &= ~(FUSE_CAP_READDIRPLUS |
				FUSE_CAP_READDIRPLUS_AUTO);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.mknod = fs_mknod,
	.symlink = fs_symlink,
	.link = fs_link,
	.fallocate = fs_fallocate,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.rename = fs_rename,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.releasedir = fs_releasedir,
	.statfs = fs_statfs,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
	.create = fs_create,
	.poll = fs_poll,
};
