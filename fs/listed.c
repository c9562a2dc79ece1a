/*
 * listed.c - what the kernel keeps of a listing of messages, kept true.
 *
 * READDIRPLUS of peek/, delayed/ and leased/ gives each entry with its
 * node and attributes, which the kernel keeps for FS_LIST_TIMEOUT: `ls -l`
 * then makes no request per entry (issue 15, docs/decisions.md). Such an
 * entry is true until its message leaves that state or its attributes
 * change, which the engine tells (spool_change_fn) before the call that
 * made the change returns. While entries given that way may still be
 * kept, each such change increments the connection's epoch
 * (FUSE_NOTIFY_INC_EPOCH, Linux 6.16, protocol 7.44) before it is
 * answered: every name the kernel holds is then looked up again before
 * use. A program that lists, acts, then looks sees its own change.
 *
 * The epoch takes no lock in the kernel. An inval_entry takes the
 * directory's, which the caller whose request made the change may hold
 * (a rename's release handing a message to a parked reader): that
 * deadlocked, and is not used.
 *
 * The kernel stamps an entry with the epoch when it links it, after our
 * reply is written: a change between the listing's read and that moment
 * would be stamped over. So a change while a listing is being answered,
 * or just after, also asks the keeper thread for increments 10 ms,
 * 100 ms and 1 s later.
 *
 * Off (a plain READDIR: the kernel keeps nothing, `ls -l` asks for each
 * name) when the kernel is older, or when other hosts change the store
 * (spool_shared), since their changes are not told here.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"

/* The kernel's notification header (struct fuse_out_header) and code. */
struct notify_header {
	uint32_t len;
	int32_t code;
	uint64_t unique;            /* 0: a notification */
};
#define NOTIFY_INC_EPOCH 8
#define PROTO_INC_EPOCH 44          /* the first 7.x that has it */

/* How long after a listing's reply its entries may still be linked. */
#define LINK_SLACK_MS 2000
/* The keeper's increments after a change during a listing, ms. */
static const int64_t again_ms[] = { 10, 100, 1000 };

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void bump(struct fs_ctx *fs)
{
	struct notify_header h = { sizeof h, NOTIFY_INC_EPOCH, 0 };

	if (write(fuse_session_fd(fs->se), &h, sizeof h) == (ssize_t)sizeof h)
		atomic_fetch_add(&fs->listed.bumps, 1);
	else if (errno != ENOENT && errno != ENODEV &&
		 !atomic_exchange(&fs->listed.warned, 1))
		fs_log(SPOOL_LOG_WARN, "FUSE_NOTIFY_INC_EPOCH: %s",
		       strerror(errno));
}

int fs_listed_wanted(struct fs_ctx *fs, const struct fuse_conn_info *conn)
{
	fs->listed.on = conn->proto_minor >= PROTO_INC_EPOCH &&
			(conn->capable & FUSE_CAP_READDIRPLUS) &&
			!spool_shared(fs->db);
	return fs->listed.on;
}

/* The engine's spool_change_fn. */
static void changed(void *arg, spool_queue *q)
{
	struct fs_ctx *fs = arg;
	struct fs_listed *l = &fs->listed;
	int64_t now;

	(void)q;
	/* Pairs with fs_listed_begin's: either that listing reads this
	 * change, or this sees its window open. */
	atomic_thread_fence(memory_order_seq_cst);
	now = mono_ms();
	if (now >= atomic_load(&l->until))
		return;
	bump(fs);
	if (atomic_load(&l->answering) == 0 &&
	    now - atomic_load(&l->answered) > LINK_SLACK_MS)
		return;
	pthread_mutex_lock(&l->lock);
	l->again = now;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

/* Sleeps until mono_ms() reaches t or the keeper stops; l->lock held. */
static void sleep_until(struct fs_listed *l, int64_t t)
{
	struct timespec ts = { t / 1000, t % 1000 * 1000000 };

	while (!l->stopping && mono_ms() < t)
		pthread_cond_timedwait(&l->cond, &l->lock, &ts);
}

static void *keeper_main(void *arg)
{
	struct fs_ctx *fs = arg;
	struct fs_listed *l = &fs->listed;

	pthread_mutex_lock(&l->lock);
	while (!l->stopping) {
		int64_t from = l->again;
		size_t i;

		if (!from) {
			pthread_cond_wait(&l->cond, &l->lock);
			continue;
		}
		/* a later change starts the steps again from it */
		for (i = 0; i < sizeof again_ms / sizeof again_ms[0] &&
			    l->again == from && !l->stopping; i++) {
			sleep_until(l, from + again_ms[i]);
			if (l->stopping)
				break;
			pthread_mutex_unlock(&l->lock);
			bump(fs);
			pthread_mutex_lock(&l->lock);
		}
		if (l->again == from)
			l->again = 0;
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

int fs_listed_start(struct fs_ctx *fs)
{
	struct fs_listed *l = &fs->listed;
	pthread_condattr_t ca;
	int rc;

	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	l->ready = 1;
	rc = pthread_create(&l->thread, NULL, keeper_main, fs);
	if (rc) {
		fs_log(SPOOL_LOG_ERR, "listing keeper thread: %s",
		       strerror(rc));
		return -rc;
	}
	l->running = 1;
	rc = spool_change_subscribe(fs->db, changed, fs);
	if (rc < 0)
		fs_log(SPOOL_LOG_ERR, "change subscription: %s",
		       strerror(-rc));
	return rc;
}

/* The engine may still call changed() (its timer thread runs until
 * spool_close): that only writes to the session's fd, still open. */
void fs_listed_stop(struct fs_ctx *fs)
{
	struct fs_listed *l = &fs->listed;

	if (!l->ready)
		return;
	if (l->running) {
		pthread_mutex_lock(&l->lock);
		l->stopping = 1;
		pthread_cond_signal(&l->cond);
		pthread_mutex_unlock(&l->lock);
		pthread_join(l->thread, NULL);
		l->running = 0;
	}
}

void fs_listed_free(struct fs_ctx *fs)
{
	if (!fs->listed.ready)
		return;
	pthread_cond_destroy(&fs->listed.cond);
	pthread_mutex_destroy(&fs->listed.lock);
}

/* Opens the window before the listing is read. */
void fs_listed_begin(struct fs_ctx *fs)
{
	struct fs_listed *l = &fs->listed;
	int64_t until = mono_ms() + (int64_t)(FS_LIST_TIMEOUT * 1000) +
			LINK_SLACK_MS;

	atomic_fetch_add(&l->answering, 1);
	for (int64_t u = atomic_load(&l->until);
	     u < until && !atomic_compare_exchange_weak(&l->until, &u, until);)
		;
	atomic_thread_fence(memory_order_seq_cst);
}

/* After the reply is written: the kernel links the entries from now on. */
void fs_listed_end(struct fs_ctx *fs)
{
	struct fs_listed *l = &fs->listed;
	int64_t now = mono_ms(),
		until = now + (int64_t)(FS_LIST_TIMEOUT * 1000) + LINK_SLACK_MS;

	atomic_store(&l->answered, now);
	for (int64_t u = atomic_load(&l->until);
	     u < until && !atomic_compare_exchange_weak(&l->until, &u, until);)
		;
	atomic_fetch_sub(&l->answering, 1);
}
