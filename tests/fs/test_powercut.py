"""A power cut (DESIGN.md §8, issue 6): with --sync always, what close()
acknowledged was fsynced, so it survives losing everything written after
the last fsync. The daemon runs with an LD_PRELOAD shim
(tests/tools/powercut.c) that journals, at every fsync and fdatasync, how
much of each store file was then durable. After kill -9, every store file
is cut back to that size (a file never synced to nothing), which is what
the page cache would have lost; then a new daemon recovers and every
acknowledged push must be there. The same cut under --sync none must lose
acknowledged pushes, which shows that the model has teeth."""
import os
import threading
import time

import pytest

from conftest import BIN
from spoolutil import read_file, write_file

SHIM = BIN.parents[1] / 'tests' / 'tools' / 'libpowercut.so'

pytestmark = pytest.mark.rocksdb_only(
    'models a power cut of the local disk under the RocksDB directory')


def producers(q, n_threads, ledger, stop):
    """Threads pushing unique bodies until stop is set; each body whose
    close() returned 0 goes into ledger."""
    def run(t):
        k = 0
        while not stop.is_set():
            body = b'%d-%d' % (t, k)
            k += 1
            try:
                write_file(q / ('m%d-%d' % (t, k)), body)
            except OSError:
                return          # the daemon is gone
            ledger.append(body)
    threads = [threading.Thread(target=run, args=(t,))
               for t in range(n_threads)]
    for t in threads:
        t.start()
    return threads


def cut_to_durable(journal, data):
    """Cuts each journalled store file back to its last durable size.
    Returns how many bytes were cut."""
    durable = {}
    for line in journal.read_text().splitlines():
        size, _, path = line.partition(' ')
        durable[path] = int(size)
    cut = 0
    for path, size in durable.items():
        if not path.startswith(str(data)) or not os.path.exists(path):
            continue
        have = os.path.getsize(path)
        if have > size:
            os.truncate(path, size)
            cut += have - size
    return cut


def present(q):
    """Bodies in the queue after recovery (none if it is gone)."""
    if not os.path.isdir(q):
        return set()
    out = set()
    for sub in ('peek', 'delayed', 'leased'):
        for i in os.listdir(q / sub):
            out.add(read_file(q / sub / i))
    return out


def power_cut_run(mount_factory, monkeypatch, sync):
    assert SHIM.exists(), 'build the shim: %s' % SHIM
    m = mount_factory('--sync', sync, start=False)
    journal = m.tmp / 'powercut.journal'
    with monkeypatch.context() as env:
        env.setenv('LD_PRELOAD', str(SHIM))
        env.setenv('SPOOL_POWERCUT_DIR', str(m.data))
        env.setenv('SPOOL_POWERCUT_LOG', str(journal))
        # an ASan build wants its runtime first; the shim is harmless
        env.setenv('ASAN_OPTIONS', os.environ.get('ASAN_OPTIONS', '') +
                   ':verify_asan_link_order=0')
        m.start()
        q = m.mkq('jobs')
        ledger, stop = [], threading.Event()
        threads = producers(q, 4, ledger, stop)
        deadline = time.monotonic() + 10
        while len(ledger) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        m.kill9(restart=False)      # producers are mid-push
        stop.set()
        for t in threads:
            t.join(30)
    assert len(ledger) >= 200, 'too few pushes to judge: %d' % len(ledger)
    cut = cut_to_durable(journal, m.data)
    m.start()
    lost = set(ledger) - present(q)
    return m, ledger, lost, cut


def test_power_cut_keeps_what_close_acknowledged(mount_factory, monkeypatch):
    m, ledger, lost, cut = power_cut_run(mount_factory, monkeypatch,
                                         'always')
    print('power cut, --sync always: %d acknowledged pushes, %d bytes cut,'
          ' %d lost' % (len(ledger), cut, len(lost)))
    assert not lost, sorted(lost)[:10]
    m.umount()


def test_power_cut_model_loses_unsynced_pushes(mount_factory, monkeypatch):
    """--sync none promises nothing across a power cut: the same cut loses
    acknowledged pushes. If it did not, the test above would prove
    nothing."""
    m, ledger, lost, cut = power_cut_run(mount_factory, monkeypatch, 'none')
    print('power cut, --sync none: %d acknowledged pushes, %d bytes cut, '
          '%d lost' % (len(ledger), cut, len(lost)))
    assert cut > 0 and lost, (cut, len(lost))
    m.umount()
