/*
 * main.c - spool [--mount DIR] COMMAND [ARGS...]: global options and the
 * dispatch to one command. Each command lives in its own file and brings
 * its own --help text; this file knows only their names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "cli.h"

static const struct cli_cmd commands[] = {
	{ "push", cli_cmd_push, 1, cli_help_push },
	{ "take", cli_cmd_take, 1, cli_help_take },
	{ "ack", cli_cmd_ack, 0, cli_help_ack },
	{ "release", cli_cmd_release, 0, cli_help_release },
	{ "extend", cli_cmd_extend, 0, cli_help_extend },
	{ "consume", cli_cmd_consume, 1, cli_help_consume },
	{ "ls", cli_cmd_ls, 1, cli_help_ls },
	{ "stats", cli_cmd_stats, 1, cli_help_stats },
	{ "config", cli_cmd_config, 1, cli_help_config },
	{ "purge", cli_cmd_purge, 1, cli_help_purge },
	{ "move", cli_cmd_move, 1, cli_help_move },
	{ "mkq", cli_cmd_mkq, 1, cli_help_mkq },
	{ "rmq", cli_cmd_rmq, 1, cli_help_rmq },
	{ "top", cli_cmd_top, 1, cli_help_top },
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: spool [--mount DIR] COMMAND [ARGS...]\n\n"
		"Message queues on a spoolfs mount, through plain file "
		"operations.\n\ncommands:\n");
	for (i = 0; i < N_COMMANDS; i++) {
		const char *h = commands[i].help;
		const char *nl = strchr(h, '\n');

		h += strlen("usage: ");
		fprintf(f, "  %.*s\n", (int)(nl ? nl - h : (long)strlen(h)),
			h);
	}
	fprintf(f, "\nThe mount: --mount DIR, else $SPOOL_MOUNT, else the only "
		"spoolfs mount.\nspool COMMAND --help for details. Exit codes: "
		"0 ok, 1 usage, 2 not found\nor empty, 3 I/O error (man spool)."
		"\n");
}

static const struct cli_cmd *lookup(const char *name)
{
	size_t i;

	for (i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Removes "--mount DIR" / "--mount=DIR" anywhere before "--" from argv;
 * returns the value (or NULL), *bad set on a missing argument. */
static const char *take_mount_option(int *argc, char **argv, int *bad)
{
	const char *dir = NULL;
	int i, j, n;

	for (i = 1; i < *argc && strcmp(argv[i], "--") != 0;) {
		n = 0;
		if (strcmp(argv[i], "--mount") == 0) {
			if (i + 1 >= *argc) {
				*bad = 1;
				return NULL;
			}
			dir = argv[i + 1];
			n = 2;
		} else if (strncmp(argv[i], "--mount=", 8) == 0) {
			dir = argv[i] + 8;
			n = 1;
		}
		if (n == 0) {
			i++;
			continue;
		}
		for (j = i; j + n <= *argc; j++)
			argv[j] = argv[j + n];
		*argc -= n;
	}
	return dir;
}

static int wants_help(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	const struct cli_cmd *cmd;
	const char *dir;
	int bad = 0, rc;

	dir = take_mount_option(&argc, argv, &bad);
	if (bad)
		return cli_usage(NULL, "--mount needs a directory");
	if (argc < 2)
		return usage(stderr), CLI_EXIT_USAGE;
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0)
		return usage(stdout), CLI_EXIT_OK;
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
		return printf("spool %s\n", SPOOLFS_VERSION), CLI_EXIT_OK;
	cmd = lookup(argv[1]);
	if (!cmd)
		return cli_usage(NULL, "unknown command '%s' (spool --help "
				   "lists them)", argv[1]);
	if (wants_help(argc - 1, argv + 1))
		return fputs(cmd->help, stdout), CLI_EXIT_OK;
	if (cmd->needs_mount) {
		rc = cli_mount_find(dir);
		if (rc)
			return rc;
	}
	return cmd->run(argc - 1, argv + 1);
}
