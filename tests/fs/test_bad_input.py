"""Bad input through the mount (issue 6): every entry with wrong operations
and garbage. Each case must fail with a clear errno (the table below; where
DESIGN.md names one, only that one), push or lose nothing, and leave the
daemon serving. docs/reliability.md lists the errno each case gives.

SPOOL_BAD_INPUT_TABLE=FILE writes the observed table (case, errno) there.
"""
import errno as E
import os
import stat

import pytest

from spoolutil import lease, read_file, stats, write_errno, write_file

MB = 1 << 20


def op_open(path, flags, mode=0o644):
    def f(ctx):
        fd = os.open(ctx.q / path if not str(path).startswith('/') else path,
                     flags, mode)
        try:
            if flags & os.O_ACCMODE == os.O_RDONLY:
                os.read(fd, 10)
        finally:
            os.close(fd)
    return f


def op_write(path, data, flags=os.O_TRUNC):
    """open, write all of data (a short write is followed by another, as
    cat does), close. Raises the first error; a refused write() must make
    close() fail with the same errno (DESIGN §4)."""
    def f(ctx):
        fd = os.open(ctx.q / path, os.O_WRONLY | flags, 0o644)
        first = None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as e:
            first = e
        try:
            os.close(fd)
        except OSError as e:
            if first is not None:
                assert e.errno == first.errno, (
                    'write() failed with %s, close() with %s'
                    % (E.errorcode[first.errno], E.errorcode[e.errno]))
            raise
        if first is not None:
            raise AssertionError('write() failed with %s but close() '
                                 'returned 0' % E.errorcode[first.errno])
    return f


def op_setxattr(path, name, value):
    return lambda ctx: os.setxattr(ctx.p(path), name, value)


class Ctx:
    def __init__(self, m):
        self.m = m
        self.q = m.q('jobs')

    def p(self, path):
        return str(path).format(**self.names) if '{' in str(path) \
            else self.q / path


def rename_exchange(a, b):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    RENAME_EXCHANGE = 2

    def f(ctx):
        r = libc.renameat2(-100, str(ctx.p(a)).encode(), -100,
                           str(ctx.p(b)).encode(), RENAME_EXCHANGE)
        if r != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    return f


def fallocate(path):
    """fallocate(2) itself: glibc's posix_fallocate would fall back to
    writing zeros."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long,
                               ctypes.c_long]

    def f(ctx):
        fd = os.open(ctx.p(path), os.O_WRONLY)
        try:
            if libc.fallocate(fd, 0, 0, 4096) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        finally:
            os.close(fd)
    return f


# Attributes of stored messages and queue directories are fixed: EPERM.
ANY_REFUSAL = {E.EPERM}

# (case, operation, errnos accepted). Paths are relative to the queue
# "jobs"; {peek}, {peek2}, {leased} and {draft} are existing entries.
CASES = [
    # Read-only entries refuse writing with EACCES (DESIGN §4).
    *[('open %s for writing' % e, op_open(e, os.O_WRONLY), {E.EACCES})
      for e in ('next', 'claim', 'pop', 'stats')],
    ('open .metrics for writing',
     lambda c: op_open(c.m.mnt / '.metrics', os.O_WRONLY)(c), {E.EACCES}),
    ('open peek/<id> for writing', lambda c: os.close(os.open(
        c.p('{peek}'), os.O_WRONLY)), {E.EACCES}),
    ('open leased/<id> read-write', lambda c: os.close(os.open(
        c.p('{leased}'), os.O_RDWR)), {E.EACCES}),
    # Write-only entries refuse reading (DESIGN §4).
    *[('open %s for reading' % e, op_open(e, os.O_RDONLY), {E.EACCES})
      for e in ('push', 'lines', 'ctl')],
    # mkdir in the wrong places.
    ('mkdir inside a queue', lambda c: os.mkdir(c.q / 'sub'), {E.EPERM}),
    ('mkdir inside peek/', lambda c: os.mkdir(c.q / 'peek' / 'sub'),
     {E.EPERM, E.EACCES}),
    ('mkdir a queue named .hidden', lambda c: os.mkdir(c.m.mnt / '.hidden'),
     {E.EINVAL, E.EPERM}),
    ('mkdir a queue with a bad byte', lambda c: os.mkdir(
        c.m.mnt / 'bad name!'), {E.EINVAL}),
    ('mkdir a queue with invalid UTF-8', lambda c: os.mkdir(
        os.fsencode(str(c.m.mnt)) + b'/q\xff\xfe'), {E.EINVAL}),
    ('mkdir a queue name of 201 bytes', lambda c: os.mkdir(
        c.m.mnt / ('x' * 201)), {E.EINVAL, E.ENAMETOOLONG}),
    ('mkdir a queue name of 256 bytes', lambda c: os.mkdir(
        c.m.mnt / ('x' * 256)), {E.ENAMETOOLONG, E.EINVAL}),
    ('mkdir an existing queue', lambda c: os.mkdir(c.q), {E.EEXIST}),
    ('create a file at the root', lambda c: write_file(
        c.m.mnt / 'file', b'x'), {E.EPERM, E.EACCES}),
    ('message name of 256 bytes', op_write('n' * 256, b'x',
                                           os.O_CREAT | os.O_TRUNC),
     {E.ENAMETOOLONG, E.EINVAL}),
    ('create a file in peek/', lambda c: write_file(
        c.q / 'peek' / 'new', b'x'), {E.EPERM, E.EACCES}),
    ('create a file in leased/', lambda c: write_file(
        c.q / 'leased' / 'new', b'x'), {E.EPERM, E.EACCES}),
    # xattrs.
    ('xattr over the kernel limit (1 MiB)', op_setxattr(
        '{draft}', 'user.big', b'v' * MB), {E.E2BIG}),
    ('trusted.* xattr on a draft', op_setxattr('{draft}', 'trusted.x', b'1'),
     {E.EPERM, E.EOPNOTSUPP, E.ENOTSUP}),
    ('security.* xattr on a draft', op_setxattr(
        '{draft}', 'security.x', b'1'), {E.EPERM, E.EOPNOTSUPP, E.ENOTSUP}),
    ('user.spool.priority not a number', op_setxattr(
        '{draft}', 'user.spool.priority', b'high'), {E.EINVAL}),
    ('user.spool.delay negative', op_setxattr(
        '{draft}', 'user.spool.delay', b'-1'), {E.EINVAL}),
    ('user.spool.priority binary', op_setxattr(
        '{draft}', 'user.spool.priority', b'\xff\x00'), {E.EINVAL}),
    ('setxattr on a stored message', op_setxattr(
        '{peek}', 'user.x', b'1'), ANY_REFUSAL),
    ('set user.spool.id on a message', op_setxattr(
        '{peek}', 'user.spool.id', b'x'), ANY_REFUSAL),
    ('setxattr on a queue directory', op_setxattr('.', 'user.x', b'1'),
     ANY_REFUSAL),
    ('getxattr of an unknown name', lambda c: os.getxattr(
        c.p('{peek}'), 'user.nope'), {E.ENODATA}),
    # truncate and fallocate on message files.
    ('truncate peek/<id>', lambda c: os.truncate(c.p('{peek}'), 0),
     {E.EACCES, E.EPERM}),
    ('truncate leased/<id>', lambda c: os.truncate(c.p('{leased}'), 1),
     {E.EACCES, E.EPERM}),
    ('truncate stats', lambda c: os.truncate(c.q / 'stats', 0),
     {E.EACCES, E.EPERM}),
    ('fallocate on a draft', fallocate('{draft}'),
     {E.EOPNOTSUPP, E.ENOTSUP}),
    # Renames that make no sense.
    ('RENAME_EXCHANGE of two messages', rename_exchange('{peek}', '{peek2}'),
     {E.EINVAL}),
    ('rename peek/<id> into delayed/', lambda c: os.rename(
        c.p('{peek}'), c.q / 'delayed' / os.path.basename(c.p('{peek}'))),
     {E.EINVAL, E.EPERM, E.EXDEV}),
    ('rename peek/<id> to another name', lambda c: os.rename(
        c.p('{peek}'), c.q / 'peek' / 'renamed'), {E.EINVAL, E.EPERM}),
    ('rename stats to a new name', lambda c: os.rename(
        c.q / 'stats', c.q / 'stats2'), {E.EPERM, E.EACCES, E.EINVAL}),
    ('rename a message out to the root', lambda c: os.rename(
        c.p('{peek}'), c.m.mnt / 'loose'), {E.EINVAL, E.EPERM, E.EXDEV}),
    ('rename over next', lambda c: os.rename(c.p('{draft}'), c.q / 'next'),
     {E.EPERM, E.EACCES, E.EINVAL, E.EEXIST}),
    ('rename peek/ itself', lambda c: os.rename(c.q / 'peek',
                                                c.q / 'peek2'),
     {E.EPERM, E.EACCES, E.EINVAL}),
    # Links and special files.
    ('symlink in a queue', lambda c: os.symlink('/etc/passwd', c.q / 'ln'),
     {E.EPERM}),
    ('symlink at the root', lambda c: os.symlink('x', c.m.mnt / 'ln'),
     {E.EPERM}),
    ('hard link of a message', lambda c: os.link(c.p('{peek}'),
                                                 c.q / 'hl'),
     {E.EPERM}),
    ('mknod a FIFO in a queue', lambda c: os.mkfifo(c.q / 'fifo'),
     {E.EPERM}),
    ('mknod a device in a queue', lambda c: os.mknod(
        c.q / 'dev', stat.S_IFCHR | 0o600, os.makedev(1, 3)),
     {E.EPERM}),
    # Garbage in config and ctl (all or nothing, EINVAL: DESIGN §6).
    ('config: binary garbage', op_write('config', b'\x00\xff\xfe=\x01\n'),
     {E.EINVAL}),
    ('config: invalid UTF-8 key', op_write('config', b'vis\xc3\x28=1\n'),
     {E.EINVAL}),
    ('config: unknown key', op_write('config', b'colour=blue\n'),
     {E.EINVAL}),
    ('config: a good key and a bad value', op_write(
        'config', b'priority=1\nvisibility_timeout=-3\n'), {E.EINVAL}),
    ('config: NUL inside a value', op_write('config', b'priority=1\x002\n'),
     {E.EINVAL}),
    ('config: 1 MiB of one line', op_write('config', b'p' * MB),
     {E.EINVAL, E.EFBIG}),
    ('ctl: binary garbage', op_write('ctl', b'\xff\xfe\x00\n'), {E.EINVAL}),
    ('ctl: unknown command', op_write('ctl', b'explode\n'), {E.EINVAL}),
    ('ctl: move to a bad queue name', op_write('ctl', b'move ../etc\n'),
     {E.EINVAL, E.ENOENT}),
    ('ctl: move to a missing queue', op_write('ctl', b'move nosuch\n'),
     {E.ENOENT}),
    ('ctl: move with a bad count', op_write('ctl', b'move jobs2 -5\n'),
     {E.EINVAL}),
    # Acks and deletes of things that are not there.
    ('unlink leased/<bad id>', lambda c: os.unlink(
        c.q / 'leased' / 'not-an-id'), {E.ENOENT}),
    ('unlink leased/<visible id>', lambda c: os.unlink(
        c.q / 'leased' / os.path.basename(c.p('{peek}'))), {E.ENOENT}),
    ('unlink stats', lambda c: os.unlink(c.q / 'stats'),
     {E.EPERM, E.EACCES}),
    ('rmdir peek/', lambda c: os.rmdir(c.q / 'peek'),
     {E.EPERM, E.EACCES, E.ENOTEMPTY, E.EBUSY}),
    ('rmdir a queue holding messages', lambda c: os.rmdir(c.q),
     {E.ENOTEMPTY}),
    # Lines: one line over max_size fails at write() with EFBIG (DESIGN §4)
    ('lines: one 100 MB line', op_write('lines', b'x' * (100 * MB)),
     {E.EFBIG}),
    ('new name: body over max_size', op_write('big', b'x' * (MB + 1),
                                              os.O_CREAT | os.O_TRUNC),
     {E.EFBIG}),
]


def chmod_message(c):
    os.chmod(c.p('{peek}'), 0o777)


CASES.append(('chmod a message file', chmod_message,
              {E.EPERM, E.EACCES, E.EINVAL}))


def snapshot(q):
    """Every message's body by id, in every state (nothing leased here)."""
    out = {}
    for sub in ('peek', 'delayed', 'leased'):
        for i in os.listdir(q / sub):
            out[i] = read_file(q / sub / i)
    return out


@pytest.mark.spool_timeout(600)
def test_bad_input_table(mount):
    m = mount
    c = Ctx(m)
    q = m.mkq('jobs', visibility_timeout=3600)
    m.mkq('jobs2')
    for i in range(4):
        write_file(q / ('m%d' % i), b'keep-%d' % i)
    mid, _ = lease(q)
    peek = sorted(os.listdir(q / 'peek'))
    c.names = dict(peek=str(q / 'peek' / peek[0]),
                   peek2=str(q / 'peek' / peek[1]),
                   leased=str(q / 'leased' / mid), draft=str(q / '.draft'))
    write_file(q / '.draft', b'draft body')
    before = snapshot(q)
    config = read_file(q / 'config')
    pushed = stats(q)['pushed_total']

    table, wrong = [], []
    for name, fn, want in CASES:
        try:
            fn(c)
            got = 0
        except OSError as e:
            got = e.errno
        table.append((name, got))
        if got not in want:
            wrong.append('%s: got %s, want %s' % (
                name, E.errorcode.get(got, got) if got else 'success',
                ' or '.join(sorted(E.errorcode[w] for w in want))))
        # The daemon is still up and serving, and nothing moved.
        assert m.proc.poll() is None, 'daemon died at: %s' % name
        assert snapshot(q) == before, 'messages changed at: %s' % name
        assert read_file(q / 'config') == config, 'config changed: %s' % name
        assert stats(q)['pushed_total'] == pushed, 'pushed at: %s' % name
        assert read_file(q / '.draft') == b'draft body', name

    path = os.environ.get('SPOOL_BAD_INPUT_TABLE')
    if path:
        with open(path, 'w') as f:
            for name, got in table:
                f.write('%s\t%s\n' % (name, E.errorcode.get(got, got)
                                      if got else 'success'))
    assert not wrong, '\n'.join(wrong)


def test_garbage_lines_become_messages_byte_for_byte(mount):
    """Bodies are bytes: invalid UTF-8, NULs and CRs pass through lines
    unchanged; empty lines are skipped."""
    q = mount.mkq('jobs')
    lines = [b'\xff\xfe\xfd', b'a\x00b', b'crlf\r', b'\xc3\x28', b' ']
    write_file(q / 'lines', b'\n'.join(lines) + b'\n\n\n', flags=os.O_TRUNC)
    got = [lease(q)[1] for _ in lines]
    assert got == lines
    assert lease(q) is None


@pytest.mark.spool_timeout(300)
def test_100_mb_write_to_lines_is_all_or_nothing(mount):
    """100 lines of 1 MB in one open file: either all are pushed at close,
    or the write or close fails with a clear errno and none is."""
    q = mount.mkq('jobs')
    line = b'y' * (MB - 1) + b'\n'
    err = write_errno(q / 'lines', [line] * 100)
    s = stats(q)
    if err is None:
        assert s['visible'] == 100 and s['bytes'] == 100 * (MB - 1), s
    else:
        assert err in (E.EFBIG, E.ENOMEM, E.E2BIG, E.ENOSPC), err
        assert s['visible'] == 0, s
    assert mount.proc.poll() is None
    write_file(q / 'after', b'ok')
    assert stats(q)['pushed_total'] == s['pushed_total'] + 1


def test_attributes_too_large_for_a_message(mount):
    """64 KiB of user.* attributes (over SPOOL_ATTRS_MAX with the name):
    either setxattr refuses them, or the rename that pushes the draft fails
    with a clear errno and the draft stays; never a half message."""
    q = mount.mkq('jobs')
    write_file(q / '.d', b'body')
    try:
        os.setxattr(q / '.d', 'user.big', b'v' * 65536)
    except OSError as e:
        assert e.errno in (E.E2BIG, E.ENOSPC, E.ERANGE, E.EINVAL), e
        return
    with pytest.raises(OSError) as e:
        os.rename(q / '.d', q / 'd')
    assert e.value.errno in (E.E2BIG, E.EINVAL, E.ENOSPC, E.EFBIG)
    assert stats(q)['pushed_total'] == 0
    assert read_file(q / '.d') == b'body'
    # Under the limit, the same draft pushes with its attribute.
    os.setxattr(q / '.d', 'user.big', b'v' * 1000)
    os.rename(q / '.d', q / 'd')
    mid = os.listdir(q / 'peek')[0]
    assert os.getxattr(q / 'peek' / mid, 'user.big') == b'v' * 1000
