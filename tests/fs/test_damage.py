"""DESIGN.md §1 and §8, issue 11: damage is never silent. A store damaged
the ways disks and people damage them makes the daemon exit 2 with one line
naming the file, and not a byte of the directory changes, also when it is
started again (a restart loop). What a crash leaves (a torn or damaged last
log record) still opens. --salvage opens a damaged store with what can be
read, says what was lost, and keeps a copy of the damaged files."""
import errno
import hashlib
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, run_fusermount
from spoolutil import push, read_file, stats

N = 400                      # pushes: the log spans several 32 KiB blocks

pytestmark = pytest.mark.rocksdb_only(
    'damages the files of the RocksDB directory (salvage is RocksDB only)')


def body(i):
    return b'body-%05d-' % i + b'x' * 100


def fill(m, n=N):
    """A queue of n messages, one push (one log record) each."""
    q = m.mkq('jobs')
    for i in range(n):
        push(q, body(i), 'm%d' % i)
    return q


def snapshot(d):
    """Every entry under d: type, mode, size, mtime and the bytes' hash."""
    out = {}
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = Path(root) / name
            st = p.lstat()
            digest = None
            if p.is_file() and not p.is_symlink():
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            out[str(p.relative_to(d))] = (st.st_mode, st.st_size,
                                          st.st_mtime_ns, digest)
    return out


def newest(data, suffix):
    files = [p for p in data.iterdir() if p.name.endswith(suffix)
             and p.name[:-len(suffix)].isdigit()]
    assert files, 'no %s file in %s' % (suffix, data)
    return max(files, key=lambda p: int(p.name[:-len(suffix)]))


def flip(path, offset):
    b = bytearray(path.read_bytes())
    b[offset] ^= 0xff
    path.write_bytes(bytes(b))


def run_daemon(m, *args):
    """Runs a daemon that must not mount (it must exit at once); if it
    mounts all the same, it is stopped and its mount cleared, and the test
    fails."""
    mnt2 = m.tmp / 'mnt2'
    mnt2.mkdir(exist_ok=True)
    p = subprocess.Popen([str(BIN), '-f', '--data', str(m.data), *args,
                          str(mnt2)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        run_fusermount('-u', '-z', str(mnt2))
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail('the daemon mounted a store it must refuse:\n' + err)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def refused_twice(m, pattern):
    """Starts the daemon twice on the damaged store, as a restart loop
    would: each exits 2 with one line matching pattern, mounts nothing and
    leaves the directory as it was, byte for byte. Returns the line."""
    before = snapshot(m.data)
    lines = []
    for _ in range(2):
        r = run_daemon(m)
        assert r.returncode == 2, r
        out = [l for l in r.stderr.splitlines() if l.strip()]
        assert len(out) == 1, r.stderr
        assert re.search(pattern, out[0]), out[0]
        assert '(nothing was changed' in out[0], out[0]
        assert not os.path.ismount(m.tmp / 'mnt2')
        assert snapshot(m.data) == before
        lines.append(out[0])
    assert lines[0] == lines[1]
    print(lines[0])
    return lines[0]


def listed(q):
    return {read_file(q / 'peek' / i) for i in os.listdir(q / 'peek')}


def killed_store(mount_factory):
    """A store of N pushes whose daemon was killed with kill -9 (everything
    is still in the write-ahead log only)."""
    m = mount_factory()
    fill(m)
    m.kill9(restart=False)
    return m


def flushed_store(mount_factory):
    """A store of N pushes in table files: a restart flushes the log."""
    m = mount_factory()
    fill(m)
    m.remount()
    m.umount()
    return m


def salvage(m):
    """Starts with --salvage; the error lines it logs are expected."""
    m.expect_log(r'error: salvage: ')
    m.start('--salvage')
    return m.q('jobs')


def test_deleted_current_is_refused(mount_factory):
    m = killed_store(mount_factory)
    os.unlink(m.data / 'CURRENT')
    refused_twice(m, r'%s: not a spoolfs store or damaged: CURRENT is '
                  r'missing' % re.escape(str(m.data)))


def test_deleted_current_salvaged_keeps_everything(mount_factory):
    m = killed_store(mount_factory)
    os.unlink(m.data / 'CURRENT')
    q = salvage(m)
    assert listed(q) == {body(i) for i in range(N)}
    assert stats(q)['visible'] == N
    aside = [p for p in m.data.iterdir() if p.name.startswith('damaged-')]
    assert len(aside) == 1 and (aside[0] / 'IDENTITY').exists()
    assert re.search(r'error: salvage: .*CURRENT now names MANIFEST-',
                     m.log())
    # Salvaged once, the store opens as any other.
    m.remount('--sync', 'always')
    assert stats(q)['visible'] == N


def test_truncated_manifest_is_refused(mount_factory):
    m = flushed_store(mount_factory)
    manifest = m.data / (m.data / 'CURRENT').read_text().strip()
    os.truncate(manifest, manifest.stat().st_size // 2)
    refused_twice(m, r'damaged: %s is damaged or truncated'
                  % re.escape(manifest.name))


def test_truncated_manifest_salvaged_from_the_tables(mount_factory):
    m = flushed_store(mount_factory)
    manifest = m.data / (m.data / 'CURRENT').read_text().strip()
    os.truncate(manifest, manifest.stat().st_size // 2)
    q = salvage(m)
    assert listed(q) == {body(i) for i in range(N)}
    s = stats(q)
    assert (s['visible'], s['leased'], s['delayed']) == (N, 0, 0)
    aside = [p for p in m.data.iterdir() if p.name.startswith('damaged-')]
    assert (aside[0] / manifest.name).read_bytes() == \
        (m.data / 'lost' / manifest.name).read_bytes()


def test_flipped_byte_mid_log_is_refused(mount_factory):
    m = killed_store(mount_factory)
    log = newest(m.data, '.log')
    flip(log, log.stat().st_size // 2)
    refused_twice(m, r'damaged: the log %s is damaged in the middle'
                  % re.escape(log.name))


def test_flipped_byte_mid_log_salvaged(mount_factory):
    m = killed_store(mount_factory)
    log = newest(m.data, '.log')
    original = log.read_bytes()
    flip(log, log.stat().st_size // 2)
    q = salvage(m)
    got = listed(q)
    lost = re.search(r'lost (\d+) log records', m.log())
    assert lost, m.log()
    # One log record per push: exactly the records it says it lost.
    assert len(got) == N - int(lost.group(1)) and len(got) < N
    assert got <= {body(i) for i in range(N)}
    s = stats(q)
    assert s['visible'] == len(os.listdir(q / 'peek')) == len(got)
    # The damaged log is kept aside as it was found.
    aside = [p for p in m.data.iterdir() if p.name.startswith('damaged-')]
    kept = (aside[0] / log.name).read_bytes()
    assert kept != original and len(kept) == len(original)


def test_flipped_byte_in_last_record_still_opens(mount_factory):
    """A damaged last record is what a torn write looks like: it is
    dropped without a word, and only that push is lost."""
    m = killed_store(mount_factory)
    log = newest(m.data, '.log')
    flip(log, log.stat().st_size - 3)
    for _ in range(2):
        m.start()
        got = listed(m.q('jobs'))
        assert {body(i) for i in range(N - 1)} <= got
        assert got <= {body(i) for i in range(N)}
        m.umount()


def test_torn_log_tail_still_opens(mount_factory):
    m = killed_store(mount_factory)
    log = newest(m.data, '.log')
    os.truncate(log, log.stat().st_size - 20)
    m.start()
    assert listed(m.q('jobs')) == {body(i) for i in range(N - 1)}
    m.umount()
    m.start()
    assert stats(m.q('jobs'))['visible'] == N - 1


def test_flipped_byte_in_a_table_gives_eio_for_its_bodies(mount_factory):
    """A data block of a table damaged: the bodies in it give EIO, the rest
    is served; the store opens (twice) and nothing is refused."""
    m = flushed_store(mount_factory)
    table = max((p for p in m.data.iterdir() if p.name.endswith('.sst')),
                key=lambda p: p.stat().st_size)
    flip(table, table.stat().st_size // 3)
    m.expect_log(r'(?i)checksum|corrupt|read')
    for _ in range(2):
        m.start()
        q = m.q('jobs')
        ok = eio = 0
        for i in os.listdir(q / 'peek'):
            try:
                assert read_file(q / 'peek' / i) in \
                    {body(k) for k in range(N)}
                ok += 1
            except OSError as e:
                assert e.errno in (errno.EIO, errno.ENOENT), e
                eio += e.errno == errno.EIO
        assert ok > 0
        m.umount()
    assert eio > 0 or ok < N


def test_missing_table_is_refused(mount_factory):
    m = flushed_store(mount_factory)
    table = max((p for p in m.data.iterdir() if p.name.endswith('.sst')),
                key=lambda p: p.stat().st_size)
    table.unlink()
    refused_twice(m, r'damaged: the table file %s is missing'
                  % re.escape(table.name))


@pytest.mark.parametrize('salvage_too', [False, True])
def test_strangers_directory_is_never_written(mount_factory, salvage_too):
    """--data ~/Documents by mistake: refused, even with --salvage."""
    m = mount_factory(start=False)
    (m.data / 'notes.txt').write_text('my notes\n')
    (m.data / 'photos').mkdir()
    (m.data / 'photos' / 'cat.jpg').write_bytes(b'\xff\xd8' + b'\0' * 100)
    before = snapshot(m.data)
    if not salvage_too:
        refused_twice(m, r'%s: not a spoolfs store: it holds other files '
                      r'\(notes.txt, ...\)' % re.escape(str(m.data)))
        return
    r = run_daemon(m, '--salvage')
    assert r.returncode == 2, r
    assert 'not a spoolfs store' in r.stderr
    assert snapshot(m.data) == before


def test_missing_or_empty_dir_makes_a_new_store(mount_factory):
    m = mount_factory(start=False)
    os.rmdir(m.data)
    m.start()
    fill(m, 3)
    m.umount()
    m.data = m.tmp / 'data2'
    m.data.mkdir()
    (m.data / 'lost+found').mkdir()
    m.start()
    assert 'jobs' not in os.listdir(m.mnt)
    m.umount()


def index_table(m):
    """The table of the message index: of the three column families'
    tables after one flush, the middle one in size (queues and counters
    are smallest, bodies largest)."""
    tables = sorted((p for p in m.data.iterdir() if p.name.endswith('.sst')),
                    key=lambda p: p.stat().st_size)
    assert len(tables) == 3, tables
    return tables[1]


def test_unreadable_index_table_is_refused(mount_factory):
    """A damaged block in the message index: the engine reads the whole
    index at open, so the store is refused before anything is written."""
    m = flushed_store(mount_factory)
    table = index_table(m)
    flip(table, table.stat().st_size // 3)
    refused_twice(m, r'damaged: the table file %s cannot be read'
                  % re.escape(table.name))


def test_unreadable_index_table_salvaged_keeps_the_rest(mount_factory):
    m = flushed_store(mount_factory)
    table = index_table(m)
    flip(table, table.stat().st_size // 3)
    q = salvage(m)
    got = listed(q)
    lost = re.search(r'(\d+) bodies have none', m.log())
    assert lost, m.log()
    # Only the records of the damaged block are lost, and the log says
    # how many: their bodies are left without an index record.
    assert 0 < int(lost.group(1)) < N // 4
    assert len(got) == N - int(lost.group(1))
    assert got <= {body(i) for i in range(N)}
    assert stats(q)['visible'] == len(os.listdir(q / 'peek')) == len(got)
    assert re.search(r'error: salvage: queue jobs: counters may be off',
                     m.log())
    assert (m.data / 'lost' / table.name).exists()


def test_salvage_of_a_sound_store_changes_nothing(mount_factory):
    m = killed_store(mount_factory)
    m.start('--salvage')
    assert listed(m.q('jobs')) == {body(i) for i in range(N)}
    assert 'salvage:' not in m.log()
    assert not [p for p in m.data.iterdir()
                if p.name.startswith('damaged-')]


def test_truncated_manifest_salvaged_keeps_the_log_too(mount_factory):
    """Tables from before a restart, more pushes after it only in the log
    (kill -9), then the MANIFEST truncated: the salvage keeps both."""
    m = flushed_store(mount_factory)
    m.start()
    q = m.q('jobs')
    for i in range(N, N + 100):
        push(q, body(i), 'm%d' % i)
    m.kill9(restart=False)
    manifest = m.data / (m.data / 'CURRENT').read_text().strip()
    os.truncate(manifest, manifest.stat().st_size // 2)
    refused_twice(m, r'damaged: %s is damaged' % re.escape(manifest.name))
    salvage(m)
    assert listed(q) == {body(i) for i in range(N + 100)}
    assert re.search(r'error: salvage: .*the logs held \d+ records',
                     m.log())
