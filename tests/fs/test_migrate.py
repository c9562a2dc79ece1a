"""spool-migrate (tools/migrate/main.c, docs/scale-out.md): a RocksDB store
copied into a Redis store through the engine, then mounted on Redis and
checked message by message: bodies byte for byte, names, user.* attributes,
priorities and order, remaining delays, leased messages (copied as visible),
settings, owner and mode, counts. The Redis server is test_multihost's
(its own, or the one SPOOL_TEST_STORE names)."""
import os
import subprocess

from conftest import BIN
from spoolutil import (counts, ids, lease, push, read_file, set_config,
                       write_file)
from test_multihost import redis_url  # noqa: F401 - a fixture

MIGRATE = os.environ.get('SPOOL_MIGRATE_BIN') or \
    str(BIN.parent.parent / 'tools' / 'spool-migrate')


def migrate(*args):
    assert os.access(MIGRATE, os.X_OK), '%s is not built' % MIGRATE
    return subprocess.run([MIGRATE, *args], capture_output=True, text=True,
                          timeout=120)


def push_with(q, name, body, prio=None, delay=None, attrs=()):
    """A draft with per-message xattrs (setfattr), pushed by mv."""
    draft = q / ('.' + name)
    write_file(draft, body)
    for k, v in [('user.spool.priority', prio), ('user.spool.delay', delay),
                 *attrs]:
        if v is not None:
            subprocess.run(['setfattr', '-n', k, '-v', v, str(draft)],
                           check=True)
    subprocess.run(['mv', str(draft), str(q / name)], check=True)


def snapshot(q, sub):
    """[(body, name, priority, user attributes)] in listing order."""
    out = []
    for i in ids(q, sub):
        p = q / sub / i
        user = {a: os.getxattr(p, a) for a in os.listxattr(p)
                if not a.startswith('user.spool.')}
        out.append((read_file(p), os.getxattr(p, 'user.spool.name'),
                    int(os.getxattr(p, 'user.spool.priority')), user))
    return out


def test_rocksdb_store_copied_into_redis(mount_factory, redis_url, tmp_path):  # noqa: F811
    src = mount_factory(store=str(tmp_path / 'rocks'))
    jobs = src.mkq('jobs', mode=0o750)
    push(jobs, b'first', name='a.txt')
    push(jobs, bytes(range(256)) * 400, name='binary.bin')   # 100 KiB
    push(jobs, b'', name='empty')
    push_with(jobs, 'urgent', b'high priority', prio='7',
              attrs=[('user.colour', 'blue'), ('user.n', '42')])
    push_with(jobs, 'later', b'delayed an hour', delay='3600',
              attrs=[('user.why', 'batch')])
    push(jobs, b'to be leased', name='leased.txt')
    push(jobs, b'last', name='z')
    # the oldest priority-0 message ('first') is leased now
    mid, body = lease(jobs)
    assert body == b'high priority'
    mid, body = lease(jobs)
    assert body == b'first'
    set_config(jobs, visibility_timeout=45, max_receives=3, retention=86400,
               priority=2)
    other = src.mkq('other.x')
    for n in range(50):
        push(other, b'message %d' % n, name='m%d' % n)
    set_config(other, paused=1, dedup='content')
    src.mkq('empty.q', mode=0o700)

    want_peek = snapshot(jobs, 'peek')
    want_leased = snapshot(jobs, 'leased')
    want_delayed = snapshot(jobs, 'delayed')
    delayed_end = os.stat(jobs / 'delayed' / ids(jobs, 'delayed')[0]).st_mtime
    want_other = snapshot(other, 'peek')
    want_config = {q: read_file(src.q(q) / 'config')
                   for q in ('jobs', 'other.x', 'empty.q')}
    assert (len(want_peek), len(want_leased), len(want_delayed)) == (4, 2, 1)

    # A mounted RocksDB store is locked by its daemon: refused, exit 2.
    r = migrate(src.store, redis_url + '/' + tmp_path.name)
    assert r.returncode == 2, r
    assert 'spool-migrate: cannot open the store %s' % src.store in r.stderr
    src.umount()

    dst_url = '%s/%s' % (redis_url, tmp_path.name)
    r = migrate('--dry-run', src.store, dst_url)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ('empty.q: 0 messages to copy\njobs: 7 messages to '
                        'copy\nother.x: 50 messages to copy\n')
    r = migrate(src.store, dst_url)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ('empty.q: 0 messages copied\njobs: 7 messages '
                        'copied\nother.x: 50 messages copied\n')

    dst = mount_factory(store=dst_url)
    j = dst.q('jobs')
    # leased messages come back visible, in their old order within their
    # priority; receive counts start again
    assert counts(j) == (6, 1, 0)
    got = snapshot(j, 'peek')
    assert sorted(got, key=repr) == sorted(want_peek + want_leased, key=repr)
    assert [b for b, *_ in got] == [b'high priority', b'first',
                                    bytes(range(256)) * 400, b'',
                                    b'to be leased', b'last']
    assert all(os.getxattr(j / 'peek' / i, 'user.spool.receives') == b'0'
               for i in ids(j, 'peek'))
    assert snapshot(j, 'delayed') == want_delayed
    end = os.stat(j / 'delayed' / ids(j, 'delayed')[0]).st_mtime
    assert abs(end - delayed_end) < 60, (end, delayed_end)
    assert snapshot(dst.q('other.x'), 'peek') == want_other
    for q, text in want_config.items():
        assert read_file(dst.q(q) / 'config') == text, q
    assert os.stat(j).st_mode & 0o7777 == 0o750
    assert os.stat(dst.q('empty.q')).st_mode & 0o7777 == 0o700
    assert sorted(n for n in os.listdir(dst.mnt) if not n.startswith('.')) \
        == ['empty.q', 'jobs', 'other.x']

    # A second copy into the same (now non-empty) queues is refused.
    dst.umount()
    r = migrate(src.store, dst_url)
    assert r.returncode == 1
    assert r.stderr == ('spool-migrate: queue jobs: the destination queue '
                        'is not empty; nothing copied into it\n')
