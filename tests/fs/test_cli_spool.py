"""The spool CLI (issue 7): every subcommand against a real mount, its exit
codes (0 ok, 1 usage, 2 not found/empty, 3 I/O error, 4 consume: a command
failed), its error lines ("spool: WHAT: reason (ERRNO_NAME)"), the consume
loop (ack on 0, release otherwise, heartbeat past visibility_timeout, -j,
SIGTERM), spool top, the man pages, the mount(8) helper and meson install.
"""
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BIN, SRC, run_fusermount, wait_for_mount
from spoolutil import push, push_lines, read_file, set_config, stats, wait_until

SPOOL = Path(os.environ.get('SPOOL_BIN') or SRC / 'build' / 'tools' / 'spool')
BUILD = SPOOL.parents[1]
COMMANDS = ('push', 'take', 'ack', 'release', 'extend', 'consume', 'ls',
            'stats', 'config', 'purge', 'move', 'mkq', 'rmq', 'top')
ERR_LINE = re.compile(r'^spool: (.+): (.+) \(E[A-Z0-9]+\)$')


def spool(m, *args, input=None, timeout=30, env=None, mount=True):
    """Runs spool --mount MNT ARGS; returns CompletedProcess (text)."""
    cmd = [str(SPOOL)] + (['--mount', str(m.mnt)] if mount else []) + \
        [str(a) for a in args]
    e = dict(os.environ)
    e.pop('SPOOL_MOUNT', None)
    e.update(env or {})
    return subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=e,
                          timeout=timeout,
                          stdin=None if input is not None
                          else subprocess.DEVNULL)


def error(r, code, what, errname):
    """Asserts exit code and the one error line's shape."""
    assert r.returncode == code, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert ERR_LINE.match(lines[0]), lines[0]
    assert lines[0].startswith('spool: %s: ' % what), lines[0]
    assert lines[0].endswith('(%s)' % errname), lines[0]


@pytest.fixture(scope='session', autouse=True)
def spool_binary():
    if not os.access(SPOOL, os.X_OK):
        pytest.fail('%s is missing (build it, or set SPOOL_BIN)' % SPOOL,
                    pytrace=False)


# ------------------------------------------------------------ help, usage

def test_help_lists_every_command_and_each_has_help():
    r = subprocess.run([str(SPOOL), '--help'], capture_output=True,
                       text=True)
    assert r.returncode == 0
    for c in COMMANDS:
        assert 'spool %s' % c in r.stdout
        h = subprocess.run([str(SPOOL), c, '--help'], capture_output=True,
                           text=True)
        assert h.returncode == 0, c
        assert h.stdout.startswith('usage: spool %s' % c), h.stdout


def test_usage_errors_exit_1(mount):
    r = subprocess.run([str(SPOOL)], capture_output=True, text=True)
    assert r.returncode == 1
    r = spool(mount, 'frobnicate')
    assert r.returncode == 1 and r.stderr.endswith('(EINVAL)\n'), r
    assert spool(mount, 'take').returncode == 1
    assert spool(mount, 'push', 'jobs', '--priority', 'high').returncode == 1
    assert spool(mount, 'consume', 'jobs').returncode == 1
    assert spool(mount, 'extend').returncode == 1
    error(spool(mount, 'take', 'bad/name'), 1, 'bad/name', 'EINVAL')


def test_version():
    r = subprocess.run([str(SPOOL), '--version'], capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stdout.startswith('spool ')


# ------------------------------------------------------------ the mount

def test_mount_from_option_env_and_errors(mount, tmp_path):
    mount.mkq('jobs')
    assert spool(mount, 'ls').stdout == 'jobs\n'
    r = spool(mount, 'ls', mount=False,
              env={'SPOOL_MOUNT': str(mount.mnt)})
    assert r.returncode == 0 and r.stdout == 'jobs\n'
    r = subprocess.run([str(SPOOL), 'ls', '--mount=%s' % mount.mnt],
                       capture_output=True, text=True)
    assert r.stdout == 'jobs\n'
    # a plain directory is not a spoolfs mount
    r = subprocess.run([str(SPOOL), '--mount', str(tmp_path), 'ls'],
                       capture_output=True, text=True)
    error(r, 3, str(tmp_path), 'ENODEV')
    r = subprocess.run([str(SPOOL), '--mount', str(tmp_path / 'no'), 'ls'],
                       capture_output=True, text=True)
    error(r, 2, str(tmp_path / 'no'), 'ENOENT')


def test_mountinfo_reports_spoolfs(mount):
    """What spool relies on: the daemon's line in /proc/self/mountinfo."""
    line = [l for l in open('/proc/self/mountinfo')
            if l.split()[4] == str(mount.mnt)]
    assert len(line) == 1
    after = line[0].split(' - ')[1].split()
    assert after[0] == 'fuse.spoolfs' or \
        (after[0] == 'fuse' and after[1] == 'spoolfs'), line


# ------------------------------------------------------------ push

def test_push_stdin_files_and_options(mount, tmp_path):
    q = mount.mkq('jobs')
    r = spool(mount, 'push', 'jobs', input='from stdin\n')
    assert r.returncode == 0, r
    f = tmp_path / 'report.json'
    f.write_bytes(b'{"a": 1}')
    r = spool(mount, 'push', 'jobs', '--priority', '5', '--attr',
              'trace=abc', '--attr', 'user.team=ops', str(f))
    assert r.returncode == 0, r
    r = spool(mount, 'push', 'jobs', '--delay', '30', input='later')
    assert r.returncode == 0, r
    assert stats(q)['visible'] == 2 and stats(q)['delayed'] == 1
    ids = os.listdir(q / 'peek')
    first = q / 'peek' / ids[0]               # priority 5 comes first
    assert read_file(first) == b'{"a": 1}'
    assert os.getxattr(first, 'user.spool.priority') == b'5'
    assert os.getxattr(first, 'user.spool.name') == b'report.json'
    assert os.getxattr(first, 'user.trace') == b'abc'
    assert os.getxattr(first, 'user.team') == b'ops'
    second = q / 'peek' / ids[1]
    assert read_file(second) == b'from stdin\n'
    assert os.getxattr(second, 'user.spool.name') == b'stdin'
    # no drafts left behind
    assert not [n for n in os.listdir(q) if n.startswith('.')]


def test_push_several_files_one_message_each(mount, tmp_path):
    q = mount.mkq('jobs')
    for i in range(3):
        (tmp_path / ('f%d' % i)).write_bytes(b'body %d' % i)
    r = spool(mount, 'push', 'jobs', *sorted(tmp_path.iterdir()))
    assert r.returncode == 0, r
    bodies = [read_file(q / 'peek' / i) for i in os.listdir(q / 'peek')]
    assert bodies == [b'body 0', b'body 1', b'body 2']


def test_push_lines(mount):
    q = mount.mkq('jobs')
    r = spool(mount, 'push', 'jobs', '--lines', input='a\nb\n\nc')
    assert r.returncode == 0, r
    assert stats(q)['visible'] == 3
    assert [read_file(q / 'peek' / i) for i in os.listdir(q / 'peek')] == \
        [b'a', b'b', b'c']


def test_push_errors(mount):
    q = mount.mkq('jobs', max_size=10)
    r = spool(mount, 'push', 'jobs', input='x' * 100)
    error(r, 3, 'jobs', 'EFBIG')
    assert 'max_size' in r.stderr
    assert stats(q)['visible'] == 0
    assert not [n for n in os.listdir(q) if n.startswith('.')]
    error(spool(mount, 'push', 'nope', input='x'), 2, 'nope', 'ENOENT')
    error(spool(mount, 'push', 'jobs', '/no/such/file'), 2,
          '/no/such/file', 'ENOENT')


# ------------------------------------------------------------ take & co

def test_take_ack(mount):
    q = mount.mkq('jobs')
    push(q, b'hello')
    r = spool(mount, 'take', 'jobs')
    assert r.returncode == 0, r
    path = r.stdout.strip()
    assert path.startswith(str(q / 'leased') + '/')
    assert read_file(path) == b'hello'
    assert stats(q)['leased'] == 1
    assert spool(mount, 'ack', path).returncode == 0
    assert stats(q)['leased'] == 0 and stats(q)['acked_total'] == 1
    r = spool(mount, 'ack', path)
    error(r, 2, path, 'ENOENT')


def test_take_empty_queue(mount):
    mount.mkq('jobs')
    error(spool(mount, 'take', 'jobs', '--wait', '0'), 2, 'jobs', 'EAGAIN')
    t = time.monotonic()
    r = spool(mount, 'take', 'jobs', '--wait', '0.6')
    assert r.returncode == 2
    assert 0.5 <= time.monotonic() - t < 5
    error(spool(mount, 'take', 'nope', '--wait', '0'), 2, 'nope', 'ENOENT')


def test_take_waits_for_a_push(mount):
    q = mount.mkq('jobs')
    p = subprocess.Popen([str(SPOOL), '--mount', str(mount.mnt), 'take',
                          'jobs', '--wait', '10'], stdout=subprocess.PIPE,
                         text=True)
    time.sleep(0.5)
    push(q, b'late')
    out, _ = p.communicate(timeout=10)
    assert p.returncode == 0
    assert read_file(out.strip()) == b'late'


def test_release_and_extend(mount):
    q = mount.mkq('jobs', visibility_timeout=30)
    push(q, b'x')
    path = spool(mount, 'take', 'jobs').stdout.strip()
    assert spool(mount, 'release', path).returncode == 0
    assert stats(q)['visible'] == 1 and stats(q)['leased'] == 0
    path = spool(mount, 'take', 'jobs').stdout.strip()
    assert os.getxattr(path, 'user.spool.receives') == b'2'
    assert spool(mount, 'extend', path, '300').returncode == 0
    assert abs(os.stat(path).st_mtime - (time.time() + 300)) < 5
    assert spool(mount, 'extend', path).returncode == 0
    assert abs(os.stat(path).st_mtime - (time.time() + 30)) < 5
    error(spool(mount, 'release', str(q / 'peek' / 'x')), 1,
          str(q / 'peek' / 'x'), 'EINVAL')
    gone = str(q / 'leased' / 'AAAAAAAAAAA')
    error(spool(mount, 'release', gone), 2, gone, 'ENOENT')
    error(spool(mount, 'extend', gone), 2, gone, 'ENOENT')


# ------------------------------------------------------------ consume

def test_consume_acks_on_success_with_environment(mount, tmp_path):
    q = mount.mkq('jobs')
    out = tmp_path / 'out'
    for i in range(3):
        push(q, b'm%d\n' % i)
    r = spool(mount, 'push', 'jobs', '--attr', 'trace-id=t1',
              input='m3\n')
    script = ('cat >> %s; echo "$SPOOL_QUEUE $SPOOL_ID $SPOOL_RECEIVES '
              '$SPOOL_NAME ${SPOOL_ATTR_TRACE_ID:-}" >> %s.env'
              % (out, out))
    r = spool(mount, 'consume', 'jobs', '--wait', '0.5', '--', 'sh', '-c',
              script)
    assert r.returncode == 0, r
    assert r.stderr == ''              # no progress line in a pipe
    assert out.read_bytes() == b'm0\nm1\nm2\nm3\n'
    envs = (tmp_path / 'out.env').read_text().splitlines()
    assert len(envs) == 4
    assert all(e.split()[0] == 'jobs' and e.split()[2] == '1'
               for e in envs)
    assert envs[3].split()[3:] == ['stdin', 't1']
    s = stats(q)
    assert s['visible'] == 0 and s['leased'] == 0 and s['acked_total'] == 4


def test_consume_releases_on_failure(mount):
    q = mount.mkq('jobs')
    push(q, b'x')
    r = spool(mount, 'consume', 'jobs', '--max', '1', '--', 'false')
    assert r.returncode == 4, r
    s = stats(q)
    assert s['visible'] == 1 and s['leased'] == 0 and s['acked_total'] == 0
    mid = os.listdir(q / 'peek')[0]
    r = spool(mount, 'consume', 'jobs', '--max', '1', '--', 'sh', '-c',
              'test "$SPOOL_RECEIVES" = 2')
    assert r.returncode == 0, r
    assert stats(q)['acked_total'] == 1
    assert not os.path.exists(q / 'peek' / mid)


def test_consume_no_release_keeps_the_lease(mount):
    q = mount.mkq('jobs')
    push(q, b'x')
    r = spool(mount, 'consume', 'jobs', '--max', '1', '--no-release', '--',
              'false')
    assert r.returncode == 4
    assert stats(q)['leased'] == 1 and stats(q)['visible'] == 0


def test_consume_empty_exits_2(mount):
    mount.mkq('jobs')
    r = spool(mount, 'consume', 'jobs', '--wait', '0.3', '--', 'true')
    assert r.returncode == 2, r


def test_consume_missing_command_fails_and_releases(mount):
    q = mount.mkq('jobs')
    push(q, b'x')
    r = spool(mount, 'consume', 'jobs', '--max', '1', '--',
              '/no/such/command')
    assert r.returncode == 4
    assert 'ENOENT' in r.stderr
    assert stats(q)['visible'] == 1


@pytest.mark.spool_timeout(60)
def test_consume_heartbeat_keeps_lease_past_visibility_timeout(mount):
    q = mount.mkq('jobs', visibility_timeout=1)
    push(q, b'slow')
    p = subprocess.Popen([str(SPOOL), '--mount', str(mount.mnt), 'consume',
                          'jobs', '--max', '1', '--', 'sh', '-c',
                          'cat > /dev/null; sleep 3.5'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: stats(q)['leased'] == 1)
        time.sleep(2)                  # twice the visibility timeout
        assert stats(q)['leased'] == 1 and stats(q)['visible'] == 0
        r = spool(mount, 'take', 'jobs', '--wait', '0')
        assert r.returncode == 2, r    # nobody else can lease it
        assert p.wait(20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    s = stats(q)
    assert s['acked_total'] == 1 and s['expired_total'] == 0


def test_consume_parallel_jobs(mount, tmp_path):
    q = mount.mkq('jobs')
    for i in range(4):
        push(q, b'%d' % i)
    t = time.monotonic()
    r = spool(mount, 'consume', 'jobs', '-j', '4', '--max', '4', '--', 'sh',
              '-c', 'sleep 1.5; cat >> %s' % (tmp_path / 'out'))
    took = time.monotonic() - t
    assert r.returncode == 0, r
    assert sorted((tmp_path / 'out').read_text()) == ['0', '1', '2', '3']
    assert took < 4, 'four 1.5 s commands with -j 4 took %.1f s' % took
    assert stats(q)['acked_total'] == 4


def test_consume_max(mount):
    q = mount.mkq('jobs')
    for i in range(5):
        push(q, b'%d' % i)
    r = spool(mount, 'consume', 'jobs', '--max', '2', '--', 'true')
    assert r.returncode == 0
    assert stats(q)['visible'] == 3 and stats(q)['acked_total'] == 2


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_consume_signal_finishes_running_command(mount, tmp_path, sig):
    q = mount.mkq('jobs')
    push(q, b'first')
    push(q, b'second')
    out = tmp_path / 'out'
    started = tmp_path / 'started'
    p = subprocess.Popen([str(SPOOL), '--mount', str(mount.mnt), 'consume',
                          'jobs', '--', 'sh', '-c',
                          'touch %s; sleep 1; cat >> %s' % (started, out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # the signal must find the command running (between the lease and the
    # start of the command, stopping may release the message instead)
    assert wait_until(started.exists, timeout=20)
    p.send_signal(sig)
    assert p.wait(10) == 0, p.stderr.read()
    assert out.read_bytes() == b'first'      # finished, acked
    s = stats(q)
    assert s['acked_total'] == 1 and s['visible'] == 1 and s['leased'] == 0


def test_consume_progress_line_on_a_tty(mount):
    q = mount.mkq('jobs')
    push(q, b'x')
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(str(SPOOL), [str(SPOOL), '--mount', str(mount.mnt),
                              'consume', 'jobs', '--wait', '0.5', '--',
                              'true'])
    out = b''
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b'jobs: 1 done, 0 failed, 0 running' in out, out


# ------------------------------------------------------------ queues

def test_ls_and_stats(mount):
    a = mount.mkq('alpha')
    mount.mkq('beta')
    push(a, b'x')
    assert spool(mount, 'ls').stdout == 'alpha\nbeta\n'
    lines = spool(mount, 'ls', '-l').stdout.splitlines()
    assert lines[0].split() == ['QUEUE', 'VISIBLE', 'DELAYED', 'LEASED']
    assert lines[1].split() == ['alpha', '1', '0', '0']
    r = spool(mount, 'stats', 'alpha')
    keys = [l.split('=')[0] for l in r.stdout.splitlines()]
    assert keys == [l.split('=')[0] for l in
                    read_file(a / 'stats').decode().splitlines()]
    assert 'visible=1' in r.stdout.splitlines()
    r = spool(mount, 'stats')
    assert 'alpha visible=1' in r.stdout.splitlines()
    assert 'beta visible=0' in r.stdout.splitlines()
    d = json.loads(spool(mount, 'stats', '--json').stdout)
    assert d['alpha']['visible'] == 1 and d['alpha']['pushed_total'] == 1
    assert d['beta']['visible'] == 0
    d = json.loads(spool(mount, 'stats', 'alpha', '--json').stdout)
    assert list(d) == ['alpha']
    error(spool(mount, 'stats', 'nope'), 2, 'nope', 'ENOENT')


def test_config(mount):
    q = mount.mkq('jobs')
    r = spool(mount, 'config', 'jobs')
    assert r.returncode == 0 and r.stdout == read_file(q / 'config').decode()
    r = spool(mount, 'config', 'jobs', 'visibility_timeout=7',
              'priority=2')
    assert r.returncode == 0, r
    c = mount.config()
    assert c['visibility_timeout'] in (7, '7') and c['priority'] in (2, '2')
    r = spool(mount, 'config', 'jobs', 'priority=9', 'bogus=1')
    error(r, 1, 'jobs', 'EINVAL')
    assert mount.config()['priority'] in (2, '2')    # all or none
    assert spool(mount, 'config', 'jobs', 'novalue').returncode == 1


def test_mkq_rmq(mount):
    r = spool(mount, 'mkq', 'orders', 'visibility_timeout=5')
    assert r.returncode == 0, r
    assert os.path.isdir(mount.mnt / 'orders')
    assert mount.config('orders')['visibility_timeout'] in (5, '5')
    error(spool(mount, 'mkq', 'orders'), 3, 'orders', 'EEXIST')
    error(spool(mount, 'mkq', 'bad', 'bogus=1'), 1, 'bad', 'EINVAL')
    assert not os.path.exists(mount.mnt / 'bad')     # removed again
    push(mount.mnt / 'orders', b'x')
    error(spool(mount, 'rmq', 'orders'), 3, 'orders', 'ENOTEMPTY')
    assert spool(mount, 'purge', 'orders').returncode == 0
    assert spool(mount, 'rmq', 'orders').returncode == 0
    assert not os.path.exists(mount.mnt / 'orders')
    error(spool(mount, 'rmq', 'orders'), 2, 'orders', 'ENOENT')


def test_purge_and_move(mount):
    a = mount.mkq('a')
    b = mount.mkq('b')
    for i in range(5):
        push(a, b'%d' % i)
    assert spool(mount, 'move', 'a', 'b', '2').returncode == 0
    assert stats(a)['visible'] == 3 and stats(b)['visible'] == 2
    assert spool(mount, 'move', 'a', 'b').returncode == 0
    assert stats(a)['visible'] == 0 and stats(b)['visible'] == 5
    assert spool(mount, 'purge', 'b').returncode == 0
    assert stats(b)['visible'] == 0
    error(spool(mount, 'move', 'a', 'nope'), 2, 'nope', 'ENOENT')
    assert spool(mount, 'move', 'a', 'b', 'x').returncode == 1


# ------------------------------------------------------------ top

def test_top_plain_frames(mount):
    q = mount.mkq('jobs')
    mount.mkq('other')
    push(q, b'x')
    p = subprocess.Popen([str(SPOOL), '--mount', str(mount.mnt), 'top',
                          '-n', '3', '-d', '1'], stdout=subprocess.PIPE,
                         text=True)
    # push once the first frame is out (each frame is flushed and ends
    # with an empty line), so that the pushes fall between two frames
    # however slowly the store answers
    first = ''
    while not (first.endswith('\n\n') and '\njobs ' in first):
        line = p.stdout.readline()
        assert line, first             # top ended before its first frame
        first += line
    push_lines(q, [b'%d' % i for i in range(10)])
    out, _ = p.communicate(timeout=10)
    out = first + out
    assert p.returncode == 0
    assert '\033' not in out           # no escapes when not a terminal
    frames = [f for f in out.split('spool top') if f.strip()]
    assert len(frames) == 3
    rows = [l.split() for l in frames[-1].splitlines()
            if l.startswith('jobs ')]
    assert rows and rows[0][1:5] == ['11', '0', '0', '0'], frames[-1]
    push_rates = [float(l.split()[5]) for f in frames[1:]
                  for l in f.splitlines() if l.startswith('jobs ')]
    assert max(push_rates) > 0         # the 10 pushes show up as a rate
    assert any(l.startswith('other ') for l in frames[0].splitlines())


def test_top_on_a_terminal_quits_on_q(mount):
    mount.mkq('jobs')
    pid, fd = pty.fork()
    if pid == 0:
        os.environ['LANG'] = 'C.UTF-8'
        os.execv(str(SPOOL), [str(SPOOL), '--mount', str(mount.mnt), 'top'])
    out = b''
    deadline = time.monotonic() + 10
    while b'jobs' not in out and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            out += os.read(fd, 65536)
    os.write(fd, b'q')
    t = time.monotonic()
    while time.monotonic() - t < 5:
        r = select.select([fd], [], [], 0.2)[0]
        try:
            if r and not os.read(fd, 65536):
                break
        except OSError:
            break
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail('spool top did not quit on q')
    if not done:
        _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b'\033[?1049h' in out and b'PUSH (1 min)' in out


# ------------------------------------------------------------ build, docs

def test_cli_does_not_link_the_engine():
    r = subprocess.run(['ldd', str(SPOOL)], capture_output=True, text=True)
    assert 'rocksdb' not in r.stdout and 'fuse' not in r.stdout, r.stdout
    nm = subprocess.run(['nm', '-D', '--undefined-only', str(SPOOL)],
                        capture_output=True, text=True)
    assert 'spool_open' not in nm.stdout


@pytest.mark.parametrize('page', ['spool.1', 'spoolfs.1'])
def test_man_page_renders_without_warnings(page):
    env = dict(os.environ, MANWIDTH='80', LC_ALL='C.UTF-8')
    r = subprocess.run(['man', '-l', '--warnings', str(SRC / 'docs' / page)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0
    assert r.stderr == '', r.stderr
    assert len(r.stdout.splitlines()) > 40


def test_man_page_names_every_command():
    text = (SRC / 'docs' / 'spool.1').read_text()
    for c in COMMANDS:
        assert 'fBspool %s' % c in text, c


def test_meson_install(tmp_path):
    dest = tmp_path / 'dest'
    r = subprocess.run(['meson', 'install', '-C', str(BUILD), '--no-rebuild',
                        '--destdir', str(dest)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    files = {str(p.relative_to(dest)) for p in dest.rglob('*')
             if p.is_file() or p.is_symlink()}
    names = {os.path.basename(f) for f in files}
    for want in ('spool', 'spoolfs', 'spool.1', 'spoolfs.1',
                 'mount.spoolfs', 'mount.fuse.spoolfs'):
        assert want in names, sorted(files)
    assert 'sbin/mount.fuse.spoolfs' in files
    helper = (dest / 'sbin' / 'mount.spoolfs').read_text()
    assert '@bindir@' not in helper


# ------------------------------------------------------------ mounting

def _helper():
    return BUILD / 'tools' / 'mount.spoolfs'


FSTAB = ('# spoolfs: STORE MOUNTPOINT fuse.spoolfs OPTIONS\n'
         '{data}  {mnt}  fuse.spoolfs  rw,nosuid,nodev,sync=none,'
         '_netdev,nofail  0  0\n')


def test_fstab_line_parses(tmp_path):
    (tmp_path / 'mnt').mkdir()
    fstab = tmp_path / 'fstab'
    fstab.write_text(FSTAB.format(data=tmp_path / 'data',
                                  mnt=tmp_path / 'mnt'))
    r = subprocess.run(['findmnt', '--verify', '--tab-file', str(fstab)],
                       capture_output=True, text=True)
    assert '0 parse errors' in r.stdout + r.stderr, r
    # --fake: parse and resolve, mount nothing; -i: no helper (mount(8)
    # finds helpers in /sbin only, where this build is not installed)
    r = subprocess.run(['mount', '-a', '-T', str(fstab), '--fake', '-i',
                        '-v'], capture_output=True, text=True)
    assert r.returncode == 0, r
    assert '%s' % (tmp_path / 'mnt') in r.stdout
    assert 'successfully mounted' in r.stdout
    assert not os.path.ismount(tmp_path / 'mnt')


@pytest.mark.spool_timeout(60)
def test_mount_helper_mounts_like_mount_8(tmp_path):
    """Runs the helper exactly as mount(8) runs /sbin/mount.fuse.spoolfs
    for the fstab line above: SOURCE TARGET -o OPTS -t fuse.spoolfs."""
    mnt, data = tmp_path / 'mnt', tmp_path / 'data'
    mnt.mkdir()
    env = dict(os.environ, SPOOLFS=str(BIN))
    r = subprocess.run(['sh', str(_helper()), str(data), str(mnt), '-o',
                        'rw,nosuid,nodev,sync=none,nofail,x-systemd.'
                        'automount', '-t', 'fuse.spoolfs', '-n'],
                       capture_output=True, text=True, env=env, timeout=30)
    try:
        assert r.returncode == 0, r
        assert os.path.ismount(mnt)      # the daemon returns once live
        os.mkdir(mnt / 'jobs')
        (mnt / 'jobs' / 'm').write_bytes(b'via fstab')
        rr = subprocess.run([str(SPOOL), '--mount', str(mnt), 'take',
                             'jobs', '--wait', '0'], capture_output=True,
                            text=True)
        assert rr.returncode == 0 and read_file(rr.stdout.strip()) == \
            b'via fstab'
        line = [l for l in open('/proc/self/mountinfo')
                if l.split()[4] == str(mnt)][0]
        assert 'nosuid' in line and 'fuse.spoolfs' in line
    finally:
        if os.path.ismount(mnt):
            assert run_fusermount('-u', str(mnt)).returncode == 0
    # the daemonized spoolfs exits after the unmount and frees the store
    assert os.path.isdir(data)
    wait_until(lambda: subprocess.run(
        ['fuser', str(data / 'LOCK')], capture_output=True).returncode != 0
        if shutil.which('fuser') else True, timeout=10)


def test_mount_helper_dry_run_shows_the_daemon_command(tmp_path):
    env = dict(os.environ, SPOOLFS='/x/spoolfs')
    r = subprocess.run(['sh', str(_helper()), '/var/lib/q', '/srv/q', '-o',
                        'defaults,noauto,user,_netdev,allow_other,'
                        'comment=x', '-f', '-v'], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0
    assert r.stderr.strip().endswith(
        '/x/spoolfs --data /var/lib/q -o allow_other /srv/q'), r.stderr
    assert subprocess.run(['sh', str(_helper())], capture_output=True
                          ).returncode == 1


@pytest.mark.spool_timeout(60)
def test_daemon_takes_mount_fuse3_command_line(tmp_path):
    mnt, data = tmp_path / 'mnt', tmp_path / 'data'
    mnt.mkdir()
    p = subprocess.Popen([str(BIN), str(data), str(mnt), '-o', 'rw,nosuid',
                          '-f'], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_mount(p, str(mnt), lambda: '', timeout=5)
    finally:
        if os.path.ismount(mnt):
            run_fusermount('-u', str(mnt))
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
        p.wait(10)
