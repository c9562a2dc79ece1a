"""The crash-loop harness (issue 6): round after round, mount spoolfs, run
concurrent producers and consumers that keep ledgers, kill -9 the daemon at a
random moment, clear the dead mount, remount on the same --data, and check
the ledgers against what the store holds. Its twin (issue 14,
test_redis_crash.py) kills the store instead: kill -9 of redis-server and
its restart under the running daemon, whose mount stays; the clients go on
through the outage and are then asked to stop (a stop file).

Clients (separate processes, so that a dead mount only ends them):

  py-names   Python, one new file per message (open O_CREAT, write, close)
  py-push    Python, open-write-close of `push`
  py-lines   Python, batches of 1..20 lines through `lines` (all or none)
  sh-names   sh + cp (cp checks close(); a shell redirection does not)
  sh-push    sh + cp onto `push`
  sh-lines   sh + cp of a batch file onto `lines`
  py-cons    Python: read `next`, fgetxattr user.spool.id, then ack
             (unlink leased/<id>), release (rename leased/<id> -> peek/<id>)
             or abandon (let the short visibility_timeout run out)
  sh-cons    sh: id=$(cat claim), cat leased/$id, then rm or mv

Every message body is unique: "<client>.<round>-<n>". Ledger lines (one
write(2) each, O_APPEND, to a file outside the mount):

  producer:  P <body>                       close() returned 0
  consumer:  L <t_ns> <id> <body|?>         a lease (t_ns: before the open)
             A <t_ns> <id>                  the ack returned 0 (t_ns: after)
             a <errno> <id>                 the ack failed
             R <t_ns> <id> / r <errno> <id> release returned 0 / failed
             X <t_ns> <id>                  abandoned on purpose

Invariants checked after every restart (nothing consumes during a check):

  lost        every P body that has no successful A is in the store (an ack
              in flight at the kill, failed with ENOTCONN -- or with EIO,
              when the store died with the reply unsent -- may have been
              committed: that body may be gone, and only that one)
  resurrected no body with a successful A is in the store
  stats       visible+delayed+leased == the messages listed, and
              pushed_total == acked_total + deleted_total + dead_total +
              messages held
  identity    an id always names the same body; bodies are well formed

and over the whole run, with every lease of every round:

  after-ack   no lease of a body started after an ack of it returned 0
  duplicates  a body is leased again only after a release, an abandon, an
              ack that failed, an expired lease (the ack came back after
              the later lease started), or a lease left without an outcome
              by the crash -- and only a consumer's last lease of a round
              may be left without an outcome (the one in flight at the kill)

After the last round the queue is drained through next + ack: every P body
must be acknowledged exactly then or before; stats end at zero.
"""
import errno
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import spoolutil

VIS = 1                 # visibility_timeout, seconds: abandoned leases expire
RECEIVE_WAIT = 0.2      # so that blocking reads of next/claim come back

PY_PRODUCER = r'''
import os, random, sys
q, tag, ledger, mode, limit, seed = sys.argv[1:7]
rng = random.Random(int(seed))
lf = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
i = 0
def write_all(path, data, flags):
    fd = os.open(path, os.O_WRONLY | flags, 0o644)
    try:
        if len(data) > 1 and rng.random() < 0.3:
            k = rng.randrange(1, len(data))
            os.write(fd, data[:k]); os.write(fd, data[k:])
        else:
            os.write(fd, data)
    except OSError:
        try:
            os.close(fd)
        except OSError:
            pass
        raise
    os.close(fd)
while i < int(limit):
    try:
        if mode == 'lines':
            n = rng.randint(1, 20)
            bodies = [b'%s-%d' % (tag.encode(), i + k) for k in range(n)]
            data = b''.join(b + b'\n' for b in bodies)
            if rng.random() < 0.5:
                data = data[:-1]          # a last line without its newline
            write_all(os.path.join(q, 'lines'), data, os.O_TRUNC)
            os.write(lf, b''.join(b'P ' + b + b'\n' for b in bodies))
            i += n
        else:
            body = b'%s-%d' % (tag.encode(), i)
            if mode == 'push':
                write_all(os.path.join(q, 'push'), body, os.O_TRUNC)
            else:
                write_all(os.path.join(q, 'n%s-%d' % (tag, i)), body,
                          os.O_CREAT | os.O_EXCL)
            os.write(lf, b'P ' + body + b'\n')
            i += 1
    except OSError as e:
        print('producer %s stops: %s' % (tag, e))
        break
'''

SH_PRODUCER = r'''
q=$1 tag=$2 ledger=$3 mode=$4 limit=$5 tmp=$6
i=0
while [ "$i" -lt "$limit" ]; do
	case $mode in
	lines)
		j=$i; : > "$tmp"
		while [ "$j" -lt $((i + 5)) ]; do
			printf '%s-%d\n' "$tag" "$j" >> "$tmp"; j=$((j + 1))
		done
		cp "$tmp" "$q/lines" 2>/dev/null || break
		sed 's/^/P /' "$tmp" >> "$ledger"
		i=$j ;;
	*)
		printf '%s-%d' "$tag" "$i" > "$tmp"
		if [ "$mode" = push ]; then dst="$q/push"; else dst="$q/s$tag-$i"; fi
		cp "$tmp" "$dst" 2>/dev/null || break
		echo "P $tag-$i" >> "$ledger"
		i=$((i + 1)) ;;
	esac
done
'''

PY_CONSUMER = r'''
import errno, os, random, sys, time
q, ledger, seed, stop = sys.argv[1:5]
rng = random.Random(int(seed))
lf = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
def log(*f):
    os.write(lf, (' '.join(str(x) for x in f) + '\n').encode())
while not os.path.exists(stop):
    t0 = time.time_ns()
    try:
        fd = os.open(os.path.join(q, 'next'), os.O_RDONLY)
    except OSError:
        break
    try:
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        body = b''.join(chunks).decode()
    except OSError as e:
        try:
            os.close(fd)
        except OSError:
            pass
        if e.errno == errno.EAGAIN:
            continue
        break
    try:
        mid = os.getxattr(fd, 'user.spool.id').decode()
    except OSError:
        log('L', t0, '?', body)
        break
    try:
        os.close(fd)
    except OSError:
        pass
    log('L', t0, mid, body)
    r = rng.random()
    if r < 0.7:
        try:
            os.unlink(os.path.join(q, 'leased', mid))
            log('A', time.time_ns(), mid)
        except OSError as e:
            log('a', e.errno, mid)
            if e.errno != errno.ENOENT:
                break
    elif r < 0.85:
        try:
            os.rename(os.path.join(q, 'leased', mid),
                      os.path.join(q, 'peek', mid))
            log('R', time.time_ns(), mid)
        except OSError as e:
            log('r', e.errno, mid)
            if e.errno != errno.ENOENT:
                break
    else:
        log('X', time.time_ns(), mid)
'''

SH_CONSUMER = r'''
q=$1 ledger=$2 err=$3 stop=$4
export LC_ALL=C   # why() reads the tools' English messages
# The errno of a failed rm, mv or cat, from its message: 2 (ENOENT: the
# lease ran out and another consumer took it), 5 (EIO: the store did not
# answer; the change may have been made), or ? (the mount is gone).
why() {
	if grep -q 'No such file' "$err"; then echo 2
	elif grep -q 'Input/output error' "$err"; then echo 5
	else echo '?'; fi
}
n=0
while [ ! -e "$stop" ]; do
	t=$(date +%s%N)
	if ! id=$(cat "$q/claim" 2>"$err"); then
		grep -q 'temporarily unavailable' "$err" && continue
		break
	fi
	if body=$(cat "$q/leased/$id" 2>"$err"); then
		echo "L $t $id $body" >> "$ledger"
	else
		echo "L $t $id ?" >> "$ledger"
		[ "$(why)" = 2 ] || break
		continue
	fi
	n=$((n + 1))
	if [ $((n % 5)) -eq 0 ]; then
		if mv "$q/leased/$id" "$q/peek/$id" 2>"$err"; then
			echo "R $(date +%s%N) $id" >> "$ledger"
		else
			e=$(why); echo "r $e $id" >> "$ledger"
			[ "$e" = 2 ] || break
		fi
	elif rm "$q/leased/$id" 2>"$err"; then
		echo "A $(date +%s%N) $id" >> "$ledger"
	else
		e=$(why); echo "a $e $id" >> "$ledger"
		[ "$e" = 2 ] || break
	fi
done
'''

BODY = re.compile(r'^(py-names|py-push|py-lines|sh-names|sh-push|sh-lines)'
                  r'\.\d+-\d+$')


class Lease:
    __slots__ = ('t', 'id', 'body', 'client', 'round', 'outcome', 'out_t',
                 'out_errno', 'last')

    def __init__(self, t, mid, body, client, rnd):
        self.t, self.id, self.body = t, mid, body
        self.client, self.round = client, rnd
        self.outcome = None     # 'A', 'a', 'R', 'r', 'X' or None (crash)
        self.out_t = None
        self.out_errno = None   # 'a'/'r': the errno, '?' if unknown
        self.last = False       # the client's last lease of its round


class Violation(AssertionError):
    pass


class CrashLoop:
    """Runs the rounds on one Mount (tests/fs/conftest.py) and checks."""

    def __init__(self, mount, workdir, sync, rounds, seed=None,
                 kill_after=(0.05, 1.5), limit=80, queue='cq', backlog=400,
                 crash=None, after_crash=(0.5, 2.0)):
        # crash: None kills the daemon (kill -9) and mounts it again; or a
        # callable that crashes the store under the running daemon (kill -9
        # of redis-server and its restart) -- the mount stays, the clients
        # go on for after_crash seconds and are then asked to stop.
        self.m = mount
        self.crash = crash
        self.after_crash = after_crash
        self.work = Path(workdir)
        self.sync = sync
        self.rounds = rounds
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        self.kill_after = kill_after
        self.limit = limit
        self.qname = queue
        self.backlog = backlog
        self.pushed = set()     # bodies whose close() returned 0
        self.acked = {}         # body -> earliest successful ack time (ns)
        self.maybe_acked = set()  # bodies whose ack was in flight at a kill
        self.leases = []
        self.id_body = {}       # id -> body, from listings and leases
        self.figures = dict(rounds=0, pushed=0, leases=0, acks=0,
                            releases=0, abandoned=0, in_flight_at_kill=0,
                            duplicates=0, checked=0, lost=0, drained=0,
                            expired=0, failed_at_kill=0)

    # ------------------------------------------------------------ run
    def q(self):
        return self.m.mnt / self.qname

    def run(self):
        m = self.m
        if m.proc is None or m.proc.poll() is not None:
            m.start('--sync', self.sync)
        m.mkq(self.qname, visibility_timeout=VIS, receive_wait=RECEIVE_WAIT)
        for r in range(self.rounds):
            self.round(r)
            self.figures['rounds'] += 1
        self.drain()
        self.check_history()
        return self.figures

    def spawn(self, r, client, argv):
        log = open(self.work / ('r%d-%s.out' % (r, client)), 'wb')
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT)
        log.close()
        return p

    def round(self, r):
        q = str(self.q())
        d = self.work
        procs = []
        for client in ('py-names', 'py-push', 'py-lines'):
            tag = '%s.%d' % (client, r)
            procs.append((client, self.spawn(r, client, [
                sys.executable, '-c', PY_PRODUCER, q, tag,
                str(d / ('r%d-%s.ledger' % (r, client))), client[3:],
                str(self.limit), str(self.rng.randrange(1 << 30))])))
        for client in ('sh-names', 'sh-push', 'sh-lines'):
            tag = '%s.%d' % (client, r)
            procs.append((client, self.spawn(r, client, [
                'sh', '-c', SH_PRODUCER, 'sh', q, tag,
                str(d / ('r%d-%s.ledger' % (r, client))), client[3:],
                str(self.limit // 4), str(d / ('r%d-%s.tmp' % (r, client)))
            ])))
        stop = d / ('r%d.stop' % r)
        for k in range(3):
            client = 'py-cons%d' % k
            procs.append((client, self.spawn(r, client, [
                sys.executable, '-c', PY_CONSUMER, q,
                str(d / ('r%d-%s.ledger' % (r, client))),
                str(self.rng.randrange(1 << 30)), str(stop)])))
        client = 'sh-cons'
        procs.append((client, self.spawn(r, client, [
            'sh', '-c', SH_CONSUMER, 'sh', q,
            str(d / ('r%d-%s.ledger' % (r, client))),
            str(d / ('r%d-%s.err' % (r, client))), str(stop)])))
        try:
            # The random moment counts from when the clients are at work
            # (a Python start-up takes a while on a loaded machine).
            self.wait_busy(r, [c for c, _ in procs])
            time.sleep(self.rng.uniform(*self.kill_after))
            if self.crash is None:
                self.m.kill9(restart=False)
            else:
                self.crash()
                time.sleep(self.rng.uniform(*self.after_crash))
                stop.touch()
            # An operation that waits for the store gives up after 10 s.
            deadline = time.monotonic() + 15
            for _, p in procs:
                try:
                    p.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        finally:
            for client, p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        self.read_ledgers(r, [c for c, _ in procs])
        if self.crash is None:
            self.m.start('--sync', self.sync)
        held = self.check_store('after round %d' % r)
        if held > self.backlog:
            # Producers outrun consumers; keep each round's check short.
            self.take(held - self.backlog // 4)

    def wait_busy(self, r, clients, timeout=10):
        def started(c):
            p = self.work / ('r%d-%s.ledger' % (r, c))
            return p.exists() and p.stat().st_size > 0
        spoolutil.wait_until(lambda: all(started(c) for c in clients
                                         if 'cons' not in c),
                             timeout=timeout, interval=0.01)

    # -------------------------------------------------------- ledgers
    def read_ledgers(self, r, clients):
        for client in clients:
            path = self.work / ('r%d-%s.ledger' % (r, client))
            if not path.exists():
                continue
            lines = path.read_bytes().decode(errors='replace').splitlines()
            if 'cons' in client:
                self.read_consumer(r, client, lines)
            else:
                for line in lines:
                    tag, _, body = line.partition(' ')
                    if tag != 'P' or not BODY.match(body):
                        raise Violation('%s: bad ledger line %r'
                                        % (path, line))
                    if body in self.pushed:
                        raise Violation('%s: %r pushed twice' % (path, body))
                    self.pushed.add(body)
                    self.figures['pushed'] += 1

    def read_consumer(self, r, client, lines):
        cur = None
        mine = []
        for line in lines:
            f = line.split(' ')
            if f[0] == 'L':
                cur = Lease(int(f[1]), f[2], f[3] if len(f) > 3 else '?',
                            client, r)
                if cur.body != '?':
                    self.learn(cur.id, cur.body, 'lease by ' + client)
                mine.append(cur)
                self.figures['leases'] += 1
            elif cur is not None and f[0] in 'AaRrX' and f[2] == cur.id:
                cur.outcome = f[0]
                if f[0] in 'ARX':
                    cur.out_t = int(f[1])
                else:
                    cur.out_errno = f[1]
                key = {'A': 'acks', 'R': 'releases', 'X': 'abandoned'}
                if f[0] in key:
                    self.figures[key[f[0]]] += 1
                elif f[1] != str(errno.ENOENT):
                    self.figures['failed_at_kill'] += 1
            else:
                raise Violation('%s round %d: ledger line %r out of order'
                                % (client, r, line))
        if mine:
            mine[-1].last = True
        self.leases.extend(mine)

    def learn(self, mid, body, where):
        if mid == '?':
            return
        old = self.id_body.setdefault(mid, body)
        if old != body:
            raise Violation('id %s named %r and then %r (%s)'
                            % (mid, old, body, where))
        if not BODY.match(body):
            raise Violation('malformed body %r under id %s (%s)'
                            % (body, mid, where))

    def resolve(self):
        """Fills in bodies of leases whose body a shell consumer could not
        read, and records successful acks by body."""
        for le in self.leases:
            if le.body == '?':
                le.body = self.id_body.get(le.id, '?')
            if le.outcome == 'a' and le.body != '?' and \
                    le.out_errno != str(errno.ENOENT):
                # The ack was in flight when the daemon died: it may or may
                # not have been committed. Only the last lease may end so.
                if not le.last:
                    raise Violation('%s: ack of %s failed with %s but the '
                                    'client went on' % (le.client, le.id,
                                                        le.out_errno))
                self.maybe_acked.add(le.body)
            if le.outcome == 'A' and le.body != '?':
                t = self.acked.get(le.body)
                if t is None or le.out_t < t:
                    self.acked[le.body] = le.out_t

    # ---------------------------------------------------------- store
    def listing(self):
        """{id: body} of every message held. Leased first, then delayed,
        then peek: the only moves while nobody consumes are leased ->
        visible and delayed -> visible, so every message is seen. Bodies
        are read for ids not seen before and for a sample of the others
        (an id's body is checked against what was learnt of it)."""
        q = self.q()
        held = {}
        for sub in ('leased', 'delayed', 'peek'):
            for mid in os.listdir(q / sub):
                if mid in held:
                    continue
                if mid in self.id_body and self.rng.random() > 0.1:
                    held[mid] = self.id_body[mid]
                    continue
                try:
                    body = spoolutil.read_file(q / sub / mid).decode()
                except FileNotFoundError:
                    continue    # moved on to peek/, listed there next
                held[mid] = body
                self.learn(mid, body, 'listing of %s/' % sub)
        return held

    def snapshot(self):
        """A listing and the stats that agree with it. Timers (leases that
        run out after the restart) move messages between the two reads, so
        take both again until they agree, for a while."""
        q = self.q()
        for _ in range(50):
            held = self.listing()
            s = spoolutil.stats(q)
            if s['visible'] + s['delayed'] + s['leased'] == len(held):
                break
            time.sleep(0.05)
        return held, s

    def check_store(self, when):
        self.resolve()
        held, s = self.snapshot()
        present = set(held.values())
        if len(present) != len(held):
            raise Violation('%s: a body is held under two ids' % when)
        lost = self.pushed - present - set(self.acked) - self.maybe_acked
        back = present & set(self.acked)
        self.figures['checked'] += len(self.pushed)
        if lost:
            self.figures['lost'] = len(lost)
            raise Violation('%s: %d acknowledged pushes lost, e.g. %r'
                            % (when, len(lost), sorted(lost)[:5]))
        if back:
            raise Violation('%s: %d acknowledged acks undone (message back '
                            'in the store), e.g. %r'
                            % (when, len(back), sorted(back)[:5]))
        total = s['visible'] + s['delayed'] + s['leased']
        if total != len(held):
            raise Violation('%s: stats say %d+%d+%d messages, %d listed: %r'
                            % (when, s['visible'], s['delayed'], s['leased'],
                               len(held), s))
        out = s['acked_total'] + s.get('deleted_total', 0) + s['dead_total']
        if s['pushed_total'] != out + total:
            raise Violation('%s: pushed_total %d != acked %d + deleted %d + '
                            'dead %d + held %d'
                            % (when, s['pushed_total'], s['acked_total'],
                               s.get('deleted_total', 0), s['dead_total'],
                               total))
        if s['pushed_total'] < len(self.pushed):
            raise Violation('%s: pushed_total %d < %d acknowledged pushes'
                            % (when, s['pushed_total'], len(self.pushed)))
        return len(held)

    def take(self, limit, threads=4):
        """Takes up to limit messages with next + ack, as more consumers
        that never fail (nothing is killed while they run). Several
        threads, so that their acks share fsyncs."""
        q = self.q()
        lock = threading.Lock()
        count = [0]

        def one():
            while True:
                with lock:
                    if count[0] >= limit:
                        return
                    count[0] += 1
                t0 = time.time_ns()
                got = spoolutil.lease(q)
                if got is None:
                    return
                mid, body = got
                os.unlink(q / 'leased' / mid)
                le = Lease(t0, mid, body.decode(), 'drain', -1)
                le.outcome, le.out_t = 'A', time.time_ns()
                with lock:
                    self.learn(mid, le.body, 'drain')
                    self.leases.append(le)
                    self.figures['drained'] += 1

        ts = [threading.Thread(target=one) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    def drain(self):
        """Waits for the leases of the last crash to run out, then takes
        every message."""
        q = self.q()
        spoolutil.wait_until(lambda: spoolutil.stats(q)['leased'] == 0,
                             timeout=VIS + 5)
        self.take(1 << 62)
        self.check_store('after the drain')
        s = spoolutil.stats(q)
        if (s['visible'], s['delayed'], s['leased']) != (0, 0, 0):
            raise Violation('after the drain: %r' % s)
        missing = self.pushed - set(self.acked) - self.maybe_acked
        if missing:
            raise Violation('%d pushes never delivered, e.g. %r'
                            % (len(missing), sorted(missing)[:5]))

    # -------------------------------------------------------- history
    def check_history(self):
        self.resolve()
        by_body = {}
        for le in self.leases:
            if le.body == '?':
                raise Violation('lease of id %s by %s: body unknown'
                                % (le.id, le.client))
            by_body.setdefault(le.body, []).append(le)
        for body, ls in by_body.items():
            ls.sort(key=lambda x: x.t)
            ack = self.acked.get(body)
            for le in ls:
                if ack is not None and le.t > ack:
                    raise Violation('%r leased by %s at %d, after an ack '
                                    'returned at %d' % (body, le.client,
                                                        le.t, ack))
                if le.outcome is None and not le.last:
                    raise Violation('%r: lease by %s round %d has no outcome '
                                    'but was not its last' %
                                    (body, le.client, le.round))
            for prev, le in zip(ls, ls[1:]):
                self.figures['duplicates'] += 1
                if prev.outcome in ('R', 'X', 'a', 'r'):
                    continue
                if prev.outcome is None:
                    self.figures['in_flight_at_kill'] += 1
                    continue
                # An ack that returned after the next lease began: the
                # first lease had run out before it (visibility_timeout).
                if prev.outcome == 'A' and prev.out_t > le.t:
                    self.figures['expired'] += 1
                    continue
                raise Violation('%r leased again by %s at %d after %s '
                                'ended its lease with %s at %s'
                                % (body, le.client, le.t, prev.client,
                                   prev.outcome, prev.out_t))
        return self.figures


def rounds_from_env(default):
    v = os.environ.get('SPOOL_CRASH_ROUNDS')
    return int(v) if v else default

