/*
 * policy.c - the rules of a queue that every store applies alike: what a
 * push may carry and the defaults it takes, the state transitions of a
 * message, when a message is out of receives (and where it goes then),
 * when it reaches the retention age, and fan-out lists.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core.h"

/* ------------------------------------------------------------ pushes */

static int check_attrs(const struct spool_push *p)
{
	size_t total = 0;

	for (size_t i = 0; i < p->nattrs; i++) {
		size_t n = strlen(p->attrs[i].name);

		if (n <= 5 || n > 255 || strncmp(p->attrs[i].name, "user.", 5))
			return -EINVAL;
		total += n + p->attrs[i].len;
	}
	return total > SPOOL_ATTRS_MAX ? -EINVAL : 0;
}

int push_check(const struct spool_push *p, size_t n, uint64_t max_size)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i].len > max_size)
			return -EFBIG;
		if ((p[i].has_delay && p[i].delay_ms < 0) ||
		    (p[i].name && strlen(p[i].name) > SPOOL_MSG_NAME_MAX))
			return -EINVAL;
		if (check_attrs(&p[i]) ||
		    (p[i].sender && strlen(p[i].sender) > SPOOL_SENDER_MAX))
			return -EINVAL;
	}
	return 0;
}

void push_msg_init(struct msg *m, uint64_t id, const struct spool_push *p,
		   const struct spool_settings *s, int64_t now)
{
	int64_t delay = p->has_delay ? p->delay_ms : s->delay_ms;

	m->id = id;
	m->priority = p->has_priority ? p->priority : s->priority;
	m->sent_ms = now;
	m->size = (uint32_t)p->len;
	m->state = delay > 0 ? SPOOL_DELAYED : SPOOL_VISIBLE;
	m->due_ms = now + delay;
}

/* ------------------------------------------------- state transitions */

void state_lease(struct msg *m, int64_t now, int64_t vt)
{
	m->state = SPOOL_LEASED;
	m->receives++;
	m->due_ms = now + vt;
	if (!m->first_recv_ms)
		m->first_recv_ms = now;
}

void state_release(struct msg *m, int64_t now, int uncount)
{
	m->state = SPOOL_VISIBLE;
	m->due_ms = now;
	if (uncount && m->receives > 0)
		m->receives--;
}

void state_extend(struct msg *m, int64_t expiry, int64_t now, int64_t vt)
{
	if (expiry < 0)
		expiry = now + vt;
	if (expiry <= now) {
		m->state = SPOOL_VISIBLE;
		m->due_ms = now;
	} else {
		m->due_ms = expiry;
	}
}

void state_expire(struct msg *m)
{
	m->state = SPOOL_VISIBLE;
}

void msg_info(const struct msg *m, struct spool_msg_info *info)
{
	*info = (struct spool_msg_info){
		.id = m->id, .state = m->state, .priority = m->priority,
		.receives = m->receives, .size = m->size,
		.sent_ms = m->sent_ms, .due_ms = m->due_ms,
		.first_received_ms = m->first_recv_ms,
	};
}

/* ---------------------------------------------------------- policies */

int policy_exhausted(const struct spool_settings *s, uint32_t receives)
{
	return s->max_receives && receives >= s->max_receives;
}

void policy_dead_letter(const char *qname, const struct spool_settings *s,
			char *out, size_t len)
{
	if (s->dead_letter[0])
		snprintf(out, len, "%s", s->dead_letter);
	else
		snprintf(out, len, "%s.dead", qname);
}

int64_t policy_retention_due(const struct spool_settings *s, int64_t sent_ms)
{
	return s->retention_ms ? sent_ms + s->retention_ms : INT64_MAX;
}

/* ------------------------------------------------------------ fan-out */

size_t fanout_count(const char *list)
{
	size_t n = *list ? 1 : 0;

	for (const char *c = list; *c; c++)
		n += *c == ',';
	return n;
}

int fanout_next(const char **cur, char name[SPOOL_NAME_MAX + 1])
{
	const char *s = *cur, *e;
	size_t n;

	while (*s == ',')
		s++;
	if (!*s)
		return 0;
	e = strchr(s, ',');
	n = e ? (size_t)(e - s) : strlen(s);
	if (n > SPOOL_NAME_MAX)
		n = SPOOL_NAME_MAX;
	memcpy(name, s, n);
	name[n] = '\0';
	*cur = s + n;
	return 1;
}

/* Does following fanout lists from target ever lead back to self? */
static int fanout_reaches(spool_db *db, const char *list, const char *self,
			  int depth, core_settings_of_fn settings_of)
{
	char t[SPOOL_NAME_MAX + 1];

	if (depth > 64)
		return 1;
	while (fanout_next(&list, t)) {
		struct spool_settings s;

		if (strcmp(t, self) == 0)
			return 1;
		if (settings_of(db, t, &s))
			continue;
		if (s.fanout[0] &&
		    fanout_reaches(db, s.fanout, self, depth + 1, settings_of))
			return 1;
	}
	return 0;
}

int settings_check_refs(spool_queue *q, const struct spool_settings *s,
			core_settings_of_fn settings_of)
{
	struct spool_settings other;
	char dflt[SPOOL_NAME_MAX + 8], t[SPOOL_NAME_MAX + 1];
	const char *list = s->fanout;

	snprintf(dflt, sizeof(dflt), "%s.dead", q->name);
	if (s->dead_letter[0] && strcmp(s->dead_letter, dflt) != 0 &&
	    (strcmp(s->dead_letter, q->name) == 0 ||
	     settings_of(q->db, s->dead_letter, &other)))
		return -EINVAL;
	while (fanout_next(&list, t))
		if (settings_of(q->db, t, &other))
			return -EINVAL;
	if (s->fanout[0] &&
	    fanout_reaches(q->db, s->fanout, q->name, 0, settings_of))
		return -EINVAL;
	return 0;
}
