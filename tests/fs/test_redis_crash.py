"""kill -9 of redis-server under load (issue 14; DESIGN §10): the crash
loop's twin. Round after round, producers and consumers work through a
mounted daemon on a Redis store (appendonly yes, appendfsync always,
--sync always); the redis-server is killed with SIGKILL at a random moment
and started again on the same directory and port; the daemon keeps its
mount and goes on by itself. The ledgers are checked as in test_crash.py:
no push whose close() returned 0 is lost, no message whose unlink returned
0 comes back, duplicates only from releases, expiries and operations in
flight at the kill (those fail with EIO: the request was sent, its reply
never came, and the daemon never sends it again).

CI runs 6 rounds; SPOOL_REDIS_CRASH_ROUNDS=N runs N; SPOOL_CRASH_SEED=S
repeats a run's random choices. The figures go in docs/scale-out.md.
"""
import os

import pytest

from crashloop import CrashLoop
from redisutil import RedisServer

ROUNDS = int(os.environ.get('SPOOL_REDIS_CRASH_ROUNDS', '6'))


@pytest.fixture
def redis():
    server = RedisServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.mark.spool_timeout(max(300, ROUNDS * 45))
def test_redis_kill9_under_load_loses_nothing(redis, mount_factory, tmp_path):
    m = mount_factory('--sync', 'always', store=redis.url('crash'))
    # An operation in flight at the kill fails, and says why.
    m.expect_log(r'redis .*(no answer|connect|closed|reset|refused|EOF|'
                 r'LOADING|unreachable)')
    kills = []

    def crash():
        redis.kill9()
        redis.start()
        kills.append(1)

    seed = os.environ.get('SPOOL_CRASH_SEED')
    loop = CrashLoop(m, tmp_path, 'always', ROUNDS, crash=crash,
                     seed=int(seed) if seed else None)
    print('redis crash loop: %d rounds, SPOOL_CRASH_SEED=%d'
          % (ROUNDS, loop.seed))
    try:
        figures = loop.run()
    finally:
        print('redis crash loop figures: %r' % loop.figures)
    assert len(kills) == ROUNDS and figures['rounds'] == ROUNDS
    assert figures['lost'] == 0
    # The same daemon served every round: the mount was never lost.
    assert m.proc.poll() is None
    assert figures['pushed'] > ROUNDS * 20, figures
    assert figures['acks'] > 0 and figures['releases'] > 0, figures
