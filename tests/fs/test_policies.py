"""Queue policies through the mount (DESIGN.md §5 ctl, §6, §7 .metrics):
dead letters and redrive, retention, max_depth, max_size, dedup, pause,
fan-out, settings that name other queues, and the Prometheus text of
.metrics checked by a strict parser."""
import errno
import os
import re
import subprocess
import time

import pytest

from conftest import CLUSTER_MODE
from spoolutil import (errno_of, ids, lease, push, push_lines, read_file,
                       set_config, stats, wait_until, write_file)


def ctl(q, text):
    write_file(q / 'ctl', text.encode(), flags=os.O_TRUNC)


def expire_lease(q, want_body):
    got = lease(q)
    assert got is not None and got[1] == want_body, got
    return got[0]


def everywhere(mount, mid, queues):
    """The (queue, subdir) pairs where message mid is listed."""
    return [(name, sub) for name in queues
            for sub in ('peek', 'delayed', 'leased')
            if os.path.exists(mount.mnt / name) and
            mid in os.listdir(mount.mnt / name / sub)]


def test_dead_letter_after_max_receives_and_redrive(mount):
    q = mount.mkq('jobs', visibility_timeout='0.2', max_receives='2')
    with open(q / '.m', 'wb') as f:
        f.write(b'poison')
    os.setxattr(q / '.m', 'user.colour', b'red')
    os.rename(q / '.m', q / 'm')
    mid = expire_lease(q, b'poison')
    assert wait_until(lambda: stats(q)['visible'] == 1)
    assert not os.path.exists(mount.mnt / 'jobs.dead')
    assert expire_lease(q, b'poison') == mid
    dead = mount.mnt / 'jobs.dead'
    assert wait_until(lambda: os.path.exists(dead) and
                      stats(dead)['visible'] == 1, timeout=5)
    s = stats(q)
    assert (s['visible'], s['leased'], s['dead_total']) == (0, 0, 1), s
    f = dead / 'peek' / mid
    assert read_file(f) == b'poison'
    assert os.getxattr(f, 'user.spool.receives') == b'2'
    assert os.getxattr(f, 'user.colour') == b'red'
    # redrive it: move jobs
    ctl(dead, 'move jobs\n')
    assert ids(q) == [mid]
    assert ids(dead) == []


def test_redrive_moves_at_most_n(mount):
    q = mount.mkq('jobs')
    dead = mount.mkq('jobs.dead')
    push_lines(dead, [b'a', b'b', b'c'])
    ctl(dead, 'move jobs 2\n')
    assert stats(q)['visible'] == 2
    assert stats(dead)['visible'] == 1
    assert errno_of(ctl, dead, 'move nosuch\n') == errno.ENOENT
    assert errno_of(ctl, dead, 'move jobs x\n') == errno.EINVAL
    assert stats(dead)['visible'] == 1


def test_dead_letter_survives_kill9_in_the_middle(mount):
    """The move to the dead-letter queue is one write: across a kill -9
    the message is in exactly one of the two queues."""
    q = mount.mkq('jobs', visibility_timeout='0.3', max_receives='1')
    push(q, b'x')
    mid = expire_lease(q, b'x')
    mount.kill9()
    # The lease ran out while the daemon was down, or runs out now: the
    # message moves to jobs.dead, and is never in both or neither. The
    # listings are not one snapshot, and the move goes one way only, so
    # each claim is checked in the order where a move in between cannot
    # fake it: listed in jobs.dead and then still in jobs is a copy (an
    # in-between move would hide it from jobs.dead instead); in neither
    # when jobs is listed first is a loss (a move would show it twice).
    deadline = time.time() + 5
    where = []
    while time.time() < deadline:
        where = everywhere(mount, mid, ['jobs.dead', 'jobs'])
        assert len(where) <= 1, ('in both', where)
        assert everywhere(mount, mid, ['jobs', 'jobs.dead']), 'in neither'
        if where and where[0][0] == 'jobs.dead':
            break
        time.sleep(0.05)
    assert where == [('jobs.dead', 'peek')]
    assert stats(q)['dead_total'] == 1


def test_lowered_max_receives_applies_to_queued_messages(mount):
    q = mount.mkq('jobs', visibility_timeout='0.2')
    push(q, b'a')
    mid = expire_lease(q, b'a')
    assert wait_until(lambda: stats(q)['visible'] == 1)
    expire_lease(q, b'a')
    assert wait_until(lambda: stats(q)['visible'] == 1)
    push(q, b'b')
    set_config(q, max_receives='2')
    # a is out of receives: the next lease sends it away, hands out b
    got = lease(q)
    assert got is not None and got[1] == b'b', got
    assert ids(mount.mnt / 'jobs.dead') == [mid]


def test_retention_deletes_old_messages(mount):
    q = mount.mkq('jobs', retention='0.5')
    push(q, b'old')
    push_lines(q, [b'l1', b'l2'])
    assert stats(q)['visible'] == 3
    assert wait_until(lambda: stats(q)['visible'] == 0, timeout=5)
    assert stats(q)['pushed_total'] == 3
    set_config(q, retention='0')
    push(q, b'kept')
    time.sleep(0.7)
    assert stats(q)['visible'] == 1


def test_max_depth_refuses_at_close_and_batches_whole(mount):
    q = mount.mkq('jobs', max_depth='3')
    push(q, b'1')
    push(q, b'2')
    # a lines batch that does not fit fails whole, at close
    assert errno_of(push_lines, q, [b'a', b'b']) == errno.EDQUOT
    assert stats(q)['visible'] == 2
    push(q, b'3')
    assert errno_of(push, q, b'4') == errno.EDQUOT
    assert errno_of(write_file, q / 'push', b'5',
                    flags=os.O_TRUNC) == errno.EDQUOT
    s = stats(q)
    assert (s['visible'], s['pushed_total']) == (3, 3), s
    # leased messages count too; acked ones make room
    mid, _ = lease(q)
    assert errno_of(push, q, b'4') == errno.EDQUOT
    os.unlink(q / 'leased' / mid)
    push(q, b'4')


def test_max_size_is_efbig_at_write(mount):
    q = mount.mkq('jobs', max_size='10')
    fd = os.open(q / 'big', os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError) as e:
        os.write(fd, b'x' * 11)
    assert e.value.errno == errno.EFBIG
    with pytest.raises(OSError) as e:
        os.close(fd)
    assert e.value.errno == errno.EFBIG
    push(q, b'x' * 10)
    assert stats(q)['visible'] == 1


def test_dedup_name_window_and_restart(mount):
    q = mount.mkq('jobs', dedup='name', dedup_window='60')
    push(q, b'first', name='order-1')
    push(q, b'retry', name='order-1')   # succeeds, adds nothing
    push(q, b'other', name='order-2')
    s = stats(q)
    assert (s['visible'], s['deduped_total']) == (2, 1), s
    mount.remount()
    push(q, b'again', name='order-1')
    s = stats(q)
    assert (s['visible'], s['deduped_total']) == (2, 2), s
    bodies = sorted(read_file(q / 'peek' / i) for i in ids(q))
    assert bodies == [b'first', b'other']


def test_dedup_window_ends(mount):
    q = mount.mkq('jobs', dedup='name', dedup_window='0.3')
    push(q, b'a', name='n')
    time.sleep(0.5)
    push(q, b'b', name='n')
    assert stats(q)['visible'] == 2


def test_dedup_content(mount):
    q = mount.mkq('jobs', dedup='content')
    push(q, b'same', name='x')
    push(q, b'same', name='y')
    push_lines(q, [b'same', b'new', b'new'])
    s = stats(q)
    assert (s['visible'], s['deduped_total']) == (2, 3), s


def test_paused_hands_nothing_out_and_unpause_wakes(mount):
    q = mount.mkq('jobs', paused='1')
    push(q, b'held')
    assert lease(q) is None
    assert stats(q)['visible'] == 1
    reader = subprocess.Popen(['cat', str(q / 'next')],
                              stdout=subprocess.PIPE)
    try:
        time.sleep(0.3)
        assert reader.poll() is None        # parked, paused
        set_config(q, paused='0')
        out, _ = reader.communicate(timeout=10)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    assert out == b'held'


@pytest.mark.across_families(
    'fanout= to queues of other families (a Cluster refuses: EINVAL)')
def test_fanout_all_or_none(mount):
    a = mount.mkq('a')
    b = mount.mkq('b')
    topic = mount.mkq('topic', fanout='a,b')
    push(topic, b'news')
    assert [stats(x)['visible'] for x in (topic, a, b)] == [0, 1, 1]
    set_config(b, max_depth='1')
    assert errno_of(push, topic, b'more') == errno.EDQUOT
    assert [stats(x)['visible'] for x in (a, b)] == [1, 1]
    # a subscriber goes away: pushes fail whole with ENOENT
    set_config(b, max_depth='0')
    mid, _ = lease(b)
    os.unlink(b / 'leased' / mid)
    os.rmdir(b)
    assert errno_of(push, topic, b'more') == errno.ENOENT
    assert stats(a)['visible'] == 1


@pytest.mark.parametrize('bad', [
    'dead_letter=nosuch',           # no such queue
    'dead_letter=jobs',             # itself
    'fanout=nosuch',
    'fanout=jobs',                  # a cycle of one
    'fanout=a,,b',
    'max_receives=-1',
    'max_receives=1e3',
    'retention=-1',
    'retention=forever',
    'dedup=yes',
    'dedup_window=-5',
    'paused=2',
    'max_depth=-1',
    'max_depth=999999999999999999999',
])
def test_policy_settings_refused_whole(mount, bad):
    q = mount.mkq('jobs')
    mount.mkq('a')
    before = read_file(q / 'config')
    text = ('paused=1\n' + bad + '\n').encode()
    assert errno_of(write_file, q / 'config', text,
                    flags=os.O_TRUNC) == errno.EINVAL
    assert read_file(q / 'config') == before


@pytest.mark.across_families(
    'fanout= to queues of other families (a Cluster refuses: EINVAL)')
def test_fanout_cycle_refused(mount):
    a = mount.mkq('a')
    b = mount.mkq('b')
    set_config(a, fanout='b')
    assert errno_of(set_config, b, fanout='a') == errno.EINVAL
    assert b'fanout=\n' in read_file(b / 'config')


def test_fanout_and_dead_letter_across_families(mount):
    """The family rule (DESIGN §10): in a Redis Cluster fanout= and
    dead_letter= must stay in the queue's family (EINVAL, the settings
    unchanged); on a single primary and on RocksDB there is no limit. A
    message moved across families arrives either way."""
    a = mount.mkq('a')
    mount.mkq('a.sub')
    b = mount.mkq('b')
    set_config(a, fanout='a.sub', dead_letter='a.sub')     # one family
    for key in ('fanout', 'dead_letter'):
        if CLUSTER_MODE:
            assert errno_of(set_config, a, **{key: 'b'}) == errno.EINVAL
            assert ('%s=a.sub\n' % key).encode() in read_file(a / 'config')
        else:
            set_config(a, **{key: 'b'})
            assert ('%s=b\n' % key).encode() in read_file(a / 'config')
    set_config(a, fanout='')
    push(a, b'across')
    [m] = ids(a)
    subprocess.run(['mv', str(a / 'peek' / m), str(b / 'peek') + '/'],
                   check=True)
    assert ids(a) == []
    [n] = ids(b)
    assert read_file(b / 'peek' / n) == b'across'


# ---------------------------------------------------------------- .metrics

METRIC_NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*\Z')
LABELS = re.compile(r'\{([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
                    r'((?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)'
                    r'\}\Z')


def parse_exposition(text):
    """A strict reader of the Prometheus text format (0.0.4): every sample
    belongs to a family declared by # HELP and # TYPE before its first
    sample, families are not split, counters end in _total, values are
    numbers, a sample line has exactly a name, labels and a value.
    Returns {family: {'type': t, 'samples': {labels: value}}}."""
    assert text.endswith('\n'), 'the text must end with a newline'
    fams, current = {}, None
    for n, line in enumerate(text.split('\n')[:-1], 1):
        where = 'line %d %r' % (n, line)
        assert line == line.strip() and line, where
        if line.startswith('# HELP '):
            name, _, doc = line[7:].partition(' ')
            assert METRIC_NAME.match(name) and doc, where
            assert name not in fams, 'family split or repeated: ' + where
            fams[name] = {'help': doc, 'type': None, 'samples': {}}
            current = name
            continue
        if line.startswith('# TYPE '):
            name, _, typ = line[7:].partition(' ')
            assert name == current and fams[name]['type'] is None, where
            assert typ in ('counter', 'gauge'), where
            fams[name]['type'] = typ
            continue
        assert not line.startswith('#'), where
        m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)\Z', line)
        assert m, where
        name, labels, value = m.groups()
        assert name == current and fams[name]['type'], where
        assert labels is None or LABELS.match(labels), where
        float(value)
        key = labels or ''
        assert key not in fams[name]['samples'], 'duplicate: ' + where
        fams[name]['samples'][key] = float(value)
    for name, f in fams.items():
        assert f['type'], name + ' has no TYPE'
        if f['type'] == 'counter':
            assert name.endswith('_total'), name
    return fams


def test_metrics_parse_strictly(mount):
    q = mount.mkq('jobs')
    r = mount.mkq('other-q.1')
    push(q, b'a')
    push(q, b'b')
    push(r, b'c')
    mid, _ = lease(q)
    os.unlink(q / 'leased' / mid)
    fams = parse_exposition(read_file(mount.mnt / '.metrics').decode())
    want = {'visible': 'gauge', 'delayed': 'gauge', 'leased': 'gauge',
            'bytes': 'gauge', 'pushed_total': 'counter',
            'acked_total': 'counter', 'expired_total': 'counter',
            'dead_total': 'counter', 'deduped_total': 'counter'}
    for key, typ in want.items():
        f = fams['spoolfs_' + key]
        assert f['type'] == typ, key
    vis = fams['spoolfs_visible']['samples']
    assert vis['{queue="jobs"}'] == 1
    assert vis['{queue="other-q.1"}'] == 1
    assert fams['spoolfs_pushed_total']['samples']['{queue="jobs"}'] == 2
    assert fams['spoolfs_acked_total']['samples']['{queue="jobs"}'] == 1


def test_empty_push_into_a_full_queue_fails_at_close(mount):
    """Empty messages are pushed at RELEASE (docs/decisions.md), yet a queue
    already at max_depth refuses one at close(), and nothing is pushed."""
    q = mount.mkq('jobs', max_depth='1')
    push(q, b'x')
    fd = os.open(q / 'empty', os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError) as e:
        os.close(fd)
    assert e.value.errno == errno.EDQUOT
    time.sleep(0.2)                 # RELEASE has come and gone
    s = stats(q)
    assert (s['visible'], s['pushed_total']) == (1, 1), s


@pytest.mark.across_families(
    'fanout= to queues of other families (a Cluster refuses: EINVAL)')
def test_empty_push_into_a_topic_with_a_full_subscriber_fails_at_close(mount):
    """The check at close() is the engine's forecast of the push: for a
    topic, its subscribers' max_depth, not its own."""
    a = mount.mkq('a', max_depth='1')
    mount.mkq('b')
    topic = mount.mkq('topic', max_depth='1', fanout='a,b')
    push(topic, b'x')               # fills a
    fd = os.open(topic / 'empty', os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError) as e:
        os.close(fd)
    assert e.value.errno == errno.EDQUOT
    time.sleep(0.2)                 # RELEASE has come and gone
    assert (stats(a)['visible'], stats(mount.mnt / 'b')['visible']) == (1, 1)
    # room in every subscriber: the topic's own max_depth does not count
    mid, _ = lease(a)
    os.unlink(a / 'leased' / mid)
    fd = os.open(topic / 'empty', os.O_WRONLY | os.O_CREAT)
    os.close(fd)                    # pushed at RELEASE, just after
    assert wait_until(lambda: stats(mount.mnt / 'b')['visible'] == 2)
    assert stats(a)['visible'] == 1
    assert read_file(a / 'peek' / ids(a)[0]) == b''
