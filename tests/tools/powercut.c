/*
 * powercut.c - an LD_PRELOAD shim that records, for every file under
 * $SPOOL_POWERCUT_DIR, how much of it was made durable: at each fsync or
 * fdatasync it appends "<size> <path>" to the journal $SPOOL_POWERCUT_LOG,
 * and a file created with O_CREAT or O_TRUNC is recorded at size 0.
 *
 * After the daemon is killed, tests/fs/test_powercut.py cuts every file
 * back to its last durable size (a file never synced to nothing), which is
 * what a power cut leaves of data written after the last fsync: the model
 * behind "--sync always survives a power cut" (DESIGN.md §8). Appends are
 * what RocksDB writes (its log, its tables, its manifest), so the size is
 * the whole story; directory entries are not modelled (RocksDB fsyncs its
 * directory after creating files).
 */
/* Both open and open64 are defined here: keep glibc from renaming one. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef int (*sync_fn)(int);
typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int journal = -1;

/* Path of fd, if it is under the watched directory; else NULL. */
static const char *watched(int fd, char *buf, size_t len)
{
	const char *dir = getenv("SPOOL_POWERCUT_DIR");
	char link[64];
	ssize_t n;

	if (!dir)
		return NULL;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, len - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	if (strncmp(buf, dir, strlen(dir)) != 0)
		return NULL;
	return buf;
}

/* The size of regular file fd, or -1. */
static long long size_of(int fd)
{
	struct stat st;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return -1;
	return st.st_size;
}

static void record(int fd, long long size)
{
	char path[PATH_MAX], line[PATH_MAX + 32];
	const char *log = getenv("SPOOL_POWERCUT_LOG");
	int n;

	if (size < 0 || !log || !watched(fd, path, sizeof(path)))
		return;
	n = snprintf(line, sizeof(line), "%lld %s\n", size, path);
	pthread_mutex_lock(&lock);
	if (journal < 0)
		journal = ((open_fn)dlsym(RTLD_NEXT, "open"))(log,
			O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (journal >= 0 && write(journal, line, (size_t)n) != n)
		abort(); /* a journal that lies would make the test lie */
	pthread_mutex_unlock(&lock);
}

/* The next definition of name (libc's). */
#define REAL(type, name) \
	static type real; \
	if (!real) \
		real = (type)dlsym(RTLD_NEXT, name)

/* What was in the file before the sync is durable after it (bytes
 * written meanwhile by other threads may not be). */
int fsync(int fd)
{
	REAL(sync_fn, "fsync");
	long long size = size_of(fd);
	int rc = real(fd);

	if (rc == 0)
		record(fd, size);
	return rc;
}

int fdatasync(int fd)
{
	REAL(sync_fn, "fdatasync");
	long long size = size_of(fd);
	int rc = real(fd);

	if (rc == 0)
		record(fd, size);
	return rc;
}

/* A file created (or truncated) empty has nothing durable yet. */
static int opened(int fd, int flags)
{
	if (fd >= 0 && (flags & (O_CREAT | O_TRUNC)) && size_of(fd) == 0)
		record(fd, 0);
	return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
	REAL(open_fn, "open");
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return opened(real(path, flags, mode), flags);
}

int open64(const char *path, int flags, ...)
{
	REAL(open_fn, "open64");
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return opened(real(path, flags, mode), flags);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	REAL(openat_fn, "openat");
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return opened(real(dirfd, path, flags, mode), flags);
}
