"""Model-checked queue behaviour (issue 6).

A hypothesis state machine drives random push / lease / ack / release /
touch / delete / move / purge / config sequences through the mount and
checks every step against an in-Python model of DESIGN.md (leases of an
hour, so nothing expires while it runs). Then a multi-process stress test:
16 producers and 16 consumers, every message delivered exactly once when no
lease expires. SPOOL_MODEL_EXAMPLES (30) and SPOOL_STRESS_MESSAGES (4000 in
CI; the issue's figure is 100000) scale them.
"""
import errno
import os
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, invariant,
                                 precondition, rule,
                                 run_state_machine_as_test)

from spoolutil import read_file, set_config, stats, write_file

EXAMPLES = int(os.environ.get('SPOOL_MODEL_EXAMPLES', '30'))
STRESS = int(os.environ.get('SPOOL_STRESS_MESSAGES', '4000'))


class Msg:
    def __init__(self, mid, body, prio):
        self.id, self.body, self.prio = mid, body, prio


class SpoolModel(RuleBasedStateMachine):
    """Two queues, a and b. Model: per queue, visible {id: Msg} and leased
    {id: Msg}; lease order is priority (higher first), then id."""
    mount = None
    n = 0

    def __init__(self):
        super().__init__()
        SpoolModel.n += 1
        self.names = ['a%d' % SpoolModel.n, 'b%d' % SpoolModel.n]
        for name in self.names:
            self.mount.mkq(name, visibility_timeout=3600)
        self.vis = {name: {} for name in self.names}
        self.leased = {name: {} for name in self.names}
        self.default_prio = {name: 0 for name in self.names}
        self.max_depth = {name: 0 for name in self.names}
        self.k = 0

    def q(self, name):
        return self.mount.mnt / name

    def held(self, name):
        return len(self.vis[name]) + len(self.leased[name])

    def next_in_line(self, name):
        v = self.vis[name]
        return min(v.values(), key=lambda m: (-m.prio, m.id)) if v else None

    # ----------------------------------------------------------- rules
    @rule(qi=st.integers(0, 1), body=st.binary(max_size=30),
          prio=st.one_of(st.none(), st.integers(-3, 3)),
          via=st.sampled_from(['name', 'push']))
    def push(self, qi, body, prio, via):
        name = self.names[qi]
        q = self.q(name)
        self.k += 1
        if via == 'push':
            prio = None     # push is one shared inode: no per-open xattrs
        before = set(os.listdir(q / 'peek'))
        path = q / ('m%d' % self.k) if via == 'name' else q / 'push'
        err = None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, body)
                if prio is not None:
                    os.setxattr(fd, 'user.spool.priority', b'%d' % prio)
            finally:
                os.close(fd)
        except OSError as e:
            err = e.errno
        full = self.max_depth[name] and \
            self.held(name) >= self.max_depth[name]
        if full:
            assert err == errno.EDQUOT, 'push into a full queue: %s' % err
            return
        assert err is None, 'push failed: %s' % errno.errorcode[err]
        if body == b'':
            # An empty message lands at RELEASE, just after close().
            deadline = time.monotonic() + 3
            while set(os.listdir(q / 'peek')) == before and \
                    time.monotonic() < deadline:
                time.sleep(0.01)
        new = set(os.listdir(q / 'peek')) - before
        assert len(new) == 1, new
        mid = new.pop()
        assert all(mid > i for i in self.vis[name]) and \
            all(mid > i for i in self.leased[name]), 'ids not increasing'
        self.vis[name][mid] = Msg(mid, body,
                                  self.default_prio[name] if prio is None
                                  else prio)

    @rule(qi=st.integers(0, 1))
    def lease(self, qi):
        name = self.names[qi]
        want = self.next_in_line(name)
        fd = os.open(self.q(name) / 'next', os.O_RDONLY | os.O_NONBLOCK)
        try:
            try:
                body = os.read(fd, 1 << 16)
            except BlockingIOError:
                assert want is None, 'EAGAIN with %s visible' % want.id
                return
            mid = os.getxattr(fd, 'user.spool.id').decode()
        finally:
            os.close(fd)
        assert want is not None, 'leased %s from an empty queue' % mid
        assert (mid, body) == (want.id, want.body), \
            'leased %s, the model says %s first' % (mid, want.id)
        self.leased[name][mid] = self.vis[name].pop(mid)

    def pick(self, d, data):
        ids = sorted(d)
        return ids[data % len(ids)] if ids else None

    @rule(qi=st.integers(0, 1), data=st.integers(0, 1000))
    def ack(self, qi, data):
        name = self.names[qi]
        mid = self.pick(self.leased[name], data)
        if mid is None:
            return
        os.unlink(self.q(name) / 'leased' / mid)
        del self.leased[name][mid]
        with pytest.raises(FileNotFoundError):
            os.unlink(self.q(name) / 'leased' / mid)

    @rule(qi=st.integers(0, 1), data=st.integers(0, 1000))
    def release(self, qi, data):
        name = self.names[qi]
        mid = self.pick(self.leased[name], data)
        if mid is None:
            return
        os.rename(self.q(name) / 'leased' / mid, self.q(name) / 'peek' / mid)
        self.vis[name][mid] = self.leased[name].pop(mid)

    @rule(qi=st.integers(0, 1), data=st.integers(0, 1000))
    def touch(self, qi, data):
        name = self.names[qi]
        mid = self.pick(self.leased[name], data)
        if mid is None:
            return
        p = self.q(name) / 'leased' / mid
        before = os.stat(p).st_mtime
        os.utime(p)
        after = os.stat(p).st_mtime
        assert after >= before - 1, (before, after)
        assert after > time.time() + 3000, 'lease not extended by an hour'

    @rule(qi=st.integers(0, 1), data=st.integers(0, 1000))
    def delete(self, qi, data):
        name = self.names[qi]
        mid = self.pick(self.vis[name], data)
        if mid is None:
            return
        os.unlink(self.q(name) / 'peek' / mid)
        del self.vis[name][mid]

    @rule(qi=st.integers(0, 1), data=st.integers(0, 1000))
    def move(self, qi, data):
        src, dst = self.names[qi], self.names[1 - qi]
        mid = self.pick(self.vis[src], data)
        if mid is None:
            return
        err = None
        try:
            os.rename(self.q(src) / 'peek' / mid, self.q(dst) / 'peek' / mid)
        except OSError as e:
            err = e.errno
        if self.max_depth[dst] and self.held(dst) >= self.max_depth[dst]:
            assert err == errno.EDQUOT, err
            return
        assert err is None, errno.errorcode[err]
        self.vis[dst][mid] = self.vis[src].pop(mid)

    @rule(qi=st.integers(0, 1))
    def purge(self, qi):
        name = self.names[qi]
        write_file(self.q(name) / 'ctl', b'purge\n', flags=os.O_TRUNC)
        self.vis[name].clear()

    @rule(qi=st.integers(0, 1), prio=st.integers(-3, 3),
          depth=st.sampled_from([0, 0, 2, 5]))
    def config(self, qi, prio, depth):
        name = self.names[qi]
        set_config(self.q(name), priority=prio, max_depth=depth)
        self.default_prio[name] = prio
        self.max_depth[name] = depth

    @rule(qi=st.integers(0, 1))
    def bad_config(self, qi):
        """A refused write changes nothing (all or nothing)."""
        q = self.q(self.names[qi])
        before = read_file(q / 'config')
        with pytest.raises(OSError) as e:
            set_config(q, priority=9, visibility_timeout='soon')
        assert e.value.errno == errno.EINVAL
        assert read_file(q / 'config') == before

    # ------------------------------------------------------- invariants
    @invariant()
    def listings_and_stats_match(self):
        for name in self.names:
            q = self.q(name)
            assert sorted(os.listdir(q / 'peek')) == sorted(self.vis[name])
            assert sorted(os.listdir(q / 'leased')) == \
                sorted(self.leased[name])
            s = stats(q)
            assert (s['visible'], s['leased'], s['delayed']) == \
                (len(self.vis[name]), len(self.leased[name]), 0), s
            assert s['bytes'] == sum(
                len(m.body) for d in (self.vis[name], self.leased[name])
                for m in d.values()), s


@pytest.mark.spool_timeout(900)
def test_random_sequences_match_the_model(mount):
    SpoolModel.mount = mount
    run_state_machine_as_test(SpoolModel, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=30, deadline=None,
        suppress_health_check=list(HealthCheck), database=None))


# ------------------------------------------------------------- stress
PRODUCER = r'''
import os, sys
q, k, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    fd = os.open(os.path.join(q, 'push'), os.O_WRONLY)
    os.write(fd, b'p%d-%d' % (k, i))
    os.close(fd)
'''

CONSUMER = r'''
import errno, os, sys
q, out, done = sys.argv[1:4]
got = []
while True:
    fd = os.open(os.path.join(q, 'next'), os.O_RDONLY)
    try:
        body = os.read(fd, 4096)
        mid = os.getxattr(fd, 'user.spool.id').decode()
    except OSError as e:
        os.close(fd)
        if e.errno == errno.EAGAIN:
            if os.path.exists(done):
                break
            continue
        raise
    os.close(fd)
    os.unlink(os.path.join(q, 'leased', mid))
    got.append(body)
with open(out, 'wb') as f:
    f.write(b'\n'.join(got))
'''


@pytest.mark.spool_timeout(max(600, STRESS // 50))
def test_16_producers_16_consumers_exactly_once(mount, tmp_path):
    q = mount.mkq('stress', visibility_timeout=3600, receive_wait=0.2)
    per = STRESS // 16
    done = tmp_path / 'done'
    cons = [subprocess.Popen([sys.executable, '-c', CONSUMER, str(q),
                              str(tmp_path / ('c%d' % k)), str(done)])
            for k in range(16)]
    prods = [subprocess.Popen([sys.executable, '-c', PRODUCER, str(q),
                               str(k), str(per)]) for k in range(16)]
    try:
        for p in prods:
            assert p.wait(STRESS) == 0
        done.touch()
        for c in cons:
            assert c.wait(300) == 0
    finally:
        for p in prods + cons:
            if p.poll() is None:
                p.kill()
                p.wait()
    got = []
    for k in range(16):
        data = (tmp_path / ('c%d' % k)).read_bytes()
        got += data.split(b'\n') if data else []
    want = {b'p%d-%d' % (k, i) for k in range(16) for i in range(per)}
    assert len(got) == len(want), 'delivered %d of %d' % (len(got), len(want))
    assert set(got) == want, 'duplicates or strangers'
    s = stats(q)
    assert (s['visible'], s['leased'], s['expired_total']) == (0, 0, 0), s
    assert s['pushed_total'] == s['acked_total'] == len(want), s
