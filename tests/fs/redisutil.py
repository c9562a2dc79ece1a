"""A redis-server of a test's own (tests that stop, kill or fill their
server cannot share the run's): started on a free port in its own
directory with the settings --sync always needs (AOF on, fsync always,
noeviction), restarted on the same directory and port after a kill -9,
stopped by its pid. A missing redis-server or redis-cli fails the test.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def free_port(host='127.0.0.1'):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port



def stop_process(p):
    """Ends a server this test started, by its pid: CONTinued first (a
    test may have stopped it), SIGTERM, SIGKILL after 10 s."""
    if p.poll() is None:
        os.kill(p.pid, signal.SIGCONT)
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)

def spoolfs_exit(bin, data, tmp_path, *args, env=None):
    """Runs the daemon bin in the foreground on data (a daemon expected
    to refuse the store; env: its environment, None: this one's); (exit
    status, stderr)."""
    mnt = tmp_path / 'mnt'
    mnt.mkdir(exist_ok=True)
    r = subprocess.run([str(bin), '-f', '--data', data, *args, str(mnt)],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60, env=env)
    return r.returncode, r.stderr


class RedisServer:
    """bind: the addresses it listens on (the first is the URL's);
    fsync: appendfsync (the daemons need --sync none unless 'always')."""

    def __init__(self, bind=('127.0.0.1',), fsync='always', extra=()):
        self.exe = shutil.which('redis-server')
        assert self.exe, 'redis-server is missing (package redis-server)'
        self.bind = list(bind)
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix='spool-redis-')
        self.fsync = fsync
        self.extra = list(extra)
        self.proc = None

    @property
    def host(self):
        return self.bind[0]

    def url(self, prefix=''):
        return 'redis://%s:%d/%s' % (self.host, self.port, prefix)

    def start(self, timeout=20):
        """Starts it (again, on the same directory: the AOF is replayed)
        and waits until it answers PING."""
        self.proc = subprocess.Popen(
            [self.exe, '--port', str(self.port), '--bind', *self.bind,
             '--dir', self.dir, '--save', '', '--appendonly', 'yes',
             '--appendfsync', self.fsync, '--maxmemory-policy', 'noeviction',
             '--logfile', os.path.join(self.dir, 'redis.log'), *self.extra],
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            r = subprocess.run(self.cli_argv('PING'), capture_output=True,
                               text=True, timeout=30)
            if r.stdout.strip() == 'PONG':
                return self
            assert self.proc.poll() is None, \
                'redis-server exited: %s' % self.log()
            assert time.monotonic() < deadline, \
                'redis-server silent: %s' % self.log()
            time.sleep(0.05)

    def log(self):
        try:
            with open(os.path.join(self.dir, 'redis.log')) as f:
                return f.read()[-2000:]
        except OSError:
            return ''

    def cli_argv(self, *args):
        cli = shutil.which('redis-cli')
        assert cli, 'redis-cli is missing (package redis-tools)'
        return [cli, '-h', self.host, '-p', str(self.port), *args]

    def cli(self, *args):
        r = subprocess.run(self.cli_argv(*args), capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0 and not r.stdout.startswith('ERR'), \
            (args, r.stdout, r.stderr)
        return r.stdout

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def kill9(self):
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        """Ends it by its pid (CONTinued first, in case a test stopped it)
        and removes its directory."""
        if self.proc is not None:
            stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisCluster:
    """A Redis Cluster of n primaries of this test's own (RedisServer each,
    cluster-enabled, joined with redis-cli --cluster create), or, with
    ports, the nodes of one already running (tests/redis-cluster-run.sh's,
    which stops them). move_slot() reshards one slot as an operator would,
    with every key of it in one MIGRATE (docs/scale-out.md)."""

    def __init__(self, n=3, ports=None):
        self.servers = []
        self.ports = list(ports or [])
        self.n = n

    def start(self):
        if self.ports:
            return self
        for _ in range(self.n):
            s = RedisServer(extra=('--cluster-enabled', 'yes',
                                   '--cluster-node-timeout', '5000'))
            # the bus port (port + 10000) must be free too
            while s.port + 10000 > 65535:
                s.port = free_port()
            s.extra += ['--cluster-config-file',
                        os.path.join(s.dir, 'nodes.conf')]
            self.servers.append(s)
            s.start()
        self.ports = [s.port for s in self.servers]
        cli = shutil.which('redis-cli')
        r = subprocess.run([cli, '--cluster', 'create',
                            *['127.0.0.1:%d' % p for p in self.ports],
                            '--cluster-replicas', '0', '--cluster-yes'],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        self.wait_ok()
        return self

    def wait_ok(self, timeout=20):
        deadline = time.monotonic() + timeout
        for p in self.ports:
            while 'cluster_state:ok' not in self.cli(p, 'CLUSTER', 'INFO'):
                assert time.monotonic() < deadline, 'cluster not ok'
                time.sleep(0.05)

    def stop(self):
        for s in self.servers:
            s.stop()

    @property
    def nodes(self):
        return ','.join('127.0.0.1:%d' % p for p in self.ports)

    def url(self, prefix):
        return 'redis+cluster://%s/%s' % (self.nodes, prefix)

    @staticmethod
    def cli(port, *args):
        cli = shutil.which('redis-cli')
        assert cli, 'redis-cli is missing (package redis-tools)'
        r = subprocess.run([cli, '-p', str(port), *args],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and not r.stdout.startswith(
            ('ERR', '(error)')), (port, args, r.stdout, r.stderr)
        return r.stdout

    def node_id(self, port):
        return self.cli(port, 'CLUSTER', 'MYID').strip()

    def slot_of(self, key):
        return int(self.cli(self.ports[0], 'CLUSTER', 'KEYSLOT', key))

    def owner(self, slot):
        """The port of the primary serving slot."""
        for line in self.cli(self.ports[0], 'CLUSTER', 'NODES').splitlines():
            f = line.split()
            if 'master' not in f[2]:
                continue
            for r in f[8:]:
                if r.startswith('['):
                    continue
                lo, _, hi = r.partition('-')
                if int(lo) <= slot <= int(hi or lo):
                    return int(f[1].split(':')[1].split('@')[0])
        raise AssertionError('slot %d: no owner' % slot)

    def move_slot(self, slot, to_port):
        """Moves slot to the primary on to_port: IMPORTING, MIGRATING,
        every key in one MIGRATE, then NODE on every primary. Returns the
        number of keys moved."""
        src = self.owner(slot)
        if src == to_port:
            return 0
        sid, did = self.node_id(src), self.node_id(to_port)
        self.cli(to_port, 'CLUSTER', 'SETSLOT', str(slot), 'IMPORTING', sid)
        self.cli(src, 'CLUSTER', 'SETSLOT', str(slot), 'MIGRATING', did)
        keys = self.cli(src, 'CLUSTER', 'GETKEYSINSLOT', str(slot),
                        '1000000').split()
        if keys:
            out = self.cli(src, 'MIGRATE', '127.0.0.1', str(to_port), '', '0',
                           '60000', 'KEYS', *keys)
            assert out.strip() == 'OK', out
        for p in [to_port, src] + [p for p in self.ports
                                   if p not in (src, to_port)]:
            self.cli(p, 'CLUSTER', 'SETSLOT', str(slot), 'NODE', did)
        return len(keys)
