"""A Redis store of layout 1 (every key under one hash tag {P}: spoolfs
before per-family keys, docs/decisions.md "Redis Cluster: one per-family
layout") is converted at the first open by this version, in one call:
queues, settings, owners and modes, messages with their ids, names and
states, timers; ids go on from where they were. Refused, with the reason,
while a daemon of layout 1 still serves it. The store is
tests/fs/fixtures/redis-layout1.rdb, written by spoolfs at commit 6026623 (the
last of layout 1): queues jobs (a, b, c: "one", "two", "three";
max_receives=3, priority=2), jobs.retry (one message "later" delayed by
1 s) and mail (mode 750, "hello" leased for 30 s), all long due. Each test
loads it into a redis-server of its own, stopped by its pid.
"""
import os
import shutil
import subprocess

import pytest

from conftest import BIN
from redisutil import RedisServer, spoolfs_exit
from spoolutil import config, ids, push, read_file, stats, wait_until

FIXTURE = os.path.join(os.path.dirname(__file__), 'fixtures',
                       'redis-layout1.rdb')
JOBS = {'4UG6qpiVNHU': (b'one', 'a'), '4UG6qpimyPY': (b'two', 'b'),
        '4UG6qpj4ZXc': (b'three', 'c')}
LAST_OLD_ID = '4UG6qwxPzUW'
# the daemons run in the Redis Cluster's mode (a test seam of conn.c):
# these tests start their own server, so whatever the suite's store
CLUSTER_MODE = bool(os.environ.get('SPOOL_REDIS_CLUSTER_MODE'))


@pytest.fixture
def old_store():
    """A redis-server holding the layout-1 store under the prefix "old"
    (AOF off: it starts from the RDB; the daemons run --sync none)."""
    s = RedisServer(extra=['--appendonly', 'no', '--dbfilename',
                           'layout1.rdb'])
    shutil.copy(FIXTURE, os.path.join(s.dir, 'layout1.rdb'))
    try:
        s.start()
        assert s.cli('EXISTS', '{old}:q:jobs:s').strip() == '1'
        yield s
    finally:
        s.stop()


def raw(server, *args):
    """redis-cli's output, error replies included."""
    r = subprocess.run(server.cli_argv(*args), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_layout1_store_converted_at_first_open(old_store, mount_factory):
    m = mount_factory('--sync', 'none', store=old_store.url('old'))
    mnt = m.mnt
    assert 'converted the store {old} to per-family keys (layout 2): ' \
        '3 queue(s)' in m.log()
    assert sorted(os.listdir(mnt)) == ['.metrics', 'jobs', 'jobs.retry',
                                       'mail']
    # messages: ids, bodies, names; settings; owner and mode
    jobs = mnt / 'jobs'
    assert sorted(ids(jobs)) == sorted(JOBS)
    for i, (body, name) in JOBS.items():
        assert read_file(jobs / 'peek' / i) == body
        assert os.getxattr(jobs / 'peek' / i, 'user.spool.name') == \
            name.encode()
    c = config(jobs)
    assert (c['max_receives'], c['priority']) == ('3', '2')
    assert config(mnt / 'jobs.retry')['delay'] == '1'
    assert oct(os.stat(mnt / 'mail').st_mode & 0o777) == '0o750'
    # timers kept: the delay and the lease ran out long ago
    assert wait_until(lambda: stats(mnt / 'jobs.retry')['visible'] == 1)
    assert wait_until(lambda: stats(mnt / 'mail')['visible'] == 1)
    s = stats(mnt / 'mail')
    assert (s['leased'], s['expired_total'], s['pushed_total']) == (0, 1, 1)
    assert read_file(mnt / 'jobs.retry' / 'next') == b'later'
    assert read_file(mnt / 'mail' / 'pop') == b'hello'
    # ids go on from the old generator; a queue made now works too
    push(jobs, b'four', name='d')
    new = set(ids(jobs)) - set(JOBS)
    assert len(new) == 1 and min(new) > LAST_OLD_ID
    os.mkdir(mnt / 'fresh')
    push(mnt / 'fresh', b'x')
    assert stats(mnt / 'fresh')['visible'] == 1
    # nothing of layout 1 is left; the trap for old daemons is set
    assert raw(old_store, '--scan', '--pattern', '{old}:q:*') == ''
    # the mode's mark: '2c' in the Cluster's mode (ids per family)
    assert raw(old_store, 'GET', '{old}:layout') == \
        ('2c' if CLUSTER_MODE else '2')
    assert raw(old_store, 'TYPE', '{old}:defaults') == 'string'
    assert raw(old_store, 'TYPE', '{old:jobs}:q:jobs:s') == 'hash'
    # a daemon of layout 1 fails at its first write (the function it calls
    # at open is in the RDB: the old library)
    assert 'WRONGTYPE' in raw(old_store, 'FCALL', 'spool_defaults', '1',
                              '{old}', '', 'o', 'vt', '30')
    # a caller without the layout marker is refused, not obeyed
    assert 'layout 2' in raw(old_store, 'FCALL', 'spool2_qcount', '1',
                             '{old}', '', 'o')
    # the next start finds it converted: no second conversion
    m.remount()
    assert m.log().count('converted the store') == 1
    assert sorted(ids(jobs)) == sorted(set(JOBS) | new)
    assert read_file(jobs / 'peek' / min(new)) == b'four'


def test_layout1_store_refused_while_an_old_daemon_serves_it(
        old_store, mount_factory, tmp_path):
    # an old daemon's wake-up subscriber
    sub = subprocess.Popen(old_store.cli_argv('SUBSCRIBE', '{old}:w'),
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           stdin=subprocess.DEVNULL)
    try:
        assert sub.stdout.readline().strip() == b'subscribe'
        rc, err = spoolfs_exit(BIN, old_store.url('old'), tmp_path,
                               '--sync', 'none')
        assert rc == 2, err
        assert 'the store {old} has the single-slot layout of an older ' \
            'spoolfs, and 1 older daemon(s) still serve it (subscribers ' \
            'of {old}:w): stop or upgrade them' in err, err
        # untouched
        assert raw(old_store, 'EXISTS', '{old}:layout') == '0'
        assert raw(old_store, 'TYPE', '{old}:q:jobs:r') == 'zset'
    finally:
        sub.terminate()
        sub.wait(10)
    m = mount_factory('--sync', 'none', store=old_store.url('old'))
    assert 'converted the store {old}' in m.log()
    assert sorted(ids(m.mnt / 'jobs')) == sorted(JOBS)


def test_store_of_the_other_mode_refused(old_store, mount_factory, tmp_path):
    """A store is marked with the mode of its first daemon ({P}:layout: 2
    single primary, 2c the Cluster's); a daemon of the other mode would
    take ids from another generator: exit 2, one line naming both."""
    url = old_store.url('fresh')
    m = mount_factory('--sync', 'none', store=url)
    (m.mnt / 'jobs').mkdir()
    m.umount()
    mine = '2c' if CLUSTER_MODE else '2'
    assert raw(old_store, 'GET', '{fresh}:layout') == mine
    env = dict(os.environ)
    if CLUSTER_MODE:
        env.pop('SPOOL_REDIS_CLUSTER_MODE')
        want = 'the store {fresh} is marked for the Cluster\'s mode (ids ' \
            'per family) ({fresh}:layout 2c) and this daemon runs the ' \
            'single-primary mode; daemons of both modes must not serve ' \
            'one store'
    else:
        env['SPOOL_REDIS_CLUSTER_MODE'] = '1'
        want = 'the store {fresh} is marked for a single primary (ids per ' \
            'namespace) ({fresh}:layout 2) and this daemon runs the ' \
            'Cluster\'s mode; daemons of both modes must not serve one ' \
            'store'
    rc, err = spoolfs_exit(BIN, url, tmp_path, '--sync', 'none', env=env)
    assert rc == 2, err
    assert want in err, err
    assert len([x for x in err.splitlines() if 'marked for' in x]) == 1, err
    assert raw(old_store, 'GET', '{fresh}:layout') == mine
    # its own mode still opens it
    m = mount_factory('--sync', 'none', store=url)
    assert 'jobs' in os.listdir(m.mnt)
