/*
 * queues.c - managing queues: spool ls, mkq, rmq, config, purge, move.
 * mkdir, rmdir, and writes to QUEUE/config and QUEUE/ctl (DESIGN.md §2, §5,
 * §6); nothing here leases or pushes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

const char cli_help_ls[] =
	"usage: spool ls [-l]\n\n"
	"Lists the queues, one per line. -l: with their visible, delayed and\n"
	"leased counts.\n";
const char cli_help_mkq[] =
	"usage: spool mkq QUEUE [KEY=VALUE...]\n\n"
	"Creates a queue (mkdir) and applies the settings, all or none: on a\n"
	"bad setting the queue is removed again. Exit 3 if it exists.\n";
const char cli_help_rmq[] =
	"usage: spool rmq QUEUE\n\n"
	"Deletes an empty queue (rmdir). Exit 3 while it holds messages.\n";
const char cli_help_config[] =
	"usage: spool config QUEUE [KEY=VALUE...]\n\n"
	"Without settings: prints every setting of QUEUE as key=value. With:\n"
	"changes those keys, all or none (exit 1 on an unknown key or a bad\n"
	"value, nothing changed).\n";
const char cli_help_purge[] =
	"usage: spool purge QUEUE\n\n"
	"Deletes every visible and delayed message of QUEUE (leased ones "
	"stay).\n";
const char cli_help_move[] =
	"usage: spool move FROM TO [N]\n\n"
	"Moves up to N (default all) visible messages from queue FROM to queue\n"
	"TO, e.g. to redrive a dead-letter queue: spool move jobs.dead jobs\n";

static void print_counts(const char *queue)
{
	char *path = cli_path(queue, "stats"), *text, *v[3];
	static const char *keys[3] = { "visible", "delayed", "leased" };
	int i;

	if (cli_read_file(path, &text, NULL) < 0) {
		printf("%-24s %9s %9s %9s\n", queue, "?", "?", "?");
		free(path);
		return;
	}
	for (i = 0; i < 3; i++)
		v[i] = cli_kv_get(text, keys[i]);
	printf("%-24s %9s %9s %9s\n", queue, v[0] ? v[0] : "?",
	       v[1] ? v[1] : "?", v[2] ? v[2] : "?");
	for (i = 0; i < 3; i++)
		free(v[i]);
	free(text);
	free(path);
}

int cli_cmd_ls(int argc, char **argv)
{
	int longer = argc == 2 && strcmp(argv[1], "-l") == 0, n;
	char **names, **p;

	if (argc > 1 + longer)
		return cli_usage("ls", "usage: spool ls [-l]");
	n = cli_queues(&names);
	if (n < 0)
		return cli_fail(cli_mount, -n, NULL);
	if (longer)
		printf("%-24s %9s %9s %9s\n", "QUEUE", "VISIBLE", "DELAYED",
		       "LEASED");
	for (p = names; *p; p++) {
		if (longer)
			print_counts(*p);
		else
			printf("%s\n", *p);
	}
	cli_names_free(names);
	return CLI_EXIT_OK;
}

/* Joins KEY=VALUE arguments into "k=v\n" lines; checks each has a '='. */
static char *settings_text(int argc, char **argv, const char *cmd)
{
	size_t len = 1;
	char *text;
	int i;

	for (i = 0; i < argc; i++) {
		if (!strchr(argv[i], '=') || argv[i][0] == '=') {
			cli_usage(cmd, "bad setting '%s' (KEY=VALUE)",
				    argv[i]);
			return NULL;
		}
		len += strlen(argv[i]) + 1;
	}
	text = calloc(1, len);
	for (i = 0; text && i < argc; i++) {
		strcat(text, argv[i]);
		strcat(text, "\n");
	}
	return text;
}

/* One write of every setting: the daemon applies them all or none. */
static int write_settings(const char *queue, int argc, char **argv,
			  const char *cmd)
{
	char *text = settings_text(argc, argv, cmd), *path;
	int rc;

	if (!text)
		return -EINVAL;
	path = cli_path(queue, "config");
	rc = cli_write_file(path, text, strlen(text));
	free(path);
	free(text);
	if (rc)
		cli_err(queue, -rc, rc == -EINVAL ? "unknown key or bad "
			  "value; nothing changed" : NULL);
	return rc;
}

int cli_cmd_config(int argc, char **argv)
{
	char *path, *text;
	int rc;

	if (argc < 2)
		return cli_usage("config", "QUEUE expected");
	rc = cli_queue_check(argv[1]);
	if (rc)
		return rc;
	if (argc > 2) {
		rc = write_settings(argv[1], argc - 2, argv + 2, "config");
		return rc ? cli_exit_code(-rc) : CLI_EXIT_OK;
	}
	path = cli_path(argv[1], "config");
	rc = cli_read_file(path, &text, NULL);
	free(path);
	if (rc)
		return cli_fail(argv[1], -rc, NULL);
	fputs(text, stdout);
	free(text);
	return CLI_EXIT_OK;
}

int cli_cmd_mkq(int argc, char **argv)
{
	char *path;
	int rc;

	if (argc < 2)
		return cli_usage("mkq", "QUEUE expected");
	path = cli_path(argv[1], NULL);
	rc = mkdir(path, 0777) < 0 ? errno : 0;
	if (rc) {
		free(path);
		return cli_fail(argv[1], rc, rc == EEXIST ? "queue exists" :
				  rc == EINVAL ? "bad queue name" : NULL);
	}
	rc = argc > 2 ? write_settings(argv[1], argc - 2, argv + 2, "mkq") : 0;
	if (rc)
		rmdir(path);
	free(path);
	return rc ? cli_exit_code(-rc) : CLI_EXIT_OK;
}

int cli_cmd_rmq(int argc, char **argv)
{
	char *path;
	int rc;

	if (argc != 2)
		return cli_usage("rmq", "one QUEUE expected");
	rc = cli_queue_check(argv[1]);
	if (rc)
		return rc;
	path = cli_path(argv[1], NULL);
	rc = rmdir(path) < 0 ? errno : 0;
	free(path);
	if (rc)
		return cli_fail(argv[1], rc, rc == ENOTEMPTY ?
				  "queue holds messages" : NULL);
	return CLI_EXIT_OK;
}

static int write_ctl(const char *queue, const char *line)
{
	char *path = cli_path(queue, "ctl");
	int rc = cli_write_file(path, line, strlen(line));

	free(path);
	return rc ? cli_fail(queue, -rc, NULL) : CLI_EXIT_OK;
}

int cli_cmd_purge(int argc, char **argv)
{
	int rc;

	if (argc != 2)
		return cli_usage("purge", "one QUEUE expected");
	rc = cli_queue_check(argv[1]);
	return rc ? rc : write_ctl(argv[1], "purge\n");
}

int cli_cmd_move(int argc, char **argv)
{
	char line[512], *end;
	int rc;

	if (argc < 3 || argc > 4)
		return cli_usage("move", "usage: spool move FROM TO [N]");
	if (argc == 4 && (strtoul(argv[3], &end, 10), *end || !*argv[3]))
		return cli_usage("move", "bad N '%s'", argv[3]);
	rc = cli_queue_check(argv[1]);
	if (!rc)
		rc = cli_queue_check(argv[2]);
	if (rc)
		return rc;
	snprintf(line, sizeof line, "move %s%s%s\n", argv[2],
		 argc == 4 ? " " : "", argc == 4 ? argv[3] : "");
	return write_ctl(argv[1], line);
}
