/*
 * text.c - the text snapshots served by stats, config (read side) and
 * .metrics, taken at open so that one open reads one consistent text.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

typedef int (*format_fn)(spool_queue *q, char *buf, size_t len);

/* Runs a snprintf-like formatter into a buffer of the right size. */
static int snapshot(format_fn fn, spool_queue *q, char **out, size_t *len)
{
	size_t cap = 1024;
	char *buf = NULL;
	int n;

	for (;;) {
		char *p = realloc(buf, cap);

		if (!p) {
			free(buf);
			return -ENOMEM;
		}
		buf = p;
		n = fn(q, buf, cap);
		if (n < 0) {
			free(buf);
			return n;
		}
		if ((size_t)n < cap)
			break;
		cap = n + 1;
	}
	*out = buf;
	*len = n;
	return 0;
}

int fs_text_stats(struct fs_queue *q, char **out, size_t *len)
{
	return snapshot(spool_stats_format, q->sq, out, len);
}

int fs_text_config(struct fs_queue *q, char **out, size_t *len)
{
	return snapshot(spool_config_format, q->sq, out, len);
}

/* ---------------------------------------------------------- .metrics */

struct metric {
	const char *name;
	const char *type;
	const char *help;
	size_t off;
	int is_signed;
};

#define M(f, t, h) { #f, t, h, offsetof(struct spool_stats, f), 0 }
static const struct metric metrics[] = {
	M(visible, "gauge", "Messages ready to be leased."),
	M(delayed, "gauge", "Messages not visible yet."),
	M(leased, "gauge", "Messages under a lease."),
	M(corrupt, "gauge", "Messages set aside after a checksum mismatch."),
	M(bytes, "gauge", "Body bytes of all messages held."),
	M(pushed_total, "counter", "Messages pushed."),
	M(acked_total, "counter", "Messages acked or popped."),
	M(expired_total, "counter", "Leases that ran out."),
	M(dead_total, "counter", "Messages moved to the dead-letter queue."),
	M(deduped_total, "counter", "Pushes dropped as duplicates."),
	M(deleted_total, "counter", "Messages deleted without a lease."),
	{ "oldest_visible_age_ms", "gauge",
	  "Age of the oldest visible message, ms.",
	  offsetof(struct spool_stats, oldest_visible_age_ms), 1 },
};
#undef M

struct qstats {
	char name[SPOOL_NAME_MAX + 1];
	struct spool_stats st;
};

/* Every queue's stats; *out is malloc'd. */
static int collect(spool_db *db, struct qstats **out, size_t *count)
{
	struct qstats *all = NULL;
	char name[SPOOL_NAME_MAX + 1], after[SPOOL_NAME_MAX + 1] = "";
	size_t n = 0, cap = 0;
	spool_queue *q;

	while (spool_queue_next(db, after, name) == 0) {
		memcpy(after, name, sizeof name);
		if (n == cap) {
			struct qstats *p;

			cap = cap ? cap * 2 : 16;
			p = realloc(all, cap * sizeof *all);
			if (!p) {
				free(all);
				return -ENOMEM;
			}
			all = p;
		}
		if (spool_queue_open(db, name, &q) < 0)
			continue;
		if (spool_stats_get(q, &all[n].st) == 0) {
			memcpy(all[n].name, name, sizeof name);
			n++;
		}
		spool_queue_close(q);
	}
	*out = all;
	*count = n;
	return 0;
}

static void print_metric(FILE *f, const struct metric *m,
			 const struct qstats *all, size_t n)
{
	size_t i;

	fprintf(f, "# HELP spoolfs_%s %s\n# TYPE spoolfs_%s %s\n", m->name,
		m->help, m->name, m->type);
	for (i = 0; i < n; i++) {
		const char *p = (const char *)&all[i].st + m->off;

		if (m->is_signed)
			fprintf(f, "spoolfs_%s{queue=\"%s\"} %" PRId64 "\n",
				m->name, all[i].name, *(const int64_t *)p);
		else
			fprintf(f, "spoolfs_%s{queue=\"%s\"} %" PRIu64 "\n",
				m->name, all[i].name, *(const uint64_t *)p);
	}
}

int fs_text_metrics(struct fs_ctx *fs, char **out, size_t *len)
{
	struct qstats *all;
	size_t n, i;
	FILE *f;
	int rc = collect(fs->db, &all, &n);

	if (rc < 0)
		return rc;
	f = open_memstream(out, len);
	if (!f) {
		free(all);
		return -ENOMEM;
	}
	for (i = 0; i < sizeof metrics / sizeof metrics[0]; i++)
		print_metric(f, &metrics[i], all, n);
	fprintf(f, "# HELP spoolfs_queues Number of queues.\n"
		   "# TYPE spoolfs_queues gauge\nspoolfs_queues %zu\n", n);
	fprintf(f, "# HELP spoolfs_lookups_total Names the kernel asked this "
		   "daemon to look up.\n# TYPE spoolfs_lookups_total counter\n"
		   "spoolfs_lookups_total %llu\n",
		(unsigned long long)atomic_load(&fs->lookups));
	fprintf(f, "# HELP spoolfs_listing_invalidations_total Times the "
		   "kernel was told to look up again the names it kept from "
		   "a listing.\n# TYPE spoolfs_listing_invalidations_total "
		   "counter\nspoolfs_listing_invalidations_total %llu\n",
		(unsigned long long)atomic_load(&fs->listed.bumps));
	fclose(f);
	free(all);
	return 0;
}
