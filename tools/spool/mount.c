/*
 * mount.c - which spoolfs mount the CLI works on, and the paths in it.
 *
 * A mount counts as spoolfs when /proc/self/mountinfo lists it with the
 * filesystem type "fuse.spoolfs" (libfuse sets the subtype from the
 * daemon's name), or type "fuse" with the source "spoolfs" (the daemon
 * mounts with fsname=spoolfs), and its .metrics file answers stat(): a
 * mount whose daemon died answers ENOTCONN, and says so.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

char *cli_mount;

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] && s[3]) {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
					(s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/* Splits one mountinfo line into its mount point, fstype and source.
 * Fields: id parent dev root MOUNTPOINT opts [optional...] - TYPE SOURCE */
static int parse_line(char *line, char **mnt, char **type, char **source)
{
	char *save = NULL, *f;
	int i;

	*mnt = *type = *source = NULL;
	for (i = 0, f = strtok_r(line, " \n", &save); f;
	     f = strtok_r(NULL, " \n", &save), i++) {
		if (i == 4)
			*mnt = f;
		if (i > 5 && strcmp(f, "-") == 0) {
			*type = strtok_r(NULL, " \n", &save);
			*source = strtok_r(NULL, " \n", &save);
			break;
		}
	}
	if (!*mnt || !*type || !*source)
		return -1;
	unescape(*mnt);
	unescape(*source);
	return 0;
}

static int is_spoolfs(const char *type, const char *source)
{
	if (strcmp(type, "fuse.spoolfs") == 0)
		return 1;
	return strncmp(type, "fuse", 4) == 0 && strcmp(source, "spoolfs") == 0;
}

/* Returns the number of spoolfs mounts at want (or anywhere, when want is
 * NULL); *found gets a malloc'ed copy of the last one's mount point. */
static int scan_mountinfo(const char *want, char **found)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *mnt, *type, *source;
	size_t cap = 0;
	int n = 0;

	*found = NULL;
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		if (parse_line(line, &mnt, &type, &source) < 0 ||
		    !is_spoolfs(type, source))
			continue;
		if (want && strcmp(mnt, want) != 0)
			continue;
		free(*found);
		*found = strdup(mnt);
		n++;
	}
	free(line);
	fclose(f);
	return n;
}

/* Checks that dir is a live spoolfs mount; sets cli_mount. */
static int check_mount(const char *dir)
{
	char real[PATH_MAX], *found, *metrics;
	struct stat st;
	int n;

	if (!realpath(dir, real))
		return cli_fail(dir, errno, errno == ENOTCONN ?
				  "dead mount (its daemon died); clear it with "
				  "fusermount3 -u -z" : NULL);
	n = scan_mountinfo(real, &found);
	free(found);
	if (n <= 0)
		return cli_fail(dir, ENODEV, "not a spoolfs mount");
	if (asprintf(&metrics, "%s/.metrics", real) < 0)
		return cli_fail(dir, ENOMEM, NULL);
	n = stat(metrics, &st) < 0 ? errno : 0;
	free(metrics);
	if (n)
		return cli_fail(dir, n, n == ENOTCONN ? "dead mount (its "
				  "daemon died); clear it with fusermount3 -u "
				  "-z" : "not a live spoolfs mount");
	cli_mount = strdup(real);
	return cli_mount ? 0 : cli_fail(dir, ENOMEM, NULL);
}

int cli_mount_find(const char *given)
{
	const char *env = getenv("SPOOL_MOUNT");
	char *only = NULL;
	int n, rc;

	if (given && *given)
		return check_mount(given);
	if (env && *env)
		return check_mount(env);
	n = scan_mountinfo(NULL, &only);
	if (n != 1) {
		free(only);
		return cli_fail("mount", ENOENT, n > 1 ?
				  "several spoolfs mounts; say which with "
				  "--mount DIR or SPOOL_MOUNT" :
				  "no spoolfs mount found; give --mount DIR "
				  "or set SPOOL_MOUNT");
	}
	rc = check_mount(only);
	free(only);
	return rc;
}

char *cli_path(const char *queue, const char *rest)
{
	char *p = NULL;
	int n;

	if (rest)
		n = asprintf(&p, "%s/%s/%s", cli_mount, queue, rest);
	else
		n = asprintf(&p, "%s/%s", cli_mount, queue);
	if (n < 0) {
		cli_err(queue, ENOMEM, NULL);
		exit(CLI_EXIT_IO);
	}
	return p;
}

/* DESIGN.md §2: 1-200 bytes of [A-Za-z0-9._-], not starting with '.'. */
static int name_ok(const char *q)
{
	size_t n = strlen(q);

	if (n == 0 || n > 200 || q[0] == '.')
		return 0;
	return strspn(q, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		      "0123456789._-") == n;
}

int cli_queue_check(const char *queue)
{
	struct stat st;
	char *p;
	int err;

	if (!name_ok(queue))
		return cli_fail(queue, EINVAL, "bad queue name (1-200 of "
				  "[A-Za-z0-9._-], not starting with '.')");
	p = cli_path(queue, NULL);
	err = stat(p, &st) < 0 ? errno : 0;
	free(p);
	if (err == ENOENT)
		return cli_fail(queue, err, "no such queue");
	return err ? cli_fail(queue, err, NULL) : 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cli_queues(char ***names)
{
	DIR *d = opendir(cli_mount);
	struct dirent *e;
	char **v = NULL, **nv;
	int n = 0;

	*names = NULL;
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		nv = realloc(v, sizeof *v * (size_t)(n + 2));
		if (!nv)
			break;
		v = nv;
		v[n++] = strdup(e->d_name);
		v[n] = NULL;
	}
	closedir(d);
	if (v)
		qsort(v, (size_t)n, sizeof *v, name_cmp);
	*names = v ? v : calloc(1, sizeof *v);
	return n;
}

void cli_names_free(char **names)
{
	char **p;

	for (p = names; p && *p; p++)
		free(*p);
	free(names);
}
