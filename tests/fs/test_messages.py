"""DESIGN.md §3 and §5: message files in peek/, delayed/, leased/."""
import errno
import os
import subprocess
import sys
import threading
import time

import pytest

from spoolutil import (MSG_XATTRS, claim, ids, lease, now_ms, push,
                       push_lines, read_file, set_config, stats, wait_until,
                       write_errno, xattr)


def ms(ns):
    return ns / 1e6


def push_with(q, body, attrs, name='msg'):
    """Pushes body with xattrs set on the write handle before close."""
    fd = os.open(q / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, body)
    for k, v in attrs.items():
        os.setxattr(fd, k, str(v).encode())
    os.close(fd)


def test_peek_read_is_the_body_and_leases_nothing(mount):
    q = mount.mkq('jobs')
    push(q, b'peek body')
    (i,) = ids(q)
    before = stats(q)
    for _ in range(3):
        assert read_file(q / 'peek' / i) == b'peek body'
        assert mount.sh('cat jobs/peek/%s' % i).stdout == b'peek body'
    assert os.stat(q / 'peek' / i).st_size == 9
    after = stats(q)
    assert (after['visible'], after['leased']) == (before['visible'], 0)
    assert xattr(q / 'peek' / i, 'user.spool.receives') == '0'


def test_ids_fixed_length_alphanumeric_increasing(mount):
    q = mount.mkq('jobs')
    push_lines(q, range(500))
    i = ids(q)
    assert len(i) == 500
    assert len({len(x) for x in i}) == 1
    assert all(x.isascii() and x.isalnum() for x in i)
    assert i == sorted(i) and len(set(i)) == 500


def test_peek_times(mount):
    q = mount.mkq('jobs')
    t0 = now_ms()
    push(q, b'x')
    t1 = now_ms()
    (i,) = ids(q)
    sent = int(xattr(q / 'peek' / i, 'user.spool.sent'))
    assert t0 - 5 <= sent <= t1 + 5
    st = os.stat(q / 'peek' / i)
    # st_ctime: the time it was sent; st_mtime: the time it became visible.
    assert abs(ms(st.st_ctime_ns) - sent) < 1.5
    assert abs(ms(st.st_mtime_ns) - sent) < 1.5


def test_delayed_file(mount):
    q = mount.mkq('jobs', delay=10)
    push(q, b'later')
    assert ids(q) == []
    (i,) = ids(q, 'delayed')
    assert read_file(q / 'delayed' / i) == b'later'
    st = os.stat(q / 'delayed' / i)
    assert st.st_size == 5
    sent = int(xattr(q / 'delayed' / i, 'user.spool.sent'))
    assert abs(ms(st.st_ctime_ns) - sent) < 1.5
    # st_mtime: the end of its delay.
    assert abs(ms(st.st_mtime_ns) - (sent + 10000)) < 50
    assert stats(q)['delayed'] == 1


def test_leased_file_times_and_body(mount):
    q = mount.mkq('jobs', visibility_timeout=30)
    push(q, b'leased body')
    t0 = now_ms()
    mid = claim(q)
    t1 = now_ms()
    p = q / 'leased' / mid
    assert read_file(p) == b'leased body'
    st = os.stat(p)
    assert st.st_size == 11
    sent = int(xattr(p, 'user.spool.sent'))
    assert abs(ms(st.st_ctime_ns) - sent) < 1.5
    # st_mtime: the lease's expiry.
    assert t0 + 30000 - 5 <= ms(st.st_mtime_ns) <= t1 + 30000 + 5
    first = int(xattr(p, 'user.spool.first_received'))
    assert t0 - 5 <= first <= t1 + 5
    assert xattr(p, 'user.spool.receives') == '1'
    # Reading the leased body changes nothing.
    assert stats(q)['leased'] == 1


def test_every_xattr(mount):
    q = mount.mkq('jobs')
    fd = os.open(q / 'the-name', os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, b'x')
    os.setxattr(fd, 'user.spool.priority', b'4')
    os.setxattr(fd, 'user.color', b'blue')
    os.close(fd)
    (i,) = ids(q)
    p = q / 'peek' / i
    names = set(os.listxattr(p))
    assert names >= set(MSG_XATTRS) | {'user.color'}, names
    assert xattr(p, 'user.spool.id') == i
    assert xattr(p, 'user.spool.priority') == '4'
    assert xattr(p, 'user.spool.sent').isdigit()
    assert xattr(p, 'user.spool.receives') == '0'
    assert xattr(p, 'user.spool.name') == 'the-name'
    assert xattr(p, 'user.color') == 'blue'
    # Never received: assumption, "0" (no time) or no such attribute.
    try:
        assert xattr(p, 'user.spool.first_received') in ('0', '')
    except OSError as e:
        assert e.errno == errno.ENODATA
    with pytest.raises(OSError) as e:
        os.getxattr(p, 'user.nosuch')
    assert e.value.errno == errno.ENODATA
    # Size query then value, as getfattr does.
    r = mount.sh('getfattr -d jobs/peek/%s' % i)
    assert ('user.spool.id="%s"' % i).encode() in r.stdout
    assert b'user.color="blue"' in r.stdout


def test_ack_by_unlink(mount):
    q = mount.mkq('jobs')
    push(q, b'work')
    mid = claim(q)
    mount.sh('rm jobs/leased/%s' % mid)
    s = stats(q)
    assert (s['visible'], s['leased'], s['acked_total'], s['bytes']) == \
        (0, 0, 1, 0)
    for sub in ('leased', 'peek'):
        with pytest.raises(OSError) as e:
            os.unlink(q / sub / mid)
        assert e.value.errno == errno.ENOENT
    assert ids(q, 'leased') == []


def test_ack_after_lease_ran_out(mount):
    """unlink leased/<id> also works when the lease ran out and nobody
    leased the message since."""
    q = mount.mkq('jobs', visibility_timeout=0.3)
    push(q, b'slow')
    mid = claim(q)
    assert wait_until(lambda: stats(q)['visible'] == 1, timeout=5)
    os.unlink(q / 'leased' / mid)
    s = stats(q)
    assert (s['visible'], s['leased'], s['acked_total']) == (0, 0, 1)


def test_touch_extends_a_lease(mount):
    q = mount.mkq('jobs', visibility_timeout=1.5)
    push(q, b'x')
    t0 = time.monotonic()
    mid = claim(q)
    p = q / 'leased' / mid
    m0 = os.stat(p).st_mtime_ns
    time.sleep(1.0)
    before = now_ms()
    mount.sh('touch jobs/leased/%s' % mid)
    m1 = ms(os.stat(p).st_mtime_ns)
    assert before + 1500 - 5 <= m1 <= now_ms() + 1500 + 5
    assert m1 > ms(m0) + 900
    # Without the touch it would have expired at 1.5 s.
    time.sleep(max(0, 2.0 - (time.monotonic() - t0)))
    s = stats(q)
    assert (s['visible'], s['leased']) == (0, 1)
    assert wait_until(lambda: stats(q)['visible'] == 1, timeout=5)


def test_touch_d_sets_the_expiry(mount):
    q = mount.mkq('jobs', visibility_timeout=30)
    push(q, b'x')
    mid = claim(q)
    p = q / 'leased' / mid
    when = int(time.time()) + 100
    mount.sh('touch -d @%d jobs/leased/%s' % (when, mid))
    assert os.stat(p).st_mtime_ns == when * 10**9
    # A time in the past ends the lease now.
    mount.sh('touch -d @%d jobs/leased/%s' % (int(time.time()) - 10, mid))
    assert wait_until(lambda: stats(q)['visible'] == 1, timeout=3)
    assert stats(q)['leased'] == 0


def test_mv_leased_to_peek_releases(mount):
    q = mount.mkq('jobs')
    push(q, b'nack me')
    mid = claim(q)
    mount.sh('mv jobs/leased/%s jobs/peek/' % mid)
    s = stats(q)
    assert (s['visible'], s['leased'], s['acked_total']) == (1, 0, 0)
    assert ids(q) == [mid]
    assert xattr(q / 'peek' / mid, 'user.spool.receives') == '1'
    assert lease(q) == (mid, b'nack me')
    assert xattr(q / 'leased' / mid, 'user.spool.receives') == '2'


def test_mv_peek_to_leased_claims_that_message(mount):
    q = mount.mkq('jobs', visibility_timeout=30)
    for b in (b'a', b'b', b'c'):
        push(q, b)
    chosen = ids(q)[1]
    t0 = now_ms()
    mount.sh('mv jobs/peek/%s jobs/leased/' % chosen)
    s = stats(q)
    assert (s['visible'], s['leased']) == (2, 1)
    assert read_file(q / 'leased' / chosen) == b'b'
    assert ms(os.stat(q / 'leased' / chosen).st_mtime_ns) >= t0 + 30000 - 5
    assert xattr(q / 'leased' / chosen, 'user.spool.receives') == '1'
    with pytest.raises(OSError) as e:
        os.rename(q / 'peek' / chosen, q / 'leased' / chosen)
    assert e.value.errno == errno.ENOENT
    assert lease(q)[1] == b'a'
    assert lease(q)[1] == b'c'


def test_mv_peek_to_leased_race_has_one_winner(mount):
    q = mount.mkq('jobs')
    for rnd in range(20):
        push(q, b'r%d' % rnd)
        (mid,) = ids(q)
        barrier = threading.Barrier(2)
        results = []

        def racer():
            barrier.wait()
            try:
                os.rename(q / 'peek' / mid, q / 'leased' / mid)
                results.append(0)
            except OSError as e:
                results.append(e.errno)

        ts = [threading.Thread(target=racer) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert sorted(results) == [0, errno.ENOENT], results
        os.unlink(q / 'leased' / mid)
    assert stats(q)['acked_total'] == 20


def test_unlink_peek_and_delayed_delete(mount):
    q = mount.mkq('jobs')
    push(q, b'visible')
    set_config(q, delay=60)
    push(q, b'delayed')
    (v,) = ids(q)
    (d,) = ids(q, 'delayed')
    mount.sh('rm jobs/peek/%s' % v)
    os.unlink(q / 'delayed' / d)
    s = stats(q)
    assert (s['visible'], s['delayed'], s['leased'], s['bytes']) == \
        (0, 0, 0, 0)
    assert ids(q) == [] and ids(q, 'delayed') == []
    with pytest.raises(OSError) as e:
        os.unlink(q / 'peek' / v)
    assert e.value.errno == errno.ENOENT


def test_mv_between_queues(mount):
    """Assumption: the message keeps its body and attributes; its id in the
    target queue is whatever the target lists (the test does not require
    the same id)."""
    a = mount.mkq('a')
    b = mount.mkq('b')
    push_with(a, b'moving', {'user.color': 'red'})
    push(a, b'staying')
    mid = ids(a)[0]
    mount.sh('mv a/peek/%s b/peek/' % mid)
    assert [read_file(a / 'peek' / i) for i in ids(a)] == [b'staying']
    (nid,) = ids(b)
    assert read_file(b / 'peek' / nid) == b'moving'
    assert xattr(b / 'peek' / nid, 'user.color') == 'red'
    assert stats(a)['visible'] == 1 and stats(b)['visible'] == 1


def test_peek_lists_in_delivery_order(mount):
    q = mount.mkq('jobs')
    for body, prio in ((b'low', 0), (b'high', 9), (b'mid', 5), (b'low2', 0)):
        fd = os.open(q / 'x', os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(fd, body)
        os.setxattr(fd, 'user.spool.priority', str(prio).encode())
        os.close(fd)
    assert [read_file(q / 'peek' / i) for i in ids(q)] == \
        [b'high', b'mid', b'low', b'low2']
    # ls -l stats every entry.
    r = mount.sh('ls -l jobs/peek | wc -l')
    assert int(r.stdout) == 5   # "total" line + 4


def test_listings_of_delayed_and_leased(mount):
    q = mount.mkq('jobs')
    push_lines(q, ['a', 'b', 'c'])
    set_config(q, delay=60)
    push(q, b'd')
    m1 = claim(q)
    m2 = claim(q)
    assert sorted(ids(q, 'leased')) == sorted([m1, m2])
    assert len(ids(q, 'delayed')) == 1
    assert len(ids(q)) == 1
    assert len({m1, m2} | set(ids(q)) | set(ids(q, 'delayed'))) == 4


CONSUMER = r'''
import os, sys
q, n = sys.argv[1], int(sys.argv[2])
for _ in range(n):
    fd = os.open(os.path.join(q, 'pop'), os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.read(fd, 100)
    except BlockingIOError:
        break
    finally:
        os.close(fd)
'''

PRODUCER = r'''
import os, sys
q, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    fd = os.open(os.path.join(q, 'push'), os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b'new%d' % i)
    os.close(fd)
'''


@pytest.mark.spool_timeout(600)
def test_readdir_100000_in_order_while_consumers_take(mount):
    q = mount.mkq('jobs')
    push_lines(q, ('%06d' % i for i in range(100000)))
    assert stats(q)['visible'] == 100000
    all_ids = ids(q)
    assert len(all_ids) == 100000
    assert all_ids == sorted(all_ids) and len(set(all_ids)) == 100000
    # The first and last bodies, by name.
    assert read_file(q / 'peek' / all_ids[0]) == b'000000'
    assert read_file(q / 'peek' / all_ids[-1]) == b'099999'

    procs = [subprocess.Popen([sys.executable, '-c', CONSUMER, str(q),
                               '3000']) for _ in range(2)]
    procs.append(subprocess.Popen([sys.executable, '-c', PRODUCER, str(q),
                                   '1000']))
    try:
        listed = []
        with os.scandir(q / 'peek') as it:
            for n, e in enumerate(it):
                listed.append(e.name)
                if n % 20000 == 0:
                    time.sleep(0.2)   # let the consumers get ahead
    finally:
        for p in procs:
            assert p.wait(300) == 0
    remaining = set(ids(q))
    old = set(all_ids)
    assert listed == sorted(listed), 'readdir out of order'
    assert len(set(listed)) == len(listed), 'readdir repeated entries'
    # Every message that was visible throughout was listed.
    missing = (remaining & old) - set(listed)
    assert not missing, '%d visible messages skipped' % len(missing)
    assert len(remaining) == 100000 - 6000 + 1000
    assert stats(q)['visible'] == len(remaining)


def test_ctl_purge(mount):
    """purge deletes every visible and delayed message; leases stay."""
    q = mount.mkq('jobs')
    push_lines(q, ['a', 'b', 'c'])
    set_config(q, delay=60)
    push(q, b'd')
    set_config(q, delay=0)
    mid = claim(q)
    mount.sh('echo purge > jobs/ctl')
    s = stats(q)
    assert (s['visible'], s['delayed'], s['leased']) == (0, 0, 1)
    assert ids(q, 'leased') == [mid]
    assert read_file(q / 'leased' / mid) == b'a'


def test_ctl_move(mount):
    """move QUEUE [N]: up to N (default all) visible messages, in order."""
    a = mount.mkq('a')
    b = mount.mkq('b')
    push_lines(a, ['m%d' % i for i in range(5)])
    mount.sh('echo "move b 2" > a/ctl')
    assert [read_file(b / 'peek' / i) for i in ids(b)] == [b'm0', b'm1']
    assert [read_file(a / 'peek' / i) for i in ids(a)] == [b'm2', b'm3',
                                                           b'm4']
    mount.sh('echo move b > a/ctl')
    assert stats(a)['visible'] == 0
    assert [read_file(b / 'peek' / i) for i in ids(b)] == \
        [b'm%d' % i for i in range(5)]


@pytest.mark.parametrize('cmd', [b'explode\n', b'move\n', b'move b x\n',
                                 b'purge now\n'])
def test_ctl_bad_command_is_einval(mount, cmd):
    q = mount.mkq('jobs')
    mount.mkq('b')
    push(q, b'x')
    assert write_errno(q / 'ctl', [cmd]) == errno.EINVAL
    assert stats(q)['visible'] == 1
