# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""A file created through the mount reaches the enclave in one `put` (specs/sync.md §6).

Until its close, such a file lives only in the store; everything that could let the
enclave see it too late, too short or under an old name is tried here on a real mount.
"""

from __future__ import annotations

import errno
import os
import stat

import pytest
from test_sync_mount import _assert_mirrored

from user_runtime.rpc.client import RemoteError

pytestmark = pytest.mark.fuse


def _enclave_lacks(sync_mount, rel: str) -> bool:
    with sync_mount.enclave.client() as c:
        try:
            c.stat(rel)
        except RemoteError as e:
            return e.errno == errno.ENOENT
    return False


def _enclave_bytes(sync_mount, rel: str) -> bytes:
    with sync_mount.enclave.client() as c:
        return c.read(rel, 0, 1 << 30)


def test_small_new_file_reaches_the_enclave_with_its_mode(sync_mount):
    path = sync_mount.folder / "dataset" / "a.csv"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"a,b\n")
    os.write(fd, b"1,2\n")
    os.close(fd)
    assert _enclave_bytes(sync_mount, "dataset/a.csv") == b"a,b\n1,2\n"
    with sync_mount.enclave.client() as c:
        assert c.stat("dataset/a.csv").mode == stat.S_IFREG | 0o600
    _assert_mirrored(sync_mount)


def test_new_file_renamed_while_open_arrives_under_its_new_name(sync_mount):
    folder = sync_mount.folder / "dataset"
    with (folder / "tmp.part").open("wb") as out:
        out.write(b"first ")
        out.flush()
        (folder / "tmp.part").rename(folder / "final.txt")
        out.write(b"second")
    assert _enclave_bytes(sync_mount, "dataset/final.txt") == b"first second"
    assert _enclave_lacks(sync_mount, "dataset/tmp.part")
    _assert_mirrored(sync_mount)


def test_new_file_chmod_and_times_set_before_close_reach_the_enclave(sync_mount):
    # What `cp -p` does: fchmod and futimens on the still-open destination.
    path = sync_mount.folder / "dataset" / "kept.bin"
    with path.open("wb") as out:
        out.write(b"x" * 100)
        out.flush()
        os.fchmod(out.fileno(), 0o640)
        os.utime(out.fileno(), ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    with sync_mount.enclave.client() as c:
        info = c.stat("dataset/kept.bin")
    assert (info.mode & 0o7777, info.size) == (0o640, 100)
    assert info.mtime_ns == 1_600_000_000_000_000_000
    _assert_mirrored(sync_mount)


def test_new_file_outgrowing_a_put_arrives_whole(sync_mount):
    data = os.urandom(300 * 1024)
    fd = os.open(sync_mount.folder / "dataset" / "grown.bin", os.O_WRONLY | os.O_CREAT)
    for start in range(0, len(data), 4096):
        os.write(fd, data[start : start + 4096])
    os.close(fd)
    assert _enclave_bytes(sync_mount, "dataset/grown.bin") == data
    _assert_mirrored(sync_mount)


def test_new_file_unlinked_while_open_leaves_nothing(sync_mount):
    path = sync_mount.folder / "dataset" / "gone.txt"
    with path.open("wb") as out:
        out.write(b"short-lived")
        out.flush()
        path.unlink()
        out.write(b" still writable")
    assert _enclave_lacks(sync_mount, "dataset/gone.txt")
    assert not (sync_mount.store / "tree" / "dataset" / "gone.txt").exists()
    _assert_mirrored(sync_mount)


def test_new_file_written_through_two_descriptors_ends_the_same_on_both_sides(sync_mount):
    path = sync_mount.folder / "dataset" / "shared.txt"
    first = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(first, b"AAAA")
    second = os.open(path, os.O_WRONLY)
    os.pwrite(second, b"BB", 4)
    os.close(second)
    os.pwrite(first, b"CC", 6)
    os.close(first)
    assert path.read_bytes() == b"AAAABBCC"
    assert _enclave_bytes(sync_mount, "dataset/shared.txt") == b"AAAABBCC"
    _assert_mirrored(sync_mount)


def test_new_file_read_back_before_close_gives_what_was_written(sync_mount):
    path = sync_mount.folder / "dataset" / "rw.txt"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"hello")
    assert os.pread(fd, 10, 0) == b"hello"
    assert path.stat().st_size == 5
    os.close(fd)
    assert _enclave_bytes(sync_mount, "dataset/rw.txt") == b"hello"


def test_small_new_file_over_the_budget_is_refused_after_close_host_intact(sync_mount):
    # The test enclave's budget is 8 MiB: fill it to within 10 KiB, then a 20 KiB file.
    f = sync_mount.folder / "dataset"
    with sync_mount.enclave.client() as c:
        free = c.statfs()["free_bytes"]
    (f / "filler.bin").write_bytes(b"f" * (free - 10 * 1024))
    fd = os.open(f / "small.csv", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"s" * 20 * 1024)  # into the store only: the enclave sees it after close
    os.close(fd)  # close does not wait for the enclave (specs/sync.md §6.3)
    assert sync_mount.settle()["failed"] == {"dataset/small.csv": "ENOSPC"}
    assert (f / "filler.bin").stat().st_size == free - 10 * 1024
    with pytest.raises(OSError) as info:  # the next operation on the path hears it, once
        (f / "small.csv").write_bytes(b"fits")
    assert info.value.errno == errno.ENOSPC
    assert (f / "small.csv").read_bytes() == b"s" * 20 * 1024  # the store keeps the bytes
    (f / "small.csv").write_bytes(b"fits")
    assert sync_mount.settle()["failed"] == {}
    assert _enclave_bytes(sync_mount, "dataset/small.csv") == b"fits"
