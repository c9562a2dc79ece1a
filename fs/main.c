/*
 * main.c - spoolfs [options] MOUNTPOINT
 *
 * Parses the command line, opens the store (which rebuilds the engine's
 * indexes) before mounting, mounts with default_permissions, and serves
 * with a multi-threaded loop until unmounted or signalled. Exit codes:
 * 0 clean shutdown, 1 usage or mount failure, 2 the store cannot be opened.
 *
 * Daemonizing: the process forks before anything else starts (RocksDB's
 * threads and its lock on the store do not survive a fork), and the parent
 * waits until the child reports that the mount is live, then exits with the
 * child's status. So `spoolfs DIR` returns once the mount works, as with
 * fuse_daemonize(), and the store lock is held by the process serving it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "fs.h"
#include "sqs.h"

#define MAX_THREADS 16

enum { KEY_HELP, KEY_VERSION };

struct options {
	char *data;
	char *sync;
	int salvage;
	char *sqs;                  /* --sqs [ADDR:]PORT */
	char *sqs_keys;             /* --sqs-keys FILE */
	int allow_other;            /* -o allow_other (read before libfuse
	                             * takes the mount options out) */
	int help;
	int version;
	char *pos[3];               /* positional arguments */
	int npos;
};

#define OPT(t, f) { t, offsetof(struct options, f), 0 }
static const struct fuse_opt option_spec[] = {
	OPT("--data %s", data),
	OPT("--data=%s", data),
	OPT("data=%s", data),
	OPT("--sync %s", sync),
	OPT("--sync=%s", sync),
	OPT("sync=%s", sync),
	{ "--salvage", offsetof(struct options, salvage), 1 },
	OPT("--sqs %s", sqs),
	OPT("--sqs=%s", sqs),
	OPT("sqs=%s", sqs),
	OPT("sqs_keys=%s", sqs_keys),   /* --sqs-keys: take_sqs_keys() */
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END
};
#undef OPT

static void usage(const char *prog)
{
	printf("usage: %s [options] [SOURCE] MOUNTPOINT\n\n"
	       "Message queues as directories.\n\n"
	       "options:\n"
	       "    --data DIR|URL        the store (default "
	       "$XDG_DATA_HOME/spoolfs/default), or Redis\n"
	       "                          (docs/scale-out.md): "
	       "redis://HOST:PORT[/PREFIX],\n"
	       "                          redis+sentinel://HOST:PORT[,...]"
	       "/MASTER[/PREFIX],\n"
	       "                          redis+cluster://HOST:PORT[,...]"
	       "[/PREFIX]\n"
	       "    --sync always|none    fsync every push and ack "
	       "(default always)\n"
	       "    --salvage             open a damaged store with what can "
	       "be read,\n"
	       "                          logging what was lost "
	       "(docs/reliability.md)\n"
	       "    --sqs [ADDR:]PORT     also serve the SQS API there "
	       "(default address\n"
	       "                          127.0.0.1; docs/sqs.md)\n"
	       "    --sqs-keys FILE       SigV4 keys for --sqs: lines "
	       "ACCESS_KEY SECRET USER\n"
	       "    -f                    stay in the foreground\n"
	       "    -d                    debug: foreground, log every "
	       "request\n"
	       "    -o OPT[,OPT...]       mount options (allow_other, ...)\n"
	       "    -h, --help            this text\n"
	       "    -V, --version         the version\n", prog);
}

static int option_proc(void *data, const char *arg, int key,
		       struct fuse_args *outargs)
{
	struct options *o = data;

	(void)arg;
	(void)outargs;
	if (key == KEY_HELP)
		o->help = 1;
	else if (key == KEY_VERSION)
		o->version = 1;
	else if (key == FUSE_OPT_KEY_NONOPT && o->npos < 3)
		o->pos[o->npos++] = strdup(arg);
	else
		return 1;
	return 0;
}

/*
 * MOUNTPOINT, or SOURCE MOUNTPOINT as mount.fuse3 passes them (an fstab
 * line of type fuse.spoolfs): a SOURCE with a '/' is the store, unless
 * --data says otherwise; any other SOURCE is a label and ignored. Puts the
 * mount point back for fuse_parse_cmdline(). Returns -1 on a usage error.
 */
static int positional(struct options *o, struct fuse_args *args)
{
	if (o->npos > 2) {
		fprintf(stderr, "spoolfs: too many arguments "
			"(usage: spoolfs [options] MOUNTPOINT)\n");
		return -1;
	}
	if (o->npos == 2 && !o->data && strchr(o->pos[0], '/'))
		o->data = strdup(o->pos[0]);
	if (o->npos > 0)
		fuse_opt_add_arg(args, o->pos[o->npos - 1]);
	return 0;
}

/* mkdir -p of every component of path before the last. */
static void make_parents(char *path)
{
	char *p;

	for (p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		mkdir(path, 0700);
		*p = '/';
	}
}

/* The store: a directory, made absolute (the daemon runs from /), or a
 * URL ("scheme://...") as given, for the engine to pick its store. */
static char *data_dir(const char *given)
{
	const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	char cwd[PATH_MAX], *out = NULL;

	if (given && (given[0] == '/' || strstr(given, "://")))
		return strdup(given);
	if (given && getcwd(cwd, sizeof cwd)) {
		if (asprintf(&out, "%s/%s", cwd, given) < 0)
			return NULL;
		return out;
	}
	if (given)
		return NULL;
	if (xdg && xdg[0] == '/') {
		if (asprintf(&out, "%s/spoolfs/default", xdg) < 0)
			return NULL;
	} else if (asprintf(&out, "%s/.local/share/spoolfs/default",
			    home ? home : "") < 0) {
		return NULL;
	}
	make_parents(out);
	return out;
}

static const char *open_failure(int rc)
{
	switch (rc) {
	case -EBUSY:
		return "it is locked: another spoolfs daemon has it open";
	case -EACCES:
	case -EPERM:
		return "permission denied";
	case -ENOTDIR:
		return "not a directory";
	case -EIO:
		return "it is corrupt or not a spoolfs store";
	case -EINVAL:
		return "no store of this kind (--data takes a directory)";
	default:
		return strerror(-rc);
	}
}

static int store_open(struct fs_ctx *fs, const char *dir, int sync_none,
		      int salvage, int debug)
{
	struct spool_options o;
	int rc;

	spool_options_init(&o);
	o.sync = sync_none ? SPOOL_SYNC_NONE : SPOOL_SYNC_ALWAYS;
	o.log = fs_log_engine;
	o.log_level = debug ? SPOOL_LOG_DEBUG : SPOOL_LOG_INFO;
	o.wake = fs_wake;
	o.wake_arg = fs;
	o.salvage = salvage;
	/* What salvage did is logged as it happens, not captured. */
	fs_log_capture(!salvage);
	rc = spool_open(dir, &o, &fs->db);
	/* The rebuild's scratch (scan buffers, growing vectors) is freed by
	 * now but left in the heap: give it back to the system, so that what
	 * the daemon holds is what the queues need (docs/performance.md). */
	malloc_trim(0);
	if (rc == 0)
		fs->udata = spool_udata_slot(fs->db); /* the first: cannot fail */
	/* The engine's line says which file is at fault and how. */
	if (rc < 0 && fs_log_captured()[0] && rc != -ENOMEM)
		fprintf(stderr, "spoolfs: %s\n", fs_log_captured());
	else if (rc < 0)
		fprintf(stderr, "spoolfs: cannot open the store %s: %s\n", dir,
			open_failure(rc));
	fs_log_capture(0);
	return rc;
}

/* A mount left by a killed daemon answers ENOTCONN. statfs always asks
 * the filesystem (stat may be answered from the kernel's cache). */
static int check_mountpoint(const char *mnt)
{
	struct statvfs sv;
	struct stat st;

	if (stat(mnt, &st) == 0 && statvfs(mnt, &sv) == 0)
		return 0;
	if (errno == ENOTCONN)
		fprintf(stderr, "spoolfs: %s is a dead mount (its daemon was "
			"killed); clear it with: fusermount3 -u -z %s\n", mnt,
			mnt);
	else
		fprintf(stderr, "spoolfs: bad mount point %s: %s\n", mnt,
			strerror(errno));
	return -1;
}

/* ----------------------------------------------------- daemonizing */

/* Forks; the parent waits for the child's status byte and exits. The
 * child gets the pipe's end in *status_fd. */
static int daemon_fork(int *status_fd)
{
	int fds[2];
	pid_t pid;
	char c = 1;

	if (pipe(fds) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		close(fds[1]);
		if (read(fds[0], &c, 1) != 1)
			c = 1;
		if (c != 0)
			waitpid(pid, NULL, 0);
		_exit(c);
	}
	close(fds[0]);
	*status_fd = fds[1];
	setsid();
	return 0;
}

/* Tells the waiting parent how startup went (0: the mount is live), once:
 * closes *status_fd. */
static void daemon_report(int *status_fd, int code)
{
	char c = (char)code;
	int fd;

	if (*status_fd < 0)
		return;
	if (code == 0) {
		fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
		fs_log_daemonized();
		if (chdir("/") < 0)
			fs_log(SPOOL_LOG_DEBUG, "chdir /: %s", strerror(errno));
	}
	if (write(*status_fd, &c, 1) < 0)
		fs_log(SPOOL_LOG_DEBUG, "status pipe: %s", strerror(errno));
	close(*status_fd);
	*status_fd = -1;
}

/* --------------------------------------------------------- serving */

static int serve(struct fuse_session *se, struct fuse_cmdline_opts *cmd)
{
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	int rc;

	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_max_threads(cfg, cmd->max_threads > MAX_THREADS
					       ? cmd->max_threads
					       : MAX_THREADS);
	fuse_loop_cfg_set_clone_fd(cfg, cmd->clone_fd);
	rc = cmd->singlethread ? fuse_session_loop(se)
			       : fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return rc;
}

/* Was -o allow_other given (it lets other users in, FUSE and SQS)? */
static int allow_other(const struct fuse_args *args)
{
	for (int i = 0; i < args->argc; i++) {
		const char *a = args->argv[i];

		if (strncmp(a, "-o", 2) == 0 && !a[2] && i + 1 < args->argc)
			a = args->argv[++i];
		else if (strncmp(a, "-o", 2) == 0)
			a += 2;
		else
			continue;
		for (const char *p = strstr(a, "allow_other"); p;
		     p = strstr(p + 1, "allow_other"))
			if ((p == a || p[-1] == ',') &&
			    (p[11] == '\0' || p[11] == ','))
				return 1;
	}
	return 0;
}

/* Starts the SQS endpoint if --sqs was given; prints one line if not. */
static int sqs_begin(struct fs_ctx *fs, const struct options *o)
{
	struct sqs_config c = {
		.listen = o->sqs,
		.owner = getuid(),
		.allow_other = o->allow_other,
		.keys = o->sqs_keys,
		.log = fs_log,
	};
	char err[512];

	if (!o->sqs)
		return 0;
	if (sqs_start(fs->db, &c, err, sizeof err) == 0)
		return 0;
	fprintf(stderr, "spoolfs: %s\n", err);
	return -1;
}

/*
 * The signals that stop the daemon (libfuse's handlers: HUP, INT, TERM).
 * libfuse's loop waits for its workers in the main thread, in a sem_wait
 * that the signal interrupts; a signal that the kernel gives to any other
 * thread (the store's, the timer's, the SQS endpoint's) sets the exit
 * flag but wakes nobody, and the daemon serves on until the next request
 * or the unmount (CI once waited 10 s for a SIGINT). So they are blocked
 * before the first thread starts, every thread inherits that, and only
 * the main thread unblocks them, just before serving: a signal that came
 * during start-up is taken then, and the loop ends at once.
 */
static void stop_signals(int how)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(how, &set, NULL);
}

/* Serves the mount with the state fs; returns the exit code. Reports to
 * the waiting parent (status_fd) once the mount is live. */
static int run(struct fs_ctx *fs, struct fuse_args *args,
	       struct fuse_cmdline_opts *cmd, const char *data, int sync_none,
	       const struct options *o, int *status_fd)
{
	struct fuse_session *se;
	int rc, code = 1;

	stop_signals(SIG_BLOCK);
	se = fuse_session_new(args, &fs_ops, sizeof fs_ops, fs);
	if (!se)
		return 1;
	fs->se = se;
	if (store_open(fs, data, sync_none, o->salvage, cmd->debug) < 0) {
		code = 2;
		goto out_session;
	}
	fs->start_ms = spool_now(fs->db);
	fs->data_dir = data;
	if (fs_inode_init(fs) < 0 || fs_wait_start(fs) < 0 ||
	    fs_listed_start(fs) < 0)
		goto out_store;
	if (sqs_begin(fs, o) < 0)
		goto out_wait;
	if (fuse_set_signal_handlers(se) < 0)
		goto out_wait;
	if (fuse_session_mount(se, cmd->mountpoint) < 0)
		goto out_signals;
	daemon_report(status_fd, 0);
	fs_log(SPOOL_LOG_INFO, "serving %s on %s", data, cmd->mountpoint);
	stop_signals(SIG_UNBLOCK);
	rc = serve(se, cmd);
	code = rc < 0 && rc != -ENODEV ? 1 : 0;
	sqs_stop();
	fs_wait_stop(fs);
	fs_listed_stop(fs);
	fuse_session_unmount(se);
	fs_file_free_all(fs);
	fs_dir_free_all(fs);
out_signals:
	fuse_remove_signal_handlers(se);
out_wait:
	sqs_stop();
	fs_wait_stop(fs);
out_store:
	fs_listed_stop(fs);
	fs_inode_destroy(fs);
	spool_close(fs->db);
	fs_queue_free_all(fs);
	if (code == 0)
		fs_log(SPOOL_LOG_INFO, "store closed, clean shutdown");
out_session:
	fuse_session_destroy(se);
	return code;
}

/*
 * Takes --sqs-keys FILE and --sqs-keys=FILE out of argv (compacting it):
 * libfuse's template "--sqs %s" matches any argument that begins with
 * "--sqs", so this one cannot be a template beside it.
 */
static int take_sqs_keys(int argc, char *argv[], struct options *o)
{
	int n = 1;

	for (int i = 1; i < argc; i++) {
		const char *v = NULL;

		if (strcmp(argv[i], "--sqs-keys") == 0 && i + 1 < argc)
			v = argv[++i];
		else if (strncmp(argv[i], "--sqs-keys=", 11) == 0)
			v = argv[i] + 11;
		if (v) {
			free(o->sqs_keys);
			o->sqs_keys = strdup(v);
		} else {
			argv[n++] = argv[i];
		}
	}
	argv[n] = NULL;
	return n;
}

int main(int argc, char *argv[])
{
	struct options o = { 0 };
	int nargc = take_sqs_keys(argc, argv, &o);
	struct fuse_args args = FUSE_ARGS_INIT(nargc, argv);
	struct fuse_cmdline_opts cmd = { 0 };
	struct fs_ctx *fs = NULL;
	char *data = NULL;
	int code = 1, sync_none = 0, status_fd = -1;

	if (fuse_opt_parse(&args, &o, option_spec, option_proc) < 0)
		goto out;
	if (o.help || o.version) {
		if (o.help)
			usage(argv[0]);
		else
			printf("spoolfs %s\n", SPOOLFS_VERSION);
		code = 0;
		goto out;
	}
	if (positional(&o, &args) < 0 || fuse_parse_cmdline(&args, &cmd) < 0)
		goto out;
	if (!cmd.mountpoint) {
		fprintf(stderr, "spoolfs: no mount point given "
			"(usage: spoolfs [options] MOUNTPOINT)\n");
		goto out;
	}
	if (o.sync && strcmp(o.sync, "always") != 0 &&
	    strcmp(o.sync, "none") != 0) {
		fprintf(stderr, "spoolfs: --sync must be always or none\n");
		goto out;
	}
	sync_none = o.sync && strcmp(o.sync, "none") == 0;
	data = data_dir(o.data);
	if (!data || check_mountpoint(cmd.mountpoint) < 0)
		goto out;
	fuse_opt_add_arg(&args, "-odefault_permissions");
	fuse_opt_add_arg(&args, "-ofsname=spoolfs");
	fs_log_init(cmd.foreground, cmd.debug);
	if (!cmd.foreground && daemon_fork(&status_fd) < 0) {
		fprintf(stderr, "spoolfs: fork: %s\n", strerror(errno));
		goto out;
	}
	o.allow_other = allow_other(&args);
	fs = fs_ctx_new();
	if (fs)
		code = run(fs, &args, &cmd, data, sync_none, &o,
			   &status_fd);
	fs_ctx_free(fs);
	daemon_report(&status_fd, code);
out:
	free(data);
	free(cmd.mountpoint);
	free(o.data);
	free(o.sync);
	free(o.sqs);
	free(o.sqs_keys);
	while (o.npos > 0)
		free(o.pos[--o.npos]);
	fuse_opt_free_args(&args);
	return code;
}
