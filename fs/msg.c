/*
 * msg.c - message files (peek/<id>, delayed/<id>, leased/<id>) and the
 * message bound to an open next or claim: their xattrs and, for leased
 * ones, the lease extension by touch.
 *
 * Times are Unix milliseconds, as text.
 */
#include <errno.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fs.h"

static const char *const builtin[] = {
	"user.spool.id", "user.spool.priority", "user.spool.sent",
	"user.spool.receives", "user.spool.first_received",
	"user.spool.name",
};
#define NBUILTIN (sizeof builtin / sizeof builtin[0])

int fs_msg_parse(const char *name, uint64_t *id)
{
	size_t len = strlen(name);

	if (len != SPOOL_ID_LEN)
		return -EINVAL;
	return spool_id_parse(name, len, id);
}

/* Formats builtin xattr i of message id into text[]. */
static int builtin_text(struct fs_queue *q, uint64_t id, size_t i,
			char text[SPOOL_MSG_NAME_MAX + 1])
{
	struct spool_msg_info info;
	int rc;

	if (i == 0) {
		spool_id_format(id, text);
		return 0;
	}
	if (i == 5)
		return spool_msg_name(q->sq, id, text);
	rc = spool_msg_stat(q->sq, id, &info);
	if (rc < 0)
		return rc;
	if (i == 1)
		snprintf(text, SPOOL_MSG_NAME_MAX + 1, "%" PRId32,
			 info.priority);
	else if (i == 2)
		snprintf(text, SPOOL_MSG_NAME_MAX + 1, "%" PRId64,
			 info.sent_ms);
	else if (i == 3)
		snprintf(text, SPOOL_MSG_NAME_MAX + 1, "%" PRIu32,
			 info.receives);
	else
		snprintf(text, SPOOL_MSG_NAME_MAX + 1, "%" PRId64,
			 info.first_received_ms);
	return 0;
}

static ssize_t copy_out(const char *text, size_t len, char *buf, size_t size)
{
	if (size == 0)
		return len;
	if (size < len)
		return -ERANGE;
	memcpy(buf, text, len);
	return len;
}

ssize_t fs_msg_getxattr(struct fs_queue *q, uint64_t id, const char *name,
			char *buf, size_t size)
{
	char text[SPOOL_MSG_NAME_MAX + 1];
	size_t i;
	int rc;

	for (i = 0; i < NBUILTIN; i++)
		if (strcmp(name, builtin[i]) == 0)
			break;
	if (i == NBUILTIN) {
		ssize_t n = spool_msg_getattr(q->sq, id, name, buf, size);

		return n == -ENOENT ? -ENODATA : n;
	}
	rc = builtin_text(q, id, i, text);
	if (rc < 0)
		return rc == -ENOENT ? -ENODATA : rc;
	return copy_out(text, strlen(text), buf, size);
}

ssize_t fs_msg_listxattr(struct fs_queue *q, uint64_t id, char *buf,
			 size_t size)
{
	size_t fixed = 0, i;
	ssize_t user;

	for (i = 0; i < NBUILTIN; i++)
		fixed += strlen(builtin[i]) + 1;
	user = spool_msg_listattr(q->sq, id, NULL, 0);
	if (user < 0)
		return user;
	if (size == 0)
		return fixed + user;
	if (size < fixed + (size_t)user)
		return -ERANGE;
	for (i = 0; i < NBUILTIN; i++) {
		size_t n = strlen(builtin[i]) + 1;

		memcpy(buf, builtin[i], n);
		buf += n;
	}
	user = spool_msg_listattr(q->sq, id, buf, user);
	return user < 0 ? user : (ssize_t)fixed + user;
}

static int64_t ts_ms(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000 + ts->tv_nsec / 1000000;
}

/* The lease expiry touch -d TIME asks for, in Unix ms: a time at or before
 * the epoch is 0 (at or before now: a release, never the engine's
 * "heartbeat" -1), and a time beyond what ms can hold saturates. */
static int64_t expiry_ms(const struct timespec *ts)
{
	if (ts->tv_sec < 0)
		return 0;
	if (ts->tv_sec >= INT64_MAX / 1000)
		return INT64_MAX;
	return ts_ms(ts);
}

/* touch leased/<id>: a heartbeat; touch -d TIME: that expiry. */
void fs_msg_setattr(fuse_req_t req, struct fs_inode *in, struct stat *attr,
		    int to_set)
{
	struct stat st;
	int rc = 0;

	if (to_set & ~(FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
		       FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW |
		       FUSE_SET_ATTR_CTIME))
		rc = -EPERM;
	else if (to_set & FUSE_SET_ATTR_MTIME_NOW && in->state == SPOOL_LEASED)
		rc = spool_lease_extend(in->q->sq, in->msg_id, -1);
	else if (to_set & FUSE_SET_ATTR_MTIME && in->state == SPOOL_LEASED)
		rc = spool_lease_extend(in->q->sq, in->msg_id,
					expiry_ms(&attr->st_mtim));
	else if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
		rc = -EPERM;
	if (rc == 0)
		rc = fs_inode_stat(in, &st);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, 0);
}
