"""Crash loop (issue 6): kill -9 the daemon at random moments under
concurrent producers and consumers, remount on the same --data, and check
that nothing acknowledged is lost, nothing acked comes back, and duplicates
come only from releases, expiries and leases in flight at the kill. The
harness and the invariants are in crashloop.py.

CI runs 10 rounds per sync mode (20 in all). SPOOL_CRASH_ROUNDS=N runs N
per mode; SPOOL_CRASH_SEED=S repeats a run's random choices.
"""
import os

import pytest

from crashloop import CrashLoop, rounds_from_env

ROUNDS = rounds_from_env(10)


@pytest.mark.spool_timeout(max(300, ROUNDS * 30))
@pytest.mark.parametrize('sync', ['always', 'none'])
def test_crash_loop_keeps_every_message(mount_factory, tmp_path, sync):
    m = mount_factory('--sync', sync)
    seed = os.environ.get('SPOOL_CRASH_SEED')
    loop = CrashLoop(m, tmp_path, sync, ROUNDS,
                     seed=int(seed) if seed else None)
    print('crash loop: --sync %s, %d rounds, SPOOL_CRASH_SEED=%d'
          % (sync, ROUNDS, loop.seed))
    try:
        figures = loop.run()
    finally:
        print('crash loop figures (--sync %s): %r' % (sync, loop.figures))
    assert figures['rounds'] == ROUNDS
    assert figures['lost'] == 0
    # The loop did real work: pushes, acks, releases and kills mid-stream.
    assert figures['pushed'] > ROUNDS * 20, figures
    assert figures['acks'] > 0 and figures['releases'] > 0, figures
