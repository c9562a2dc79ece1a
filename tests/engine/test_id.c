/*
 * test_id.c - message ids: the text form (fixed length, base 62, text order
 * is numeric order, strict parsing) and how a store hands them out
 * (increasing in push order, also across reopen and a clock going back).
 */
#include "t.h"

static const char digits62[] =
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* The reference encoder: base 62 over [0-9A-Za-z], zero-padded to 11. */
static void ref_format(unsigned __int128 v, char out[SPOOL_ID_LEN + 1])
{
	int i;

	for (i = SPOOL_ID_LEN - 1; i >= 0; i--) {
		out[i] = digits62[(int)(v % 62)];
		v /= 62;
	}
	out[SPOOL_ID_LEN] = '\0';
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

/* A random id of random magnitude, so short and long texts both occur. */
static uint64_t rng_id(void)
{
	unsigned shift = (unsigned)(rng() % 64);

	return rng() >> shift;
}

static void check_text(const char *t)
{
	size_t i;

	EQU(strlen(t), SPOOL_ID_LEN);
	for (i = 0; i < SPOOL_ID_LEN; i++)
		if (!strchr(digits62, t[i]) || !t[i])
			T_FAIL("id text \"%s\": bad character at %zu", t, i);
}

TEST(id_len_constant)
{
	EQ(SPOOL_ID_LEN, 11);
}

TEST(id_format_known_values)
{
	static const struct {
		uint64_t v;
		const char *text;
	} known[] = {
		{ 0, "00000000000" },  { 1, "00000000001" },
		{ 9, "00000000009" },  { 10, "0000000000A" },
		{ 35, "0000000000Z" }, { 36, "0000000000a" },
		{ 61, "0000000000z" }, { 62, "00000000010" },
		{ 3843, "000000000zz" }, { 3844, "00000000100" },
	};
	char out[SPOOL_ID_LEN + 1], ref[SPOOL_ID_LEN + 1];
	size_t i;

	for (i = 0; i < sizeof known / sizeof known[0]; i++) {
		memset(out, 'x', sizeof out);
		spool_id_format(known[i].v, out);
		CHECK_STR(out, known[i].text);
	}
	spool_id_format(UINT64_MAX, out);
	ref_format(UINT64_MAX, ref);
	CHECK_STR(out, ref);
}

TEST(id_round_trip_random)
{
	static const uint64_t edges[] = {
		0, 1, 61, 62, 63, UINT32_MAX, (uint64_t)UINT32_MAX + 1,
		INT64_MAX, (uint64_t)INT64_MAX + 1, UINT64_MAX - 1, UINT64_MAX,
		(UINT64_C(1700000000000) << 21) | 5,
	};
	char out[SPOOL_ID_LEN + 1], ref[SPOOL_ID_LEN + 1];
	uint64_t v, back;
	size_t i;

	for (i = 0; i < 200000; i++) {
		v = i < sizeof edges / sizeof edges[0] ? edges[i] : rng_id();
		spool_id_format(v, out);
		check_text(out);
		ref_format(v, ref);
		if (strcmp(out, ref))
			T_FAIL("format(%" PRIu64 ") = \"%s\", want \"%s\"", v,
			       out, ref);
		back = ~v;
		OK(spool_id_parse(out, SPOOL_ID_LEN, &back));
		if (back != v)
			T_FAIL("parse(format(%" PRIu64 ")) = %" PRIu64, v,
			       back);
	}
}

TEST(id_text_order_is_numeric_order)
{
	char ta[SPOOL_ID_LEN + 1], tb[SPOOL_ID_LEN + 1];
	uint64_t a, b;
	int i, c;

	for (i = 0; i < 200000; i++) {
		a = rng_id();
		b = i % 2 ? rng_id() : a + (rng() % 200) - 100;
		spool_id_format(a, ta);
		spool_id_format(b, tb);
		c = strcmp(ta, tb);
		if ((a < b) != (c < 0) || (a == b) != (c == 0))
			T_FAIL("%" PRIu64 " vs %" PRIu64 ": \"%s\" vs \"%s\"",
			       a, b, ta, tb);
	}
}

TEST(id_parse_exactly_len_bytes)
{
	/* Only the first len bytes count: no NUL needed after them. */
	char buf[] = "0000000000Azz-";
	uint64_t id = 0;

	OK(spool_id_parse(buf, SPOOL_ID_LEN, &id));
	EQU(id, 10);
	/* "0000000Azz-": the eleventh byte is '-' */
	RC(spool_id_parse(buf + 3, SPOOL_ID_LEN, &id), -EINVAL);
	/* "00000000Azz" */
	OK(spool_id_parse(buf + 2, SPOOL_ID_LEN, &id));
	EQU(id, 10 * 62 * 62 + 61 * 62 + 61);
}

TEST(id_parse_rejects_bad_text)
{
	static const char bad_chars[] = "-_./ +:\t\n\x80\xff";
	char t[SPOOL_ID_LEN + 2];
	unsigned __int128 over = (unsigned __int128)UINT64_MAX + 1;
	uint64_t id;
	size_t i, pos;

	RC(spool_id_parse("", 0, &id), -EINVAL);
	RC(spool_id_parse("0000000001", 10, &id), -EINVAL);
	RC(spool_id_parse("000000000001", 12, &id), -EINVAL);
	RC(spool_id_parse("1", 1, &id), -EINVAL);
	/* an embedded NUL */
	RC(spool_id_parse("00000\0" "00001", SPOOL_ID_LEN, &id), -EINVAL);
	for (i = 0; i < sizeof bad_chars - 1; i++)
		for (pos = 0; pos < SPOOL_ID_LEN; pos += 5) {
			memcpy(t, "00000000001", SPOOL_ID_LEN + 1);
			t[pos] = bad_chars[i];
			RC(spool_id_parse(t, SPOOL_ID_LEN, &id), -EINVAL);
		}
	/* out of range: above UINT64_MAX */
	RC(spool_id_parse("zzzzzzzzzzz", SPOOL_ID_LEN, &id), -EINVAL);
	ref_format(over, t);
	RC(spool_id_parse(t, SPOOL_ID_LEN, &id), -EINVAL);
	ref_format(over - 1, t);
	OK(spool_id_parse(t, SPOOL_ID_LEN, &id));
	EQU(id, UINT64_MAX);
}

/* ------------------------------------------------------ ids of a store */

TEST(id_push_order_and_time)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	char ta[SPOOL_ID_LEN + 1], tb[SPOOL_ID_LEN + 1];
	uint64_t prev, id;
	int i;

	/* the documented layout: push time in ms above a 21-bit counter */
	prev = t_push(q, "first");
	EQU(prev >> 21, (uint64_t)T_CLOCK_START);
	EQ(t_stat(q, prev).sent_ms, T_CLOCK_START);
	/* many pushes in the same millisecond */
	for (i = 0; i < 3000; i++) {
		id = t_push(q, "x");
		CHECK_U(id, >, prev);
		spool_id_format(prev, ta);
		spool_id_format(id, tb);
		CHECK_INT(strcmp(ta, tb), <, 0);
		prev = id;
	}
	/* the clock going back must not make ids go back */
	t_advance(-60000);
	id = t_push(q, "back");
	CHECK_U(id, >, prev);
	prev = id;
	t_advance(120000);
	id = t_push(q, "forward");
	CHECK_U(id, >, prev);
	EQU(id >> 21, (uint64_t)(T_CLOCK_START + 60000));
	spool_queue_close(q);
	spool_close(db);
}

TEST(id_increase_across_reopen)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	uint64_t prev = t_push(q, "a"), id;
	int round;

	for (round = 0; round < 4; round++) {
		spool_queue_close(q);
		spool_close(db);
		/* the same ms, then a clock an hour behind, then 10 s behind */
		if (round == 1)
			t_advance(-3600 * 1000);
		if (round == 2)
			t_advance(-10 * 1000);
		db = t_open();
		q = t_q(db, "q");
		id = t_push(q, "b");
		CHECK_U(id, >, prev);
		prev = id;
		id = t_push(q, "c");
		CHECK_U(id, >, prev);
		prev = id;
	}
	spool_queue_close(q);
	spool_close(db);
}

TEST(id_batch_consecutive)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_push p[5];
	uint64_t before = t_push(q, "0"), first = 0, ids[8];
	size_t i;

	memset(p, 0, sizeof p);
	for (i = 0; i < 5; i++) {
		p[i].body = "b";
		p[i].len = 1;
	}
	OK(spool_push_batch(q, p, 5, &first));
	CHECK_U(first, >, before);
	EQU(t_list_all(q, SPOOL_VISIBLE, ids, 8), 6);
	EQU(ids[0], before);
	for (i = 0; i < 5; i++)
		EQU(ids[i + 1], first + i);
	CHECK_U(t_push(q, "after"), >, first + 4);
	spool_queue_close(q);
	spool_close(db);
}

/* All messages gone, then a reopen with the clock an hour behind: the next
 * id is still above every id handed out (never reused). */
TEST(id_never_reused_after_all_acked)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	uint64_t last = 0, id;
	int i;

	for (i = 0; i < 50; i++) {
		last = t_push(q, "m");
		EQU(t_lease(q, "m"), last);
		OK(spool_ack(q, last));
	}
	EQU(t_stats(q).visible + t_stats(q).leased, 0);
	spool_queue_close(q);
	spool_close(db);
	t_advance(-3600 * 1000);
	db = t_open();
	q = t_q(db, "q");
	id = t_push(q, "after");
	CHECK_U(id, >, last);
	spool_queue_close(q);
	spool_close(db);
}

/* The same after kill -9 of the process that handed the ids out. */
TEST(id_never_reused_after_kill9)
{
	uint64_t last = 0, id;
	int fds[2], status, i;
	spool_db *db;
	spool_queue *q;
	pid_t pid;

	OK(pipe(fds));
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		db = t_open();
		q = t_mkq(db, "q");
		for (i = 0; i < 3000; i++) {
			last = t_push(q, "m");
			if (i % 2)
				OK(spool_delete(q, last, SPOOL_VISIBLE));
		}
		OK(spool_delete(q, last - 1, SPOOL_VISIBLE));
		if (write(fds[1], &last, sizeof last) != sizeof last)
			_exit(2);
		pause();
		_exit(3);
	}
	EQ(read(fds[0], &last, sizeof last), (ssize_t)sizeof last);
	OK(kill(pid, SIGKILL));
	EQ(waitpid(pid, &status, 0), pid);
	t_advance(-3600 * 1000);
	db = t_open();
	q = t_q(db, "q");
	id = t_push(q, "after");
	CHECK_U(id, >, last);
	spool_queue_close(q);
	spool_close(db);
}
