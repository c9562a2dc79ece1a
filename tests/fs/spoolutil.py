"""Small helpers the spoolfs tests share: reading and writing the special
files with plain os calls, so each test states its expectations in bytes."""
import errno
import os
import time

# DESIGN.md §3: the xattrs every message file answers.
MSG_XATTRS = ('user.spool.id', 'user.spool.priority', 'user.spool.sent',
              'user.spool.receives', 'user.spool.first_received',
              'user.spool.name')
# DESIGN.md §2: the control entries of a queue directory (all exist by
# name), and those its listing shows (crawler safety: reading them changes
# nothing and never waits).
CONTROL = {'push', 'lines', 'next', 'claim', 'pop', 'peek', 'delayed',
           'leased', 'stats', 'config', 'ctl'}
LISTED = {'peek', 'delayed', 'leased', 'stats', 'config'}
# DESIGN.md §7.
STATS_KEYS = ('visible', 'delayed', 'leased', 'bytes', 'pushed_total',
              'acked_total', 'expired_total', 'dead_total', 'deduped_total',
              'oldest_visible_age_ms')
# DESIGN.md §6.
CONFIG_KEYS = ('visibility_timeout', 'receive_wait', 'delay', 'priority',
               'max_size', 'max_depth', 'max_receives', 'dead_letter',
               'retention', 'dedup', 'dedup_window', 'paused', 'fanout')


def now_ms():
    return int(time.time() * 1000)


def errno_in_child(fn, *args):
    """Runs fn(*args) in a forked child: another process to the daemon
    (DESIGN §4: a just-pushed name stays resolvable only for its pusher).
    Returns the errno of the OSError it raised, or 0."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn(*args)
        except OSError as e:
            code = e.errno
        except BaseException:  # noqa: B902 - any other failure: 255
            code = 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def read_fd(fd, chunk=1 << 20):
    out = []
    while True:
        b = os.read(fd, chunk)
        if not b:
            return b''.join(out)
        out.append(b)


def read_file(path, flags=0):
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        return read_fd(fd)
    finally:
        os.close(fd)


def write_file(path, data, flags=os.O_CREAT | os.O_TRUNC):
    """open(O_WRONLY|flags), one write, close. Errors of write() or close()
    raise OSError; the fd is closed in any case."""
    fd = os.open(path, os.O_WRONLY | flags, 0o644)
    try:
        n = os.write(fd, data)
        assert n == len(data), 'short write %d of %d' % (n, len(data))
    except BaseException:
        try:
            os.close(fd)
        except OSError:
            pass
        raise
    os.close(fd)


def parse_kv(text):
    d = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        k, sep, v = line.partition('=')
        assert sep, 'not a key=value line: %r' % line
        assert k not in d, 'key %r twice' % k
        d[k] = v
    return d


def _num(v):
    try:
        return int(v)
    except ValueError:
        return v


def stats(q):
    return {k: _num(v) for k, v in
            parse_kv(read_file(q / 'stats').decode()).items()}


def counts(q):
    s = stats(q)
    return s['visible'], s['delayed'], s['leased']


def config(q):
    return parse_kv(read_file(q / 'config').decode())


def set_config(q, **kv):
    text = ''.join('%s=%s\n' % (k, v) for k, v in kv.items())
    write_file(q / 'config', text.encode(), flags=os.O_TRUNC)


def push(q, body, name='msg'):
    """Pushes one message by creating q/name; returns when close() did."""
    if isinstance(body, str):
        body = body.encode()
    write_file(q / name, body)


def push_lines(q, bodies):
    """Pushes every body (no newlines in them) through q/lines, at once."""
    data = b''.join((b if isinstance(b, bytes) else str(b).encode()) + b'\n'
                    for b in bodies)
    write_file(q / 'lines', data, flags=os.O_TRUNC)


def take(q, entry='next'):
    """Reads q/entry with O_NONBLOCK. Returns (body, id) or None when the
    queue has nothing visible (EAGAIN). id is None for pop."""
    fd = os.open(q / entry, os.O_RDONLY | os.O_NONBLOCK)
    try:
        try:
            body = read_fd(fd)
        except BlockingIOError:
            return None
        mid = None
        if entry == 'next':
            mid = os.getxattr(fd, 'user.spool.id').decode()
        return body, mid
    finally:
        os.close(fd)


def lease(q):
    """Leases the next message with next; returns (id, body) or None."""
    r = take(q, 'next')
    return None if r is None else (r[1], r[0])


def claim(q):
    """Reads claim with O_NONBLOCK; returns the id (str) or None."""
    fd = os.open(q / 'claim', os.O_RDONLY | os.O_NONBLOCK)
    try:
        data = read_fd(fd)
    except BlockingIOError:
        return None
    finally:
        os.close(fd)
    assert data.endswith(b'\n') and data.count(b'\n') == 1, data
    return data[:-1].decode()


def pop(q):
    r = take(q, 'pop')
    return None if r is None else r[0]


def pop_all(q, limit=1000000):
    out = []
    while len(out) < limit:
        b = pop(q)
        if b is None:
            break
        out.append(b)
    return out


def ids(q, sub='peek'):
    return os.listdir(q / sub)


def bodies(q, sub='peek'):
    """The bodies in q/sub in readdir order (peek/ reads lease nothing)."""
    return [read_file(q / sub / i) for i in os.listdir(q / sub)]


def xattr(path, name):
    return os.getxattr(path, name).decode()


def wait_until(pred, timeout=5.0, interval=0.02):
    """Polls pred() until it returns a true value; returns that value, or
    the last (false) value after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def write_errno(path, chunks):
    """open(O_WRONLY|O_TRUNC), one write() per chunk, close. Returns the
    errno of the first write() or of close() that failed (either may be
    where a refusal shows), else None."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    err = None
    try:
        for c in chunks:
            os.write(fd, c)
    except OSError as e:
        err = e.errno
    try:
        os.close(fd)
    except OSError as e:
        err = err or e.errno
    return err


def errno_of(fn, *args, **kw):
    """Runs fn; returns the errno of the OSError it raised, or None."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return None


EAGAIN = errno.EAGAIN


# A producer process for the crash tests: pushes <tag>-<n> bodies as fast as
# it can (through new names, or through `push`) and appends each body to its
# ledger once close() returned 0. It stops at the first error (the daemon
# died) and exits 0.
PRODUCER = r'''
import os, sys
q, tag, ledger, mode = sys.argv[1:5]
lf = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
i = 0
while True:
    body = b'%s-%d' % (tag.encode(), i)
    path = os.path.join(q, 'push' if mode == 'push' else 'n%d' % i)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError:
        break
    try:
        os.write(fd, body)
    except OSError:
        try:
            os.close(fd)
        except OSError:
            pass
        break
    try:
        os.close(fd)
    except OSError:
        break
    os.write(lf, body + b'\n')
    i += 1
'''
