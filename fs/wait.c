/*
 * wait.c - parked readers: a read of an empty next, claim or pop holds no
 * daemon thread. Its request is parked on the queue and answered later by
 * the engine's wake hook (a message became visible), by an interrupt
 * (EINTR), by its receive_wait deadline (EAGAIN) or by shutdown (EINTR).
 *
 * Ownership: whoever moves a waiter from WAITING to CLAIMED (under the
 * wait lock, fs->wait.lock) answers its request, exactly once. Rules that
 * keep libfuse safe (its interrupt callback runs under the request's own
 * lock):
 *  - the interrupt callback never replies: it hands the waiter to the
 *    deadline thread, which replies EINTR;
 *  - before replying, the owner calls fuse_req_interrupt_func(req, NULL,
 *    NULL), which waits out a callback still running;
 *  - a waiter is "armed" only once its callback registration returned;
 *    nobody but the parker itself answers an unarmed waiter;
 *  - the wait lock is never held while calling into libfuse or the engine.
 * Lost wakeups: each queue has a wake sequence number, bumped by every wake.
 * A parker notes it before trying to lease and parks only if it did not
 * change; a wake that found the waiter unarmed makes the parker, once armed,
 * run the wake itself.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs.h"

enum { W_WAITING, W_CLAIMED };

struct fs_waiter {
	fuse_req_t req;
	struct fs_rfile *f;
	size_t size;
	off_t off;
	fs_wait_try_fn *try;        /* answers req, or -EAGAIN */
	int64_t deadline;           /* CLOCK_MONOTONIC ms; INT64_MAX: none */
	_Atomic int st;
	_Atomic int refs;
	int armed;                  /* protected by the wait lock */
	int linked;                 /* protected by the wait lock */
	struct fs_waiter *prev, *next;   /* q->waiters */
	struct fs_waiter *gprev, *gnext; /* all parked */
	struct fs_waiter *rnext;    /* reaper list */
};


static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void waiter_put(struct fs_waiter *w)
{
	if (atomic_fetch_sub(&w->refs, 1) == 1)
		free(w);
}

/* The wait lock held. */
static void waiter_unlink(struct fs_waiter *w)
{
	struct fs_queue *q = w->f->q;
	struct fs_wait *wt = &q->fs->wait;

	if (!w->linked)
		return;
	if (w->prev)
		w->prev->next = w->next;
	else
		q->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		q->waiters_tail = w->prev;
	if (w->gprev)
		w->gprev->gnext = w->gnext;
	else
		wt->all = w->gnext;
	if (w->gnext)
		w->gnext->gprev = w->gprev;
	w->linked = 0;
}

/* The wait lock held. At the head keeps a re-parked reader first. */
static void waiter_link(struct fs_waiter *w, int head)
{
	struct fs_queue *q = w->f->q;
	struct fs_wait *wt = &q->fs->wait;

	w->prev = head ? NULL : q->waiters_tail;
	w->next = head ? q->waiters : NULL;
	if (w->prev)
		w->prev->next = w;
	else
		q->waiters = w;
	if (w->next)
		w->next->prev = w;
	else
		q->waiters_tail = w;
	w->gprev = NULL;
	w->gnext = wt->all;
	if (wt->all)
		wt->all->gprev = w;
	wt->all = w;
	w->linked = 1;
}

/* The wait lock held. Takes w if still waiting; returns 1 if taken. */
static int waiter_claim(struct fs_waiter *w)
{
	int exp = W_WAITING;

	if (!atomic_compare_exchange_strong(&w->st, &exp, W_CLAIMED))
		return 0;
	waiter_unlink(w);
	return 1;
}

/* Answers a claimed waiter with an error and drops it. */
static void waiter_fail(struct fs_waiter *w, int err)
{
	fuse_req_interrupt_func(w->req, NULL, NULL);
	fuse_reply_err(w->req, err);
	waiter_put(w);
}

/* Runs with libfuse's lock on req held: must not reply. */
static void waiter_interrupted(fuse_req_t req, void *data)
{
	struct fs_waiter *w = data;
	struct fs_wait *wt = &w->f->q->fs->wait;

	(void)req;
	pthread_mutex_lock(&wt->lock);
	if (waiter_claim(w)) {
		w->rnext = wt->reaped;
		wt->reaped = w;
		pthread_cond_signal(&wt->cond);
	}
	pthread_mutex_unlock(&wt->lock);
}

uint64_t fs_wait_seq(struct fs_queue *q)
{
	struct fs_wait *wt = &q->fs->wait;
	uint64_t seq;

	pthread_mutex_lock(&wt->lock);
	seq = q->wake_seq;
	pthread_mutex_unlock(&wt->lock);
	return seq;
}

/*
 * Parks w unless q was woken since seq (then -EAGAIN: try again). Returns
 * 1 if a wake came while w was being armed (the caller must serve q), else
 * 0. After this returns, w may already be answered and freed.
 */
static int park(struct fs_waiter *w, uint64_t seq, int head)
{
	struct fs_queue *q = w->f->q;
	struct fs_wait *wt = &q->fs->wait;
	int kick;

	pthread_mutex_lock(&wt->lock);
	if (q->wake_seq != seq || wt->stopping) {
		int stopping = wt->stopping;

		pthread_mutex_unlock(&wt->lock);
		return stopping ? -EINTR : -EAGAIN;
	}
	atomic_store(&w->st, W_WAITING);
	atomic_fetch_add(&w->refs, 1);
	w->armed = 0;
	waiter_link(w, head);
	pthread_mutex_unlock(&wt->lock);

	fuse_req_interrupt_func(w->req, waiter_interrupted, w);

	pthread_mutex_lock(&wt->lock);
	w->armed = 1;
	kick = q->wake_seq != seq && atomic_load(&w->st) == W_WAITING;
	if (w->deadline != INT64_MAX)
		pthread_cond_signal(&wt->cond);
	pthread_mutex_unlock(&wt->lock);
	waiter_put(w);
	return kick;
}

/*
 * Serves claimed waiter w: answers it, or parks it again at the head.
 * Returns 1 if the queue should be served again (a message may be left).
 */
static int serve_one(struct fs_waiter *w)
{
	for (;;) {
		uint64_t seq = fs_wait_seq(w->f->q);
		int rc = w->try(w->req, w->f, w->size, w->off);

		if (rc == 0) {
			waiter_put(w);
			return 1;
		}
		if (rc != -EAGAIN) {
			fuse_reply_err(w->req, -rc);
			waiter_put(w);
			return 1;
		}
		rc = park(w, seq, 1);
		if (rc == -EINTR) {
			fuse_reply_err(w->req, EINTR);
			waiter_put(w);
			return 0;
		}
		if (rc >= 0)
			return rc;
	}
}

/* The wait lock held. The first armed waiter of q, claimed. */
static struct fs_waiter *first_armed(struct fs_queue *q)
{
	struct fs_waiter *w;

	for (w = q->waiters; w; w = w->next)
		if (w->armed && waiter_claim(w))
			return w;
	return NULL;
}

static void serve(struct fs_queue *q)
{
	struct fs_wait *wt = &q->fs->wait;
	struct fs_waiter *w;

	for (;;) {
		pthread_mutex_lock(&wt->lock);
		w = first_armed(q);
		pthread_mutex_unlock(&wt->lock);
		if (!w)
			return;
		fuse_req_interrupt_func(w->req, NULL, NULL);
		if (!serve_one(w))
			return;
	}
}

/* The wait lock held. Takes the poll handles of q's pollers into an
 * array (malloc'd, NULL-terminated); NULL if none or out of memory. */
static struct fuse_pollhandle **polls_take(struct fs_queue *q)
{
	struct fuse_pollhandle **phs;
	struct fs_rfile *f, *n;
	size_t count = 0;

	for (f = q->polls; f; f = f->pnext)
		count++;
	if (count == 0)
		return NULL;
	phs = calloc(count + 1, sizeof *phs);
	if (!phs)
		return NULL;
	count = 0;
	for (f = q->polls; f; f = n) {
		n = f->pnext;
		if (f->ph)
			phs[count++] = f->ph;
		f->ph = NULL;
		f->pnext = NULL;
		f->polled = 0;
	}
	q->polls = NULL;
	return phs;
}

static void polls_notify(struct fuse_pollhandle **phs)
{
	size_t i;

	for (i = 0; phs && phs[i]; i++) {
		fuse_lowlevel_notify_poll(phs[i]);
		fuse_pollhandle_destroy(phs[i]);
	}
	free(phs);
}

/* arg: the struct fs_ctx given with the hook (main.c). */
void fs_wake(void *arg, spool_queue *sq)
{
	struct fs_ctx *fs = arg;
	struct fs_queue *q = fs_queue_of(fs, sq);
	struct fs_wait *wt = &fs->wait;
	struct fuse_pollhandle **polls;

	if (!q)
		return;
	pthread_mutex_lock(&wt->lock);
	q->wake_seq++;
	polls = polls_take(q);
	pthread_mutex_unlock(&wt->lock);
	polls_notify(polls);
	serve(q);
}

void fs_wait_park(fuse_req_t req, struct fs_rfile *f, size_t size, off_t off,
		  uint64_t seq, fs_wait_try_fn *try)
{
	struct fs_waiter *w = calloc(1, sizeof *w);
	struct spool_settings s;
	int rc;

	if (!w) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	w->req = req;
	w->f = f;
	w->size = size;
	w->off = off;
	w->try = try;
	w->refs = 1;
	w->deadline = INT64_MAX;
	if (spool_settings_get(f->q->sq, &s) == 0 && s.receive_wait_ms >= 0)
		w->deadline = mono_ms() + s.receive_wait_ms;
	while ((rc = park(w, seq, 0)) == -EAGAIN) {
		seq = fs_wait_seq(f->q);
		rc = try(req, f, size, off);
		if (rc != -EAGAIN) {
			if (rc < 0)
				fuse_reply_err(req, -rc);
			free(w);
			return;
		}
	}
	if (rc == -EINTR) {
		fuse_reply_err(req, EINTR);
		free(w);
	} else if (rc == 1)
		serve(f->q);
}

/* ---------------------------------------------------- deadline thread */

/* The wait lock held. Claims the armed waiters past their deadline. */
static struct fs_waiter *claim_expired(struct fs_wait *wt, int64_t now,
				       int64_t *next)
{
	struct fs_waiter *w, *out = NULL;

	*next = INT64_MAX;
	for (w = wt->all; w; w = w->gnext) {
		if (!w->armed || w->deadline > now) {
			if (w->deadline < *next)
				*next = w->deadline;
			continue;
		}
		w->rnext = out;
		out = w;
	}
	for (w = out; w; w = w->rnext)
		waiter_claim(w);
	return out;
}

static void answer_all(struct fs_waiter *list, int err)
{
	while (list) {
		struct fs_waiter *w = list;

		list = w->rnext;
		waiter_fail(w, err);
	}
}

static void sleep_until(struct fs_wait *wt, int64_t next)
{
	struct timespec ts;

	if (next == INT64_MAX) {
		pthread_cond_wait(&wt->cond, &wt->lock);
		return;
	}
	next += 1; /* a deadline within this ms counts as passed after it */
	ts.tv_sec = next / 1000;
	ts.tv_nsec = next % 1000 * 1000000;
	pthread_cond_timedwait(&wt->cond, &wt->lock, &ts);
}

static void *wait_main(void *arg)
{
	struct fs_wait *wt = arg;
	struct fs_waiter *expired, *intr;
	int64_t next;

	pthread_mutex_lock(&wt->lock);
	while (!wt->stopping) {
		intr = wt->reaped;
		wt->reaped = NULL;
		expired = claim_expired(wt, mono_ms(), &next);
		if (intr || expired) {
			pthread_mutex_unlock(&wt->lock);
			answer_all(intr, EINTR);
			answer_all(expired, EAGAIN);
			pthread_mutex_lock(&wt->lock);
			continue;
		}
		sleep_until(wt, next);
	}
	pthread_mutex_unlock(&wt->lock);
	return NULL;
}

/* fs->wait's lock and (CLOCK_MONOTONIC) condition are made by
 * fs_ctx_new. */
int fs_wait_start(struct fs_ctx *fs)
{
	struct fs_wait *wt = &fs->wait;
	int rc;

	rc = pthread_create(&wt->thread, NULL, wait_main, wt);
	if (rc)
		return -rc;
	wt->running = 1;
	return 0;
}

void fs_wait_stop(struct fs_ctx *fs)
{
	struct fs_wait *wt = &fs->wait;
	struct fs_waiter *list = NULL, *w;

	pthread_mutex_lock(&wt->lock);
	wt->stopping = 1;
	pthread_cond_signal(&wt->cond);
	pthread_mutex_unlock(&wt->lock);
	if (wt->running)
		pthread_join(wt->thread, NULL);
	wt->running = 0;
	pthread_mutex_lock(&wt->lock);
	for (w = wt->all; w; w = w->gnext)
		if (w->armed) {
			w->rnext = list;
			list = w;
		}
	for (w = list; w; w = w->rnext)
		waiter_claim(w);
	list = list ? list : NULL;
	w = wt->reaped;
	wt->reaped = NULL;
	pthread_mutex_unlock(&wt->lock);
	answer_all(list, EINTR);
	answer_all(w, EINTR);
}

/* --------------------------------------------------------------- poll */

static unsigned ready_mask(struct fs_rfile *f)
{
	struct spool_stats st;
	struct spool_settings s;
	int bound;

	pthread_mutex_lock(&f->lock);
	bound = f->bound;
	pthread_mutex_unlock(&f->lock);
	if (bound)
		return POLLIN | POLLRDNORM;
	if (spool_stats_get(f->q->sq, &st) < 0)
		return POLLERR;
	if (spool_settings_get(f->q->sq, &s) == 0 && s.paused)
		return 0;
	return st.visible > 0 ? POLLIN | POLLRDNORM : 0;
}

void fs_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
	     struct fuse_pollhandle *ph)
{
	struct fs_file *file = (struct fs_file *)(uintptr_t)fi->fh;
	struct fs_rfile *f = file->r;
	struct fs_wait *wt = &fs_of(req)->wait;
	struct fuse_pollhandle *old = NULL;

	(void)ino;
	if (!f) {
		if (ph)
			fuse_pollhandle_destroy(ph);
		fuse_reply_poll(req, file->w ? POLLOUT | POLLWRNORM
					     : POLLIN | POLLRDNORM);
		return;
	}
	if (ph) {
		pthread_mutex_lock(&wt->lock);
		old = f->ph;
		f->ph = ph;
		if (!f->polled) {
			f->polled = 1;
			f->pnext = f->q->polls;
			f->q->polls = f;
		}
		pthread_mutex_unlock(&wt->lock);
	}
	if (old)
		fuse_pollhandle_destroy(old);
	fuse_reply_poll(req, ready_mask(f));
}

void fs_poll_drop(struct fs_rfile *f)
{
	struct fs_wait *wt = &f->q->fs->wait;
	struct fs_rfile **p;
	struct fuse_pollhandle *ph;

	pthread_mutex_lock(&wt->lock);
	if (f->polled)
		for (p = &f->q->polls; *p; p = &(*p)->pnext)
			if (*p == f) {
				*p = f->pnext;
				break;
			}
	f->polled = 0;
	ph = f->ph;
	f->ph = NULL;
	pthread_mutex_unlock(&wt->lock);
	if (ph)
		fuse_pollhandle_destroy(ph);
}
