"""DESIGN.md §6 (config) and §7 (stats)."""
import errno
import os
import time

import pytest

from spoolutil import (CONFIG_KEYS, STATS_KEYS, claim, ids, lease, pop, push,
                       read_file, set_config, stats, wait_until, write_errno,
                       xattr)


def test_stats_of_a_new_queue(mount):
    q = mount.mkq('jobs')
    text = read_file(q / 'stats').decode()
    assert text.endswith('\n')
    s = stats(q)
    for k in STATS_KEYS:
        assert s.get(k) == 0, (k, text)


def core(q):
    s = stats(q)
    return {k: s[k] for k in ('visible', 'delayed', 'leased', 'bytes',
                              'pushed_total', 'acked_total',
                              'expired_total')}


def expect(q, **want):
    got = core(q)
    assert {k: got[k] for k in want} == want, got


def test_stats_exact_after_each_operation(mount):
    """`bytes` is taken to be the total body size of the messages the
    queue holds (visible + delayed + leased)."""
    q = mount.mkq('jobs')
    push(q, b'aa')
    push(q, b'bbb')
    push(q, b'c')
    expect(q, visible=3, delayed=0, leased=0, bytes=6, pushed_total=3,
           acked_total=0, expired_total=0)
    mid, body = lease(q)
    assert body == b'aa'
    expect(q, visible=2, delayed=0, leased=1, bytes=6, pushed_total=3,
           acked_total=0)
    os.unlink(q / 'leased' / mid)
    expect(q, visible=2, delayed=0, leased=0, bytes=4, pushed_total=3,
           acked_total=1)
    set_config(q, delay=60)
    push(q, b'dddd')
    set_config(q, delay=0)
    expect(q, visible=2, delayed=1, leased=0, bytes=8, pushed_total=4,
           acked_total=1)
    assert pop(q) == b'bbb'
    # Whether a pop counts as an ack is not specified: not checked.
    expect(q, visible=1, delayed=1, leased=0, bytes=5, pushed_total=4)
    mid = claim(q)
    expect(q, visible=0, delayed=1, leased=1, bytes=5)
    os.rename(q / 'leased' / mid, q / 'peek' / mid)
    expect(q, visible=1, delayed=1, leased=0, bytes=5, expired_total=0)
    (d,) = ids(q, 'delayed')
    os.unlink(q / 'delayed' / d)
    expect(q, visible=1, delayed=0, leased=0, bytes=1, pushed_total=4)
    set_config(q, visibility_timeout=0.5)
    mid = claim(q)
    expect(q, visible=0, leased=1, expired_total=0)
    assert wait_until(lambda: stats(q)['visible'] == 1, timeout=5)
    expect(q, visible=1, leased=0, bytes=1, expired_total=1)
    os.unlink(q / 'peek' / mid)
    expect(q, visible=0, delayed=0, leased=0, bytes=0, pushed_total=4)


def test_oldest_visible_age(mount):
    q = mount.mkq('jobs')
    assert stats(q)['oldest_visible_age_ms'] == 0
    push(q, b'old')
    time.sleep(0.3)
    push(q, b'new')
    age = stats(q)['oldest_visible_age_ms']
    assert 300 <= age < 3000, age
    pop(q)
    assert stats(q)['oldest_visible_age_ms'] < age
    pop(q)
    assert stats(q)['oldest_visible_age_ms'] == 0


def test_stats_is_per_queue(mount):
    a = mount.mkq('a')
    b = mount.mkq('b')
    push(a, b'1')
    push(a, b'2')
    push(b, b'3')
    assert (stats(a)['visible'], stats(b)['visible']) == (2, 1)


CORE_DEFAULTS = {
    'visibility_timeout': '30',
    'receive_wait': 'inf',
    'delay': '0',
    'priority': '0',
    'max_size': '1048576',
}

POLICY_DEFAULTS = {
    'max_depth': '0',
    'max_receives': '0',
    'dead_letter': 'jobs.dead',
    'retention': '0',
    'dedup': 'off',
    'dedup_window': '300',
    'paused': '0',
    'fanout': '',
}


def test_config_defaults(mount):
    mount.mkq('jobs')
    c = mount.config()
    assert {k: c.get(k) for k in CORE_DEFAULTS} == CORE_DEFAULTS


def test_config_lists_every_key_of_design_6(mount):
    mount.mkq('jobs')
    c = mount.config()
    assert set(c) == set(CONFIG_KEYS)
    assert {k: c[k] for k in POLICY_DEFAULTS} == POLICY_DEFAULTS


def test_config_write_changes_only_given_keys(mount):
    q = mount.mkq('jobs')
    before = mount.config()
    mount.sh('echo visibility_timeout=5 > jobs/config')
    after = mount.config()
    assert after['visibility_timeout'] == '5'
    del before['visibility_timeout'], after['visibility_timeout']
    assert after == before
    mount.sh(r"printf 'delay=2\npriority=-3\n' > jobs/config")
    c = mount.config()
    assert (c['delay'], c['priority'], c['visibility_timeout']) == \
        ('2', '-3', '5')
    set_config(q, visibility_timeout=0.5, receive_wait=2.5)
    c = mount.config()
    assert (c['visibility_timeout'], c['receive_wait']) == ('0.5', '2.5')
    set_config(q, receive_wait='inf')
    assert mount.config()['receive_wait'] == 'inf'


def config_write_errno(q, text):
    """Writes text to config in one write(); returns the errno of write()
    or close(), whichever failed (either is allowed), else None."""
    return write_errno(q / 'config', [text])


@pytest.mark.parametrize('text', [
    b'nosuch=1\n',
    b'visibility_timeout=abc\n',
    b'visibility_timeout=-1\n',
    b'priority=1.5\n',
    b'priority=\n',
    b'max_size=big\n',
    b'delay=-3\n',
    b'receive_wait=forever\n',
    b'visibility_timeout\n',
    b'delay=1\nnosuch=2\n',           # one bad key spoils the whole write
    b'delay=1\npriority=x\n',
])
def test_config_einval_changes_nothing(mount, text):
    q = mount.mkq('jobs')
    before = mount.config()
    assert config_write_errno(q, text) == errno.EINVAL
    assert mount.config() == before


def test_config_einval_from_the_shell(mount):
    mount.mkq('jobs')
    before = mount.config()
    r = mount.sh('echo bogus=1 > jobs/config', check=False)
    assert r.returncode != 0
    assert mount.config() == before


def test_config_round_trip(mount, tmp_path):
    """What reading prints can be written back unchanged (dump and
    restore: cat config > saved; cat saved > config)."""
    q = mount.mkq('jobs')
    set_config(q, visibility_timeout=7, priority=2)
    before = read_file(q / 'config')
    mount.sh('cat jobs/config > %s && cat %s > jobs/config'
             % (tmp_path / 'c', tmp_path / 'c'))
    assert read_file(q / 'config') == before


def test_config_priority_and_delay_defaults_apply(mount):
    q = mount.mkq('jobs', priority=3)
    push(q, b'p')
    (i,) = ids(q)
    assert xattr(q / 'peek' / i, 'user.spool.priority') == '3'
    # A per-message xattr wins over the default.
    fd = os.open(q / 'x', os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, b'q')
    os.setxattr(fd, 'user.spool.priority', b'8')
    os.close(fd)
    assert pop(q) == b'q'
    set_config(q, delay=1)
    push(q, b'd')
    assert stats(q)['delayed'] == 1
    assert wait_until(lambda: stats(q)['delayed'] == 0, timeout=5)
    assert stats(q)['visible'] == 2


def test_config_is_per_queue(mount):
    a = mount.mkq('a', visibility_timeout=9)
    mount.mkq('b')
    assert mount.config('a')['visibility_timeout'] == '9'
    assert mount.config('b')['visibility_timeout'] == '30'
    assert a.exists()


def test_stats_refuses_writing_also_for_root(mount):
    mount.mkq('jobs')
    r = mount.sh('echo visible=0 > jobs/stats', check=False)
    assert r.returncode != 0
    with pytest.raises(OSError) as e:
        os.open(mount.q() / 'stats', os.O_WRONLY)
    assert e.value.errno == errno.EACCES


# ---------------------------------------------------------------- model
# Random sequences of operations against a model of one queue: after each
# step, stats and the peek/ listing must match the model exactly.
from hypothesis import HealthCheck, settings, strategies as st  # noqa: E402
from hypothesis.stateful import (RuleBasedStateMachine, invariant,  # noqa
                                 precondition, rule,
                                 run_state_machine_as_test)


class QueueModel(RuleBasedStateMachine):
    mount = None
    counter = 0

    def __init__(self):
        super().__init__()
        QueueModel.counter += 1
        self.q = self.mount.mkq('model%d' % QueueModel.counter,
                                visibility_timeout=600)
        self.seq = 0
        self.visible = []        # (prio, seq, body)
        self.leased = {}         # id -> (prio, seq, body)
        self.pushed = 0
        self.acked = 0

    def order(self):
        return sorted(self.visible, key=lambda m: (-m[0], m[1]))

    @rule(body=st.binary(max_size=40), prio=st.integers(-2, 2))
    def push(self, body, prio):
        fd = os.open(self.q / 'm', os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(fd, body)
        os.setxattr(fd, 'user.spool.priority', b'%d' % prio)
        os.close(fd)
        if body == b'':
            # empty pushes land at RELEASE, just after close()
            wait_until(lambda: stats(self.q)['pushed_total'] ==
                       self.pushed + 1, timeout=3)
        self.seq += 1
        self.visible.append((prio, self.seq, body))
        self.pushed += 1

    @rule()
    def claim(self):
        mid = claim(self.q)
        if not self.visible:
            assert mid is None
            return
        head = self.order()[0]
        assert read_file(self.q / 'leased' / mid) == head[2]
        self.visible.remove(head)
        self.leased[mid] = head

    @rule()
    def pop(self):
        body = pop(self.q)
        if not self.visible:
            assert body is None
            return
        head = self.order()[0]
        assert body == head[2]
        self.visible.remove(head)
        self.acked += 1

    @precondition(lambda self: self.leased)
    @rule(data=st.data())
    def ack(self, data):
        mid = data.draw(st.sampled_from(sorted(self.leased)))
        os.unlink(self.q / 'leased' / mid)
        del self.leased[mid]
        self.acked += 1

    @precondition(lambda self: self.leased)
    @rule(data=st.data())
    def release(self, data):
        mid = data.draw(st.sampled_from(sorted(self.leased)))
        os.rename(self.q / 'leased' / mid, self.q / 'peek' / mid)
        self.visible.append(self.leased.pop(mid))

    @precondition(lambda self: self.visible)
    @rule()
    def delete_head(self):
        head_id = ids(self.q)[0]
        head = self.order()[0]
        assert read_file(self.q / 'peek' / head_id) == head[2]
        os.unlink(self.q / 'peek' / head_id)
        self.visible.remove(head)

    @invariant()
    def stats_match(self):
        s = stats(self.q)
        held = self.visible + list(self.leased.values())
        assert (s['visible'], s['leased'], s['delayed'], s['bytes'],
                s['pushed_total'], s['acked_total']) == \
            (len(self.visible), len(self.leased), 0,
             sum(len(m[2]) for m in held), self.pushed, self.acked)
        assert sorted(ids(self.q, 'leased')) == sorted(self.leased)

    @invariant()
    def peek_in_delivery_order(self):
        assert [read_file(self.q / 'peek' / i) for i in ids(self.q)] == \
            [m[2] for m in self.order()]


@pytest.mark.spool_timeout(300)
def test_random_operations_match_a_model(mount):
    """Assumption: a pop counts in acked_total (the engine's choice,
    engine/spool.h); a release puts the message back in its place by
    priority and id."""
    QueueModel.mount = mount
    run_state_machine_as_test(QueueModel, settings=settings(
        max_examples=25, stateful_step_count=30, deadline=None,
        database=None, suppress_health_check=list(HealthCheck)))
