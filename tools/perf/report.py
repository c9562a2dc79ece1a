#!/usr/bin/env python3
"""report.py - turns tools/bench's raw results into the table, the ratios
against issue 4's targets, docs/performance.md and its chart.

Input: a TSV with one line per measurement:
    round  contender  workload  size  conc  status(ok|fail)  key=value ...
(the key=value part is loadgen's result line). Every ratio is computed
within one round (both figures measured side by side), then the median and
min-max of those per-round ratios are shown.

    report.py RESULTS --out docs/performance.md --png docs/performance.png ...
    report.py RESULTS --check ...   (smoke test: every contender ran, every
                                     figure non-zero; no timing asserted)
"""
import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

KV = re.compile(r'(\w+)=("[^"]*"|\S+)')

CONTENDERS = [
    ('nullfs', 'null FUSE'),
    ('spool-none', 'spoolfs --sync none'),
    ('spool-always', 'spoolfs --sync always'),
    ('maildir', 'maildir'),
    ('maildir-fsync', 'maildir + fsync'),
    ('beanstalkd', 'beanstalkd (no binlog)'),
    ('beanstalkd-f0', 'beanstalkd -b -f 0'),
    ('redis', 'redis (no AOF)'),
    ('redis-always', 'redis appendfsync always'),
    ('rocksdb', 'raw RocksDB, batch of 100'),
    ('rocksdb-sync', 'raw RocksDB, batch of 100, sync'),
]
# spoolfs on the Redis store (issue 14): their own section and targets
REDIS_STORE = [
    ('spool-redis-none', 'spoolfs Redis store --sync none (appendfsync everysec)'),
    ('spool-redis-always', 'spoolfs Redis store --sync always (appendfsync always)'),
]
NAMES = dict(CONTENDERS + REDIS_STORE)


def parse(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip('\n').split('\t', 6)
            if len(parts) < 7:
                continue
            rnd, c, w, size, conc, status, kv = parts
            d = {k: v.strip('"') for k, v in KV.findall(kv)}
            rows.append(dict(round=int(rnd), c=c, w=w, size=int(size),
                             conc=int(conc), ok=status == 'ok', kv=d))
    return rows


def num(d, key):
    try:
        return float(d[key])
    except (KeyError, ValueError):
        return None


class Results:
    def __init__(self, rows):
        self.rows = rows

    def find(self, c, w, size=None, conc=None):
        return [r for r in self.rows if r['c'] == c and r['w'] == w and
                (size is None or r['size'] == size) and
                (conc is None or r['conc'] == conc)]

    def per_round(self, c, w, key, size=128, conc=None):
        """{round: value} of the ok measurements."""
        out = {}
        for r in self.find(c, w, size, conc):
            v = num(r['kv'], key)
            if r['ok'] and v is not None:
                out[r['round']] = v
        return out

    def error(self, c, w, size=None, conc=None):
        for r in self.find(c, w, size, conc) + self.find(c, 'start'):
            if not r['ok']:
                return r['kv'].get('error', 'failed')
        return None


def spread(vals):
    """(median, min, max) or None."""
    vals = list(vals)
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def fmt_num(v):
    if v is None:
        return '-'
    if v >= 100:
        return f'{v:,.0f}'
    if v >= 10:
        return f'{v:.1f}'
    return f'{v:.2f}'


def fmt_spread(s, unit=''):
    if s is None:
        return '-'
    m, lo, hi = s
    if len(set((m, lo, hi))) == 1:
        return f'{fmt_num(m)}{unit}'
    return f'{fmt_num(m)}{unit} ({fmt_num(lo)}–{fmt_num(hi)})'


def cell(res, c, w, size, conc, key='rate', unit=''):
    s = spread(res.per_round(c, w, key, size, conc).values())
    if s is not None:
        return fmt_spread(s, unit)
    if res.find(c, w, size, conc) or res.find(c, 'start'):
        err = res.error(c, w, size, conc)
        return f'failed: {err}' if err else '-'
    return 'n/a'


def ratio_rounds(a, b, invert=False):
    """Per-round ratios a/b over the rounds both have."""
    out = []
    for rnd in sorted(set(a) & set(b)):
        if a[rnd] and b[rnd]:
            out.append(b[rnd] / a[rnd] if invert else a[rnd] / b[rnd])
    return out


# ------------------------------------------------------------ targets

def targets(res, args):
    """[(number, text, measured-text, goal-text, met: True/False/None,
    note)]"""
    out = []

    def rate(c, w, conc, size=128):
        return res.per_round(c, w, 'rate', size, conc)

    def ratio_target(no, text, a, b, goal, note=''):
        rs = ratio_rounds(a, b)
        s = spread(rs)
        met = None if s is None else s[0] >= goal
        out.append((no, text, fmt_spread(s, '×') if s else 'not measured',
                    f'≥ {goal}×', met, note))

    ratio_target('1a', 'create-push, `--sync none`, 4 producers ÷ null FUSE',
                 rate('spool-none', 'create', 4), rate('nullfs', 'create', 4),
                 0.75)
    ratio_target('1b', 'push through `push`, `--sync none`, 4 producers ÷ '
                 'null FUSE `push`', rate('spool-none', 'push', 4),
                 rate('nullfs', 'push', 4), 0.75)
    a = rate('spool-always', 'push', 8)
    ratio_target('2a', 'durable push (`push`, `--sync always`), 8 producers '
                 '÷ `--sync none`', a, rate('spool-none', 'push', 8), 0.85)
    ratio_target('2b', '… ÷ maildir + fsync, 8 producers', a,
                 rate('maildir-fsync', 'create', 8), 4)
    ratio_target('2c', '… ÷ beanstalkd `-f 0` put, 8 producers', a,
                 rate('beanstalkd-f0', 'create', 8), 1.2)
    ratio_target('2d', '… ÷ redis `appendfsync always` LPUSH, 8 producers',
                 a, rate('redis-always', 'create', 8), 2)
    ratio_target('3a', 'consume (next + xattr + unlink), `--sync none`, '
                 '4 consumers ÷ null FUSE', rate('spool-none', 'consume', 4),
                 rate('nullfs', 'consume', 4), 0.85)
    ratio_target('3c', 'the lease alone (open `next` + read + close), '
                 '`--sync none`, 4 consumers ÷ null FUSE',
                 rate('spool-none', 'lease', 4), rate('nullfs', 'lease', 4),
                 0.7)
    ratio_target('3b', 'durable consume (`--sync always`), 4 consumers ÷ '
                 'beanstalkd `-f 0` reserve+delete',
                 rate('spool-always', 'consume', 4),
                 rate('beanstalkd-f0', 'consume', 4), 1.2)
    ratio_target('4', f'`lines`, {args.lines:,} lines of 128 B, `--sync none` '
                 '÷ raw RocksDB batch-of-100 puts',
                 rate('spool-none', 'lines', 1), rate('rocksdb', 'lines', 1),
                 0.4)
    ratio_target('5', f'lease rate after {args.cycles:,} push/ack cycles ÷ '
                 'fresh queue (4 consumers)',
                 rate('spool-none', 'aging-old', 4),
                 rate('spool-none', 'aging-fresh', 4), 0.8)
    # 6: memory and restart
    mem = res.find('spool-none', 'memory')
    okmem = [r for r in mem if r['ok']]
    memr = [r for r in res.find('spool-none', 'memory-restart') if r['ok']]
    if okmem and memr:
        kv, kr = okmem[0]['kv'], memr[0]['kv']
        n = num(kv, 'messages')
        per = (num(kr, 'rss_kb') - num(kv, 'rss_empty_kb')) * 1024 / n
        grow = (num(kv, 'rss_kb') - num(kv, 'rss_empty_kb')) * 1024 / n
        out.append(('6a', f'daemon RSS per queued message at {int(n):,} '
                    'messages, after a restart (indexes rebuilt; RocksDB\'s '
                    'write buffers empty)', f'{per:.1f} B', '≤ 64 B',
                    per <= 64,
                    f'RSS {fmt_num(num(kv, "rss_empty_kb") / 1024)} MiB '
                    f'empty, {fmt_num(num(kr, "rss_kb") / 1024)} MiB with '
                    f'the messages; while they were being queued '
                    f'{fmt_num(num(kv, "rss_kb") / 1024)} MiB ({grow:.0f} B '
                    'a message: the write buffers, within the shared budget '
                    'of 2 × 8 MiB whatever the depth)'))
    else:
        out.append(('6a', 'daemon RSS per queued message', 'failed: ' +
                    (res.error('spool-none', 'memory') or
                     res.error('spool-none', 'memory-restart') or
                     'not measured'), '≤ 64 B', None, ''))
    rst = [r for r in res.find('spool-none', 'restart') if r['ok']]
    if rst:
        n = int(num(rst[0]['kv'], 'messages'))
        s = spread(num(r['kv'], 'secs') for r in rst)
        note = '' if n >= 10_000_000 else \
            f'measured at {n:,} messages, not 10M (this run\'s size)'
        out.append(('6b', f'restart with {n:,} queued messages (launch → '
                    'mount live)', fmt_spread(s, ' s'), '≤ 10 s (at 10M)',
                    s[0] <= 10 if n >= 10_000_000 else None, note))
    else:
        out.append(('6b', 'restart with many queued messages',
                    'failed: ' + (res.error('spool-none', 'restart') or
                                  'not measured'), '≤ 10 s', None, ''))
    out.extend(soak_targets(res, args))
    out.append(listing_target(res, args))
    # 7: wake-up p99
    for sp, rd in (('spool-none', 'redis'), ('spool-always', 'redis-always')):
        a = res.per_round(sp, 'wake', 'p99_us', 128, 1)
        b = res.per_round(rd, 'wake', 'p99_us', 128, 1)
        rs = ratio_rounds(a, b)
        s = spread(rs)
        out.append(('7' if sp == 'spool-none' else '7′',
                    f'push → parked reader wake-up p99, {NAMES[sp]} ÷ '
                    f'{NAMES[rd]} BLMOVE', fmt_spread(s, '×') if s else
                    'not measured', '≤ 2×', None if s is None else s[0] <= 2,
                    ''))
    # 8: parked readers
    pk = [r for r in res.find('spool-none', 'park') if r['ok']]
    if pk:
        kv = pk[0]['kv']
        extra = num(kv, 'threads_parked') - num(kv, 'threads_before')
        rss = num(kv, 'rss_parked_kb') - num(kv, 'rss_before_kb')
        out.append(('8', f'{int(num(kv, "readers")):,} parked readers: extra '
                    'daemon threads, extra RSS',
                    f'{int(extra):+d} threads ({int(num(kv, "threads_before"))}'
                    f'→{int(num(kv, "threads_parked"))}), '
                    f'{rss / 1024:+.1f} MiB (total '
                    f'{num(kv, "rss_parked_kb") / 1024:.0f} MiB)',
                    '0 threads, < 50 MB', extra <= 0 and
                    num(kv, 'rss_parked_kb') < 50 * 1000,
                    'a fresh daemon, empty store; RSS is the whole daemon\'s'))
    else:
        out.append(('8', 'parked readers', 'failed: ' +
                    (res.error('spool-none', 'park') or 'not measured'),
                    '0 threads, < 50 MB', None, ''))
    return out


# ------------------------------------------------ the Redis store (14)

def redis_store_targets(res):
    """Issue 14's speed and memory goals, as targets() gives them."""
    out = []

    def rate(c, w, conc):
        return res.per_round(c, w, 'rate', 128, conc)

    def ratio(no, text, a, b, goal):
        s = spread(ratio_rounds(a, b))
        out.append((no, text, fmt_spread(s, '×') if s else 'not measured',
                    f'≥ {goal}×', None if s is None else s[0] >= goal, ''))

    for sync in ('none', 'always'):
        rd, rk = f'spool-redis-{sync}', f'spool-{sync}'
        ratio(f'14{"a" if sync == "none" else "c"}',
              f'push, `--sync {sync}`, 4 producers: Redis store ÷ RocksDB '
              'store', rate(rd, 'push', 4), rate(rk, 'push', 4), 0.5)
        ratio(f'14{"b" if sync == "none" else "d"}',
              f'consume, `--sync {sync}`, 4 consumers: Redis store ÷ '
              'RocksDB store', rate(rd, 'consume', 4),
              rate(rk, 'consume', 4), 0.5)
    ratio('14e', 'durable push (`--sync always`), 8 producers: Redis store '
          '÷ raw Redis `appendfsync always` LPUSH',
          rate('spool-redis-always', 'push', 8),
          rate('redis-always', 'create', 8), 0.8)
    mem = [r for r in res.find('spool-redis-none', 'memory-redis') if r['ok']]
    if mem:
        kv = mem[0]['kv']
        per = num(kv, 'bytes_per_msg')
        out.append(('14f', f'Redis `used_memory` per queued 128-B message '
                    f'({int(num(kv, "messages")):,} queued)', f'{per:.0f} B',
                    '≤ 400 B', per <= 400, ''))
    else:
        out.append(('14f', 'Redis memory per queued message', 'failed: ' +
                    (res.error('spool-redis-none', 'memory-redis') or
                     'not measured'), '≤ 400 B', None, ''))
    s = spread(ratio_rounds(
        res.per_round('spool-redis-none', 'wake-across', 'p50_us', 128, 1),
        res.per_round('spool-redis-none', 'wake', 'p50_us', 128, 1)))
    out.append(('14g', 'push on host A → reader parked on host B, wake-up '
                'p50 ÷ the same on one host (two daemons on one Redis, '
                '`--sync none`)', fmt_spread(s, '×') if s else
                'not measured', '≤ 2×', None if s is None else s[0] <= 2,
                ''))
    return out


def redis_store_table(res, concs):
    cols = [('push', c) for c in concs] + [('consume', 4)]
    head = ['contender'] + [f'{w} 128 B c={c}' for w, c in cols]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for c in ('spool-none', 'spool-redis-none', 'redis', 'spool-always',
              'spool-redis-always', 'redis-always'):
        row = [NAMES[c]]
        for w, conc in cols:
            ww = w if c.startswith('spool') or w != 'push' else 'create'
            row.append(cell(res, c, ww, 128, conc))
        lines.append('| ' + ' | '.join(row) + ' |')
    return lines


def redis_store_section(res, concs):
    return [
        '## The Redis store (issue 14)',
        '',
        'spoolfs with `--data redis://127.0.0.1:PORT/bench` on a '
        'redis-server of its own (started afresh each round, on the same '
        'machine), beside spoolfs on RocksDB and raw Redis in the same '
        'rounds. Raw Redis: *push* is one `LPUSH` per message, *consume* '
        '`BLMOVE` + `LREM`. Memory: Redis\'s `used_memory` before and after '
        'queueing the messages through the mount (`lines`), divided by '
        'their number.',
        '',
        *redis_store_table(res, concs),
        '',
        *target_table(redis_store_targets(res)),
        '',
    ]


def listing_target(res, args):
    """Issue 15 goal 4: `ls -l` ÷ `ls` of peek/, each listing cold."""
    text = (f'`ls -l` ÷ `ls` of peek/ with {args.list:,} messages '
            '(issue 15 goal 4)')
    rs = ratio_rounds(res.per_round('spool-none', 'listing', 'lsl_secs', 128),
                      res.per_round('spool-none', 'listing', 'ls_secs', 128))
    s = spread(rs)
    if s is None:
        return ('9', text, 'failed: ' + (res.error('spool-none', 'listing')
                                         or 'not measured'), '≤ 10×', None,
                '')
    secs = [(num(r['kv'], 'ls_secs'), num(r['kv'], 'lsl_secs'))
            for r in res.find('spool-none', 'listing') if r['ok']]
    note = 'seconds (ls, ls -l): ' + ', '.join(
        f'{a:.2f}, {b:.2f}' for a, b in secs)
    return ('9', text, fmt_spread(s, '×'), '≤ 10×',
            s[0] <= 10 if args.list >= 1_000_000 else None,
            note if args.list >= 1_000_000 else
            note + f'; measured at {args.list:,}, not 1,000,000')


def soak_targets(res, args):
    """6c, 6d: the memory soak's RSS at most, and after the purge."""
    sk = [r for r in res.find('spool-none', 'soak') if r['ok']]
    if not sk:
        err = res.error('spool-none', 'soak') or 'not measured'
        return [('6c', 'daemon RSS in the memory soak', 'failed: ' + err,
                 '≤ 96 MiB', None, '')]
    kv = sk[0]['kv']
    mx, purged = num(kv, 'rss_max_kb') / 1024, num(kv, 'rss_purge_kb') / 1024
    low = num(kv, 'rss_purge_min_kb') / 1024
    note = (f'{int(num(kv, "pushes")):,} pushes, '
            f'{int(num(kv, "consumes")):,} consumes in '
            f'{args.soak:g} s, up to {args.soak_n:,} queued')
    return [
        ('6c', f'daemon RSS at most in a {args.soak:g} s mixed soak holding '
         f'up to {args.soak_n:,} messages of 128 B', f'{mx:.1f} MiB',
         '≤ 96 MiB', mx <= 96, note),
        ('6d', f'… {args.soak_settle:g} s after a purge', f'{purged:.1f} MiB '
         f'(lowest {low:.1f} MiB; under 48 MiB after '
         f'{num(kv, "under48_secs"):g} s)', '< 48 MiB', purged < 48, ''),
    ]


# --------------------------------------------------------------- tables

def throughput_table(res, sizes, concs):
    cols = []
    for size in sizes:
        for conc in concs:
            if size != 128 and conc != 4:
                continue
            cols.append(('create', size, conc))
            cols.append(('push', size, conc))
        cols.append(('consume', size, 4))
        if size == 128:
            cols.append(('lease', size, 4))
    head = ['contender'] + [
        f'{"new file / put" if w == "create" else w} {size} B c={conc}'
        for w, size, conc in cols]
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]
    for c, name in CONTENDERS[:9]:
        row = [name]
        for w, size, conc in cols:
            if w == 'push' and c not in ('nullfs', 'spool-none',
                                         'spool-always'):
                row.append('(= put)')
            elif w == 'lease' and c not in ('nullfs', 'spool-none'):
                row.append('—')
            else:
                row.append(cell(res, c, w, size, conc))
        lines.append('| ' + ' | '.join(row) + ' |')
    return lines


def lines_table(res):
    out = ['| contender | messages/s |', '|---|---|']
    for c in ('nullfs', 'spool-none', 'spool-always', 'redis',
              'redis-always', 'rocksdb', 'rocksdb-sync'):
        out.append(f'| {NAMES[c]} | {cell(res, c, "lines", 128, 1)} |')
    return out


def wake_table(res):
    out = ['| contender | p50 | p99 | one push alone, 1 client (mean) |',
           '|---|---|---|---|']
    for c in ('nullfs', 'spool-none', 'spool-always', 'beanstalkd',
              'beanstalkd-f0', 'redis', 'redis-always'):
        w = 'push' if c in ('nullfs', 'spool-none', 'spool-always') \
            else 'create'
        s = spread(1e6 / v for v in
                   res.per_round(c, w, 'rate', 128, 1).values() if v)
        out.append(f'| {NAMES[c]} | '
                   f'{cell(res, c, "wake", 128, 1, "p50_us", " µs")} | '
                   f'{cell(res, c, "wake", 128, 1, "p99_us", " µs")} | '
                   f'{fmt_spread(s, " µs")} |')
    for w, text in (('wake', 'one host'), ('wake-across', 'push on host A, '
                                           'reader on host B')):
        c = 'spool-redis-none'
        out.append(f'| {NAMES[c]}, {text} | '
                   f'{cell(res, c, w, 128, 1, "p50_us", " µs")} | '
                   f'{cell(res, c, w, 128, 1, "p99_us", " µs")} | |')
    return out


def store_table(res):
    out = []
    for r in res.find('spool-none', 'aging-fresh') + \
            res.find('spool-none', 'aging-old'):
        pass
    out.append('| figure | value |')
    out.append('|---|---|')
    out.append('| lease rate, fresh queue (4 consumers) | '
               f'{cell(res, "spool-none", "aging-fresh", 128, 4)} |')
    out.append('| lease rate after the push/ack cycles | '
               f'{cell(res, "spool-none", "aging-old", 128, 4)} |')
    for r in res.find('spool-none', 'memory'):
        kv = r['kv']
        if r['ok']:
            out.append(f'| daemon RSS, empty store | '
                       f'{num(kv, "rss_empty_kb") / 1024:.1f} MiB |')
            out.append(f'| daemon RSS, {int(num(kv, "messages")):,} messages '
                       f'queued (stats: visible={kv.get("visible")}) | '
                       f'{num(kv, "rss_kb") / 1024:.1f} MiB |')
        else:
            out.append(f'| memory | failed: {kv.get("error")} |')
    for r in res.find('spool-none', 'memory-restart'):
        if r['ok']:
            out.append(f'| daemon RSS after a restart with those messages | '
                       f'{num(r["kv"], "rss_kb") / 1024:.1f} MiB |')
    rst = [r for r in res.find('spool-none', 'restart') if r['ok']]
    if rst:
        n = int(num(rst[0]['kv'], 'messages'))
        out.append(f'| restart with {n:,} messages (launch → mount live) | '
                   f'{fmt_spread(spread(num(r["kv"], "secs") for r in rst), " s")} |')
        out.append(f'| daemon RSS after that restart | '
                   f'{fmt_spread(spread(num(r["kv"], "rss_kb") / 1024 for r in rst), " MiB")} |')
    for r in res.find('spool-none', 'park'):
        kv = r['kv']
        if r['ok']:
            out.append(f'| {int(num(kv, "readers")):,} parked readers: daemon '
                       f'threads before → parked | {kv.get("threads_before")}'
                       f' → {kv.get("threads_parked")} |')
            out.append(f'| … daemon RSS before → parked | '
                       f'{num(kv, "rss_before_kb") / 1024:.1f} → '
                       f'{num(kv, "rss_parked_kb") / 1024:.1f} MiB |')
        else:
            out.append(f'| parked readers | failed: {kv.get("error")} |')
    return out


def target_table(tg):
    out = ['| # | target | measured (median, min–max of per-round ratios) '
           '| goal | |', '|---|---|---|---|---|']
    for no, text, meas, goal, met, note in tg:
        verdict = {True: '**met**', False: '**missed**',
                   None: 'not judged'}[met]
        if note:
            meas += f' — {note}'
        out.append(f'| {no} | {text} | {meas} | {goal} | {verdict} |')
    return out


# ----------------------------------------------------------------- chart

def chart(res, png):
    gp = shutil.which('gnuplot')
    if not gp:
        return 'gnuplot not installed: no chart'
    cols = [('create', 4, 'new file / put, c=4'),
            ('push', 8, '`push` / put, c=8'),
            ('consume', 4, 'consume, c=4')]
    rows = []
    for c, name in CONTENDERS[:9]:
        vals = []
        for w, conc, _ in cols:
            ww = w if (w != 'push' or c in ('nullfs', 'spool-none',
                                            'spool-always')) else 'create'
            s = spread(res.per_round(c, ww, 'rate', 128, conc).values())
            vals.append(s[0] if s else 0)
        rows.append((name, vals))
    with tempfile.TemporaryDirectory() as tmp:
        dat = os.path.join(tmp, 'd.dat')
        with open(dat, 'w') as f:
            f.write('name\t' + '\t'.join(f'"{t}"' for _, _, t in cols) + '\n')
            for name, vals in rows:
                f.write(f'"{name}"\t' + '\t'.join(
                    f'{v:.1f}' if v > 0 else '1' for v in vals) + '\n')
        script = f'''
set terminal pngcairo size 1200,560 font "sans,10"
set output "{png}"
set title "Messages/s, 128 B bodies, median of rounds (log scale) — same machine, same run"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [100:*]
set grid ytics
set xtics rotate by -25 scale 0 noenhanced
set key top right noenhanced
set ylabel "messages/s"
plot "{dat}" using 2:xtic(1) title columnhead(2), \
     "" using 3 title columnhead(3), "" using 4 title columnhead(4)
'''
        r = subprocess.run([gp], input=script, text=True,
                           capture_output=True)
        if r.returncode != 0:
            return 'gnuplot failed: ' + r.stderr.strip()[:200]
    return None


# ----------------------------------------------------------------- main

def machine():
    cpu = ''
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ''
    try:
        with open('/proc/meminfo') as f:
            kb = int(f.readline().split()[1])
            mem = f'{kb / 1048576:.0f} GiB'
    except (OSError, ValueError, IndexError):
        pass
    try:
        load = os.getloadavg()
        load = f'{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}'
    except OSError:
        load = '?'
    return (f'{os.cpu_count()} cores ({cpu}), {mem} RAM, Linux '
            f'{platform.release()}; load average at the end of the run '
            f'{load}')


# ------------------------------------------- SQS endpoint (issue 16)

# (files workload, SQS workload, text, key, clients, goal, higher is better)
SQS_ROWS = [
    ('file-push', 'sqs-send', 'SendMessage ÷ file `push`', 'rate', 4, 0.5,
     True),
    ('file-push', 'sqs-batch', 'SendMessageBatch of 10 (messages/s) ÷ file '
     '`push`', 'rate', 4, 2.0, True),
    ('file-consume', 'sqs-consume', 'ReceiveMessage(1) + DeleteMessage ÷ '
     'file consume (`next` + unlink)', 'rate', 4, 0.5, True),
    ('file-wake', 'sqs-wake', 'long-poll wake-up p50 ÷ parked reader\'s p50',
     'p50_us', 1, 2.0, False),
]
SQS_WORKLOADS = [w for a, b, *_ in SQS_ROWS for w in (a, b)]


def sqs_table(res):
    """The SQS rows: both figures and their per-round ratio."""
    out = ['| SQS ÷ files (spoolfs --sync always, one daemon) | files | '
           'SQS | ratio | goal | met |', '|---|---|---|---|---|---|']
    for fw, sw, text, key, conc, goal, up in SQS_ROWS:
        unit = ' µs' if key == 'p50_us' else ''
        a = res.per_round('spool-sqs', sw, key, 128, conc)
        b = res.per_round('spool-sqs', fw, key, 128, conc)
        s = spread(ratio_rounds(a, b))
        met = '-' if s is None else \
            ('yes' if (s[0] >= goal if up else s[0] <= goal) else 'no')
        out.append(f'| {text}, {conc} client{"s" if conc > 1 else ""} | '
                   f'{cell(res, "spool-sqs", fw, 128, conc, key, unit)} | '
                   f'{cell(res, "spool-sqs", sw, 128, conc, key, unit)} | '
                   f'{fmt_spread(s, "×")} | {"≥" if up else "≤"} {goal}× | '
                   f'{met} |')
    return out


def check(res):
    """Smoke test: every contender ran every workload it has; no zeros."""
    bad = []
    for r in res.rows:
        if not r['ok']:
            bad.append(f"{r['c']} {r['w']}: {r['kv'].get('error', 'failed')}")
        elif 'rate' in r['kv'] and not num(r['kv'], 'rate'):
            bad.append(f"{r['c']} {r['w']}: rate 0")
        elif r['w'] in ('wake', 'wake-across') and \
                not num(r['kv'], 'p50_us'):
            bad.append(f"{r['c']} wake: no latency")
    for c, _ in CONTENDERS + REDIS_STORE:
        if not any(r['c'] == c and r['ok'] for r in res.rows):
            bad.append(f'{c}: no result at all')
    for w in SQS_WORKLOADS:
        if not any(r['c'] == 'spool-sqs' and r['w'] == w and r['ok']
                   for r in res.rows):
            bad.append(f'spoolfs SQS {w}: no result')
    for w in ('memory', 'memory-restart', 'restart', 'park', 'aging-fresh',
              'aging-old', 'memory-redis', 'lease', 'soak', 'listing',
              'wake-across'):
        if not any(r['w'] == w and r['ok'] for r in res.rows):
            bad.append(f'spoolfs {w}: no result')
    for b in bad:
        print(f'tools/bench --check: {b}')
    n = len(res.rows)
    print(f'bench: {n - len(bad)} passed, {len(bad)} failed')
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('results')
    ap.add_argument('--out')
    ap.add_argument('--png')
    ap.add_argument('--check', action='store_true')
    ap.add_argument('--mode', default='full')
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--secs', type=int, default=0)
    ap.add_argument('--duration', type=float, default=0)
    ap.add_argument('--lines', type=int, default=0)
    ap.add_argument('--cycles', type=int, default=0)
    ap.add_argument('--mem', type=int, default=0)
    ap.add_argument('--restart', type=int, default=0)
    ap.add_argument('--park', type=int, default=0)
    ap.add_argument('--sqs-only', action='store_true')
    ap.add_argument('--redis-only', action='store_true')
    ap.add_argument('--soak', type=float, default=0)
    ap.add_argument('--soak-n', type=int, default=0)
    ap.add_argument('--soak-settle', type=float, default=0)
    ap.add_argument('--list', type=int, default=0)
    args = ap.parse_args()
    res = Results(parse(args.results))
    if args.check:
        return check(res)
    if args.sqs_only:
        print('\n'.join(sqs_table(res)))
        return 0
    if args.redis_only:
        concs = sorted({r['conc'] for r in res.rows if r['w'] == 'create'})
        print('\n'.join(redis_store_section(res, concs)))
        print('\n'.join(wake_table(res)[:2] + wake_table(res)[-2:]))
        return 0

    sizes = sorted({r['size'] for r in res.rows if r['w'] == 'create'})
    # Columns: the concurrencies every contender ran (null FUSE's), not the
    # single-client floor that --quick measures for a few of them.
    concs = sorted({r['conc'] for r in res.rows
                    if r['w'] == 'create' and r['c'] == 'nullfs'}) or \
        sorted({r['conc'] for r in res.rows if r['w'] == 'create'})
    tg = targets(res, args)
    tput = throughput_table(res, sizes, concs)
    print('\n'.join(tput))
    print()
    print('\n'.join(target_table(tg)))
    print()
    print('\n'.join(redis_store_section(res, concs)))

    chart_err = chart(res, os.path.abspath(args.png)) if args.png else None
    when = datetime.datetime.now().strftime('%Y-%m-%d %H:%M')
    mode = {'quick': '`tools/bench --quick`', 'full': '`tools/bench`'}.get(
        args.mode, args.mode)
    met = sum(1 for t in tg if t[4] is True)
    missed = sum(1 for t in tg if t[4] is False)
    doc = [
        '# Performance',
        '',
        f'Measured by {mode} on {when}, in {args.secs} s: {args.runs} rounds; '
        f'each throughput figure is the rate over {args.duration} s of load.',
        f'Machine: {machine()}. The machine is shared with other jobs, so '
        'absolute numbers are noisy; the targets are ratios of figures '
        'measured side by side in the same round, and every figure is the '
        'median of the rounds with (min–max).',
        '',
        'Every contender is driven by the same C load generator '
        '(`tools/perf/loadgen.c`) over the same bodies: file operations '
        'through a mount (spoolfs, null FUSE) or a directory (maildir), '
        'beanstalkd\'s text protocol, and RESP for Redis, all on 127.0.0.1. '
        'Null FUSE (`tools/perf/nullfs.c`) accepts the same operations as '
        'spoolfs with the same mount options, cache timeouts and worker '
        'threads, and keeps nothing: the limit of the FUSE path here.',
        '',
        f'Summary: {met} targets met, {missed} missed, '
        f'{len(tg) - met - missed} not judged in this run.',
        '',
        '![messages/s per contender](performance.png)',
        '',
        '## Targets (issue 4)',
        '',
        *target_table(tg),
        '',
        '## Throughput, messages/s',
        '',
        'c = client threads. *new file / put*: spoolfs, null FUSE: '
        'create + write + close of a new name; maildir: write tmp/, rename '
        'into new/ (+ fsync of file and new/); beanstalkd: `put`; Redis: '
        '`LPUSH`. *push*: open + write + close of `MNT/q/push`. *consume*: '
        'spoolfs: read `next`, `fgetxattr user.spool.id`, unlink '
        '`leased/<id>`; null FUSE: the same operations; maildir: rename '
        'new/→cur/, read, unlink (+ fsync of cur/); beanstalkd: '
        '`reserve` + `delete`; Redis: `BLMOVE` + `LREM`. *lease*: open '
        '`next`, read, close (no xattr, no unlink: the lease alone; spoolfs '
        '`--sync none` and null FUSE only).',
        '',
        *tput,
        '',
        f'## Batch push: {args.lines:,} lines of 128 B',
        '',
        'spoolfs and null FUSE: 10,000 lines per open of `MNT/q/lines`; '
        'Redis: one `LPUSH` of 100 values; raw RocksDB: `rocks-batch`, one '
        'thread, WriteBatches of 100 puts, default options (the sync variant '
        f'writes {args.lines // 5:,}).',
        '',
        *lines_table(res),
        '',
        '## Push → parked reader wake-up latency',
        '',
        'One reader blocks on an empty queue (`read` of `next`, '
        '`reserve-with-timeout`, `BLMOVE`); 2 ms later a producer pushes a '
        'body carrying its start time; latency = arrival − push start '
        '(it includes the push\'s own fsync for the durable contenders).',
        '',
        *wake_table(res),
        '',
        '## The SQS endpoint against the files (issue 16)',
        '',
        'One spoolfs `--sync always --sqs PORT` per round; each workload '
        'through the files and through HTTP (AWS JSON 1.0, one keep-alive '
        'connection per client, the C load generator) one after the other '
        'on that daemon; ratios are per round, median (min–max).',
        '',
        *sqs_table(res),
        '',
        '## Lease rate after push/ack cycles, memory, restart, parked readers '
        '(spoolfs `--sync none`)',
        '',
        f'Aging: the same queue is measured {args.runs} times fresh, then '
        f'{args.runs} times after {args.cycles:,} push/ack cycles (push by '
        '`lines`, take by `pop`); ratio = aged ÷ fresh, pairwise. '
        f'Memory: VmRSS of the daemon before and after queueing '
        f'{args.mem:,} messages, and after a restart with them (a second '
        'after the mount is live); restart: the same store, launch to mount '
        f'live, with up to {args.restart:,} messages; parked readers: '
        f'{args.park:,} threads block on `next` of an empty queue of a fresh '
        'daemon, after its worker pool has been warmed by 16 producers; '
        'Threads and VmRSS from /proc/PID/status. Listing (target 9): '
        f'`ls` and `ls -l` of a peek/ holding {args.list:,} messages of '
        '128 B, each listing cold (as root, the kernel\'s dentries and '
        'inodes are dropped before it), ratio per round.',
        '',
        *store_table(res),
        '',
        *redis_store_section(res, concs),
    ]
    if chart_err:
        doc += [f'(No chart: {chart_err}.)', '']
    failures = [r for r in res.rows if not r['ok']]
    if failures:
        doc += ['## Failures in this run', '']
        for r in failures:
            doc.append(f"- round {r['round']}, {NAMES.get(r['c'], r['c'])}, "
                       f"{r['w']} {r['size']} B c={r['conc']}: "
                       f"{r['kv'].get('error', 'failed')}")
        doc.append('')
    doc += ['## Analysis', '', '<!-- analysis -->', '']
    if args.out:
        old = ''
        if os.path.exists(args.out):
            with open(args.out) as f:
                old = f.read()
        # Keep a hand-written analysis section across runs.
        m = re.search(r'<!-- analysis -->\n(.*)', old, re.S)
        text = '\n'.join(doc)
        if m:
            text = text.replace('<!-- analysis -->\n',
                                '<!-- analysis -->\n' + m.group(1).rstrip() +
                                '\n', 1)
        with open(args.out, 'w') as f:
            f.write(text.rstrip() + '\n')
        print(f'\nwrote {args.out}' + (f' and {args.png}' if args.png and
                                       not chart_err else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
