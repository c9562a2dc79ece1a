"""The Redis store on a Redis Cluster (redis+cluster://, docs/scale-out.md):
two daemons on one namespace of a cluster of three primaries, while the
slots of a queue family and of the namespace move between primaries
(resharding) under load. Runs in every fs run: on the cluster of
tests/redis-cluster-run.sh when SPOOL_TEST_STORE names one, else on a
cluster of this module's own (three redis-servers on free loopback ports,
stopped by their pids). A missing redis-server fails the tests.
"""
import os
import threading
import time

import pytest

from conftest import store_is_cluster
from redisutil import RedisCluster
from spoolutil import lease, push, stats, wait_until


@pytest.fixture(scope='module')
def cluster():
    if store_is_cluster():
        c = RedisCluster(ports=[int(p) for p in
                                os.environ['SPOOL_CLUSTER_PORTS'].split()])
    else:
        c = RedisCluster(3)
    try:
        yield c.start()
    finally:
        c.stop()


@pytest.fixture
def hosts(mount_factory, cluster, tmp_path):
    """Two daemons (A, B) on one namespace of the cluster."""
    prefix = 'c' + tmp_path.name[-12:].replace('-', '')
    store = cluster.url(prefix)
    a = mount_factory(store=store)
    b = mount_factory(store=store)
    return a, b, prefix


def test_push_on_a_consume_on_b_across_families(hosts, cluster):
    """Queues of three families, spread over the primaries by their slots:
    each works from both hosts, and the listing of the root has them all."""
    a, b, prefix = hosts
    names = ['jobs', 'jobs.retry', 'mail', 'logs']
    for n in names:
        a.mkq(n)
    owners = {cluster.owner(cluster.slot_of('{%s:%s}' % (prefix, n)))
              for n in ('jobs', 'mail', 'logs')}
    assert len(owners) >= 2, owners         # not all on one node
    assert sorted(e for e in os.listdir(b.mnt)
                  if not e.startswith('.')) == sorted(names)
    for n in names:
        push(a.q(n), n.encode())
    for n in names:
        mid, body = lease(b.q(n))
        assert body == n.encode()
        os.unlink(b.q(n) / 'leased' / mid)
        assert stats(a.q(n))['acked_total'] == 1


@pytest.mark.spool_timeout(300)
def test_family_resharded_under_load_nothing_lost(hosts, cluster):
    """Producers on A and consumers on B while the slot of the family
    `jobs` moves to another primary, and again to a third, and the
    namespace's slot moves too: every message pushed is consumed exactly
    once (no lease expires), none is lost, no call fails."""
    a, b, prefix = hosts
    qa, qb = a.mkq('jobs'), b.q('jobs')
    a.mkq('jobs.retry')
    n_producers, per_producer = 2, 1500
    total = n_producers * per_producer
    got, errors = [], []
    lock = threading.Lock()
    pushed = [0]
    done = threading.Event()

    def producer(k):
        try:
            for i in range(per_producer):
                push(qa, b'%d-%d' % (k, i), name='m%d-%d' % (k, i))
                with lock:
                    pushed[0] += 1
        except OSError as e:
            errors.append('push: %r' % e)

    def consumer():
        try:
            while not done.is_set():
                r = lease(qb)
                if r is None:
                    time.sleep(0.005)
                    continue
                mid, body = r
                os.unlink(qb / 'leased' / mid)
                with lock:
                    got.append(body)
                    if len(got) >= total:
                        done.set()
        except OSError as e:
            errors.append('consume: %r' % e)
            done.set()

    threads = [threading.Thread(target=producer, args=(k,))
               for k in range(n_producers)]
    threads += [threading.Thread(target=consumer) for _ in range(2)]
    for t in threads:
        t.start()
    moved = []
    try:
        fslot = cluster.slot_of('{%s:jobs}' % prefix)
        nslot = cluster.slot_of('{%s}' % prefix)
        for step in range(3):
            assert wait_until(lambda: pushed[0] >= (step + 1) * total // 5,
                              timeout=120), pushed
            src = cluster.owner(fslot)
            dst = [p for p in cluster.ports if p != src][step % 2]
            moved.append(('jobs', src, dst, cluster.move_slot(fslot, dst)))
            assert cluster.owner(fslot) == dst
        src = cluster.owner(nslot)
        dst = [p for p in cluster.ports if p != src][0]
        moved.append(('namespace', src, dst, cluster.move_slot(nslot, dst)))
    finally:
        for t in threads[:n_producers]:
            t.join(240)
        done.wait(120)
        done.set()
        for t in threads[n_producers:]:
            t.join(30)
    assert not errors, errors[:5]
    assert all(k > 0 for _, _, _, k in moved), moved   # keys really moved
    assert len(got) == total, (len(got), total)
    want = sorted(b'%d-%d' % (k, i) for k in range(n_producers)
                  for i in range(per_producer))
    assert sorted(got) == want                      # each exactly once
    for q in (qa, qb):
        s = stats(q)
        assert (s['visible'], s['leased'], s['acked_total']) == \
            (0, 0, total), s
