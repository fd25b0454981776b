# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 6 item 1: every file operation on a real FUSE mount, checked against the enclave."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.fuse


def test_write_read_back_and_enclave_holds_it(sync_mount):
    folder = sync_mount.folder
    assert sorted(p.name for p in folder.iterdir()) == ["dataset", "encrypted", "model", "output"]
    data = os.urandom(3 * 1024 * 1024 + 17)
    (folder / "dataset" / "a.bin").write_bytes(data)
    assert (folder / "dataset" / "a.bin").read_bytes() == data
    assert (folder / "dataset" / "a.bin").stat().st_size == len(data)
    with sync_mount.enclave.client() as c:
        assert c.stat("dataset/a.bin").size == len(data)
        assert c.read("dataset/a.bin", 0, len(data) + 10) == data
    assert (sync_mount.store / "tree" / "dataset" / "a.bin").read_bytes() == data


MiB = 1024 * 1024


def _enclave_tree(client, path=""):
    """{session path: (is_dir, size, mode bits)} of the enclave, output/ excluded."""
    tree = {}
    for name, info in client.listdir(path):
        sub = f"{path}/{name}" if path else name
        if sub == "output":
            continue
        is_dir = stat.S_ISDIR(info.mode)
        tree[sub] = (is_dir, 0 if is_dir else info.size, info.mode & 0o7777)
        if is_dir:
            tree.update(_enclave_tree(client, sub))
    return tree


def _host_tree(root: Path):
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if rel == "output" or rel.startswith("output/"):
                continue
            st = full.stat()
            is_dir = stat.S_ISDIR(st.st_mode)
            tree[rel] = (is_dir, 0 if is_dir else st.st_size, st.st_mode & 0o7777)
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) == root and d == "output")]
    return tree


def _assert_mirrored(sync_mount):
    with sync_mount.enclave.client() as c:
        remote = _enclave_tree(c)
        for rel, (is_dir, _size, _mode) in remote.items():
            if not is_dir:
                assert c.read(rel, 0, 1 << 30) == (sync_mount.folder / rel).read_bytes(), rel
    assert remote == _host_tree(sync_mount.folder)
    assert remote == _host_tree(sync_mount.store / "tree")


def test_each_file_operation_mirrors_into_enclave(sync_mount):
    f = sync_mount.folder
    (f / "dataset" / "sub").mkdir()
    _assert_mirrored(sync_mount)
    (f / "dataset" / "sub" / "x.csv").write_bytes(b"a,b\n1,2\n")
    _assert_mirrored(sync_mount)
    os.truncate(f / "dataset" / "sub" / "x.csv", 3)
    _assert_mirrored(sync_mount)
    os.truncate(f / "dataset" / "sub" / "x.csv", 5000)
    _assert_mirrored(sync_mount)
    (f / "dataset" / "sub" / "x.csv").rename(f / "dataset" / "y.csv")
    _assert_mirrored(sync_mount)
    (f / "dataset" / "sub").rename(f / "model" / "moved")
    _assert_mirrored(sync_mount)
    (f / "dataset" / "y.csv").chmod(0o600)
    _assert_mirrored(sync_mount)
    os.utime(f / "dataset" / "y.csv", ns=(1_600_000_000_123_456_789, 1_700_000_000_987_654_321))
    with sync_mount.enclave.client() as c:
        info = c.stat("dataset/y.csv")
    assert (info.atime_ns, info.mtime_ns) == (1_600_000_000_123_456_789, 1_700_000_000_987_654_321)
    assert (f / "dataset" / "y.csv").stat().st_mtime_ns == 1_700_000_000_987_654_321
    with (f / "dataset" / "y.csv").open("r+b") as fh:  # overwrite in the middle
        fh.seek(2)
        fh.write(b"ZZ")
    _assert_mirrored(sync_mount)
    (f / "dataset" / "y.csv").unlink()
    _assert_mirrored(sync_mount)
    (f / "model" / "moved").rmdir()
    _assert_mirrored(sync_mount)
    assert sorted(p.name for p in f.iterdir()) == ["dataset", "encrypted", "model", "output"]


def test_ls_l_shows_real_sizes_and_times(sync_mount):
    f = sync_mount.folder
    sizes = {"a.bin": 0, "b.bin": 1, "c.bin": 4097, "d.bin": 2 * MiB + 3}
    for name, size in sizes.items():
        (f / "dataset" / name).write_bytes(os.urandom(size))
    os.utime(f / "dataset" / "b.bin", (1_500_000_000, 1_500_000_000))
    out = subprocess.run(
        ["ls", "-l", "--time-style=+%s", str(f / "dataset")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listed = {
        line.split()[-1]: (int(line.split()[4]), int(line.split()[5]))
        for line in out.splitlines()[1:]
    }
    store = sync_mount.store / "tree" / "dataset"
    with sync_mount.enclave.client() as c:
        for name, size in sizes.items():
            assert listed[name] == (size, (store / name).stat().st_mtime_ns // 10**9), name
            assert c.stat(f"dataset/{name}").size == size
        # times set through the mount reach the enclave exactly
        assert c.stat("dataset/b.bin").mtime_ns == 1_500_000_000 * 10**9
    assert listed["b.bin"][1] == 1_500_000_000


def test_create_with_o_trunc_empties_the_file(sync_mount):
    target = sync_mount.folder / "dataset" / "t.txt"
    target.write_bytes(b"x" * 10000)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, b"new")
    os.close(fd)
    with sync_mount.enclave.client() as c:
        assert c.read("dataset/t.txt", 0, 100) == b"new"
    _assert_mirrored(sync_mount)


def test_write_into_missing_directory_is_enoent(sync_mount):
    with pytest.raises(FileNotFoundError) as info:
        (sync_mount.folder / "dataset" / "nope" / "x").write_bytes(b"1")
    assert info.value.errno == errno.ENOENT
    _assert_mirrored(sync_mount)


def test_rmdir_of_non_empty_directory_is_enotempty(sync_mount):
    (sync_mount.folder / "dataset" / "d").mkdir()
    (sync_mount.folder / "dataset" / "d" / "f").write_bytes(b"1")
    with pytest.raises(OSError) as info:
        (sync_mount.folder / "dataset" / "d").rmdir()
    assert info.value.errno == errno.ENOTEMPTY
    _assert_mirrored(sync_mount)


def test_mkdir_existing_is_eexist(sync_mount):
    with pytest.raises(FileExistsError):
        (sync_mount.folder / "dataset").mkdir()


def test_rename_into_output_is_exdev(sync_mount):
    (sync_mount.folder / "dataset" / "r").write_bytes(b"1")
    with pytest.raises(OSError) as info:
        (sync_mount.folder / "dataset" / "r").rename(sync_mount.folder / "output" / "r")
    assert info.value.errno == errno.EXDEV
    _assert_mirrored(sync_mount)


def test_top_level_folders_cannot_be_removed(sync_mount):
    with pytest.raises(OSError) as info:
        (sync_mount.folder / "model").rmdir()
    assert info.value.errno == errno.EBUSY
    assert (sync_mount.folder / "model").is_dir()


@pytest.mark.parametrize("sync_enclave", [8 * MiB], indirect=True)
def test_enclave_budget_exceeded_is_enospc_and_host_folder_intact(sync_mount):
    f = sync_mount.folder
    keep = os.urandom(2 * MiB)
    (f / "dataset" / "keep.bin").write_bytes(keep)
    (f / "dataset" / "big.bin").write_bytes(os.urandom(16 * MiB))  # close does not wait
    # The refusal reaches the replay queue: `run` and `sync --status` name it (sync.md §6.3).
    assert sync_mount.settle()["failed"] == {"dataset/big.bin": "ENOSPC"}
    with pytest.raises(OSError) as info:
        os.open(f / "dataset" / "big.bin", os.O_RDONLY)
    assert info.value.errno == errno.ENOSPC
    assert (f / "dataset" / "keep.bin").read_bytes() == keep
    assert (sync_mount.store / "tree" / "dataset" / "keep.bin").read_bytes() == keep
    statvfs = os.statvfs(f)
    assert statvfs.f_blocks * statvfs.f_frsize == 8 * MiB
    # after removing the partial file, the space is usable again
    (f / "dataset" / "big.bin").unlink()
    (f / "dataset" / "small.bin").write_bytes(b"s" * MiB)
    _assert_mirrored(sync_mount)


def test_statfs_reports_the_enclave_budget(sync_mount):
    before = os.statvfs(sync_mount.folder)
    assert before.f_blocks * before.f_frsize == sync_mount.enclave.budget
    (sync_mount.folder / "dataset" / "f").write_bytes(b"x" * 3 * MiB)
    after = os.statvfs(sync_mount.folder)
    assert (before.f_bfree - after.f_bfree) * after.f_frsize == 3 * MiB


def test_output_is_read_from_the_enclave_and_not_cached(sync_mount):
    out = sync_mount.folder / "output"
    assert list(out.iterdir()) == []
    with sync_mount.enclave.client() as c:  # what a run does inside the enclave
        c.create("output/result.csv")
        c.write("output/result.csv", 0, b"first result\n")
    assert (out / "result.csv").read_bytes() == b"first result\n"
    assert (out / "result.csv").stat().st_size == len(b"first result\n")  # now in the kernel cache
    with sync_mount.enclave.client() as c:  # a second run rewrites it, longer
        c.create("output/result.csv", truncate=True)
        c.write("output/result.csv", 0, b"second, longer result\n")
        c.create("output/metrics.json")
    # reads go to the enclave at once (direct I/O), whatever the cached size says
    assert (out / "result.csv").read_bytes() == b"second, longer result\n"
    # the watcher drops the stale size and listing (polled; the limit asserts no speed)
    deadline = time.monotonic() + 30
    while (out / "result.csv").stat().st_size != len(b"second, longer result\n"):
        assert time.monotonic() < deadline, "stale size never invalidated"
        time.sleep(0.05)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "result.csv"]
    assert not (sync_mount.store / "tree" / "output").exists()
    (out / "result.csv").unlink()
    with sync_mount.enclave.client() as c:
        assert [name for name, _ in c.listdir("output")] == ["metrics.json"]
