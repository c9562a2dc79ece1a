/*
 * log.c - the daemon's one log sink.
 *
 * Lines go to stderr while the daemon runs in the foreground and to syslog
 * once it has daemonized. Debug lines are dropped unless -d was given.
 * Expected outcomes (ENOENT on lookup, EAGAIN on an empty queue) are never
 * logged above debug: tests fail on warning and error lines.
 */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "fs.h"

static int log_syslog;
static int log_capture;          /* keep ERR lines instead of printing */
static char log_captured[1024];
static enum spool_log_level log_max = SPOOL_LOG_INFO;

static const char *const level_name[] = {
	[SPOOL_LOG_ERR] = "error",
	[SPOOL_LOG_WARN] = "warning",
	[SPOOL_LOG_INFO] = "info",
	[SPOOL_LOG_DEBUG] = "debug",
};

static const int level_syslog[] = {
	[SPOOL_LOG_ERR] = LOG_ERR,
	[SPOOL_LOG_WARN] = LOG_WARNING,
	[SPOOL_LOG_INFO] = LOG_INFO,
	[SPOOL_LOG_DEBUG] = LOG_DEBUG,
};

void fs_log_init(int foreground, int debug)
{
	(void)foreground;
	log_max = debug ? SPOOL_LOG_DEBUG : SPOOL_LOG_INFO;
}

/* Called once the daemon has detached from its terminal. */
void fs_log_daemonized(void)
{
	openlog("spoolfs", LOG_PID, LOG_DAEMON);
	log_syslog = 1;
}

/* While on, engine error lines are kept (the last one) instead of
 * printed, so that a failure to open the store prints one line. */
void fs_log_capture(int on)
{
	log_capture = on;
	log_captured[0] = '\0';
}

const char *fs_log_captured(void)
{
	return log_captured;
}

static void log_line(enum spool_log_level level, const char *line)
{
	if (level > log_max)
		return;
	if (log_capture && level <= SPOOL_LOG_WARN) {
		snprintf(log_captured, sizeof log_captured, "%s", line);
		return;
	}
	if (log_syslog) {
		syslog(level_syslog[level], "%s", line);
		return;
	}
	fprintf(stderr, "spoolfs: %s: %s\n", level_name[level], line);
}

void fs_log(enum spool_log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	log_line(level, line);
}

void fs_log_engine(void *arg, enum spool_log_level level, const char *line)
{
	(void)arg;
	log_line(level, line);
}
