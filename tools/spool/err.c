/*
 * err.c - how spool reports failures: one line on stderr,
 * "spool: WHAT: reason (ERRNO_NAME)", and an exit code from the errno.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* ENOENT and EAGAIN mean "not there" or "empty"; EINVAL means the daemon
 * refused what the user asked for (a bad name or setting), a usage error. */
int cli_exit_code(int err)
{
	switch (err) {
	case ENOENT:
	case EAGAIN:
	case ENODATA:
		return CLI_EXIT_EMPTY;
	case EINVAL:
		return CLI_EXIT_USAGE;
	default:
		return CLI_EXIT_IO;
	}
}

void cli_err(const char *what, int err, const char *reason)
{
	const char *name = strerrorname_np(err);

	fprintf(stderr, "spool: %s: %s (%s)\n", what,
		reason ? reason : strerror(err), name ? name : "?");
}

int cli_fail(const char *what, int err, const char *reason)
{
	cli_err(what, err, reason);
	return cli_exit_code(err);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "spool: %s%s", cmd ? cmd : "", cmd ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (EINVAL)\n");
	return CLI_EXIT_USAGE;
}
