# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 6 item 3: path attacks through the mount never reach outside the session filesystem."""

from __future__ import annotations

import errno
import os

import pytest

from user_runtime.sync.store import BackingStore, split_path

pytestmark = pytest.mark.fuse


def _outside_snapshot(tmp_path):
    """Everything under tmp_path except the mount, the store and the enclave socket."""
    skip = {"synced_folder", "store", "state", "enclave.sock"}
    return sorted(
        p.relative_to(tmp_path).as_posix()
        for p in tmp_path.rglob("*")
        if p.relative_to(tmp_path).parts[0] not in skip
    )


def test_dotdot_names_resolve_inside_the_mount(sync_mount, tmp_path):
    f = sync_mount.folder
    before = _outside_snapshot(tmp_path)
    # the kernel resolves `..` before we see it: this lands in dataset/, not outside
    (f / "dataset" / "sub").mkdir()
    (f / "dataset" / "sub" / ".." / "x.txt").write_bytes(b"x")
    assert (f / "dataset" / "x.txt").read_bytes() == b"x"
    # names that merely contain dots are ordinary names
    (f / "dataset" / "..a..").write_bytes(b"a")
    (f / "dataset" / "...").write_bytes(b"b")
    with sync_mount.enclave.client() as c:
        names = sorted(name for name, _ in c.listdir("dataset"))
    assert names == ["...", "..a..", "sub", "x.txt"]
    assert _outside_snapshot(tmp_path) == before


def test_very_long_name_is_enametoolong(sync_mount):
    f = sync_mount.folder
    for name in ("a" * 256, "é" * 128, "b" * 1000):
        with pytest.raises(OSError) as info:
            (f / "dataset" / name).write_bytes(b"1")
        assert info.value.errno == errno.ENAMETOOLONG
        with pytest.raises(OSError) as info:
            (f / "dataset" / name).mkdir()
        assert info.value.errno == errno.ENAMETOOLONG
    (f / "dataset" / ("c" * 255)).write_bytes(b"ok")  # the longest allowed name works
    with sync_mount.enclave.client() as c:
        assert [name for name, _ in c.listdir("dataset")] == ["c" * 255]


def test_symlink_pointing_out_of_the_folder_is_refused(sync_mount, tmp_path):
    f = sync_mount.folder
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    for target in (str(secret), "../../secret.txt", "/etc/passwd", "x"):
        with pytest.raises(OSError) as info:
            (f / "dataset" / "link").symlink_to(target)
        assert info.value.errno == errno.EPERM
    with pytest.raises(OSError) as info:
        os.link(f / "dataset", f / "model" / "hard")
    assert info.value.errno in {errno.EPERM, errno.EISDIR}
    (f / "dataset" / "real").write_bytes(b"r")
    with pytest.raises(OSError) as info:
        os.link(f / "dataset" / "real", f / "model" / "hard")
    assert info.value.errno == errno.EPERM
    with sync_mount.enclave.client() as c:
        assert [name for name, _ in c.listdir("dataset")] == ["real"]
        assert c.listdir("model") == []
    assert not (sync_mount.store / "tree" / "dataset" / "link").exists()


def test_a_symlink_planted_in_the_store_is_not_followed(sync_mount, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    (sync_mount.store / "tree" / "dataset" / "planted").symlink_to(secret)
    with pytest.raises(FileNotFoundError):
        (sync_mount.folder / "dataset" / "planted").read_text()
    with pytest.raises(OSError):
        (sync_mount.folder / "dataset" / "planted").write_text("overwrite")
    assert secret.read_text() == "host secret"


def test_special_files_are_refused(sync_mount):
    with pytest.raises(OSError) as info:
        os.mkfifo(sync_mount.folder / "dataset" / "fifo")
    assert info.value.errno == errno.EPERM


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("dataset/x", errno.EINVAL),
        ("/dataset/../etc", errno.EINVAL),
        ("/dataset/./x", errno.EINVAL),
        ("//dataset", errno.EINVAL),
        ("/dataset//x", errno.EINVAL),
        ("/dataset/x\0y", errno.EINVAL),
        ("/" + "a" * 256, errno.ENAMETOOLONG),
        ("/a" * 2100, errno.ENAMETOOLONG),
    ],
    ids=[
        "relative",
        "dotdot",
        "dot",
        "double-slash-root",
        "double-slash",
        "nul",
        "long-name",
        "long-path",
    ],
)
def test_store_refuses_paths_that_could_escape(tmp_path, path, code):
    store = BackingStore.open_or_create(tmp_path / "s", tmp_path / "f")
    with pytest.raises(OSError) as info:
        split_path(path)
    assert info.value.errno == code
    with pytest.raises(OSError) as info:
        store.host_path(path)
    assert info.value.errno == code
