/*
 * fuzz_config.c - the engine's config parser (spool_config_apply), DESIGN
 * §6. Properties: it returns 0 or -EINVAL and never crashes; a refused text
 * changes nothing; an accepted one prints (spool_config_format) as a text
 * that applies again and prints the same (a fixed point). The queues "a"
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
