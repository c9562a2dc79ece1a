"""Permissions (issue 6, DESIGN §2): with -o allow_other, a second local
user (created here, removed at the end) can do only what the queue
directory's mode allows: pushing needs w, consuming r and w, peeking r, and
config/ctl are the owner's only. chmod and chown persist across a restart.
Without allow_other the other user sees nothing. Needs root (useradd)."""
import json
import os
import pwd
import subprocess
import sys

import pytest

from spoolutil import lease, stats, write_file

# Runs as the other user: each op on a queue, its errno (0 = it worked).
AS_USER = r'''
import errno, json, os, sys
mnt, plan = sys.argv[1], json.loads(sys.argv[2])
def push(q):
    fd = os.open(os.path.join(q, 'push'), os.O_WRONLY)
    os.write(fd, b'from-other'); os.close(fd)
def name(q):
    fd = os.open(os.path.join(q, 'byother'), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b'named'); os.close(fd)
def consume(q):
    fd = os.open(os.path.join(q, 'next'), os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.read(fd, 100)
        mid = os.getxattr(fd, 'user.spool.id').decode()
    finally:
        os.close(fd)
    os.unlink(os.path.join(q, 'leased', mid))
def peek(q):
    for i in os.listdir(os.path.join(q, 'peek')):
        open(os.path.join(q, 'peek', i), 'rb').read()
def stats(q):
    open(os.path.join(q, 'stats'), 'rb').read()
def config(q):
    fd = os.open(os.path.join(q, 'config'), os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, b'priority=1\n')
    finally:
        os.close(fd)
def ctl(q):
    fd = os.open(os.path.join(q, 'ctl'), os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, b'move nowhere-at-all\n')
    finally:
        os.close(fd)
def mkdir(q):
    os.mkdir(q + '-other')
def ls(q):
    os.listdir(mnt)
out = {}
for qn, op in plan:
    try:
        globals()[op](os.path.join(mnt, qn))
        out[qn + ' ' + op] = 0
    except OSError as e:
        out[qn + ' ' + op] = e.errno
print(json.dumps(out))
'''

EACCES = 13


@pytest.fixture
def other_user():
    assert os.geteuid() == 0, 'this test creates a user: run it as root'
    name = 'spooltest%d' % os.getpid()
    r = subprocess.run(['useradd', '-M', '-N', '-s', '/usr/sbin/nologin',
                        name], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(['userdel', name], capture_output=True, timeout=60)


def run_as(user, mnt, plan):
    r = subprocess.run(
        [sys.executable, '-c', AS_USER, str(mnt), json.dumps(plan)],
        user=user.pw_uid, group=user.pw_gid, extra_groups=[],
        capture_output=True, text=True, timeout=60, cwd='/')
    assert r.returncode == 0, r.stderr
    return {k: os.strerror(v) if v else 'ok'
            for k, v in json.loads(r.stdout).items()}


def open_up(m):
    """The other user must be able to reach the mount point."""
    os.chmod(m.tmp, 0o755)


def mkq_with_messages(m, name, mode, n=3):
    q = m.mkq(name)
    for i in range(n):
        write_file(q / ('m%d' % i), b'%s-%d' % (name.encode(), i))
    os.chmod(q, mode)
    return q


OPS = ['push', 'name', 'consume', 'peek', 'stats', 'config', 'ctl']
DENIED = os.strerror(EACCES)

# mode of the queue -> what the other user gets, op by op
EXPECT = {
    0o777: dict(push='ok', name='ok', consume='ok', peek='ok', stats='ok',
                config=DENIED, ctl=DENIED),
    0o733: dict(push='ok', name='ok', consume=DENIED, peek=DENIED,
                stats=DENIED, config=DENIED, ctl=DENIED),
    0o755: dict(push=DENIED, name=DENIED, consume=DENIED, peek='ok',
                stats='ok', config=DENIED, ctl=DENIED),
    0o700: dict(push=DENIED, name=DENIED, consume=DENIED, peek=DENIED,
                stats=DENIED, config=DENIED, ctl=DENIED),
}


@pytest.mark.spool_timeout(300)
def test_queue_modes_govern_another_user(mount_factory, other_user):
    m = mount_factory('-o', 'allow_other')
    open_up(m)
    for mode in EXPECT:
        mkq_with_messages(m, 'q%o' % mode, mode)
    plan = [('q%o' % mode, op) for mode in EXPECT for op in OPS]
    got = run_as(other_user, m.mnt, plan)
    want = {'q%o %s' % (mode, op): EXPECT[mode][op]
            for mode in EXPECT for op in OPS}
    wrong = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    assert not wrong, 'op: (got, want): %r' % wrong
    # What the other user could do, it did; what it could not, changed
    # nothing.
    assert stats(m.q('q777'))['pushed_total'] == 5       # 3 + push + name
    assert stats(m.q('q777'))['acked_total'] == 1
    assert stats(m.q('q733'))['pushed_total'] == 5
    for mode in (0o755, 0o700):
        s = stats(m.q('q%o' % mode))
        assert (s['pushed_total'], s['visible']) == (3, 3), s
    assert m.config('q777')['priority'] == '0'
    # mkdir at the root: the root belongs to the mounting user.
    assert run_as(other_user, m.mnt, [('x', 'mkdir')])['x mkdir'] == DENIED


@pytest.mark.spool_timeout(300)
def test_chown_gives_config_and_persists(mount_factory, other_user):
    m = mount_factory('-o', 'allow_other')
    open_up(m)
    q = mkq_with_messages(m, 'mine', 0o700)
    os.chown(q, other_user.pw_uid, other_user.pw_gid)
    os.chmod(q, 0o750)
    got = run_as(other_user, m.mnt, [('mine', op) for op in
                                     ('config', 'consume', 'push')])
    assert got == {'mine config': 'ok', 'mine consume': 'ok',
                   'mine push': 'ok'}, got
    assert m.config('mine')['priority'] == '1'
    m.remount()
    st = os.stat(q)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == \
        (other_user.pw_uid, other_user.pw_gid, 0o750)
    # And after a kill -9 too.
    os.chmod(q, 0o705)
    m.kill9()
    st = os.stat(q)
    assert (st.st_uid, st.st_mode & 0o7777) == (other_user.pw_uid, 0o705)
    # 0o705: the owner (the other user) has rwx, so it still consumes.
    assert run_as(other_user, m.mnt, [('mine', 'consume')]) == \
        {'mine consume': 'ok'}


def test_without_allow_other_another_user_sees_nothing(mount, other_user):
    open_up(mount)
    mkq_with_messages(mount, 'open', 0o777)
    got = run_as(other_user, mount.mnt, [('open', op) for op in
                                         ('ls', 'push', 'peek', 'stats')])
    assert set(got.values()) == {DENIED}, got
    assert stats(mount.q('open'))['pushed_total'] == 3
    assert lease(mount.q('open')) is not None
