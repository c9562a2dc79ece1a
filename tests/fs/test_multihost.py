"""Several hosts on one Redis store (docs/scale-out.md): two daemons, two
mount points, one namespace on one redis-server. Runs in every fs run: on
the store SPOOL_TEST_STORE names when it is Redis, else on a redis-server
of this module's own (started on a free loopback port in a temporary
directory, stopped by its pid). A missing redis-server fails the tests.
"""
import errno
import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import BIN, STORE, store_is_redis
from redisutil import RedisServer
from spoolutil import (ids, lease, push, read_file, stats, set_config,
                       wait_until)


@pytest.fixture(scope='module')
def redis_url():
    if store_is_redis():
        yield STORE.rstrip('/')
        return
    server = RedisServer()
    try:
        server.start()
        yield server.url('mh')
    finally:
        server.stop()


@pytest.fixture
def hosts(mount_factory, redis_url, tmp_path):
    """Two daemons (A, B) on one namespace of the store."""
    store = '%s/%s' % (redis_url, tmp_path.name)
    a = mount_factory(store=store)
    b = mount_factory(store=store)
    return a, b


def test_push_on_a_lease_on_b(hosts):
    a, b = hosts
    qa = a.mkq('jobs')
    push(qa, b'from a', name='x.txt')
    qb = b.q('jobs')
    assert os.path.isdir(qb)
    mid, body = lease(qb)
    assert body == b'from a'
    assert stats(qa)['leased'] == 1
    os.unlink(qb / 'leased' / mid)
    s = stats(qa)
    assert (s['leased'], s['acked_total']) == (0, 1)
    assert lease(qa) is None


def test_reader_parked_on_b_woken_by_push_on_a(hosts):
    a, b = hosts
    qa = a.mkq('jobs')
    qb = b.q('jobs')
    out = {}

    def reader():
        out['body'] = read_file(qb / 'next')   # blocks until a message

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.3)          # the reader is parked on B (not asserted)
    assert t.is_alive() and 'body' not in out
    push(qa, b'wake up')
    t.join(10)
    assert not t.is_alive(), 'the reader on B was not woken'
    assert out['body'] == b'wake up'
    assert stats(qa)['leased'] == 1


def test_mv_peek_to_leased_race_between_hosts_has_one_winner(hosts):
    a, b = hosts
    qa = a.mkq('jobs')
    qb = b.q('jobs')
    for rnd in range(10):
        push(qa, b'r%d' % rnd)
        (mid,) = ids(qa)
        assert ids(qb) == [mid]
        barrier = threading.Barrier(2)
        results = []

        def racer(q):
            barrier.wait()
            try:
                os.rename(q / 'peek' / mid, q / 'leased' / mid)
                results.append(0)
            except OSError as e:
                results.append(e.errno)

        ts = [threading.Thread(target=racer, args=(q,)) for q in (qa, qb)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert sorted(results) == [0, errno.ENOENT], results
        os.unlink(qa / 'leased' / mid)
    assert stats(qb)['acked_total'] == 10


def test_lease_on_a_touched_released_and_acked_on_b(hosts):
    a, b = hosts
    qa = a.mkq('jobs', visibility_timeout=30)
    qb = b.q('jobs')
    push(qa, b'x')
    push(qa, b'y')
    mid, _ = lease(qa)
    when = int(time.time()) + 100
    b.sh('touch -d @%d jobs/leased/%s' % (when, mid))
    assert os.stat(qa / 'leased' / mid).st_mtime_ns == when * 10**9
    b.sh('mv jobs/leased/%s jobs/peek/' % mid)          # released on B
    assert stats(qa)['visible'] == 2
    mid2, body = lease(qa)
    assert body == b'x' and mid2 == mid
    b.sh('rm jobs/leased/%s' % mid)                      # acked on B
    s = stats(qa)
    assert (s['visible'], s['leased'], s['acked_total']) == (1, 0, 1)


def test_config_on_a_seen_on_b(hosts):
    a, b = hosts
    qa = a.mkq('jobs')
    qb = b.q('jobs')
    set_config(qa, paused=1)
    push(qa, b'held')
    assert lease(qb) is None                   # paused, seen at once
    set_config(qa, paused=0)
    assert lease(qb)[1] == b'held'
    set_config(qa, max_size=4)
    # B's cached settings follow within a second (the 'c' message)
    assert wait_until(lambda: 'max_size=4' in (qb / 'config').read_text())
    with pytest.raises(OSError) as e:
        push(qb, b'too big')
    assert e.value.errno == errno.EFBIG


def test_chmod_and_chown_on_a_seen_on_b(hosts):
    """`chmod` and `chown` (the programs) on host A reach host B: B's
    daemon drops its cached attributes on A's 'c' message, and B's kernel
    keeps the old ones 1 s at most (the queue directory's attribute
    timeout). The fixed entries follow the queue's mode."""
    a, b = hosts
    a.mkq('jobs')
    qb = b.q('jobs')
    assert stat_mode(qb) == 0o755
    t0 = time.monotonic()
    a.sh('chmod 700 jobs && chown 1234:5678 jobs')
    assert wait_until(lambda: stat_mode(qb) == 0o700)
    assert time.monotonic() - t0 < 3
    st = os.stat(qb)
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert wait_until(lambda: stat_mode(qb / 'config') == 0o600)
    assert stat_mode(qb / 'stats') == 0o400
    b.sh('chmod 751 jobs')
    assert wait_until(lambda: stat_mode(a.q('jobs')) == 0o751)


def stat_mode(path):
    return os.stat(path).st_mode & 0o7777


def test_rmdir_on_a_seen_on_b(hosts):
    a, b = hosts
    qa = a.mkq('jobs')
    qb = b.q('jobs')
    assert os.path.isdir(qb)
    os.rmdir(qa)
    assert wait_until(lambda: not os.path.exists(qb))
    assert 'jobs' not in os.listdir(b.mnt)


def test_stats_identical_on_both(hosts):
    a, b = hosts
    qa = a.mkq('jobs')
    qb = b.q('jobs')
    for i in range(5):
        push(qa if i % 2 else qb, b'm%d' % i, name='m%d' % i)
    lease(qa)
    drop = ('oldest_visible_age_ms',)
    sa = {k: v for k, v in stats(qa).items() if k not in drop}
    sb = {k: v for k, v in stats(qb).items() if k not in drop}
    assert sa == sb
    assert (sa['visible'], sa['leased'], sa['pushed_total']) == (4, 1, 5)


def redis_cli(url, *args):
    """redis-cli against the server of url (redis://HOST:PORT/...), or
    every node of a Cluster's (redis+cluster://H:P,H:P.../...); the
    output of the last."""
    cli = shutil.which('redis-cli')
    assert cli, 'redis-cli is missing (package redis-tools)'
    out = ''
    for hostport in url.split('://', 1)[1].split('/')[0].split(','):
        host, port = hostport.rsplit(':', 1)
        r = subprocess.run([cli, '-h', host, '-p', port, *args],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        out = r.stdout
    return out


def test_full_redis_refuses_pushes_keeps_serving(hosts, redis_url):
    """maxmemory reached: a push's close() gets ENOSPC; leases, reads,
    acks and releases still work (their functions carry allow-oom), so
    consumers drain; once there is room, pushes work again."""
    a, b = hosts
    qa = a.mkq('jobs')
    qb = b.q('jobs')
    push(qa, b'one', name='one')
    push(qa, b'two', name='two')
    redis_cli(redis_url, 'CONFIG', 'SET', 'maxmemory', '1')
    try:
        with pytest.raises(OSError) as e:
            push(qa, b'refused', name='three')
        assert e.value.errno == errno.ENOSPC
        mid, body = lease(qb)
        assert body == b'one'
        os.unlink(qb / 'leased' / mid)
        mid, body = lease(qa)
        assert body == b'two'
        os.rename(qa / 'leased' / mid, qa / 'peek' / mid)    # released
        s = stats(qa)
        assert (s['visible'], s['acked_total'], s['pushed_total']) == \
            (1, 1, 2)
    finally:
        redis_cli(redis_url, 'CONFIG', 'SET', 'maxmemory', '0')
    push(qb, b'after', name='after')
    assert stats(qa)['visible'] == 2


def spoolfs_exit(data, mnt):
    """Runs a daemon in the foreground on data; (exit status, stderr)."""
    r = subprocess.run([str(BIN), '-f', '--data', data, str(mnt)],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=30)
    return r.returncode, r.stderr


def test_misconfigured_or_absent_redis_exits_2_naming_why(redis_url,
                                                          tmp_path):
    """DESIGN §10: the daemon refuses a server whose settings do not hold
    the contract, with exit 2 and one line that names the setting."""
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    data = '%s/%s' % (redis_url, tmp_path.name)
    cases = [
        (('appendfsync', 'everysec'), ('appendfsync', 'always'),
         'appendfsync is everysec; --sync always needs appendfsync always'),
        (('appendonly', 'no'), ('appendonly', 'yes'),
         'appendonly is no; --sync always needs appendonly yes'),
        (('maxmemory-policy', 'allkeys-lru'), ('maxmemory-policy',
                                               'noeviction'),
         'maxmemory-policy is allkeys-lru; the store needs noeviction'),
    ]
    for bad, good, why in cases:
        redis_cli(redis_url, 'CONFIG', 'SET', *bad)
        try:
            rc, err = spoolfs_exit(data, mnt)
        finally:
            redis_cli(redis_url, 'CONFIG', 'SET', *good)
        assert rc == 2, (bad, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and why in lines[0], (bad, err)
        assert not os.path.ismount(mnt)
    rc, err = spoolfs_exit('redis://127.0.0.1:1/x', mnt)
    assert rc == 2 and err.strip().endswith('cannot connect'), err
    rc, err = spoolfs_exit(data + '?replicas=x', mnt)
    assert rc == 2 and 'not redis://HOST:PORT' in err, err
