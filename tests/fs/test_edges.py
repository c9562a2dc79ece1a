"""Holes found with the damage round of issue 11: lease times at the edges
of what touch -d can say, numbers in config, a store on a filesystem of a
few MB."""
import errno
import os
import subprocess
import time

import pytest

from spoolutil import claim, config, push, read_file, set_config, stats, \
    wait_until


@pytest.mark.parametrize('when', ['1969-12-31', '@0', '@-1', '@-100000000000'])
def test_touch_d_at_or_before_the_epoch_releases(mount, when):
    """A time at or before now releases the message; a negative one was
    taken for a heartbeat and extended the lease instead."""
    q = mount.mkq('jobs', visibility_timeout=30)
    push(q, b'x')
    mid = claim(q)
    mount.sh("TZ=UTC touch -d '%s' jobs/leased/%s" % (when, mid))
    assert wait_until(lambda: stats(q)['visible'] == 1, timeout=3)
    s = stats(q)
    assert (s['visible'], s['leased']) == (1, 0), s
    assert os.listdir(q / 'leased') == []


def test_touch_d_far_future_saturates(mount):
    """The largest time touch can give keeps the lease as late as can be
    held, not a 30 s heartbeat (the ms product overflowed)."""
    q = mount.mkq('jobs', visibility_timeout=30)
    push(q, b'x')
    mid = claim(q)
    mount.sh('touch -d @9223372036854775807 jobs/leased/%s' % mid)
    st = os.stat(q / 'leased' / mid)
    # far beyond any heartbeat: more than 100 years from now
    assert st.st_mtime > time.time() + 100 * 365 * 86400, st.st_mtime
    s = stats(q)
    assert (s['visible'], s['leased']) == (0, 1)
    mount.remount()
    assert os.listdir(q / 'leased') == [mid]
    assert os.stat(q / 'leased' / mid).st_mtime_ns == st.st_mtime_ns


@pytest.mark.parametrize('line', [
    'visibility_timeout=0x10', 'visibility_timeout=1e3',
    'visibility_timeout=nan', 'visibility_timeout=inf', 'delay=+5',
    'retention=16abc', 'receive_wait=0x10', 'max_size=0x10',
    'dedup_window=1.5.0'])
def test_config_numbers_are_decimal(mount, line):
    q = mount.mkq('jobs')
    before = config(q)
    with pytest.raises(OSError) as e:
        set_config(q, **dict([line.split('=', 1)]))
    assert e.value.errno == errno.EINVAL
    assert config(q) == before
    # printf(1) into config the way a shell user writes it: refused too
    r = mount.sh("env printf '%s\\n' > jobs/config" % line, check=False)
    assert r.returncode != 0 and b'Invalid argument' in r.stderr, r
    assert config(q) == before


def test_config_decimal_fractions_still_accepted(mount):
    q = mount.mkq('jobs')
    set_config(q, visibility_timeout='2.5', delay='.5', receive_wait='inf')
    c = config(q)
    assert (c['visibility_timeout'], c['delay'], c['receive_wait']) == \
        ('2.5', '0.5', 'inf')
