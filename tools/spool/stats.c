/*
 * stats.c - spool stats: the counters of QUEUE/stats (DESIGN.md §7), as
 * key=value lines or as one JSON object keyed by queue.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char cli_help_stats[] =
	"usage: spool stats [QUEUE...] [--json]\n\n"
	"Prints the counters of the named queues (default: every queue).\n"
	"One queue named: its key=value lines as they are; otherwise each line\n"
	"is prefixed with the queue's name and a space. --json: one object,\n"
	"{\"QUEUE\": {\"key\": value, ...}, ...}, numbers as numbers.\n";

static int is_number(const char *s)
{
	char *end;

	if (!*s)
		return 0;
	strtod(s, &end);
	return *end == '\0' && strcmp(s, "inf") != 0 && strcmp(s, "nan") != 0;
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

/* Prints "key": value pairs of text's key=value lines. */
static void json_object(const char *text)
{
	char *copy = strdup(text), *save = NULL, *line, *eq;
	int first = 1;

	putchar('{');
	for (line = strtok_r(copy, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		printf("%s", first ? "" : ", ");
		json_string(line);
		printf(": ");
		if (is_number(eq + 1))
			printf("%s", eq + 1);
		else
			json_string(eq + 1);
		first = 0;
	}
	putchar('}');
	free(copy);
}

static void text_lines(const char *queue, const char *text)
{
	char *copy = strdup(text), *save = NULL, *line;

	for (line = strtok_r(copy, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		printf("%s%s%s\n", queue ? queue : "", queue ? " " : "", line);
	free(copy);
}

static int print_queue(const char *queue, int json, int prefix,
		       int *printed)
{
	char *path = cli_path(queue, "stats"), *text;
	int rc = cli_read_file(path, &text, NULL);

	free(path);
	if (rc)
		return cli_fail(queue, -rc, -rc == ENOENT ? "no such queue" :
				  NULL);
	if (json) {
		printf("%s", *printed ? ",\n " : "");
		json_string(queue);
		printf(": ");
		json_object(text);
	} else {
		text_lines(prefix ? queue : NULL, text);
	}
	free(text);
	(*printed)++;
	return 0;
}

int cli_cmd_stats(int argc, char **argv)
{
	char **names = NULL, **given;
	int json = 0, i, n = 0, rc = 0, worst = 0, printed = 0;

	given = calloc((size_t)argc, sizeof *given);
	for (i = 1; given && i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (argv[i][0] == '-')
			return cli_usage("stats", "unknown option '%s'",
					   argv[i]);
		else
			given[n++] = argv[i];
	}
	if (!given)
		return cli_fail("stats", ENOMEM, NULL);
	if (n == 0 && (n = cli_queues(&names)) < 0)
		return cli_fail(cli_mount, -n, NULL);
	if (json)
		printf("{");
	for (i = 0; i < n; i++) {
		rc = print_queue(names ? names[i] : given[i], json,
				 names || n > 1, &printed);
		if (rc > worst)
			worst = rc;
	}
	if (json)
		printf("}\n");
	cli_names_free(names);
	free(given);
	return worst;
}
