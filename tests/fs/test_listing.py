"""Issue 15 goal 4: `ls -l` of a message dir.

`ls -l`, `find -ls`, `du` and `rsync` of peek/, delayed/ and leased/ give
what `stat` of each name gives and change nothing; the kernel keeps the
entries a listing gave (READDIRPLUS, RocksDB store), so `ls -l` asks
nothing per entry, and a message that left a listing is gone for `stat`
at once (fs/listed.c, docs/decisions.md); other xattr namespaces are
EOPNOTSUPP, so ls stops asking for them."""
import errno
import os
import stat as st
import time

from conftest import store_is_redis
from spoolutil import (claim, errno_of, ids, push_lines, read_file, stats,
                       wait_until)
from test_tools import crawl, crawl_setup, need, ok, run

SUBS = ('peek', 'delayed', 'leased')


def ls_l(mount, sub, q='jobs'):
    """`ls -lin` of a message dir: {name: (ino, mode, size, mtime s)}."""
    r = ok(run('ls -lin --time-style=+%%s %s/%s' % (q, sub), mount.mnt))
    lines = r.stdout.decode().splitlines()
    assert lines[0].startswith('total ')
    out = {}
    for ln in lines[1:]:
        ino, mode, _, _, _, size, mtime, name = ln.split()
        out[name] = (int(ino), mode, int(size), int(mtime))
    return out


def stat_row(p):
    s = os.stat(p)
    return (s.st_ino, st.filemode(s.st_mode), s.st_size, int(s.st_mtime))


def test_ls_l_gives_what_stat_gives_in_each_listing(mount):
    need('ls')
    q, _ = crawl_setup(mount)
    for sub in SUBS:
        listed = ls_l(mount, sub)
        assert sorted(listed) == ids(q, sub) and listed, sub
        for name, row in listed.items():
            assert row == stat_row(q / sub / name), (sub, name)
            assert row[1] == '-r--r--r--'
            assert row[2] == len(read_file(q / sub / name))


def test_ls_l_and_crawlers_change_nothing(mount, tmp_path):
    need('ls', 'find', 'du', 'rsync')
    q, _ = crawl_setup(mount)
    leased = ids(q, 'leased')
    for cmd in ('ls -lR .', 'ls -li jobs/peek jobs/leased jobs/delayed',
                'find . -ls', 'du -a .',
                'rsync -a --dry-run ./ %s/' % (tmp_path / 'bk')):
        r = ok(crawl(mount, cmd))
        if cmd.startswith('find'):
            # every message in the listing, nothing that takes or waits
            out = r.stdout.decode()
            for sub in SUBS:
                for i in ids(q, sub):
                    assert './jobs/%s/%s' % (sub, i) in out
            for hidden in ('next', 'claim', 'pop', 'push', 'lines'):
                assert './jobs/%s\n' % hidden not in out
    s = stats(q)
    assert (s['visible'], s['leased'], s['delayed']) == (4, 1, 1)
    assert ids(q, 'leased') == leased
    assert not (tmp_path / 'bk').exists()


def test_a_message_that_left_is_gone_for_stat_at_once(mount):
    """A message leased or acked after `ls -l` leaves the next listing,
    and `stat` of its old path fails with ENOENT at once: the kernel kept
    the listed entries (READDIRPLUS), and the lease and the ack told it to
    look them up again before they answered (fs/listed.c). The inode
    number of the message that stayed is the one ls showed."""
    need('ls')
    q = mount.mkq('jobs', visibility_timeout=3600)
    push_lines(q, [b'a', b'b', b'c'])
    before = ls_l(mount, 'peek')
    a, b, c = sorted(before)
    assert claim(q) == a
    assert not os.path.exists(q / 'peek' / a)
    assert claim(q) == b
    os.unlink(q / 'leased' / b)                 # acked
    for i in (a, b):
        assert errno_of(os.stat, q / 'peek' / i) == errno.ENOENT, i
    assert errno_of(os.stat, q / 'leased' / b) == errno.ENOENT
    assert ids(q) == [c]
    assert ids(q, 'leased') == [a]
    assert stat_row(q / 'peek' / c) == before[c]
    assert os.stat(q / 'leased' / a).st_ino == before[a][0]
    s = stats(q)
    assert (s['visible'], s['leased']) == (1, 1)


def lookups(mount):
    text = read_file(mount.mnt / '.metrics').decode()
    return {k: int(v) for k, v in (ln.split() for ln in text.splitlines()
                                   if ln.startswith(('spoolfs_lookups_total ',
                                                     'spoolfs_listing_inv')))}


def test_ls_l_asks_no_lookup_per_entry(mount):
    """RocksDB: `ls -l` of 300 messages takes their nodes and attributes
    from the listing (READDIRPLUS): a few lookups, not one per entry.
    Redis: other hosts change the store without telling this one, so the
    kernel keeps nothing and each name is looked up."""
    need('ls')
    q = mount.mkq('jobs')
    push_lines(q, [b'm%d' % n for n in range(300)])
    m0 = lookups(mount)
    listed = ls_l(mount, 'peek')
    m1 = lookups(mount)
    assert sorted(listed) == ids(q) and len(listed) == 300
    asked = m1['spoolfs_lookups_total'] - m0['spoolfs_lookups_total']
    if store_is_redis():
        assert asked >= 300, asked
    else:
        assert asked < 30, asked
        # the same again: the kernel still has them all
        ls_l(mount, 'peek')
        m2 = lookups(mount)
        assert m2['spoolfs_lookups_total'] - m1['spoolfs_lookups_total'] \
            < 30
    assert m1['spoolfs_listing_invalidations_total'] == \
        m0['spoolfs_listing_invalidations_total']


def test_a_delay_that_ended_after_ls_l_is_seen_at_once(mount):
    """The timer thread's changes (a delay ending, a lease running out)
    tell the kernel too: once stats shows the message visible, stat of
    delayed/<id> fails. (leased/<id> of a lease that ran out still
    resolves, for its late ack: DESIGN §4.)"""
    need('ls')
    q = mount.mkq('jobs', delay=1)
    push_lines(q, [b'a'])
    (a,) = sorted(ls_l(mount, 'delayed'))
    assert wait_until(lambda: stats(q)['delayed'] == 0, timeout=10)
    assert errno_of(os.stat, q / 'delayed' / a) == errno.ENOENT
    assert read_file(q / 'peek' / a) == b'a'


def test_chmod_of_the_queue_after_ls_l_shows_at_once(mount):
    """A listed message's mode follows its queue's at once."""
    need('ls', 'chmod')
    q = mount.mkq('jobs', mode=0o755)
    push_lines(q, [b'a'])
    (a,) = ls_l(mount, 'peek')
    assert ls_l(mount, 'peek')[a][1] == '-r--r--r--'
    ok(run('chmod 700 jobs', mount.mnt))
    assert st.filemode(os.stat(q / 'peek' / a).st_mode) == '-r--------'


def test_open_of_an_acked_message_fails_at_once(mount):
    """The kernel's copy of a listed entry is only its name and
    attributes: an open asks the daemon, which finds no message."""
    need('ls', 'cat')
    q = mount.mkq('jobs', visibility_timeout=3600)
    push_lines(q, [b'a'])
    (i,) = ls_l(mount, 'peek')
    assert claim(q) == i
    os.unlink(q / 'leased' / i)
    try:
        os.open(q / 'peek' / i, os.O_RDONLY)
        raise AssertionError('opened an acked message')
    except FileNotFoundError as e:
        assert e.errno == errno.ENOENT
    r = run('cat jobs/peek/%s' % i, mount.mnt)
    assert r.returncode == 1 and r.stdout == b''


def test_ls_l_of_5000_messages_lists_all(mount):
    need('ls')
    q = mount.mkq('jobs')
    push_lines(q, [b'm%d' % n for n in range(5000)])
    want = ids(q)
    for _ in range(2):              # cold, then with the kernel's entries
        listed = ls_l(mount, 'peek')
        assert sorted(listed) == want and len(want) == 5000
        assert len({row[0] for row in listed.values()}) == 5000
        assert {row[2] for row in listed.values()} <= {2, 3, 4, 5}
    r = ok(run('ls -l jobs/peek | wc -l', mount.mnt))
    assert int(r.stdout) == 5001
    assert stats(q)['visible'] == 5000 and stats(q)['leased'] == 0


def test_ls_l_probes_no_security_or_acl_xattr(mount):
    """Non-user namespaces answer EOPNOTSUPP (ls then stops asking for
    every file); user.* attributes still answer."""
    q = mount.mkq('jobs')
    push_lines(q, [b'x'])
    (i,) = ids(q)
    for name in ('security.selinux', 'system.posix_acl_access',
                 'trusted.x'):
        for p in (q / 'peek' / i, q, q / 'stats'):
            try:
                os.getxattr(p, name)
                raise AssertionError('%s answered on %s' % (name, p))
            except OSError as e:
                assert e.errno == errno.EOPNOTSUPP, (name, p, e)
    assert os.getxattr(q / 'peek' / i, 'user.spool.receives') == b'0'
    try:
        os.getxattr(q / 'peek' / i, 'user.nope')
        raise AssertionError('user.nope answered')
    except OSError as e:
        assert e.errno == errno.ENODATA


def test_mv_of_a_listed_message_then_touch(mount):
    """A listed entry moved by rename (peek → leased: a lease) answers as
    its new dir's: touch -d sets the lease's expiry, stat shows it, and
    the move back releases it."""
    need('ls', 'mv', 'touch', 'stat')
    q = mount.mkq('jobs', visibility_timeout=3600)
    push_lines(q, [b'a'])
    (i,) = ls_l(mount, 'peek')
    ok(run('mv jobs/peek/%s jobs/leased/%s' % (i, i), mount.mnt))
    assert stats(q)['leased'] == 1
    assert os.stat(q / 'leased' / i).st_mtime > time.time() + 3000
    ok(run('touch -d @2000000000 jobs/leased/%s' % i, mount.mnt))
    r = ok(run('stat -c %%Y jobs/leased/%s' % i, mount.mnt))
    assert int(r.stdout) == 2000000000
    assert xattr_int(q / 'leased' / i, 'user.spool.receives') == 1
    ok(run('mv jobs/leased/%s jobs/peek/%s' % (i, i), mount.mnt))
    s = stats(q)
    assert (s['visible'], s['leased']) == (1, 0)
    assert ls_l(mount, 'peek')[i][0] == os.stat(q / 'peek' / i).st_ino


def xattr_int(p, name):
    return int(os.getxattr(p, name))


def test_a_lease_through_this_mount_drops_the_listed_entry_at_once(mount):
    """Once a consumer of this mount has its message (next, claim, pop),
    peek/<id> is gone, also right after `ls -l` showed it."""
    need('ls', 'cat')
    q = mount.mkq('jobs', visibility_timeout=3600)
    push_lines(q, [b'a', b'b', b'c'])
    a, b, c = sorted(ls_l(mount, 'peek'))
    assert ok(run('cat jobs/next', mount.mnt)).stdout == b'a'
    assert not os.path.exists(q / 'peek' / a)
    assert claim(q) == b
    assert not os.path.exists(q / 'peek' / b)
    assert ok(run('cat jobs/pop', mount.mnt)).stdout == b'c'
    assert not os.path.exists(q / 'peek' / c)
    s = stats(q)
    assert (s['visible'], s['leased'], s['acked_total']) == (0, 2, 1)
