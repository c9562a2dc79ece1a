/*
 * spool.h - the spool CLI's private header.
 *
 * The CLI works only through a mounted spoolfs, with plain file operations
 * (open, read, write, rename, unlink, utimensat, xattrs): it never links the
 * engine or RocksDB. That also proves the file interface is complete.
 *
 * Exit codes, shared by every command (docs/spool.1):
 *   0 ok, 1 usage (or a setting the daemon refused), 2 not found or empty,
 *   3 I/O error, 4 (consume only) some COMMAND exited non-zero.
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <stddef.h>
#include <sys/types.h>

enum {
	SPOOL_EXIT_OK = 0,
	SPOOL_EXIT_USAGE = 1,
	SPOOL_EXIT_EMPTY = 2,
	SPOOL_EXIT_IO = 3,
	SPOOL_EXIT_FAILED = 4,
};

/* One subcommand: name, entry point (argv[0] is the command's name),
 * whether it needs the mount, and its --help text (first line: usage). */
struct spool_cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	int needs_mount;
	const char *help;
};

/* mount.c: the mount every command works on. */
extern char *spool_mount;

/* Finds the mount (--mount, then $SPOOL_MOUNT, then the only spoolfs mount
 * in /proc/self/mountinfo) and checks that it is live. Returns 0 or an exit
 * code, having printed why. */
int spool_mount_find(const char *given);

/* Returns malloc'ed "MOUNT/QUEUE[/REST]"; the caller frees it. */
char *spool_path(const char *queue, const char *rest);

/* Checks a queue name (DESIGN.md §2) and that the queue exists. Returns 0
 * or an exit code, having printed why. */
int spool_queue_check(const char *queue);

/* err.c: errors as "spool: WHAT: reason (ERRNO_NAME)". */
void spool_err(const char *what, int err, const char *reason);
int spool_exit_code(int err);
int spool_fail(const char *what, int err, const char *reason);
int spool_usage(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* file.c: whole-file reads and writes with retries on EINTR. */
/* Reads path to EOF into a malloc'ed NUL-terminated buffer (*out, *len).
 * Returns 0 or a negative errno; on error *out is NULL. */
int spool_read_file(const char *path, char **out, size_t *len);
int spool_read_fd(int fd, char **out, size_t *len);
/* open(O_WRONLY|O_TRUNC), one full write, close; -errno of any step. */
int spool_write_file(const char *path, const char *buf, size_t len);
int spool_write_all(int fd, const char *buf, size_t len);
int spool_copy_fd(int in, int out);
/* Looks up key in "key=value\n" text; returns a malloc'ed value or NULL. */
char *spool_kv_get(const char *text, const char *key);
double spool_now(void);
int spool_parse_seconds(const char *s, double *out);

/* Lists the queues of the mount, sorted; *names is a NULL-terminated
 * malloc'ed array freed with spool_names_free. Returns count or -errno. */
int spool_queues(char ***names);
void spool_names_free(char **names);

/* lease.c: leasing shared by take and consume. */
/* Leases the next message of queue: waits up to wait seconds (< 0: as long
 * as the queue's receive_wait), or until *stop becomes non-zero. Writes the
 * id into id (size >= 64). Returns 0, -EAGAIN when empty, or -errno. */
int spool_lease_claim(const char *queue, double wait, volatile int *stop,
		      int wake_fd, char *id);
/* Release: rename DIR/leased/ID to DIR/peek/ID. -EINVAL if path is not
 * in a leased/ directory. Returns 0 or -errno. */
int spool_release_path(const char *path);
/* Extend: lease until now + seconds (< 0: now + visibility_timeout). */
int spool_extend_path(const char *path, double seconds);

/* The commands. */
int spool_cmd_push(int argc, char **argv);
int spool_cmd_take(int argc, char **argv);
int spool_cmd_ack(int argc, char **argv);
int spool_cmd_release(int argc, char **argv);
int spool_cmd_extend(int argc, char **argv);
int spool_cmd_consume(int argc, char **argv);
int spool_cmd_ls(int argc, char **argv);
int spool_cmd_stats(int argc, char **argv);
int spool_cmd_config(int argc, char **argv);
int spool_cmd_purge(int argc, char **argv);
int spool_cmd_move(int argc, char **argv);
int spool_cmd_mkq(int argc, char **argv);
int spool_cmd_rmq(int argc, char **argv);
int spool_cmd_top(int argc, char **argv);

/* The --help texts, one per command, defined next to each command. */
extern const char spool_help_push[], spool_help_take[], spool_help_ack[],
	spool_help_release[], spool_help_extend[], spool_help_consume[],
	spool_help_ls[], spool_help_stats[], spool_help_config[],
	spool_help_purge[], spool_help_move[], spool_help_mkq[],
	spool_help_rmq[], spool_help_top[];

#endif
