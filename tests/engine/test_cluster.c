/*
 * test_cluster.c - the Redis Cluster router (engine/redis/cluster.c)
 * against a real cluster of three primaries that tests/redis-cluster-run.sh
 * starts (SPOOL_CLUSTER_NODES, SPOOL_CLUSTER_PORTS): CRC16 and key slots
 * against the documented vector and the server's own CLUSTER KEYSLOT,
 * every command on the node that owns its slot, -MOVED after a slot was
 * moved behind the router's back, -ASK and -TRYAGAIN while a slot is
 * being migrated, the per-node hook (start checks, the library) run once
 * per node and able to refuse one, and the refusals of open. Slots are
 * moved with redis-cli, as an operator resharding would; every case finds
 * the owners afresh, so the order of the cases does not matter.
 */
#include "t.h"

#include "cluster.h"

#define DEADLINE_MS 10000

/* The first line redis-cli -p PORT ARGS prints, without its newline. */
static void cli(int port, const char *args, char *out, size_t len)
{
	char cmd[512];
	FILE *f;

	snprintf(cmd, sizeof cmd, "redis-cli -p %d %s", port, args);
	f = popen(cmd, "r");
	CHECK(f != NULL);
	out[0] = '\0';
	if (fgets(out, (int)len, f))
		out[strcspn(out, "\r\n")] = '\0';
	while (fgetc(f) != EOF)
		;
	EQ(pclose(f), 0);
}

/* redis-cli -p PORT ARGS must answer OK. */
static void cli_ok(int port, const char *args)
{
	char out[256];

	cli(port, args, out, sizeof out);
	CHECK_STR(out, "OK");
}

static int ports[3];

static void read_ports(void)
{
	const char *p = getenv("SPOOL_CLUSTER_PORTS");

	CHECK(p != NULL);
	EQ(sscanf(p, "%d %d %d", &ports[0], &ports[1], &ports[2]), 3);
}

static struct rd_router *open_router(int deadline_ms)
{
	const char *nodes = getenv("SPOOL_CLUSTER_NODES");
	struct rd_router *rt = NULL;
	char err[256];

	CHECK(nodes != NULL);
	read_ports();
	OK(rd_router_open(nodes, deadline_ms, NULL, NULL, &rt, err,
			  sizeof err));
	return rt;
}

/* Whether the node on port says (CLUSTER NODES, its "myself" line) that
 * it serves slot. */
static int serves(int port, unsigned slot)
{
	char cmd[128], line[4096];
	int yes = 0;
	FILE *f;

	snprintf(cmd, sizeof cmd, "redis-cli -p %d CLUSTER NODES", port);
	f = popen(cmd, "r");
	CHECK(f != NULL);
	while (fgets(line, sizeof line, f)) {
		/* id addr flags master ping pong epoch state slot... */
		char *tok, *save = NULL;
		int field = 0;

		if (!strstr(line, "myself"))
			continue;
		for (tok = strtok_r(line, " \n", &save); tok;
		     tok = strtok_r(NULL, " \n", &save), field++) {
			unsigned lo, hi;

			if (field < 8 || tok[0] == '[')  /* [migrating] */
				continue;
			if (sscanf(tok, "%u-%u", &lo, &hi) != 2)
				lo = hi = (unsigned)atoi(tok);
			if (slot >= lo && slot <= hi)
				yes = 1;
		}
	}
	EQ(pclose(f), 0);
	return yes;
}

/* The port of the node that serves slot, by its own account. */
static int owner_port(unsigned slot)
{
	for (int i = 0; i < 3; i++)
		if (serves(ports[i], slot))
			return ports[i];
	T_FAIL("no node serves slot %u", slot);
	return 0;
}

static void node_id(int port, char id[64])
{
	cli(port, "CLUSTER MYID", id, 64);
	EQ(strlen(id), 40);
}

/* Moves slot (all its keys) from port `from` to port `to`, as
 * redis-cli --cluster reshard does: IMPORTING, MIGRATING, MIGRATE,
 * then NODE on every primary. */
static void slot_importing(unsigned slot, int from, int to)
{
	char args[160], idf[64], idt[64];

	node_id(from, idf);
	node_id(to, idt);
	snprintf(args, sizeof args, "CLUSTER SETSLOT %u IMPORTING %s", slot,
		 idf);
	cli_ok(to, args);
	snprintf(args, sizeof args, "CLUSTER SETSLOT %u MIGRATING %s", slot,
		 idt);
	cli_ok(from, args);
}

static void migrate_key(int from, int to, const char *key)
{
	char args[256];

	snprintf(args, sizeof args, "MIGRATE 127.0.0.1 %d \"%s\" 0 5000", to,
		 key);
	cli_ok(from, args);
}

static void slot_done(unsigned slot, int to)
{
	char args[160], idt[64];

	node_id(to, idt);
	snprintf(args, sizeof args, "CLUSTER SETSLOT %u NODE %s", slot, idt);
	cli_ok(to, args);
	for (int i = 0; i < 3; i++)
		if (ports[i] != to)
			cli_ok(ports[i], args);
}

static int other_port(int port)
{
	return ports[0] == port ? ports[1] : ports[0];
}

static void get(struct rd_router *rt, const char *key, char *out,
		size_t len)
{
	const char *argv[] = { "GET", key };

	OK(rd_router_text(rt, key, 2, argv, out, len));
}

static void set(struct rd_router *rt, const char *key, const char *val)
{
	const char *argv[] = { "SET", key, val };
	char out[64];

	OK(rd_router_text(rt, key, 3, argv, out, sizeof out));
	CHECK_STR(out, "OK");
}

/* ------------------------------------------------------------- slots */

TEST(crc16_and_hash_tags)
{
	EQ(rd_crc16("123456789", 9), 0x31C3);   /* the documented vector */
	EQ(rd_crc16("", 0), 0);
	EQ(rd_key_slot("123456789", 9), 0x31C3 & 16383);
	/* the part between the first '{' and the next '}', if not empty */
	EQ(rd_key_slot("{user1000}.following", 21),
	   rd_key_slot("user1000", 8));
	EQ(rd_key_slot("{user1000}.followers", 21),
	   rd_key_slot("user1000", 8));
	EQ(rd_key_slot("foo{}{bar}", 10), rd_crc16("foo{}{bar}", 10) & 16383);
	EQ(rd_key_slot("foo{{bar}}zap", 13), rd_key_slot("{bar", 4));
	EQ(rd_key_slot("foo{bar}{zap}", 13), rd_key_slot("bar", 3));
	EQ(rd_key_slot("{spool:jobs}:q:jobs.dead:s", 26),
	   rd_key_slot("{spool:jobs}:seq", 16));
}

/* Our slot of 2000 keys of every shape equals the server's. */
TEST(slots_agree_with_the_server)
{
	struct rd_router *rt = open_router(DEADLINE_MS);
	static const char *const shapes[] = { "k%d", "{spool:q%d}:q:x:s",
		"a{b%d}c", "{}x%d", "x{%d", "%d}{y", "{{%d}}", "\xc3\xa9%d" };

	for (int i = 0; i < 2000; i++) {
		char key[64], out[32];
		const char *argv[] = { "CLUSTER", "KEYSLOT", key };

		snprintf(key, sizeof key, shapes[i % 8], i);
		OK(rd_router_text(rt, key, 3, argv, out, sizeof out));
		EQ(atoi(out), rd_key_slot(key, strlen(key)));
	}
	rd_router_close(rt);
}

/* ------------------------------------------------------------ routing */

/* Every key lands on the node that owns its slot, with no redirect. */
TEST(commands_go_to_the_owner)
{
	struct rd_router *rt = open_router(DEADLINE_MS);
	struct rd_router_stats st;
	int per_node[3] = { 0, 0, 0 };
	char out[64];

	cli_ok(ports[0], "FLUSHALL");
	cli_ok(ports[1], "FLUSHALL");
	cli_ok(ports[2], "FLUSHALL");
	for (int i = 0; i < 300; i++) {
		char key[32], val[32], addr[64];
		unsigned slot;

		snprintf(key, sizeof key, "route%d", i);
		snprintf(val, sizeof val, "v%d", i);
		set(rt, key, val);
		slot = rd_key_slot(key, strlen(key));
		OK(rd_router_node_of(rt, slot, addr, sizeof addr));
		for (int n = 0; n < 3; n++) {
			char want[32];

			snprintf(want, sizeof want, "127.0.0.1:%d", ports[n]);
			if (strcmp(addr, want) == 0)
				per_node[n]++;
		}
	}
	EQ(per_node[0] + per_node[1] + per_node[2], 300);
	for (int n = 0; n < 3; n++) {
		cli(ports[n], "DBSIZE", out, sizeof out);
		EQ(atoi(out), per_node[n]);
		CHECK(per_node[n] > 0);
	}
	get(rt, "route7", out, sizeof out);
	CHECK_STR(out, "v7");
	get(rt, "nosuchkey", out, sizeof out);
	CHECK_STR(out, "(nil)");
	rd_router_get_stats(rt, &st);
	EQ(st.moved, 0);
	EQ(st.ask, 0);
	EQ(st.nodes, 3);
	rd_router_close(rt);
}

/* A slot moved to another node after the table was read: -MOVED is
 * followed, the table fixed. */
TEST(moved_is_followed)
{
	struct rd_router *rt = open_router(DEADLINE_MS);
	const char *key = "{moved}k";
	unsigned slot = rd_key_slot(key, strlen(key));
	struct rd_router_stats st;
	char out[64], addr[64], want[64];
	int from, to;

	set(rt, key, "before");
	from = owner_port(slot);
	to = other_port(from);
	slot_importing(slot, from, to);
	migrate_key(from, to, key);
	slot_done(slot, to);
	get(rt, key, out, sizeof out);
	CHECK_STR(out, "before");
	rd_router_get_stats(rt, &st);
	CHECK(st.moved >= 1);
	OK(rd_router_node_of(rt, slot, addr, sizeof addr));
	snprintf(want, sizeof want, "127.0.0.1:%d", to);
	CHECK_STR(addr, want);
	/* the table is right now: no more redirects */
	set(rt, key, "after");
	get(rt, key, out, sizeof out);
	CHECK_STR(out, "after");
	rd_router_get_stats(rt, &st);
	EQ(st.moved, 1);
	rd_router_close(rt);
}

/* A slot half migrated: a key already moved is reached with ASKING
 * (-ASK), the table unchanged; a command on two keys of which one moved
 * gets -TRYAGAIN until the migration ends, then -MOVED. */
TEST_T(ask_and_tryagain_during_a_migration, 120)
{
	struct rd_router *rt = open_router(DEADLINE_MS);
	struct rd_router *quick;
	const char *k1 = "{ask}one", *k2 = "{ask}two";
	const char *mget[] = { "MGET", k1, k2 };
	unsigned slot = rd_key_slot(k1, strlen(k1));
	struct rd_router_stats st;
	char out[128], addr[64], want[64];
	int from, to;

	set(rt, k1, "v1");
	set(rt, k2, "v2");
	from = owner_port(slot);
	to = other_port(from);
	slot_importing(slot, from, to);
	migrate_key(from, to, k1);

	get(rt, k1, out, sizeof out);           /* on `to` now: -ASK */
	CHECK_STR(out, "v1");
	get(rt, k2, out, sizeof out);           /* still on `from` */
	CHECK_STR(out, "v2");
	rd_router_get_stats(rt, &st);
	EQ(st.ask, 1);
	EQ(st.moved, 0);
	OK(rd_router_node_of(rt, slot, addr, sizeof addr));
	snprintf(want, sizeof want, "127.0.0.1:%d", from);
	CHECK_STR(addr, want);                  /* ASK changes no table */

	/* both keys in one command while they are split: -TRYAGAIN, retried
	 * until the (short) deadline, then handed back as it is */
	quick = open_router(400);
	OK(rd_router_text(quick, k1, 3, mget, out, sizeof out));
	CHECK(strncmp(out, "-TRYAGAIN", 9) == 0);
	rd_router_get_stats(quick, &st);
	CHECK(st.tryagain >= 2);
	rd_router_close(quick);

	migrate_key(from, to, k2);
	slot_done(slot, to);
	OK(rd_router_text(rt, k1, 3, mget, out, sizeof out));
	CHECK_STR(out, "v1 v2");
	rd_router_get_stats(rt, &st);
	EQ(st.moved, 1);
	rd_router_close(rt);
}

/* ------------------------------------------------------ the node hook */

static int hook_calls;
static int hook_refuse;

static int hook(void *arg, void *ctx, const char *host, int port)
{
	(void)ctx;
	(void)host;
	(void)port;
	EQ(*(int *)arg, 42);
	hook_calls++;
	return hook_refuse;
}

/* The hook (start checks, library) runs once per node, at its first
 * command (not for reading the slot table), and a refusal fails the
 * commands that need that node with its code. */
TEST(node_hook_once_per_node)
{
	const char *nodes = getenv("SPOOL_CLUSTER_NODES");
	struct rd_router *rt;
	char err[256], out[64];
	int arg = 42;

	CHECK(nodes != NULL);
	read_ports();
	hook_calls = 0;
	hook_refuse = 0;
	OK(rd_router_open(nodes, DEADLINE_MS, hook, &arg, &rt, err,
			  sizeof err));
	EQ(hook_calls, 0);              /* the seed's slot table: bare */
	for (int i = 0; i < 200; i++) {
		char key[32];

		snprintf(key, sizeof key, "hook%d", i);
		set(rt, key, "x");
	}
	EQ(hook_calls, 3);
	rd_router_close(rt);

	hook_calls = 0;
	hook_refuse = -ENOTSUP;
	/* every node refuses: the table is read all the same, and each
	 * command fails with the refusal, which the hook said (its caller
	 * logs why: the store's start checks) */
	OK(rd_router_open(nodes, DEADLINE_MS, hook, &arg, &rt, err,
			  sizeof err));
	EQ(hook_calls, 0);
	{
		const char *argv[] = { "GET", "x" };
		int refused = 0;

		for (int i = 0; i < 200; i++) {
			char key[32];

			snprintf(key, sizeof key, "hook%d", i);
			argv[1] = key;
			if (rd_router_text(rt, key, 2, argv, out,
					   sizeof out) == -ENOTSUP)
				refused++;
		}
		EQ(refused, 200);
		CHECK(hook_calls >= 200);       /* asked again each time */
	}
	rd_router_close(rt);
}

/* -------------------------------------------------------------- open */

/* redis:// on a node of a cluster: refused at open (its functions would
 * touch keys of other slots), with a line that says why. */
TEST(single_primary_url_on_a_cluster_node_refused)
{
	struct spool_options o;
	spool_db *db = NULL;
	char url[128];

	read_ports();
	snprintf(url, sizeof url, "redis://127.0.0.1:%d/x", ports[0]);
	t_options(&o);
	t_log_expect();
	RC(spool_open(url, &o, &db), -ENOTSUP);
	CHECK(db == NULL);
	CHECK(strstr(t_log_first_bad, "cluster_enabled:1") != NULL);
}

TEST(open_refusals)
{
	struct rd_router *rt = NULL;
	char err[256];

	RC(rd_router_open("localhost", DEADLINE_MS, NULL, NULL, &rt, err,
			  sizeof err), -EINVAL);
	RC(rd_router_open("", DEADLINE_MS, NULL, NULL, &rt, err, sizeof err),
	   -EINVAL);
	RC(rd_router_open("127.0.0.1:1", DEADLINE_MS, NULL, NULL, &rt, err,
			  sizeof err), -EIO);
	CHECK(strstr(err, "CLUSTER SLOTS") != NULL);
	CHECK(rt == NULL);
}

T_MAIN
