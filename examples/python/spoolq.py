"""spoolq - a small client for spoolfs queues, over the file interface only.

No library, no protocol: every call below is an open, read, write, rename,
unlink or xattr call on the mount (see DESIGN.md / docs/tree.md), so this
module is also a worked example of the file interface.

    from spoolq import Sender, Receiver

    Sender('/srv/spool', 'jobs').send(b'hello', priority=5)
    Sender('/srv/spool', 'jobs').send_many(['a', 'b', 'c'])   # atomic

    rx = Receiver('/srv/spool', 'jobs')
    msg = rx.receive()                  # blocks until a message is leased
    rx.acknowledge(msg)
    with rx.acknowledgement(timeout=5) as msg:   # acked only if the block
        handle(msg.body)                         # succeeds, else released
    for msg in Receiver('/srv/spool', 'jobs', timeout=1):   # until idle
        ...
"""
import contextlib
import errno
import itertools
import os
import select
import time

__all__ = ['Queue', 'Sender', 'Receiver', 'Message']

_drafts = itertools.count()


class Message:
    """A message: id, body (bytes), receives, priority, name, attrs (the
    user.* attributes given at push, without the 'user.' prefix) and path
    (its file under leased/ or peek/)."""

    def __init__(self, path):
        self.path = path
        self.id = os.path.basename(path)
        with open(path, 'rb') as f:
            self.body = f.read()
        self.attrs = {}
        for key in os.listxattr(path):
            if key.startswith('user.') and not key.startswith('user.spool.'):
                self.attrs[key[5:]] = os.getxattr(path, key).decode()
        self.receives = int(self._spool('receives') or 0)
        self.priority = int(self._spool('priority') or 0)
        self.name = self._spool('name')

    def _spool(self, key):
        try:
            return os.getxattr(self.path, 'user.spool.' + key).decode()
        except OSError:
            return None

    def __repr__(self):
        return 'Message(%r, %r)' % (self.id, self.body[:40])


class Queue:
    """A queue directory on a spoolfs mount."""

    def __init__(self, mount, name, create=False):
        self.mount = os.fspath(mount)
        self.name = name
        self.path = os.path.join(self.mount, name)
        if create and not os.path.isdir(self.path):
            try:
                os.mkdir(self.path)
            except FileExistsError:
                pass

    def _file(self, *parts):
        return os.path.join(self.path, *parts)

    def stats(self):
        """The counters of QUEUE/stats as a dict of ints."""
        with open(self._file('stats')) as f:
            pairs = (line.rstrip('\n').split('=', 1) for line in f if '=' in line)
            return {k: int(v) if v.lstrip('-').isdigit() else v for k, v in pairs}

    def count(self):
        """Messages ready to be leased (stats 'visible')."""
        return self.stats()['visible']

    def peek(self, n=10):
        """Up to n visible messages in delivery order, without leasing them.
        A message may be gone by the time it is read: it is skipped."""
        out = []
        for mid in os.listdir(self._file('peek')):
            if len(out) >= n:
                break
            try:
                out.append(Message(self._file('peek', mid)))
            except FileNotFoundError:
                continue
        return out

    def purge(self):
        """Deletes every visible and delayed message (leased ones stay)."""
        with open(self._file('ctl'), 'w') as f:
            f.write('purge\n')


class Sender(Queue):
    """Pushes messages. A push is durable when send() returns."""

    def send(self, body, priority=None, delay=None, attrs=None, name=None):
        """Pushes one message (bytes or str). With options it is written as
        a draft, given xattrs and renamed (DESIGN.md §4); else through the
        'push' fast path. Raises OSError: EFBIG (over max_size), EDQUOT
        (queue full), ENOSPC (store full); then nothing is pushed."""
        if isinstance(body, str):
            body = body.encode()
        if priority is None and delay is None and not attrs and name is None:
            with open(self._file('push'), 'wb') as f:
                f.write(body)
            return
        draft = self._file('.py-%d-%d' % (os.getpid(), next(_drafts)))
        try:
            with open(draft, 'xb') as f:
                f.write(body)
            if priority is not None:
                os.setxattr(draft, 'user.spool.priority', b'%d' % priority)
            if delay is not None:
                os.setxattr(draft, 'user.spool.delay', str(delay).encode())
            for k, v in (attrs or {}).items():
                os.setxattr(draft, 'user.' + k, str(v).encode())
            os.rename(draft, self._file(name or 'message'))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(draft)
            raise

    def send_many(self, bodies):
        """Pushes one message per body through 'lines': all or none. A body
        must be non-empty and hold no newline."""
        data = []
        for b in bodies:
            if isinstance(b, str):
                b = b.encode()
            if not b or b'\n' in b:
                raise ValueError('send_many: bodies must be non-empty '
                                 'single lines: %r' % b)
            data.append(b + b'\n')
        with open(self._file('lines'), 'wb') as f:
            f.write(b''.join(data))
        return len(data)


class Receiver(Queue):
    """Leases messages. Iterating yields messages until none came for
    `timeout` seconds (forever when timeout is None)."""

    def __init__(self, mount, name, timeout=None, create=False):
        super().__init__(mount, name, create)
        self.timeout = timeout

    def _claim(self, timeout):
        """Reads QUEUE/claim; returns the leased id, or None on timeout."""
        if timeout is None:
            while True:
                try:
                    with open(self._file('claim'), 'rb') as f:
                        return f.readline().strip().decode()
                except BlockingIOError:      # receive_wait ran out: again
                    continue
        deadline = time.monotonic() + timeout
        fd = os.open(self._file('claim'), os.O_RDONLY | os.O_NONBLOCK)
        try:
            while True:
                try:
                    return os.read(fd, 64).strip().decode()
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    # POLLIN is advisory: read again after every wake-up
                    select.select([fd], [], [], min(left, 0.25))
        finally:
            os.close(fd)

    def receive(self, timeout=None):
        """Leases the next message and returns it; blocks until one is
        visible, or returns None after `timeout` seconds."""
        while True:
            mid = self._claim(timeout)
            if mid is None:
                return None
            try:
                return Message(self._file('leased', mid))
            except FileNotFoundError:   # lease lost already: try again
                continue

    def acknowledge(self, msg):
        """Deletes a leased message. FileNotFoundError if it is gone."""
        os.unlink(msg.path)

    def release(self, msg):
        """Gives a leased message back: visible again at once."""
        os.rename(msg.path, self._file('peek', msg.id))

    def extend(self, msg, seconds=None):
        """Heartbeat: lease until now + seconds (default visibility_timeout)."""
        if seconds is None:
            os.utime(msg.path)
        else:
            t = time.time() + seconds
            os.utime(msg.path, (t, t))

    @contextlib.contextmanager
    def acknowledgement(self, timeout=None):
        """Leases a message for the with-block: acked when the block ends
        normally, released when it raises. Yields None on timeout."""
        msg = self.receive(timeout)
        try:
            yield msg
        except BaseException:
            if msg is not None:
                with contextlib.suppress(OSError):
                    self.release(msg)
            raise
        if msg is not None:
            self.acknowledge(msg)

    def __iter__(self):
        while True:
            msg = self.receive(self.timeout)
            if msg is None:
                return
            yield msg
