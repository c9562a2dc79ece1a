/*
 * text.c - the text a queue shows and the log it writes, whatever store
 * holds it: queue names, the stats text (DESIGN §7), log lines, the
 * default clock and log, and the common part of every handle (its
 * attributes, its wake subscribers).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core.h"

/* ------------------------------------------------------------ logging */

static void log_stderr(void *arg, enum spool_log_level lv, const char *line)
{
	(void)arg;
	fprintf(stderr, "spool: %s%s\n", lv == SPOOL_LOG_ERR ? "error: " :
		lv == SPOOL_LOG_WARN ? "warning: " : "", line);
}

void core_log(spool_db *db, enum spool_log_level lv, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (lv > db->opt.log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	db->opt.log(db->opt.log_arg, lv, line);
}

void core_log_corrupt(spool_queue *q, uint64_t id)
{
	char text[SPOOL_ID_LEN + 1];

	spool_id_format(id, text);
	core_log(q->db, SPOOL_LOG_ERR, "queue %s: message %s failed its "
		 "checksum; set aside as corrupt", q->name, text);
}

/* -------------------------------------------------------------- clock */

static int64_t clock_real(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void spool_options_init(struct spool_options *o)
{
	memset(o, 0, sizeof(*o));
	o->sync = SPOOL_SYNC_ALWAYS;
	o->log_level = SPOOL_LOG_INFO;
}

void core_options(struct spool_options *out, const struct spool_options *o)
{
	spool_options_init(out);
	if (o)
		*out = *o;
	if (!out->clock)
		out->clock = clock_real;
	if (!out->log)
		out->log = log_stderr;
}

/* ------------------------------------------------------------ handles */

void core_queue_init(spool_queue *q, spool_db *db, const char *name)
{
	q->db = db;
	snprintf(q->name, sizeof(q->name), "%s", name);
	for (int i = 0; i < CORE_UDATA_MAX; i++)
		atomic_init(&q->udata[i], NULL);
}

int core_queue_attr(spool_db *db, const char *name,
		    const struct spool_queue_attr *in,
		    struct spool_queue_attr *out)
{
	if (name && !spool_name_valid(name, strlen(name)))
		return -EINVAL;
	*out = *in;
	out->mode &= 07777;
	out->ctime_ms = db->opt.clock(db->opt.clock_arg);
	return 0;
}

void core_wake(spool_queue *q)
{
	spool_db *db = q->db;
	int n = atomic_load(&db->nwake);

	if (db->opt.wake)
		db->opt.wake(db->opt.wake_arg, q);
	for (int i = 0; i < n; i++) {
		spool_wake_fn fn = atomic_load_explicit(&db->wake[i].fn,
							memory_order_acquire);

		if (fn)
			fn(db->wake[i].arg, q);
	}
}

int spool_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > SPOOL_NAME_MAX || name[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return 0;
	}
	return 1;
}

/* -------------------------------------------------------------- stats */

int stats_format(const struct spool_stats *s, char *buf, size_t len)
{
	return snprintf(buf, len,
		"visible=%llu\ndelayed=%llu\nleased=%llu\ncorrupt=%llu\n"
		"bytes=%llu\npushed_total=%llu\nacked_total=%llu\n"
		"expired_total=%llu\ndead_total=%llu\ndeduped_total=%llu\n"
		"deleted_total=%llu\noldest_visible_age_ms=%lld\n",
		(unsigned long long)s->visible, (unsigned long long)s->delayed,
		(unsigned long long)s->leased, (unsigned long long)s->corrupt,
		(unsigned long long)s->bytes,
		(unsigned long long)s->pushed_total,
		(unsigned long long)s->acked_total,
		(unsigned long long)s->expired_total,
		(unsigned long long)s->dead_total,
		(unsigned long long)s->deduped_total,
		(unsigned long long)s->deleted_total,
		(long long)s->oldest_visible_age_ms);
}
