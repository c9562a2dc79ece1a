"""The Redis store's topologies (DESIGN §10, issue 14): `?replicas=N`
(WAIT for replicas after every change, EIO when too few confirm) and
`redis+sentinel://` (the daemon asks the sentinels for the primary and
follows a failover). Every redis-server and redis-sentinel here is started
by the test on a free loopback port with a directory of its own, and
stopped by its pid. Runs on any store setting (it makes its own servers);
a missing redis-server or redis-sentinel fails the tests.
"""
import errno
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import redisutil

from conftest import BIN
from spoolutil import bodies, push, read_file, stats, wait_until

SERVER = shutil.which('redis-server')
SENTINEL = shutil.which('redis-sentinel')
CLI = shutil.which('redis-cli')

# What the daemon logs while a primary or a replica is gone: expected in
# these tests, not failures.
OUTAGE_LOG = (r'no answer|WAIT \d+: \d+ replica|READONLY|MASTERDOWN'
              r'|the primary is now')


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cli(port, *args):
    assert CLI, 'redis-cli is missing (package redis-tools)'
    r = subprocess.run([CLI, '-p', str(port), *args], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


class Servers:
    """redis-server and redis-sentinel processes of one test: started on
    free loopback ports, each in its own directory, stopped by pid."""

    def __init__(self):
        assert SERVER, 'redis-server is missing (package redis-server)'
        assert SENTINEL, 'redis-sentinel is missing (package redis-sentinel)'
        self.root = tempfile.mkdtemp(prefix='spool-topo-')
        self.procs = {}           # port -> Popen
        self.args = {}            # port -> argv, to restart

    def _start(self, port, argv):
        self.args[port] = argv
        log = open(os.path.join(self.root, '%d.out' % port), 'a')
        self.procs[port] = subprocess.Popen(argv, stdout=log,
                                            stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(('127.0.0.1', port), 0.2).close()
                return port
            except OSError:
                assert self.procs[port].poll() is None, \
                    '%s exited: %s' % (argv[0], self.out(port))
                assert time.monotonic() < deadline, '%s silent' % argv[0]
                time.sleep(0.05)

    def out(self, port):
        with open(os.path.join(self.root, '%d.out' % port)) as f:
            return f.read()

    def redis(self, replicaof=None):
        """A redis-server (a replica of port replicaof if given) with AOF
        fsynced always and noeviction; its port."""
        port = free_port()
        d = os.path.join(self.root, str(port))
        os.makedirs(d, exist_ok=True)
        argv = [SERVER, '--port', str(port), '--bind', '127.0.0.1',
                '--dir', d, '--save', '', '--appendonly', 'yes',
                '--appendfsync', 'always', '--maxmemory-policy',
                'noeviction', '--repl-diskless-sync-delay', '0']
        if replicaof:
            argv += ['--replicaof', '127.0.0.1', str(replicaof)]
        return self._start(port, argv)

    def sentinel(self, primary, master='m'):
        """A redis-sentinel watching primary as master (quorum 2, down
        after 2 s, failover timeout 5 s: with 1 s, a sentinel that had
        just learnt of a new primary took it for down at once and failed
        over a second time); its port."""
        port = free_port()
        d = os.path.join(self.root, 's%d' % port)
        os.makedirs(d)
        conf = os.path.join(d, 'sentinel.conf')
        with open(conf, 'w') as f:
            f.write('port %d\nbind 127.0.0.1\ndir %s\n'
                    'sentinel monitor %s 127.0.0.1 %d 2\n'
                    'sentinel down-after-milliseconds %s 2000\n'
                    'sentinel failover-timeout %s 5000\n'
                    'sentinel parallel-syncs %s 1\n'
                    % (port, d, master, primary, master, master, master))
        return self._start(port, [SENTINEL, conf])

    def synced(self, replica):
        """Waits until replica has finished its sync with its primary."""
        assert wait_until(lambda: 'master_link_status:up' in
                          cli(replica, 'INFO', 'replication'), 20), \
            self.out(replica)

    def kill(self, port, sig=signal.SIGTERM):
        p = self.procs.pop(port)
        os.kill(p.pid, sig)
        p.wait(20)

    def restart(self, port):
        return self._start(port, self.args[port])

    def close(self):
        for port in list(self.procs):
            redisutil.stop_process(self.procs.pop(port))
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def servers():
    s = Servers()
    try:
        yield s
    finally:
        s.close()


def spoolfs_exit(data, tmp_path):
    """Runs a daemon in the foreground on data; (exit status, stderr)."""
    return redisutil.spoolfs_exit(BIN, data, tmp_path)


def test_bad_topology_urls_exit_2_with_one_line(servers, tmp_path):
    """A URL the store cannot use: exit 2, one line saying why."""
    primary = servers.redis()
    cases = [
        ('redis://127.0.0.1:%d/t?replicas=x' % primary,
         '?replicas=x: not redis://HOST:PORT[/PREFIX][?replicas=N], '
         'redis+sentinel://'),
        ('redis://127.0.0.1:%d/t?wait=1' % primary, 'not redis://'),
        ('redis+sentinel://127.0.0.1:%d' % primary, 'not redis://'),
        ('redis+cluster://127.0.0.1:%d/t' % primary,
         'redis cluster 127.0.0.1:%d: no node answered CLUSTER SLOTS '
         '(unreachable, or not a cluster node)' % primary),
        ('redis+cluster://127.0.0.1/t', 'or redis+cluster://HOST:PORT'),
        ('redis+cluster://127.0.0.1:%d,127.0.0.1/t' % primary,
         'or redis+cluster://HOST:PORT'),
        ('redis+sentinel://127.0.0.1:%d/m/t' % free_port(),
         'redis sentinel master m: no sentinel answered (or none knows '
         'this master)'),
    ]
    for url, why in cases:
        rc, err = spoolfs_exit(url, tmp_path)
        assert rc == 2, (url, err)
        assert why in err, (url, err)
        assert len(err.strip().splitlines()) == 1, err


def test_sentinel_start_checks_apply_to_the_primary_found(servers,
                                                          tmp_path):
    """The §10 start checks run on the primary the sentinels name."""
    primary = servers.redis()
    s = servers.sentinel(primary)
    url = 'redis+sentinel://127.0.0.1:%d/m/t' % s
    cli(primary, 'CONFIG', 'SET', 'appendfsync', 'everysec')
    rc, err = spoolfs_exit(url, tmp_path)
    assert rc == 2, err
    assert 'redis 127.0.0.1:%d: appendfsync is everysec; --sync always ' \
        'needs appendfsync always' % primary in err, err
    cli(primary, 'CONFIG', 'SET', 'appendfsync', 'always')
    cli(primary, 'CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru')
    rc, err = spoolfs_exit(url, tmp_path)
    assert rc == 2, err
    assert 'maxmemory-policy is allkeys-lru; the store needs noeviction' \
        in err, err


def test_replicas_wait_then_eio_when_the_replica_is_gone(servers,
                                                         mount_factory):
    """?replicas=1: a push returns once the replica has it; with the
    replica stopped, changes fail with EIO (after the 10 s of §10) and
    the daemon says why; reads go on; once a replica is back, changes
    work again."""
    primary = servers.redis()
    replica = servers.redis(replicaof=primary)
    servers.synced(replica)
    m = mount_factory(store='redis://127.0.0.1:%d/rw?replicas=1' % primary)
    m.expect_log(OUTAGE_LOG)
    q = m.mkq('jobs')
    m.sh('printf one > %s/a && cp %s/a %s/b' % (m.tmp, m.tmp, q))
    push(q, b'two', name='c')
    # both on the replica already: WAIT returned before the reply
    # every key of the namespace: {rw}:... and the families' {rw:F}:...
    keys = sorted(cli(primary, '--scan', '--pattern', '{rw[:}]*').split())
    assert keys and keys == sorted(
        cli(replica, '--scan', '--pattern', '{rw[:}]*').split())
    assert 'spoolfs: info: redis 127.0.0.1:%d: ?replicas=1: a change is ' \
        'acknowledged once 1 replica(s) have it' % primary in m.log()

    servers.kill(replica)
    t0 = time.monotonic()
    with pytest.raises(OSError) as e:
        push(q, b'three', name='d')
    took = time.monotonic() - t0
    assert e.value.errno == errno.EIO
    assert took >= 9, took            # retried for the 10 s of §10
    assert 'WAIT 1: 0 replica(s) confirmed the change within 10000 ms' \
        in m.log()
    r = m.sh('cat %s/stats' % q, check=False)     # reads go on
    assert r.returncode == 0 and b'visible' in r.stdout
    with pytest.raises(OSError) as e:       # so does a lease: a change
        read_file(q / 'next', os.O_NONBLOCK)
    assert e.value.errno == errno.EIO

    servers.restart(replica)
    servers.synced(replica)
    push(q, b'four', name='e')
    # the failed changes are on the primary (EIO said "maybe"): the push
    # and the lease both happened; nothing else was lost
    s = stats(q)
    assert s['pushed_total'] == 4, s
    assert set(bodies(q)) | set(bodies(q, 'leased')) == \
        {b'four', b'one', b'three', b'two'}


class Pushers:
    """Threads pushing unique bodies into q without pause; records what
    was acknowledged (close() returned 0) and every errno met."""

    def __init__(self, q, n=4):
        self.q = q
        self.acked = set()
        self.errors = {}
        self.ok_at = []               # monotonic times of acknowledgements
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,))
                        for i in range(n)]
        for t in self.threads:
            t.start()

    def run(self, i):
        n = 0
        while not self.stop.is_set():
            body = b'p%d-%d' % (i, n)
            n += 1
            try:
                push(self.q, body, name='m')
            except OSError as e:
                with self.lock:
                    self.errors[e.errno] = self.errors.get(e.errno, 0) + 1
                continue
            with self.lock:
                self.acked.add(body)
                self.ok_at.append(time.monotonic())

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)
            assert not t.is_alive()


def failover_run(servers, mount_factory, replicas, nreplicas):
    """Primary + nreplicas + 3 sentinels; a mount through the sentinels
    (?replicas=replicas) pushes under load while the primary is killed
    with -9. Returns (acked, lost, failover seconds, errors)."""
    primary = servers.redis()
    reps = [servers.redis(replicaof=primary) for _ in range(nreplicas)]
    for r in reps:
        servers.synced(r)
    sents = [servers.sentinel(primary) for _ in range(3)]
    # the sentinels know the replicas and each other before the kill
    want = ('num-slaves\n%d' % nreplicas, 'num-other-sentinels\n2')
    assert wait_until(lambda: all(
        all(w in cli(s, 'SENTINEL', 'master', 'm') for w in want)
        for s in sents), 30)
    url = 'redis+sentinel://%s/m/fo' % ','.join(
        '127.0.0.1:%d' % s for s in sents)
    if replicas:
        url += '?replicas=%d' % replicas
    m = mount_factory(store=url)
    m.expect_log(OUTAGE_LOG)
    q = m.mkq('jobs')
    load = Pushers(q)
    assert wait_until(lambda: len(load.acked) >= 200, 30)
    killed = time.monotonic()
    servers.kill(primary, signal.SIGKILL)
    assert wait_until(lambda: any(t > killed + 0.05 for t in load.ok_at),
                      30), load.errors
    back = min(t for t in load.ok_at if t > killed + 0.05)
    acked_at_kill = len(load.acked)
    assert wait_until(lambda: len(load.acked) >= acked_at_kill + 200, 30)
    load.join()
    new = int(cli(sents[0], 'SENTINEL', 'get-master-addr-by-name',
                  'm').split()[1])
    assert new != primary and new in reps
    assert 'sentinel master m: the primary is now 127.0.0.1:%d (was ' \
        '127.0.0.1:' % new in m.log()
    there = bodies(q)
    assert len(there) == len(set(there))                   # no duplicates
    lost = load.acked - set(there)
    # the mount keeps working: a push and a lease after the failover
    push(q, b'after', name='after')
    assert stats(q)['visible'] == len(there) + 1
    return len(load.acked), len(lost), back - killed, load.errors


@pytest.mark.spool_timeout(240)
def test_sentinel_failover_under_load_without_wait(servers, mount_factory):
    """redis+sentinel:// without ?replicas: the daemon follows the
    failover by itself; replication is asynchronous, so acknowledged
    pushes may be lost with the primary (DESIGN §10): counted, printed,
    not asserted."""
    acked, lost, took, errors = failover_run(servers, mount_factory, 0, 1)
    print('\nfailover without ?replicas: %d acknowledged, %d lost, '
          'pushes served again %.2f s after kill -9, errors %s'
          % (acked, lost, took, errors))


@pytest.mark.spool_timeout(240)
def test_sentinel_failover_under_load_with_replicas_1(servers,
                                                      mount_factory):
    """?replicas=1, appendfsync always everywhere: an acknowledged push
    is on a replica, and the sentinels promote the replica with the
    most data: zero acknowledged pushes lost. Two replicas, so that the
    new primary still has one to WAIT for."""
    acked, lost, took, errors = failover_run(servers, mount_factory, 1, 2)
    print('\nfailover with ?replicas=1: %d acknowledged, %d lost, pushes '
          'served again %.2f s after kill -9, errors %s'
          % (acked, lost, took, errors))
    assert lost == 0
