/*
 * test_wake.c - the wake hook: called when a queue gains a visible message
 * (a push into an empty queue, a delay ending, a lease running out, a
 * release, a move in, an unpause), with no engine lock held, so that the
 * callback can lease (and ack, and push) itself.
 */
#include "t.h"

/* Did the count of wakes of name go up since *seen? Updates *seen. */
#define WOKE(name, seen)                                                     \
	do {                                                                 \
		unsigned t_w_ = t_wakes(name);                               \
		if (t_w_ <= *(seen))                                         \
			T_FAIL("no wake of queue %s (count %u)", (name),     \
			       t_w_);                                        \
		*(seen) = t_w_;                                              \
	} while (0)

TEST(wake_on_push_into_empty_queue)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q"), *r = t_mkq(db, "r");
	unsigned seen = 0, seen_r = 0;

	EQ(t_wakes("q"), 0);
	t_push(q, "a");
	/* called before spool_push returned (no timer thread here) */
	WOKE("q", &seen);
	EQ(t_wakes("r"), 0);
	t_lease(q, "a");
	t_push(q, "b");
	WOKE("q", &seen);
	t_push(r, "c");
	WOKE("r", &seen_r);
	spool_queue_close(q);
	spool_queue_close(r);
	spool_close(db);
}

TEST(wake_on_batch_push)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_push p[2] = { { .body = "a", .len = 1 },
				   { .body = "b", .len = 1 } };
	unsigned seen = 0;

	OK(spool_push_batch(q, p, 2, NULL));
	WOKE("q", &seen);
	spool_queue_close(q);
	spool_close(db);
}

TEST(wake_on_delay_end)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	unsigned seen;

	t_push_delay(q, "d", 1000);
	seen = t_wakes("q");
	t_advance(999);
	spool_tick(db);
	EQ(t_wakes("q"), seen);
	t_advance(1);
	spool_tick(db);
	WOKE("q", &seen);
	spool_queue_close(q);
	spool_close(db);
}

TEST(wake_on_lease_expiry)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	unsigned seen;

	t_push(q, "a");
	t_lease(q, "a");
	seen = t_wakes("q");
	t_advance(30000);
	spool_tick(db);
	WOKE("q", &seen);
	spool_queue_close(q);
	spool_close(db);
}

TEST(wake_on_extend_into_the_past)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	unsigned seen;
	uint64_t a = t_push(q, "a");

	t_lease(q, "a");
	seen = t_wakes("q");
	OK(spool_lease_extend(q, a, 0));
	WOKE("q", &seen);
	spool_queue_close(q);
	spool_close(db);
}

TEST(wake_on_release)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	unsigned seen;
	uint64_t a = t_push(q, "a");

	t_lease(q, "a");
	seen = t_wakes("q");
	OK(spool_release(q, a, 0));
	WOKE("q", &seen);
	t_lease(q, "a");
	OK(spool_release(q, a, 1));
	WOKE("q", &seen);
	spool_queue_close(q);
	spool_close(db);
}

TEST(wake_on_move_in)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q"), *r = t_mkq(db, "r");
	unsigned seen_r = 0, seen_q;
	uint64_t a = t_push(q, "a"), d;

	t_push(q, "b");
	t_push(q, "c");
	OK(spool_move(q, a, SPOOL_VISIBLE, r));
	WOKE("r", &seen_r);
	OK(spool_lease_id(r, a, &(struct spool_msg_info){ 0 }));
	OK(spool_move_all(q, r, 0, NULL));
	WOKE("r", &seen_r);
	/* a delayed message made visible in place */
	d = t_push_delay(q, "d", 5000);
	seen_q = t_wakes("q");
	OK(spool_move(q, d, SPOOL_DELAYED, q));
	WOKE("q", &seen_q);
	spool_queue_close(q);
	spool_queue_close(r);
	spool_close(db);
}

TEST(wake_on_unpause)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	unsigned seen;

	t_config(q, "paused=1");
	t_push(q, "a");
	seen = t_wakes("q");
	t_config(q, "paused=0");
	WOKE("q", &seen);
	spool_queue_close(q);
	spool_close(db);
}

/* ------------------------------------------- a callback that consumes */

static spool_queue *side;               /* where the hook pushes */
static int hook_rc = 1;
static char hook_body[64];
static size_t hook_n;
static uint64_t hook_id;
static int hook_calls;

/* A reader parked on the queue: lease at once, ack, and tell another
 * queue, all from inside the callback. */
static void consume_hook(spool_queue *q)
{
	struct spool_msg_info i;
	struct spool_stats s;

	hook_calls++;
	if (q == side || !strcmp(spool_queue_name(q), "side")) {
		/* the side queue's reader: consume, record nothing */
		char b[8];
		size_t n;

		if (spool_lease_next(q, b, sizeof b, &n, &i) == 0 &&
		    spool_ack(q, i.id))
			hook_rc = -1002;
		return;
	}
	hook_rc = spool_lease_next(q, hook_body, sizeof hook_body, &hook_n,
				   &i);
	if (hook_rc)
		return;
	hook_id = i.id;
	if (spool_stats_get(q, &s) || spool_ack(q, i.id))
		hook_rc = -1000;
	if (side) {
		struct spool_push p = { .body = "seen", .len = 4 };

		if (spool_push(side, &p, NULL))
			hook_rc = -1001;
	}
}

TEST_T(wake_callback_may_lease, 20)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	uint64_t a, d;

	side = t_mkq(db, "side");
	t_wake_hook = consume_hook;
	/* from spool_push */
	a = t_push(q, "pushed");
	EQ(hook_rc, 0);
	EQU(hook_id, a);
	CHECK_MEM(hook_body, hook_n, "pushed", 6);
	EQ(t_state(q, a), 0);
	/* from spool_tick: a delay ending */
	hook_rc = 1;
	d = t_push_delay(q, "delayed", 100);
	t_advance(100);
	spool_tick(db);
	EQ(hook_rc, 0);
	EQU(hook_id, d);
	CHECK_MEM(hook_body, hook_n, "delayed", 7);
	/* from spool_tick: a lease running out */
	t_wake_hook = NULL;
	a = t_push(q, "again");
	t_lease(q, "again");
	t_wake_hook = consume_hook;
	hook_rc = 1;
	t_advance(30000);
	spool_tick(db);
	EQ(hook_rc, 0);
	EQU(hook_id, a);
	/* from a release and a move in */
	t_wake_hook = NULL;
	a = t_push(q, "released");
	t_lease(q, "released");
	t_wake_hook = consume_hook;
	hook_rc = 1;
	OK(spool_release(q, a, 0));
	EQ(hook_rc, 0);
	EQU(hook_id, a);
	t_wake_hook = NULL;
	spool_queue *r = t_mkq(db, "r");
	a = t_push(r, "moved");
	t_wake_hook = consume_hook;
	hook_rc = 1;
	OK(spool_move(r, a, SPOOL_VISIBLE, q));
	EQ(hook_rc, 0);
	EQU(hook_id, a);
	t_wake_hook = NULL;
	{
		struct spool_stats s = t_stats(q);

		EQU(s.visible + s.delayed + s.leased, 0);
		EQU(s.acked_total, 5);
		EQU(s.expired_total, 1);
	}
	/* the side queue got the pushes the hook made (and consumed them:
	 * its own wakes ran the hook too) */
	EQU(t_stats(side).pushed_total, 5);
	EQU(t_stats(side).acked_total, 5);
	spool_queue_close(r);
	spool_queue_close(side);
	spool_queue_close(q);
	spool_close(db);
}

/* A second front end in the process subscribes too: every subscriber hears
 * every wake, the options' hook first; a fifth subscriber is refused. */
static atomic_int sub_calls[4];
static spool_queue *sub_last;

static void sub_wake(void *arg, spool_queue *q)
{
	atomic_fetch_add(&sub_calls[(intptr_t)arg], 1);
	sub_last = q;
}

TEST(wake_subscribers_all_hear)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	unsigned seen = 0;

	for (intptr_t i = 0; i < 4; i++)
		OK(spool_wake_subscribe(db, sub_wake, (void *)i));
	RC(spool_wake_subscribe(db, sub_wake, NULL), -ENOSPC);
	t_push(q, "a");
	WOKE("q", &seen);
	for (int i = 0; i < 4; i++)
		EQ(atomic_load(&sub_calls[i]), 1);
	CHECK(sub_last == q);
	t_lease(q, "a");
	t_config(q, "paused=1");
	t_push(q, "b");
	t_config(q, "paused=0");
	for (int i = 0; i < 4; i++)
		EQ(atomic_load(&sub_calls[i]), t_wakes("q"));
	spool_queue_close(q);
	spool_close(db);
}

/* The first tick runs inside spool_open (leases that ran out while the
 * store was closed): a wake callback may already call back into the
 * engine then. */
TEST(wake_callback_during_open)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	uint64_t a = t_push(q, "expired while closed");

	t_lease(q, "expired while closed");
	spool_queue_close(q);
	spool_close(db);
	t_advance(60000);
	side = NULL;
	hook_rc = 1;
	t_wake_hook = consume_hook;
	db = t_open();
	t_wake_hook = NULL;
	EQ(hook_rc, 0);
	EQU(hook_id, a);
	q = t_q(db, "q");
	EQU(t_stats(q).acked_total, 1);
	EQU(t_stats(q).expired_total, 1);
	spool_queue_close(q);
	spool_close(db);
}

/* The change hook (spool_change_fn): every call that can take a message
 * out of a listing or change its attributes calls it with its queue
 * before it returns, a tick with NULL; a push does not. One subscriber. */
static atomic_int change_calls, change_null;
static spool_queue *change_last;

static void on_change(void *arg, spool_queue *q)
{
	CHECK(arg == &change_calls);
	atomic_fetch_add(&change_calls, 1);
	if (!q)
		atomic_fetch_add(&change_null, 1);
	change_last = q;
}

/* Did the change hook run for q since the last check? */
#define CHANGED(q)                                                           \
	do {                                                                 \
		if (atomic_exchange(&change_calls, 0) < 1)                   \
			T_FAIL("no change call");                            \
		CHECK(change_last == (q));                                   \
	} while (0)

TEST(change_hook_hears_each_change)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_queue_attr attr;
	uint64_t a, b, n;

	EQ(spool_shared(db), strstr(t_store, "redis") == t_store);
	OK(spool_change_subscribe(db, on_change, &change_calls));
	RC(spool_change_subscribe(db, on_change, &change_calls), -EBUSY);
	a = t_push(q, "a");
	b = t_push(q, "b");
	EQ(atomic_load(&change_calls), 0);      /* pushes take nothing out */
	CHECK(t_lease(q, "a") == a);
	CHANGED(q);
	OK(spool_lease_extend(q, a, spool_now(db) + 60000));
	CHANGED(q);
	OK(spool_release(q, a, 0));
	CHANGED(q);
	OK(spool_delete(q, b, SPOOL_VISIBLE));
	CHANGED(q);
	CHECK(t_lease(q, "a") == a);
	CHANGED(q);
	OK(spool_ack(q, a));
	CHANGED(q);
	t_push(q, "c");
	OK(spool_purge(q, &n));
	EQU(n, 1);
	CHANGED(q);
	OK(spool_queue_getattr(q, &attr));
	attr.mode = 0700;
	OK(spool_queue_setattr(q, &attr));
	CHANGED(q);
	atomic_store(&change_null, 0);
	spool_tick(db);
	CHECK(atomic_load(&change_null) >= 1);
	spool_queue_close(q);
	spool_close(db);
}
