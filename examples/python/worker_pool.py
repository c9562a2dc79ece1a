#!/usr/bin/env python3
"""worker_pool.py MOUNT [JOBS] [WORKERS] - a worker-pool demo.

Pushes JOBS numbers to the queue 'squares.in' in one atomic batch, starts
WORKERS processes that each lease numbers, square them, push the result to
'squares.out' and ack (an acknowledgement() block: a worker that fails
releases its message for another), then collects the results and prints
their sum, which is sum(i*i for i in range(JOBS)).
"""
import multiprocessing
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spoolq import Receiver, Sender  # noqa: E402


def worker(mount):
    rx = Receiver(mount, 'squares.in')
    out = Sender(mount, 'squares.out')
    done = 0
    while True:
        with rx.acknowledgement(timeout=1) as msg:
            if msg is None:
                return done
            n = int(msg.body)
            out.send(b'%d' % (n * n), attrs={'worker': os.getpid()})
            done += 1


def main():
    mount = sys.argv[1]
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    Sender(mount, 'squares.in', create=True).send_many(
        str(i) for i in range(jobs))
    Sender(mount, 'squares.out', create=True)
    with multiprocessing.Pool(workers) as pool:
        counts = pool.map(worker, [mount] * workers)
    results = list(Receiver(mount, 'squares.out', timeout=0.5))
    for msg in results:
        Receiver(mount, 'squares.out').acknowledge(msg)
    print('workers %s handled %d jobs' % (counts, sum(counts)))
    print('results %d sum %d' % (len(results),
                                 sum(int(m.body) for m in results)))


if __name__ == '__main__':
    main()
