/*
 * cli.h - the spool CLI's private header.
 *
 * The CLI works only through a mounted spoolfs, with plain file operations
 * (open, read, write, rename, unlink, utimensat, xattrs): it never links the
 * engine or RocksDB. That also proves the file interface is complete.
 *
 * Exit codes, shared by every command (docs/spool.1):
 *   0 ok, 1 usage (or a setting the daemon refused), 2 not found or empty,
 *   3 I/O error, 4 (consume only) some COMMAND exited non-zero.
 */
#ifndef CLI_H
#define CLI_H

#include <stddef.h>
#include <sys/types.h>

enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_USAGE = 1,
	CLI_EXIT_EMPTY = 2,
	CLI_EXIT_IO = 3,
	CLI_EXIT_FAILED = 4,
};

/* One subcommand: name, entry point (argv[0] is the command's name),
 * whether it needs the mount, and its --help text (first line: usage). */
struct cli_cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	int needs_mount;
	const char *help;
};

/* mount.c: the mount every command works on. */
extern char *cli_mount;

/* Finds the mount (--mount, then $SPOOL_MOUNT, then the only spoolfs mount
 * in /proc/self/mountinfo) and checks that it is live. Returns 0 or an exit
 * code, having printed why. */
int cli_mount_find(const char *given);

/* Returns malloc'ed "MOUNT/QUEUE[/REST]"; the caller frees it. */
char *cli_path(const char *queue, const char *rest);

/* Checks a queue name (DESIGN.md §2) and that the queue exists. Returns 0
 * or an exit code, having printed why. */
int cli_queue_check(const char *queue);

/* err.c: errors as "spool: WHAT: reason (ERRNO_NAME)". */
void cli_err(const char *what, int err, const char *reason);
int cli_exit_code(int err);
int cli_fail(const char *what, int err, const char *reason);
int cli_usage(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* file.c: whole-file reads and writes with retries on EINTR. */
/* Reads path to EOF into a malloc'ed NUL-terminated buffer (*out, *len).
 * Returns 0 or a negative errno; on error *out is NULL. */
int cli_read_file(const char *path, char **out, size_t *len);
int cli_read_fd(int fd, char **out, size_t *len);
/* open(O_WRONLY|O_TRUNC), one full write, close; -errno of any step. */
int cli_write_file(const char *path, const char *buf, size_t len);
int cli_write_all(int fd, const char *buf, size_t len);
int cli_copy_fd(int in, int out);
/* Looks up key in "key=value\n" text; returns a malloc'ed value or NULL. */
char *cli_kv_get(const char *text, const char *key);
double cli_now(void);
int cli_parse_seconds(const char *s, double *out);

/* Lists the queues of the mount, sorted; *names is a NULL-terminated
 * malloc'ed array freed with cli_names_free. Returns count or -errno. */
int cli_queues(char ***names);
void cli_names_free(char **names);

/* lease.c: leasing shared by take and consume. */
/* Leases the next message of queue: waits up to wait seconds (< 0: as long
 * as the queue's receive_wait), or until *stop becomes non-zero. Writes the
 * id into id (size >= 64). Returns 0, -EAGAIN when empty, or -errno. */
int cli_lease_claim(const char *queue, double wait, volatile int *stop,
		      int wake_fd, char *id);
/* Release: rename DIR/leased/ID to DIR/peek/ID. -EINVAL if path is not
 * in a leased/ directory. Returns 0 or -errno. */
int cli_release_path(const char *path);
/* Extend: lease until now + seconds (< 0: now + visibility_timeout). */
int cli_extend_path(const char *path, double seconds);

/* The commands. */
int cli_cmd_push(int argc, char **argv);
int cli_cmd_take(int argc, char **argv);
int cli_cmd_ack(int argc, char **argv);
int cli_cmd_release(int argc, char **argv);
int cli_cmd_extend(int argc, char **argv);
int cli_cmd_consume(int argc, char **argv);
int cli_cmd_ls(int argc, char **argv);
int cli_cmd_stats(int argc, char **argv);
int cli_cmd_config(int argc, char **argv);
int cli_cmd_purge(int argc, char **argv);
int cli_cmd_move(int argc, char **argv);
int cli_cmd_mkq(int argc, char **argv);
int cli_cmd_rmq(int argc, char **argv);
int cli_cmd_top(int argc, char **argv);

/* The --help texts, one per command, defined next to each command. */
extern const char cli_help_push[], cli_help_take[], cli_help_ack[],
	cli_help_release[], cli_help_extend[], cli_help_consume[],
	cli_help_ls[], cli_help_stats[], cli_help_config[],
	cli_help_purge[], cli_help_move[], cli_help_mkq[],
	cli_help_rmq[], cli_help_top[];

#endif
