"""DESIGN.md §5: consuming with next, claim and pop."""
import errno
import fcntl
import os
import platform
import re
import select
import signal
import subprocess
import threading
import time

import pytest

from spoolutil import (claim, errno_of, ids, lease, pop, push, push_lines,
                       read_file, stats, wait_until, xattr)

ID_RE = re.compile(r'^[0-9A-Za-z]+$')


def test_next_leases_at_first_read_only(mount):
    q = mount.mkq('jobs')
    push(q, b'hello world')
    fd = os.open(q / 'next', os.O_RDONLY)
    try:
        os.stat(q / 'next')
        os.fstat(fd)
        mount.sh('ls -l jobs > /dev/null')
        s = stats(q)
        assert (s['visible'], s['leased']) == (1, 0), 'open/stat/ls leased'
        assert os.read(fd, 5) == b'hello'
        s = stats(q)
        assert (s['visible'], s['leased']) == (0, 1)
        # The rest of the body from the file offset, then EOF.
        assert os.read(fd, 100) == b' world'
        assert os.read(fd, 100) == b''
    finally:
        os.close(fd)
    # Closing does not ack.
    assert stats(q)['leased'] == 1


def test_one_message_per_open(mount):
    q = mount.mkq('jobs')
    push(q, b'a')
    push(q, b'b')
    fd = os.open(q / 'next', os.O_RDONLY)
    try:
        assert os.read(fd, 100) == b'a'
        assert os.read(fd, 100) == b''
        assert os.read(fd, 100) == b''
    finally:
        os.close(fd)
    s = stats(q)
    assert (s['visible'], s['leased']) == (1, 1)
    assert read_file(q / 'next') == b'b'


def test_cat_next(mount):
    q = mount.mkq('jobs')
    push(q, b'first\n')
    push(q, b'second\n')
    assert mount.sh('cat jobs/next').stdout == b'first\n'
    assert mount.sh('cat jobs/next').stdout == b'second\n'
    s = stats(q)
    assert (s['visible'], s['leased']) == (0, 2)


def test_fgetxattr_id_with_two_next_fds_open(mount):
    q = mount.mkq('jobs')
    push(q, b'a')
    push(q, b'b')
    fd1 = os.open(q / 'next', os.O_RDONLY)
    fd2 = os.open(q / 'next', os.O_RDONLY)
    try:
        assert os.read(fd1, 10) == b'a'
        assert os.read(fd2, 10) == b'b'
        id1 = os.getxattr(fd1, 'user.spool.id').decode()
        id2 = os.getxattr(fd2, 'user.spool.id').decode()
        assert id1 != id2
        assert ID_RE.match(id1) and len(id1) == len(id2)
        assert id1 < id2, 'ids increase in push order'
        assert os.getxattr(fd1, 'user.spool.id').decode() == id1
        assert os.getxattr(fd1, 'user.spool.receives') == b'1'
        assert os.getxattr(fd2, 'user.spool.priority') == b'0'
        assert sorted(ids(q, 'leased')) == [id1, id2]
        assert read_file(q / 'leased' / id1) == b'a'
        assert read_file(q / 'leased' / id2) == b'b'
    finally:
        os.close(fd1)
        os.close(fd2)


def test_next_reopened_answers_for_its_own_lease(mount):
    """Opening next again after a close may get the same node back (a
    lease then takes four requests, fs_next_node): what it answers is the
    new open's. Before its read it is bound to nothing; a path lookup of
    next, an open that failed and a stat in between change nothing."""
    q = mount.mkq('jobs', receive_wait=0)
    push(q, b'a')
    push(q, b'b')
    seen = []
    for want in (b'a', b'b'):
        os.stat(q / 'next')
        fd = os.open(q / 'next', os.O_RDONLY)
        try:
            assert errno_of(os.getxattr, fd, 'user.spool.id') == \
                errno.ENODATA
            assert os.read(fd, 10) == want
            seen.append(os.getxattr(fd, 'user.spool.id').decode())
            assert read_file(q / 'leased' / seen[-1]) == want
        finally:
            os.close(fd)
        assert errno_of(os.getxattr, q / 'next', 'user.spool.id') == \
            errno.ENODATA
    assert seen[0] != seen[1]
    assert sorted(ids(q, 'leased')) == sorted(seen)
    # many opens, one after another and from 4 threads at once: each
    # fd's id is the message it read
    push_lines(q, [b'm%d' % n for n in range(200)])

    def consume(n, out):
        for _ in range(n):
            fd = os.open(q / 'next', os.O_RDONLY)
            try:
                body = os.read(fd, 100)
                out.append((body, os.getxattr(fd, 'user.spool.id').decode()))
            finally:
                os.close(fd)

    got = []
    consume(40, got)
    threads = [threading.Thread(target=consume, args=(40, got))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 200
    assert len({i for _, i in got}) == 200
    for body, i in got:
        assert read_file(q / 'leased' / i) == body


def test_claim_returns_id_and_newline(mount):
    q = mount.mkq('jobs')
    push(q, b'payload')
    out = read_file(q / 'claim')
    assert out.endswith(b'\n') and out.count(b'\n') == 1
    mid = out[:-1].decode()
    assert ID_RE.match(mid)
    assert read_file(q / 'leased' / mid) == b'payload'
    s = stats(q)
    assert (s['visible'], s['leased']) == (0, 1)


def test_pure_shell_consumer_loop(mount, tmp_path):
    """DESIGN.md §5: id=$(cat q/claim) && process < q/leased/$id &&
    rm q/leased/$id, in a loop that ends when claim says EAGAIN."""
    q = mount.mkq('jobs', receive_wait=0)
    push_lines(q, ['job%d' % i for i in range(5)])
    out = tmp_path / 'out'
    mount.sh('while id=$(cat jobs/claim); do '
             '{ cat < "jobs/leased/$id" && echo; } >> %s && '
             'rm "jobs/leased/$id"; done; exit 0' % out)
    assert out.read_bytes() == b''.join(b'job%d\n' % i for i in range(5))
    s = stats(q)
    assert (s['visible'], s['leased'], s['acked_total']) == (0, 0, 5)


def test_pop_deletes_at_once(mount):
    q = mount.mkq('jobs')
    push(q, b'a')
    push(q, b'b')
    assert mount.sh('cat jobs/pop').stdout == b'a'
    s = stats(q)
    assert (s['visible'], s['leased']) == (1, 0)
    assert len(ids(q)) == 1
    assert pop(q) == b'b'
    assert pop(q) is None
    s = stats(q)
    assert (s['visible'], s['leased'], s['bytes']) == (0, 0, 0)


@pytest.mark.parametrize('entry', ['next', 'claim', 'pop'])
def test_empty_queue_waits_receive_wait_then_eagain(mount, entry):
    q = mount.mkq('jobs', receive_wait=1)
    t0 = time.monotonic()
    with pytest.raises(OSError) as e:
        read_file(q / entry)
    took = time.monotonic() - t0
    assert e.value.errno == errno.EAGAIN
    assert 0.9 <= took < 3, took


@pytest.mark.parametrize('entry', ['next', 'claim', 'pop'])
def test_o_nonblock_is_eagain_at_once(mount, entry):
    q = mount.mkq('jobs')   # receive_wait=inf
    t0 = time.monotonic()
    with pytest.raises(OSError) as e:
        read_file(q / entry, os.O_NONBLOCK)
    assert e.value.errno == errno.EAGAIN
    assert time.monotonic() - t0 < 0.5


def test_fcntl_nonblock_after_open(mount):
    q = mount.mkq('jobs')
    fd = os.open(q / 'next', os.O_RDONLY)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL,
                    fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        with pytest.raises(OSError) as e:
            os.read(fd, 10)
        assert e.value.errno == errno.EAGAIN
        push(q, b'now')
        assert os.read(fd, 10) == b'now'
    finally:
        os.close(fd)


def test_blocked_reader_gets_a_later_push(mount):
    q = mount.mkq('jobs')
    box = {}

    def reader():
        t0 = time.monotonic()
        box['body'] = read_file(q / 'next')
        box['t'] = time.monotonic() - t0

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.3)
    assert t.is_alive()
    push(q, b'wake')
    t.join(5)
    assert not t.is_alive()
    assert box['body'] == b'wake'
    assert box['t'] < 2


def test_timeout_cat_next_returns_and_leases_nothing(mount):
    q = mount.mkq('jobs')
    t0 = time.monotonic()
    r = mount.sh('timeout 1 cat jobs/next', check=False, timeout=15)
    took = time.monotonic() - t0
    assert r.returncode == 124, r
    assert r.stdout == b''
    assert 0.9 <= took < 3, took
    push(q, b'after')
    s = stats(q)
    assert (s['visible'], s['leased']) == (1, 0)
    fd = os.open(q / 'next', os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert os.read(fd, 10) == b'after'
        assert os.getxattr(fd, 'user.spool.receives') == b'1'
    finally:
        os.close(fd)


def test_sigint_interrupts_a_waiting_reader(mount):
    q = mount.mkq('jobs')
    p = subprocess.Popen(['cat', str(q / 'next')], stdout=subprocess.PIPE)
    time.sleep(0.3)
    assert p.poll() is None
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        rc = p.wait(3)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == -signal.SIGINT
    assert time.monotonic() - t0 < 2
    assert p.stdout.read() == b''
    push(q, b'x')
    s = stats(q)
    assert (s['visible'], s['leased']) == (1, 0)
    # The message's first lease is this one: the interrupted read took none.
    assert lease(q)[1] == b'x'
    i = ids(q, 'leased')[0]
    assert xattr(q / 'leased' / i, 'user.spool.receives') == '1'


READ_SYSCALL = {'x86_64': '0', 'aarch64': '63'}.get(platform.machine())


def blocked_in_read(pid):
    try:
        with open('/proc/%d/syscall' % pid) as f:
            return f.read().split()[0] == READ_SYSCALL
    except (OSError, IndexError):
        return False


@pytest.mark.spool_timeout(180)
def test_200_parked_readers_each_get_one_message(mount, tmp_path):
    """A waiting read is parked, not a blocked daemon thread: 200 readers
    wait on an empty queue, the mount stays responsive, then one push of
    200 lines gives each reader exactly one distinct message."""
    q = mount.mkq('jobs')
    procs = []
    try:
        for i in range(200):
            with open(tmp_path / ('out%d' % i), 'wb') as f:
                procs.append(subprocess.Popen(['cat', str(q / 'next')],
                                              stdout=f))
        wait_until(lambda: all(blocked_in_read(p.pid) for p in procs),
                   timeout=20, interval=0.1)
        time.sleep(0.2)
        assert all(p.poll() is None for p in procs)
        # Still serving other requests while 200 reads wait.
        r = mount.sh('timeout 5 cat jobs/stats', check=False)
        assert r.returncode == 0, 'mount hung with 200 parked readers'
        assert b'leased=0\n' in r.stdout
        mount.sh('seq 200 > jobs/lines')
        for p in procs:
            p.wait(30)
        assert all(p.returncode == 0 for p in procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    got = sorted(int((tmp_path / ('out%d' % i)).read_bytes())
                 for i in range(200))
    assert got == list(range(1, 201))
    s = stats(q)
    assert (s['visible'], s['leased']) == (0, 200)


@pytest.mark.parametrize('how', ['select', 'poll'])
def test_poll_reports_readiness_when_a_push_arrives(mount, how):
    q = mount.mkq('jobs')
    fd = os.open(q / 'next', os.O_RDONLY | os.O_NONBLOCK)
    try:
        def ready(timeout):
            if how == 'select':
                return bool(select.select([fd], [], [], timeout)[0])
            p = select.poll()
            p.register(fd, select.POLLIN)
            return any(ev & select.POLLIN for _, ev in
                       p.poll(timeout * 1000))

        assert not ready(0.2), 'empty queue reported readable'
        assert stats(q)['leased'] == 0, 'poll leased'
        threading.Timer(0.3, push, (q, b'ready')).start()
        t0 = time.monotonic()
        assert ready(5)
        assert time.monotonic() - t0 < 2
        assert os.read(fd, 100) == b'ready'
    finally:
        os.close(fd)


def test_poll_on_nonempty_queue_is_ready_at_once(mount):
    q = mount.mkq('jobs')
    push(q, b'x')
    for entry in ('next', 'claim'):
        fd = os.open(q / entry, os.O_RDONLY | os.O_NONBLOCK)
        try:
            p = select.poll()
            p.register(fd, select.POLLIN)
            assert p.poll(1000), entry
        finally:
            os.close(fd)
    assert stats(q)['leased'] == 0


def test_unacked_lease_expires_and_receives_goes_up(mount):
    q = mount.mkq('jobs', visibility_timeout=0.5)
    push(q, b'x')
    mid, body = lease(q)
    assert body == b'x'
    first = xattr(q / 'leased' / mid, 'user.spool.first_received')
    assert wait_until(lambda: stats(q)['visible'] == 1, timeout=5)
    s = stats(q)
    assert (s['leased'], s['expired_total']) == (0, 1)
    mid2, body2 = lease(q)
    assert (mid2, body2) == (mid, b'x')
    assert xattr(q / 'leased' / mid, 'user.spool.receives') == '2'
    assert xattr(q / 'leased' / mid, 'user.spool.first_received') == first


def test_priority_order_and_push_order(mount):
    q = mount.mkq('jobs')
    for body, prio in ((b'p0-a', 0), (b'p9-a', 9), (b'p0-b', 0),
                       (b'p9-b', 9), (b'pm1', -1), (b'p3', 3)):
        fd = os.open(q / 'x', os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(fd, body)
        os.setxattr(fd, 'user.spool.priority', b'%d' % prio)
        os.close(fd)
    got = []
    while True:
        c = claim(q)
        if c is None:
            break
        got.append(read_file(q / 'leased' / c))
    assert got == [b'p9-a', b'p9-b', b'p3', b'p0-a', b'p0-b', b'pm1']
