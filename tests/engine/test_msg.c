/*
 * test_msg.c - messages: push (one and batch, limits), ordering, delays,
 * leasing, lease expiry and receive counts, ack/release/extend, delete,
 * move, move_all, pop, purge, reading bodies/names/attributes, renaming,
 * listings with cursors, and the counters after every step.
 */
#include "t.h"

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rng(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

/* ------------------------------------------------------------- push */

TEST(push_basic)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_push p = { .body = "hello", .len = 5, .name = "h.txt" };
	struct spool_msg_info i;
	char buf[16];
	uint64_t id, e;

	OK(spool_push(q, &p, &id));
	memset(&i, 0x5a, sizeof i);
	OK(spool_msg_stat(q, id, &i));
	EQU(i.id, id);
	EQ(i.state, SPOOL_VISIBLE);
	EQ(i.priority, 0);
	EQU(i.receives, 0);
	EQU(i.size, 5);
	EQ(i.sent_ms, T_CLOCK_START);
	EQ(i.due_ms, T_CLOCK_START);
	EQ(i.first_received_ms, 0);
	EQ(spool_msg_read(q, id, 0, buf, sizeof buf), 5);
	CHECK_MEM(buf, 5, "hello", 5);
	/* an empty body; no id wanted */
	p = (struct spool_push){ .body = NULL, .len = 0 };
	OK(spool_push(q, &p, NULL));
	p.body = "";
	OK(spool_push(q, &p, &e));
	EQU(t_stat(q, e).size, 0);
	EQ(spool_msg_read(q, e, 0, buf, sizeof buf), 0);
	CHECK_STATS(q, 3, 0, 0, 5, 3, 0, 0, 0);
	/* a message is in its own queue only */
	spool_queue *r = t_mkq(db, "r");
	RC(spool_msg_stat(r, id, &i), -ENOENT);
	RC(spool_msg_read(r, id, 0, buf, sizeof buf), -ENOENT);
	RC(spool_ack(r, id), -ENOENT);
	RC(spool_delete(r, id, SPOOL_VISIBLE), -ENOENT);
	RC(spool_msg_stat(q, 12345, &i), -ENOENT);
	spool_queue_close(r);
	spool_queue_close(q);
	spool_close(db);
}

TEST(push_priority_order)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	static const struct {
		const char *body;
		int32_t prio;
	} in[] = {
		{ "A0", 0 }, { "B5", 5 }, { "C0", 0 }, { "D-3", -3 },
		{ "E5", 5 }, { "Fmax", INT32_MAX }, { "Gmin", INT32_MIN },
		{ "H1", 1 }, { "I-3", -3 }, { "J0", 0 },
	};
	static const char *out[] = { "Fmax", "B5", "E5", "H1", "A0", "C0",
				     "J0", "D-3", "I-3", "Gmin" };
	struct spool_msg_info info;
	char buf[8];
	size_t i, n;

	for (i = 0; i < 10; i++)
		EQ(t_stat(q, t_push_prio(q, in[i].body, in[i].prio)).priority,
		   in[i].prio);
	/* interleave: take two, push a middle one, take the rest */
	t_lease(q, out[0]);
	t_lease(q, out[1]);
	t_push_prio(q, "K5", 5);    /* after E5 (same priority, later) */
	t_push_prio(q, "L2", 2);    /* before H1 */
	t_lease(q, "E5");
	t_lease(q, "K5");
	t_lease(q, "L2");
	for (i = 3; i < 10; i++)
		t_lease(q, out[i]);
	RC(spool_lease_next(q, buf, sizeof buf, &n, &info), -EAGAIN);
	spool_queue_close(q);
	spool_close(db);
}

TEST(push_too_big_efbig)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	static char big[1048577];
	struct spool_push p = { .body = big, .len = sizeof big };
	uint64_t id = 0;

	memset(big, 'b', sizeof big);
	RC(spool_push(q, &p, &id), -EFBIG);       /* default 1 MiB + 1 */
	p.len = 1048576;
	OK(spool_push(q, &p, &id));
	EQU(t_stat(q, id).size, 1048576);
	t_config(q, "max_size=10");
	p.len = 11;
	RC(spool_push(q, &p, NULL), -EFBIG);
	p.len = 10;
	OK(spool_push(q, &p, NULL));
	CHECK_STATS(q, 2, 0, 0, 1048586, 2, 0, 0, 0);
	spool_queue_close(q);
	spool_close(db);
}

TEST(push_max_depth_edquot)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_push p = { .body = "x", .len = 1 };
	uint64_t a, b, c;

	t_config(q, "max_depth=3");
	a = t_push(q, "a");
	b = t_push_delay(q, "b", 1000);
	c = t_push(q, "c");
	RC(spool_push(q, &p, NULL), -EDQUOT);
	/* leased messages count too */
	EQU(t_lease(q, "a"), a);
	RC(spool_push(q, &p, NULL), -EDQUOT);
	CHECK_STATS(q, 1, 1, 1, 3, 3, 0, 0, 0);
	OK(spool_ack(q, a));
	OK(spool_push(q, &p, NULL));
	RC(spool_push(q, &p, NULL), -EDQUOT);
	/* raising the limit lets more in; 0 means no limit */
	t_config(q, "max_depth=0");
	for (int i = 0; i < 10; i++)
		OK(spool_push(q, &p, NULL));
	CHECK_STATS(q, 12, 1, 0, 13, 14, 1, 0, 0);
	(void)b;
	(void)c;
	spool_queue_close(q);
	spool_close(db);
}

TEST(push_bad_attrs_einval)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	static char huge[SPOOL_ATTRS_MAX + 100];
	struct spool_attr bad_ns = { "trusted.x", "v", 1 };
	struct spool_attr bad_sys = { "security.selinux", "v", 1 };
	struct spool_attr no_ns = { "colour", "v", 1 };
	struct spool_attr big = { "user.big", huge, sizeof huge };
	struct spool_attr ok = { "user.ok", "v", 1 };
	struct spool_push p = { .body = "x", .len = 1, .nattrs = 1 };

	p.attrs = &bad_ns;
	RC(spool_push(q, &p, NULL), -EINVAL);
	p.attrs = &bad_sys;
	RC(spool_push(q, &p, NULL), -EINVAL);
	p.attrs = &no_ns;
	RC(spool_push(q, &p, NULL), -EINVAL);
	p.attrs = &big;
	RC(spool_push(q, &p, NULL), -EINVAL);
	p.attrs = &ok;
	p.has_delay = 1;
	p.delay_ms = -1;
	RC(spool_push(q, &p, NULL), -EINVAL);
	CHECK_STATS(q, 0, 0, 0, 0, 0, 0, 0, 0);
	p.delay_ms = 0;
	OK(spool_push(q, &p, NULL));
	CHECK_STATS(q, 1, 0, 0, 1, 1, 0, 0, 0);
	spool_queue_close(q);
	spool_close(db);
}

/* ------------------------------------------------------------ batch */

TEST(batch_push)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_attr at = { "user.k", "val", 3 };
	struct spool_push p[4] = {
		{ .body = "one", .len = 3, .name = "n1" },
		{ .body = "two", .len = 3, .has_priority = 1, .priority = 9 },
		{ .body = "three", .len = 5, .has_delay = 1, .delay_ms = 100 },
		{ .body = "four", .len = 4, .attrs = &at, .nattrs = 1 },
	};
	uint64_t first = 0, ids[8];
	char buf[16], name[SPOOL_MSG_NAME_MAX + 1];

	OK(spool_push_batch(q, p, 0, &first));    /* no-op */
	CHECK_STATS(q, 0, 0, 0, 0, 0, 0, 0, 0);
	OK(spool_push_batch(q, p, 4, &first));
	CHECK_STATS(q, 3, 1, 0, 15, 4, 0, 0, 0);
	EQ(t_state(q, first + 2), SPOOL_DELAYED);
	EQU(t_list_all(q, SPOOL_VISIBLE, ids, 8), 3);
	EQU(ids[0], first + 1);
	EQU(ids[1], first);
	EQU(ids[2], first + 3);
	OK(spool_msg_name(q, first, name));
	CHECK_STR(name, "n1");
	EQ(spool_msg_getattr(q, first + 3, "user.k", buf, sizeof buf), 3);
	CHECK_MEM(buf, 3, "val", 3);
	EQ(spool_msg_read(q, first + 2, 0, buf, sizeof buf), 5);
	CHECK_MEM(buf, 5, "three", 5);
	OK(spool_push_batch(q, p, 1, NULL));
	spool_queue_close(q);
	spool_close(db);
}

TEST(batch_all_or_none)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_attr bad = { "nouser", "v", 1 };
	struct spool_push p[5];
	static char big[11];
	uint64_t first = 0;
	char *before;
	size_t i;

	memset(p, 0, sizeof p);
	for (i = 0; i < 5; i++) {
		p[i].body = "ok";
		p[i].len = 2;
	}
	t_config(q, "max_size=10\nmax_depth=6");
	t_push(q, "already");
	before = t_snapshot(db);
	/* one body over max_size: nothing pushed */
	p[3].body = big;
	p[3].len = sizeof big;
	RC(spool_push_batch(q, p, 5, &first), -EFBIG);
	CHECK_SNAP_DB(before, db);
	p[3].body = "ok";
	p[3].len = 2;
	/* one bad attribute, one negative delay: nothing pushed */
	p[4].attrs = &bad;
	p[4].nattrs = 1;
	RC(spool_push_batch(q, p, 5, &first), -EINVAL);
	CHECK_SNAP_DB(before, db);
	p[4].attrs = NULL;
	p[4].nattrs = 0;
	p[0].has_delay = 1;
	p[0].delay_ms = -5;
	RC(spool_push_batch(q, p, 5, &first), -EINVAL);
	CHECK_SNAP_DB(before, db);
	p[0].has_delay = 0;
	/* 1 + 5 fit max_depth 6, 1 + 5 + 1 do not */
	OK(spool_push_batch(q, p, 5, &first));
	t_config(q, "max_depth=8");
	free(before);
	before = t_snapshot(db);
	RC(spool_push_batch(q, p, 3, &first), -EDQUOT);
	CHECK_SNAP_DB(before, db);
	OK(spool_push_batch(q, p, 2, &first));
	CHECK_STATS(q, 8, 0, 0, 7 + 7 * 2, 8, 0, 0, 0);
	spool_queue_close(q);
	spool_close(db);
	/* and after a reopen, still exactly those */
	db = t_open();
	q = t_q(db, "q");
	CHECK_STATS(q, 8, 0, 0, 7 + 7 * 2, 8, 0, 0, 0);
	spool_queue_close(q);
	spool_close(db);
	free(before);
}

/* ------------------------------------------------------------ delay */

TEST(delay_then_visible)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t ids[4], a, b, lo;
	char buf[8];
	size_t n;

	EQ(spool_tick(db), INT64_MAX);
	lo = t_push_prio(q, "low", -1);
	a = t_push_full(q, "delayed", 1, 5, 1, 5000);
	b = t_push_delay(q, "later", 9000);
	i = t_stat(q, a);
	EQ(i.state, SPOOL_DELAYED);
	EQ(i.due_ms, T_CLOCK_START + 5000);
	EQ(i.sent_ms, T_CLOCK_START);
	EQU(t_list_all(q, SPOOL_DELAYED, ids, 4), 2);
	EQU(ids[0], a);
	EQU(ids[1], b);
	CHECK_STATS(q, 1, 2, 0, 15, 3, 0, 0, 0);
	EQ(spool_tick(db), T_CLOCK_START + 5000);
	t_advance(4999);
	EQ(spool_tick(db), T_CLOCK_START + 5000);
	EQ(t_state(q, a), SPOOL_DELAYED);
	t_advance(1);
	EQ(spool_tick(db), T_CLOCK_START + 9000);
	i = t_stat(q, a);
	EQ(i.state, SPOOL_VISIBLE);
	EQ(i.due_ms, T_CLOCK_START + 5000);
	CHECK_STATS(q, 2, 1, 0, 15, 3, 0, 0, 0);
	/* its priority puts it before the older low one */
	EQU(t_lease(q, "delayed"), a);
	EQU(t_lease(q, "low"), lo);
	RC(spool_lease_next(q, buf, sizeof buf, &n, &i), -EAGAIN);
	/* a tick late: visible then, due_ms between due and now */
	t_advance(5000);
	spool_tick(db);
	i = t_stat(q, b);
	EQ(i.state, SPOOL_VISIBLE);
	CHECK_INT(i.due_ms, >=, T_CLOCK_START + 9000);
	CHECK_INT(i.due_ms, <=, T_CLOCK_START + 10000);
	spool_queue_close(q);
	spool_close(db);
}

/* ---------------------------------------------------------- leasing */

TEST(lease_next_info)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	char buf[16];
	size_t n = 99;
	uint64_t a, b, c;

	RC(spool_lease_next(q, buf, sizeof buf, &n, &i), -EAGAIN);
	a = t_push(q, "0123456789");
	b = t_push(q, "bee");
	c = t_push_delay(q, "later", 10);
	t_advance(7);
	memset(&i, 0x5a, sizeof i);
	OK(spool_lease_next(q, buf, sizeof buf, &n, &i));
	EQU(n, 10);
	CHECK_MEM(buf, n, "0123456789", 10);
	EQU(i.id, a);
	EQ(i.state, SPOOL_LEASED);
	EQ(i.priority, 0);
	EQU(i.receives, 1);
	EQU(i.size, 10);
	EQ(i.sent_ms, T_CLOCK_START);
	EQ(i.due_ms, T_CLOCK_START + 7 + 30000);
	EQ(i.first_received_ms, T_CLOCK_START + 7);
	/* the same through msg_stat */
	i = t_stat(q, a);
	EQ(i.state, SPOOL_LEASED);
	EQU(i.receives, 1);
	EQ(i.due_ms, T_CLOCK_START + 7 + 30000);
	/* a short buffer: n is what fits, info.size the whole */
	OK(spool_lease_next(q, buf, 2, &n, &i));
	EQU(n, 2);
	CHECK_MEM(buf, 2, "be", 2);
	EQU(i.id, b);
	EQU(i.size, 3);
	/* the delayed one is not leased */
	RC(spool_lease_next(q, buf, sizeof buf, &n, &i), -EAGAIN);
	t_advance(3);
	spool_tick(db);
	/* no buffer at all */
	OK(spool_lease_next(q, NULL, 0, &n, &i));
	EQU(n, 0);
	EQU(i.id, c);
	EQU(i.size, 5);
	CHECK_STATS(q, 0, 0, 3, 18, 3, 0, 0, 0);
	RC(spool_lease_next(q, buf, sizeof buf, &n, &i), -EAGAIN);
	spool_queue_close(q);
	spool_close(db);
}

TEST(lease_expiry_and_receives)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t a, b;

	a = t_push(q, "a");
	b = t_push(q, "b");
	EQU(t_lease(q, "a"), a);
	EQ(spool_tick(db), T_CLOCK_START + 30000);
	t_advance(29999);
	spool_tick(db);
	EQ(t_state(q, a), SPOOL_LEASED);
	t_advance(1);
	spool_tick(db);
	i = t_stat(q, a);
	EQ(i.state, SPOOL_VISIBLE);
	EQU(i.receives, 1);        /* goes up at the next lease */
	EQ(i.due_ms, T_CLOCK_START + 30000);
	EQ(i.first_received_ms, T_CLOCK_START);
	CHECK_STATS(q, 2, 0, 0, 2, 2, 0, 1, 0);
	/* back in its place: before b */
	t_lease_at(__FILE__, __LINE__, q, "a", &i);
	EQU(i.id, a);
	EQU(i.receives, 2);
	EQ(i.first_received_ms, T_CLOCK_START);
	EQ(i.due_ms, T_CLOCK_START + 60000);
	/* again, through several rounds */
	t_advance(30000);
	spool_tick(db);
	t_lease_at(__FILE__, __LINE__, q, "a", &i);
	EQU(i.receives, 3);
	CHECK_STATS(q, 1, 0, 1, 2, 2, 0, 2, 0);
	EQU(t_lease(q, "b"), b);
	t_advance(30001);
	EQ(spool_tick(db), INT64_MAX);
	CHECK_STATS(q, 2, 0, 0, 2, 2, 0, 4, 0);
	spool_queue_close(q);
	spool_close(db);
}

TEST(lease_id)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t a, b, c, d;

	a = t_push(q, "a");
	b = t_push(q, "b");
	c = t_push(q, "c");
	d = t_push_delay(q, "d", 100);
	memset(&i, 0, sizeof i);
	OK(spool_lease_id(q, b, &i));
	EQU(i.id, b);
	EQ(i.state, SPOOL_LEASED);
	EQU(i.receives, 1);
	EQ(i.due_ms, T_CLOCK_START + 30000);
	EQU(i.size, 1);
	RC(spool_lease_id(q, b, &i), -ENOENT);     /* another one won */
	RC(spool_lease_id(q, d, &i), -ENOENT);     /* not visible */
	RC(spool_lease_id(q, 777, &i), -ENOENT);
	CHECK_STATS(q, 2, 1, 1, 4, 4, 0, 0, 0);
	EQU(t_lease(q, "a"), a);
	EQU(t_lease(q, "c"), c);
	spool_queue_close(q);
	spool_close(db);
}

TEST(ack)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t a, b, c, d;

	a = t_push(q, "aa");
	b = t_push(q, "bb");
	c = t_push_delay(q, "cc", 1000);
	RC(spool_ack(q, a), -ENOENT);      /* never leased */
	RC(spool_ack(q, c), -ENOENT);      /* delayed */
	RC(spool_ack(q, 424242), -ENOENT);
	EQ(t_state(q, a), SPOOL_VISIBLE);
	CHECK_STATS(q, 2, 1, 0, 6, 3, 0, 0, 0);
	EQU(t_lease(q, "aa"), a);
	OK(spool_ack(q, a));
	EQ(t_state(q, a), 0);
	RC(spool_ack(q, a), -ENOENT);
	char buf[4];
	RC(spool_msg_read(q, a, 0, buf, sizeof buf), -ENOENT);
	CHECK_STATS(q, 1, 1, 0, 4, 3, 1, 0, 0);
	/* a lease that ran out can still be acked while nobody leased it */
	EQU(t_lease(q, "bb"), b);
	t_advance(30000);
	spool_tick(db);
	EQ(t_state(q, b), SPOOL_VISIBLE);
	OK(spool_ack(q, b));
	/* c's delay (1 s) ended too */
	CHECK_STATS(q, 1, 0, 0, 2, 3, 2, 1, 0);
	/* released (receives 1, visible): ackable too */
	d = t_push(q, "dd");
	OK(spool_lease_id(q, d, &i));
	OK(spool_release(q, d, 0));
	OK(spool_ack(q, d));
	/* released with uncount (receives 0): never leased as far as anyone
	 * knows, so not ackable */
	d = t_push(q, "ee");
	OK(spool_lease_id(q, d, &i));
	OK(spool_release(q, d, 1));
	RC(spool_ack(q, d), -ENOENT);
	spool_queue_close(q);
	spool_close(db);
}

TEST(release)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t a, b, c;
	unsigned w;

	a = t_push(q, "a");
	b = t_push(q, "b");
	c = t_push_delay(q, "c", 100);
	EQU(t_lease(q, "a"), a);
	EQU(t_lease(q, "b"), b);
	RC(spool_release(q, c, 0), -ENOENT);   /* delayed */
	RC(spool_release(q, 999, 0), -ENOENT);
	t_advance(10);
	w = t_wakes("q");
	OK(spool_release(q, b, 0));
	CHECK_U(t_wakes("q"), >, w);
	i = t_stat(q, b);
	EQ(i.state, SPOOL_VISIBLE);
	EQU(i.receives, 1);
	EQ(i.due_ms, T_CLOCK_START + 10);
	RC(spool_release(q, b, 0), -ENOENT);   /* not leased any more */
	CHECK_STATS(q, 1, 1, 1, 3, 3, 0, 0, 0);
	/* release is not an expiry */
	t_lease_at(__FILE__, __LINE__, q, "b", &i);
	EQU(i.receives, 2);
	/* uncount: the count goes back down */
	OK(spool_release(q, b, 1));
	EQU(t_stat(q, b).receives, 1);
	OK(spool_release(q, a, 1));
	EQU(t_stat(q, a).receives, 0);
	/* a first again: lower id */
	t_lease_at(__FILE__, __LINE__, q, "a", &i);
	EQU(i.receives, 1);
	t_lease_at(__FILE__, __LINE__, q, "b", &i);
	EQU(i.receives, 2);
	CHECK_STATS(q, 0, 1, 2, 3, 3, 0, 0, 0);
	spool_queue_close(q);
	spool_close(db);
}

TEST(lease_extend)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	uint64_t a, b, c;

	a = t_push(q, "a");
	b = t_push(q, "b");
	c = t_push(q, "c");
	RC(spool_lease_extend(q, a, T_CLOCK_START + 1000), -ENOENT);
	EQU(t_lease(q, "a"), a);
	EQU(t_lease(q, "b"), b);
	/* an explicit time */
	OK(spool_lease_extend(q, a, T_CLOCK_START + 100000));
	EQ(t_stat(q, a).due_ms, T_CLOCK_START + 100000);
	EQ(spool_tick(db), T_CLOCK_START + 30000);
	t_advance(50000);
	spool_tick(db);
	EQ(t_state(q, a), SPOOL_LEASED);
	EQ(t_state(q, b), SPOOL_VISIBLE);
	/* -1: now + visibility_timeout (a heartbeat) */
	OK(spool_lease_extend(q, a, -1));
	EQ(t_stat(q, a).due_ms, T_CLOCK_START + 50000 + 30000);
	t_config(q, "visibility_timeout=2.5");
	OK(spool_lease_extend(q, a, -1));
	EQ(t_stat(q, a).due_ms, T_CLOCK_START + 50000 + 2500);
	/* shortening is allowed too */
	OK(spool_lease_extend(q, a, T_CLOCK_START + 50001));
	EQ(t_stat(q, a).due_ms, T_CLOCK_START + 50001);
	EQ(spool_tick(db), T_CLOCK_START + 50001);
	/* an expiry in the past: visible at once, without a tick */
	EQU(t_lease(q, "b"), b);
	OK(spool_lease_extend(q, b, T_CLOCK_START));
	EQ(t_state(q, b), SPOOL_VISIBLE);
	EQU(t_stat(q, b).receives, 2);
	/* an expiry of exactly now: visible too */
	EQU(t_lease(q, "b"), b);
	OK(spool_lease_extend(q, b, spool_now(db)));
	EQ(t_state(q, b), SPOOL_VISIBLE);
	RC(spool_lease_extend(q, b, -1), -ENOENT);
	EQ(t_state(q, c), SPOOL_VISIBLE);
	{
		/* (whether a lease ended early by an extend counts as expired
		 * is not pinned down; the rest is) */
		struct spool_stats s = t_stats(q);

		EQU(s.visible, 2);
		EQU(s.leased, 1);
		EQU(s.bytes, 3);
		EQU(s.acked_total, 0);
		CHECK_U(s.expired_total, >=, 1);
	}
	spool_queue_close(q);
	spool_close(db);
}

/* --------------------------------------------------- delete, pop, purge */

TEST(delete_state_masks)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	uint64_t v, d, l;

	v = t_push(q, "vv");
	l = t_push(q, "lll");
	d = t_push_delay(q, "d", 100);
	EQU(t_lease(q, "vv"), v);
	OK(spool_release(q, v, 0));
	OK(spool_lease_id(q, l, &(struct spool_msg_info){ 0 }));
	RC(spool_delete(q, v, SPOOL_DELAYED | SPOOL_LEASED), -ENOENT);
	RC(spool_delete(q, d, SPOOL_VISIBLE), -ENOENT);
	RC(spool_delete(q, l, SPOOL_VISIBLE | SPOOL_DELAYED), -ENOENT);
	RC(spool_delete(q, 31337, ~0u), -ENOENT);
	CHECK_STATS(q, 1, 1, 1, 6, 3, 0, 0, 0);
	OK(spool_delete(q, v, SPOOL_VISIBLE | SPOOL_DELAYED));
	CHECK_STATS(q, 0, 1, 1, 4, 3, 0, 0, 1);
	OK(spool_delete(q, d, SPOOL_DELAYED));
	CHECK_STATS(q, 0, 0, 1, 3, 3, 0, 0, 2);
	OK(spool_delete(q, l, SPOOL_LEASED));
	EQ(t_state(q, l), 0);
	RC(spool_delete(q, l, ~0u), -ENOENT);
	{
		struct spool_stats s = t_stats(q);

		EQU(s.visible + s.delayed + s.leased, 0);
		EQU(s.bytes, 0);
	}
	OK(spool_queue_delete(db, "q"));
	spool_queue_close(q);
	spool_close(db);
}

TEST(pop)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	void *body = (void *)1;
	uint64_t a, b, e;

	RC(spool_pop(q, &body, &i), -EAGAIN);
	a = t_push(q, "first");
	b = t_push_prio(q, "urgent", 3);
	e = t_push(q, "");
	t_push_delay(q, "not yet", 50);
	OK(spool_pop(q, &body, &i));
	CHECK(body != NULL);
	CHECK_MEM(body, (size_t)i.size, "urgent", 6);
	EQU(i.id, b);
	EQ(i.priority, 3);
	free(body);
	EQ(t_state(q, b), 0);
	CHECK_STATS(q, 2, 1, 0, 12, 4, 1, 0, 0);
	OK(spool_pop(q, &body, &i));
	EQU(i.id, a);
	CHECK_MEM(body, (size_t)i.size, "first", 5);
	free(body);
	body = (void *)1;
	OK(spool_pop(q, &body, &i));
	EQU(i.id, e);
	EQU(i.size, 0);
	CHECK(body == NULL);
	RC(spool_pop(q, &body, &i), -EAGAIN);
	CHECK_STATS(q, 0, 1, 0, 7, 4, 3, 0, 0);
	spool_queue_close(q);
	spool_close(db);
	db = t_open();
	q = t_q(db, "q");
	CHECK_STATS(q, 0, 1, 0, 7, 4, 3, 0, 0);
	spool_queue_close(q);
	spool_close(db);
}

TEST(purge)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t count = 99, l;

	OK(spool_purge(q, &count));
	EQU(count, 0);
	t_push(q, "v1");
	l = t_push(q, "leased");
	t_push_prio(q, "v2", 4);
	t_push_delay(q, "d1", 10);
	t_push_delay(q, "d2", 10000);
	OK(spool_lease_id(q, l, &i));
	CHECK_STATS(q, 2, 2, 1, 14, 5, 0, 0, 0);
	OK(spool_purge(q, &count));
	EQU(count, 4);
	CHECK_STATS(q, 0, 0, 1, 6, 5, 0, 0, 4);
	EQ(t_state(q, l), SPOOL_LEASED);
	EQ(spool_tick(db), T_CLOCK_START + 30000);
	OK(spool_purge(q, NULL));
	CHECK_STATS(q, 0, 0, 1, 6, 5, 0, 0, 4);
	OK(spool_ack(q, l));
	spool_queue_close(q);
	spool_close(db);
	db = t_open();
	q = t_q(db, "q");
	CHECK_STATS(q, 0, 0, 0, 0, 5, 1, 0, 4);
	OK(spool_queue_delete(db, "q"));
	spool_queue_close(q);
	spool_close(db);
}

/* -------------------------------------------------------------- move */

TEST(move_between_queues)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q"), *r = t_mkq(db, "r");
	struct spool_attr at[2] = { { "user.a", "1", 1 }, { "user.b", "", 0 } };
	struct spool_push p = { .body = "payload", .len = 7, .name = "nm",
				.has_priority = 1, .priority = 3, .attrs = at,
				.nattrs = 2 };
	struct spool_msg_info before, after;
	char buf[32], name[SPOOL_MSG_NAME_MAX + 1];
	uint64_t id, other, ids[4];
	unsigned w;

	OK(spool_push(q, &p, &id));
	other = t_push(r, "resident");
	t_lease(q, "payload");
	t_advance(100);
	before = t_stat(q, id);
	RC(spool_move(q, id, SPOOL_VISIBLE | SPOOL_DELAYED, r), -ENOENT);
	RC(spool_move(q, 5555, ~0u, r), -ENOENT);
	w = t_wakes("r");
	OK(spool_move(q, id, SPOOL_LEASED, r));
	CHECK_U(t_wakes("r"), >, w);
	RC(spool_msg_stat(q, id, &after), -ENOENT);
	after = t_stat(r, id);
	EQU(after.id, id);
	EQ(after.state, SPOOL_VISIBLE);
	EQ(after.priority, 3);
	EQU(after.receives, before.receives);
	EQU(after.receives, 1);
	EQU(after.size, 7);
	EQ(after.sent_ms, before.sent_ms);
	EQ(after.first_received_ms, before.first_received_ms);
	EQ(spool_msg_read(r, id, 0, buf, sizeof buf), 7);
	CHECK_MEM(buf, 7, "payload", 7);
	OK(spool_msg_name(r, id, name));
	CHECK_STR(name, "nm");
	EQ(spool_msg_getattr(r, id, "user.a", buf, sizeof buf), 1);
	CHECK_MEM(buf, 1, "1", 1);
	EQ(spool_msg_getattr(r, id, "user.b", buf, sizeof buf), 0);
	CHECK_STATS(q, 0, 0, 0, 0, 1, 0, 0, 0);
	{
		struct spool_stats s = t_stats(r);

		EQU(s.visible, 2);
		EQU(s.leased, 0);
		EQU(s.bytes, 7 + 8);
	}
	/* it takes its place by priority and id in r */
	EQU(t_list_all(r, SPOOL_VISIBLE, ids, 4), 2);
	EQU(ids[0], id);
	EQU(ids[1], other);
	/* the moved message can be acked in r (receives > 0) */
	OK(spool_ack(r, id));
	spool_queue_close(q);
	spool_queue_close(r);
	spool_close(db);
}

TEST(move_in_place_and_limits)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q"), *r = t_mkq(db, "r");
	uint64_t d, v;
	char *before;

	d = t_push_delay(q, "delayed", 60000);
	v = t_push(q, "visible");
	/* dst == q: a delayed message becomes visible now */
	OK(spool_move(q, d, SPOOL_DELAYED, q));
	EQ(t_state(q, d), SPOOL_VISIBLE);
	CHECK_STATS(q, 2, 0, 0, 14, 2, 0, 0, 0);
	EQ(spool_tick(db), INT64_MAX);
	/* dst at max_depth: -EDQUOT, nothing moved */
	t_config(r, "max_depth=1");
	t_push(r, "full");
	before = t_snapshot(db);
	RC(spool_move(q, v, SPOOL_VISIBLE, r), -EDQUOT);
	CHECK_SNAP_DB(before, db);
	free(before);
	spool_queue_close(q);
	spool_queue_close(r);
	spool_close(db);
	/* moves are durable */
	db = t_open();
	q = t_q(db, "q");
	EQ(t_state(q, d), SPOOL_VISIBLE);
	spool_queue_close(q);
	spool_close(db);
}

TEST(move_all)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q"), *r = t_mkq(db, "r");
	uint64_t ids[16], got[16], moved = 99;
	int i;
	char b[8];

	RC(spool_move_all(q, q, 0, &moved), -EINVAL);
	OK(spool_move_all(q, r, 0, &moved));
	EQU(moved, 0);
	for (i = 0; i < 10; i++) {
		snprintf(b, sizeof b, "m%d", i);
		ids[i] = t_push_prio(q, b, i % 2);  /* odd ones first */
	}
	uint64_t dl = t_push_delay(q, "delayed", 1000);
	uint64_t le = t_push_prio(q, "leased", 10);
	EQU(t_lease(q, "leased"), le);
	OK(spool_move_all(q, r, 3, &moved));
	EQU(moved, 3);
	/* in lease order: m1, m3, m5 */
	EQU(t_list_all(r, SPOOL_VISIBLE, got, 16), 3);
	EQU(got[0], ids[1]);
	EQU(got[1], ids[3]);
	EQU(got[2], ids[5]);
	OK(spool_move_all(q, r, 0, &moved));
	EQU(moved, 7);
	EQU(t_list_all(r, SPOOL_VISIBLE, got, 16), 10);
	for (i = 0; i < 5; i++) {
		EQU(got[i], ids[2 * i + 1]);
		EQU(got[5 + i], ids[2 * i]);
	}
	EQ(t_state(q, dl), SPOOL_DELAYED);
	EQ(t_state(q, le), SPOOL_LEASED);
	CHECK_STATS(q, 0, 1, 1, 13, 12, 0, 0, 0);
	{
		struct spool_stats s = t_stats(r);

		EQU(s.visible, 10);
		EQU(s.bytes, 20);
	}
	OK(spool_move_all(r, q, 0, NULL));
	EQU(t_stats(q).visible, 10);
	spool_queue_close(q);
	spool_queue_close(r);
	spool_close(db);
}

/* More than one atomic step (1000) of move_all. */
TEST(move_all_many)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q"), *r = t_mkq(db, "r");
	static struct spool_push p[500];
	static uint64_t ids[2500];
	uint64_t moved = 0;
	int i;

	for (i = 0; i < 500; i++) {
		p[i].body = "xy";
		p[i].len = 2;
	}
	for (i = 0; i < 5; i++)
		OK(spool_push_batch(q, p, 500, NULL));
	EQU(t_list_all(q, SPOOL_VISIBLE, ids, 2500), 2500);
	OK(spool_move_all(q, r, 2200, &moved));
	EQU(moved, 2200);
	EQU(t_stats(q).visible, 300);
	EQU(t_stats(r).visible, 2200);
	EQU(t_stats(r).bytes, 4400);
	EQ(t_state(r, ids[0]), SPOOL_VISIBLE);
	EQ(t_state(r, ids[2199]), SPOOL_VISIBLE);
	EQ(t_state(q, ids[2200]), SPOOL_VISIBLE);
	OK(spool_move_all(q, r, 0, &moved));
	EQU(moved, 300);
	spool_queue_close(q);
	spool_queue_close(r);
	spool_close(db);
	db = t_open();
	r = t_q(db, "r");
	EQU(t_stats(r).visible, 2500);
	spool_queue_close(r);
	spool_close(db);
}

TEST(move_all_edquot_reports_moved)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q"), *r = t_mkq(db, "r");
	uint64_t moved = 99;
	int i;

	for (i = 0; i < 10; i++)
		t_push(q, "m");
	t_config(r, "max_depth=4");
	RC(spool_move_all(q, r, 0, &moved), -EDQUOT);
	CHECK_U(moved, <=, 4);
	EQU(t_stats(r).visible, moved);
	EQU(t_stats(q).visible, 10 - moved);
	spool_queue_close(q);
	spool_queue_close(r);
	spool_close(db);
}

/* ----------------------------------------------------------- reading */

TEST(msg_read_offsets)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	static char body[100000], buf[100000];
	struct spool_push p = { .body = body, .len = sizeof body };
	uint64_t id;
	size_t i;

	for (i = 0; i < sizeof body; i++)
		body[i] = (char)(i * 7 + i / 251);
	OK(spool_push(q, &p, &id));
	EQ(spool_msg_read(q, id, 0, buf, sizeof buf), (ssize_t)sizeof body);
	CHECK(!memcmp(buf, body, sizeof body));
	EQ(spool_msg_read(q, id, 0, buf, 10), 10);
	CHECK(!memcmp(buf, body, 10));
	EQ(spool_msg_read(q, id, 4096, buf, 4096), 4096);
	CHECK(!memcmp(buf, body + 4096, 4096));
	EQ(spool_msg_read(q, id, sizeof body - 5, buf, 4096), 5);
	CHECK(!memcmp(buf, body + sizeof body - 5, 5));
	EQ(spool_msg_read(q, id, sizeof body, buf, 4096), 0);
	EQ(spool_msg_read(q, id, sizeof body + 1, buf, 4096), 0);
	EQ(spool_msg_read(q, id, UINT64_MAX, buf, 4096), 0);
	EQ(spool_msg_read(q, id, 3, buf, 0), 0);
	/* reading leases nothing and counts nothing */
	EQ(t_state(q, id), SPOOL_VISIBLE);
	EQU(t_stat(q, id).receives, 0);
	/* readable in the other states too */
	t_lease(q, NULL);
	EQ(spool_msg_read(q, id, 1, buf, 3), 3);
	CHECK(!memcmp(buf, body + 1, 3));
	uint64_t d = t_push_delay(q, "zzz", 10);
	EQ(spool_msg_read(q, d, 0, buf, 3), 3);
	CHECK_MEM(buf, 3, "zzz", 3);
	RC(spool_msg_read(q, d + 1000, 0, buf, 3), -ENOENT);
	spool_queue_close(q);
	spool_close(db);
}

TEST(msg_name)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	char name[SPOOL_MSG_NAME_MAX + 1], longname[SPOOL_MSG_NAME_MAX + 1];
	struct spool_push p = { .body = "b", .len = 1, .name = "report.csv" };
	uint64_t a, b, c;

	OK(spool_push(q, &p, &a));
	b = t_push(q, "no name");
	memset(longname, 'L', SPOOL_MSG_NAME_MAX);
	longname[SPOOL_MSG_NAME_MAX] = '\0';
	p.name = longname;
	OK(spool_push(q, &p, &c));
	OK(spool_msg_name(q, a, name));
	CHECK_STR(name, "report.csv");
	memset(name, 'x', sizeof name);
	OK(spool_msg_name(q, b, name));
	CHECK_STR(name, "");
	OK(spool_msg_name(q, c, name));
	CHECK_STR(name, longname);
	RC(spool_msg_name(q, c + 1000, name), -ENOENT);
	spool_queue_close(q);
	spool_close(db);
}

TEST(msg_rename)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_attr at = { "user.colour", "blue", 4 };
	struct spool_push p = { .body = "body", .len = 4, .name = "tmpXYZ",
				.attrs = &at, .nattrs = 1 };
	char name[SPOOL_MSG_NAME_MAX + 2], buf[16];
	struct spool_msg_info before, after;
	size_t n;
	uint64_t a;

	OK(spool_push(q, &p, &a));
	before = t_stat(q, a);
	OK(spool_msg_rename(q, a, "final.json"));
	OK(spool_msg_name(q, a, name));
	CHECK_STR(name, "final.json");
	/* body, attributes, state and place are kept */
	EQ(spool_msg_read(q, a, 0, buf, sizeof buf), 4);
	CHECK_MEM(buf, 4, "body", 4);
	EQ(spool_msg_getattr(q, a, "user.colour", buf, sizeof buf), 4);
	CHECK_MEM(buf, 4, "blue", 4);
	after = t_stat(q, a);
	CHECK_MEM(&after, sizeof after, &before, sizeof before);
	/* leased too; then the lease goes on as it was */
	OK(spool_lease_next(q, NULL, 0, &n, &after));
	EQU(after.id, a);
	OK(spool_msg_rename(q, a, ""));
	OK(spool_msg_name(q, a, name));
	CHECK_STR(name, "");
	EQ(t_stat(q, a).state, SPOOL_LEASED);
	OK(spool_msg_rename(q, a, "again"));
	memset(name, 'n', SPOOL_MSG_NAME_MAX + 1);
	name[SPOOL_MSG_NAME_MAX + 1] = '\0';
	RC(spool_msg_rename(q, a, name), -ENAMETOOLONG);
	RC(spool_msg_rename(q, a + 1000, "x"), -ENOENT);
	/* durable */
	spool_queue_close(q);
	spool_close(db);
	db = t_open();
	OK(spool_queue_open(db, "q", &q));
	OK(spool_msg_name(q, a, name));
	CHECK_STR(name, "again");
	OK(spool_ack(q, a));
	RC(spool_msg_rename(q, a, "gone"), -ENOENT);
	spool_queue_close(q);
	spool_close(db);
}

TEST(msg_attrs)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_attr at[3] = {
		{ "user.colour", "blue", 4 },
		{ "user.empty", "", 0 },
		{ "user.bin", "\0\1\2\3", 4 },
	};
	struct spool_push p = { .body = "b", .len = 1, .attrs = at,
				.nattrs = 3 };
	char buf[256], list[256];
	uint64_t a, none;
	ssize_t n;
	int seen = 0;
	char *s;

	OK(spool_push(q, &p, &a));
	none = t_push(q, "plain");
	EQ(spool_msg_getattr(q, a, "user.colour", NULL, 0), 4);
	EQ(spool_msg_getattr(q, a, "user.colour", buf, sizeof buf), 4);
	CHECK_MEM(buf, 4, "blue", 4);
	EQ(spool_msg_getattr(q, a, "user.colour", buf, 4), 4);
	RC(spool_msg_getattr(q, a, "user.colour", buf, 3), -ERANGE);
	EQ(spool_msg_getattr(q, a, "user.empty", buf, sizeof buf), 0);
	EQ(spool_msg_getattr(q, a, "user.bin", buf, sizeof buf), 4);
	CHECK(!memcmp(buf, "\0\1\2\3", 4));
	RC(spool_msg_getattr(q, a, "user.nope", buf, sizeof buf), -ENODATA);
	RC(spool_msg_getattr(q, a, "user.colou", buf, sizeof buf), -ENODATA);
	RC(spool_msg_getattr(q, none, "user.colour", buf, sizeof buf),
	   -ENODATA);
	RC(spool_msg_getattr(q, a + 1000, "user.colour", buf, sizeof buf),
	   -ENOENT);
	/* the list: each name once, NUL-terminated, any order */
	const ssize_t want = (ssize_t)(sizeof "user.colour" +
				       sizeof "user.empty" + sizeof "user.bin");
	EQ(spool_msg_listattr(q, a, NULL, 0), want);
	RC(spool_msg_listattr(q, a, list, (size_t)want - 1), -ERANGE);
	n = spool_msg_listattr(q, a, list, sizeof list);
	EQ(n, want);
	EQ(list[n - 1], '\0');
	for (s = list; s < list + n; s += strlen(s) + 1) {
		if (!strcmp(s, "user.colour"))
			seen |= 1;
		else if (!strcmp(s, "user.empty"))
			seen |= 2;
		else if (!strcmp(s, "user.bin"))
			seen |= 4;
		else
			T_FAIL("unexpected attribute name \"%s\"", s);
	}
	EQ(seen, 7);
	EQ(spool_msg_listattr(q, none, NULL, 0), 0);
	EQ(spool_msg_listattr(q, none, list, sizeof list), 0);
	RC(spool_msg_listattr(q, a + 1000, list, sizeof list), -ENOENT);
	spool_queue_close(q);
	spool_close(db);
}

/* ----------------------------------------------------------- listing */

TEST(list_each_state_in_order)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_cursor cur;
	uint64_t vis[20], del[5], lea[5], got[32];
	static const int prios[20] = { 0, 3, -1, 3, 0, 2, 0, -1, 5, 0,
				       1, 1, 0, -2, 4, 0, 3, 0, 0, 2 };
	size_t n, page, i, j;
	ssize_t r;

	for (i = 0; i < 5; i++)
		del[i] = t_push_delay(q, "d", 1000 - (int64_t)i * 100);
	for (i = 0; i < 20; i++)
		vis[i] = t_push_prio(q, "v", prios[i]);
	for (i = 0; i < 5; i++) {
		lea[i] = t_push_prio(q, "l", 100);
		EQU(t_lease(q, "l"), lea[i]);
	}
	/* the expected visible order: priority desc, then id */
	uint64_t order[20];
	size_t k = 0;
	for (int pr = 5; pr >= -2; pr--)
		for (i = 0; i < 20; i++)
			if (prios[i] == pr)
				order[k++] = vis[i];
	EQU(k, 20);
	for (page = 1; page <= 21; page += 3) {
		snprintf(t_ctx, sizeof t_ctx, "page size %zu", page);
		memset(&cur, 0, sizeof cur);
		n = 0;
		while ((r = spool_list(q, SPOOL_VISIBLE, &cur, got + n,
				       page)) > 0) {
			CHECK_U((size_t)r, <=, page);
			n += (size_t)r;
			CHECK_U(n, <=, 20);
		}
		EQ(r, 0);
		EQU(n, 20);
		for (j = 0; j < 20; j++)
			EQU(got[j], order[j]);
		/* the end stays the end */
		EQ(spool_list(q, SPOOL_VISIBLE, &cur, got, page), 0);
	}
	t_ctx[0] = '\0';
	/* delayed and leased: in id order, whatever the due times */
	EQU(t_list_all(q, SPOOL_DELAYED, got, 32), 5);
	for (i = 0; i < 5; i++)
		EQU(got[i], del[i]);
	EQU(t_list_all(q, SPOOL_LEASED, got, 32), 5);
	for (i = 0; i < 5; i++)
		EQU(got[i], lea[i]);
	EQU(t_list_all(q, SPOOL_CORRUPT, got, 32), 0);
	/* max 0 lists nothing and does not end the listing */
	memset(&cur, 0, sizeof cur);
	EQ(spool_list(q, SPOOL_DELAYED, &cur, got, 0), 0);
	EQ(spool_list(q, SPOOL_DELAYED, &cur, got, 32), 5);
	/* not exactly one state bit */
	memset(&cur, 0, sizeof cur);
	RC(spool_list(q, (enum spool_state)0, &cur, got, 4), -EINVAL);
	RC(spool_list(q, (enum spool_state)(SPOOL_VISIBLE | SPOOL_DELAYED),
		      &cur, got, 4), -EINVAL);
	RC(spool_list(q, (enum spool_state)16, &cur, got, 4), -EINVAL);
	spool_queue_close(q);
	spool_close(db);
}

/* ids[] sorted (push order): index of id, or -1. */
static int index_of(const uint64_t *ids, size_t n, uint64_t id)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (ids[mid] == id)
			return (int)mid;
		if (ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/*
 * Random changes between the pages of a listing: nothing is returned twice,
 * everything present throughout is returned once, and the order only moves
 * forward (priority desc, then id).
 */
TEST(list_visible_while_changing)
{
	enum { N0 = 300, NMAX = 2000 };
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	static uint64_t ids[NMAX];
	static int32_t prio[NMAX];
	static unsigned char stable[NMAX], returned[NMAX];
	static uint64_t leased[NMAX];
	size_t n = 0, nleased = 0, i;
	struct spool_cursor cur = { 0 };
	uint64_t page[8];
	int32_t last_prio = INT32_MAX;
	uint64_t last_id = 0;
	int round;
	ssize_t r;

	for (i = 0; i < N0; i++) {
		prio[n] = (int32_t)(rng() % 7) - 3;
		ids[n] = t_push_prio(q, "m", prio[n]);
		stable[n++] = 1;
	}
	for (round = 0;; round++) {
		r = spool_list(q, SPOOL_VISIBLE, &cur, page,
			       1 + rng() % 8);
		CHECK_INT(r, >=, 0);
		if (r == 0)
			break;
		for (i = 0; i < (size_t)r; i++) {
			int k = index_of(ids, n, page[i]);

			CHECK_INT(k, >=, 0);
			if (returned[k])
				T_FAIL("id %" PRIu64 " returned twice (round "
				       "%d)", page[i], round);
			returned[k] = 1;
			/* strictly forward in lease order */
			if (prio[k] > last_prio ||
			    (prio[k] == last_prio && page[i] <= last_id))
				T_FAIL("listing went back: (%d, %" PRIu64
				       ") after (%d, %" PRIu64 ")", prio[k],
				       page[i], last_prio, last_id);
			last_prio = prio[k];
			last_id = page[i];
		}
		/* a few random changes */
		for (int c = 0; c < 3; c++) {
			int what = (int)(rng() % 4);

			if (what == 0 && n < NMAX) {            /* push */
				prio[n] = (int32_t)(rng() % 7) - 3;
				ids[n] = t_push_prio(q, "new", prio[n]);
				stable[n++] = 0;
			} else if (what == 1) {                 /* lease */
				struct spool_msg_info info;
				size_t len;

				if (spool_lease_next(q, NULL, 0, &len,
						     &info) == 0) {
					int k = index_of(ids, n, info.id);

					CHECK_INT(k, >=, 0);
					stable[k] = 0;
					leased[nleased++] = info.id;
				}
			} else if (what == 2 && nleased) {      /* release */
				size_t j = rng() % nleased;

				OK(spool_release(q, leased[j], 0));
				leased[j] = leased[--nleased];
			} else {                                /* delete */
				int k = (int)(rng() % n);

				if (spool_delete(q, ids[k], SPOOL_VISIBLE) ==
				    0)
					stable[k] = 0;
			}
		}
	}
	for (i = 0; i < n; i++)
		if (stable[i] && !returned[i])
			T_FAIL("id %" PRIu64 " (prio %d) present throughout "
			       "but never returned", ids[i], prio[i]);
	spool_queue_close(q);
	spool_close(db);
}

TEST(list_leased_while_changing)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	static uint64_t ids[200], got[400];
	static unsigned char acked[200];
	struct spool_cursor cur = { 0 };
	size_t i, n = 0;
	ssize_t r;

	for (i = 0; i < 200; i++) {
		ids[i] = t_push(q, "m");
		EQU(t_lease(q, "m"), ids[i]);
	}
	/* pages of 7; between pages, ack one not listed yet and lease a
	 * new one (a higher id: after the cursor) */
	while ((r = spool_list(q, SPOOL_LEASED, &cur, got + n, 7)) > 0) {
		for (i = n ? n : 1; i < n + (size_t)r; i++)
			if (got[i] <= got[i - 1])
				T_FAIL("leased listing went back at %zu: %"
				       PRIu64 " after %" PRIu64, i, got[i],
				       got[i - 1]);
		n += (size_t)r;
		CHECK_U(n, <=, 400);
		int last = index_of(ids, 200, got[n - 1]);

		if (last < 0)
			continue;       /* among the new ones: let it end */
		if (last + 3 < 200) {
			OK(spool_ack(q, ids[last + 3]));
			acked[last + 3] = 1;
		}
		t_push(q, "new");
		t_lease(q, "new");
	}
	EQ(r, 0);
	for (i = 1; i < n; i++)
		CHECK_U(got[i], >, got[i - 1]);
	for (i = 0; i < 200; i++) {
		int listed = index_of(got, n, ids[i]) >= 0;

		if (!acked[i] && !listed)
			T_FAIL("leased id %" PRIu64 " not listed", ids[i]);
		if (acked[i] && listed)
			T_FAIL("acked id %" PRIu64 " listed", ids[i]);
	}
	spool_queue_close(q);
	spool_close(db);
}

/* ------------------------------------------------------------- stats */

TEST(stats_exact_after_each_step)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q"), *r = t_mkq(db, "r");
	struct spool_push b3[3] = { { .body = "x", .len = 1 },
				    { .body = "y", .len = 1 },
				    { .body = "z", .len = 1 } };
	uint64_t a, bb, c, m, cnt;
	void *body;
	struct spool_msg_info i;

	/*               vis del lea bytes push ack exp del */
	CHECK_STATS(q,   0,  0,  0,  0,    0,   0,  0,  0);
	a = t_push(q, "aa");
	CHECK_STATS(q,   1,  0,  0,  2,    1,   0,  0,  0);
	bb = t_push_delay(q, "bbb", 1000);
	CHECK_STATS(q,   1,  1,  0,  5,    2,   0,  0,  0);
	EQU(t_lease(q, "aa"), a);
	CHECK_STATS(q,   0,  1,  1,  5,    2,   0,  0,  0);
	OK(spool_ack(q, a));
	CHECK_STATS(q,   0,  1,  0,  3,    2,   1,  0,  0);
	t_advance(1000);
	spool_tick(db);
	CHECK_STATS(q,   1,  0,  0,  3,    2,   1,  0,  0);
	EQU(t_lease(q, "bbb"), bb);
	CHECK_STATS(q,   0,  0,  1,  3,    2,   1,  0,  0);
	t_advance(30000);
	spool_tick(db);
	CHECK_STATS(q,   1,  0,  0,  3,    2,   1,  1,  0);
	EQU(t_lease(q, "bbb"), bb);
	OK(spool_release(q, bb, 0));
	CHECK_STATS(q,   1,  0,  0,  3,    2,   1,  1,  0);
	EQU(t_lease(q, "bbb"), bb);
	OK(spool_lease_extend(q, bb, -1));
	CHECK_STATS(q,   0,  0,  1,  3,    2,   1,  1,  0);
	OK(spool_release(q, bb, 1));
	c = t_push(q, "c");
	CHECK_STATS(q,   2,  0,  0,  4,    3,   1,  1,  0);
	OK(spool_delete(q, c, SPOOL_VISIBLE));
	CHECK_STATS(q,   1,  0,  0,  3,    3,   1,  1,  1);
	OK(spool_pop(q, &body, &i));
	free(body);
	CHECK_STATS(q,   0,  0,  0,  0,    3,   2,  1,  1);
	OK(spool_push_batch(q, b3, 3, NULL));
	CHECK_STATS(q,   3,  0,  0,  3,    6,   2,  1,  1);
	OK(spool_purge(q, &cnt));
	EQU(cnt, 3);
	CHECK_STATS(q,   0,  0,  0,  0,    6,   2,  1,  4);
	m = t_push(q, "mmmm");
	CHECK_STATS(q,   1,  0,  0,  4,    7,   2,  1,  4);
	OK(spool_move(q, m, SPOOL_VISIBLE, r));
	CHECK_STATS(q,   0,  0,  0,  0,    7,   2,  1,  4);
	EQU(t_stats(r).visible, 1);
	EQU(t_stats(r).bytes, 4);
	EQU(t_stats(r).acked_total, 0);
	EQU(t_stats(r).deleted_total, 0);
	EQU(t_stats(r).expired_total, 0);
	EQU(t_stats(q).corrupt, 0);
	EQU(t_stats(q).dead_total, 0);
	EQU(t_stats(q).deduped_total, 0);
	spool_queue_close(q);
	spool_queue_close(r);
	spool_close(db);
	/* the totals persist */
	db = t_open();
	q = t_q(db, "q");
	CHECK_STATS(q,   0,  0,  0,  0,    7,   2,  1,  4);
	spool_queue_close(q);
	spool_close(db);
}

TEST(stats_oldest_visible_age)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	uint64_t a, b;

	EQ(t_stats(q).oldest_visible_age_ms, 0);
	t_push_delay(q, "d", 100000);
	t_advance(100);
	EQ(t_stats(q).oldest_visible_age_ms, 0);
	a = t_push(q, "a");
	t_advance(500);
	b = t_push_prio(q, "b", 9);
	EQ(t_stats(q).oldest_visible_age_ms, 500);
	t_advance(250);
	EQ(t_stats(q).oldest_visible_age_ms, 750);
	EQU(t_lease(q, "b"), b);
	EQU(t_lease(q, "a"), a);
	EQ(t_stats(q).oldest_visible_age_ms, 0);
	spool_queue_close(q);
	spool_close(db);
}

TEST(stats_format_keys)
{
	static const char *keys[] = {
		"visible", "delayed", "leased", "bytes", "pushed_total",
		"acked_total", "expired_total", "dead_total", "deduped_total",
		"oldest_visible_age_ms",
	};
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	char buf[4096], small[8];
	struct spool_stats s;
	int n;
	size_t k;

	t_push(q, "hello");
	t_push_delay(q, "later", 10);
	t_push(q, "x");
	t_lease(q, "hello");
	t_advance(40);
	OK(spool_stats_get(q, &s));
	n = spool_stats_format(q, buf, sizeof buf);
	CHECK_INT(n, >, 0);
	CHECK_INT(n, <, (int)sizeof buf);
	EQU(strlen(buf), (size_t)n);
	EQ(buf[n - 1], '\n');
	uint64_t want[] = { s.visible, s.delayed, s.leased, s.bytes,
			    s.pushed_total, s.acked_total, s.expired_total,
			    s.dead_total, s.deduped_total,
			    (uint64_t)s.oldest_visible_age_ms };
	for (k = 0; k < sizeof keys / sizeof keys[0]; k++) {
		char pat[64], *p = buf, *end;
		unsigned long long v;

		snprintf(pat, sizeof pat, "%s=", keys[k]);
		/* the key at the start of a line */
		while ((p = strstr(p, pat)) && p != buf && p[-1] != '\n')
			p++;
		if (!p)
			T_FAIL("stats text has no key %s:\n%s", keys[k], buf);
		v = strtoull(p + strlen(pat), &end, 10);
		if (*end != '\n')
			T_FAIL("stats value of %s malformed:\n%s", keys[k],
			       buf);
		EQU(v, want[k]);
	}
	EQU(want[0], 1);
	EQU(want[1], 1);
	EQU(want[2], 1);
	EQU(want[3], 11);
	EQU(want[9], 40);
	/* every line is key=value */
	for (char *l = buf; *l; l = strchr(l, '\n') + 1) {
		char *eq = strchr(l, '='), *nl = strchr(l, '\n');

		CHECK(eq && nl && eq < nl && eq > l);
	}
	EQ(spool_stats_format(q, small, sizeof small), n);
	CHECK_MEM(small, strlen(small), buf, sizeof small - 1);
	spool_queue_close(q);
	spool_close(db);
}

/* ------------------------------------- what the SQS endpoint asks for */

TEST(batch_ids_every_id)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_push p[3] = {
		{ .body = "a", .len = 1, .name = "x" },
		{ .body = "b", .len = 1, .name = "x" },   /* duplicate name */
		{ .body = "c", .len = 1, .name = "y" },
	};
	uint64_t ids[3] = { 7, 7, 7 };
	char buf[4];

	OK(spool_push_batch_ids(q, p, 3, ids));
	CHECK(ids[0] != 0 && ids[1] != 0 && ids[2] != 0);
	CHECK(ids[0] < ids[1] && ids[1] < ids[2]);
	EQ(spool_msg_read(q, ids[1], 0, buf, sizeof buf), 1);
	EQ(buf[0], 'b');
	t_config(q, "dedup=name");
	/* keys are kept from the first push with dedup on: x once, y */
	OK(spool_push_batch_ids(q, p, 3, ids));
	CHECK(ids[0] != 0);
	/* a dropped duplicate gets the kept message's id (it was 0) */
	EQU(ids[1], ids[0]);
	CHECK(ids[2] > ids[0]);
	{
		uint64_t x = ids[0];

		p[2].name = "z";
		OK(spool_push_batch_ids(q, p, 3, ids));
		EQU(ids[0], x);
		EQU(ids[1], x);
	}
	CHECK(ids[2] != 0);
	EQ(spool_msg_read(q, ids[2], 0, buf, sizeof buf), 1);
	EQ(buf[0], 'c');
	t_config(q, "dedup=off\nmax_size=1");
	p[0].len = 2;
	ids[0] = ids[1] = ids[2] = 9;
	RC(spool_push_batch_ids(q, p, 3, ids), -EFBIG);
	EQU(ids[0] + ids[1] + ids[2], 0);
	OK(spool_push_batch_ids(q, p, 0, NULL));
	spool_queue_close(q);
	spool_close(db);
}

TEST(lease_next_vt_own_timeout)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t a = t_push(q, "a"), b = t_push(q, "b");
	char buf[4];
	size_t n;

	RC(spool_lease_next_vt(q, -1, buf, sizeof buf, &n, &i), -EINVAL);
	OK(spool_lease_next_vt(q, 5000, buf, sizeof buf, &n, &i));
	EQU(i.id, a);
	EQ(i.due_ms, T_CLOCK_START + 5000);
	EQU(i.receives, 1);
	EQ(t_stat(q, a).due_ms, T_CLOCK_START + 5000);
	/* zero: visible again at once */
	OK(spool_lease_next_vt(q, 0, buf, sizeof buf, &n, &i));
	EQU(i.id, b);
	spool_tick(db);
	EQ(t_state(q, b), SPOOL_VISIBLE);
	t_advance(5000);
	spool_tick(db);
	EQ(t_state(q, a), SPOOL_VISIBLE);
	/* the queue's own timeout is untouched */
	OK(spool_lease_next(q, buf, sizeof buf, &n, &i));
	EQ(i.due_ms, spool_now(db) + 30000);
	spool_queue_close(q);
	spool_close(db);
}

TEST(ack_receive_stale_handle)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t a = t_push(q, "a");
	char buf[4];
	size_t n;

	RC(spool_ack_receive(q, a, 1), -ENOENT);   /* never leased */
	OK(spool_lease_next(q, buf, sizeof buf, &n, &i));
	EQU(i.receives, 1);
	OK(spool_lease_extend(q, a, spool_now(db)));   /* back: visible */
	OK(spool_lease_next(q, buf, sizeof buf, &n, &i));
	EQU(i.receives, 2);
	/* the first receive's handle neither extends nor acks */
	RC(spool_lease_extend_receive(q, a, 1, spool_now(db) + 99000),
	   -ENOENT);
	RC(spool_ack_receive(q, a, 1), -ENOENT);
	RC(spool_ack_receive(q, a, 0), -ENOENT);
	EQ(t_state(q, a), SPOOL_LEASED);
	EQ(t_stat(q, a).due_ms, spool_now(db) + 30000);
	OK(spool_lease_extend_receive(q, a, 2, spool_now(db) + 99000));
	EQ(t_stat(q, a).due_ms, spool_now(db) + 99000);
	OK(spool_ack_receive(q, a, 2));
	RC(spool_msg_stat(q, a, &i), -ENOENT);
	CHECK_STATS(q, 0, 0, 0, 0, 1, 1, 0, 0);
	spool_queue_close(q);
	spool_close(db);
}

TEST(ack_batch_per_entry)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t a = t_push(q, "a"), b = t_push(q, "bb"), c = t_push(q, "c");
	uint64_t never = t_push(q, "never");
	char buf[8];
	size_t n;
	int res[6];

	OK(spool_lease_id(q, a, &i));           /* a: receive 1 */
	OK(spool_lease_id(q, b, &i));           /* b: receive 1, then 2 */
	OK(spool_release(q, b, 0));
	OK(spool_lease_id(q, b, &i));
	EQU(i.receives, 2);
	OK(spool_lease_id(q, c, &i));
	{
		/* a (right receive), b (stale receive 1), c twice (the second
		 * finds it acked), never leased, no such message */
		uint64_t ids[6] = { a, b, c, c, never, 999999 };
		uint32_t rcv[6] = { 1, 1, 0, 0, 0, 0 };

		memset(res, 0x55, sizeof res);
		OK(spool_ack_batch(q, ids, rcv, 6, res));
		EQ(res[0], 0);
		EQ(res[1], -ENOENT);
		EQ(res[2], 0);
		EQ(res[3], -ENOENT);
		EQ(res[4], -ENOENT);
		EQ(res[5], -ENOENT);
	}
	RC(spool_msg_stat(q, a, &i), -ENOENT);
	RC(spool_msg_stat(q, c, &i), -ENOENT);
	EQ(t_state(q, b), SPOOL_LEASED);
	EQ(t_state(q, never), SPOOL_VISIBLE);
	CHECK_STATS(q, 1, 0, 1, 7, 4, 2, 0, 0);
	{
		/* receives NULL: any receive, as spool_ack */
		uint64_t ids[1] = { b };

		OK(spool_ack_batch(q, ids, NULL, 1, res));
		EQ(res[0], 0);
	}
	RC(spool_ack_batch(q, &a, NULL, SPOOL_ACK_BATCH_MAX + 1, res),
	   -EINVAL);
	OK(spool_ack_batch(q, &a, NULL, 0, res));
	/* an acked message stays gone in a reopened store */
	spool_queue_close(q);
	spool_close(db);
	db = t_open();
	OK(spool_queue_open(db, "q", &q));
	RC(spool_msg_stat(q, a, &i), -ENOENT);
	RC(spool_msg_stat(q, b, &i), -ENOENT);
	EQ(t_state(q, never), SPOOL_VISIBLE);
	OK(spool_lease_next(q, buf, sizeof buf, &n, &i));
	EQU(i.id, never);
	OK(spool_queue_delete_all(db, "q"));
	RC(spool_ack_batch(q, &never, NULL, 1, res), -ENOENT);
	EQ(res[0], -ENOENT);
	spool_queue_close(q);
	spool_close(db);
}

TEST(config_apply_meta_one_write)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_settings s;
	char v[16];

	OK(spool_config_apply_meta(q, "priority=3", 10, "sqs.w", "7"));
	OK(spool_settings_get(q, &s));
	EQ(s.priority, 3);
	EQ(spool_queue_meta_get(q, "sqs.w", v, sizeof v), 1);
	CHECK_MEM(v, 1, "7", 1);
	/* a bad setting changes neither */
	RC(spool_config_apply_meta(q, "priority=1\nbogus=2", 19, "sqs.w",
				   "9"), -EINVAL);
	EQ(spool_queue_meta_get(q, "sqs.w", v, sizeof v), 1);
	CHECK_MEM(v, 1, "7", 1);
	OK(spool_settings_get(q, &s));
	EQ(s.priority, 3);
	/* a bad key changes nothing either */
	RC(spool_config_apply_meta(q, "priority=1", 10, "bad key", "9"),
	   -EINVAL);
	OK(spool_settings_get(q, &s));
	EQ(s.priority, 3);
	/* NULL removes the value */
	OK(spool_config_apply_meta(q, "", 0, "sqs.w", NULL));
	RC(spool_queue_meta_get(q, "sqs.w", v, sizeof v), -ENODATA);
	OK(spool_config_apply_meta(q, "priority=4", 10, "sqs.w", "12"));
	spool_queue_close(q);
	spool_close(db);
	db = t_open();
	OK(spool_queue_open(db, "q", &q));
	OK(spool_settings_get(q, &s));
	EQ(s.priority, 4);
	EQ(spool_queue_meta_get(q, "sqs.w", v, sizeof v), 2);
	CHECK_MEM(v, 2, "12", 2);
	spool_queue_close(q);
	spool_close(db);
}

TEST(delete_all_one_write)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t v = t_push(q, "v"), l = t_push(q, "l");

	t_push_delay(q, "d", 10000);
	OK(spool_lease_id(q, l, &i));
	OK(spool_queue_meta_set(q, "sqs.x", "1"));
	/* a failed write leaves the queue and every message */
	spool_test_fail_writes(db, -EIO);
	t_log_expect();
	RC(spool_queue_delete_all(db, "q"), -EIO);
	spool_test_fail_writes(db, 0);
	EQ(t_state(q, v), SPOOL_VISIBLE);
	EQ(t_state(q, l), SPOOL_LEASED);
	CHECK_STATS(q, 1, 1, 1, 3, 3, 0, 0, 0);
	OK(spool_queue_delete_all(db, "q"));
	RC(spool_msg_stat(q, v, &i), -ENOENT);
	spool_queue_close(q);
	/* a new queue of the same name starts empty, and no body is left */
	q = t_mkq(db, "q");
	CHECK_STATS(q, 0, 0, 0, 0, 0, 0, 0, 0);
	RC(spool_queue_meta_get(q, "sqs.x", (char[4]){0}, 4), -ENODATA);
	RC(spool_test_corrupt(db, v), -ENOENT);
	RC(spool_test_corrupt(db, l), -ENOENT);
	spool_queue_close(q);
	spool_close(db);
}

TEST(purge_states_and_delete_all)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t count = 9, l;

	t_push(q, "v");
	l = t_push(q, "leased");
	t_push_delay(q, "d", 10000);
	OK(spool_lease_id(q, l, &i));
	RC(spool_purge_states(q, 0, &count), -EINVAL);
	RC(spool_purge_states(q, 64, &count), -EINVAL);
	OK(spool_purge_states(q, SPOOL_LEASED, &count));
	EQU(count, 1);
	RC(spool_msg_stat(q, l, &i), -ENOENT);
	CHECK_STATS(q, 1, 1, 0, 2, 3, 0, 0, 1);
	l = t_push(q, "leased2");
	OK(spool_lease_id(q, l, &i));
	RC(spool_queue_delete(db, "q"), -ENOTEMPTY);
	OK(spool_queue_delete_all(db, "q"));
	RC(spool_push(q, &(struct spool_push){ .body = "x", .len = 1 }, NULL),
	   -ENOENT);
	RC(spool_purge_states(q, SPOOL_VISIBLE, NULL), -ENOENT);
	RC(spool_queue_delete_all(db, "q"), -ENOENT);
	spool_queue_close(q);
	/* gone for good: a reopened store has no such queue */
	spool_close(db);
	db = t_open();
	RC(spool_queue_open(db, "q", &q), -ENOENT);
	spool_close(db);
}
