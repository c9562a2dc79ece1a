"""Corruption through the mount (issue 6): flip a byte of a stored body
offline (tests/tools/corrupt.c, the engine's spool_test_corrupt seam, with
the daemon stopped), start the daemon again: reading that message gives
EIO, the daemon logs it once, serves every other message, and shows the
message set aside to an operator (stats corrupt=1, .metrics)."""
import errno
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import BIN
from spoolutil import lease, read_file, stats

CORRUPT = Path(os.environ.get('SPOOL_CORRUPT_BIN') or
               BIN.parents[1] / 'tests' / 'tools' / 'spool-corrupt')

pytestmark = pytest.mark.rocksdb_only(
    'spool-corrupt edits the RocksDB directory; on Redis the same path '
    'runs in tests/engine/test_fault.c (suite engine-redis)')


def corrupt(m, *ids):
    """Stops the daemon cleanly, flips a byte of each id's body, restarts."""
    assert os.access(CORRUPT, os.X_OK), \
        '%s is missing (ninja builds it; or set SPOOL_CORRUPT_BIN)' % CORRUPT
    m.umount()
    r = subprocess.run([str(CORRUPT), str(m.data), *ids], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    m.start(*m.args)


def push_all(q, bodies):
    for i, b in enumerate(bodies):
        with open(q / ('m%d' % i), 'wb') as f:
            f.write(b)
    ids = sorted(os.listdir(q / 'peek'))
    assert [read_file(q / 'peek' / i) for i in ids] == bodies
    return ids


def log_lines_about(m, mid):
    return [l for l in m.log().splitlines()
            if mid in l and not l.startswith('### ')]


@pytest.mark.parametrize('how', ['peek', 'lease'])
def test_corrupt_body_gives_eio_once_and_the_rest_is_served(mount, how):
    q = mount.mkq('jobs')
    bodies = [b'body-%d' % i for i in range(5)]
    ids = push_all(q, bodies)
    bad = ids[0] if how == 'lease' else ids[2]
    mount.expect_log(re.escape(bad))
    mount.expect_log(r'(?i)checksum|corrupt')
    corrupt(mount, bad)

    if how == 'peek':
        with pytest.raises(OSError) as e:
            read_file(q / 'peek' / bad)
        assert e.value.errno == errno.EIO
    # Leasing skips the corrupt message (the first in line for 'lease'):
    # every other message comes out, in order, and acks work.
    got = []
    while True:
        r = lease(q)
        if r is None:
            break
        mid, body = r
        assert mid != bad
        got.append(body)
        os.unlink(q / 'leased' / mid)
    assert got == [b for i, b in zip(ids, bodies) if i != bad]

    # Set aside where an operator sees it; no longer offered as visible.
    s = stats(q)
    assert (s['visible'], s['leased'], s['corrupt']) == (0, 0, 1), s
    metrics = read_file(mount.mnt / '.metrics').decode()
    assert 'spoolfs_corrupt{queue="jobs"} 1' in metrics, metrics
    assert bad not in os.listdir(q / 'peek')
    # Reading it again: still an error, never the flipped bytes.
    err = None
    try:
        read_file(q / 'peek' / bad)
    except OSError as e:
        err = e.errno
    assert err in (errno.EIO, errno.ENOENT)
    # A queue holding a corrupt message is not empty.
    with pytest.raises(OSError) as e:
        os.rmdir(q)
    assert e.value.errno == errno.ENOTEMPTY
    # Logged once, not once per attempt.
    lines = log_lines_about(mount, bad)
    assert len(lines) == 1, lines

    # It stays set aside across a restart, and is not logged again.
    mount.remount()
    assert stats(q)['corrupt'] == 1
    assert lease(q) is None
    assert len(log_lines_about(mount, bad)) == 1


def test_corrupt_messages_do_not_block_a_busy_queue(mount):
    """Three of twenty corrupt: the seventeen others are all served."""
    q = mount.mkq('jobs')
    bodies = [b'x%d' % i for i in range(20)]
    ids = push_all(q, bodies)
    bad = [ids[0], ids[7], ids[19]]
    mount.expect_log(r'(?i)checksum|corrupt')
    corrupt(mount, *bad)
    good = [read_file(q / 'peek' / i) for i in ids if i not in bad]
    assert len(good) == 17
    for i in bad:
        with pytest.raises(OSError) as e:
            read_file(q / 'peek' / i)
        assert e.value.errno == errno.EIO
    n = 0
    while lease(q) is not None:
        n += 1
    assert n == 17
    assert stats(q)['corrupt'] == 3
