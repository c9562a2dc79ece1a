/*
 * fuzz_config.c - the engine's config parser (spool_config_apply), DESIGN
 * §6. Properties: it returns 0 or -EINVAL and never crashes; a refused text
 * changes nothing; an accepted one prints (spool_config_format) as a text
 * that applies again and prints the same (a fixed point), and every number
 * in it was decimal (digits, one '.' in seconds, '-' in priority; "inf"
 * only for receive_wait: never "0x10", "1e3", "nan"). The queues "a"
 * and "b" exist, so dead_letter and fanout can name them.
 */
#include "fuzz_common.h"

static spool_db *db;
static spool_queue *q;

static const char defaults[] =
	"visibility_timeout=30\nreceive_wait=inf\ndelay=0\npriority=0\n"
	"max_size=1048576\nmax_depth=0\nmax_receives=0\ndead_letter=\n"
	"retention=0\ndedup=off\ndedup_window=300\npaused=0\nfanout=\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct spool_queue_attr a = { 0, 0, 0755, 0 };

	(void)argc; (void)argv;
	db = fuzz_open_store();
	FUZZ_CHECK(spool_queue_create(db, "f", &a) == 0);
	FUZZ_CHECK(spool_queue_create(db, "a", &a) == 0);
	FUZZ_CHECK(spool_queue_create(db, "b", &a) == 0);
	FUZZ_CHECK(spool_queue_open(db, "f", &q) == 0);
	return 0;
}

static char *format(size_t *len)
{
	int n = spool_config_format(q, NULL, 0);
	char *buf;

	FUZZ_CHECK(n > 0);
	buf = malloc((size_t)n + 1);
	FUZZ_CHECK(buf);
	FUZZ_CHECK(spool_config_format(q, buf, (size_t)n + 1) == n);
	*len = (size_t)n;
	return buf;
}

/* Could value (trimmed as the parser trims) of key be accepted? Only
 * keys that take numbers are judged. */
static int number_ok(const char *key, size_t klen, const char *v, size_t n)
{
	static const char *const secs[] = { "visibility_timeout",
		"receive_wait", "delay", "retention", "dedup_window" };
	static const char *const ints[] = { "priority", "max_size",
		"max_depth", "max_receives", "paused" };
	size_t dots = 0, digits = 0;
	int is_secs = -1;

	for (size_t i = 0; i < 5; i++) {
		if (klen == strlen(secs[i]) && !memcmp(key, secs[i], klen))
			is_secs = 1;
		if (klen == strlen(ints[i]) && !memcmp(key, ints[i], klen))
			is_secs = 0;
	}
	if (is_secs < 0)
		return 1;
	if (n == 3 && !memcmp(v, "inf", 3))
		return klen == 12 && !memcmp(key, "receive_wait", 12);
	for (size_t i = 0; i < n; i++) {
		if (v[i] >= '0' && v[i] <= '9')
			digits++;
		else if (v[i] == '.' && is_secs)
			dots++;
		else if (!(v[i] == '-' && i == 0 && klen == 8))
			return 0;
	}
	return digits > 0 && dots <= 1;
}

static const char *trim_span(const char *b, const char **e)
{
	while (b < *e && (*b == ' ' || *b == '\t' || *b == '\r'))
		b++;
	while (*e > b && ((*e)[-1] == ' ' || (*e)[-1] == '\t' ||
			  (*e)[-1] == '\r'))
		(*e)--;
	return b;
}

/* Every key=value line of an accepted text holds a decimal number. */
static void check_numbers(const char *t, size_t size)
{
	const char *end = t + size;

	while (t < end) {
		const char *nl = memchr(t, '\n', (size_t)(end - t));
		const char *le = nl ? nl : end, *eq = memchr(t, '=', le - t);

		if (eq) {
			const char *ke = eq, *ve = le;
			const char *k = trim_span(t, &ke);
			const char *v = trim_span(eq + 1, &ve);

			FUZZ_CHECK(number_ok(k, (size_t)(ke - k), v,
					     (size_t)(ve - v)));
		}
		t = le + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t blen, alen, clen;
	char *before = format(&blen), *after, *again;
	int rc;

	rc = spool_config_apply(q, (const char *)data, size);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	after = format(&alen);
	if (rc) {
		/* All or nothing: a refused write changed nothing. */
		FUZZ_CHECK(alen == blen && memcmp(before, after, alen) == 0);
	} else {
		check_numbers((const char *)data, size);
		/* What config prints, config takes, unchanged. */
		FUZZ_CHECK(spool_config_apply(q, after, alen) == 0);
		again = format(&clen);
		FUZZ_CHECK(clen == alen && memcmp(after, again, alen) == 0);
		free(again);
		FUZZ_CHECK(spool_config_apply(q, defaults,
					      sizeof defaults - 1) == 0);
	}
	free(before);
	free(after);
	return 0;
}
