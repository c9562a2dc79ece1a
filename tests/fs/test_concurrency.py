"""Many producers and consumers at once: each message exactly once."""
import subprocess
import sys

import pytest

from spoolutil import ids, push_lines, read_file, stats

# A consumer process: next (+ fgetxattr for the id) and unlink to ack, until
# the queue says EAGAIN (O_NONBLOCK when argv[3] is 'nonblock', else the
# queue's receive_wait). Writes "<id> <body>" lines to argv[2].
CONSUMER = r'''
import os, sys
q, out, mode = sys.argv[1:4]
flags = os.O_RDONLY | (os.O_NONBLOCK if mode == 'nonblock' else 0)
o = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
while True:
    fd = os.open(os.path.join(q, 'next'), flags)
    try:
        parts = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            parts.append(b)
    except BlockingIOError:
        os.close(fd)
        break
    mid = os.getxattr(fd, 'user.spool.id')
    os.close(fd)
    os.unlink(os.path.join(q, 'leased', mid.decode()))
    os.write(o, mid + b' ' + b''.join(parts) + b'\n')
'''

# A producer process: pushes "<tag> <n>" for n in range(count) through push.
PRODUCER = r'''
import os, sys
q, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for n in range(count):
    fd = os.open(os.path.join(q, 'push'), os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b'%s %d' % (tag.encode(), n))
    os.close(fd)
'''


def run_all(procs, timeout=120):
    try:
        for p in procs:
            p.wait(timeout)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p in procs:
        assert p.returncode == 0, p.args


def records(outs):
    recs = []
    for o in outs:
        if o.exists():
            for line in o.read_bytes().splitlines():
                mid, _, body = line.partition(b' ')
                recs.append((mid, body))
    return recs


@pytest.mark.spool_timeout(240)
def test_8_consumers_drain_2000_each_exactly_once(mount, tmp_path):
    q = mount.mkq('jobs', visibility_timeout=600)
    want = [b'msg%04d' % i for i in range(2000)]
    push_lines(q, want)
    outs = [tmp_path / ('c%d' % k) for k in range(8)]
    run_all([subprocess.Popen([sys.executable, '-c', CONSUMER, str(q),
                               str(o), 'nonblock']) for o in outs])
    recs = records(outs)
    assert len(recs) == 2000
    assert len({m for m, _ in recs}) == 2000, 'an id was received twice'
    assert sorted(b for _, b in recs) == want
    s = stats(q)
    assert (s['visible'], s['leased'], s['acked_total']) == (0, 0, 2000)
    # Each consumer saw its messages in push order.
    for o in outs:
        mine = [b for _, b in records([o])]
        assert mine == sorted(mine)


@pytest.mark.spool_timeout(240)
def test_8_producers_through_push_keep_their_order(mount):
    q = mount.mkq('jobs')
    run_all([subprocess.Popen([sys.executable, '-c', PRODUCER, str(q),
                               'p%d' % k, '250']) for k in range(8)])
    s = stats(q)
    assert (s['visible'], s['pushed_total']) == (2000, 2000)
    got = [read_file(q / 'peek' / i) for i in ids(q)]
    assert len(set(got)) == 2000
    for k in range(8):
        mine = [int(b.split()[1]) for b in got if b.split()[0] == b'p%d' % k]
        assert mine == list(range(250)), 'producer %d out of order' % k


@pytest.mark.spool_timeout(240)
def test_producers_and_consumers_at_once(mount, tmp_path):
    q = mount.mkq('jobs', visibility_timeout=600, receive_wait=2)
    outs = [tmp_path / ('c%d' % k) for k in range(4)]
    consumers = [subprocess.Popen([sys.executable, '-c', CONSUMER, str(q),
                                   str(o), 'wait']) for o in outs]
    producers = [subprocess.Popen([sys.executable, '-c', PRODUCER, str(q),
                                   'p%d' % k, '300']) for k in range(4)]
    run_all(producers + consumers)
    recs = records(outs)
    assert len({m for m, _ in recs}) == len(recs) == 1200
    assert sorted(b for _, b in recs) == sorted(
        b'p%d %d' % (k, n) for k in range(4) for n in range(300))
    s = stats(q)
    assert (s['visible'], s['leased'], s['acked_total']) == (0, 0, 1200)


@pytest.mark.spool_timeout(240)
def test_shell_claim_loops_in_parallel(mount, tmp_path):
    q = mount.mkq('jobs', receive_wait=0)
    push_lines(q, ['s%03d' % i for i in range(300)])
    loop = ('while id=$(cat jobs/claim); do '
            '{ cat "jobs/leased/$id"; echo; } >> %s && '
            'rm "jobs/leased/$id"; done; exit 0')
    outs = [tmp_path / ('o%d' % k) for k in range(4)]
    run_all([subprocess.Popen(['sh', '-c', loop % o], cwd=mount.mnt)
             for o in outs])
    got = sorted(l for o in outs if o.exists()
                 for l in o.read_bytes().splitlines())
    assert got == [b's%03d' % i for i in range(300)]
    s = stats(q)
    assert (s['visible'], s['leased'], s['acked_total']) == (0, 0, 300)
