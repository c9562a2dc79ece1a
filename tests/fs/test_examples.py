"""Every example in examples/ runs against a real mount (issue 7): the
shell producer, claim consumer, batch job and DLQ inspector, the Python
client module and its worker pool, the Node.js producer and consumer, and
the systemd unit's command line, and a boto3 SQS worker sharing a queue
with the shell claim loop."""
import configparser
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import BIN, SRC, run_fusermount, wait_for_mount
from spoolutil import push, read_file, stats, wait_until

EX = SRC / 'examples'


def run(cmd, timeout=60, **kw):
    r = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, **kw)
    return r


# ------------------------------------------------------------ shell

def test_shell_producer_and_claim_consumer(mount, tmp_path):
    r = run(['sh', EX / 'shell' / 'producer.sh', mount.mnt, 'jobs', '10'])
    assert r.returncode == 0, r
    q = mount.q('jobs')
    assert stats(q)['visible'] == 10
    out = tmp_path / 'out'
    # the handler fails once on "job 3": that message is released, then
    # handled again on its second delivery
    handler = ('body=$(cat); if [ "$body" = "job 3" ] && [ ! -e %s.seen ]; '
               'then : > %s.seen; exit 1; fi; echo "$body" >> %s'
               % (out, out, out))
    r = run(['sh', EX / 'shell' / 'consumer.sh', mount.mnt, 'jobs', '1',
             'sh', '-c', handler])
    assert r.returncode == 0, r
    assert r.stdout.strip() == 'consumer: 10 done, 1 released'
    lines = out.read_text().splitlines()
    assert lines[:2] == ['urgent job 5', 'urgent job 10']   # priority 5
    assert sorted(lines) == sorted(['job %d' % i for i in (1, 2, 3, 4, 6, 7,
                                                           8, 9)] +
                                   ['urgent job 5', 'urgent job 10'])
    s = stats(q)
    assert s['visible'] == 0 and s['leased'] == 0 and s['acked_total'] == 10


def test_shell_batch_job(mount, tmp_path):
    q = mount.mkq('events')
    for i in range(5):
        push(q, b'event %d\n' % i)
    out = tmp_path / 'events.log'
    r = run(['sh', EX / 'shell' / 'batch.sh', mount.mnt, 'events', out, '3'])
    assert r.returncode == 0, r
    assert r.stdout.strip() == 'batch: 3 messages appended to %s' % out
    r = run(['sh', EX / 'shell' / 'batch.sh', mount.mnt, 'events', out])
    assert 'batch: 2 messages' in r.stdout
    assert out.read_bytes() == b''.join(b'event %d\n' % i for i in range(5))
    r = run(['sh', EX / 'shell' / 'batch.sh', mount.mnt, 'events', out])
    assert r.stdout.strip() == 'batch: nothing to do'
    assert stats(q)['acked_total'] == 5 and stats(q)['leased'] == 0


@pytest.mark.spool_timeout(60)
def test_shell_dlq_inspector_and_redrive(mount):
    q = mount.mkq('jobs', max_receives=1, visibility_timeout=0.2)
    push(q, b'poison pill', name='bad-one')
    r = run(['sh', EX / 'shell' / 'dlq.sh', mount.mnt, 'jobs'])
    assert r.stdout.strip() == 'dlq: jobs.dead: no dead letters'
    # lease it twice without acking: the second lease dead-letters it
    fd = os.open(q / 'claim', os.O_RDONLY)
    os.read(fd, 64)
    os.close(fd)
    wait_until(lambda: stats(q)['visible'] == 1, timeout=10)
    try:
        os.close(os.open(q / 'claim', os.O_RDONLY | os.O_NONBLOCK))
        fd = os.open(q / 'next', os.O_RDONLY | os.O_NONBLOCK)
        os.read(fd, 64)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    wait_until(lambda: os.path.isdir(mount.mnt / 'jobs.dead') and
               stats(mount.mnt / 'jobs.dead')['visible'] == 1, timeout=10)
    r = run(['sh', EX / 'shell' / 'dlq.sh', mount.mnt, 'jobs'])
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[-1] == 'dlq: 1 messages in jobs.dead'
    assert 'receives=1 name=bad-one' in lines[0]
    assert lines[0].endswith('body=poison pill')
    r = run(['sh', EX / 'shell' / 'dlq.sh', mount.mnt, 'jobs', '--redrive'])
    assert r.returncode == 0, r
    assert stats(mount.mnt / 'jobs.dead')['visible'] == 0
    assert stats(q)['visible'] == 1


# ------------------------------------------------------------ python

@pytest.fixture
def spoolq():
    sys.path.insert(0, str(EX / 'python'))
    try:
        import spoolq as mod
        yield mod
    finally:
        sys.path.remove(str(EX / 'python'))


def test_python_sender_receiver(mount, spoolq):
    tx = spoolq.Sender(mount.mnt, 'jobs', create=True)
    rx = spoolq.Receiver(mount.mnt, 'jobs')
    tx.send(b'plain')
    tx.send('urgent', priority=5, attrs={'trace': 'abc'}, name='u')
    assert tx.send_many(['a', 'b', b'c']) == 3
    assert rx.count() == 5
    assert [m.body for m in rx.peek(2)] == [b'urgent', b'plain']
    assert rx.count() == 5                      # peek leases nothing
    msg = rx.receive()
    assert (msg.body, msg.priority, msg.name, msg.attrs, msg.receives) == \
        (b'urgent', 5, 'u', {'trace': 'abc'}, 1)
    rx.acknowledge(msg)
    with pytest.raises(FileNotFoundError):
        rx.acknowledge(msg)
    with rx.acknowledgement() as m:
        assert m.body == b'plain'
    with pytest.raises(RuntimeError):
        with rx.acknowledgement() as m:
            assert m.body == b'a'
            raise RuntimeError('handler failed')
    assert rx.count() == 3                      # 'a' released, not acked
    assert [m.body for m in spoolq.Receiver(mount.mnt, 'jobs',
                                            timeout=0.3)] == \
        [b'a', b'b', b'c']
    s = rx.stats()
    assert s['acked_total'] == 2 and s['leased'] == 3
    with pytest.raises(ValueError):
        tx.send_many(['two\nlines'])


def test_python_receive_timeout_extend_release_purge(mount, spoolq):
    tx = spoolq.Sender(mount.mnt, 'jobs', create=True)
    rx = spoolq.Receiver(mount.mnt, 'jobs')
    t = time.monotonic()
    assert rx.receive(timeout=0.5) is None
    assert 0.4 < time.monotonic() - t < 5
    with rx.acknowledgement(timeout=0.1) as m:
        assert m is None
    tx.send(b'x')
    m = rx.receive(timeout=1)
    rx.extend(m, 120)
    assert abs(os.stat(m.path).st_mtime - time.time() - 120) < 5
    rx.release(m)
    assert rx.count() == 1
    tx.send(b'later', delay=60)
    assert rx.stats()['delayed'] == 1
    rx.purge()
    assert rx.count() == 0 and rx.stats()['delayed'] == 0
    with pytest.raises(OSError) as e:
        spoolq.Sender(mount.mnt, 'nope').send(b'x')
    assert e.value.errno in (2, 13)


def test_python_blocking_receive(mount, spoolq):
    tx = spoolq.Sender(mount.mnt, 'jobs', create=True)
    p = subprocess.Popen(
        [sys.executable, '-c', 'import sys; sys.path.insert(0, %r); '
         'import spoolq; print(spoolq.Receiver(%r, "jobs").receive().body'
         '.decode())' % (str(EX / 'python'), str(mount.mnt))],
        stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    assert p.poll() is None                  # blocked on an empty queue
    tx.send(b'wake up')
    out, _ = p.communicate(timeout=10)
    assert out.strip() == 'wake up'


@pytest.mark.spool_timeout(120)
def test_python_worker_pool(mount):
    r = run([sys.executable, EX / 'python' / 'worker_pool.py', mount.mnt,
             '60', '4'], timeout=100)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].endswith('handled 60 jobs'), r.stdout
    assert lines[1] == 'results 60 sum %d' % sum(i * i for i in range(60))
    assert stats(mount.mnt / 'squares.in')['acked_total'] == 60
    assert stats(mount.mnt / 'squares.out')['visible'] == 0


# ------------------------------------------------------------ node

def test_node_producer_consumer(mount):
    node = shutil.which('node')
    assert node, 'node is not installed'
    r = run([node, EX / 'node' / 'producer.js', mount.mnt, 'orders', '8'])
    assert r.returncode == 0, r
    q = mount.q('orders')
    assert stats(q)['visible'] == 8
    push(q, b'not json', name='bad')
    r = run([node, EX / 'node' / 'consumer.js', mount.mnt, 'orders', '500'])
    assert r.returncode == 0, r
    assert r.stdout.strip() == 'handled 8 failed 1 sum 28'
    s = stats(q)
    assert s['acked_total'] == 8 and s['leased'] == 1 and s['visible'] == 0


# ------------------------------------------------------------ systemd

def test_systemd_unit_command_line_mounts(tmp_path):
    """The unit's ExecStart, with its paths pointed at a temp dir and this
    build, mounts; its KillSignal is a clean shutdown (exit 0)."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(EX / 'systemd' / 'spoolfs@.service')
    svc = unit['Service']
    assert svc['Type'] == 'simple' and svc['KillSignal'] == 'SIGTERM'
    assert unit['Install']['WantedBy'] == 'multi-user.target'
    argv = shlex.split(svc['ExecStart'])
    assert '-f' in argv and '--data' in argv
    mnt, data = tmp_path / 'srv' / 'spool' / 'jobs', tmp_path / 'lib' / 'jobs'
    mnt.mkdir(parents=True)
    data.mkdir(parents=True)         # ExecStartPre's mkdir -p
    argv = [str(BIN) if a.endswith('/spoolfs') else
            a.replace('/srv/spool/%i', str(mnt))
             .replace('/var/lib/spoolfs/%i', str(data)) for a in argv]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_mount(p, str(mnt), lambda: '')
        os.mkdir(mnt / 'q')
        (mnt / 'q' / 'm').write_bytes(b'from systemd')
        assert read_file(mnt / 'q' / 'next') == b'from systemd'
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
        assert not os.path.ismount(mnt)
    finally:
        if os.path.ismount(mnt):
            run_fusermount('-u', '-z', str(mnt))
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


def test_systemd_unit_verifies():
    sa = shutil.which('systemd-analyze')     # tools/test installs systemd
    assert sa is not None, 'systemd-analyze is missing (package systemd)'
    r = run([sa, 'verify', '--man=no', EX / 'systemd' / 'spoolfs@.service'])
    # the unit names /usr/local/bin/spoolfs, absent before meson install:
    # only that may be reported
    bad = [l for l in (r.stdout + r.stderr).splitlines()
           if l.strip() and 'spoolfs' not in l.split(':')[0] and
           'is not executable' not in l and 'No such file' not in l]
    assert not bad, r


# ------------------------------------------------------------ SQS

def test_sqs_worker_then_shell_claim_loop(mount_factory, tmp_path):
    """examples/python/sqs_worker.py, a boto3 SQS worker pointed at spoolfs
    by environment only, takes part of a queue filled by the shell
    producer; the shell claim loop drains the rest: every job is done
    once."""
    import re
    m = mount_factory('--sqs', '0')
    port = re.search(r'serving SQS on http://127\.0\.0\.1:(\d+)', m.log())
    assert port, m.log()
    r = run(['sh', EX / 'shell' / 'producer.sh', m.mnt, 'jobs', '10'])
    assert r.returncode == 0, r
    out = tmp_path / 'out'
    handler = ('body=$(cat); if [ "$body" = "job 3" ] && [ ! -e %s.seen ]; '
               'then : > %s.seen; exit 1; fi; echo "$body" >> %s'
               % (out, out, out))
    env = dict(os.environ, AWS_DEFAULT_REGION='us-east-1',
               AWS_ACCESS_KEY_ID='x', AWS_SECRET_ACCESS_KEY='x',
               AWS_ENDPOINT_URL_SQS='http://127.0.0.1:%s' % port.group(1))
    r = run(['/usr/bin/python3', EX / 'python' / 'sqs_worker.py', 'jobs',
             '--max', '6', '--idle', '1', '--', 'sh', '-c', handler],
            env=env)
    assert r.returncode == 0, r
    worker = re.fullmatch(r'sqs_worker: (\d+) done, (\d+) released',
                          r.stdout.strip())
    assert worker, r.stdout
    assert int(worker.group(1)) + int(worker.group(2)) == 6
    r = run(['sh', EX / 'shell' / 'consumer.sh', m.mnt, 'jobs', '1',
             'sh', '-c', handler])
    assert r.returncode == 0, r
    shell = re.fullmatch(r'consumer: (\d+) done, (\d+) released',
                         r.stdout.strip())
    assert int(worker.group(1)) + int(shell.group(1)) == 10
    assert sorted(out.read_text().splitlines()) == sorted(
        ['job %d' % i for i in (1, 2, 3, 4, 6, 7, 8, 9)] +
        ['urgent job 5', 'urgent job 10'])
    s = stats(m.q('jobs'))
    assert s['visible'] == 0 and s['leased'] == 0 and s['acked_total'] == 10
