/*
 * test_fault.c - faults: a body record that fails its checksum (set aside as
 * CORRUPT, -EIO for it alone, everything else still served), and a store
 * whose writes fail (-ENOSPC through the seam): every operation fails whole,
 * nothing changes in memory or on disk, and all works again afterwards.
 */
#include "t.h"

/* ----------------------------------------------------------- corruption */

TEST(corrupt_read_eio_others_served)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	char buf[16], name[SPOOL_MSG_NAME_MAX + 1];
	struct spool_msg_info i;
	uint64_t a, b, c, list[4];
	unsigned errs;
	size_t n;

	a = t_push(q, "aaa");
	b = t_push(q, "bbb");
	c = t_push(q, "ccc");
	t_log_expect();
	OK(spool_test_corrupt(db, b));
	RC(spool_test_corrupt(db, c + 1000), -ENOENT);
	RC(spool_msg_read(q, b, 0, buf, sizeof buf), -EIO);
	errs = t_log_err_count();
	CHECK_INT(errs, >=, 1);
	i = t_stat(q, b);
	EQ(i.state, SPOOL_CORRUPT);
	{
		struct spool_stats s = t_stats(q);

		EQU(s.corrupt, 1);
		EQU(s.visible, 2);
	}
	/* logged once: reading it again fails again, quietly */
	RC(spool_msg_read(q, b, 0, buf, sizeof buf), -EIO);
	RC(spool_msg_name(q, b, name), -EIO);
	EQ(t_log_err_count(), errs);
	/* the others are fine */
	EQ(spool_msg_read(q, a, 0, buf, sizeof buf), 3);
	CHECK_MEM(buf, 3, "aaa", 3);
	EQU(t_list_all(q, SPOOL_CORRUPT, list, 4), 1);
	EQU(list[0], b);
	EQU(t_list_all(q, SPOOL_VISIBLE, list, 4), 2);
	EQU(list[0], a);
	EQU(list[1], c);
	EQU(t_lease(q, "aaa"), a);
	EQU(t_lease(q, "ccc"), c);
	RC(spool_lease_next(q, buf, sizeof buf, &n, &i), -EAGAIN);
	RC(spool_lease_id(q, b, &i), -ENOENT);
	/* it still counts as held */
	RC(spool_queue_delete(db, "q"), -ENOTEMPTY);
	OK(spool_ack(q, a));
	OK(spool_ack(q, c));
	RC(spool_queue_delete(db, "q"), -ENOTEMPTY);
	RC(spool_ack(q, b), -ENOENT);
	/* it can be deleted by its state */
	RC(spool_delete(q, b, SPOOL_VISIBLE | SPOOL_LEASED | SPOOL_DELAYED),
	   -ENOENT);
	OK(spool_delete(q, b, SPOOL_CORRUPT));
	EQU(t_stats(q).corrupt, 0);
	OK(spool_queue_delete(db, "q"));
	spool_queue_close(q);
	spool_close(db);
}

/* A body record of the given name, attribute (name an, value av) and body,
 * in the stored layout (keys.c); the seam seals it. */
static size_t body_rec(char *out, const char *n, const char *an, size_t anl,
		       const char *av, const char *body)
{
	size_t nl = strlen(n), vl = strlen(av), bl = strlen(body);
	size_t al = 2 + anl + 4 + vl;
	char *p = out + 9;

	*p++ = (char)nl; *p++ = 0;
	*p++ = (char)al; *p++ = 0; *p++ = 0; *p++ = 0;
	memcpy(p, n, nl); p += nl;
	*p++ = (char)anl; *p++ = 0;
	memcpy(p, an, anl); p += anl;
	*p++ = (char)vl; *p++ = 0; *p++ = 0; *p++ = 0;
	memcpy(p, av, vl); p += vl;
	memcpy(p, body, bl); p += bl;
	return (size_t)(p - out);
}

/* Attribute names are C strings that setxattr never leaves empty: a stored
 * one with a NUL in it, or an empty one, is a broken record (EIO), not a
 * name listxattr would list and getxattr could not find. */
TEST(put_body_hostile_attribute_names)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	char rec[128], buf[64], name[SPOOL_MSG_NAME_MAX + 1];
	uint64_t id = t_push(q, "x");
	size_t len;

	len = body_rec(rec, "nm", "user.k", 6, "val", "body");
	OK(spool_test_put_body(db, id, rec, len, 1));
	RC(spool_msg_listattr(q, id, buf, sizeof buf), 7);
	CHECK_STR(buf, "user.k");
	RC(spool_msg_getattr(q, id, "user.k", buf, sizeof buf), 3);
	RC(spool_msg_name(q, id, name), 0);
	CHECK_STR(name, "nm");

	len = body_rec(rec, "", "user.a\0b", 8, "v", "body");
	OK(spool_test_put_body(db, id, rec, len, 1));
	RC(spool_msg_listattr(q, id, buf, sizeof buf), -EIO);
	RC(spool_msg_getattr(q, id, "user.a", buf, sizeof buf), -EIO);
	RC(spool_msg_read(q, id, 0, buf, sizeof buf), 4);

	len = body_rec(rec, "", "", 0, "v", "body");
	OK(spool_test_put_body(db, id, rec, len, 1));
	RC(spool_msg_listattr(q, id, NULL, 0), -EIO);

	RC(spool_test_put_body(db, id + 1000, rec, len, 1), -ENOENT);
	spool_queue_close(q);
	spool_close(db);
}

TEST(corrupt_skipped_by_lease_and_pop)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t a, b, c, d;
	void *body;
	char buf[8];
	size_t n;

	a = t_push(q, "a");
	b = t_push(q, "b");
	c = t_push(q, "c");
	d = t_push(q, "d");
	t_log_expect();
	/* never read: found out by the lease itself */
	OK(spool_test_corrupt(db, a));
	OK(spool_test_corrupt(db, c));
	EQU(t_lease(q, "b"), b);
	EQ(t_state(q, a), SPOOL_CORRUPT);
	OK(spool_pop(q, &body, &i));
	EQU(i.id, d);
	CHECK_MEM(body, (size_t)i.size, "d", 1);
	free(body);
	EQ(t_state(q, c), SPOOL_CORRUPT);
	RC(spool_lease_next(q, buf, sizeof buf, &n, &i), -EAGAIN);
	RC(spool_pop(q, &body, &i), -EAGAIN);
	{
		struct spool_stats s = t_stats(q);

		EQU(s.corrupt, 2);
		EQU(s.visible, 0);
		EQU(s.leased, 1);
	}
	spool_queue_close(q);
	spool_close(db);
}

TEST(corrupt_only_message)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t a;
	char buf[8];
	size_t n;

	a = t_push(q, "only");
	t_log_expect();
	OK(spool_test_corrupt(db, a));
	RC(spool_lease_next(q, buf, sizeof buf, &n, &i), -EAGAIN);
	EQ(t_state(q, a), SPOOL_CORRUPT);
	/* a new message is served */
	t_push(q, "fresh");
	t_lease(q, "fresh");
	spool_queue_close(q);
	spool_close(db);
}

TEST(corrupt_stays_aside_after_reopen)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t a, b;
	char buf[8];
	size_t n;

	a = t_push(q, "a");
	b = t_push(q, "b");
	t_log_expect();
	OK(spool_test_corrupt(db, a));
	RC(spool_msg_read(q, a, 0, buf, sizeof buf), -EIO);
	spool_queue_close(q);
	spool_close(db);
	db = t_open();
	q = t_q(db, "q");
	/* never served, still -EIO, still counted */
	RC(spool_msg_read(q, a, 0, buf, sizeof buf), -EIO);
	EQU(t_lease(q, "b"), b);
	RC(spool_lease_next(q, buf, sizeof buf, &n, &i), -EAGAIN);
	EQ(t_state(q, a), SPOOL_CORRUPT);
	EQU(t_stats(q).corrupt, 1);
	RC(spool_queue_delete(db, "q"), -ENOTEMPTY);
	spool_queue_close(q);
	spool_close(db);
}

/* A corrupt leased or delayed message: -EIO on read, the rest unharmed. */
TEST(corrupt_in_other_states)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	uint64_t l, d, v;
	char buf[8];

	l = t_push(q, "leased");
	d = t_push_delay(q, "delayed", 1000);
	v = t_push(q, "visible");
	EQU(t_lease(q, "leased"), l);
	t_log_expect();
	OK(spool_test_corrupt(db, l));
	OK(spool_test_corrupt(db, d));
	RC(spool_msg_read(q, l, 0, buf, sizeof buf), -EIO);
	RC(spool_msg_read(q, d, 0, buf, sizeof buf), -EIO);
	EQ(t_state(q, l), SPOOL_CORRUPT);
	EQ(t_state(q, d), SPOOL_CORRUPT);
	/* nothing due any more from them */
	t_advance(60000);
	spool_tick(db);
	EQ(t_state(q, l), SPOOL_CORRUPT);
	EQ(t_state(q, d), SPOOL_CORRUPT);
	EQU(t_lease(q, "visible"), v);
	{
		struct spool_stats s = t_stats(q);

		EQU(s.corrupt, 2);
		EQU(s.visible + s.delayed + s.leased, 1);
	}
	spool_queue_close(q);
	spool_close(db);
}

/* ------------------------------------------------------------- ENOSPC */

struct world {
	spool_db *db;
	spool_queue *q, *r;
	uint64_t v1, v2, v3, d, l, e;
};

/*
 * q: v1, v2 (attrs, name), v3 visible; d delayed; l leased; e visible
 * after a lease (ackable); r: one message; "empty": no messages.
 */
static void world_make(struct world *w)
{
	struct spool_attr at = { "user.k", "val", 3 };
	struct spool_push p = { .body = "two", .len = 3, .name = "n2",
				.attrs = &at, .nattrs = 1 };
	struct spool_msg_info i;

	w->db = t_open();
	w->q = t_mkq(w->db, "q");
	w->r = t_mkq(w->db, "r");
	spool_queue_close(t_mkq(w->db, "empty"));
	t_config(w->q, "priority=1\nmax_depth=100");
	w->e = t_push(w->q, "expired");
	w->v1 = t_push(w->q, "one");
	OK(spool_push(w->q, &p, &w->v2));
	w->v3 = t_push_prio(w->q, "three", 5);
	w->d = t_push_delay(w->q, "delayed", 5000);
	w->l = t_push(w->q, "leased");
	OK(spool_lease_id(w->q, w->l, &i));
	OK(spool_lease_id(w->q, w->e, &i));
	OK(spool_lease_extend(w->q, w->e, spool_now(w->db)));
	EQ(t_state(w->q, w->e), SPOOL_VISIBLE);
	t_push(w->r, "in r");
	t_advance(10);
}

static void world_close(struct world *w)
{
	spool_queue_close(w->q);
	spool_queue_close(w->r);
	spool_close(w->db);
}

/* Every write fails; each operation returns -ENOSPC and changes nothing. */
TEST(enospc_changes_nothing)
{
	static char big[100];
	struct spool_queue_attr qa = { 7, 7, 0700, 0 };
	struct spool_push p = { .body = "new", .len = 3 };
	struct spool_push pd = { .body = "new", .len = 3, .has_delay = 1,
				 .delay_ms = 100 };
	struct spool_push batch[3] = { { .body = "x", .len = 1 },
				       { .body = "y", .len = 1 },
				       { .body = big, .len = sizeof big } };
	struct spool_msg_info i;
	struct world w;
	uint64_t id = 0, moved = 77, count = 77;
	char buf[64], *before;
	void *body = NULL;
	size_t n;

	world_make(&w);
	before = t_snapshot(w.db);
	t_log_expect();
	spool_test_fail_writes(w.db, -ENOSPC);

#define NOSPACE(expr)                                                        \
	do {                                                                 \
		snprintf(t_ctx, sizeof t_ctx, "%s", #expr);                  \
		RC(expr, -ENOSPC);                                           \
		CHECK_SNAP_DB(before, w.db);                                 \
	} while (0)

	NOSPACE(spool_push(w.q, &p, &id));
	NOSPACE(spool_push(w.q, &pd, &id));
	NOSPACE(spool_push(w.r, &p, NULL));
	NOSPACE(spool_push_batch(w.q, batch, 3, &id));
	NOSPACE(spool_lease_next(w.q, buf, sizeof buf, &n, &i));
	NOSPACE(spool_lease_id(w.q, w.v1, &i));
	NOSPACE(spool_pop(w.q, &body, &i));
	NOSPACE(spool_ack(w.q, w.l));
	NOSPACE(spool_ack(w.q, w.e));
	NOSPACE(spool_release(w.q, w.l, 0));
	NOSPACE(spool_release(w.q, w.l, 1));
	NOSPACE(spool_lease_extend(w.q, w.l, T_CLOCK_START + 99999));
	NOSPACE(spool_lease_extend(w.q, w.l, -1));
	NOSPACE(spool_lease_extend(w.q, w.l, 0));
	NOSPACE(spool_delete(w.q, w.v1, SPOOL_VISIBLE));
	NOSPACE(spool_delete(w.q, w.d, SPOOL_DELAYED));
	NOSPACE(spool_delete(w.q, w.l, SPOOL_LEASED));
	NOSPACE(spool_move(w.q, w.v2, SPOOL_VISIBLE, w.r));
	NOSPACE(spool_move(w.q, w.l, SPOOL_LEASED, w.r));
	NOSPACE(spool_move(w.q, w.d, SPOOL_DELAYED, w.q));
	NOSPACE(spool_move_all(w.q, w.r, 0, &moved));
	EQU(moved, 0);
	NOSPACE(spool_purge(w.q, &count));
	NOSPACE(spool_config_apply(w.q, "priority=9", 10));
	NOSPACE(spool_config_apply(w.r, "paused=1\nmax_depth=1", 20));
	NOSPACE(spool_queue_create(w.db, "newq", &qa));
	NOSPACE(spool_queue_delete(w.db, "empty"));
	NOSPACE(spool_queue_delete_all(w.db, "q"));
	NOSPACE(spool_config_apply_meta(w.q, "priority=9", 10, "k", "v"));
	{
		uint64_t ids[3] = { w.l, w.e, w.v1 };
		uint32_t rcv[3] = { 1, 0, 0 };
		int res[3] = { 7, 7, 7 };

		NOSPACE(spool_ack_batch(w.q, ids, rcv, 3, res));
		for (int k = 0; k < 3; k++)
			EQ(res[k], -ENOSPC);
	}
	NOSPACE(spool_queue_setattr(w.q, &qa));
	t_ctx[0] = '\0';
#undef NOSPACE
	/* validation still comes first: not every error is -ENOSPC */
	RC(spool_config_apply(w.q, "bogus=1", 7), -EINVAL);
	RC(spool_queue_create(w.db, "q", &qa), -EEXIST);
	/* reads are not affected */
	EQ(spool_msg_read(w.q, w.v2, 0, buf, sizeof buf), 3);
	CHECK_MEM(buf, 3, "two", 3);
	EQ(spool_msg_getattr(w.q, w.v2, "user.k", buf, sizeof buf), 3);
	CHECK_SNAP_DB(before, w.db);

	/* nothing reached the store either */
	spool_test_fail_writes(w.db, 0);
	world_close(&w);
	w.db = t_open();
	CHECK_SNAP_DB(before, w.db);
	spool_close(w.db);
	free(before);
}

/* After the seam is lifted every operation works again, in the same
 * session, and the results persist. */
TEST(enospc_then_recovers)
{
	struct spool_queue_attr qa = { 7, 7, 0700, 0 };
	struct spool_push p = { .body = "new", .len = 3 };
	struct spool_msg_info i;
	struct world w;
	uint64_t id, count;
	char buf[64], *after;
	size_t n;

	world_make(&w);
	t_log_expect();
	spool_test_fail_writes(w.db, -ENOSPC);
	RC(spool_push(w.q, &p, &id), -ENOSPC);
	RC(spool_lease_next(w.q, buf, sizeof buf, &n, &i), -ENOSPC);
	RC(spool_ack(w.q, w.l), -ENOSPC);
	RC(spool_queue_create(w.db, "newq", &qa), -ENOSPC);
	RC(spool_config_apply(w.q, "priority=9", 10), -ENOSPC);
	spool_test_fail_writes(w.db, 0);

	OK(spool_push(w.q, &p, &id));
	EQ(t_state(w.q, id), SPOOL_VISIBLE);
	OK(spool_ack(w.q, w.l));
	OK(spool_ack(w.q, w.e));
	/* the lease order is intact: v3 (priority 5) first */
	EQU(t_lease(w.q, "three"), w.v3);
	OK(spool_release(w.q, w.v3, 0));
	OK(spool_lease_id(w.q, w.v3, &i));
	OK(spool_lease_extend(w.q, w.v3, -1));
	OK(spool_delete(w.q, w.v1, SPOOL_VISIBLE));
	OK(spool_move(w.q, w.v2, SPOOL_VISIBLE, w.r));
	OK(spool_queue_create(w.db, "newq", &qa));
	OK(spool_queue_delete(w.db, "empty"));
	t_config(w.q, "priority=9");
	OK(spool_queue_setattr(w.q, &qa));
	OK(spool_purge(w.q, &count));
	EQU(count, 2);             /* the new one and d */
	{
		struct spool_stats s = t_stats(w.q);

		EQU(s.visible, 0);
		EQU(s.delayed, 0);
		EQU(s.leased, 1);
		EQU(s.bytes, 5);
		EQU(s.pushed_total, 7);
		EQU(s.acked_total, 2);
		EQU(s.deleted_total, 3);
	}
	after = t_snapshot(w.db);
	world_close(&w);
	w.db = t_open();
	CHECK_SNAP_DB(after, w.db);
	spool_close(w.db);
	free(after);
}

/* Another errno through the seam comes back as it is. */
TEST(fail_writes_eio)
{
	struct spool_push p = { .body = "x", .len = 1 };
	struct world w;
	char *before;

	world_make(&w);
	before = t_snapshot(w.db);
	t_log_expect();
	spool_test_fail_writes(w.db, -EIO);
	RC(spool_push(w.q, &p, NULL), -EIO);
	RC(spool_ack(w.q, w.l), -EIO);
	CHECK_SNAP_DB(before, w.db);
	spool_test_fail_writes(w.db, 0);
	OK(spool_push(w.q, &p, NULL));
	world_close(&w);
	free(before);
}

/* Timers that come due while writes fail do not lose messages. */
TEST(enospc_during_tick)
{
	struct world w;
	struct spool_msg_info i;

	world_make(&w);
	t_log_expect();
	spool_test_fail_writes(w.db, -ENOSPC);
	t_advance(60000);          /* d's delay and l's lease are over */
	spool_tick(w.db);
	spool_test_fail_writes(w.db, 0);
	t_advance(1);
	spool_tick(w.db);
	/* whatever happened, both are visible and leasable now */
	EQ(t_state(w.q, w.d), SPOOL_VISIBLE);
	EQ(t_state(w.q, w.l), SPOOL_VISIBLE);
	OK(spool_lease_id(w.q, w.d, &i));
	OK(spool_lease_id(w.q, w.l, &i));
	EQU(i.receives, 2);
	world_close(&w);
	/* and after a reopen */
	w.db = t_open();
	w.q = t_q(w.db, "q");
	EQ(t_state(w.q, w.d), SPOOL_LEASED);
	EQ(t_state(w.q, w.l), SPOOL_LEASED);
	spool_queue_close(w.q);
	spool_close(w.db);
}
