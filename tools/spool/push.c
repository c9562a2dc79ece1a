/*
 * push.c - spool push: one message per FILE (stdin by default), each
 * written as a draft (.spool-PID-N), given its options as xattrs, and
 * pushed by renaming it to the file's name (DESIGN.md §4). With --lines,
 * every line of the input becomes a message through QUEUE/lines, all of
 * them or none.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli.h"

#define MAX_ATTRS 64

const char cli_help_push[] =
	"usage: spool push QUEUE [--priority N] [--delay S] "
	"[--attr KEY=VALUE]... [FILE...|-]\n"
	"       spool push QUEUE --lines [FILE...|-]\n\n"
	"Pushes one message per FILE (stdin when none or '-'). Each is written\n"
	"as a draft, given its options as xattrs and pushed by a rename, so a\n"
	"message is pushed whole or not at all; its name (user.spool.name) is\n"
	"the file's base name, or 'stdin'.\n\n"
	"  --priority N        higher first (default: the queue's priority)\n"
	"  --delay S           visible after S seconds\n"
	"  --attr KEY=VALUE    an attribute (xattr user.KEY) carried along\n"
	"  --lines             every input line is one message, all or none\n";

struct push_opts {
	const char *priority;
	const char *delay;
	const char *attrs[MAX_ATTRS];
	int n_attrs;
	int lines;
};

static const char *push_reason(int err)
{
	switch (err) {
	case EFBIG:
		return "message is over the queue's max_size";
	case EDQUOT:
		return "queue is full (max_depth)";
	case ENOSPC:
		return "store is full";
	case ENOENT:
		return "no such queue";
	default:
		return NULL;
	}
}

/* Sets user.spool.priority, user.spool.delay and the --attr xattrs. */
static int set_attrs(const char *draft, const struct push_opts *o)
{
	char key[256];
	const char *eq;
	int i;

	if (o->priority && setxattr(draft, "user.spool.priority", o->priority,
				    strlen(o->priority), 0) < 0)
		return -errno;
	if (o->delay && setxattr(draft, "user.spool.delay", o->delay,
				 strlen(o->delay), 0) < 0)
		return -errno;
	for (i = 0; i < o->n_attrs; i++) {
		eq = strchr(o->attrs[i], '=');
		snprintf(key, sizeof key, "%s%.*s",
			 strncmp(o->attrs[i], "user.", 5) ? "user." : "",
			 (int)(eq - o->attrs[i]), o->attrs[i]);
		if (setxattr(draft, key, eq + 1, strlen(eq + 1), 0) < 0)
			return -errno;
	}
	return 0;
}

/* The message's name: the file's base name without leading dots. */
static const char *message_name(const char *file)
{
	const char *b = strrchr(file, '/');

	if (strcmp(file, "-") == 0)
		return "stdin";
	b = b ? b + 1 : file;
	while (*b == '.')
		b++;
	return *b ? b : "message";
}

/* Copies in into a new draft of queue; then xattrs; then the rename. On
 * error the draft is removed and nothing is pushed. */
static int push_fd(const char *queue, int in, const char *name,
		   const struct push_opts *o)
{
	static unsigned n;
	char draft_name[64], *draft, *final;
	int fd, rc;

	snprintf(draft_name, sizeof draft_name, ".spool-%d-%u", (int)getpid(),
		 n++);
	draft = cli_path(queue, draft_name);
	final = cli_path(queue, name);
	fd = open(draft, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out_free;
	}
	rc = cli_copy_fd(in, fd);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0)
		rc = set_attrs(draft, o);
	if (rc == 0 && rename(draft, final) < 0)
		rc = -errno;
	if (rc)
		unlink(draft);
out_free:
	free(draft);
	free(final);
	return rc;
}

static int push_file(const char *queue, const char *file,
		     const struct push_opts *o)
{
	int in = strcmp(file, "-") == 0 ? 0 : open(file, O_RDONLY | O_CLOEXEC);
	int rc;

	if (in < 0)
		return cli_fail(file, errno, NULL);
	rc = push_fd(queue, in, message_name(file), o);
	if (in != 0)
		close(in);
	return rc ? cli_fail(queue, -rc, push_reason(-rc)) : 0;
}

/* All files' lines through one open of QUEUE/lines: atomic at close. */
static int push_lines(const char *queue, char **files, int n)
{
	char *path = cli_path(queue, "lines");
	int fd, in, i, rc = 0;

	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return cli_fail(queue, errno, push_reason(errno));
	for (i = 0; i < (n ? n : 1) && rc == 0; i++) {
		in = n == 0 || strcmp(files[i], "-") == 0 ? 0 :
			open(files[i], O_RDONLY | O_CLOEXEC);
		if (in < 0) {
			close(fd);
			return cli_fail(files[i], errno, NULL);
		}
		rc = cli_copy_fd(in, fd);
		if (in != 0)
			close(in);
	}
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc ? cli_fail(queue, -rc, push_reason(-rc)) : 0;
}

static int parse_opts(int argc, char **argv, struct push_opts *o)
{
	static const struct option opts[] = {
		{ "priority", required_argument, NULL, 'p' },
		{ "delay", required_argument, NULL, 'd' },
		{ "attr", required_argument, NULL, 'a' },
		{ "lines", no_argument, NULL, 'l' },
		{ 0 } };
	double s;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "p:d:a:l", opts, NULL)) != -1) {
		if (c == 'p' && (strtol(optarg, &end, 10), *end || !*optarg))
			return cli_usage("push", "bad --priority '%s'", optarg);
		if (c == 'd' && (cli_parse_seconds(optarg, &s) < 0 || s < 0))
			return cli_usage("push", "bad --delay '%s'", optarg);
		if (c == 'a' && (!strchr(optarg, '=') || optarg[0] == '=' ||
				 o->n_attrs == MAX_ATTRS))
			return cli_usage("push", "bad --attr '%s' (KEY=VALUE)",
					   optarg);
		if (c == '?')
			return CLI_EXIT_USAGE;
		if (c == 'p')
			o->priority = optarg;
		else if (c == 'd')
			o->delay = optarg;
		else if (c == 'a')
			o->attrs[o->n_attrs++] = optarg;
		else if (c == 'l')
			o->lines = 1;
	}
	if (o->lines && (o->priority || o->delay || o->n_attrs))
		return cli_usage("push", "--lines takes no message options");
	return 0;
}

int cli_cmd_push(int argc, char **argv)
{
	struct push_opts o = { 0 };
	const char *queue;
	int rc, i, worst = 0;

	rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc;
	if (optind >= argc)
		return cli_usage("push", "QUEUE expected");
	queue = argv[optind++];
	rc = cli_queue_check(queue);
	if (rc)
		return rc;
	if (o.lines)
		return push_lines(queue, argv + optind, argc - optind);
	if (optind == argc)
		return push_file(queue, "-", &o);
	for (i = optind; i < argc; i++) {
		rc = push_file(queue, argv[i], &o);
		if (rc > worst)
			worst = rc;
	}
	return worst;
}
