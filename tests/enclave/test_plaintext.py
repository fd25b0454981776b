# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The private RAM directory: created 0700, wiped however its tree was left."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from enclave.plaintext import PrivateDir, WorkDirError, wipe_tree


def test_private_dir_is_0700_and_removed(tmp_path: Path) -> None:
    with PrivateDir(tmp_path) as work:
        assert stat.S_IMODE(work.path.stat().st_mode) == 0o700
        (work.path / "a").write_bytes(b"secret")
    assert list(tmp_path.iterdir()) == []


def test_wipe_handles_readonly_dirs_and_files(tmp_path: Path) -> None:
    root = tmp_path / "w"
    (root / "d" / "e").mkdir(parents=True)
    (root / "d" / "e" / "f").write_bytes(b"secret")
    (root / "d" / "e" / "f").chmod(0o400)
    (root / "d" / "e").chmod(0o500)
    (root / "d").chmod(0o000)
    assert wipe_tree(root) == []
    assert not root.exists()


def test_wipe_does_not_follow_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"user data")
    root = tmp_path / "w"
    root.mkdir()
    (root / "link").symlink_to(outside)
    (root / "flink").symlink_to(outside / "keep")
    assert wipe_tree(root) == []
    assert (outside / "keep").read_bytes() == b"user data"


def test_wipe_zeroes_before_unlink(tmp_path: Path) -> None:
    # A second hard link keeps the inode alive: it must hold zeros after the wipe.
    root = tmp_path / "w"
    root.mkdir()
    (root / "f").write_bytes(b"secret" * 1000)
    keep = tmp_path / "hardlink"
    keep.hardlink_to(root / "f")
    wipe_tree(root)
    assert keep.read_bytes() == bytes(6000)


def test_missing_base_is_typed_error(tmp_path: Path) -> None:
    with pytest.raises(WorkDirError):
        PrivateDir(tmp_path / "missing")
