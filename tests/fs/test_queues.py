"""DESIGN.md §2: queues are directories."""
import errno
import os
import stat
import subprocess

import pytest

from spoolutil import (CONTROL, LISTED, errno_in_child, lease, push,
                       read_file, stats)


def test_mkdir_creates_a_queue(mount):
    os.mkdir(mount.mnt / 'jobs', 0o750)
    st = os.stat(mount.mnt / 'jobs')
    assert stat.S_ISDIR(st.st_mode)
    # mode and owner from the request (umask applies, as for any mkdir)
    assert stat.S_IMODE(st.st_mode) == 0o750 & ~current_umask()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert 'jobs' in os.listdir(mount.mnt)


def current_umask():
    u = os.umask(0)
    os.umask(u)
    return u


def test_ls_lists_queues(mount):
    for n in ('a', 'b-2', 'C.c', 'x_y'):
        os.mkdir(mount.mnt / n)
    names = set(os.listdir(mount.mnt)) - {'.metrics'}
    assert names == {'a', 'b-2', 'C.c', 'x_y'}
    r = mount.sh('ls')
    assert set(r.stdout.decode().split()) == {'a', 'b-2', 'C.c', 'x_y'}


def test_mkdir_existing_is_eexist(mount):
    os.mkdir(mount.mnt / 'jobs')
    with pytest.raises(OSError) as e:
        os.mkdir(mount.mnt / 'jobs')
    assert e.value.errno == errno.EEXIST


@pytest.mark.parametrize('name', [
    'a b', 'a:b', 'caf\u00e9', 'a*', 'x' * 201, '.hidden', 'a\\b', 'tab\t',
])
def test_mkdir_bad_name_is_einval(mount, name):
    with pytest.raises(OSError) as e:
        os.mkdir(mount.mnt / name)
    assert e.value.errno == errno.EINVAL
    assert set(os.listdir(mount.mnt)) - {'.metrics'} == set()


def test_longest_name_is_200_bytes(mount):
    name = 'q' * 200
    os.mkdir(mount.mnt / name)
    push(mount.mnt / name, b'x')
    assert stats(mount.mnt / name)['visible'] == 1


def test_rmdir_deletes_an_empty_queue(mount):
    q = mount.mkq('jobs')
    push(q, b'x')
    assert read_file(q / 'pop') == b'x'
    os.rmdir(q)
    assert not os.path.exists(q)
    assert 'jobs' not in os.listdir(mount.mnt)
    # The name can be used again, for a new and empty queue.
    os.mkdir(q)
    s = stats(q)
    assert (s['visible'], s['pushed_total']) == (0, 0)


def test_rmdir_missing_is_enoent(mount):
    with pytest.raises(OSError) as e:
        os.rmdir(mount.mnt / 'nosuch')
    assert e.value.errno == errno.ENOENT


def _rmdir_errno(q):
    with pytest.raises(OSError) as e:
        os.rmdir(q)
    return e.value.errno


def test_rmdir_with_visible_message_is_enotempty(mount):
    q = mount.mkq('jobs')
    push(q, b'x')
    assert _rmdir_errno(q) == errno.ENOTEMPTY
    assert stats(q)['visible'] == 1


def test_rmdir_with_delayed_message_is_enotempty(mount):
    q = mount.mkq('jobs', delay=60)
    push(q, b'x')
    assert stats(q)['delayed'] == 1
    assert _rmdir_errno(q) == errno.ENOTEMPTY


def test_rmdir_with_leased_message_is_enotempty(mount):
    q = mount.mkq('jobs')
    push(q, b'x')
    assert lease(q) is not None
    assert stats(q)['leased'] == 1
    assert _rmdir_errno(q) == errno.ENOTEMPTY
    assert os.path.isdir(q)


def test_mkdir_inside_a_queue_is_eperm(mount):
    q = mount.mkq('jobs')
    with pytest.raises(OSError) as e:
        os.mkdir(q / 'sub')
    assert e.value.errno == errno.EPERM


def test_queue_lists_control_entries_and_drafts_only(mount):
    q = mount.mkq('jobs')
    assert set(os.listdir(q)) == LISTED
    push(q, b'pushed', name='visible-name')
    assert set(os.listdir(q)) == LISTED
    with open(q / '.draft', 'wb') as f:
        f.write(b'draft')
    assert set(os.listdir(q)) == LISTED | {'.draft'}
    # The entries that are not listed exist by name (DESIGN §2).
    for f in CONTROL - LISTED:
        assert f not in os.listdir(q)
        assert os.path.exists(q / f), f
    for d in ('peek', 'delayed', 'leased'):
        assert stat.S_ISDIR(os.stat(q / d).st_mode), d
    for f in CONTROL - {'peek', 'delayed', 'leased'}:
        assert stat.S_ISREG(os.stat(q / f).st_mode), f


def test_unknown_name_is_enoent(mount):
    q = mount.mkq('jobs')
    push(q, b'x', name='gone')
    # A pushed name is gone for every other process (its pusher may still
    # resolve it for a few seconds: DESIGN §4, "After close()").
    assert errno_in_child(os.stat, q / 'gone') == errno.ENOENT
    for p in (q / 'nosuch', q / 'peek' / 'nosuch', mount.mnt / 'noqueue'):
        with pytest.raises(OSError) as e:
            os.stat(p)
        assert e.value.errno == errno.ENOENT, p


def test_chmod_queue(mount):
    q = mount.mkq('jobs', mode=0o755)
    os.chmod(q, 0o700)
    assert stat.S_IMODE(os.stat(q).st_mode) == 0o700
    os.chown(q, 1234, 5678)
    st = os.stat(q)
    assert (st.st_uid, st.st_gid) == (1234, 5678)


def test_chmod_queue_shows_in_its_entries_at_once(mount):
    """Fixed entries' attributes are cached by the kernel for a second
    (an open of push needs no GETATTR); a chmod or chown of the queue
    invalidates them, so the next stat sees the change at once."""
    q = mount.mkq('jobs', mode=0o777)
    names = ['push', 'lines', 'pop', 'stats', 'config', 'ctl', 'leased']
    before = {n: os.stat(q / n) for n in names}     # now in the cache
    assert all(st.st_uid != 1234 for st in before.values())
    assert stat.S_IMODE(before['stats'].st_mode) & 0o044
    os.chmod(q, 0o700)
    os.chown(q, 1234, 5678)
    for n in names:
        st = os.stat(q / n)
        assert stat.S_IMODE(st.st_mode) & 0o077 == 0, (n, oct(st.st_mode))
        assert (st.st_uid, st.st_gid) == (1234, 5678), n


def test_metrics_prometheus_text(mount):
    q = mount.mkq('jobs')
    push(q, b'one')
    push(q, b'two')
    text = read_file(mount.mnt / '.metrics').decode()
    assert 'spoolfs_visible{queue="jobs"} 2' in text.splitlines(), text
    with pytest.raises(OSError) as e:
        os.open(mount.mnt / '.metrics', os.O_WRONLY)
    assert e.value.errno == errno.EACCES


def test_rename_queue_is_refused_or_moves_everything(mount):
    """DESIGN.md is silent on renaming a queue. Assumption: either it is
    refused (any errno, queue unchanged) or the queue keeps its messages
    under the new name; never a half-moved queue."""
    q = mount.mkq('jobs')
    push(q, b'x')
    try:
        os.rename(q, mount.mnt / 'work')
    except OSError:
        assert stats(q)['visible'] == 1
        return
    assert not os.path.exists(q)
    assert stats(mount.mnt / 'work')['visible'] == 1



def test_rmdir_with_a_draft_is_enotempty(mount):
    """Drafts show in the listing, so the directory is not empty
    (docs/decisions.md)."""
    q = mount.mkq('jobs')
    with open(q / '.draft', 'wb') as f:
        f.write(b'x')
    assert _rmdir_errno(q) == errno.ENOTEMPTY
    os.unlink(q / '.draft')
    os.rmdir(q)


@pytest.mark.spoolfs('-o', 'allow_other')
def test_permissions_follow_the_queue_mode(mount):
    """DESIGN.md §2: pushing needs w on the queue, consuming r and w,
    peeking r; config and ctl are writable by the owner only. Checked as
    user nobody (class "other") against queues owned by root."""
    os.chmod(mount.tmp, 0o755)

    def nobody(cmd):
        r = subprocess.run(['setpriv', '--reuid=nobody', '--regid=nogroup',
                            '--clear-groups', 'sh', '-c', cmd],
                           cwd=mount.mnt, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30)
        return r.returncode

    prod = mount.mkq('prod')
    os.chmod(prod, 0o733)          # others: push only
    cons = mount.mkq('cons')
    os.chmod(cons, 0o707)          # others: everything but config/ctl
    look = mount.mkq('look')
    os.chmod(look, 0o705)          # others: peek only
    for q in (prod, cons, look):
        push(q, b'm')
    (look_id,) = os.listdir(look / 'peek')

    assert nobody('echo x > prod/new') == 0
    assert nobody('echo x > prod/push') == 0
    assert stats(prod)['visible'] == 3
    assert nobody('cat prod/next') != 0
    assert nobody('ls prod/peek') != 0

    assert nobody('id=$(cat cons/claim) && rm cons/leased/$id') == 0
    assert stats(cons)['acked_total'] == 1
    assert nobody('echo priority=1 > cons/config') != 0
    assert nobody('echo purge > cons/ctl') != 0
    assert mount.config('cons')['priority'] == '0'

    assert nobody('ls look/peek && cat look/peek/%s && cat look/stats'
                  % look_id) == 0
    assert nobody('cat look/next') != 0
    assert nobody('echo x > look/new') != 0
    assert nobody('rm look/peek/%s' % look_id) != 0
    assert stats(look)['visible'] == 1
