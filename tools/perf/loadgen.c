/*
 * loadgen.c - the one load generator tools/bench drives every contender
 * with: N client threads doing the same workload through a mount (spoolfs,
 * null FUSE), a plain directory (maildir), beanstalkd's text protocol or
 * Redis's RESP over TCP on 127.0.0.1.
 *
 *   loadgen MODE TARGET [-t THREADS] [-n OPS] [-s BYTES] [-b BATCH]
 *                       [-d SECONDS] [-T SECONDS] [-q NAME] [-p DAEMON_PID]
 *
 * TARGET is one of
 *   fs:DIR              DIR is a queue directory of a mount (MNT/q)
 *   maildir:DIR         DIR holds tmp/ new/ cur/ (created if missing)
 *   maildir-fsync:DIR   the same, with fsync of file and directory
 *   beanstalk:PORT      beanstalkd on 127.0.0.1:PORT, tube NAME (-q)
 *   redis:PORT          redis-server on 127.0.0.1:PORT, list NAME (-q, "q")
 *   sqs:PORT            spoolfs's SQS endpoint on 127.0.0.1:PORT, queue NAME
 *                       (-q): AWS JSON 1.0 over keep-alive HTTP/1.1; push =
 *                       SendMessage, lines = SendMessageBatch of BATCH (at
 *                       most 10), consume = ReceiveMessage(1) +
 *                       DeleteMessage, wake = a long poll (WaitTimeSeconds
 *                       20) woken by a SendMessage of another connection
 *
 * MODE is one of
 *   create   push OPS messages, each a new file (fs) or one put/LPUSH/rename
 *   push     the same through MNT/q/push (fs); the same as create elsewhere
 *   consume  lease + read + ack OPS messages that are already queued
 *   fill     queue OPS messages the fastest way (fs: `lines` in batches,
 *            redis: LPUSH of 16), untimed set-up for consume, memory, restart
 *   drain    take OPS messages the fastest way (fs: read `pop`)
 *   lines    batch push: OPS lines of BYTES-1 bytes + "\n", BATCH lines per
 *            open of MNT/q/lines (redis: one LPUSH of BATCH values)
 *   wake     push -> parked reader latency: one reader blocks on an empty
 *            queue, a producer pushes a timestamp, OPS times; p50/p99.
 *            fs -P DIR: the producer pushes through DIR/push, the same
 *            queue on another mount (another host of a Redis store)
 *   park     THREADS readers block on `next` of an empty queue; reports the
 *            daemon's (-p) Threads and VmRSS before and while they are
 *            parked, then pushes THREADS messages to release them
 *   waitmount  wait until DIR (fs:DIR) is a mount point; prints the time
 *   lease    the lease alone (fs): open `next`, read, close, OPS times; the
 *            messages stay leased (no fgetxattr, no unlink)
 *   soak     memory soak (fs, -p PID): for -d SECONDS, THREADS clients mix
 *            pushes and consumes (next + xattr + unlink) so that the queue
 *            climbs to OPS messages, drains to 0 and climbs again; VmRSS
 *            of the daemon is sampled every 100 ms; then `purge` is
 *            written to ctl and VmRSS is watched for -w SECONDS more
 *
 * -d SECONDS ends create, push, consume and drain after that long (a
 * normal end: the rate is what was done in that time; OPS stays the cap).
 *
 * Output: one line of key=value pairs on stdout (ops, secs, rate, errors,
 * and per mode p50_us/p99_us or the /proc figures). Exit 0 when every
 * operation succeeded, 2 when any failed (the first error is in
 * error="..."), 3 when the time limit (-T, default 300 s) cut it short.
 * Every loop is bounded by OPS and by the time limit.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

enum target { T_FS, T_MAILDIR, T_BEANSTALK, T_REDIS, T_SQS };
enum mode { M_CREATE, M_PUSH, M_CONSUME, M_FILL, M_DRAIN, M_LINES, M_WAKE,
	    M_PARK, M_WAITMOUNT, M_LEASE, M_SOAK };

static const char *const mode_names[] = {
	"create", "push", "consume", "fill", "drain", "lines", "wake", "park",
	"waitmount", "lease", "soak",
};

static struct {
	enum target target;
	enum mode mode;
	int fsync;
	const char *dir;
	int port;
	int threads;
	long ops;
	size_t size;
	long batch;
	double limit;
	double duration;
	const char *qname;
	int daemon_pid;
	double settle;           /* soak: seconds watched after the purge */
	const char *push_dir;    /* wake, fs: the producer's queue directory */
} cfg = { .threads = 1, .ops = 1000, .size = 128, .batch = 10000,
	  .limit = 300, .qname = "q" };

static struct {
	_Atomic long left;       /* operations not yet claimed by a thread */
	_Atomic long done;
	_Atomic long errors;
	_Atomic int stop;
	_Atomic long retries;    /* EAGAIN on a queue that should hold more */
	pthread_mutex_t lock;
	char first_error[256];   /* protected by lock */
	double t_start, deadline;
} run = { .lock = PTHREAD_MUTEX_INITIALIZER };

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };

	nanosleep(&ts, NULL);
}

/* Records an operation's failure; the first one is reported. Always
 * returns -1 so callers can `return fail(...)`. */
static int fail(const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(&run.errors, 1) == 0) {
		pthread_mutex_lock(&run.lock);
		va_start(ap, fmt);
		vsnprintf(run.first_error, sizeof(run.first_error), fmt, ap);
		va_end(ap);
		pthread_mutex_unlock(&run.lock);
	}
	atomic_store(&run.stop, 1);
	return -1;
}

/* Claims the next operation; 0 when all are claimed, time is up or an
 * error stopped the run. */
static int claim_op(void)
{
	if (atomic_load(&run.stop))
		return 0;
	if (now_s() > run.deadline) {
		atomic_store(&run.stop, 2);
		return 0;
	}
	if (cfg.duration > 0 && now_s() > run.t_start + cfg.duration)
		return 0;
	return atomic_fetch_sub(&run.left, 1) > 0;
}

static void fill_body(char *body, size_t len, long tag)
{
	char num[32];
	int n = snprintf(num, sizeof(num), "%ld:", tag);

	memset(body, 'a' + tag % 26, len);
	memcpy(body, num, (size_t)n < len ? (size_t)n : len);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ------------------------------------------------------- a file tree */

/* Opens path for writing, writes body, closes: one push through a mount
 * (a new name or `push`). close() reports the commit. */
static int fs_write_file(const char *path, int flags, const char *body,
			 size_t len)
{
	int fd = open(path, O_WRONLY | flags, 0644);

	if (fd < 0)
		return fail("open %s: %s", path, strerror(errno));
	if (write_all(fd, body, len) < 0) {
		int e = errno;

		close(fd);
		return fail("write %s: %s", path, strerror(e));
	}
	if (close(fd) < 0)
		return fail("close %s: %s", path, strerror(errno));
	return 0;
}

static int fs_push_one(int tid, long i, const char *body, size_t len)
{
	char path[PATH_MAX];

	if (cfg.mode == M_CREATE) {
		snprintf(path, sizeof(path), "%s/m%d-%ld", cfg.dir, tid, i);
		return fs_write_file(path, O_CREAT | O_EXCL, body, len);
	}
	snprintf(path, sizeof(path), "%s/push",
		 cfg.mode == M_WAKE && cfg.push_dir ? cfg.push_dir : cfg.dir);
	return fs_write_file(path, 0, body, len);
}

/*
 * Reads the body behind an open `next` into buf (one READ when the body
 * fits, as a client that knows max_size does). Returns its length, or -1
 * with errno set.
 */
static ssize_t read_body(int fd, char *buf, size_t cap)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		got += (size_t)n;
		if (n == 0 || got < cap)
			return (ssize_t)got;
		got = 0; /* a body longer than buf: keep the tail only */
	}
}

/* Lease + read + ack through the tree: read next, fgetxattr the id,
 * unlink leased/<id>. blocking: wait on an empty queue (wake, park). */
static ssize_t fs_consume_one(char *buf, size_t cap, int blocking)
{
	char path[PATH_MAX], id[64];
	int fd, tries = 0;
	ssize_t n, idlen;

	snprintf(path, sizeof(path), "%s/next", cfg.dir);
again:
	fd = open(path, O_RDONLY | (blocking ? 0 : O_NONBLOCK));
	if (fd < 0)
		return fail("open %s: %s", path, strerror(errno));
	n = read_body(fd, buf, cap);
	if (n < 0 && errno == EAGAIN && tries++ < 2000 && !run.stop &&
	    now_s() < run.deadline) {
		close(fd);
		atomic_fetch_add(&run.retries, 1);
		sleep_s(0.001);
		goto again;
	}
	if (n < 0) {
		int e = errno;

		close(fd);
		return fail("read %s: %s", path, strerror(e));
	}
	idlen = fgetxattr(fd, "user.spool.id", id, sizeof(id) - 1);
	if (idlen <= 0) {
		int e = errno;

		close(fd);
		return fail("fgetxattr user.spool.id on next: %s", strerror(e));
	}
	id[idlen] = '\0';
	snprintf(path, sizeof(path), "%s/leased/%s", cfg.dir, id);
	if (unlink(path) < 0) {
		int e = errno;

		close(fd);
		return fail("unlink %s: %s", path, strerror(e));
	}
	close(fd);
	return n;
}

/* Reads `pop` once: take and delete. */
static int fs_pop_one(char *buf, size_t cap)
{
	char path[PATH_MAX];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/pop", cfg.dir);
	fd = open(path, O_RDONLY | O_NONBLOCK);
	if (fd < 0)
		return fail("open %s: %s", path, strerror(errno));
	n = read_body(fd, buf, cap);
	close(fd);
	if (n < 0)
		return fail("read %s: %s", path, strerror(errno));
	return 0;
}

/* One open of `lines`: count lines of cfg.size - 1 bytes plus "\n". */
static int fs_lines_batch(long first, long count)
{
	size_t llen = cfg.size < 2 ? 2 : cfg.size, cap = 1 << 20;
	char path[PATH_MAX], *buf = malloc(cap), *p;
	int fd, rc = 0;
	long i;

	if (!buf)
		return fail("out of memory");
	snprintf(path, sizeof(path), "%s/lines", cfg.dir);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0) {
		free(buf);
		return fail("open %s: %s", path, strerror(errno));
	}
	for (i = 0, p = buf; i < count && rc == 0; i++) {
		fill_body(p, llen - 1, first + i);
		p[llen - 1] = '\n';
		p += llen;
		if ((size_t)(p - buf) + llen > cap || i + 1 == count) {
			if (write_all(fd, buf, (size_t)(p - buf)) < 0)
				rc = fail("write %s: %s", path, strerror(errno));
			p = buf;
		}
	}
	if (close(fd) < 0 && rc == 0)
		rc = fail("close %s: %s", path, strerror(errno));
	free(buf);
	return rc;
}

/* ------------------------------------------------------------ maildir */

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Deliver: write tmp/<name>, (fsync), rename into new/, (fsync new/). */
static int md_push_one(int tid, long i, const char *body, size_t len)
{
	char tmp[PATH_MAX], dst[PATH_MAX], newdir[PATH_MAX];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/tmp/%d.%d.%ld", cfg.dir, (int)getpid(),
		 tid, i);
	snprintf(dst, sizeof(dst), "%s/new/%d.%d.%ld", cfg.dir, (int)getpid(),
		 tid, i);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0)
		return fail("open %s: %s", tmp, strerror(errno));
	if (write_all(fd, body, len) < 0 || (cfg.fsync && fsync(fd) < 0)) {
		int e = errno;

		close(fd);
		return fail("write %s: %s", tmp, strerror(e));
	}
	if (close(fd) < 0 || rename(tmp, dst) < 0)
		return fail("deliver %s: %s", dst, strerror(errno));
	snprintf(newdir, sizeof(newdir), "%s/new", cfg.dir);
	if (cfg.fsync && fsync_dir(newdir) < 0)
		return fail("fsync %s: %s", newdir, strerror(errno));
	return 0;
}

/* A thread's view of new/: names listed once, tried in turn. */
struct md_list {
	char (*names)[64];
	int n, pos, tried;
};

static int md_relist(struct md_list *l, int tid)
{
	char dir[PATH_MAX];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/new", cfg.dir);
	d = opendir(dir);
	if (!d)
		return fail("opendir %s: %s", dir, strerror(errno));
	l->n = 0;
	while (l->n < 4096 && (de = readdir(d)))
		if (de->d_name[0] != '.' && strlen(de->d_name) < 64)
			strcpy(l->names[l->n++], de->d_name);
	closedir(d);
	/* Threads start at different places so they rarely race a rename. */
	l->pos = l->n ? (l->n / cfg.threads) * tid % l->n : 0;
	l->tried = 0;
	return 0;
}

/* Claim (rename new/ -> cur/), read, unlink; (fsync cur/ for the ack). */
static ssize_t md_consume_one(struct md_list *l, int tid, char *buf,
			      size_t cap)
{
	char src[PATH_MAX + 80], dst[PATH_MAX + 80], cur[PATH_MAX];
	int relists = 0, fd, i;
	ssize_t n;

	snprintf(cur, sizeof(cur), "%s/cur", cfg.dir);
	for (;;) {
		if (l->tried == l->n) {
			if (md_relist(l, tid) < 0)
				return -1;
			if (l->n == 0 && relists++ > 1000)
				return fail("maildir: new/ stays empty");
			if (l->n == 0) {
				sleep_s(0.001);
				continue;
			}
		}
		i = (l->pos + l->tried++) % l->n;
		snprintf(src, sizeof(src), "%s/new/%s", cfg.dir, l->names[i]);
		snprintf(dst, sizeof(dst), "%s/%s", cur, l->names[i]);
		if (rename(src, dst) == 0)
			break;
		if (errno != ENOENT)
			return fail("rename %s: %s", src, strerror(errno));
	}
	fd = open(dst, O_RDONLY);
	if (fd < 0)
		return fail("open %s: %s", dst, strerror(errno));
	n = read_body(fd, buf, cap);
	close(fd);
	if (n < 0 || unlink(dst) < 0)
		return fail("read/unlink %s: %s", dst, strerror(errno));
	if (cfg.fsync && fsync_dir(cur) < 0)
		return fail("fsync %s: %s", cur, strerror(errno));
	return n;
}

/* --------------------------------------------------------- TCP peers */

struct conn {
	int fd;
	char *buf;       /* read buffer */
	size_t cap, len, pos;
};

static int bs_tube(struct conn *c);

static int conn_open(struct conn *c)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)cfg.port) };
	int one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* loopback only */
	c->cap = (1 << 20) + cfg.size * 2;
	c->buf = malloc(c->cap);
	c->len = c->pos = 0;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (!c->buf || c->fd < 0)
		return fail("socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return fail("connect 127.0.0.1:%d: %s", cfg.port,
			    strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return cfg.target == T_BEANSTALK ? bs_tube(c) : 0;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
}

/* Makes at least need bytes available at c->buf + c->pos. */
static int conn_need(struct conn *c, size_t need)
{
	if (c->len - c->pos >= need)
		return 0;
	if (c->pos > 0) {
		memmove(c->buf, c->buf + c->pos, c->len - c->pos);
		c->len -= c->pos;
		c->pos = 0;
	}
	if (need > c->cap)
		return fail("reply larger than %zu bytes", c->cap);
	while (c->len < need) {
		ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail("read from port %d: %s", cfg.port,
				    n == 0 ? "connection closed"
					   : strerror(errno));
		c->len += (size_t)n;
	}
	return 0;
}

/* Reads one "\r\n"-terminated line; returns it NUL-terminated (in buf). */
static char *conn_line(struct conn *c)
{
	for (size_t need = 2;; need = c->len - c->pos + 1) {
		char *s, *e;

		if (conn_need(c, need) < 0)
			return NULL;
		s = c->buf + c->pos;
		e = memmem(s, c->len - c->pos, "\r\n", 2);
		if (e) {
			*e = '\0';
			c->pos = (size_t)(e + 2 - c->buf);
			return s;
		}
	}
}

/* Skips (or copies into out) len bytes of payload and its "\r\n". */
static int conn_payload(struct conn *c, size_t len, char *out, size_t cap)
{
	if (conn_need(c, len + 2) < 0)
		return -1;
	if (out)
		memcpy(out, c->buf + c->pos, len < cap ? len : cap);
	c->pos += len + 2;
	return 0;
}

static int conn_send(struct conn *c, const char *buf, size_t len)
{
	if (write_all(c->fd, buf, len) < 0)
		return fail("write to port %d: %s", cfg.port, strerror(errno));
	return 0;
}

/* ------------------------------------------------- beanstalkd protocol */

/* use + watch the tube NAME, ignore "default". */
static int bs_tube(struct conn *c)
{
	static const char *const fmt[] = { "use %s\r\n", "watch %s\r\n",
					   "ignore default\r\n" };
	char cmd[300], *line;

	for (int i = 0; i < 3; i++) {
		snprintf(cmd, sizeof(cmd), fmt[i], cfg.qname);
		if (conn_send(c, cmd, strlen(cmd)) < 0 || !(line = conn_line(c)))
			return -1;
		if (strncmp(line, "USING", 5) != 0 &&
		    strncmp(line, "WATCHING", 8) != 0)
			return fail("beanstalkd %s: %s", fmt[i], line);
	}
	return 0;
}

static int bs_put(struct conn *c, char *scratch, const char *body,
		  size_t len)
{
	int h = sprintf(scratch, "put 0 0 60 %zu\r\n", len);
	char *line;

	memcpy(scratch + h, body, len);
	memcpy(scratch + h + len, "\r\n", 2);
	if (conn_send(c, scratch, h + len + 2) < 0 || !(line = conn_line(c)))
		return -1;
	if (strncmp(line, "INSERTED ", 9) != 0)
		return fail("beanstalkd put: %s", line);
	return 0;
}

/* reserve(-with-timeout) + delete. Returns the body length. */
static ssize_t bs_consume(struct conn *c, char *out, size_t cap, int wait)
{
	char cmd[64], *line;
	unsigned long long id;
	size_t len;

	snprintf(cmd, sizeof(cmd), "reserve-with-timeout %d\r\n", wait);
	if (conn_send(c, cmd, strlen(cmd)) < 0 || !(line = conn_line(c)))
		return -1;
	if (sscanf(line, "RESERVED %llu %zu", &id, &len) != 2)
		return fail("beanstalkd reserve: %s", line);
	if (conn_payload(c, len, out, cap) < 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "delete %llu\r\n", id);
	if (conn_send(c, cmd, strlen(cmd)) < 0 || !(line = conn_line(c)))
		return -1;
	if (strcmp(line, "DELETED") != 0)
		return fail("beanstalkd delete: %s", line);
	return (ssize_t)len;
}

/* ------------------------------------------------------ Redis (RESP) */

/* Appends a RESP bulk string to p. */
static char *resp_bulk(char *p, const char *s, size_t len)
{
	p += sprintf(p, "$%zu\r\n", len);
	memcpy(p, s, len);
	memcpy(p + len, "\r\n", 2);
	return p + len + 2;
}

/* Reads one reply. For a bulk string, copies it into out and returns its
 * length (-2 for a nil); for an integer returns 0 and stores it. */
static ssize_t resp_reply(struct conn *c, char *out, size_t cap,
			  long long *num)
{
	char *line = conn_line(c);
	long long n;

	if (!line)
		return -1;
	switch (line[0]) {
	case ':':
		if (num)
			*num = atoll(line + 1);
		return 0;
	case '+':
		return 0;
	case '$':
	case '*':
		n = atoll(line + 1);
		if (n < 0)
			return -2;
		if (line[0] == '*')
			return fail("redis: unexpected array reply");
		if (conn_payload(c, (size_t)n, out, cap) < 0)
			return -1;
		return (ssize_t)n;
	default:
		return fail("redis: %s", line);
	}
}

/* LPUSH q v[0..n): one command. */
static int rd_lpush(struct conn *c, char *scratch, const char *const *vals,
		    size_t len, long n)
{
	char *p = scratch;
	long long count;

	p += sprintf(p, "*%ld\r\n", n + 2);
	p = resp_bulk(p, "LPUSH", 5);
	p = resp_bulk(p, cfg.qname, strlen(cfg.qname));
	for (long i = 0; i < n; i++)
		p = resp_bulk(p, vals[i], len);
	if (conn_send(c, scratch, (size_t)(p - scratch)) < 0)
		return -1;
	return resp_reply(c, NULL, 0, &count) < 0 ? -1 : 0;
}

/* BLMOVE q q:leased RIGHT LEFT wait, then LREM q:leased 1 body. */
static ssize_t rd_consume(struct conn *c, char *scratch, char *out,
			  size_t cap, int wait)
{
	char *p = scratch, num[16], leased[256];
	ssize_t len;
	long long removed = 0;

	snprintf(num, sizeof(num), "%d", wait);
	snprintf(leased, sizeof(leased), "%s:leased", cfg.qname);
	p += sprintf(p, "*6\r\n");
	p = resp_bulk(p, "BLMOVE", 6);
	p = resp_bulk(p, cfg.qname, strlen(cfg.qname));
	p = resp_bulk(p, leased, strlen(leased));
	p = resp_bulk(p, "RIGHT", 5);
	p = resp_bulk(p, "LEFT", 4);
	p = resp_bulk(p, num, strlen(num));
	if (conn_send(c, scratch, (size_t)(p - scratch)) < 0)
		return -1;
	len = resp_reply(c, out, cap, NULL);
	if (len == -2)
		return fail("redis BLMOVE: timed out on an empty list");
	if (len < 0)
		return -1;
	p = scratch;
	p += sprintf(p, "*4\r\n");
	p = resp_bulk(p, "LREM", 4);
	p = resp_bulk(p, leased, strlen(leased));
	p = resp_bulk(p, "1", 1);
	p = resp_bulk(p, out, (size_t)len);
	if (conn_send(c, scratch, (size_t)(p - scratch)) < 0 ||
	    resp_reply(c, NULL, 0, &removed) < 0)
		return -1;
	if (removed != 1)
		return fail("redis LREM removed %lld", removed);
	return len;
}

/* ------------------------------------------------------ SQS endpoint */

/*
 * spoolfs's SQS endpoint (sqs:PORT), AWS JSON 1.0 over one keep-alive
 * HTTP/1.1 connection per thread. Bodies are fill_body()'s (digits, ':'
 * and letters, or the wake timestamp and spaces): nothing to escape.
 */

/* POSTs action with JSON body json; the response body (NUL-terminated)
 * into out. Returns its length, or -1 (a status other than 200 fails). */
static ssize_t sqs_call(struct conn *c, char *req, const char *action,
			const char *json, size_t jlen, char *out, size_t cap)
{
	size_t clen = 0;
	int status = 0;
	char *line;
	int n = sprintf(req, "POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
			"Content-Type: application/x-amz-json-1.0\r\n"
			"X-Amz-Target: AmazonSQS.%s\r\n"
			"Content-Length: %zu\r\n\r\n", cfg.port, action, jlen);

	memmove(req + n, json, jlen);
	if (conn_send(c, req, (size_t)n + jlen) < 0 || !(line = conn_line(c)))
		return -1;
	if (sscanf(line, "HTTP/1.%*d %d", &status) != 1)
		return fail("sqs %s: bad status line", action);
	while ((line = conn_line(c)) && *line)
		if (strncasecmp(line, "Content-Length:", 15) == 0)
			clen = strtoul(line + 15, NULL, 10);
	if (!line || conn_need(c, clen) < 0)
		return -1;
	if (clen >= cap)
		return fail("sqs %s: response of %zu bytes", action, clen);
	memcpy(out, c->buf + c->pos, clen);
	out[clen] = '\0';
	c->pos += clen;
	if (status != 200)
		return fail("sqs %s: HTTP %d: %.200s", action, status, out);
	return (ssize_t)clen;
}

/* The queue's URL, as the endpoint names it. */
static int sqs_url(char *out, size_t len)
{
	return snprintf(out, len, "http://127.0.0.1:%d/000000000000/%s",
			cfg.port, cfg.qname);
}

/* SendMessage (n == 1) or SendMessageBatch of the n bodies of len bytes. */
static int sqs_send(struct conn *c, char *scratch, const char *const *vals,
		    size_t len, long n)
{
	size_t cap = cfg.size * 2 + (2 << 20), half = cap / 2;
	char *json = scratch + half, *p = json, url[300], resp[4096];

	sqs_url(url, sizeof url);
	if (n == 1) {
		p += sprintf(p, "{\"QueueUrl\":\"%s\",\"MessageBody\":\"", url);
		memcpy(p, vals[0], len);
		p += len;
		p += sprintf(p, "\"}");
	} else {
		p += sprintf(p, "{\"QueueUrl\":\"%s\",\"Entries\":[", url);
		for (long i = 0; i < n; i++) {
			p += sprintf(p, "%s{\"Id\":\"e%ld\",\"MessageBody\":\"",
				     i ? "," : "", i);
			memcpy(p, vals[i], len);
			p += len;
			p += sprintf(p, "\"}");
		}
		p += sprintf(p, "]}");
	}
	if (sqs_call(c, scratch, n == 1 ? "SendMessage" : "SendMessageBatch",
		     json, (size_t)(p - json), resp, sizeof resp) < 0)
		return -1;
	if (n > 1 && strstr(resp, "\"Failed\""))
		return fail("sqs SendMessageBatch: %.200s", resp);
	return 0;
}

/* The string value of "key":"..." in json into out (cap bytes); its
 * length, or -1. */
static ssize_t sqs_field(const char *json, const char *key, char *out,
			 size_t cap)
{
	char pat[64];
	const char *s, *e;

	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	s = strstr(json, pat);
	if (!s)
		return -1;
	s += strlen(pat);
	e = strchr(s, '"');
	if (!e || (size_t)(e - s) >= cap)
		return -1;
	memcpy(out, s, (size_t)(e - s));
	out[e - s] = '\0';
	return e - s;
}

/* ReceiveMessage of one (a long poll of 20 s when blocking, else 1 s,
 * retried while the queue should hold more), then DeleteMessage. */
static ssize_t sqs_consume(struct conn *c, char *scratch, char *out,
			   size_t cap, int blocking)
{
	size_t half = (cfg.size * 2 + (2 << 20)) / 2;
	char *json = scratch + half, *resp = json + 4096, url[300],
	     handle[256];
	ssize_t n;

	sqs_url(url, sizeof url);
	for (;;) {
		int jl = snprintf(json, 4096, "{\"QueueUrl\":\"%s\","
				  "\"MaxNumberOfMessages\":1,"
				  "\"WaitTimeSeconds\":%d}", url,
				  blocking ? 20 : 1);

		if (sqs_call(c, scratch, "ReceiveMessage", json, (size_t)jl,
			     resp, half - 4096) < 0)
			return -1;
		if (strstr(resp, "\"ReceiptHandle\""))
			break;
		if (run.stop || now_s() > run.deadline)
			return fail("sqs ReceiveMessage: nothing to receive");
		atomic_fetch_add(&run.retries, 1);
	}
	n = sqs_field(resp, "Body", out, cap);
	if (n < 0 || sqs_field(resp, "ReceiptHandle", handle,
			       sizeof handle) < 0)
		return fail("sqs ReceiveMessage: %.200s", resp);
	{
		int jl = snprintf(json, 4096, "{\"QueueUrl\":\"%s\","
				  "\"ReceiptHandle\":\"%s\"}", url, handle);

		if (sqs_call(c, scratch, "DeleteMessage", json, (size_t)jl,
			     resp, half - 4096) < 0)
			return -1;
	}
	return n;
}

/* The forward declaration of the threads' loop, for sqs_run_batches. */
static double run_workers(void);

/* lines on sqs: THREADS clients, each sending SendMessageBatch of BATCH
 * (at most 10) until OPS messages (or -d) are done. */
static double sqs_run_batches(void)
{
	if (cfg.batch > 10)
		cfg.batch = 10;
	atomic_store(&run.left, cfg.ops / cfg.batch);
	return run_workers();
}

/* ------------------------------------------------ per-thread workers */

struct worker {
	pthread_t th;
	int tid;
	struct conn c;
	char *body, *buf, *scratch;
	size_t cap;
	struct md_list ml;
};

static int worker_init(struct worker *w)
{
	w->cap = cfg.size + 4096;
	w->body = malloc(cfg.size + 1);
	w->buf = malloc(w->cap);
	w->scratch = malloc(cfg.size * 2 + (2 << 20));
	w->ml.names = malloc(4096 * sizeof(*w->ml.names));
	w->ml.n = w->ml.tried = 0;
	w->c.fd = -1;
	w->c.buf = NULL;
	if (!w->body || !w->buf || !w->scratch || !w->ml.names)
		return fail("out of memory");
	if (cfg.target == T_BEANSTALK || cfg.target == T_REDIS ||
	    cfg.target == T_SQS)
		return conn_open(&w->c);
	return 0;
}

static void worker_free(struct worker *w)
{
	conn_close(&w->c);
	free(w->body);
	free(w->buf);
	free(w->scratch);
	free(w->ml.names);
}

static int push_one(struct worker *w, long i)
{
	const char *v = w->body;

	fill_body(w->body, cfg.size, i);
	switch (cfg.target) {
	case T_FS:
		return fs_push_one(w->tid, i, w->body, cfg.size);
	case T_MAILDIR:
		return md_push_one(w->tid, i, w->body, cfg.size);
	case T_BEANSTALK:
		return bs_put(&w->c, w->scratch, w->body, cfg.size);
	case T_REDIS:
		return rd_lpush(&w->c, w->scratch, &v, cfg.size, 1);
	case T_SQS:
		return sqs_send(&w->c, w->scratch, &v, cfg.size, 1);
	}
	return -1;
}

static ssize_t consume_one(struct worker *w, int blocking)
{
	switch (cfg.target) {
	case T_FS:
		return fs_consume_one(w->buf, w->cap, blocking);
	case T_MAILDIR:
		return md_consume_one(&w->ml, w->tid, w->buf, w->cap);
	case T_BEANSTALK:
		return bs_consume(&w->c, w->buf, w->cap, blocking ? 60 : 5);
	case T_REDIS:
		return rd_consume(&w->c, w->scratch, w->buf, w->cap,
				  blocking ? 60 : 5);
	case T_SQS:
		return sqs_consume(&w->c, w->scratch, w->buf, w->cap,
				   blocking);
	}
	return -1;
}

/* `lines` for the peers that have a batch: redis LPUSH of batch values. */
static int lines_batch(struct worker *w, long first, long count)
{
	const char **vals;
	char *bodies;
	int rc;

	if (cfg.target == T_FS)
		return fs_lines_batch(first, count);
	if (cfg.target != T_REDIS && cfg.target != T_SQS)
		return fail("lines: no batch push for this target");
	vals = malloc(count * sizeof(*vals));
	bodies = malloc(count * cfg.size);
	if (!vals || !bodies) {
		free(vals);
		free(bodies);
		return fail("out of memory");
	}
	for (long i = 0; i < count; i++) {
		vals[i] = bodies + i * cfg.size;
		fill_body(bodies + i * cfg.size, cfg.size - 1, first + i);
	}
	rc = cfg.target == T_SQS
		? sqs_send(&w->c, w->scratch, vals, cfg.size - 1, count)
		: rd_lpush(&w->c, w->scratch, vals, cfg.size - 1, count);
	free(vals);
	free(bodies);
	return rc;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	long i;

	while (claim_op()) {
		switch (cfg.mode) {
		case M_CREATE: case M_PUSH: case M_FILL:
			i = atomic_fetch_add(&run.done, 1);
			if (push_one(w, i) < 0)
				return NULL;
			break;
		case M_CONSUME: case M_DRAIN:
			if ((cfg.mode == M_DRAIN && cfg.target == T_FS
			     ? fs_pop_one(w->buf, w->cap)
			     : consume_one(w, 0)) < 0)
				return NULL;
			atomic_fetch_add(&run.done, 1);
			break;
		case M_LINES:   /* sqs: SendMessageBatch from every thread */
			i = atomic_fetch_add(&run.done, cfg.batch);
			if (lines_batch(w, i, cfg.batch) < 0)
				return NULL;
			break;
		default:
			return NULL;
		}
	}
	return NULL;
}

static double run_pool(void *(*fn)(void *), void (*watch)(void));

/* Runs the worker threads over run.left operations; returns seconds. */
static double run_workers(void)
{
	return run_pool(worker_main, NULL);
}

/* fill on fs: `lines` in batches, the fastest way in. */
static double run_lines(long total)
{
	struct worker w = { .tid = 0 };
	double t0;
	long first = 0;

	if (worker_init(&w) < 0)
		return 0;
	t0 = now_s();
	while (first < total && !run.stop && now_s() < run.deadline) {
		long n = total - first < cfg.batch ? total - first : cfg.batch;

		if (lines_batch(&w, first, n) < 0)
			break;
		first += n;
		atomic_store(&run.done, first);
	}
	if (first < total && !run.stop)
		atomic_store(&run.stop, 2);
	t0 = now_s() - t0;
	worker_free(&w);
	return t0;
}

/* ---------------------------------------------------- wake-up latency */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	long ready;          /* protected by lock: the reader's round */
	double *lat;         /* seconds, one per round */
	long rounds;
} wk = { .lock = PTHREAD_MUTEX_INITIALIZER,
	 .cond = PTHREAD_COND_INITIALIZER };

static void *wake_reader(void *arg)
{
	struct worker *w = arg;

	for (long r = 0; r < wk.rounds && !run.stop; r++) {
		ssize_t n;

		pthread_mutex_lock(&wk.lock);
		wk.ready = r + 1;
		pthread_cond_signal(&wk.cond);
		pthread_mutex_unlock(&wk.lock);
		n = consume_one(w, 1);
		if (n < 0)
			break;
		w->buf[n < (ssize_t)w->cap ? n : 0] = '\0';
		wk.lat[r] = now_s() - strtod(w->buf, NULL);
		atomic_fetch_add(&run.done, 1);
	}
	atomic_store(&run.stop, run.stop ? run.stop : 1);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, long n, double p)
{
	long i = (long)(p * (n - 1) + 0.5);

	return n > 0 ? v[i] : 0;
}

/*
 * One reader waits on an empty queue; for each round the producer waits
 * until the reader is about to block, gives it 2 ms to park, and pushes a
 * body that starts with the push's start time. The reader computes
 * arrival - start. Returns the run's wall time.
 */
static double run_wake(double *p50, double *p99)
{
	struct worker rd = { .tid = 0 }, pr = { .tid = 1 };
	double t0 = now_s();
	long r;

	wk.rounds = cfg.ops;
	wk.lat = calloc(cfg.ops, sizeof(double));
	if (!wk.lat || worker_init(&rd) < 0 || worker_init(&pr) < 0)
		return 0;
	pthread_create(&rd.th, NULL, wake_reader, &rd);
	for (r = 0; r < wk.rounds; r++) {
		pthread_mutex_lock(&wk.lock);
		while (wk.ready <= r && !run.stop && now_s() < run.deadline) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&wk.cond, &wk.lock, &ts);
		}
		pthread_mutex_unlock(&wk.lock);
		if (run.stop || now_s() > run.deadline)
			break;
		sleep_s(0.002);
		memset(pr.body, ' ', cfg.size);
		snprintf(pr.body, cfg.size, "%.9f", now_s());
		pr.body[strlen(pr.body)] = ' ';
		if ((cfg.target == T_FS
		     ? fs_push_one(1, r, pr.body, cfg.size)
		     : cfg.target == T_BEANSTALK
		     ? bs_put(&pr.c, pr.scratch, pr.body, cfg.size)
		     : cfg.target == T_SQS
		     ? sqs_send(&pr.c, pr.scratch,
				(const char *const *)&pr.body, cfg.size, 1)
		     : rd_lpush(&pr.c, pr.scratch,
				(const char *const *)&pr.body, cfg.size, 1)) < 0)
			break;
	}
	if (r < wk.rounds && !run.stop)
		atomic_store(&run.stop, 2);
	/* A reader still parked is released by the harness's unmount. */
	if (run.done == r || run.stop != 2)
		pthread_join(rd.th, NULL);
	t0 = now_s() - t0;
	qsort(wk.lat, run.done, sizeof(double), cmp_double);
	*p50 = pct(wk.lat, run.done, 0.50) * 1e6;
	*p99 = pct(wk.lat, run.done, 0.99) * 1e6;
	return t0;
}

/* ---------------------------------------------------- parked readers */

/* Reads Threads and VmRSS (kB) of pid from /proc/PID/status. */
static void proc_status(int pid, long *threads, long *rss_kb)
{
	char path[64], line[256];
	FILE *f;

	*threads = *rss_kb = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "Threads: %ld", threads);
		sscanf(line, "VmRSS: %ld", rss_kb);
	}
	fclose(f);
}

static _Atomic long parked;

static void *park_reader(void *arg)
{
	struct worker *w = arg;

	atomic_fetch_add(&parked, 1);
	if (fs_consume_one(w->buf, w->cap, 1) >= 0)
		atomic_fetch_add(&run.done, 1);
	return NULL;
}

static int run_park(void)
{
	long n = cfg.threads, th0, rss0, th1, rss1, started = 0;
	struct worker *ws = calloc(n, sizeof(*ws));
	pthread_attr_t attr;
	double t;

	if (!ws)
		return fail("out of memory");
	proc_status(cfg.daemon_pid, &th0, &rss0);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 << 10);
	for (long i = 0; i < n; i++) {
		ws[i].tid = (int)i;
		ws[i].cap = cfg.size + 4096;
		ws[i].buf = malloc(ws[i].cap);
		if (!ws[i].buf ||
		    pthread_create(&ws[i].th, &attr, park_reader, &ws[i]) != 0)
			break;
		started++;
	}
	/* Let every reader reach the daemon and park there. */
	for (t = now_s(); parked < started && now_s() - t < 10;)
		sleep_s(0.01);
	sleep_s(1.5 + started / 1000.0);
	proc_status(cfg.daemon_pid, &th1, &rss1);
	printf("readers=%ld threads_before=%ld threads_parked=%ld "
	       "rss_before_kb=%ld rss_parked_kb=%ld early=%ld ",
	       started, th0, th1, rss0, rss1, (long)run.done);
	fflush(stdout);
	/* Release them: one message each, in one batch. */
	cfg.size = 16;
	if (fs_lines_batch(0, started) == 0)
		for (t = now_s(); run.done < started && now_s() - t < 30;)
			sleep_s(0.01);
	printf("released=%ld ", (long)run.done);
	if (run.done < started)
		return fail("only %ld of %ld parked readers were released",
			    (long)run.done, started);
	for (long i = 0; i < started; i++) {
		pthread_join(ws[i].th, NULL);
		free(ws[i].buf);
	}
	free(ws);
	return 0;
}

/* ------------------------------------- lease alone, memory soak (15) */

/* The lease alone: open `next`, read the body, close. No fgetxattr, no
 * unlink: the message stays leased until its lease runs out. */
static int fs_lease_one(char *buf, size_t cap)
{
	char path[PATH_MAX];
	int fd, tries = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/next", cfg.dir);
	for (;;) {
		fd = open(path, O_RDONLY | O_NONBLOCK);
		if (fd < 0)
			return fail("open %s: %s", path, strerror(errno));
		n = read_body(fd, buf, cap);
		if (n >= 0 || errno != EAGAIN || tries++ >= 2000 || run.stop ||
		    now_s() >= run.deadline)
			break;
		close(fd);
		atomic_fetch_add(&run.retries, 1);
		sleep_s(0.001);
	}
	if (n < 0) {
		int e = errno;

		close(fd);
		return fail("read %s: %s", path, strerror(e));
	}
	if (close(fd) < 0)
		return fail("close %s: %s", path, strerror(errno));
	return 0;
}

static void *lease_worker(void *arg)
{
	struct worker *w = arg;

	while (claim_op()) {
		if (fs_lease_one(w->buf, w->cap) < 0)
			return NULL;
		atomic_fetch_add(&run.done, 1);
	}
	return NULL;
}

/* THREADS workers running fn until OPS, -d or the limit, while the main
 * thread runs watch (if any); returns seconds. */
static double run_pool(void *(*fn)(void *), void (*watch)(void))
{
	struct worker *ws = calloc(cfg.threads, sizeof(*ws));
	double t0;
	int i, n;

	if (!ws) {
		fail("out of memory");
		return 0;
	}
	for (n = 0; n < cfg.threads; n++) {
		ws[n].tid = n;
		if (worker_init(&ws[n]) < 0) {
			n++;    /* freed below; run.stop is set */
			break;
		}
	}
	t0 = run.t_start = now_s();
	for (i = 0; i < n && !run.stop; i++)
		pthread_create(&ws[i].th, NULL, fn, &ws[i]);
	if (watch && i > 0)
		watch();
	for (int j = 0; j < i; j++)
		pthread_join(ws[j].th, NULL);
	t0 = now_s() - t0;
	for (i = 0; i < n; i++)
		worker_free(&ws[i]);
	free(ws);
	return t0;
}

/*
 * The soak's shared state. depth counts messages whose push returned and
 * that no client has taken yet, so a consume that reserves one (depth > 0)
 * never finds the queue empty. climbing: 3 pushes to 1 consume until depth
 * reaches cfg.ops, then 1 push to 3 consumes until it reaches 0.
 */
static struct {
	_Atomic long depth, pushes, consumes;
	_Atomic int climbing, done;
	long rss_max_kb;
} sk = { .climbing = 1 };

static int soak_op(struct worker *w, long i)
{
	int want_push = atomic_load(&sk.climbing) ? (i % 4 != 3) : (i % 4 == 3);

	if (!want_push && atomic_fetch_sub(&sk.depth, 1) <= 0) {
		atomic_fetch_add(&sk.depth, 1);
		atomic_store(&sk.climbing, 1);
		want_push = 1;
	}
	if (want_push) {
		fill_body(w->body, cfg.size, i);
		if (fs_push_one(w->tid, i, w->body, cfg.size) < 0)
			return -1;
		atomic_fetch_add(&sk.pushes, 1);
		if (atomic_fetch_add(&sk.depth, 1) + 1 >= cfg.ops)
			atomic_store(&sk.climbing, 0);
		return 0;
	}
	if (fs_consume_one(w->buf, w->cap, 0) < 0)
		return -1;
	atomic_fetch_add(&sk.consumes, 1);
	return 0;
}

static void *soak_worker(void *arg)
{
	struct worker *w = arg;

	for (long i = w->tid; !run.stop && !atomic_load(&sk.done); i++) {
		if (now_s() > run.deadline) {
			atomic_store(&run.stop, 2);
			break;
		}
		if (soak_op(w, i) < 0)
			break;
		atomic_fetch_add(&run.done, 1);
	}
	return NULL;
}

static long soak_rss(void)
{
	long th, rss;

	proc_status(cfg.daemon_pid, &th, &rss);
	if (rss > sk.rss_max_kb)
		sk.rss_max_kb = rss;
	return rss;
}

/* Writes "purge" to the queue's ctl: every visible message goes. */
static int fs_purge(void)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/ctl", cfg.dir);
	return fs_write_file(path, 0, "purge\n", 6);
}

/* The main thread during the soak: samples VmRSS until -d is over. */
static void soak_watch(void)
{
	while (!run.stop && now_s() - run.t_start < cfg.duration) {
		soak_rss();
		sleep_s(0.1);
	}
	atomic_store(&sk.done, 1);
}

static int run_soak(double *secs)
{
	long rss_end, rss_max, rss_purge = -1, rss_min = -1;
	long rss0 = soak_rss();
	double t, under48 = -1;

	*secs = run_pool(soak_worker, soak_watch);
	rss_end = soak_rss();
	rss_max = sk.rss_max_kb;        /* the purge is not the soak's */
	if (!run.stop && fs_purge() == 0) {
		for (t = now_s(); now_s() - t < cfg.settle;) {
			rss_purge = soak_rss();
			if (rss_min < 0 || rss_purge < rss_min)
				rss_min = rss_purge;
			if (under48 < 0 && rss_purge < 48 * 1024)
				under48 = now_s() - t;
			sleep_s(0.5);
		}
		rss_purge = soak_rss();
	}
	printf("pushes=%ld consumes=%ld depth_end=%ld rss_start_kb=%ld "
	       "rss_max_kb=%ld rss_end_kb=%ld rss_purge_kb=%ld "
	       "rss_purge_min_kb=%ld under48_secs=%.1f ",
	       (long)sk.pushes, (long)sk.consumes, (long)sk.depth, rss0,
	       rss_max, rss_end, rss_purge, rss_min, under48);
	return 0;
}

/* --------------------------------------------------- mount readiness */

static int run_waitmount(double *secs)
{
	char parent[PATH_MAX];
	struct stat a, b;
	double t0 = now_s();

	snprintf(parent, sizeof(parent), "%s/..", cfg.dir);
	while (now_s() < run.deadline) {
		if (stat(cfg.dir, &a) == 0 && stat(parent, &b) == 0 &&
		    a.st_dev != b.st_dev) {
			*secs = now_s() - t0;
			return 0;
		}
		sleep_s(0.0005);
	}
	return fail("%s is not a mount after %.0f s", cfg.dir, cfg.limit);
}

/* ------------------------------------------------------------- main */

static void usage(void)
{
	fprintf(stderr,
		"usage: loadgen create|push|consume|fill|drain|lines|wake|park|"
		"waitmount|lease|soak\n"
		"               fs:DIR|maildir:DIR|maildir-fsync:DIR|"
		"beanstalk:PORT|redis:PORT\n"
		"               [-t THREADS] [-n OPS] [-s BYTES] [-b BATCH] "
		"[-d SECONDS] [-T SECONDS]\n"
		"               [-q NAME] [-p PID] [-w SECONDS] [-P DIR]\n");
	exit(1);
}

static void parse_target(const char *t)
{
	const char *arg = strchr(t, ':');

	if (!arg)
		usage();
	arg++;
	if (strncmp(t, "fs:", 3) == 0)
		cfg.target = T_FS;
	else if (strncmp(t, "maildir:", 8) == 0)
		cfg.target = T_MAILDIR;
	else if (strncmp(t, "maildir-fsync:", 14) == 0)
		cfg.target = T_MAILDIR, cfg.fsync = 1;
	else if (strncmp(t, "beanstalk:", 10) == 0)
		cfg.target = T_BEANSTALK;
	else if (strncmp(t, "redis:", 6) == 0)
		cfg.target = T_REDIS;
	else if (strncmp(t, "sqs:", 4) == 0)
		cfg.target = T_SQS;
	else
		usage();
	cfg.dir = arg;
	cfg.port = atoi(arg);
}

static void parse_args(int argc, char **argv)
{
	int opt;
	size_t m;

	if (argc < 3)
		usage();
	for (m = 0; m < sizeof(mode_names) / sizeof(*mode_names); m++)
		if (strcmp(argv[1], mode_names[m]) == 0)
			break;
	if (m == sizeof(mode_names) / sizeof(*mode_names))
		usage();
	cfg.mode = (enum mode)m;
	parse_target(argv[2]);
	optind = 3;
	while ((opt = getopt(argc, argv, "t:n:s:b:d:T:q:p:w:P:")) != -1) {
		switch (opt) {
		case 't': cfg.threads = atoi(optarg); break;
		case 'n': cfg.ops = atol(optarg); break;
		case 's': cfg.size = strtoul(optarg, NULL, 10); break;
		case 'b': cfg.batch = atol(optarg); break;
		case 'd': cfg.duration = atof(optarg); break;
		case 'T': cfg.limit = atof(optarg); break;
		case 'q': cfg.qname = optarg; break;
		case 'p': cfg.daemon_pid = atoi(optarg); break;
		case 'w': cfg.settle = atof(optarg); break;
		case 'P': cfg.push_dir = optarg; break;
		default: usage();
		}
	}
	if (cfg.threads < 1 || cfg.threads > 4096 || cfg.ops < 1 ||
	    cfg.size < 16 || cfg.size > (16 << 20) || cfg.batch < 1 ||
	    strlen(cfg.qname) > 200)
		usage();
}

static void make_maildir(void)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	char path[PATH_MAX];

	mkdir(cfg.dir, 0755);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", cfg.dir, sub[i]);
		mkdir(path, 0755);
	}
}

int main(int argc, char **argv)
{
	double secs = 0, p50 = -1, p99 = -1;

	parse_args(argc, argv);
	if (cfg.target == T_MAILDIR)
		make_maildir();
	run.t_start = now_s();
	run.deadline = run.t_start + cfg.limit;
	atomic_store(&run.left, cfg.ops);
	switch (cfg.mode) {
	case M_FILL:
		/* Batches: `lines` on a mount (at most 8 MiB per open: a lines
		 * file is one message per line but one buffer in the daemon),
		 * LPUSH of 16 values on Redis. */
		if (cfg.target == T_REDIS && cfg.batch > 16)
			cfg.batch = 16;
		if ((size_t)cfg.batch * cfg.size > (8u << 20))
			cfg.batch = (long)((8u << 20) / cfg.size);
		if (cfg.target == T_FS || cfg.target == T_REDIS) {
			secs = run_lines(cfg.ops);
			break;
		}
		/* fall through */
	case M_CREATE: case M_PUSH: case M_CONSUME: case M_DRAIN:
		secs = run_workers();
		break;
	case M_LINES:
		if (cfg.target == T_SQS) {
			secs = sqs_run_batches();
			break;
		}
		secs = run_lines(cfg.ops);
		break;
	case M_WAKE:
		if (cfg.target == T_MAILDIR)
			fail("wake: maildir has no parked reader");
		else
			secs = run_wake(&p50, &p99);
		break;
	case M_PARK:
		if (cfg.target != T_FS || cfg.daemon_pid <= 0)
			fail("park: needs fs:DIR and -p DAEMON_PID");
		else
			run_park();
		secs = now_s() - run.t_start;
		break;
	case M_WAITMOUNT:
		run_waitmount(&secs);
		run.done = 1;
		break;
	case M_LEASE:
		if (cfg.target != T_FS)
			fail("lease: needs fs:DIR");
		else
			secs = run_pool(lease_worker, NULL);
		break;
	case M_SOAK:
		if (cfg.target != T_FS || cfg.daemon_pid <= 0 ||
		    cfg.duration <= 0)
			fail("soak: needs fs:DIR, -p DAEMON_PID and -d SECONDS");
		else
			run_soak(&secs);
		break;
	}
	printf("mode=%s ops=%ld secs=%.6f rate=%.1f", mode_names[cfg.mode],
	       (long)run.done, secs, secs > 0 ? run.done / secs : 0.0);
	if (p50 >= 0)
		printf(" p50_us=%.1f p99_us=%.1f", p50, p99);
	if (run.retries)
		printf(" retries=%ld", (long)run.retries);
	if (run.stop == 2 && !run.errors)
		printf(" error=\"time limit of %.0f s reached\"", cfg.limit);
	if (run.errors)
		printf(" errors=%ld error=\"%s\"", (long)run.errors,
		       run.first_error);
	printf("\n");
	fflush(stdout);
	if (run.errors)
		_exit(2);
	_exit(run.stop == 2 ? 3 : 0);
}
