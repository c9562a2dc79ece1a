/*
 * nullfs.c - the physical limit of the FUSE path: a minimal low-level
 * libfuse3 filesystem that accepts the operations spoolfs's tree is driven
 * with, and keeps nothing.
 *
 *   MNT/<queue>/             mkdir makes one (the only state: a name table)
 *   MNT/<queue>/<new name>   create + write + flush: discarded
 *   MNT/<queue>/push|lines   open + write + flush: discarded
 *   MNT/<queue>/next         read: a fixed body of --body bytes, then EOF;
 *                            fgetxattr user.spool.id: a fixed id
 *   MNT/<queue>/leased/<id>  any name exists; unlink succeeds
 *
 * It mounts with the same options (default_permissions), the same cache
 * timeouts per kind of entry, the same init flags and the same worker
 * thread limit as fs/main.c, so that tools/bench can put spoolfs's rates
 * side by side with what FUSE itself costs on this machine. It does not
 * park readers: `next` never blocks.
 *
 *   nullfs [--body BYTES] [-f] [-o OPT] MOUNTPOINT
 */
/* As fs/fs.h: below 312 the 3.0 ABI of fuse_parse_cmdline() is used,
 * whose struct lacks clone_fd and max_idle_threads (garbage, here a thread
 * per request). */
#define FUSE_USE_VERSION 314

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* As fs/main.c: the worker limit spoolfs serves with. */
#define MAX_THREADS 16
#define MAX_QUEUES 64
#define NAME_MAX_Q 200

/*
 * Inode numbers: 1 root; a queue i has a block of 8 from QBASE + 8 * i:
 * the dir, push, lines, next, leased/, peek/. Everything else (write
 * handles, leased/<id>) gets a fresh number that is never looked up again.
 */
enum kind { K_ROOT, K_QDIR, K_PUSH, K_LINES, K_NEXT, K_LEASED, K_PEEK,
	    K_FILE };
#define QBASE 16
#define DYN_BASE (1ULL << 32)

static const char *const ctl_names[] = {
	[K_PUSH] = "push", [K_LINES] = "lines", [K_NEXT] = "next",
	[K_LEASED] = "leased", [K_PEEK] = "peek",
};

static struct {
	pthread_mutex_t lock;
	char names[MAX_QUEUES][NAME_MAX_Q + 1]; /* protected by lock */
	int nqueues;                            /* protected by lock */
	_Atomic unsigned long long next_ino;
	size_t body_len;
	char *body;
} nfs = { .lock = PTHREAD_MUTEX_INITIALIZER, .next_ino = DYN_BASE };

static enum kind kind_of(fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return K_ROOT;
	if (ino >= DYN_BASE)
		return K_FILE;
	if (ino >= QBASE && (ino - QBASE) % 8 + K_QDIR <= K_PEEK)
		return (enum kind)((ino - QBASE) % 8 + K_QDIR);
	return K_FILE;
}

/* The same timeouts as fs/inode.c: static names 1 s, dynamic ones 0;
 * attributes cached only for the root and queue dirs. */
static void fill_entry(struct fuse_entry_param *e, fuse_ino_t ino)
{
	enum kind k = kind_of(ino);

	memset(e, 0, sizeof(*e));
	e->ino = ino;
	e->generation = 1;
	e->attr.st_ino = ino;
	e->attr.st_uid = getuid();
	e->attr.st_gid = getgid();
	e->attr.st_nlink = 1;
	switch (k) {
	case K_ROOT: case K_QDIR: case K_LEASED: case K_PEEK:
		e->attr.st_mode = S_IFDIR | 0755;
		e->attr.st_nlink = 2;
		break;
	case K_NEXT:
		e->attr.st_mode = S_IFREG | 0444;
		break;
	case K_PUSH: case K_LINES:
		e->attr.st_mode = S_IFREG | 0222;
		break;
	case K_FILE:
		e->attr.st_mode = S_IFREG | 0644;
		break;
	}
	e->entry_timeout = (k == K_NEXT || k == K_FILE) ? 0.0 : 1.0;
	e->attr_timeout = e->entry_timeout;
}

static fuse_ino_t queue_ino(int i)
{
	return QBASE + 8 * (fuse_ino_t)i;
}

static int queue_find(const char *name)
{
	int i;

	for (i = 0; i < nfs.nqueues; i++)
		if (strcmp(nfs.names[i], name) == 0)
			return i;
	return -1;
}

static void nfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	enum kind pk = kind_of(parent);
	int i;

	if (pk == K_ROOT) {
		pthread_mutex_lock(&nfs.lock);
		i = queue_find(name);
		pthread_mutex_unlock(&nfs.lock);
		if (i < 0) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		fill_entry(&e, queue_ino(i));
	} else if (pk == K_QDIR) {
		for (i = K_PUSH; i <= K_PEEK; i++)
			if (strcmp(name, ctl_names[i]) == 0)
				break;
		if (i > K_PEEK) {
			fuse_reply_err(req, ENOENT); /* never cached */
			return;
		}
		fill_entry(&e, parent + (i - K_QDIR));
	} else if (pk == K_LEASED || pk == K_PEEK) {
		fill_entry(&e, atomic_fetch_add(&nfs.next_ino, 1));
	} else {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fuse_reply_entry(req, &e);
}

static void nfs_getattr(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct fuse_entry_param e;

	(void)fi;
	fill_entry(&e, ino);
	fuse_reply_attr(req, &e.attr, e.attr_timeout);
}

static void nfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int to_set, struct fuse_file_info *fi)
{
	(void)attr;
	(void)to_set;
	nfs_getattr(req, ino, fi);
}

static void nfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode)
{
	struct fuse_entry_param e;
	int i, err = 0;

	(void)mode;
	if (kind_of(parent) != K_ROOT) {
		fuse_reply_err(req, EPERM);
		return;
	}
	pthread_mutex_lock(&nfs.lock);
	i = queue_find(name);
	if (i >= 0)
		err = EEXIST;
	else if (nfs.nqueues == MAX_QUEUES || strlen(name) > NAME_MAX_Q)
		err = ENOSPC;
	else
		strcpy(nfs.names[i = nfs.nqueues++], name);
	pthread_mutex_unlock(&nfs.lock);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	fill_entry(&e, queue_ino(i));
	fuse_reply_entry(req, &e);
}

static void nfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent;
	(void)name;
	fuse_reply_err(req, 0); /* an ack, or a name: nothing to forget */
}

static void nfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, struct fuse_file_info *fi)
{
	struct fuse_entry_param e;

	(void)name;
	(void)mode;
	if (kind_of(parent) != K_QDIR) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fill_entry(&e, atomic_fetch_add(&nfs.next_ino, 1));
	fi->direct_io = 1;
	fuse_reply_create(req, &e, fi);
}

static void nfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	enum kind k = kind_of(ino);

	if (k == K_ROOT || k == K_QDIR || k == K_LEASED || k == K_PEEK) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	fi->direct_io = 1;
	if (k == K_NEXT)
		fi->nonseekable = 1;
	fuse_reply_open(req, fi);
}

static void nfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	size_t n = 0;

	(void)fi;
	if (kind_of(ino) == K_NEXT && (size_t)off < nfs.body_len) {
		n = nfs.body_len - (size_t)off;
		if (n > size)
			n = size;
	}
	fuse_reply_buf(req, n ? nfs.body + off : NULL, n);
}

static void nfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		      size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	(void)buf;
	(void)off;
	(void)fi;
	fuse_reply_write(req, size);
}

static void nfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void nfs_release(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void nfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 size_t size)
{
	static const char id[] = "00000000001";

	(void)ino;
	if (strcmp(name, "user.spool.id") != 0) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (size == 0)
		fuse_reply_xattr(req, sizeof(id) - 1);
	else if (size < sizeof(id) - 1)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, id, sizeof(id) - 1);
}

static void nfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	(void)size;
	(void)off;
	(void)fi;
	fuse_reply_buf(req, NULL, 0); /* always empty */
}

static void nfs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ |
			FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE |
			FUSE_CAP_EXPORT_SUPPORT);
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
}

static const struct fuse_lowlevel_ops nfs_ops = {
	.init = nfs_init,
	.lookup = nfs_lookup,
	.getattr = nfs_getattr,
	.setattr = nfs_setattr,
	.mkdir = nfs_mkdir,
	.unlink = nfs_unlink,
	.create = nfs_create,
	.open = nfs_open,
	.read = nfs_read,
	.write = nfs_write,
	.flush = nfs_flush,
	.release = nfs_release,
	.getxattr = nfs_getxattr,
	.readdir = nfs_readdir,
};

/* Takes --body N out of argv before libfuse sees it. */
static size_t take_body_opt(int *argc, char **argv)
{
	size_t len = 128;
	int i, j;

	for (i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--body") != 0 || i + 1 >= *argc)
			continue;
		len = strtoul(argv[i + 1], NULL, 10);
		for (j = i; j + 2 <= *argc; j++)
			argv[j] = argv[j + 2];
		*argc -= 2;
		break;
	}
	return len;
}

int main(int argc, char *argv[])
{
	struct fuse_args args;
	struct fuse_cmdline_opts cmd = { 0 };
	struct fuse_loop_config *cfg;
	struct fuse_session *se;
	int rc = 1;

	nfs.body_len = take_body_opt(&argc, argv);
	nfs.body = malloc(nfs.body_len + 1);
	if (!nfs.body)
		return 1;
	memset(nfs.body, 'x', nfs.body_len);
	args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	if (fuse_parse_cmdline(&args, &cmd) != 0 || !cmd.mountpoint) {
		fprintf(stderr, "usage: nullfs [--body BYTES] [-f] MOUNTPOINT\n");
		goto out;
	}
	fuse_opt_add_arg(&args, "-odefault_permissions");
	fuse_opt_add_arg(&args, "-ofsname=nullfs");
	se = fuse_session_new(&args, &nfs_ops, sizeof(nfs_ops), NULL);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, cmd.mountpoint) != 0)
		goto out_signals;
	fuse_daemonize(cmd.foreground);
	cfg = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(cfg, cmd.max_threads > MAX_THREADS
					       ? cmd.max_threads : MAX_THREADS);
	fuse_loop_cfg_set_clone_fd(cfg, cmd.clone_fd);
	rc = fuse_session_loop_mt(se, cfg) < 0 ? 1 : 0;
	fuse_loop_cfg_destroy(cfg);
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out:
	free(cmd.mountpoint);
	fuse_opt_free_args(&args);
	free(nfs.body);
	return rc;
}
