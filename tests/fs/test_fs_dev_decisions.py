"""The daemon's own choices where DESIGN.md is silent (docs/decisions.md)."""
import errno
import os

import pytest

from spoolutil import bodies, push, stats, xattr


def test_next_id_xattr_outlives_the_ack(mount):
    q = mount.mkq('jobs')
    push(q, b'body')
    fd = os.open(q / 'next', os.O_RDONLY)
    try:
        assert os.read(fd, 100) == b'body'
        mid = os.getxattr(fd, 'user.spool.id').decode()
        os.unlink(q / 'leased' / mid)
        assert os.getxattr(fd, 'user.spool.id').decode() == mid
        with pytest.raises(OSError) as e:
            os.getxattr(fd, 'user.spool.receives')
        assert e.value.errno == errno.ENODATA
        assert os.read(fd, 100) == b''
    finally:
        os.close(fd)


def test_config_is_applied_at_write(mount):
    q = mount.mkq('jobs')
    fd = os.open(q / 'config', os.O_WRONLY | os.O_TRUNC)
    try:
        with pytest.raises(OSError) as e:
            os.write(fd, b'no_such_key=1\n')
        assert e.value.errno == errno.EINVAL
    finally:
        with pytest.raises(OSError) as e:
            os.close(fd)
        assert e.value.errno == errno.EINVAL
    fd = os.open(q / 'config', os.O_WRONLY | os.O_TRUNC)
    assert os.write(fd, b'priority=3\n') == 11
    # Applied before close.
    assert b'priority=3' in (q / 'config').read_bytes()
    os.close(fd)


def test_draft_renamed_onto_a_control_entry_is_eperm(mount):
    q = mount.mkq('jobs')
    (q / '.d').write_bytes(b'x')
    with pytest.raises(OSError) as e:
        os.rename(q / '.d', q / 'push')
    assert e.value.errno == errno.EPERM
    assert (q / '.d').read_bytes() == b'x'


def test_draft_renamed_into_another_queue_pushes_there(mount):
    a = mount.mkq('a')
    b = mount.mkq('b')
    (a / '.d').write_bytes(b'travels')
    os.rename(a / '.d', b / 'd')
    assert bodies(b) == [b'travels']
    assert stats(a)['visible'] == 0
    assert not (a / '.d').exists()


def test_rmdir_with_a_draft_is_enotempty(mount):
    q = mount.mkq('jobs')
    (q / '.d').write_bytes(b'x')
    with pytest.raises(OSError) as e:
        os.rmdir(q)
    assert e.value.errno == errno.ENOTEMPTY
    os.unlink(q / '.d')
    os.rmdir(q)


def test_message_name_is_the_created_name(mount):
    q = mount.mkq('jobs')
    (q / 'report.txt').write_bytes(b'r')
    (mid,) = os.listdir(q / 'peek')
    assert xattr(q / 'peek' / mid, 'user.spool.name') == 'report.txt'


@pytest.mark.spoolfs('-o', 'sync=none')
def test_sync_as_a_mount_option(mount):
    q = mount.mkq('jobs')
    push(q, b'x')
    assert stats(q)['visible'] == 1
