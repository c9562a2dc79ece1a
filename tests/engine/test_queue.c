/*
 * test_queue.c - queues (create, delete, list, look up, names, attributes,
 * handles of a deleted queue) and their settings (defaults, config text,
 * validation, all-or-nothing apply, persistence, effect on pushes).
 */
#include "t.h"

TEST(queue_create_open_list)
{
	static const char *names[] = { "b", "a", "B", "a-1", "a.1", "a_1",
				       "0", "zz", "ab" };
	/* the same, in byte order */
	static const char *sorted[] = { "0", "B", "a", "a-1", "a.1", "a_1",
					"ab", "b", "zz" };
	char name[SPOOL_NAME_MAX + 1];
	spool_db *db = t_open();
	spool_queue *q;
	size_t i;

	RC(spool_queue_next(db, NULL, name), -ENOENT);
	RC(spool_queue_next(db, "", name), -ENOENT);
	for (i = 0; i < 9; i++) {
		struct spool_queue_attr a = { 0, 0, 0755, 0 };

		OK(spool_queue_create(db, names[i], &a));
		EQU(spool_queue_count(db), i + 1);
	}
	OK(spool_queue_next(db, NULL, name));
	CHECK_STR(name, sorted[0]);
	OK(spool_queue_next(db, "", name));
	CHECK_STR(name, sorted[0]);
	for (i = 1; i < 9; i++) {
		char after[SPOOL_NAME_MAX + 1];

		strcpy(after, name);
		OK(spool_queue_next(db, after, name));
		CHECK_STR(name, sorted[i]);
	}
	RC(spool_queue_next(db, "zz", name), -ENOENT);
	/* after a name that is not a queue: the next greater one */
	OK(spool_queue_next(db, "a-", name));
	CHECK_STR(name, "a-1");
	OK(spool_queue_next(db, "a_2", name));
	CHECK_STR(name, "ab");
	OK(spool_queue_next(db, "!", name));
	CHECK_STR(name, "0");
	/* lookups */
	for (i = 0; i < 9; i++) {
		q = t_q(db, names[i]);
		CHECK_STR(spool_queue_name(q), names[i]);
		EQ(spool_queue_alive(q), 1);
		spool_queue_close(q);
	}
	q = NULL;
	RC(spool_queue_open(db, "nope", &q), -ENOENT);
	RC(spool_queue_open(db, "a/b", &q), -ENOENT);
	RC(spool_queue_open(db, "", &q), -ENOENT);
	RC(spool_queue_open(db, ".a", &q), -ENOENT);
	CHECK(q == NULL);
	spool_close(db);
	/* all of it after a reopen */
	db = t_open();
	EQU(spool_queue_count(db), 9);
	name[0] = '\0';
	for (i = 0; i < 9; i++) {
		OK(spool_queue_next(db, name, name));
		CHECK_STR(name, sorted[i]);
	}
	spool_close(db);
}

TEST(queue_create_exists_delete_missing)
{
	struct spool_queue_attr a = { 1, 2, 0700, 0 };
	spool_db *db = t_open();

	OK(spool_queue_create(db, "q", &a));
	RC(spool_queue_create(db, "q", &a), -EEXIST);
	EQU(spool_queue_count(db), 1);
	RC(spool_queue_delete(db, "nope"), -ENOENT);
	OK(spool_queue_delete(db, "q"));
	RC(spool_queue_delete(db, "q"), -ENOENT);
	EQU(spool_queue_count(db), 0);
	/* the name is free again; the new queue starts from scratch */
	OK(spool_queue_create(db, "q", &a));
	spool_close(db);
	db = t_open();
	EQU(spool_queue_count(db), 1);
	RC(spool_queue_create(db, "q", &a), -EEXIST);
	OK(spool_queue_delete(db, "q"));
	spool_close(db);
	db = t_open();
	EQU(spool_queue_count(db), 0);
	spool_close(db);
}

TEST(queue_names)
{
	char name[SPOOL_NAME_MAX + 2], big[SPOOL_NAME_MAX + 2];
	static const char *bad[] = {
		"", ".", "..", ".hidden", "a/b", "/", "/a", "a/", "a b", " a",
		"a\n", "a\t", "a*", "a:b", "a\\b", "caf\xc3\xa9", "\x7f",
		"a\x01", "q@x", "a+b", "a,b",
	};
	static const char *good[] = {
		"a", "Z", "0", "-", "_", "a.", "a..b", "-dash", "_under",
		"x.dead", "A-Za-z0-9._-",
	};
	struct spool_queue_attr a = { 0, 0, 0755, 0 };
	spool_db *db = t_open();
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (spool_name_valid(bad[i], strlen(bad[i])))
			T_FAIL("spool_name_valid(\"%s\") = 1", bad[i]);
		if (spool_queue_create(db, bad[i], &a) != -EINVAL)
			T_FAIL("spool_queue_create(\"%s\") != -EINVAL",
			       bad[i]);
	}
	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		EQ(spool_name_valid(good[i], strlen(good[i])), 1);
		OK(spool_queue_create(db, good[i], &a));
	}
	/* len counts: an embedded NUL, or a prefix of a longer text */
	EQ(spool_name_valid("a\0b", 3), 0);
	EQ(spool_name_valid("ab/c", 2), 1);
	EQ(spool_name_valid("ab", 0), 0);
	/* 200 bytes: fine; 201: too long */
	memset(big, 'n', SPOOL_NAME_MAX);
	big[SPOOL_NAME_MAX] = '\0';
	EQ(spool_name_valid(big, SPOOL_NAME_MAX), 1);
	OK(spool_queue_create(db, big, &a));
	spool_queue *q = t_q(db, big);
	CHECK_STR(spool_queue_name(q), big);
	spool_queue_close(q);
	OK(spool_queue_next(db, "nm", name));
	CHECK_STR(name, big);
	memset(big, 'm', SPOOL_NAME_MAX + 1);
	big[SPOOL_NAME_MAX + 1] = '\0';
	EQ(spool_name_valid(big, SPOOL_NAME_MAX + 1), 0);
	RC(spool_queue_create(db, big, &a), -EINVAL);
	EQU(spool_queue_count(db), sizeof good / sizeof good[0] + 1);
	spool_close(db);
}

TEST(queue_delete_not_empty)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	uint64_t id;

	/* visible */
	id = t_push(q, "v");
	RC(spool_queue_delete(db, "q"), -ENOTEMPTY);
	OK(spool_delete(q, id, SPOOL_VISIBLE));
	/* delayed */
	id = t_push_delay(q, "d", 1000);
	RC(spool_queue_delete(db, "q"), -ENOTEMPTY);
	OK(spool_delete(q, id, SPOOL_DELAYED));
	/* leased */
	id = t_push(q, "l");
	EQU(t_lease(q, "l"), id);
	RC(spool_queue_delete(db, "q"), -ENOTEMPTY);
	/* visible again after its lease ran out, still there */
	t_advance(30001);
	spool_tick(db);
	EQ(t_state(q, id), SPOOL_VISIBLE);
	RC(spool_queue_delete(db, "q"), -ENOTEMPTY);
	OK(spool_ack(q, id));
	EQ(spool_queue_alive(q), 1);
	/* and across a reopen the refusal holds */
	t_push(q, "x");
	spool_queue_close(q);
	spool_close(db);
	db = t_open();
	RC(spool_queue_delete(db, "q"), -ENOTEMPTY);
	q = t_q(db, "q");
	OK(spool_purge(q, NULL));
	OK(spool_queue_delete(db, "q"));
	EQ(spool_queue_alive(q), 0);
	spool_queue_close(q);
	spool_close(db);
}

TEST(queue_deleted_handle_enoent)
{
	struct spool_queue_attr a = { 0, 0, 0755, 0 };
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q"), *r = t_mkq(db, "r");
	struct spool_push p = { .body = "x", .len = 1 };
	struct spool_settings set;
	struct spool_stats st;
	struct spool_msg_info info;
	struct spool_cursor cur = { 0 };
	char buf[256];
	uint64_t id = t_push(r, "in r"), ids[4], n64;
	size_t n;
	void *body;
	int marker;

	spool_queue_set_udata(q, 0, &marker);
	OK(spool_queue_delete(db, "q"));
	EQ(spool_queue_alive(q), 0);
	CHECK_STR(spool_queue_name(q), "q");
	CHECK(spool_queue_udata(q, 0) == &marker);
	RC(spool_push(q, &p, NULL), -ENOENT);
	RC(spool_push_batch(q, &p, 1, NULL), -ENOENT);
	RC(spool_lease_next(q, buf, sizeof buf, &n, &info), -ENOENT);
	RC(spool_pop(q, &body, &info), -ENOENT);
	RC(spool_stats_get(q, &st), -ENOENT);
	RC(spool_stats_format(q, buf, sizeof buf), -ENOENT);
	RC(spool_settings_get(q, &set), -ENOENT);
	RC(spool_config_format(q, buf, sizeof buf), -ENOENT);
	RC(spool_config_apply(q, "priority=1", 10), -ENOENT);
	RC(spool_queue_getattr(q, &a), -ENOENT);
	RC(spool_queue_setattr(q, &a), -ENOENT);
	RC(spool_list(q, SPOOL_VISIBLE, &cur, ids, 4), -ENOENT);
	RC(spool_purge(q, &n64), -ENOENT);
	RC(spool_msg_stat(q, id, &info), -ENOENT);
	RC(spool_move_all(q, r, 0, &n64), -ENOENT);
	RC(spool_move_all(r, q, 0, &n64), -ENOENT);
	/* a move into a deleted queue changes nothing */
	RC(spool_move(r, id, SPOOL_VISIBLE, q), -ENOENT);
	EQ(t_state(r, id), SPOOL_VISIBLE);
	/* a new queue of the same name is another queue */
	OK(spool_queue_create(db, "q", &a));
	spool_queue *q2 = t_q(db, "q");
	EQ(spool_queue_alive(q2), 1);
	t_push(q2, "new");
	CHECK_STATS(q2, 1, 0, 0, 3, 1, 0, 0, 0);
	/* and the old handle stays dead */
	EQ(spool_queue_alive(q), 0);
	RC(spool_push(q, &p, NULL), -ENOENT);
	RC(spool_stats_get(q, &st), -ENOENT);
	spool_queue_close(q2);
	spool_queue_close(q);
	spool_queue_close(r);
	spool_close(db);
}

/* Each caller in the process takes its own slot: what one sets, the
 * other does not see; there are four. */
TEST(queue_udata_slots)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	int fs_slot = spool_udata_slot(db), sqs_slot = spool_udata_slot(db);
	int x, y;

	EQ(fs_slot, 0);
	EQ(sqs_slot, 1);
	EQ(spool_udata_slot(db), 2);
	EQ(spool_udata_slot(db), 3);
	RC(spool_udata_slot(db), -ENOSPC);
	spool_queue_set_udata(q, fs_slot, &x);
	CHECK(spool_queue_udata(q, sqs_slot) == NULL);
	spool_queue_set_udata(q, sqs_slot, &y);
	CHECK(spool_queue_udata(q, fs_slot) == &x);
	CHECK(spool_queue_udata(q, sqs_slot) == &y);
	spool_queue_close(q);
	spool_close(db);
}

TEST(queue_udata)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q"), *q2 = t_q(db, "q");
	int x;

	CHECK(spool_queue_udata(q, 0) == NULL);
	spool_queue_set_udata(q, 0, &x);
	/* kept on the queue, so every handle sees it */
	CHECK(spool_queue_udata(q2, 0) == &x);
	spool_queue_set_udata(q2, 0, NULL);
	CHECK(spool_queue_udata(q, 0) == NULL);
	spool_queue_close(q);
	spool_queue_close(q2);
	spool_close(db);
}

TEST(queue_attrs_persist)
{
	struct spool_queue_attr a = { .uid = 1000, .gid = 1001, .mode = 0750,
				      .ctime_ms = 5 };
	struct spool_queue_attr b = { .uid = 42, .gid = 43, .mode = 01777 };
	struct spool_queue_attr got;
	spool_db *db = t_open();
	spool_queue *q;

	OK(spool_queue_create(db, "q", &a));
	q = t_q(db, "q");
	OK(spool_queue_getattr(q, &got));
	EQU(got.uid, 1000);
	EQU(got.gid, 1001);
	EQU(got.mode, 0750);
	EQ(got.ctime_ms, T_CLOCK_START);   /* set by the engine */
	t_advance(5000);
	OK(spool_queue_setattr(q, &b));
	OK(spool_queue_getattr(q, &got));
	EQU(got.uid, 42);
	EQU(got.gid, 43);
	EQU(got.mode, 01777);
	EQ(got.ctime_ms, T_CLOCK_START + 5000);
	spool_queue_close(q);
	spool_close(db);
	t_advance(5000);
	db = t_open();
	q = t_q(db, "q");
	memset(&got, 0, sizeof got);
	OK(spool_queue_getattr(q, &got));
	EQU(got.uid, 42);
	EQU(got.gid, 43);
	EQU(got.mode, 01777);
	EQ(got.ctime_ms, T_CLOCK_START + 5000);
	spool_queue_close(q);
	spool_close(db);
}

/* ------------------------------------------------------------ settings */

static const char *const keys[] = {
	"visibility_timeout", "receive_wait", "delay", "priority", "max_size",
	"max_depth", "max_receives", "dead_letter", "retention", "dedup",
	"dedup_window", "paused", "fanout",
};
#define NKEYS (sizeof keys / sizeof keys[0])

/* "" means "<queue>.dead" (spool.h), so the two are the same setting. */
static int same_dead_letter(const char *qname, const char *a, const char *b)
{
	char dflt[SPOOL_NAME_MAX + 8];

	snprintf(dflt, sizeof dflt, "%s.dead", qname);
	return (!*a || !strcmp(a, dflt)) && (!*b || !strcmp(b, dflt));
}

/* Compares two settings of queue qname field by field (padding bytes do
 * not count). */
#define CHECK_SETTINGS(qname, a, b)                                          \
	check_settings(__FILE__, __LINE__, (qname), (a), (b))
static void check_settings(const char *file, int line, const char *qname,
			   const struct spool_settings *a,
			   const struct spool_settings *b)
{
#define F(f)                                                                 \
	if (a->f != b->f)                                                    \
		t_fail(file, line, "settings differ in " #f ": %lld vs %lld", \
		       (long long)a->f, (long long)b->f)
	F(visibility_timeout_ms); F(receive_wait_ms); F(delay_ms);
	F(priority); F(max_size); F(max_depth); F(max_receives);
	F(retention_ms); F(dedup); F(dedup_window_ms); F(paused);
#undef F
	if (strcmp(a->dead_letter, b->dead_letter) &&
	    !same_dead_letter(qname, a->dead_letter, b->dead_letter))
		t_fail(file, line, "settings differ in dead_letter: %s vs %s",
		       a->dead_letter, b->dead_letter);
	if (strcmp(a->fanout, b->fanout))
		t_fail(file, line, "settings differ in fanout: %s vs %s",
		       a->fanout, b->fanout);
}

/* Splits config text into values[NKEYS], checking the keys and their
 * order (DESIGN §6 table order), one "key=value\n" per line. */
static void split_config(const char *text, char values[NKEYS][1100])
{
	const char *p = text;
	size_t i;

	for (i = 0; i < NKEYS; i++) {
		const char *eq = strchr(p, '='), *nl = strchr(p, '\n');

		if (!eq || !nl || eq > nl)
			T_FAIL("config line %zu malformed in:\n%s", i, text);
		if ((size_t)(eq - p) != strlen(keys[i]) ||
		    memcmp(p, keys[i], strlen(keys[i])))
			T_FAIL("config line %zu is \"%.*s\", want key %s", i,
			       (int)(nl - p), p, keys[i]);
		snprintf(values[i], 1100, "%.*s", (int)(nl - eq - 1), eq + 1);
		p = nl + 1;
	}
	if (*p)
		T_FAIL("config has more than the %zu keys: \"%s\"", NKEYS, p);
}

/* A number in config text equals want (fractions allowed: "30", "30.0"). */
#define CHECK_NUM(text, want)                                                \
	do {                                                                 \
		char *t_end_;                                                \
		double t_v_ = strtod((text), &t_end_);                       \
		if (t_end_ == (text) || *t_end_ || t_v_ != (want))           \
			T_FAIL("config value \"%s\", want %g", (text),       \
			       (double)(want));                              \
	} while (0)

static char *config_text(spool_queue *q)
{
	static char buf[8192];
	int n = spool_config_format(q, buf, sizeof buf);

	CHECK_INT(n, >, 0);
	CHECK_INT(n, <, (int)sizeof buf);
	EQU(strlen(buf), (size_t)n);
	return buf;
}

TEST(config_defaults)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "jobs");
	char v[NKEYS][1100], small[10], *text;
	struct spool_settings s;
	int n;

	memset(&s, 0x5a, sizeof s);
	OK(spool_settings_get(q, &s));
	EQ(s.visibility_timeout_ms, 30000);
	EQ(s.receive_wait_ms, -1);
	EQ(s.delay_ms, 0);
	EQ(s.priority, 0);
	EQU(s.max_size, 1048576);
	EQU(s.max_depth, 0);
	EQU(s.max_receives, 0);
	CHECK_STR(s.dead_letter, "");
	EQ(s.retention_ms, 0);
	EQ(s.dedup, 0);
	EQ(s.dedup_window_ms, 300000);
	EQ(s.paused, 0);
	CHECK_STR(s.fanout, "");

	text = config_text(q);
	split_config(text, v);
	CHECK_NUM(v[0], 30);
	CHECK_STR(v[1], "inf");
	CHECK_NUM(v[2], 0);
	CHECK_NUM(v[3], 0);
	CHECK_NUM(v[4], 1048576);
	CHECK_NUM(v[5], 0);
	CHECK_NUM(v[6], 0);
	/* DESIGN §6: the default is "<queue>.dead" (an empty value would say
	 * the same to the engine; the reader is shown the real name) */
	if (strcmp(v[7], "jobs.dead") && strcmp(v[7], ""))
		T_FAIL("dead_letter default \"%s\"", v[7]);
	CHECK_NUM(v[8], 0);
	CHECK_STR(v[9], "off");
	CHECK_NUM(v[10], 300);
	CHECK_NUM(v[11], 0);
	CHECK_STR(v[12], "");

	/* snprintf semantics for a short buffer */
	n = spool_config_format(q, small, sizeof small);
	EQ(n, (int)strlen(text));
	CHECK_MEM(small, strlen(small), text, sizeof small - 1);
	/* the text reads back as a no-op */
	OK(spool_config_apply(q, text, strlen(text)));
	OK(spool_settings_get(q, &s));
	EQ(s.visibility_timeout_ms, 30000);
	EQ(s.receive_wait_ms, -1);
	CHECK_STR(config_text(q), text);
	spool_queue_close(q);
	spool_close(db);
}

TEST(config_apply_changes_only_named_keys)
{
	T_ACROSS_FAMILIES();
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_settings before, s;
	char v[NKEYS][1100];

	OK(spool_settings_get(q, &before));
	t_config(q, "visibility_timeout=0.2");
	OK(spool_settings_get(q, &s));
	EQ(s.visibility_timeout_ms, 200);
	s.visibility_timeout_ms = before.visibility_timeout_ms;
	CHECK_SETTINGS("q", &s, &before);

	/* spaces around key and value, blank lines, no final newline */
	t_config(q, "\n  priority = 5 \n\n max_depth=3\ndelay=2.5");
	OK(spool_settings_get(q, &s));
	EQ(s.priority, 5);
	EQU(s.max_depth, 3);
	EQ(s.delay_ms, 2500);
	EQ(s.visibility_timeout_ms, 200);
	EQ(s.receive_wait_ms, -1);
	EQU(s.max_size, 1048576);

	/* the queues the settings name exist (whether they must is the
	 * engine's choice; this test is about the values) */
	for (int k = 0; k < 4; k++)
		spool_queue_close(t_mkq(db, (const char *[]){
			"graveyard", "a", "b.c", "d-e" }[k]));
	t_config(q, "receive_wait=0\nmax_size=10\nmax_receives=4\n"
		    "dead_letter=graveyard\nretention=3600\ndedup=content\n"
		    "dedup_window=1.5\npaused=1\nfanout=a,b.c,d-e\n");
	OK(spool_settings_get(q, &s));
	EQ(s.receive_wait_ms, 0);
	EQU(s.max_size, 10);
	EQU(s.max_receives, 4);
	CHECK_STR(s.dead_letter, "graveyard");
	EQ(s.retention_ms, 3600000);
	EQ(s.dedup, 2);
	EQ(s.dedup_window_ms, 1500);
	EQ(s.paused, 1);
	CHECK_STR(s.fanout, "a,b.c,d-e");
	EQ(s.priority, 5);
	split_config(config_text(q), v);
	CHECK_NUM(v[0], 0.2);
	CHECK_NUM(v[1], 0);
	CHECK_NUM(v[2], 2.5);
	CHECK_NUM(v[3], 5);
	CHECK_NUM(v[4], 10);
	CHECK_NUM(v[5], 3);
	CHECK_NUM(v[6], 4);
	CHECK_STR(v[7], "graveyard");
	CHECK_NUM(v[8], 3600);
	CHECK_STR(v[9], "content");
	CHECK_NUM(v[10], 1.5);
	CHECK_NUM(v[11], 1);
	CHECK_STR(v[12], "a,b.c,d-e");

	t_config(q, "dedup=name\nreceive_wait=inf\npaused=0\nfanout=\n"
		    "priority=-7");
	OK(spool_settings_get(q, &s));
	EQ(s.dedup, 1);
	EQ(s.receive_wait_ms, -1);
	EQ(s.paused, 0);
	CHECK_STR(s.fanout, "");
	EQ(s.priority, -7);
	split_config(config_text(q), v);
	CHECK_STR(v[9], "name");
	CHECK_STR(v[1], "inf");
	t_config(q, "dedup=off");
	OK(spool_settings_get(q, &s));
	EQ(s.dedup, 0);
	/* an empty text changes nothing */
	before = s;
	OK(spool_config_apply(q, "", 0));
	OK(spool_config_apply(q, "\n\n", 2));
	OK(spool_settings_get(q, &s));
	CHECK_SETTINGS("q", &s, &before);
	spool_queue_close(q);
	spool_close(db);
}

TEST(config_bad_values_change_nothing)
{
	static const char *bad[] = {
		"nosuch=1",
		"visibility_timeout",           /* no '=' */
		"=5",
		"visibility_timeout=-1",
		"visibility_timeout=abc",
		"visibility_timeout=",
		"visibility_timeout=1e300",
		"visibility_timeout=0x10",      /* hex: numbers are decimal */
		"visibility_timeout=1e3",
		"visibility_timeout=+5",
		"visibility_timeout=nan",
		"visibility_timeout=inf",
		"visibility_timeout=.",
		"visibility_timeout=5.0.1",
		"visibility_timeout=16 s",
		"visibility_timeout=16\x01",
		"receive_wait=0x10",
		"receive_wait=infinity",
		"receive_wait=nan",
		"delay=0X1p4",
		"retention=1E2",
		"dedup_window=1_000",
		"max_size=0x10",
		"priority=+1",
		"visibility_timeout=5s",
		"receive_wait=-3",
		"receive_wait=forever",
		"delay=-1",
		"delay=x",
		"priority=1.5",
		"priority=abc",
		"priority=99999999999",
		"max_size=-1",
		"max_size=99999999999999999999999",
		"max_size=ten",
		"max_depth=-5",
		"max_depth=-0",         /* a sign only where negatives are */
		"max_receives=-0",
		"paused=-0",
		"max_depth=1.5",
		"max_receives=-1",
		"max_receives=99999999999",
		"retention=-1",
		"dedup=maybe",
		"dedup=1",
		"dedup_window=-1",
		"paused=2",
		"paused=yes",
		"dead_letter=a/b",
		"dead_letter=.x",
		"fanout=a,/b",
		"fanout=a,.b",
		/* a good line does not survive a bad one in the same text */
		"priority=5\nbogus=1",
		"priority=5\nmax_size=-1\n",
		"max_depth=7\nvisibility_timeout=abc\n",
		"Priority=5",
	};
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_settings before, s;
	char text_before[8192];
	size_t i;

	t_config(q, "priority=1\nmax_depth=100\nvisibility_timeout=12");
	OK(spool_settings_get(q, &before));
	snprintf(text_before, sizeof text_before, "%s", config_text(q));
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = spool_config_apply(q, bad[i], strlen(bad[i]));
		char b[32];

		snprintf(t_ctx, sizeof t_ctx, "config_apply(\"%s\")", bad[i]);
		if (rc != -EINVAL)
			T_FAIL("config_apply(\"%s\") = %s, want -EINVAL",
			       bad[i], t_errname(rc, b));
		OK(spool_settings_get(q, &s));
		CHECK_SETTINGS("q", &s, &before);
		CHECK_STR(config_text(q), text_before);
	}
	t_ctx[0] = '\0';
	spool_queue_close(q);
	spool_close(db);
	/* nothing reached the store either */
	db = t_open();
	q = t_q(db, "q");
	OK(spool_settings_get(q, &s));
	CHECK_SETTINGS("q", &s, &before);
	spool_queue_close(q);
	spool_close(db);
}

TEST(config_persists)
{
	T_ACROSS_FAMILIES();
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q"), *r = t_mkq(db, "r");
	struct spool_settings sq, sr, s;
	char tq[8192];

	spool_queue_close(t_mkq(db, "dlq"));
	spool_queue_close(t_mkq(db, "x"));
	spool_queue_close(t_mkq(db, "y"));
	t_config(q, "visibility_timeout=0.5\nreceive_wait=2\ndelay=1\n"
		    "priority=3\nmax_size=100\nmax_depth=9\nmax_receives=2\n"
		    "dead_letter=dlq\nretention=60\ndedup=content\n"
		    "dedup_window=10\npaused=1\nfanout=x,y\n");
	t_config(r, "priority=-1");
	OK(spool_settings_get(q, &sq));
	OK(spool_settings_get(r, &sr));
	snprintf(tq, sizeof tq, "%s", config_text(q));
	spool_queue_close(q);
	spool_queue_close(r);
	spool_close(db);
	db = t_open();
	q = t_q(db, "q");
	r = t_q(db, "r");
	OK(spool_settings_get(q, &s));
	CHECK_SETTINGS("q", &s, &sq);
	CHECK_STR(config_text(q), tq);
	OK(spool_settings_get(r, &s));
	CHECK_SETTINGS("r", &s, &sr);
	EQ(s.priority, -1);
	EQ(s.visibility_timeout_ms, 30000);
	spool_queue_close(q);
	spool_queue_close(r);
	spool_close(db);
}

/* Defaults from config apply to pushes that do not say otherwise. */
TEST(config_defaults_apply_to_push)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t a, b, c, d;

	t_config(q, "priority=7\ndelay=2");
	a = t_push(q, "a");
	i = t_stat(q, a);
	EQ(i.priority, 7);
	EQ(i.state, SPOOL_DELAYED);
	EQ(i.due_ms, T_CLOCK_START + 2000);
	b = t_push_full(q, "b", 1, 0, 1, 0);  /* explicit 0 and 0 */
	i = t_stat(q, b);
	EQ(i.priority, 0);
	EQ(i.state, SPOOL_VISIBLE);
	c = t_push_full(q, "c", 1, -2, 0, 0);
	i = t_stat(q, c);
	EQ(i.priority, -2);
	EQ(i.state, SPOOL_DELAYED);
	d = t_push_full(q, "d", 0, 0, 1, 500);
	i = t_stat(q, d);
	EQ(i.priority, 7);
	EQ(i.due_ms, T_CLOCK_START + 500);
	spool_queue_close(q);
	spool_close(db);
}

/* A shorter visibility_timeout does not shorten leases already given. */
TEST(config_visibility_timeout_applies_to_new_leases)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info i;
	uint64_t a, b;

	a = t_push(q, "a");
	b = t_push(q, "b");
	t_lease(q, "a");
	t_config(q, "visibility_timeout=1");
	t_lease_at(__FILE__, __LINE__, q, "b", &i);
	EQ(i.due_ms, T_CLOCK_START + 1000);
	EQ(t_stat(q, a).due_ms, T_CLOCK_START + 30000);
	t_advance(1001);
	spool_tick(db);
	EQ(t_state(q, a), SPOOL_LEASED);
	EQ(t_state(q, b), SPOOL_VISIBLE);
	spool_queue_close(q);
	spool_close(db);
}

TEST(config_paused)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q");
	struct spool_msg_info info;
	unsigned wakes;
	char buf[16];
	size_t n;
	void *body;
	uint64_t a;

	t_config(q, "paused=1");
	a = t_push(q, "a");        /* pushes still accepted */
	EQ(t_state(q, a), SPOOL_VISIBLE);
	RC(spool_lease_next(q, buf, sizeof buf, &n, &info), -EAGAIN);
	RC(spool_pop(q, &body, &info), -EAGAIN);
	EQ(t_state(q, a), SPOOL_VISIBLE);
	wakes = t_wakes("q");
	t_config(q, "paused=0");
	/* an unpause with a visible message wakes the readers */
	CHECK_U(t_wakes("q"), >, wakes);
	EQU(t_lease(q, "a"), a);
	spool_queue_close(q);
	spool_close(db);
}

/* --------------------------------------- a queue's extra values (SQS) */

TEST(queue_meta)
{
	spool_db *db = t_open();
	spool_queue *q = t_mkq(db, "q"), *r;
	char buf[16], big[SPOOL_QMETA_VALUE_MAX + 2];

	RC(spool_queue_meta_get(q, "sqs.wait", buf, sizeof buf), -ENODATA);
	OK(spool_queue_meta_set(q, "sqs.wait", "20"));
	EQ(spool_queue_meta_get(q, "sqs.wait", buf, sizeof buf), 2);
	CHECK_STR(buf, "20");
	RC(spool_queue_meta_get(q, "sqs.wait", buf, 2), -ERANGE);
	OK(spool_queue_meta_set(q, "sqs.wait", "5"));
	EQ(spool_queue_meta_get(q, "sqs.wait", buf, sizeof buf), 1);
	CHECK_STR(buf, "5");
	/* keys: [A-Za-z0-9._-], 1..64 bytes; values up to 4096 bytes */
	RC(spool_queue_meta_set(q, "", "x"), -EINVAL);
	RC(spool_queue_meta_set(q, "a/b", "x"), -EINVAL);
	memset(big, 'k', 65);
	big[65] = '\0';
	RC(spool_queue_meta_set(q, big, "x"), -EINVAL);
	big[64] = '\0';
	OK(spool_queue_meta_set(q, big, ""));
	EQ(spool_queue_meta_get(q, big, buf, sizeof buf), 0);
	memset(big, 'v', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	RC(spool_queue_meta_set(q, "v", big), -EINVAL);
	big[SPOOL_QMETA_VALUE_MAX] = '\0';
	OK(spool_queue_meta_set(q, "v", big));
	RC(spool_queue_meta_get(q, "bad key", buf, sizeof buf), -EINVAL);
	/* removing; another queue has its own */
	OK(spool_queue_meta_set(q, "v", NULL));
	RC(spool_queue_meta_get(q, "v", buf, sizeof buf), -ENODATA);
	r = t_mkq(db, "r");
	RC(spool_queue_meta_get(r, "sqs.wait", buf, sizeof buf), -ENODATA);
	/* durable across a reopen */
	spool_queue_close(q);
	spool_queue_close(r);
	spool_close(db);
	db = t_open();
	q = t_q(db, "q");
	EQ(spool_queue_meta_get(q, "sqs.wait", buf, sizeof buf), 1);
	/* gone with the queue: a new queue of the same name has none */
	OK(spool_queue_delete(db, "q"));
	RC(spool_queue_meta_get(q, "sqs.wait", buf, sizeof buf), -ENOENT);
	RC(spool_queue_meta_set(q, "sqs.wait", "1"), -ENOENT);
	spool_queue_close(q);
	q = t_mkq(db, "q");
	RC(spool_queue_meta_get(q, "sqs.wait", buf, sizeof buf), -ENODATA);
	spool_queue_close(q);
	spool_close(db);
}
