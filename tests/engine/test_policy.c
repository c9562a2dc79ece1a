/*
 * test_policy.c - queue policies in the engine: dead letters (max_receives,
 * dead_letter), redrive, retention, dedup (name, content, window, restart),
 * fan-out (all or none), pause, and the settings that name other queues.
 */
#include "t.h"

static void push_named(spool_queue *q, const char *name, const char *body,
		       uint64_t *id)
{
	struct spool_push p = { .body = body, .len = strlen(body),
				.name = name };

	OK(spool_push(q, &p, id));
}

/* Leases message want and lets the lease run out. */
static void lease_and_expire(spool_db *db, spool_queue *q, uint64_t want)
{
	EQU(t_lease(q, NULL), want);
	t_advance(30001);
	spool_tick(db);
}

/* A lease of length 0 (SQS's VisibilityTimeout=0) runs out through the
 * same path as any lease: counted as expired, and dead-lettered at
 * max_receives, not simply made visible again. */
TEST(zero_length_lease_expires_like_any_lease)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "jobs"), *dlq;
	struct spool_msg_info i;
	uint64_t id = t_push(q, "poison");
	char buf[8];
	size_t n;

	t_config(q, "max_receives=2\n");
	OK(spool_lease_next_vt(q, 0, buf, sizeof buf, &n, &i));
	spool_tick(db);
	EQ(t_state(q, id), SPOOL_VISIBLE);
	EQU(t_stats(q).expired_total, 1);
	OK(spool_lease_next_vt(q, 0, buf, sizeof buf, &n, &i));
	EQU(i.receives, 2);
	spool_tick(db);
	EQ(t_state(q, id), 0);
	dlq = t_q(db, "jobs.dead");
	EQ(t_state(dlq, id), SPOOL_VISIBLE);
	EQU(t_stats(q).expired_total, 2);
	EQU(t_stats(q).dead_total, 1);
	spool_queue_close(dlq);
	spool_queue_close(q);
	spool_close(db);
}

TEST(dead_letter_after_max_receives)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "jobs"), *dlq;
	struct spool_attr at = { "user.k", "v", 1 };
	struct spool_push p = { .body = "poison", .len = 6, .attrs = &at,
				.nattrs = 1 };
	char val[8];
	uint64_t id;

	t_config(q, "max_receives=2\n");
	OK(spool_push(q, &p, &id));
	lease_and_expire(db, q, id);
	EQ(t_state(q, id), SPOOL_VISIBLE);
	RC(spool_queue_open(db, "jobs.dead", &dlq), -ENOENT);
	lease_and_expire(db, q, id);
	/* second lease ran out: moved, atomically, to jobs.dead (created) */
	EQ(t_state(q, id), 0);
	dlq = t_q(db, "jobs.dead");
	EQ(t_state(dlq, id), SPOOL_VISIBLE);
	EQU(t_stat(dlq, id).receives, 2);
	EQ(spool_msg_getattr(dlq, id, "user.k", val, sizeof val), 1);
	EQU(t_stats(q).dead_total, 1);
	EQU(t_stats(q).expired_total, 2);
	EQU(t_stats(q).visible + t_stats(q).leased, 0);
	EQU(t_stats(dlq).visible, 1);
	/* it survives a restart where it is */
	spool_queue_close(q);
	spool_queue_close(dlq);
	spool_close(db);
	db = t_open();
	q = t_q(db, "jobs");
	dlq = t_q(db, "jobs.dead");
	EQ(t_state(dlq, id), SPOOL_VISIBLE);
	EQU(t_stats(q).dead_total, 1);
	/* redrive: move everything back */
	{
		uint64_t moved = 0;

		OK(spool_move_all(dlq, q, 0, &moved));
		EQU(moved, 1);
	}
	EQ(t_state(q, id), SPOOL_VISIBLE);
	EQ(t_state(dlq, id), 0);
	spool_queue_close(q);
	spool_queue_close(dlq);
	spool_close(db);
}

TEST(dead_letter_named_queue_and_lowered_max)
{
	T_ACROSS_FAMILIES();
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "jobs"), *dl = t_mkq(db, "graveyard");
	uint64_t a, b;

	t_config(q, "dead_letter=graveyard\n");
	a = t_push(q, "a");
	b = t_push(q, "b");
	lease_and_expire(db, q, a);
	lease_and_expire(db, q, a);
	EQ(t_stat(q, a).receives, 2);
	/* lowering max_receives: a is already out of receives; the next lease
	 * sends it to the dead-letter queue and hands out b */
	t_config(q, "max_receives=2\n");
	EQU(t_lease(q, "b"), b);
	EQ(t_state(dl, a), SPOOL_VISIBLE);
	EQU(t_stats(q).dead_total, 1);
	spool_queue_close(q);
	spool_queue_close(dl);
	spool_close(db);
}

TEST(dead_letter_refs_validated)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "jobs");
	char before[2048], after[2048];
	const char *bad[] = {
		"dead_letter=nosuch\n",         /* unknown queue */
		"dead_letter=jobs\n",           /* itself */
		"dead_letter=.x\n",             /* bad name */
		"fanout=nosuch\n",
		"fanout=a,,b\n",
		"fanout=jobs\n",                /* a cycle of one */
	};

	spool_config_format(q, before, sizeof before);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		snprintf(t_ctx, sizeof t_ctx, "%s", bad[i]);
		RC(spool_config_apply(q, bad[i], strlen(bad[i])), -EINVAL);
	}
	spool_config_format(q, after, sizeof after);
	CHECK_STR(before, after);
	/* the default name is fine even before it exists */
	t_config(q, "dead_letter=jobs.dead\n");
	spool_queue_close(q);
	spool_close(db);
}

TEST(fanout_cycle_refused)
{
	T_ACROSS_FAMILIES();
	spool_db *db = t_open();
	spool_queue *a = t_mkq(db, "a"), *b = t_mkq(db, "b"), *c = t_mkq(db, "c");

	t_config(a, "fanout=b\n");
	t_config(b, "fanout=c\n");
	RC(spool_config_apply(c, "fanout=a", 8), -EINVAL);
	t_config(c, "fanout=\n");
	spool_queue_close(a);
	spool_queue_close(b);
	spool_queue_close(c);
	spool_close(db);
}

TEST(retention_deletes_old_messages)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	uint64_t a, b, c;

	t_config(q, "retention=60\n");
	a = t_push(q, "old");
	b = t_push_delay(q, "old delayed", 500000);
	t_advance(30000);
	c = t_push(q, "young");
	EQU(t_lease(q, "old"), a);
	t_advance(30000);           /* a and b are 60 s old */
	spool_tick(db);
	EQ(t_state(q, a), 0);       /* leased, deleted all the same */
	EQ(t_state(q, b), 0);
	EQ(t_state(q, c), SPOOL_VISIBLE);
	EQU(t_stats(q).deleted_total, 2);
	/* the next timer is c's end of retention */
	CHECK_INT(spool_tick(db), ==, T_CLOCK_START + 90000);
	t_config(q, "retention=0\n");
	t_advance(60000);
	spool_tick(db);
	EQ(t_state(q, c), SPOOL_VISIBLE);
	spool_queue_close(q);
	spool_close(db);
}

TEST(dedup_name_window_and_restart)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	uint64_t id1 = 0, id2 = 1, id3 = 0;

	t_config(q, "dedup=name\ndedup_window=10\n");
	push_named(q, "order-17", "first", &id1);
	CHECK(id1 != 0);
	push_named(q, "order-17", "retry", &id2);
	EQU(id2, 0);                    /* accepted and dropped */
	EQU(t_stats(q).visible, 1);
	EQU(t_stats(q).deduped_total, 1);
	EQU(t_stats(q).pushed_total, 1);
	/* unnamed pushes have no key */
	t_push(q, "x");
	t_push(q, "x");
	EQU(t_stats(q).visible, 3);
	/* the window survives a restart */
	spool_queue_close(q);
	spool_close(db);
	t_advance(5000);
	db = t_open();
	q = t_q(db, "q");
	push_named(q, "order-17", "again", &id3);
	EQU(id3, 0);
	EQU(t_stats(q).deduped_total, 2);
	/* after the window, the name is free again */
	t_advance(6000);
	push_named(q, "order-17", "later", &id3);
	CHECK(id3 != 0);
	EQU(t_stats(q).visible, 4);
	spool_queue_close(q);
	spool_close(db);
}

TEST(dedup_content_in_a_batch)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_push p[4] = {
		{ .body = "a", .len = 1 }, { .body = "b", .len = 1 },
		{ .body = "a", .len = 1 }, { .body = "c", .len = 1 },
	};
	uint64_t first;

	t_config(q, "dedup=content\n");
	t_push(q, "c");
	OK(spool_push_batch(q, p, 4, &first));
	CHECK(first != 0);
	EQU(t_stats(q).visible, 3);     /* c, a, b */
	EQU(t_stats(q).deduped_total, 2);
	t_lease(q, "c");
	EQU(t_lease(q, "a"), first);
	t_lease(q, "b");
	spool_queue_close(q);
	spool_close(db);
}

TEST(dedup_ids_name_the_kept_message)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_push p[4] = {
		{ .body = "a", .len = 1 }, { .body = "b", .len = 1 },
		{ .body = "a", .len = 1 }, { .body = "c", .len = 1 },
	};
	uint64_t c, ids[4], again[2];

	t_config(q, "dedup=content\ndedup_window=10\n");
	c = t_push(q, "c");
	OK(spool_push_batch_ids(q, p, 4, ids));
	CHECK(ids[0] != 0 && ids[1] != 0 && ids[0] != ids[1]);
	EQU(ids[2], ids[0]);            /* the a kept earlier in the batch */
	EQU(ids[3], c);                 /* the c pushed before */
	/* only duplicates: each gets the kept id, also after a restart */
	spool_queue_close(q);
	spool_close(db);
	t_advance(1000);
	db = t_open();
	q = t_q(db, "q");
	OK(spool_push_batch_ids(q, p + 1, 2, again));
	EQU(again[0], ids[1]);
	EQU(again[1], ids[0]);
	EQU(t_stats(q).deduped_total, 4);
	EQU(t_stats(q).visible, 3);
	/* the first id of spool_push is still 0 for a dropped push */
	{
		uint64_t one = 9;

		OK(spool_push(q, &p[0], &one));
		EQU(one, 0);
	}
	/* past the window: a new message, a new id */
	t_advance(10000);
	OK(spool_push_batch_ids(q, p, 1, again));
	CHECK(again[0] != 0 && again[0] != ids[0]);
	spool_queue_close(q);
	spool_close(db);
}

TEST(fanout_all_or_none)
{
	T_ACROSS_FAMILIES();
	spool_db *db = t_open();
	spool_queue *topic = t_mkq(db, "topic"), *a = t_mkq(db, "a"),
		    *b = t_mkq(db, "b");
	struct spool_push p = { .body = "news", .len = 4 };
	uint64_t id;

	t_config(topic, "fanout=a,b\n");
	OK(spool_push(topic, &p, &id));
	EQU(t_stats(topic).visible, 0);
	EQU(t_stats(a).visible, 1);
	EQU(t_stats(b).visible, 1);
	EQ(t_state(a, id), SPOOL_VISIBLE);
	/* b is full: nobody gets the next one */
	t_config(b, "max_depth=1\n");
	RC(spool_push(topic, &p, &id), -EDQUOT);
	EQU(t_stats(a).visible, 1);
	EQU(t_stats(b).visible, 1);
	/* a subscriber disappears: refused too */
	t_config(b, "max_depth=0\n");
	id = t_lease(b, "news");
	OK(spool_ack(b, id));
	OK(spool_queue_delete(db, "b"));
	RC(spool_push(topic, &p, &id), -ENOENT);
	EQU(t_stats(a).visible, 1);
	spool_queue_close(topic);
	spool_queue_close(a);
	spool_queue_close(b);
	spool_close(db);
}

/* spool_push_room forecasts what a push of n would meet: the queue's own
 * max_depth, or with fanout each subscriber's (not the topic's), a deleted
 * queue; and it agrees with the push that follows. */
TEST(push_room_forecasts_the_push)
{
	T_ACROSS_FAMILIES();
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q"), *topic = t_mkq(db, "topic"),
		    *a = t_mkq(db, "a"), *b = t_mkq(db, "b");
	struct spool_push p[3] = {
		{ .body = "1", .len = 1 }, { .body = "2", .len = 1 },
		{ .body = "3", .len = 1 },
	};

	OK(spool_push_room(q, 0));
	OK(spool_push_room(q, 1000));
	t_config(q, "max_depth=3");
	OK(spool_push_room(q, 3));
	RC(spool_push_room(q, 4), -EDQUOT);
	RC(spool_push_batch(q, p, 3, NULL), 0);
	RC(spool_push_room(q, 1), -EDQUOT);
	RC(spool_push(q, p, NULL), -EDQUOT);
	OK(spool_push_room(q, 0));
	/* a topic's own max_depth does not apply; each subscriber's does */
	t_config(topic, "max_depth=1\nfanout=a,b\n");
	OK(spool_push_room(topic, 2));
	OK(spool_push_batch(topic, p, 2, NULL));
	t_config(b, "max_depth=3\n");
	OK(spool_push_room(topic, 1));
	RC(spool_push_room(topic, 2), -EDQUOT);
	RC(spool_push_batch(topic, p, 2, NULL), -EDQUOT);
	OK(spool_push(topic, p, NULL));
	RC(spool_push_room(topic, 1), -EDQUOT);
	/* a deleted queue, or subscriber */
	t_config(b, "max_depth=0\n");
	spool_queue_close(a);
	a = t_q(db, "a");
	OK(spool_purge(a, NULL));
	OK(spool_queue_delete(db, "a"));
	RC(spool_push_room(topic, 1), -ENOENT);
	RC(spool_push(topic, p, NULL), -ENOENT);
	OK(spool_purge(q, NULL));
	OK(spool_queue_delete(db, "q"));
	RC(spool_push_room(q, 1), -ENOENT);
	spool_queue_close(q);
	spool_queue_close(topic);
	spool_queue_close(a);
	spool_queue_close(b);
	spool_close(db);
}

TEST(paused_hands_nothing_out)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	void *body;
	size_t n;
	uint64_t a;
	unsigned seen;

	t_config(q, "paused=1\n");
	a = t_push(q, "a");
	RC(spool_lease_next(q, NULL, 0, &n, &i), -EAGAIN);
	RC(spool_pop(q, &body, &i), -EAGAIN);
	RC(spool_lease_id(q, a, &i), -EAGAIN);
	EQ(t_state(q, a), SPOOL_VISIBLE);
	seen = t_wakes("q");
	t_config(q, "paused=0\n");
	CHECK_INT(t_wakes("q"), >, seen);
	EQU(t_lease(q, "a"), a);
	spool_queue_close(q);
	spool_close(db);
}

TEST(purge_keeps_leases)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	uint64_t a, n = 0;

	a = t_push(q, "leased");
	t_push(q, "visible");
	t_push_delay(q, "delayed", 1000);
	EQU(t_lease(q, "leased"), a);
	OK(spool_purge(q, &n));
	EQU(n, 2);
	CHECK_STATS(q, 0, 0, 1, 6, 3, 0, 0, 2);
	EQ(t_state(q, a), SPOOL_LEASED);
	spool_queue_close(q);
	spool_close(db);
}

