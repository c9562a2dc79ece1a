"""Fixtures that mount spoolfs the way libfuse's test/util.py does.

Every test gets its own temporary directory with mnt/ and data/, and its own
daemon started in the foreground (-f) in its own process group, its output in
a log file. The fixture waits for the mount, yields a Mount object, and at
teardown unmounts with `fusermount3 -u` and asserts that the daemon exited 0
(that catches crashes and hangs at shutdown). The failure path always cleans
up: `fusermount3 -u -z`, then SIGTERM, then SIGKILL to the daemon's process
group, by pid. A failing test shows the daemon's log and a one-line repro
command; a test also fails when the log holds a warning or error line it did
not declare with mount.expect_log(regex).

Missing /dev/fuse, fusermount3 or the daemon binary fail the suite: these
tests are never skipped.
"""
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import spoolutil  # noqa: E402

SRC = Path(os.environ.get('SPOOLFS_SRC') or Path(__file__).resolve().parents[2])
BIN = Path(os.environ.get('SPOOLFS_BIN') or SRC / 'build' / 'fs' / 'spoolfs')
FUSERMOUNT = shutil.which('fusermount3')

# A log line that means a real problem (STYLE.md: expected outcomes such as
# ENOENT or EAGAIN are not warnings), plus what sanitizers and libc print.
BAD_LOG = re.compile(
    r'(?i)\b(warn|warning|error|err|fatal|crit|critical|panic|bug)\b'
    r'|sanitizer|runtime error|segmentation fault|core dumped|assertion'
    r'|double free|corrupted|chunk detected|stack smashing|\(\): '
    r'|^fuse: ')
HEADER = '### spoolfs-test: '
# The daemon's own info and debug lines (fs/log.c: "spoolfs: LEVEL: text")
# are never failures, whatever words they contain.
QUIET_LOG = re.compile(r'^spoolfs(\[\d+\])?: (info|debug): ')

DEFAULT_TIMEOUT = 120  # seconds per test unless marked spool_timeout(n)

# The store the daemons use: unset or "rocksdb", a RocksDB directory per
# test (Mount.data); a URL (redis://HOST:PORT[/PREFIX], as
# tests/redis-run.sh exports it, or redis+cluster://H:P,H:P.../PREFIX, as
# tests/redis-cluster-run.sh does), that URL with a path unique to the test
# appended, so that every test has a namespace of its own on the server.
STORE = os.environ.get('SPOOL_TEST_STORE', '')
# the Redis store in the Cluster's mode: a Redis Cluster, or one primary
# with SPOOL_REDIS_CLUSTER_MODE (a test seam of engine/redis/conn.c): the
# family rule of DESIGN §10 holds
CLUSTER_MODE = STORE.startswith('redis+cluster://') or (
    STORE.startswith('redis') and
    bool(os.environ.get('SPOOL_REDIS_CLUSTER_MODE')))
if STORE == 'rocksdb':
    STORE = ''


def store_is_redis():
    """The store is Redis: one primary or a Cluster."""
    return STORE.startswith(('redis://', 'redis+cluster://'))


def store_is_cluster():
    return STORE.startswith('redis+cluster://')


def environment_problems():
    problems = []
    if not os.path.exists('/dev/fuse'):
        problems.append('/dev/fuse is missing (modprobe fuse; in a container '
                        'run with --device /dev/fuse --cap-add SYS_ADMIN)')
    if FUSERMOUNT is None:
        problems.append('fusermount3 is not on PATH (apt-get install fuse3)')
    if not os.access(BIN, os.X_OK):
        problems.append('daemon binary %s is missing or not executable '
                        '(build it, or set SPOOLFS_BIN)' % BIN)
    return problems


@pytest.fixture(scope='session', autouse=True)
def fuse_environment():
    """Fails (never skips) every test when FUSE cannot be tested here."""
    problems = environment_problems()
    if problems:
        pytest.fail('cannot test spoolfs: ' + '; '.join(problems),
                    pytrace=False)


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'spoolfs(*args): extra daemon options for the mount '
        'fixture, e.g. @pytest.mark.spoolfs("--sync", "none")')
    config.addinivalue_line(
        'markers', 'rocksdb_only(reason): the test is about the RocksDB '
        'store itself; not run when SPOOL_TEST_STORE names another store')
    config.addinivalue_line(
        'markers', 'across_families(reason): the test needs queues of '
        'several families together (fan-out, dead-letter queues or moves '
        'across families), which a Redis Cluster refuses (EINVAL, EXDEV); '
        'not run in the Cluster\'s mode (SPOOL_REDIS_CLUSTER_MODE)')
    config.addinivalue_line(
        'markers', 'spool_timeout(seconds): watchdog for this test '
        '(default %d s); on expiry the daemons are killed so that '
        'blocked system calls return' % DEFAULT_TIMEOUT)


def wait_for_mount(proc, mnt, log, timeout=20.0):
    """Polls os.path.ismount every 0.05 s; fails at once if the daemon exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.ismount(mnt):
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail('spoolfs exited with %s before mounting %s:\n%s'
                        % (proc.returncode, mnt, log()), pytrace=False)
        time.sleep(0.05)
    pytest.fail('spoolfs did not mount %s within %.0f s:\n%s'
                % (mnt, timeout, log()), pytrace=False)


def is_mounted(path):
    """True if path is a mount point in /proc/self/mountinfo, live or dead.
    (os.path.ismount says False for a dead FUSE mount: its lstat fails with
    ENOTCONN, so it cannot be used to decide whether to clean up.)"""
    target = os.path.realpath(str(path))
    with open('/proc/self/mountinfo') as f:
        for line in f:
            mp = line.split()[4]
            mp = re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)),
                        mp)
            if mp == target:
                return True
    return False


def run_fusermount(*args):
    return subprocess.run([FUSERMOUNT, *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=30)


def kill_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


class Mount:
    """One mounted spoolfs, with helpers. Attributes:

    mnt, data, tmp (Paths), proc (the daemon's Popen), args (extra options),
    cmd (the daemon's last command line), wrap (a command the daemon runs
    under, e.g. nsenter --net=...: another host's network).
    """

    def __init__(self, tmp, args, request=None, store=None):
        self.tmp = Path(tmp)
        self.mnt = self.tmp / 'mnt'
        self.data = self.tmp / 'data'
        self.mnt.mkdir(exist_ok=True)
        self.data.mkdir(exist_ok=True)
        self.logfile = self.tmp / 'spoolfs.log'
        self._store = store
        self.args = list(args)
        self.wrap = []
        self.proc = None
        self.cmd = None
        self.expected = []
        self.exits = []           # (cmd, returncode) of daemons that ended
        self.ended = []           # daemons stopped by umount() or kill9()
        self.request = request

    @property
    def store(self):
        """The --data value: the directory (self.data, which a test may
        change), or the test's namespace of the store SPOOL_TEST_STORE
        names, or the store given to the factory."""
        if self._store:
            return self._store
        if STORE:
            return '%s/%s' % (STORE.rstrip('/'), self.tmp.name)
        return str(self.data)

    # ------------------------------------------------------------ daemon
    def start(self, *args, wait=True):
        """Starts a daemon on self.data and self.mnt (extra args replace
        the mount's args if given) and waits for the mount."""
        if args:
            self.args = list(args)
        self.cmd = [*self.wrap, str(BIN), '-f', '--data', self.store, *self.args,
                    str(self.mnt)]
        with open(self.logfile, 'a') as f:
            f.write(HEADER + shlex.join(self.cmd) + '\n')
            f.flush()
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                         stdout=f, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        if wait:
            wait_for_mount(self.proc, str(self.mnt), self.log)
        return self

    def log(self):
        try:
            return self.logfile.read_text(errors='replace')
        except FileNotFoundError:
            return ''

    def expect_log(self, regex):
        """Declares log lines matching regex as expected (not a failure)."""
        self.expected.append(re.compile(regex))

    def bad_log_lines(self):
        bad = []
        for line in self.log().splitlines():
            if line.startswith(HEADER) or QUIET_LOG.match(line):
                continue
            if BAD_LOG.search(line) and \
                    not any(r.search(line) for r in self.expected):
                bad.append(line)
        return bad

    def umount(self, timeout=10):
        """fusermount3 -u (retried while busy), then asserts exit code 0."""
        deadline = time.monotonic() + 5
        while True:
            r = run_fusermount('-u', str(self.mnt))
            if r.returncode == 0 or not is_mounted(self.mnt):
                break
            if time.monotonic() > deadline:
                raise AssertionError('fusermount3 -u %s failed: %s'
                                     % (self.mnt, r.stdout.strip()))
            time.sleep(0.1)
        assert not is_mounted(self.mnt)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError('spoolfs did not exit within %d s of '
                                 'fusermount3 -u' % timeout)
        self.exits.append((self.cmd, rc))
        self.ended.append(self.proc)
        assert rc == 0, 'spoolfs exited with %d after unmount' % rc

    def remount(self, *args):
        """Clean unmount, then a new daemon on the same --data."""
        self.umount()
        return self.start(*args)

    def kill9(self, restart=True, *args):
        """kill -9 the daemon, clear the dead mount with fusermount3 -u -z,
        and (by default) start a new daemon on the same --data."""
        kill_group(self.proc, signal.SIGKILL)
        self.proc.wait(10)
        self.exits.append((self.cmd, self.proc.returncode))
        self.ended.append(self.proc)
        r = run_fusermount('-u', '-z', str(self.mnt))
        assert r.returncode == 0, r.stdout
        assert not is_mounted(self.mnt)
        if restart:
            return self.start(*args)
        return self

    def cleanup(self):
        """The failure path: lazy unmount, SIGTERM, SIGKILL, by pid."""
        for _ in range(3):   # a mount may be stacked on a dead one
            if not is_mounted(self.mnt):
                break
            run_fusermount('-u', '-z', str(self.mnt))
        p = self.proc
        if p is None or p.poll() is not None:
            return
        try:
            p.wait(1)
            return
        except subprocess.TimeoutExpired:
            pass
        kill_group(p, signal.SIGTERM)
        try:
            p.wait(2)
            return
        except subprocess.TimeoutExpired:
            pass
        kill_group(p, signal.SIGKILL)
        p.wait(10)

    def repro(self):
        nodeid = self.request.node.nodeid if self.request else ''
        test = os.path.join(str(SRC), 'tests', 'fs', nodeid) if nodeid else ''
        return ('SPOOLFS_BIN=%s /usr/bin/python3 -m pytest -x %s   '
                '# daemon: %s' % (shlex.quote(str(BIN)), shlex.quote(test),
                                  shlex.join(self.cmd or [])))

    # ------------------------------------------------------------ helpers
    def q(self, name='jobs'):
        return self.mnt / name

    def mkq(self, name='jobs', mode=0o755, **config):
        """Creates a queue (mkdir) and writes the given config keys."""
        p = self.mnt / name
        os.mkdir(p, mode)
        if config:
            spoolutil.set_config(p, **config)
        return p

    def stats(self, name='jobs'):
        return spoolutil.stats(self.mnt / name)

    def config(self, name='jobs'):
        return spoolutil.config(self.mnt / name)

    def sh(self, cmd, check=True, timeout=60, **kw):
        """Runs cmd with sh -c in the mount point; returns CompletedProcess
        (bytes stdout/stderr)."""
        kw.setdefault('stdin', subprocess.DEVNULL)
        r = subprocess.run(['sh', '-c', cmd], cwd=self.mnt, timeout=timeout,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           **kw)
        if check and r.returncode != 0:
            raise AssertionError('sh -c %r exited %d\nstdout: %r\nstderr: %r'
                                 % (cmd, r.returncode, r.stdout, r.stderr))
        return r


class Watchdog:
    """Kills the test's daemons when the test runs too long, so that system
    calls blocked on the mount return (ENOTCONN) and the test fails instead
    of hanging the suite."""

    def __init__(self, seconds):
        self.mounts = []
        self.fired = False
        self.timer = threading.Timer(seconds, self.fire)
        self.timer.daemon = True
        self.seconds = seconds
        self.timer.start()

    def fire(self):
        self.fired = True
        for m in self.mounts:
            if m.proc is not None and m.proc.poll() is None:
                with open(m.logfile, 'a') as f:
                    f.write(HEADER + 'watchdog: test ran over %d s, '
                            'killing the daemon\n' % self.seconds)
                kill_group(m.proc, signal.SIGKILL)

    def cancel(self):
        self.timer.cancel()


def _timeout_for(request):
    marker = request.node.get_closest_marker('spool_timeout')
    return marker.args[0] if marker else DEFAULT_TIMEOUT


@pytest.fixture
def watchdog(request):
    w = Watchdog(_timeout_for(request))
    yield w
    w.cancel()
    if w.fired:
        pytest.fail('test ran over its %d s limit; daemons were killed'
                    % w.seconds, pytrace=False)


@pytest.fixture
def mount_factory(request, watchdog):
    """Returns make(*args, start=True, store=None, wrap=()) -> Mount;
    every Mount made is unmounted (daemon exit 0 asserted) and its log
    checked at teardown. store: the --data value (another mount's .store:
    a second host on the same store), instead of the mount's own; wrap:
    the daemon's command line is prefixed with it (Mount.wrap)."""
    mounts = []
    tmps = []
    request.node._spool_mounts = mounts

    def make(*args, start=True, store=None, wrap=()):
        tmp = tempfile.mkdtemp(prefix='spoolfs-test-')
        tmps.append(tmp)
        m = Mount(tmp, args, request, store)
        m.wrap = list(wrap)
        mounts.append(m)
        watchdog.mounts.append(m)
        if start:
            try:
                m.start()
            except BaseException:
                m.cleanup()
                raise
        return m

    yield make

    errors = []
    for m in mounts:
        # A daemon that ended on its own, not by umount()/kill9(), a clean
        # exit or a test's own kill -9, crashed (abort, segfault, sanitizer).
        p = m.proc
        if p is not None and p.poll() is not None and p not in m.ended \
                and p.returncode not in (0, -signal.SIGKILL):
            errors.append('%s: the daemon died during the test (exit %d)'
                          % (m.mnt, p.returncode))
        try:
            if m.proc is not None and m.proc.poll() is None \
                    and os.path.ismount(m.mnt):
                m.umount()
        except BaseException as e:  # noqa: B902 - report, then clean up
            errors.append('%s: %s' % (m.mnt, e))
        finally:
            m.cleanup()
        if m.proc is not None and m.proc.poll() is None:
            errors.append('%s: daemon still running after cleanup' % m.mnt)
        bad = m.bad_log_lines()
        if bad:
            errors.append('%s: unexpected warning/error lines in the daemon '
                          'log:\n  %s' % (m.mnt, '\n  '.join(bad)))
    rep = getattr(request.node, 'rep_call', None)
    if not errors and (rep is None or rep.passed):
        for t in tmps:
            shutil.rmtree(t, ignore_errors=True)
    if errors:
        pytest.fail('\n'.join(errors), pytrace=False)


@pytest.fixture
def mount(request, mount_factory):
    """A mounted spoolfs. Extra daemon options: @pytest.mark.spoolfs(...)."""
    marker = request.node.get_closest_marker('spoolfs')
    args = marker.args if marker else ()
    return mount_factory(*args)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, 'rep_' + rep.when, rep)
    if not rep.failed:
        return
    for m in getattr(item, '_spool_mounts', []):
        rep.sections.append(('spoolfs log %s' % m.logfile, m.log()))
        rep.sections.append(('repro', m.repro()))


def pytest_collection_modifyitems(config, items):
    """On another store than RocksDB, deselects the tests marked
    rocksdb_only, and says so with their reasons at the end: they are
    not skipped in silence."""
    if not STORE:
        return
    marks = ['rocksdb_only']
    if CLUSTER_MODE:
        marks.append('across_families')
    for name in marks:
        keep, gone = [], []
        for item in items:
            mark = item.get_closest_marker(name)
            (gone if mark else keep).append(item)
        if gone:
            config.hook.pytest_deselected(items=gone)
            items[:] = keep
            setattr(config, '_spool_' + name, [
                (i.nodeid, i.get_closest_marker(name).args[0])
                for i in gone])


def pytest_terminal_summary(terminalreporter, config):
    for name, title in (
            ('rocksdb_only', 'not run on %s (RocksDB only)' % STORE),
            ('across_families', 'not run in the Redis Cluster\'s mode '
             '(queues of several families)')):
        gone = getattr(config, '_spool_' + name, [])
        if gone:
            terminalreporter.section(title)
            for nodeid, reason in gone:
                terminalreporter.line('%s: %s' % (nodeid, reason))
