/*
 * lease.c - leasing and what follows a lease: spool take (claim), ack
 * (unlink leased/ID), release (rename leased/ID to peek/ID) and extend
 * (utimensat on leased/ID, the heartbeat). Every one is the file operation
 * DESIGN.md §5 names, nothing more.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define ID_MAX 64
/* How often a bounded wait looks at *stop and retries a read: POLLIN is
 * advisory (another consumer may win the message), so a timed-out poll is
 * followed by a read anyway. */
#define SLICE_MS 250

const char cli_help_take[] =
	"usage: spool take QUEUE [--wait S]\n\n"
	"Leases the next message of QUEUE and prints the path of its file\n"
	"(MOUNT/QUEUE/leased/ID). Read the body there, then spool ack, spool\n"
	"release or spool extend it. --wait S: wait at most S seconds for a\n"
	"message (0: do not wait); default: the queue's receive_wait.\n"
	"Exit 2 when the queue stays empty.\n";
const char cli_help_ack[] =
	"usage: spool ack PATH...\n\n"
	"Acknowledges (deletes) leased messages: PATH is MOUNT/QUEUE/leased/ID\n"
	"as printed by spool take. Exit 2 if a message is gone.\n";
const char cli_help_release[] =
	"usage: spool release PATH...\n\n"
	"Gives leased messages back (nack): each becomes visible at once.\n";
const char cli_help_extend[] =
	"usage: spool extend PATH [SECONDS]\n\n"
	"Extends the lease of a leased message: to now + SECONDS, or to now +\n"
	"the queue's visibility_timeout without SECONDS (the heartbeat).\n";

static int read_id(int fd, char *id)
{
	ssize_t r;

	r = read(fd, id, ID_MAX - 1);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -EIO;
	id[r] = '\0';
	id[strcspn(id, "\n")] = '\0';
	return 0;
}

/* Waits up to ms for POLLIN on fd, or for wake_fd; -EINTR on wake. */
static int wait_slice(int fd, int wake_fd, int ms)
{
	struct pollfd p[2] = { { fd, POLLIN, 0 }, { wake_fd, POLLIN, 0 } };

	if (poll(p, wake_fd >= 0 ? 2 : 1, ms) < 0 && errno != EINTR)
		return -errno;
	return wake_fd >= 0 && p[1].revents ? -EINTR : 0;
}

int cli_lease_claim(const char *queue, double wait, volatile int *stop,
		      int wake_fd, char *id)
{
	char *path = cli_path(queue, "claim");
	double deadline = cli_now() + wait;
	int fd, rc, ms;

	fd = open(path, O_RDONLY | O_CLOEXEC | (wait >= 0 ? O_NONBLOCK : 0));
	free(path);
	if (fd < 0)
		return -errno;
	for (;;) {
		rc = read_id(fd, id);
		if (rc != -EAGAIN || wait < 0)
			break;
		ms = (int)((deadline - cli_now()) * 1000);
		if (ms <= 0 || (stop && *stop))
			break;
		rc = wait_slice(fd, wake_fd, ms < SLICE_MS ? ms : SLICE_MS);
		if (rc)
			break;
	}
	close(fd);
	return rc;
}

int cli_cmd_take(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "wait", required_argument, NULL, 'w' }, { 0 } };
	char id[ID_MAX], *p;
	double wait = -1;
	int c, rc;

	while ((c = getopt_long(argc, argv, "w:", opts, NULL)) != -1) {
		if (c != 'w' || cli_parse_seconds(optarg, &wait) < 0)
			return cli_usage("take", "bad option; usage: spool "
					   "take QUEUE [--wait S]");
	}
	if (optind + 1 != argc)
		return cli_usage("take", "one QUEUE expected");
	rc = cli_queue_check(argv[optind]);
	if (rc)
		return rc;
	rc = cli_lease_claim(argv[optind], wait, NULL, -1, id);
	if (rc == -EAGAIN)
		return cli_fail(argv[optind], EAGAIN, "queue is empty");
	if (rc)
		return cli_fail(argv[optind], -rc, NULL);
	p = cli_path(argv[optind], "leased");
	printf("%s/%s\n", p, id);
	free(p);
	return CLI_EXIT_OK;
}

/* Runs op on every PATH; the exit code is the worst one seen. */
static int each_path(int argc, char **argv, const char *name,
		     int (*op)(const char *path))
{
	int i, rc, worst = 0;

	if (argc < 2)
		return cli_usage(name, "PATH expected");
	for (i = 1; i < argc; i++) {
		rc = op(argv[i]);
		if (rc == 0)
			continue;
		rc = cli_fail(argv[i], -rc, -rc == ENOENT ?
				"no such leased message" : NULL);
		if (rc > worst)
			worst = rc;
	}
	return worst;
}

static int ack_one(const char *path)
{
	return unlink(path) < 0 ? -errno : 0;
}

/* DIR/leased/ID -> DIR/peek/ID (malloc'ed), or NULL if not leased/. */
static char *peek_path(const char *path)
{
	const char *slash = strrchr(path, '/'), *dir;
	char *out;

	if (!slash || slash[1] == '\0')
		return NULL;
	for (dir = slash; dir > path && dir[-1] != '/'; dir--)
		;
	if (slash - dir != 6 || strncmp(dir, "leased", 6) != 0)
		return NULL;
	if (asprintf(&out, "%.*speek%s", (int)(dir - path), path, slash) < 0)
		return NULL;
	return out;
}

int cli_release_path(const char *path)
{
	char *to = peek_path(path);
	int rc;

	if (!to)
		return -EINVAL;
	rc = rename(path, to) < 0 ? -errno : 0;
	free(to);
	return rc;
}

int cli_cmd_ack(int argc, char **argv)
{
	return each_path(argc, argv, "ack", ack_one);
}

int cli_cmd_release(int argc, char **argv)
{
	return each_path(argc, argv, "release", cli_release_path);
}

/* NULL times: touch, the lease becomes now + visibility_timeout. */
int cli_extend_path(const char *path, double seconds)
{
	struct timespec ts[2];

	if (seconds < 0)
		return utimensat(AT_FDCWD, path, NULL, 0) < 0 ? -errno : 0;
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec += (time_t)seconds;
	ts[0].tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
	if (ts[0].tv_nsec >= 1000000000L) {
		ts[0].tv_sec++;
		ts[0].tv_nsec -= 1000000000L;
	}
	ts[1] = ts[0];
	return utimensat(AT_FDCWD, path, ts, 0) < 0 ? -errno : 0;
}

int cli_cmd_extend(int argc, char **argv)
{
	double s = -1;
	int rc;

	if (argc < 2 || argc > 3)
		return cli_usage("extend", "usage: spool extend PATH "
				   "[SECONDS]");
	if (argc == 3 && (cli_parse_seconds(argv[2], &s) < 0 || s < 0))
		return cli_usage("extend", "bad SECONDS '%s'", argv[2]);
	rc = cli_extend_path(argv[1], s);
	if (rc)
		return cli_fail(argv[1], -rc, -rc == ENOENT ?
				  "no such leased message" : NULL);
	return CLI_EXIT_OK;
}
