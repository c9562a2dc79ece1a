"""Disk full (issue 6): the store on a 16 MB tmpfs. Filled up, pushes fail
at close() with ENOSPC and push nothing; leases, acks and reads keep
working; once space is freed pushes work again; after a remount nothing is
corrupt and nothing acknowledged is lost. Needs root (mount -t tmpfs); the
tmpfs is unmounted at the end whatever happens."""
import errno
import os
import subprocess

import pytest

from spoolutil import lease, read_file, stats, write_file

BODY = 64 * 1024

pytestmark = pytest.mark.rocksdb_only(
    'a full filesystem under the RocksDB directory; a full Redis server '
    'is test_multihost.py::test_full_redis_refuses_pushes_keeps_serving')


def sh(*cmd):
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)


def push(q, body, name):
    """Returns 0 or the errno of open/write/close."""
    try:
        write_file(q / name, body, flags=os.O_CREAT | os.O_EXCL)
    except OSError as e:
        return e.errno
    return 0


@pytest.mark.spool_timeout(300)
@pytest.mark.parametrize('sync', ['always', 'none'])
def test_full_disk_refuses_pushes_keeps_serving_and_recovers(mount_factory,
                                                             sync):
    assert os.geteuid() == 0, 'this test mounts a tmpfs: run it as root'
    m = mount_factory('--sync', sync, start=False)
    # RocksDB logs its own failed writes; the daemon says ENOSPC.
    m.expect_log(r'(?i)no space|ENOSPC|IO error|background error|'
                 r'space left|write failed|store')
    r = sh('mount', '-t', 'tmpfs', '-o', 'size=16m', 'spool-full',
           str(m.data))
    assert r.returncode == 0, r.stderr
    try:
        m.start()
        q = m.mkq('jobs')
        pushed = []         # bodies whose close() returned 0
        n = 0
        ballast = m.data / 'ballast'
        # Leave a few MB for the store, then push until it is full.
        free = os.statvfs(m.data).f_bavail * os.statvfs(m.data).f_frsize
        write_file(ballast, b'\0' * max(0, free - 6 * 1024 * 1024))
        err = 0
        while n < 2000:
            body = b'%06d' % n + os.urandom(BODY - 6)
            err = push(q, body, 'm%d' % n)
            n += 1
            if err:
                break
            pushed.append(body)
        assert err == errno.ENOSPC, 'push %d: errno %s, want ENOSPC' % (
            n, err and errno.errorcode.get(err, err))
        assert len(pushed) > 5
        # The daemon keeps a reserve free for consumers, so a push is
        # refused when it would eat into it: a large one first, small
        # ones a little later. Fill up with small ones too.
        k = 0
        while k < 5000:
            body = b's%05d' % k + os.urandom(200)
            err = push(q, body, 's%d' % k)
            k += 1
            if err:
                break
            pushed.append(body)
        assert err == errno.ENOSPC, 'small push %d: errno %s' % (k, err)
        s = stats(q)
        assert s['visible'] == len(pushed) == s['pushed_total'], s

        # Full: every push fails with ENOSPC and adds nothing, whichever
        # way it is made.
        for k in range(3):
            assert push(q, b'x' * BODY, 'full%d' % k) == errno.ENOSPC
        with pytest.raises(OSError) as e:
            write_file(q / 'lines', b'a\nb\n', flags=os.O_TRUNC)
        assert e.value.errno == errno.ENOSPC
        with pytest.raises(OSError) as e:
            write_file(q / 'push', b'p', flags=os.O_TRUNC)
        assert e.value.errno == errno.ENOSPC
        assert stats(q)['pushed_total'] == len(pushed)
        assert stats(q)['visible'] == len(pushed)

        # Reads, leases and acks keep working (a lease write is small; if
        # the engine refuses it, it must say ENOSPC and lease nothing).
        ids = os.listdir(q / 'peek')
        assert len(ids) == len(pushed)
        assert read_file(q / 'peek' / ids[0]) in pushed
        acked = set()
        for _ in range(3):
            got = lease(q)
            assert got is not None
            mid, body = got
            assert body in pushed
            try:
                os.unlink(q / 'leased' / mid)
                acked.add(body)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
        assert stats(q)['leased'] + stats(q)['visible'] + len(acked) == \
            len(pushed)

        # Free space: pushes work again.
        os.unlink(ballast)
        body = b'after' + os.urandom(100)
        assert push(q, body, 'after') == 0
        pushed.append(body)
        assert stats(q)['pushed_total'] == len(pushed) + 0

        # Remount: nothing acknowledged lost, nothing corrupt, acks kept.
        m.remount()
        want = set(pushed) - acked
        got = [read_file(q / sub / i) for sub in ('peek', 'leased')
               for i in os.listdir(q / sub)]
        assert len(got) == len(set(got))
        assert set(got) == want
        s = stats(q)
        assert s['corrupt'] == 0, s
        assert s['visible'] + s['leased'] == len(want)
        m.umount()
    finally:
        m.cleanup()
        r = sh('umount', str(m.data))
        if r.returncode != 0:
            sh('umount', '-l', str(m.data))
    assert not os.path.ismount(m.data)
