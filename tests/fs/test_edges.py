"""Holes found with the damage round of issue 11: lease times at the edges
of what touch -d can say, numbers in config, a store on a filesystem of a
few MB."""
import errno
import os
import time

import pytest

from spoolutil import claim, config, push, read_file, set_config, stats, \
    wait_until
from test_diskfull import push as push_one, sh


@pytest.mark.parametrize('when', ['1969-12-31', '@0', '@-1', '@-100000000000'])
def test_touch_d_at_or_before_the_epoch_releases(mount, when):
    """A time at or before now releases the message; a negative one was
    taken for a heartbeat and extended the lease instead."""
    q = mount.mkq('jobs', visibility_timeout=30)
    push(q, b'x')
    mid = claim(q)
    mount.sh("TZ=UTC touch -d '%s' jobs/leased/%s" % (when, mid))
    assert wait_until(lambda: stats(q)['visible'] == 1, timeout=3)
    s = stats(q)
    assert (s['visible'], s['leased']) == (1, 0), s
    assert os.listdir(q / 'leased') == []


def test_touch_d_far_future_saturates(mount):
    """The largest time touch can give keeps the lease as late as can be
    held, not a 30 s heartbeat (the ms product overflowed)."""
    q = mount.mkq('jobs', visibility_timeout=30)
    push(q, b'x')
    mid = claim(q)
    mount.sh('touch -d @9223372036854775807 jobs/leased/%s' % mid)
    st = os.stat(q / 'leased' / mid)
    # far beyond any heartbeat: more than 100 years from now
    assert st.st_mtime > time.time() + 100 * 365 * 86400, st.st_mtime
    s = stats(q)
    assert (s['visible'], s['leased']) == (0, 1)
    mount.remount()
    assert os.listdir(q / 'leased') == [mid]
    assert os.stat(q / 'leased' / mid).st_mtime_ns == st.st_mtime_ns


@pytest.mark.parametrize('line', [
    'visibility_timeout=0x10', 'visibility_timeout=1e3',
    'visibility_timeout=nan', 'visibility_timeout=inf', 'delay=+5',
    'retention=16abc', 'receive_wait=0x10', 'max_size=0x10',
    'dedup_window=1.5.0'])
def test_config_numbers_are_decimal(mount, line):
    q = mount.mkq('jobs')
    before = config(q)
    with pytest.raises(OSError) as e:
        set_config(q, **dict([line.split('=', 1)]))
    assert e.value.errno == errno.EINVAL
    assert config(q) == before
    # printf(1) into config the way a shell user writes it: refused too
    r = mount.sh("env printf '%s\\n' > jobs/config" % line, check=False)
    assert r.returncode != 0 and b'Invalid argument' in r.stderr, r
    assert config(q) == before


def test_config_decimal_fractions_still_accepted(mount):
    q = mount.mkq('jobs')
    set_config(q, visibility_timeout='2.5', delay='.5', receive_wait='inf')
    c = config(q)
    assert (c['visibility_timeout'], c['delay'], c['receive_wait']) == \
        ('2.5', '0.5', 'inf')


@pytest.mark.rocksdb_only(
    'a small filesystem under the RocksDB directory')
@pytest.mark.spool_timeout(300)
@pytest.mark.parametrize('size_mb', [4, 8])
def test_store_on_a_small_filesystem_takes_pushes(mount_factory, size_mb):
    """On a tmpfs of a few MB, pushes work until it is full (the free-space
    reserve and RocksDB's preallocations are sized from the filesystem),
    then fail with ENOSPC while leases and acks go on, and everything
    acknowledged is there after a restart."""
    assert os.geteuid() == 0, 'this test mounts a tmpfs: run it as root'
    m = mount_factory(start=False)
    m.expect_log(r'(?i)no space|ENOSPC|space left|store')
    r = sh('mount', '-t', 'tmpfs', '-o', 'size=%dm' % size_mb,
           'spool-small', str(m.data))
    assert r.returncode == 0, r.stderr
    try:
        m.start()
        q = m.mkq('jobs')
        assert push_one(q, b'hi', 'first') == 0
        pushed = [b'hi']
        err = 0
        while not err and len(pushed) < 2000:
            body = b'%06d' % len(pushed) + os.urandom(20000)
            err = push_one(q, body, 'm%d' % len(pushed))
            if not err:
                pushed.append(body)
        assert err == errno.ENOSPC, err
        # most of the filesystem held messages before it was full
        assert sum(map(len, pushed)) > size_mb * 2**20 * 0.4, len(pushed)
        print('%d MB tmpfs: %d pushes of 20 kB before ENOSPC'
              % (size_mb, len(pushed)))
        for _ in range(10):
            mid = claim(q)
            assert read_file(q / 'leased' / mid) in pushed
            os.unlink(q / 'leased' / mid)
        m.remount()
        assert stats(q)['visible'] == len(pushed) - 10
        m.umount()
    finally:
        m.cleanup()
        r = sh('umount', str(m.data))
        if r.returncode != 0:
            sh('umount', '-l', str(m.data))
    assert not os.path.ismount(m.data)
