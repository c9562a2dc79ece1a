"""Everyday tools, run as new users run them (issue 12; DESIGN §2 crawler
safety and rm -rf, §3 stable inode numbers, §4 after close(), errors before
close(), size while writing, draft directories, §12 statfs).

Each test runs the real program (coreutils, findutils, grep, tar, zip,
rsync, sed, perl, node, Python's shutil/tempfile/pathlib) and asserts its
exit status and the exact outcome: a crawl changes no queue (stats,
listings, receive counts) and ends although an empty queue with
receive_wait=inf sits beside it, and its copy holds every body and the
config and stats text; a producer call pushes exactly one message with the
right body and user.spool.name; a copy out of the mount holds the body.
A missing program fails the test (it is installed by tools/test).
"""
import errno
import os
import shutil
import subprocess
import time

import pytest

from spoolutil import (bodies, claim, ids, lease, parse_kv, read_file,
                       set_config, stats, write_file, xattr)

TOOLS = ('grep', 'find', 'cp', 'sha256sum', 'md5sum', 'tar', 'zip',
         'unzip', 'rsync', 'install', 'truncate', 'fallocate', 'head',
         'sed', 'perl', 'node', 'df', 'rm', 'ls', 'du', 'stat', 'mv')
PY = '/usr/bin/python3'


def need(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    assert not missing, 'not installed (tools/test installs them): %s' % (
        ' '.join(missing))


def run(cmd, cwd, timeout=60, shell='sh', **kw):
    """Runs a shell command line; a hang fails the test (TimeoutExpired)."""
    return subprocess.run([shell, '-c', cmd], cwd=str(cwd), timeout=timeout,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, **kw)


def ok(r):
    assert r.returncode == 0, 'exit %d\nstdout: %r\nstderr: %r' % (
        r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    return r


def py(code, cwd, *args):
    return run(' '.join([PY, '-c', shq(code)] + [shq(a) for a in args]),
               cwd)


def shq(s):
    return "'" + str(s).replace("'", "'\\''") + "'"


# ------------------------------------------------------------------ crawl

def without_age(s):
    return {k: v for k, v in s.items() if k != 'oldest_visible_age_ms'}


def state(m):
    """What a crawl must not change: each queue's stats (the age of its
    oldest message aside), its listings and every receive count."""
    out = {}
    for name in sorted(os.listdir(m.mnt)):
        if name.startswith('.'):
            continue
        q = m.mnt / name
        lists = {sub: sorted((i, xattr(q / sub / i, 'user.spool.receives'))
                             for i in os.listdir(q / sub))
                 for sub in ('peek', 'delayed', 'leased')}
        out[name] = (without_age(stats(q)), lists)
    return out


def crawl_setup(m):
    """jobs: 4 visible, 1 leased, 1 delayed, a draft; empty: nothing, and
    receive_wait=inf (the default), so a read of its next would block."""
    q = m.mkq('jobs', visibility_timeout=3600)
    for i in range(5):
        write_file(q / ('m%d' % i), b'secret %d\n' % i)
    lease(q)
    write_file(q / '.later', b'secret later\n')
    os.setxattr(q / '.later', 'user.spool.delay', b'3600')
    os.rename(q / '.later', q / 'later')
    write_file(q / '.draft', b'a draft\n')
    e = m.mkq('empty')
    assert m.config('empty')['receive_wait'] == 'inf'
    assert (stats(q)['visible'], stats(q)['leased'],
            stats(q)['delayed']) == (4, 1, 1)
    # The oldest message's age (in stats and .metrics) then keeps its
    # number of digits for the few seconds of the crawl, so their sizes
    # stay those a stat gave (tar checks that a file did not change).
    time.sleep(1.2)
    return q, e


def all_bodies(q):
    return sorted(b for sub in ('peek', 'delayed', 'leased')
                  for b in bodies(q, sub))


def check_copy(m, dst):
    """dst holds a copy of the mount: every body, config and stats text,
    the draft, and none of the entries that take or wait."""
    for name in ('jobs', 'empty'):
        q, c = m.mnt / name, dst / name
        assert sorted(os.listdir(c)) == sorted(os.listdir(q))
        assert (c / 'config').read_bytes() == read_file(q / 'config')
        assert without_age(parse_kv((c / 'stats').read_text())) == \
            without_age(parse_kv(read_file(q / 'stats').decode()))
        for sub in ('peek', 'delayed', 'leased'):
            assert sorted(os.listdir(c / sub)) == sorted(ids(q, sub))
            for i in ids(q, sub):
                assert (c / sub / i).read_bytes() == read_file(q / sub / i)
        for hidden in ('next', 'claim', 'pop', 'push', 'lines', 'ctl'):
            assert not (c / hidden).exists()
    assert (dst / 'jobs' / '.draft').read_bytes() == b'a draft\n'
    assert b'spoolfs_visible{queue="jobs"} 4' in \
        (dst / '.metrics').read_bytes()


def crawl(m, cmd, cwd=None):
    before = state(m)
    r = run(cmd, cwd or m.mnt)
    assert state(m) == before, 'the crawl changed a queue: %s' % cmd
    return r


def test_grep_r_changes_nothing(mount):
    need('grep')
    q, _ = crawl_setup(mount)
    r = ok(crawl(mount, 'grep -r secret .'))
    lines = sorted(r.stdout.decode().splitlines())
    want = sorted('./jobs/%s/%s:%s' % (sub, i, read_file(
        q / sub / i).decode().strip()) for sub in ('peek', 'delayed',
                                                  'leased')
        for i in ids(q, sub))
    assert lines == want and len(lines) == 6


def test_find_exec_grep_changes_nothing(mount):
    need('find', 'grep')
    q, _ = crawl_setup(mount)
    r = ok(crawl(mount, 'find . -type f -exec grep -l secret {} +'))
    assert len(r.stdout.splitlines()) == 6


def test_ls_lR_and_du_change_nothing(mount):
    need('ls', 'du')
    crawl_setup(mount)
    r = ok(crawl(mount, 'ls -laR .'))
    for hidden in (b' next\n', b' claim\n', b' pop\n', b' push\n'):
        assert hidden not in r.stdout
    ok(crawl(mount, 'du -a .'))


def test_checksums_of_a_queue_change_nothing(mount):
    need('sha256sum', 'md5sum')
    q, _ = crawl_setup(mount)
    # q/* holds peek/, delayed/, leased/: "Is a directory", exit 1.
    r = crawl(mount, 'sha256sum jobs/*')
    assert r.returncode == 1
    err = r.stderr.decode().splitlines()
    assert len(err) == 3 and all('Is a directory' in e for e in err), err
    assert [ln.split()[1] for ln in r.stdout.decode().splitlines()] == \
        ['jobs/config', 'jobs/stats']
    r = ok(crawl(mount, 'md5sum jobs/peek/* jobs/leased/* jobs/delayed/*'))
    assert len(r.stdout.splitlines()) == 6


def test_cp_r_backup_changes_nothing_and_holds_everything(mount, tmp_path):
    need('cp')
    crawl_setup(mount)
    ok(crawl(mount, 'cp -r . %s' % (tmp_path / 'bk')))
    check_copy(mount, tmp_path / 'bk')


def test_cp_a_backup(mount, tmp_path):
    need('cp')
    crawl_setup(mount)
    ok(crawl(mount, 'cp -a . %s' % (tmp_path / 'bk')))
    check_copy(mount, tmp_path / 'bk')


def test_tar_of_the_mount(mount, tmp_path):
    need('tar')
    crawl_setup(mount)
    ok(crawl(mount, 'tar -cf %s .' % (tmp_path / 'a.tar')))
    (tmp_path / 'x').mkdir()
    ok(run('tar -xf %s' % (tmp_path / 'a.tar'), tmp_path / 'x'))
    check_copy(mount, tmp_path / 'x')


def test_zip_of_the_mount(mount, tmp_path):
    need('zip', 'unzip')
    crawl_setup(mount)
    ok(crawl(mount, 'zip -qr %s .' % (tmp_path / 'a.zip')))
    (tmp_path / 'x').mkdir()
    ok(run('unzip -q %s' % (tmp_path / 'a.zip'), tmp_path / 'x'))
    check_copy(mount, tmp_path / 'x')


def test_rsync_of_the_mount(mount, tmp_path):
    need('rsync')
    crawl_setup(mount)
    ok(crawl(mount, 'rsync -a ./ %s/' % (tmp_path / 'bk')))
    check_copy(mount, tmp_path / 'bk')


def test_python_copytree_and_walk(mount, tmp_path):
    crawl_setup(mount)
    ok(crawl(mount, '%s -c %s' % (PY, shq(
        'import shutil, sys; shutil.copytree(".", sys.argv[1])'))
        + ' ' + str(tmp_path / 'bk')))
    check_copy(mount, tmp_path / 'bk')
    r = ok(crawl(mount, '%s -c %s' % (PY, shq(
        'import os, pathlib\n'
        'n = 0\n'
        'for d, _, fs in os.walk("."):\n'
        '    for f in fs:\n'
        '        n += len(pathlib.Path(d, f).read_bytes()) > 0\n'
        'print(n)'))))
    # 6 bodies, 2 config, 2 stats, .draft, .metrics
    assert r.stdout == b'12\n'


def test_node_cp_recursive(mount, tmp_path):
    need('node')
    crawl_setup(mount)
    ok(crawl(mount, 'node -e %s %s' % (shq(
        'require("fs").cpSync(".", process.argv[1], {recursive: true})'),
        tmp_path / 'bk')))
    check_copy(mount, tmp_path / 'bk')


def test_perl_file_find_reads_everything(mount):
    need('perl')
    crawl_setup(mount)
    r = ok(crawl(mount, 'perl -MFile::Find -e %s' % shq(
        'my $n = 0; find(sub { return unless -f; open(my $f, "<", $_) '
        'or die "$_: $!"; local $/; my $b = <$f>; $n++ if $b =~ /secret/; '
        '}, "."); print "$n\\n"')))
    assert r.stdout == b'6\n'


# ------------------------------------------------------- copying out

def test_cp_a_message_out(mount, tmp_path):
    need('cp')
    q = mount.mkq('jobs', visibility_timeout=3600)
    write_file(q / 'a', b'body of a\n')
    write_file(q / 'b', b'body of b\n')
    write_file(q / 'c', b'body of c\n')
    mid = sorted(ids(q))[0]
    ok(run('cp jobs/peek/%s %s' % (mid, tmp_path / 'x'), mount.mnt))
    assert (tmp_path / 'x').read_bytes() == b'body of a\n'
    # st_ino is the message's for its whole life, under any listing.
    ino = os.stat(q / 'peek' / mid).st_ino
    assert os.stat(q / 'peek' / mid).st_ino == ino
    cid = claim(q)
    assert cid == mid
    assert os.stat(q / 'leased' / cid).st_ino == ino
    ok(run('cp "jobs/leased/%s" %s' % (cid, tmp_path / 'work.json'),
           mount.mnt))
    assert (tmp_path / 'work.json').read_bytes() == b'body of a\n'
    # next: cp leases the next message and copies its body.
    ok(run('cp jobs/next %s' % (tmp_path / 'job.json'), mount.mnt))
    assert (tmp_path / 'job.json').read_bytes() == b'body of b\n'
    assert os.stat(q / 'next').st_ino == os.stat(q / 'next').st_ino
    s = stats(q)
    assert (s['visible'], s['leased']) == (1, 2)


def test_cp_preserve_xattr_into_another_queue(mount):
    need('cp')
    q = mount.mkq('jobs')
    o = mount.mkq('other')
    write_file(q / '.m', b'traced\n')
    os.setxattr(q / '.m', 'user.trace', b'abc')
    os.rename(q / '.m', q / 'm')
    (mid,) = ids(q)
    ok(run('cp --preserve=xattr jobs/peek/%s other/' % mid, mount.mnt))
    (oid,) = ids(o)
    assert read_file(o / 'peek' / oid) == b'traced\n'
    assert xattr(o / 'peek' / oid, 'user.spool.name') == mid
    assert xattr(o / 'peek' / oid, 'user.trace') == 'abc'
    assert stats(q)['visible'] == 1


# ---------------------------------------------------------- producers

def one_message(q, body, name):
    s = stats(q)
    assert (s['visible'], s['pushed_total']) == (1, 1), s
    (mid,) = ids(q)
    assert read_file(q / 'peek' / mid) == body
    assert xattr(q / 'peek' / mid, 'user.spool.name') == name


@pytest.fixture
def src(tmp_path):
    p = tmp_path / 'report.json'
    p.write_bytes(b'{"n": 1}\n')
    os.setxattr(p, 'user.origin', b'test')
    return p


PRODUCERS = {
    'cp': 'cp {src} jobs/out',
    'cp -p': 'cp -p {src} jobs/out',
    'cp --preserve=all': 'cp --preserve=all {src} jobs/out',
    'install -m 644': 'install -m 644 {src} jobs/out',
    'install -D': 'install -D -m 600 {src} jobs/out',
    'rsync --inplace': 'rsync --inplace {src} jobs/out',
    'rsync -t --inplace': 'rsync -t --inplace {src} jobs/out',
    'rsync -t': 'rsync -t {src} jobs/out',
    'rsync --delay-updates': 'rsync -t --delay-updates {src} jobs/out',
    'dd': 'dd if={src} of=jobs/out status=none',
    'tee': 'tee jobs/out < {src} > /dev/null',
    'shutil.copy': PY + ' -c "import shutil,sys; '
                        'shutil.copy(sys.argv[1], \'jobs/out\')" {src}',
    'shutil.copy2': PY + ' -c "import shutil,sys; '
                         'shutil.copy2(sys.argv[1], \'jobs/out\')" {src}',
    'shutil.copyfile': PY + ' -c "import shutil,sys; shutil.copyfile('
                            'sys.argv[1], \'jobs/out\')" {src}',
    'pathlib.write_bytes': PY + ' -c "import pathlib,sys; pathlib.Path('
                                '\'jobs/out\').write_bytes(open(sys.argv[1],'
                                ' \'rb\').read())" {src}',
    'NamedTemporaryFile+os.replace': PY + ' -c "import os,sys,tempfile\n'
        't = tempfile.NamedTemporaryFile(dir=\'jobs\', delete=False)\n'
        't.write(open(sys.argv[1], \'rb\').read()); t.close()\n'
        'os.chmod(t.name, 0o644); os.replace(t.name, \'jobs/out\')" {src}',
    'mkstemp+os.rename before close': PY + ' -c "import os,sys,tempfile\n'
        'fd, n = tempfile.mkstemp(dir=\'jobs\')\n'
        'os.write(fd, open(sys.argv[1], \'rb\').read())\n'
        'os.rename(n, \'jobs/out\'); os.close(fd)" {src}',
    'perl File::Copy copy': 'perl -MFile::Copy -e '
                            '\'copy($ARGV[0], "jobs/out") or die "$!"\' {src}',
    'perl File::Copy cp': 'perl -MFile::Copy=cp -e '
                          '\'cp($ARGV[0], "jobs/out") or die "$!"\' {src}',
    'node copyFileSync+chmod+utimes': 'node -e \'const fs = require("fs"); '
        'fs.copyFileSync(process.argv[1], "jobs/out"); '
        'fs.chmodSync("jobs/out", 0o644); '
        'fs.utimesSync("jobs/out", 1, 1)\' {src}',
    'node fs.promises.copyFile+stat': 'node -e \'const fs = require("fs");'
        ' (async () => {{ await fs.promises.copyFile(process.argv[1], '
        '"jobs/out"); const s = await fs.promises.stat("jobs/out"); '
        'if (s.size !== 9) throw new Error("size " + s.size); }})()'
        '.catch(e => {{ console.error(e); process.exit(1); }})\' {src}',
}


@pytest.mark.parametrize('tool', sorted(PRODUCERS))
def test_producer_pushes_exactly_one_message(mount, src, tool):
    need(PRODUCERS[tool].split()[0] if not PRODUCERS[tool].startswith(PY)
         else 'sh')
    q = mount.mkq('jobs')
    ok(run(PRODUCERS[tool].format(src=src), mount.mnt))
    one_message(q, b'{"n": 1}\n', 'out')
    assert not [n for n in os.listdir(q) if n.startswith('.')], \
        'a temp file or directory was left behind'


def test_install_into_a_dedup_queue_twice(mount, src):
    """A deduplicated push (accepted and dropped) keeps its name for the
    pusher too: install's chmod after close succeeds."""
    need('install')
    q = mount.mkq('jobs', dedup='name')
    ok(run('install -m 644 %s jobs/out' % src, mount.mnt))
    ok(run('install -m 644 %s jobs/out' % src, mount.mnt))
    s = stats(q)
    assert (s['visible'], s['pushed_total'], s['deduped_total']) == (1, 1, 1)


def test_shutil_move_into_a_queue(mount, tmp_path):
    q = mount.mkq('jobs')
    (tmp_path / 'm.txt').write_bytes(b'moved\n')
    ok(py('import shutil, sys; shutil.move(sys.argv[1], "jobs/")',
          mount.mnt, tmp_path / 'm.txt'))
    one_message(q, b'moved\n', 'm.txt')
    assert not (tmp_path / 'm.txt').exists()


def test_perl_file_copy_move(mount, tmp_path):
    need('perl')
    q = mount.mkq('jobs')
    (tmp_path / 'p.txt').write_bytes(b'perl moved\n')
    ok(run('perl -MFile::Copy -e \'move($ARGV[0], "jobs/p") or die "$!"\' '
           '%s' % (tmp_path / 'p.txt'), mount.mnt))
    one_message(q, b'perl moved\n', 'p')
    assert not (tmp_path / 'p.txt').exists()


def test_after_close_the_pusher_sees_the_pushed_size(mount):
    """stat, chmod, chown, utime on a just-pushed name succeed for its
    pusher and change nothing; xattr writes EPERM; rename renames."""
    q = mount.mkq('jobs')
    write_file(q / 'x', b'12345')
    st = os.stat(q / 'x')
    assert st.st_size == 5
    os.chmod(q / 'x', 0o600)
    os.chown(q / 'x', os.getuid(), os.getgid())
    os.utime(q / 'x', (1, 1))
    after = os.stat(q / 'x')   # nothing changed
    assert (after.st_mode, after.st_mtime, after.st_size) == \
        (st.st_mode, st.st_mtime, 5)
    for fn in (lambda: os.setxattr(q / 'x', 'user.late', b'1'),
               lambda: os.removexattr(q / 'x', 'user.late')):
        with pytest.raises(OSError) as e:
            fn()
        assert e.value.errno == errno.EPERM
    assert 'x' not in os.listdir(q)
    os.rename(q / 'x', q / 'y')
    assert os.stat(q / 'y').st_size == 5
    with pytest.raises(FileNotFoundError):
        os.stat(q / 'x')
    one_message(q, b'12345', 'y')
    # Another process does not see it.
    r = run('stat jobs/y', mount.mnt)
    assert r.returncode == 1 and b'No such file' in r.stderr
    # The new name is durable.
    mount.remount()
    one_message(q, b'12345', 'y')


def test_xattr_write_between_the_pushing_close_and_release(mount):
    """close() pushes at FLUSH; the kernel sends RELEASE later, and until
    then the open file still exists. A setxattr in that window (here held
    open by a second descriptor) fails EPERM like any later one and adds
    nothing to the message (CI once hit the window under ASan)."""
    q = mount.mkq('jobs')
    fd = os.open(q / 'x', os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b'12345')
    fd2 = os.dup(fd)
    os.close(fd)                       # the opener's FLUSH: pushed
    try:
        assert stats(q)['visible'] == 1
        for fn in (lambda: os.setxattr(q / 'x', 'user.late', b'1'),
                   lambda: os.removexattr(q / 'x', 'user.late')):
            with pytest.raises(OSError) as e:
                fn()
            assert e.value.errno == errno.EPERM
    finally:
        os.close(fd2)                  # RELEASE: nothing more pushed
    one_message(q, b'12345', 'x')
    mid = ids(q)[0]
    assert 'user.late' not in os.listxattr(q / 'peek' / mid)


def test_after_close_other_thread_of_the_pusher(mount):
    """Node's async fs and Go run calls on other threads: a thread of the
    pushing process finds the name too."""
    import threading
    q = mount.mkq('jobs')
    write_file(q / 'x', b'abc')
    got = []
    t = threading.Thread(target=lambda: got.append(os.stat(q / 'x').st_size))
    t.start()
    t.join()
    assert got == [3]


def test_after_close_unlink_forgets_the_name_only(mount):
    q = mount.mkq('jobs')
    write_file(q / 'x', b'kept')
    os.unlink(q / 'x')
    with pytest.raises(FileNotFoundError):
        os.stat(q / 'x')
    one_message(q, b'kept', 'x')


def test_after_close_rename_rules(mount):
    q = mount.mkq('jobs')
    o = mount.mkq('other')
    write_file(q / 'x', b'abc')
    with pytest.raises(OSError) as e:
        os.rename(q / 'x', o / 'x')
    assert e.value.errno == errno.EXDEV
    with pytest.raises(OSError) as e:
        os.rename(q / 'x', q / 'next')
    assert e.value.errno == errno.EPERM
    # A consumed message: the rename still succeeds, nothing else changes.
    (mid,) = ids(q)
    os.unlink(q / 'peek' / mid)
    os.rename(q / 'x', q / 'y')
    assert os.stat(q / 'y').st_size == 3
    assert stats(q)['pushed_total'] == 1 and ids(o) == []


def test_after_close_the_name_goes_after_a_few_seconds(mount):
    q = mount.mkq('jobs')
    write_file(q / 'x', b'abc')
    assert os.stat(q / 'x').st_size == 3
    time.sleep(7)   # DESIGN §4: at least 5 s; spoolfs keeps 6 s
    with pytest.raises(FileNotFoundError):
        os.stat(q / 'x')
    # Then even the pusher's O_EXCL create of that name pushes again.
    write_file(q / 'x', b'again', os.O_CREAT | os.O_EXCL)
    assert sorted(bodies(q)) == [b'abc', b'again']


def test_stats_and_config_unlink_only_once_the_queue_is_empty(mount):
    q = mount.mkq('jobs')
    write_file(q / 'x', b'1')
    for f in ('stats', 'config'):
        with pytest.raises(OSError) as e:
            os.unlink(q / f)
        assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        os.rmdir(q / 'peek')
    assert e.value.errno == errno.ENOTEMPTY
    (mid,) = ids(q)
    os.unlink(q / 'peek' / mid)
    os.rmdir(q / 'peek')
    os.unlink(q / 'stats')
    os.unlink(q / 'config')
    # They go with the queue, not before.
    assert os.path.isdir(q / 'peek') and os.path.isfile(q / 'stats')
    os.rmdir(q)
    assert not os.path.exists(q)


def test_second_echo_from_one_shell_pushes_a_second_message(mount):
    q = mount.mkq('jobs')
    ok(run('echo one > jobs/x; echo two > jobs/x; echo three >> jobs/x',
           mount.mnt))
    assert sorted(bodies(q)) == [b'one\n', b'three\n', b'two\n']
    assert {xattr(q / 'peek' / i, 'user.spool.name') for i in ids(q)} == \
        {'x'}


def test_truncate_s_pushes_zero_bytes(mount):
    need('truncate')
    q = mount.mkq('jobs')
    ok(run('truncate -s 100 jobs/x', mount.mnt))
    one_message(q, b'\0' * 100, 'x')


def test_ftruncate_and_fstat_while_writing(mount):
    q = mount.mkq('jobs')
    fd = os.open(q / 'x', os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b'abc')
    assert os.fstat(fd).st_size == 3
    assert os.stat(q / 'x').st_size == 3   # by name, for its writer
    os.ftruncate(fd, 10)
    assert os.fstat(fd).st_size == 10
    os.ftruncate(fd, 2)
    assert os.fstat(fd).st_size == 2
    os.close(fd)
    one_message(q, b'ab', 'x')


def test_fallocate_fails_and_pushes_nothing(mount):
    need('fallocate')
    q = mount.mkq('jobs')
    r = run('fallocate -l 100 jobs/x', mount.mnt)
    assert r.returncode == 1 and b'not supported' in r.stderr, r.stderr
    assert stats(q)['pushed_total'] == 0
    # posix_fallocate (glibc falls back to writing zeros): the same error,
    # at fallocate and at close.
    fd = os.open(q / 'y', os.O_WRONLY | os.O_CREAT, 0o644)
    with pytest.raises(OSError) as e:
        os.posix_fallocate(fd, 0, 100)
    assert e.value.errno == errno.EOPNOTSUPP
    with pytest.raises(OSError) as e:
        os.close(fd)
    assert e.value.errno == errno.EOPNOTSUPP
    assert stats(q)['pushed_total'] == 0


# ------------------------------------------------ errors before close

def test_long_name_fails_in_the_shell(mount):
    q = mount.mkq('jobs')
    r = run('echo x > jobs/%s' % ('a' * 256), mount.mnt, shell='bash')
    assert r.returncode == 1 and b'File name too long' in r.stderr
    ok(run('echo x > jobs/%s' % ('a' * 255), mount.mnt))
    one_message(q, b'x\n', 'a' * 255)
    assert os.statvfs(q).f_namemax == 255


def test_body_over_max_size_fails_in_the_shell(mount):
    q = mount.mkq('jobs')
    set_config(q, max_size=10)
    r = run('printf "0123456789abc" > jobs/big', mount.mnt, shell='bash')
    assert r.returncode == 1 and b'File too large' in r.stderr, r.stderr
    assert stats(q)['pushed_total'] == 0


def test_lines_line_over_max_size_fails_in_the_shell(mount):
    q = mount.mkq('jobs')
    set_config(q, max_size=10)
    r = run(r"printf 'ok\n0123456789abc\n' > jobs/lines", mount.mnt,
            shell='bash')
    assert r.returncode == 1 and b'File too large' in r.stderr, r.stderr
    assert stats(q)['pushed_total'] == 0
    # A line of exactly max_size is fine; so is one split over writes.
    ok(run(r"printf 'ok\n0123456789\n' > jobs/lines", mount.mnt))
    ok(run(r"{ printf '01234'; printf '56789\nz\n'; } > jobs/lines",
           mount.mnt))
    assert sorted(bodies(q)) == [b'0123456789', b'0123456789', b'ok', b'z']


# ---------------------------------------------------- rsync, rm, df

def test_rsync_delay_updates_delivers(mount, tmp_path):
    need('rsync')
    q = mount.mkq('jobs')
    d = tmp_path / 'out'
    d.mkdir()
    for n in ('a', 'b', 'c'):
        (d / n).write_bytes(n.encode() * 3)
    ok(run('rsync -rt --delay-updates %s/ jobs/' % d, mount.mnt))
    got = {xattr(q / 'peek' / i, 'user.spool.name'): read_file(q / 'peek' / i)
           for i in ids(q)}
    assert got == {'a': b'aaa', 'b': b'bbb', 'c': b'ccc'}
    assert not [n for n in os.listdir(q) if n.startswith('.')]


def test_draft_directory(mount):
    q = mount.mkq('jobs')
    os.mkdir(q / '.tmp')
    write_file(q / '.tmp' / 'plain-name', b'in a draft dir')
    assert os.listdir(q / '.tmp') == ['plain-name']
    assert stats(q)['pushed_total'] == 0
    with pytest.raises(OSError) as e:
        os.rmdir(q / '.tmp')
    assert e.value.errno == errno.ENOTEMPTY
    os.rename(q / '.tmp' / 'plain-name', q / 'final')
    one_message(q, b'in a draft dir', 'final')
    os.rmdir(q / '.tmp')
    assert '.tmp' not in os.listdir(q)
    with pytest.raises(OSError) as e:
        os.mkdir(q / 'plain')
    assert e.value.errno == errno.EPERM


def test_rm_rf_a_queue(mount):
    need('rm')
    q = mount.mkq('jobs', visibility_timeout=3600)
    for i in range(4):
        write_file(q / ('m%d' % i), b'%d' % i)
    lease(q)
    write_file(q / '.d', b'draft')
    os.mkdir(q / '.~tmp~')
    write_file(q / '.~tmp~' / 'x', b'partial')
    mount.mkq('other')
    r = ok(run('rm -rf jobs', mount.mnt))
    assert r.stderr == b''
    assert sorted(os.listdir(mount.mnt)) == ['.metrics', 'other']


def test_rm_rf_of_the_queue_contents_keeps_the_queue(mount):
    need('rm')
    q = mount.mkq('jobs')
    for i in range(3):
        write_file(q / ('m%d' % i), b'%d' % i)
    r = run('rm -rf jobs/peek', mount.mnt)
    assert r.returncode == 0, r.stderr
    assert stats(q)['visible'] == 0
    assert os.path.isdir(q / 'peek')


@pytest.mark.rocksdb_only(
    'df reports the disk under the RocksDB directory; a Redis store has '
    'no local disk (docs/scale-out.md)')
def test_df_reports_the_store_disk(mount):
    need('df')
    q = mount.mkq('jobs')
    for i in range(3):
        write_file(q / ('m%d' % i), b'x')
    st = os.statvfs(mount.mnt)
    disk = os.statvfs(mount.data)
    assert st.f_blocks * st.f_frsize == disk.f_blocks * disk.f_frsize > 0
    assert st.f_files - st.f_ffree == 3
    assert st.f_ffree > 1 << 30
    r = ok(run('df -P . && df -i -P .', mount.mnt))
    lines = r.stdout.decode().splitlines()
    assert lines[1].split()[1] != '0'
    inodes = lines[3].split()
    assert inodes[2] == '3' and inodes[4] in ('0%', '1%'), lines


# ------------------------------------------------------ seek, sed -i

def test_head_n1_of_pop_and_stats(mount):
    need('head')
    q = mount.mkq('jobs')
    write_file(q / 'x', b'first\nsecond\n')
    r = ok(run('head -n1 jobs/pop', mount.mnt))
    assert r.stdout == b'first\n' and r.stderr == b''
    assert stats(q)['visible'] == 0
    r = ok(run('head -1 jobs/stats', mount.mnt))
    assert r.stdout == b'visible=0\n' and r.stderr == b''
    r = ok(run('head -n2 jobs/config', mount.mnt))
    assert len(r.stdout.splitlines()) == 2 and r.stderr == b''


def test_seek_within_a_read_body(mount):
    q = mount.mkq('jobs')
    write_file(q / 'x', b'0123456789')
    fd = os.open(q / 'next', os.O_RDONLY)
    try:
        assert os.read(fd, 4) == b'0123'
        assert os.lseek(fd, 1, os.SEEK_SET) == 1
        assert os.read(fd, 100) == b'123456789'
    finally:
        os.close(fd)


@pytest.mark.parametrize('cmd', ['sed -i s/hello/bye/ jobs/.d',
                                 "perl -pi -e 's/hello/bye/' jobs/.d"])
def test_in_place_edit_of_a_draft(mount, cmd):
    need(cmd.split()[0])
    q = mount.mkq('jobs')
    write_file(q / '.d', b'hello\n')
    os.chmod(q / '.d', 0o640)
    ok(run(cmd, mount.mnt))
    assert read_file(q / '.d') == b'bye\n'
    assert os.stat(q / '.d').st_mode & 0o777 == 0o640
    s = stats(q)
    assert (s['visible'], s['delayed'], s['leased']) == (0, 0, 0)
    assert set(os.listdir(q)) - {'peek', 'delayed', 'leased', 'stats',
                                 'config'} == {'.d'}
    os.rename(q / '.d', q / 'edited')
    assert bodies(q) == [b'bye\n']


def test_all_tools_are_installed():
    need(*TOOLS)
