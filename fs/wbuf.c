/*
 * wbuf.c - names being written (the write handles of push, lines,
 * config and ctl): their buffers, and the commit at FLUSH and RELEASE.
 *
 * The commit rule (docs/decisions.md): a message is pushed at a FLUSH that
 * comes from the process that opened the file (the thread group of the
 * opener; a thread id is mapped to its process through /proc), when bytes
 * are pending. FLUSHes from other processes (children that inherited the
 * descriptor and exit) commit nothing. Bytes written after a commit are
 * pushed at the next opener FLUSH or at RELEASE (the last close). A file
 * into which nothing was ever written is pushed empty at RELEASE, because a
 * shell redirection closes its first descriptor (a FLUSH with nothing
 * written) before the command writes. A refused write makes every later
 * close fail with the same error, and nothing is pushed.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "parse.h"

/* Largest buffer of a lines or draft file (a message has max_size). */
#define BIG_MAX (256u << 20)

/* Drops the first n bytes of b. */
static void buf_consume(struct fs_buf *b, size_t n)
{
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

/* Every \n-terminated line (and a final one) of text, empty ones skipped,
 * as one batch: all or none. */
static int push_lines(struct fs_queue *q, const char *text, size_t len)
{
	struct spool_push *p = calloc(fs_lines_max(text, len), sizeof *p);
	int rc;

	if (!p)
		return -ENOMEM;
	rc = spool_push_batch(q->sq, p, fs_lines_split(text, len, p), NULL);
	free(p);
	return rc;
}

/* -------------------------------------------------------- config, ctl */

/* One ctl command line (without its \n). */
static int ctl_line(struct fs_queue *q, const char *line, size_t len)
{
	struct fs_queue *dst;
	struct fs_ctl c;
	int rc = fs_ctl_parse(line, len, &c);

	if (rc < 0 || c.cmd == FS_CTL_NONE)
		return rc;
	if (c.cmd == FS_CTL_PURGE)
		return spool_purge(q->sq, NULL);
	rc = fs_queue_get(q->fs, c.queue, &dst);
	if (rc < 0)
		return rc;
	return spool_move_all(q->sq, dst->sq, c.max, NULL);
}

static int ctl_text(struct fs_queue *q, const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	int rc = 0;

	while (p < end && rc == 0) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		rc = ctl_line(q, p, n);
		p += n + 1;
	}
	return rc;
}

/* Runs the complete lines of a config or ctl buffer (all of it when
 * final), then drops them. */
static int wbuf_run(struct fs_wbuf *w, int final)
{
	size_t n = w->buf.len;
	int rc;

	if (!final) {
		while (n > 0 && w->buf.data[n - 1] != '\n')
			n--;
	}
	if (n == 0)
		return 0;
	if (w->kind == FS_W_CONFIG)
		rc = spool_config_apply(w->q->sq, w->buf.data, n);
	else
		rc = ctl_text(w->q, w->buf.data, n);
	buf_consume(&w->buf, n);
	w->base += n;
	return rc;
}

/* ------------------------------------------------------ write handles */

struct fs_wbuf *fs_wbuf_new(enum fs_wkind kind, struct fs_queue *q,
			    fuse_req_t req)
{
	struct fs_wbuf *w = calloc(1, sizeof *w);
	struct spool_settings s;

	if (!w)
		return NULL;
	pthread_mutex_init(&w->lock, NULL);
	w->refs = 1;
	w->kind = kind;
	w->q = q;
	w->opener_tid = fuse_req_ctx(req)->pid;
	w->max_size = BIG_MAX;
	if ((kind == FS_W_MSG || kind == FS_W_LINES) &&
	    spool_settings_get(q->sq, &s) == 0)
		w->max_size = s.max_size;
	return w;
}

/* Removes w from its queue's names being written. */
static void writing_drop(struct fs_wbuf *w)
{
	struct fs_ctx *fs = w->q->fs;
	struct fs_wbuf **p;

	pthread_mutex_lock(&fs->lock);
	for (p = &w->q->writing; *p && *p != w; p = &(*p)->wnext)
		;
	if (*p)
		*p = w->wnext;
	pthread_mutex_unlock(&fs->lock);
}

void fs_wbuf_put(struct fs_wbuf *w)
{
	if (!w || atomic_fetch_sub(&w->refs, 1) != 1)
		return;
	fs_buf_free(&w->buf);
	fs_xattr_free(w->xattrs);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

struct fs_wbuf *fs_wbuf_of(struct fs_inode *in)
{
	struct fs_ctx *fs = in->fs;
	struct fs_wbuf *w;

	pthread_mutex_lock(&fs->lock);
	w = in->writers ? in->wbuf : NULL;
	if (w)
		atomic_fetch_add(&w->refs, 1);
	pthread_mutex_unlock(&fs->lock);
	return w;
}

void fs_wbuf_free(struct fs_wbuf *w)
{
	struct fs_inode *in = w ? w->in : NULL;

	if (!w)
		return;
	if (in) {
		struct fs_ctx *fs = in->fs;

		writing_drop(w);
		pthread_mutex_lock(&fs->lock);
		if (in->wbuf == w)
			in->wbuf = NULL;
		in->writers--;
		/* Nothing pushed (a refused write): the name is not kept. */
		if (!in->writers && !in->pushed)
			fs_names_drop(in);
		fs_inode_maybe_free(in);
		pthread_mutex_unlock(&fs->lock);
	}
	fs_wbuf_put(w);
}

/* w->lock held: publishes the size for unlocked readers (fstat). */
static void wbuf_sized(struct fs_wbuf *w)
{
	atomic_store(&w->size, w->base + w->buf.len);
}

/*
 * w->lock held. Refuses (EFBIG) a lines buffer holding a line over
 * max_size, at the write() that makes it so (DESIGN §4: shells ignore the
 * error of the close). Checks from the start of the first line not yet
 * checked in full, or from the start of the line rel falls in.
 */
static int lines_check(struct fs_wbuf *w, size_t rel)
{
	const char *d = w->buf.data;
	size_t start = w->line_at < rel ? w->line_at : rel, i;

	while (start > 0 && d[start - 1] != '\n')
		start--;
	for (i = start; i < w->buf.len; i++) {
		if (d[i] == '\n')
			start = i + 1;
		else if (i - start + 1 > w->max_size)
			return -EFBIG;
	}
	w->line_at = start;
	return 0;
}

int fs_wbuf_write(struct fs_wbuf *w, const char *data, size_t size,
		  off_t off)
{
	size_t rel;
	int rc;

	pthread_mutex_lock(&w->lock);
	rc = -w->err;
	if (rc < 0)
		goto out;
	rel = (uint64_t)off < w->base ? w->buf.len : off - w->base;
	/* push, lines, config and ctl take no holes: a write past the end is
	 * an append. The kernel keeps their attributes for a second and grows
	 * its idea of their size with every write, so an O_APPEND write (the
	 * shell's >>) arrives at the end of an earlier open's bytes. */
	if ((w->kind != FS_W_MSG || !w->in || w->append) && rel > w->buf.len)
		rel = w->buf.len;
	if (rel + size > (w->kind == FS_W_MSG ? w->max_size : BIG_MAX)) {
		rc = -EFBIG;
		goto out_fail;
	}
	rc = fs_buf_put(&w->buf, data, size, rel);
	if (rc == 0 && w->kind == FS_W_LINES)
		rc = lines_check(w, rel);
	if (rc == 0 && (w->kind == FS_W_CONFIG || w->kind == FS_W_CTL))
		rc = wbuf_run(w, 0);
	if (rc < 0)
		goto out_fail;
	rc = (int)size;
	goto out;
out_fail:
	w->err = -rc;
out:
	wbuf_sized(w);
	pthread_mutex_unlock(&w->lock);
	return rc;
}

/* ftruncate/truncate -s: cuts, or extends with zero bytes (DESIGN §4,
 * "Size while writing"), a name being written; the others only cut. */
int fs_wbuf_truncate(struct fs_wbuf *w, off_t size)
{
	int rc = 0;

	pthread_mutex_lock(&w->lock);
	if ((uint64_t)size < w->base)
		goto out;
	if ((uint64_t)size - w->base < w->buf.len)
		w->buf.len = size - w->base;
	else if (w->kind == FS_W_MSG && w->in) {
		rc = (uint64_t)size > w->max_size ? -EFBIG :
		     fs_buf_put(&w->buf, "", 0, size - w->base);
		if (rc < 0)
			w->err = -rc;
	}
	if (w->line_at > w->buf.len)
		w->line_at = w->buf.len;
out:
	wbuf_sized(w);
	pthread_mutex_unlock(&w->lock);
	return rc;
}

/* w->lock held. Pushes what is pending; empty only when forced. */
static int wbuf_commit(struct fs_wbuf *w, int final)
{
	struct fs_ctx *fs = w->q->fs;
	const char *name = NULL;
	uint64_t id = 0;
	int rc = 0;

	if (w->kind == FS_W_CONFIG || w->kind == FS_W_CTL)
		return wbuf_run(w, 1);
	if (w->buf.len == 0 && !(final && !w->committed && w->kind == FS_W_MSG))
		return 0;
	if (w->in) {
		pthread_mutex_lock(&fs->lock); /* a rename may change it */
		name = strdup(w->in->name);
		pthread_mutex_unlock(&fs->lock);
		if (!name)
			return -ENOMEM;
	}
	if (w->kind == FS_W_LINES)
		rc = push_lines(w->q, w->buf.data, w->buf.len);
	else
		rc = fs_push_with_xattrs(w->q, name, w->buf.data, w->buf.len,
					 w->xattrs, &id);
	free((char *)name);
	if (rc < 0)
		return rc;
	if (w->in)
		fs_names_pushed(w->in, id, w->buf.len);
	w->line_at = 0;
	if (!w->committed && w->in)
		writing_drop(w);
	w->committed = 1;
	w->base += w->buf.len;
	w->buf.len = 0;
	return 0;
}

/* Is this FLUSH from the opener's process? The common case (the opening
 * thread closes) costs nothing; only a flush from another thread reads
 * /proc to map both threads to their processes. An opener thread that is
 * gone can no longer be mapped: then every flush commits. */
static int from_opener(struct fs_wbuf *w, fuse_req_t req)
{
	pid_t pid = fuse_req_ctx(req)->pid, opener;

	if (pid == w->opener_tid)
		return 1;
	opener = fs_tgid(w->opener_tid);
	return opener == 0 || fs_tgid(pid) == opener;
}

/*
 * An empty message is pushed at RELEASE, after close() has returned (see
 * docs/decisions.md), so close() could not report a full queue. A queue
 * already at max_depth refuses it here instead, at the opener's FLUSH, and
 * nothing is pushed at RELEASE. (A push that fills the queue in between is
 * still refused at RELEASE, and only logged.)
 */
static int empty_preflight(struct fs_wbuf *w)
{
	if (w->kind != FS_W_MSG || w->committed || w->buf.len)
		return 0;
	return spool_push_room(w->q->sq, 1) == -EDQUOT ? -EDQUOT : 0;
}

int fs_wbuf_flush(struct fs_wbuf *w, fuse_req_t req)
{
	int rc;

	pthread_mutex_lock(&w->lock);
	rc = -w->err;
	if (rc == 0 && from_opener(w, req)) {
		rc = wbuf_commit(w, 0);
		if (rc == 0)
			rc = empty_preflight(w);
	}
	if (rc < 0)
		w->err = -rc;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

/* The last close: pushes whatever is left, then frees w. */
void fs_wbuf_release(struct fs_wbuf *w)
{
	int rc = 0;

	pthread_mutex_lock(&w->lock);
	if (!w->err)
		rc = wbuf_commit(w, 1);
	pthread_mutex_unlock(&w->lock);
	if (rc < 0)
		fs_log(SPOOL_LOG_DEBUG, "queue %s: push at last close: %s",
		       w->q->name, strerror(-rc));
	fs_wbuf_free(w);
}
