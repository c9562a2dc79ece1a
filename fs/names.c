/*
 * names.c - names being written and just pushed, per process (DESIGN §4,
 * "After close()").
 *
 * Producers touch the name again once they closed it: install and
 * shutil.copy chmod it, rsync --inplace stats it and sets its times,
 * temp-file writers rename it. So the inode of a name being written (an
 * FS_WRITE) stays findable by name for the process that opened it, while
 * it is written and for FS_NAME_KEEP_MS after its last push. Every other
 * process finds nothing: to them the name is free at once, and a lookup
 * never lists it. Each queue keeps these inodes in a small hash of names;
 * expired ones are swept at most once a second, when a name is added.
 *
 * A process is a thread group: the thread ids of the opener and of the
 * caller are compared first (no cost), and mapped through /proc only when
 * they differ and the name matches.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs.h"

#define NAMES_HASH 256
/* Candidates of one name looked at per lookup (processes writing it). */
#define NAMES_PROBE 8

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t name_slot(const char *name)
{
	uint64_t h = 1469598103934665603ull;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 1099511628211ull;
	return h & (NAMES_HASH - 1);
}

/* fs->lock held. */
static void unhash(struct fs_inode *in)
{
	struct fs_inode **p = &in->q->names[name_slot(in->name)];

	while (*p && *p != in)
		p = &(*p)->nnext;
	if (*p)
		*p = in->nnext;
	in->nnext = NULL;
	in->named = 0;
}

/* fs->lock held. Forgets the names whose time ran out. */
static void sweep(struct fs_queue *q, int64_t now)
{
	size_t i;

	if (now - q->names_swept < 1000)
		return;
	q->names_swept = now;
	for (i = 0; i < NAMES_HASH; i++) {
		struct fs_inode **p = &q->names[i], *in;

		while ((in = *p)) {
			if (in->writers > 0 || in->named_until > now) {
				p = &in->nnext;
				continue;
			}
			*p = in->nnext;
			in->nnext = NULL;
			in->named = 0;
			fs_inode_maybe_free(in);
		}
	}
}

void fs_names_add(struct fs_inode *in)
{
	struct fs_queue *q = in->q;
	size_t s;

	if (!q->names) {
		q->names = calloc(NAMES_HASH, sizeof *q->names);
		if (!q->names)
			return; /* the name is then not kept: a plain ENOENT */
	}
	sweep(q, mono_ms());
	s = name_slot(in->name);
	in->named_until = INT64_MAX;
	in->nnext = q->names[s];
	q->names[s] = in;
	in->named = 1;
}

void fs_names_drop(struct fs_inode *in)
{
	if (in->named)
		unhash(in);
}

void fs_names_pushed(struct fs_inode *in, uint64_t id, uint64_t size)
{
	struct fs_ctx *fs = in->fs;

	pthread_mutex_lock(&fs->lock);
	in->pushed = 1;
	in->pushed_id = id;
	in->pushed_size = size;
	in->named_until = mono_ms() + FS_NAME_KEEP_MS;
	pthread_mutex_unlock(&fs->lock);
}

/* fs->lock held. Is in a live entry for name? */
static int live(const struct fs_inode *in, const char *name, int64_t now)
{
	return strcmp(in->name, name) == 0 &&
	       (in->writers > 0 || in->named_until > now);
}

/* fs->lock held. The entry for name opened by thread tid, pinned. */
static struct fs_inode *pin(struct fs_queue *q, const char *name, pid_t tid,
			    int64_t now)
{
	struct fs_inode *in;

	for (in = q->names[name_slot(name)]; in; in = in->nnext)
		if (in->pusher_tid == tid && live(in, name, now)) {
			in->nlookup++;
			return in;
		}
	return NULL;
}

struct fs_inode *fs_names_find(struct fs_queue *q, const char *name,
			       fuse_req_t req)
{
	struct fs_ctx *fs = q->fs;
	pid_t tid = fuse_req_ctx(req)->pid, cand[NAMES_PROBE], me;
	int64_t now = mono_ms();
	struct fs_inode *in, *found = NULL;
	int n = 0, i;

	pthread_mutex_lock(&fs->lock);
	if (q->names)
		found = pin(q, name, tid, now);
	for (in = q->names && !found ? q->names[name_slot(name)] : NULL;
	     in && n < NAMES_PROBE; in = in->nnext)
		if (live(in, name, now))
			cand[n++] = in->pusher_tid;
	pthread_mutex_unlock(&fs->lock);
	if (found || n == 0)
		return found;
	/* Another thread of the caller's process may have opened it. */
	me = fs_tgid(tid);
	for (i = 0; me && i < n && !found; i++) {
		if (fs_tgid(cand[i]) != me)
			continue;
		pthread_mutex_lock(&fs->lock);
		found = pin(q, name, cand[i], now);
		pthread_mutex_unlock(&fs->lock);
	}
	return found;
}

int fs_names_rename(struct fs_inode *in, const char *newname)
{
	char *copy = strdup(newname);
	int named = in->named;

	if (!copy)
		return -ENOMEM;
	if (named)
		unhash(in);
	free(in->name);
	in->name = copy;
	if (named) {
		size_t s = name_slot(in->name);

		in->nnext = in->q->names[s];
		in->q->names[s] = in;
		in->named = 1;
	}
	return 0;
}
