"""DESIGN.md §2: queues are directories."""
import errno
import os
import stat

import pytest

from spoolutil import CONTROL, lease, push, read_file, stats


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
    assert set(os.listdir(q)) == CONTROL
    push(q, b'pushed', name='visible-name')
    assert set(os.listdir(q)) == CONTROL
    with open(q / '.draft', 'wb') as f:
        f.write(b'draft')
    assert set(os.listdir(q)) == CONTROL | {'.draft'}
    for d in ('peek', 'delayed', 'leased'):
        assert stat.S_ISDIR(os.stat(q / d).st_mode), d
    for f in CONTROL - {'peek', 'delayed', 'leased'}:
        assert stat.S_ISREG(os.stat(q / f).st_mode), f


def test_unknown_name_is_enoent(mount):
    q = mount.mkq('jobs')
    push(q, b'x', name='gone')
    for p in (q / 'gone', q / 'nosuch', q / 'peek' / 'nosuch',
              mount.mnt / 'noqueue'):
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

