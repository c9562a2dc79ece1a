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
