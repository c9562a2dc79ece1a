/*
 * top.c - spool top: a live view of every queue, refreshed each second:
 * visible, delayed, leased, dead-lettered, push and ack rates, and a
 * sparkline of each rate over the last minute, from the counters in
 * QUEUE/stats. Plain ANSI (alternate screen, cursor home), so it works over
 * ssh without terminfo; 'q' quits. When stdout is not a terminal it prints
 * plain frames instead (-n N frames, then exit), which scripts and tests
 * can read.
 */
#include <errno.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define HISTORY 60	/* samples kept: one a second, the last minute */
#define MAX_QUEUES 512

const char cli_help_top[] =
	"usage: spool top [-d SECONDS] [-n FRAMES]\n\n"
	"A live full-screen view of every queue: visible, delayed, leased,\n"
	"dead-lettered, push and ack rates, and a sparkline of both rates over\n"
	"the last minute. Refreshes every second (-d), q quits. When stdout is\n"
	"not a terminal, prints plain frames; -n stops after that many.\n";

struct top_queue {
	char name[256];
	long long visible, delayed, leased, dead, pushed, acked;
	double push_rate[HISTORY], ack_rate[HISTORY];	/* [0] newest */
	int seen;		/* counters read at least once */
	int alive;		/* listed in this frame */
};

struct top {
	struct top_queue q[MAX_QUEUES];
	int n;
	int tty, utf8;
	double last;
};

static volatile sig_atomic_t quit;
static struct termios saved_tio;
static int tio_saved;

static void on_quit(int sig)
{
	(void)sig;
	quit = 1;
}

static long long stat_ll(const char *text, const char *key)
{
	char *v = cli_kv_get(text, key);
	long long n = v ? atoll(v) : 0;

	free(v);
	return n;
}

static struct top_queue *find_queue(struct top *t, const char *name)
{
	int i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->q[i].name, name) == 0)
			return &t->q[i];
	if (t->n == MAX_QUEUES)
		return NULL;
	memset(&t->q[t->n], 0, sizeof t->q[0]);
	snprintf(t->q[t->n].name, sizeof t->q[0].name, "%s", name);
	return &t->q[t->n++];
}

/* Reads one queue's counters and pushes a rate sample (per second). */
static void sample_queue(struct top_queue *q, double dt)
{
	char *path = cli_path(q->name, "stats"), *text;
	long long pushed, acked;

	q->alive = cli_read_file(path, &text, NULL) == 0;
	free(path);
	if (!q->alive)
		return;
	pushed = stat_ll(text, "pushed_total");
	acked = stat_ll(text, "acked_total");
	memmove(q->push_rate + 1, q->push_rate, sizeof(double) * (HISTORY - 1));
	memmove(q->ack_rate + 1, q->ack_rate, sizeof(double) * (HISTORY - 1));
	q->push_rate[0] = q->seen && dt > 0 ? (double)(pushed - q->pushed) / dt
					    : 0;
	q->ack_rate[0] = q->seen && dt > 0 ? (double)(acked - q->acked) / dt
					   : 0;
	q->visible = stat_ll(text, "visible");
	q->delayed = stat_ll(text, "delayed");
	q->leased = stat_ll(text, "leased");
	q->dead = stat_ll(text, "dead_total");
	q->pushed = pushed;
	q->acked = acked;
	q->seen = 1;
	free(text);
}

static void sample(struct top *t)
{
	double now = cli_now(), dt = t->last ? now - t->last : 0;
	struct top_queue *q;
	char **names, **p;
	int i;

	t->last = now;
	for (i = 0; i < t->n; i++)
		t->q[i].alive = 0;
	if (cli_queues(&names) < 0)
		return;
	for (p = names; *p; p++) {
		q = find_queue(t, *p);
		if (q)
			sample_queue(q, dt);
	}
	cli_names_free(names);
}

/* width cells over the last minute, each the mean of its samples, scaled
 * to the largest cell. */
static void sparkline(const struct top *t, const double *rate, int width)
{
	static const char *blocks[] = { " ", "▁", "▂", "▃", "▄", "▅", "▆",
					 "▇", "█" };
	static const char ascii[] = " .:-=+*#@";
	double cell[HISTORY] = { 0 }, max = 0;
	int i, k, per = (HISTORY + width - 1) / width;

	for (i = 0; i < width; i++) {
		for (k = 0; k < per && i * per + k < HISTORY; k++)
			cell[i] += rate[i * per + k] / per;
		if (cell[i] > max)
			max = cell[i];
	}
	/* oldest on the left */
	for (i = width - 1; i >= 0; i--) {
		k = max > 0 ? (int)(cell[i] / max * 8 + 0.5) : 0;
		if (cell[i] > 0 && k == 0)
			k = 1;
		if (t->utf8)
			fputs(blocks[k], stdout);
		else
			putchar(ascii[k]);
	}
}

static void screen_size(int *rows, int *cols)
{
	struct winsize ws;

	*rows = 24;
	*cols = 80;
	if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

static void draw(struct top *t)
{
	const char *eol = t->tty ? "\033[K\n" : "\n";
	int rows, cols, width, i, shown = 0;
	time_t now = time(NULL);
	char clock[16];

	screen_size(&rows, &cols);
	width = (cols - 82) / 2;
	width = width > HISTORY ? HISTORY : width < 10 ? 10 : width;
	strftime(clock, sizeof clock, "%H:%M:%S", localtime(&now));
	if (t->tty)
		fputs("\033[H", stdout);
	printf("spool top  %s  %s  (q quits)%s%s", cli_mount, clock, eol,
	       eol);
	printf("%-20s %9s %8s %8s %7s %9s %9s  %-*s %-*s%s", "QUEUE",
	       "VISIBLE", "DELAYED", "LEASED", "DEAD", "PUSH/s", "ACK/s",
	       width, "PUSH (1 min)", width, "ACK (1 min)", eol);
	for (i = 0; i < t->n && (!t->tty || shown < rows - 4); i++) {
		struct top_queue *q = &t->q[i];

		if (!q->alive)
			continue;
		printf("%-20.20s %9lld %8lld %8lld %7lld %9.1f %9.1f  ",
		       q->name, q->visible, q->delayed, q->leased, q->dead,
		       q->push_rate[0], q->ack_rate[0]);
		sparkline(t, q->push_rate, width);
		putchar(' ');
		sparkline(t, q->ack_rate, width);
		fputs(eol, stdout);
		shown++;
	}
	if (t->tty)
		fputs("\033[J", stdout);
	else
		putchar('\n');
	fflush(stdout);
}

static void term_enter(void)
{
	struct termios raw;

	if (isatty(0) && tcgetattr(0, &saved_tio) == 0) {
		raw = saved_tio;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		tio_saved = tcsetattr(0, TCSANOW, &raw) == 0;
	}
	fputs("\033[?1049h\033[?25l\033[H\033[2J", stdout);
}

static void term_leave(void)
{
	if (tio_saved)
		tcsetattr(0, TCSANOW, &saved_tio);
	fputs("\033[?25h\033[?1049l", stdout);
	fflush(stdout);
}

/* Waits up to seconds for a key; returns 1 when it asks to quit. Once
 * stdin is at end of file (/dev/null, a closed pipe) it only sleeps. */
static int wait_key(double seconds)
{
	static int stdin_eof;
	struct pollfd p = { 0, POLLIN, 0 };
	double end = cli_now() + seconds;
	char c;

	while (!quit && cli_now() < end) {
		if (poll(&p, stdin_eof ? 0 : 1,
			 (int)((end - cli_now()) * 1000) + 1) <= 0)
			continue;
		if (read(0, &c, 1) != 1) {
			stdin_eof = 1;
			continue;
		}
		if (c == 'q' || c == 'Q' || c == 3)
			return 1;
		if (c == 12)
			fputs("\033[2J", stdout);
	}
	return quit;
}

static int parse(int argc, char **argv, double *delay, long *frames)
{
	char *end;
	int o;

	while ((o = getopt(argc, argv, "d:n:")) != -1) {
		if (o == 'd' && (cli_parse_seconds(optarg, delay) < 0 ||
				 *delay < 0.1))
			return cli_usage("top", "bad -d '%s'", optarg);
		if (o == 'n' && ((*frames = strtol(optarg, &end, 10)) < 1 ||
				 *end))
			return cli_usage("top", "bad -n '%s'", optarg);
		if (o == '?')
			return CLI_EXIT_USAGE;
	}
	return optind == argc ? 0 : cli_usage("top", "no arguments expected");
}

int cli_cmd_top(int argc, char **argv)
{
	static struct top t;
	double delay = 1;
	long frames = 0, n;
	int rc;

	rc = parse(argc, argv, &delay, &frames);
	if (rc)
		return rc;
	setlocale(LC_CTYPE, "");
	t.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
	t.tty = isatty(1);
	signal(SIGINT, on_quit);
	signal(SIGTERM, on_quit);
	if (t.tty)
		term_enter();
	for (n = 0; !quit && (!frames || n < frames); n++) {
		sample(&t);
		draw(&t);
		if ((frames && n + 1 == frames) || wait_key(delay))
			break;
	}
	if (t.tty)
		term_leave();
	return CLI_EXIT_OK;
}
