"""DESIGN.md §4: producing with ordinary tools."""
import errno
import os
import random
import subprocess
import threading

import pytest

from spoolutil import (LISTED, bodies, errno_in_child, ids, pop, pop_all,
                       push, read_file, set_config, stats, wait_until,
                       write_file, xattr)


def only_body(q):
    """The body of the queue's only visible message."""
    b = bodies(q)
    assert len(b) == 1, b
    return b[0]


def test_echo_pushes_one_message_and_the_name_disappears(mount):
    q = mount.mkq('jobs')
    mount.sh('echo hi > jobs/anything')
    assert not os.path.exists(q / 'anything')
    assert set(os.listdir(q)) == LISTED
    s = stats(q)
    assert (s['visible'], s['pushed_total'], s['bytes']) == (1, 1, 3)
    assert only_body(q) == b'hi\n'
    i = ids(q)[0]
    assert xattr(q / 'peek' / i, 'user.spool.name') == 'anything'


def test_printf_binary_body(mount):
    q = mount.mkq('jobs')
    mount.sh(r"printf 'a\000b\377\n' > jobs/bin")
    assert only_body(q) == b'a\x00b\xff\n'


# An empty message is pushed at the last close (FUSE RELEASE), which the
# kernel sends just after close() returned: a FLUSH with nothing written
# cannot be told from the shell closing the first of two descriptors of a
# redirection (docs/decisions.md). So these tests wait a moment for it.
def wait_visible(q, n):
    return wait_until(lambda: stats(q)['visible'] >= n, timeout=3)


def test_empty_push(mount):
    """`: > q/x` pushes one message with an empty body."""
    q = mount.mkq('jobs')
    mount.sh(': > jobs/empty')
    assert wait_visible(q, 1)
    assert only_body(q) == b''


def test_touch_pushes_an_empty_message(mount):
    """§4 lists touch among the producers: a new file, closed, is one
    message whose content (possibly empty) is its body."""
    q = mount.mkq('jobs')
    mount.sh('touch jobs/t')
    assert wait_visible(q, 1)
    assert only_body(q) == b''
    assert not os.path.exists(q / 't')


def test_cp_many_files(mount, tmp_path):
    q = mount.mkq('jobs')
    src = tmp_path / 'src'
    src.mkdir()
    want = {}
    for i in range(100):
        body = ('file %d\n' % i).encode() * (i + 1)
        (src / ('f%03d' % i)).write_bytes(body)
        want['f%03d' % i] = body
    mount.sh('cp %s/* jobs/' % src)
    assert stats(q)['visible'] == 100
    got = {xattr(q / 'peek' / i, 'user.spool.name'):
           read_file(q / 'peek' / i) for i in ids(q)}
    assert got == want


def test_tee_to_two_names(mount):
    q = mount.mkq('jobs')
    mount.sh('printf hello | tee jobs/a jobs/b > /dev/null')
    assert sorted(bodies(q)) == [b'hello', b'hello']


@pytest.mark.parametrize('bs', [1000, 65536, 1 << 20])
def test_dd(mount, tmp_path, bs):
    q = mount.mkq('jobs')
    data = random.Random(bs).randbytes(300000)
    (tmp_path / 'src').write_bytes(data)
    mount.sh('dd if=%s of=jobs/d bs=%d status=none' % (tmp_path / 'src', bs))
    assert only_body(q) == data


def test_body_of_exactly_max_size(mount, tmp_path):
    """The default max_size is 1 MiB; such a body arrives in several FUSE
    writes and must come out whole."""
    q = mount.mkq('jobs')
    data = random.Random(1).randbytes(1048576)
    (tmp_path / 'big').write_bytes(data)
    mount.sh('cp %s jobs/big' % (tmp_path / 'big'))
    assert only_body(q) == data
    assert os.stat(q / 'peek' / ids(q)[0]).st_size == 1048576


def test_efbig_at_write_and_close_nothing_pushed(mount):
    q = mount.mkq('jobs', max_size=1000)
    fd = os.open(q / 'big', os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        assert os.write(fd, b'x' * 1000) == 1000
        with pytest.raises(OSError) as e:
            os.write(fd, b'y')
        assert e.value.errno == errno.EFBIG
    finally:
        with pytest.raises(OSError) as e:
            os.close(fd)
        assert e.value.errno == errno.EFBIG
    s = stats(q)
    assert (s['visible'], s['pushed_total']) == (0, 0)
    # The shell sees the failure too.
    r = mount.sh('head -c 2000 /dev/zero > jobs/big2', check=False)
    assert r.returncode != 0
    assert stats(q)['pushed_total'] == 0
    # Exactly max_size is fine.
    push(q, b'z' * 1000)
    assert only_body(q) == b'z' * 1000


def test_rsync_pushes_through_dot_temp_and_rename(mount, tmp_path):
    q = mount.mkq('jobs')
    files = {}
    for n in ('alpha', 'beta', 'gamma'):
        files[n] = (n * 1000).encode()
        (tmp_path / n).write_bytes(files[n])
    mount.sh('rsync -a %s %s %s jobs/' % tuple(tmp_path / n for n in files))
    got = {xattr(q / 'peek' / i, 'user.spool.name'):
           read_file(q / 'peek' / i) for i in ids(q)}
    assert got == files
    assert set(os.listdir(q)) == LISTED, 'rsync left a temp file behind'
    # The names are free again, so a second run pushes again.
    mount.sh('rsync -a %s jobs/' % (tmp_path / 'alpha'))
    assert stats(q)['visible'] == 4


def test_draft_is_a_file_until_renamed(mount):
    q = mount.mkq('jobs')
    mount.sh('echo one > jobs/.d && echo two >> jobs/.d')
    assert read_file(q / '.d') == b'one\ntwo\n'
    assert os.stat(q / '.d').st_size == 8
    assert '.d' in os.listdir(q)
    assert stats(q)['visible'] == 0
    os.truncate(q / '.d', 4)
    assert read_file(q / '.d') == b'one\n'
    mount.sh('mv jobs/.d jobs/final')
    assert not os.path.exists(q / '.d')
    assert not os.path.exists(q / 'final')
    assert set(os.listdir(q)) == LISTED
    assert stats(q)['visible'] == 1
    i = ids(q)[0]
    assert read_file(q / 'peek' / i) == b'one\n'
    assert xattr(q / 'peek' / i, 'user.spool.name') == 'final'


def test_draft_unlinked_pushes_nothing(mount):
    q = mount.mkq('jobs')
    mount.sh('echo x > jobs/.d && rm jobs/.d')
    assert set(os.listdir(q)) == LISTED
    assert stats(q)['pushed_total'] == 0


def test_draft_o_excl_is_eexist(mount):
    q = mount.mkq('jobs')
    write_file(q / '.d', b'x')
    with pytest.raises(OSError) as e:
        os.open(q / '.d', os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    assert e.value.errno == errno.EEXIST


def test_o_excl_on_a_name_being_written(mount):
    q = mount.mkq('jobs')
    fd = os.open(q / 'x', os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        with pytest.raises(OSError) as e:
            os.open(q / 'x', os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        assert e.value.errno == errno.EEXIST
        os.write(fd, b'first')
    finally:
        os.close(fd)
    # Pushed: the name is free again for every other process (its pusher
    # still resolves it for a few seconds: DESIGN §4, "After close()").
    def second():
        fd = os.open(q / 'x', os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        os.write(fd, b'second')
        os.close(fd)
    assert errno_in_child(second) == 0
    assert bodies(q) == [b'first', b'second']


def test_draft_xattrs_set_priority_and_attributes(mount):
    q = mount.mkq('jobs')
    for body, prio in (('low', None), ('high', 5), ('mid', 1)):
        cmd = 'echo %s > jobs/.m' % body
        if prio is not None:
            cmd += ' && setfattr -n user.spool.priority -v %d jobs/.m' % prio
        cmd += ' && setfattr -n user.color -v blue jobs/.m && mv jobs/.m jobs/m'
        mount.sh(cmd)
    i = ids(q)
    assert [xattr(q / 'peek' / x, 'user.spool.priority') for x in i] == \
        ['5', '1', '0']
    assert xattr(q / 'peek' / i[0], 'user.color') == 'blue'
    r = mount.sh('getfattr -n user.color --only-values jobs/peek/%s' % i[0])
    assert r.stdout == b'blue'
    assert pop_all(q) == [b'high\n', b'mid\n', b'low\n']


def test_draft_delay_xattr(mount):
    q = mount.mkq('jobs')
    mount.sh('echo later > jobs/.m && setfattr -n user.spool.delay -v 1 '
             'jobs/.m && mv jobs/.m jobs/m')
    s = stats(q)
    assert (s['visible'], s['delayed']) == (0, 1)
    assert len(ids(q, 'delayed')) == 1
    assert pop(q) is None
    assert wait_until(lambda: stats(q)['visible'] == 1, timeout=5)
    assert stats(q)['delayed'] == 0
    assert pop(q) == b'later\n'


def test_fsetxattr_on_a_new_name_before_close(mount):
    """The write handle answers setxattr before close (cp --preserve=xattr
    and programs using fsetxattr do this)."""
    q = mount.mkq('jobs')
    fd = os.open(q / 'x', os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, b'body')
    os.setxattr(fd, 'user.spool.priority', b'7')
    os.setxattr(fd, 'user.trace', b'abc')
    os.close(fd)
    i = ids(q)[0]
    assert xattr(q / 'peek' / i, 'user.spool.priority') == '7'
    assert xattr(q / 'peek' / i, 'user.trace') == 'abc'


def test_cp_preserve_xattr_from_a_draft(mount):
    q = mount.mkq('jobs')
    mount.sh('echo b > jobs/.src && setfattr -n user.spool.priority -v 3 '
             'jobs/.src && setfattr -n user.k -v v jobs/.src && '
             'cp --preserve=xattr jobs/.src jobs/dst')
    i = ids(q)
    assert len(i) == 1
    assert xattr(q / 'peek' / i[0], 'user.spool.priority') == '3'
    assert xattr(q / 'peek' / i[0], 'user.k') == 'v'


def test_lines_10000_messages_atomically(mount):
    q = mount.mkq('jobs')
    fd = os.open(q / 'lines', os.O_WRONLY | os.O_TRUNC)
    try:
        for chunk in range(10):
            os.write(fd, b''.join(b'%d\n' % i for i in
                                  range(chunk * 1000, chunk * 1000 + 1000)))
            # Nothing is pushed before close: all or none.
            assert stats(q)['visible'] == 0
    finally:
        os.close(fd)
    want = [b'%d' % i for i in range(10000)]
    s = stats(q)
    assert (s['visible'], s['pushed_total'], s['bytes']) == \
        (10000, 10000, sum(map(len, want)))
    # Every 7th body and the last ones, through peek/ in delivery order
    # (reading all 10,000 costs more time than it adds certainty).
    i = ids(q)
    assert len(i) == 10000
    sample = list(range(0, 10000, 7)) + list(range(9900, 10000))
    assert [read_file(q / 'peek' / i[k]) for k in sample] == \
        [want[k] for k in sample]


def test_lines_skips_empty_lines_and_counts_final_line(mount):
    q = mount.mkq('jobs')
    mount.sh(r"printf 'a\n\nb\n\n\nc' > jobs/lines")
    assert pop_all(q) == [b'a', b'b', b'c']
    mount.sh('seq 3 > jobs/lines')
    assert pop_all(q) == [b'1', b'2', b'3']


def test_lines_all_or_none_on_error(mount):
    """One line over max_size spoils the whole write session. A line is
    only known to be too long once it ends, so the EFBIG may come at
    write() or at close(); either way close() fails and nothing is
    pushed."""
    q = mount.mkq('jobs', max_size=10)
    fd = os.open(q / 'lines', os.O_WRONLY | os.O_TRUNC)
    write_err = close_err = None
    try:
        os.write(fd, b'ok1\nok2\n')
        os.write(fd, b'x' * 20 + b'\n')
        os.write(fd, b'ok3\n')
    except OSError as e:
        write_err = e.errno
    try:
        os.close(fd)
    except OSError as e:
        close_err = e.errno
    assert write_err in (None, errno.EFBIG)
    assert close_err == errno.EFBIG
    assert stats(q)['pushed_total'] == 0


@pytest.mark.parametrize('shell', ['sh', 'bash'])
def test_group_with_inherited_fd_is_one_message(mount, shell):
    """{ /bin/echo a; /bin/echo b; } > q/x: two children write through the
    shell's descriptor; their exits do not end the message."""
    q = mount.mkq('jobs')
    subprocess.run([shell, '-c', '{ /bin/echo a; /bin/echo b; } > jobs/x'],
                   cwd=mount.mnt, check=True, timeout=30)
    assert stats(q)['visible'] == 1
    assert only_body(q) == b'a\nb\n'


def test_subshell_is_one_message(mount):
    q = mount.mkq('jobs')
    mount.sh('(/bin/echo one; /bin/echo two; /bin/echo three) > jobs/x')
    assert bodies(q) == [b'one\ntwo\nthree\n']


def test_bytes_after_openers_close_become_one_more_message(mount):
    """The opener closes while a child still holds the descriptor: the
    opener's close pushes what was written so far, the child's bytes become
    one more message at the last close. Nothing written is dropped."""
    q = mount.mkq('jobs')
    r = mount.sh('exec 3>jobs/x; echo early >&3; '
                 '(sleep 0.5; echo late >&3) & '
                 'exec 3>&-; cat jobs/stats; wait')
    assert b'visible=1\n' in r.stdout, r.stdout
    assert wait_until(lambda: stats(q)['visible'] == 2, timeout=5)
    assert bodies(q) == [b'early\n', b'late\n']


def test_push_visible_in_stats_when_close_returns(mount):
    q = mount.mkq('jobs')
    for n in range(1, 51):
        push(q, b'm%d' % n)
        assert stats(q)['visible'] == n
    r = mount.sh('for i in 1 2 3 4 5; do echo $i > jobs/x; '
                 'grep ^visible= jobs/stats; done')
    assert r.stdout == b''.join(b'visible=%d\n' % n for n in range(51, 56))


@pytest.mark.parametrize('opener', ['main', 'thread'])
def test_close_on_another_thread(mount, opener):
    """Go opens and closes on different threads: the push is still
    committed by the time close() returns."""
    q = mount.mkq('jobs')
    box = {}

    def do_open():
        box['fd'] = os.open(q / 'x', os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(box['fd'], b'threaded')

    def do_close():
        os.close(box['fd'])

    for n in range(1, 11):
        if opener == 'main':
            do_open()
            t = threading.Thread(target=do_close)
            t.start()
            t.join()
        else:
            t = threading.Thread(target=do_open)
            t.start()
            t.join()
            do_close()
        assert stats(q)['visible'] == n
    assert set(bodies(q)) == {b'threaded'}


def test_push_entry(mount):
    q = mount.mkq('jobs')
    mount.sh('echo one > jobs/push && echo two > jobs/push && '
             'printf three >> jobs/push')
    assert bodies(q) == [b'one\n', b'two\n', b'three']
    assert set(os.listdir(q)) == LISTED


# The kernel keeps the control entries' attributes for a second and grows
# its idea of their size with each write; >> then writes at that stale
# end. push, lines, config and ctl take no holes: such a write appends.
def test_append_after_write_takes_no_hole(mount):
    q = mount.mkq('jobs')
    mount.sh('printf "a\\nb\\n" > jobs/lines && printf "c\\nd\\n" >> jobs/lines')
    mount.sh('echo priority=3 > jobs/config && echo max_receives=4 >> jobs/config')
    cfg = mount.config('jobs')
    assert (cfg['priority'], cfg['max_receives']) == ('3', '4')
    assert sorted(bodies(q)) == [b'a', b'b', b'c', b'd']
    mount.sh('echo purge > jobs/ctl && echo purge >> jobs/ctl')
    assert stats(q)['visible'] == 0
    mount.sh('printf 0123456789 > jobs/push && printf xy >> jobs/push')
    assert bodies(q) == [b'0123456789', b'xy']
    # An explicit offset past the end of push is an append too.
    fd = os.open(q / 'push', os.O_WRONLY)
    os.pwrite(fd, b'head', 0)
    os.pwrite(fd, b'tail', 100)
    os.close(fd)
    assert bodies(q)[-1] == b'headtail'


# O_TRUNC on every writable entry: the shell's > uses it.
@pytest.mark.parametrize('entry', ['new-name', '.draft', 'push', 'lines',
                                   'config', 'ctl'])
def test_o_trunc_on_writable_entries(mount, entry):
    q = mount.mkq('jobs')
    if entry == '.draft':
        write_file(q / '.draft', b'old content')
    before = read_file(q / 'config')
    fd = os.open(q / entry, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.close(fd)
    if entry == '.draft':
        assert read_file(q / '.draft') == b''
    if entry in ('new-name', 'push'):
        assert wait_visible(q, 1)
        assert bodies(q) == [b'']   # an empty message, as `: > q/x`
    if entry in ('lines', 'config', 'ctl'):
        assert stats(q)['pushed_total'] == 0
        assert read_file(q / 'config') == before
    # And through the shell, with content.
    if entry == 'config':
        mount.sh('echo priority=2 > jobs/config')
        assert mount.config()['priority'] == '2'
    if entry == 'lines':
        mount.sh('echo l > jobs/lines')
        assert pop(q) == b'l'


READ_ONLY = ['next', 'claim', 'pop', 'stats', 'peek/', 'delayed/', 'leased/']


@pytest.mark.parametrize('entry', READ_ONLY)
@pytest.mark.parametrize('flags', [os.O_WRONLY, os.O_RDWR,
                                   os.O_WRONLY | os.O_TRUNC],
                         ids=['wronly', 'rdwr', 'wronly-trunc'])
def test_read_only_entries_refuse_writing(mount, entry, flags):
    """EACCES, also for root: these tests run as root in CI, where the
    kernel's mode check lets root through, so the daemon must refuse."""
    q = mount.mkq('jobs', visibility_timeout=60, delay=0)
    push(q, b'a')
    set_config(q, delay=60)
    push(q, b'b')
    set_config(q, delay=0)
    push(q, b'c')
    fd = os.open(q / 'next', os.O_RDONLY)
    os.read(fd, 10)          # leases 'a'
    os.close(fd)
    before = stats(q)
    path = q / entry
    if entry.endswith('/'):
        path = path / ids(q, entry[:-1])[0]
    with pytest.raises(OSError) as e:
        os.open(path, flags)
    assert e.value.errno == errno.EACCES
    after = stats(q)
    del before['oldest_visible_age_ms'], after['oldest_visible_age_ms']
    assert after == before


@pytest.mark.parametrize('entry', ['push', 'lines', 'ctl'])
def test_write_only_entries_refuse_reading(mount, entry):
    q = mount.mkq('jobs')
    for flags in (os.O_RDONLY, os.O_RDWR):
        with pytest.raises(OSError) as e:
            os.open(q / entry, flags)
        assert e.value.errno == errno.EACCES, flags


def test_shell_write_to_next_fails(mount):
    q = mount.mkq('jobs')
    push(q, b'x')
    r = mount.sh('echo hi > jobs/next', check=False)
    assert r.returncode != 0
    s = stats(q)
    assert (s['visible'], s['leased'], s['pushed_total']) == (1, 0, 1)
