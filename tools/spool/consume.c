/*
 * consume.c - spool consume: the worker loop. Leases messages through
 * QUEUE/claim, runs COMMAND once per message with the body on stdin and
 * the message's id, receive count and attributes in the environment, and
 * settles each by COMMAND's exit status: 0 acks (unlink leased/ID), any
 * other status releases (rename to peek/ID) or, with --no-release, lets
 * the lease run out. While COMMAND runs its lease is kept alive with a
 * heartbeat (utimensat, like touch) three times per visibility_timeout.
 *
 * One thread, one poll loop: SIGCHLD, SIGINT and SIGTERM only write a byte
 * to a self-pipe that wakes the loop. The first SIGINT/SIGTERM stops
 * leasing and waits for running commands; a second one passes SIGTERM on
 * to them. Commands run in their own process group, so a terminal's Ctrl-C
 * reaches spool only.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli.h"

#define ID_MAX 64
#define MAX_JOBS 1024

const char cli_help_consume[] =
	"usage: spool consume QUEUE [-j N] [--max N] [--wait S] [--no-release]"
	" -- COMMAND [ARGS...]\n\n"
	"Leases messages of QUEUE and runs COMMAND once per message, with the\n"
	"body on stdin and in the environment SPOOL_QUEUE, SPOOL_ID,\n"
	"SPOOL_PATH (the leased file), SPOOL_RECEIVES, SPOOL_PRIORITY,\n"
	"SPOOL_SENT, SPOOL_NAME, SPOOL_MOUNT and SPOOL_ATTR_<KEY> for each\n"
	"user.<KEY> attribute. Exit status 0 acks the message; any other\n"
	"releases it (visible again at once).\n\n"
	"  -j, --jobs N     run up to N commands at once (default 1)\n"
	"  --max N          stop after N messages\n"
	"  --wait S         stop once no message came for S seconds (default:\n"
	"                   wait forever)\n"
	"  --no-release     on failure let the lease run out instead\n\n"
	"The lease of a running message is extended (touch) three times per\n"
	"visibility_timeout. SIGINT/SIGTERM: stop leasing, let running\n"
	"commands finish, exit; a second signal sends them SIGTERM. A progress\n"
	"line goes to stderr when it is a terminal. Exit: 0 every command\n"
	"succeeded, 2 --wait ran out before any message, 3 I/O error, 4 some\n"
	"command failed.\n";

struct job {
	pid_t pid;
	char id[ID_MAX];
	char *path;		/* MOUNT/QUEUE/leased/ID */
	double beat;		/* time of the last heartbeat */
};

struct consumer {
	const char *queue;
	char **argv;		/* COMMAND ARGS... */
	int jobs;
	long max;
	double wait;		/* < 0: forever */
	int no_release;
	double heartbeat;	/* seconds between two touches of a lease */
	struct job *run;	/* [jobs], pid 0 = free */
	int running;
	long started, ok, failed;
	int io_error;
	double t0, idle_since, shown;
};

static volatile sig_atomic_t stopping;
static int wake[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	char c = 0;

	if (sig != SIGCHLD)
		stopping++;
	if (write(wake[1], &c, 1) < 0)
		(void)0;
	errno = saved;
}

static int install_signals(void)
{
	struct sigaction sa = { 0 };

	if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	return 0;
}

static void drain_wake(void)
{
	char buf[64];

	while (read(wake[0], buf, sizeof buf) > 0)
		;
}

/* A third of visibility_timeout, so two heartbeats may be late. */
static double heartbeat_interval(const char *queue)
{
	char *path = cli_path(queue, "config"), *text, *v;
	double vt = 30;

	if (cli_read_file(path, &text, NULL) == 0) {
		v = cli_kv_get(text, "visibility_timeout");
		if (v && cli_parse_seconds(v, &vt) < 0)
			vt = 30;
		free(v);
		free(text);
	}
	free(path);
	return vt / 3 < 0.05 ? 0.05 : vt / 3;
}

/* KEY of user.KEY as an environment name: [A-Za-z0-9_], upper case. */
static void attr_env(const char *path, const char *attr)
{
	char name[300], value[4096];
	ssize_t n;
	size_t i;

	n = getxattr(path, attr, value, sizeof value - 1);
	if (n < 0)
		return;
	value[n] = '\0';
	snprintf(name, sizeof name, "SPOOL_ATTR_%s", attr + 5);
	for (i = 11; name[i]; i++)
		name[i] = (char)(isalnum((unsigned char)name[i]) ?
				 toupper((unsigned char)name[i]) : '_');
	setenv(name, value, 1);
}

static void cli_xattr_env(const char *path, const char *attr,
			    const char *env)
{
	char value[4096];
	ssize_t n = getxattr(path, attr, value, sizeof value - 1);

	if (n < 0)
		return;
	value[n] = '\0';
	setenv(env, value, 1);
}

/* In the child: the message's facts as environment variables. */
static void message_env(const struct consumer *c, const struct job *j)
{
	char list[8192], *a;
	ssize_t n;

	setenv("SPOOL_QUEUE", c->queue, 1);
	setenv("SPOOL_ID", j->id, 1);
	setenv("SPOOL_PATH", j->path, 1);
	setenv("SPOOL_MOUNT", cli_mount, 1);
	cli_xattr_env(j->path, "user.spool.receives", "SPOOL_RECEIVES");
	cli_xattr_env(j->path, "user.spool.priority", "SPOOL_PRIORITY");
	cli_xattr_env(j->path, "user.spool.sent", "SPOOL_SENT");
	cli_xattr_env(j->path, "user.spool.name", "SPOOL_NAME");
	n = listxattr(j->path, list, sizeof list);
	for (a = list; n > 0 && a < list + n; a += strlen(a) + 1)
		if (strncmp(a, "user.", 5) == 0 &&
		    strncmp(a, "user.spool.", 11) != 0)
			attr_env(j->path, a);
}

static void child_exec(const struct consumer *c, const struct job *j,
		       int body)
{
	struct sigaction sa = { 0 };

	sa.sa_handler = SIG_DFL;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	setpgid(0, 0);
	if (dup2(body, 0) < 0)
		_exit(127);
	message_env(c, j);
	execvp(c->argv[0], c->argv);
	fprintf(stderr, "spool: %s: %s (%s)\n", c->argv[0], strerror(errno),
		strerrorname_np(errno));
	_exit(127);
}

static struct job *free_slot(struct consumer *c)
{
	int i;

	for (i = 0; i < c->jobs; i++)
		if (c->run[i].pid == 0)
			return &c->run[i];
	return NULL;
}

/* Forks COMMAND for the leased message id. On failure the message is
 * released again, so it is not held until its lease runs out. */
static int start_job(struct consumer *c, const char *id)
{
	struct job *j = free_slot(c);
	int body;

	snprintf(j->id, sizeof j->id, "%s", id);
	if (asprintf(&j->path, "%s/%s/leased/%s", cli_mount, c->queue,
		     id) < 0)
		return -ENOMEM;
	body = open(j->path, O_RDONLY | O_CLOEXEC);
	if (body < 0)
		goto out_release;
	j->pid = fork();
	if (j->pid == 0)
		child_exec(c, j, body);
	close(body);
	if (j->pid < 0)
		goto out_release;
	j->beat = cli_now();
	c->running++;
	c->started++;
	return 0;
out_release:
	cli_err(c->queue, errno, NULL);
	cli_release_path(j->path);
	j->pid = 0;
	free(j->path);
	return -1;
}

/* Acks on exit status 0, else releases (unless --no-release). */
static void settle(struct consumer *c, struct job *j, int status)
{
	int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0, rc;

	if (ok)
		rc = unlink(j->path) < 0 ? -errno : 0;
	else
		rc = c->no_release ? 0 : cli_release_path(j->path);
	if (rc) {
		char what[512];

		snprintf(what, sizeof what, "%s: %s", c->queue, j->id);
		cli_err(what, -rc, ok ? "ack failed (the lease ran out?)" :
			  "release failed");
	}
	if (ok)
		c->ok++;
	else
		c->failed++;
	free(j->path);
	j->pid = 0;
	c->running--;
	c->idle_since = cli_now();
}

static void reap(struct consumer *c)
{
	int status, i;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (i = 0; i < c->jobs; i++)
			if (c->run[i].pid == pid)
				settle(c, &c->run[i], status);
}

static void heartbeat(struct consumer *c)
{
	double now = cli_now();
	int i, rc;

	for (i = 0; i < c->jobs; i++) {
		struct job *j = &c->run[i];

		if (j->pid == 0 || now - j->beat < c->heartbeat)
			continue;
		rc = cli_extend_path(j->path, -1);
		if (rc && rc != -ENOENT)
			cli_err(c->queue, -rc, "heartbeat failed");
		j->beat = now;
	}
}

static void forward_term(struct consumer *c)
{
	int i;

	for (i = 0; i < c->jobs; i++)
		if (c->run[i].pid > 0)
			kill(c->run[i].pid, SIGTERM);
}

/* "\r jobs: 12 done, 1 failed, 2 running, 3.4/s" on a terminal only. */
static void progress(struct consumer *c, int last)
{
	double now = cli_now(), dt = now - c->t0;

	if (!isatty(2) || (!last && now - c->shown < 0.5))
		return;
	c->shown = now;
	fprintf(stderr, "\r\033[K%s: %ld done, %ld failed, %d running, "
		"%.1f/s%s", c->queue, c->ok, c->failed, c->running,
		dt > 0 ? (double)(c->ok + c->failed) / dt : 0.0,
		last ? "\n" : "");
}

/* Sleeps until a signal, a child's exit or the next heartbeat. */
static void idle(struct consumer *c)
{
	struct pollfd p = { wake[0], POLLIN, 0 };

	poll(&p, 1, (int)(c->heartbeat * 1000 / 2) + 1);
	(void)c;
}

static int done(struct consumer *c)
{
	if (stopping || (c->max && c->started >= c->max) || c->io_error)
		return 1;
	return c->wait >= 0 && c->running == 0 &&
	       cli_now() - c->idle_since >= c->wait;
}

/* One lease attempt, waiting at most until the next heartbeat is due. */
static void lease_one(struct consumer *c)
{
	double slice = c->heartbeat / 2, left;
	char id[ID_MAX];
	int rc;

	if (c->wait >= 0) {
		left = c->wait - (cli_now() - c->idle_since);
		if (left < slice)
			slice = left > 0 ? left : 0;
	}
	rc = cli_lease_claim(c->queue, slice, &stopping, wake[0], id);
	if (rc == 0 && stopping) {
		char *p = NULL;

		if (asprintf(&p, "%s/%s/leased/%s", cli_mount, c->queue,
			     id) >= 0)
			cli_release_path(p);
		free(p);
	} else if (rc == 0) {
		start_job(c, id);
		c->idle_since = cli_now();
	} else if (rc != -EAGAIN && rc != -EINTR) {
		cli_err(c->queue, -rc, NULL);
		c->io_error = 1;
	}
}

static void loop(struct consumer *c)
{
	int forwarded = 0;

	for (;;) {
		drain_wake();
		reap(c);
		if (stopping > 1 && !forwarded)
			forwarded = 1, forward_term(c);
		heartbeat(c);
		progress(c, 0);
		if (done(c) && c->running == 0)
			break;
		if (done(c) || c->running == c->jobs)
			idle(c);
		else
			lease_one(c);
	}
	progress(c, 1);
}

static int parse(int argc, char **argv, struct consumer *c)
{
	static const struct option opts[] = {
		{ "jobs", required_argument, NULL, 'j' },
		{ "max", required_argument, NULL, 'm' },
		{ "wait", required_argument, NULL, 'w' },
		{ "no-release", no_argument, NULL, 'n' },
		{ 0 } };
	char *end = NULL;
	int o;

	c->jobs = 1;
	c->wait = -1;
	while ((o = getopt_long(argc, argv, "j:", opts, NULL)) != -1) {
		if (o == 'j' && ((c->jobs = (int)strtol(optarg, &end, 10)) < 1
				 || c->jobs > MAX_JOBS || *end))
			return cli_usage("consume", "bad -j '%s'", optarg);
		if (o == 'm' && ((c->max = strtol(optarg, &end, 10)) < 1 ||
				 *end))
			return cli_usage("consume", "bad --max '%s'", optarg);
		if (o == 'w' && (cli_parse_seconds(optarg, &c->wait) < 0))
			return cli_usage("consume", "bad --wait '%s'", optarg);
		if (o == 'n')
			c->no_release = 1;
		if (o == '?')
			return CLI_EXIT_USAGE;
	}
	if (optind + 1 >= argc)
		return cli_usage("consume", "usage: spool consume QUEUE "
				   "[OPTIONS] -- COMMAND [ARGS...]");
	c->queue = argv[optind];
	c->argv = argv + optind + 1;
	if (strcmp(c->argv[0], "--") == 0)
		c->argv++;
	if (!c->argv[0])
		return cli_usage("consume", "COMMAND expected");
	return 0;
}

int cli_cmd_consume(int argc, char **argv)
{
	struct consumer c = { 0 };
	int rc;

	rc = parse(argc, argv, &c);
	if (rc)
		return rc;
	rc = cli_queue_check(c.queue);
	if (rc)
		return rc;
	c.heartbeat = heartbeat_interval(c.queue);
	c.run = calloc((size_t)c.jobs, sizeof *c.run);
	if (!c.run || install_signals() < 0)
		return cli_fail("consume", errno, NULL);
	c.t0 = c.idle_since = cli_now();
	loop(&c);
	free(c.run);
	if (c.io_error)
		return CLI_EXIT_IO;
	if (c.failed)
		return CLI_EXIT_FAILED;
	return c.started == 0 && !stopping ? CLI_EXIT_EMPTY : CLI_EXIT_OK;
}
