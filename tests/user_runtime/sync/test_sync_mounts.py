# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Mount bookkeeping without a mount: state files, /proc/mounts parsing, pids, store marker."""

from __future__ import annotations

import os

import pytest

from user_runtime.sync import mounts
from user_runtime.sync.store import BackingStore, StoreError, default_store_dir


def test_state_file_round_trip_and_owner_check(tmp_path):
    state = mounts.MountState(str(tmp_path / "f"), str(tmp_path / "s"), "unix:/x.sock", 1234)
    mounts.write_state(state, tmp_path / "st")
    assert mounts.read_state(tmp_path / "f", tmp_path / "st") == state
    mounts.remove_state(tmp_path / "f", tmp_path / "st", pid=999)  # another daemon's: kept
    assert mounts.read_state(tmp_path / "f", tmp_path / "st") == state
    mounts.remove_state(tmp_path / "f", tmp_path / "st", pid=1234)
    assert mounts.read_state(tmp_path / "f", tmp_path / "st") is None


def test_damaged_state_file_reads_as_none(tmp_path):
    path = mounts.state_path(tmp_path / "f", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert mounts.read_state(tmp_path / "f", tmp_path) is None


def test_mount_type_reads_escaped_mount_points(tmp_path):
    folder = tmp_path / "my folder"
    table = tmp_path / "mounts"
    escaped = str(folder).replace(" ", "\\040")
    table.write_text(f"proc /proc proc rw 0 0\nnitro-bundles-sync {escaped} fuse.nbsync rw 0 0\n")
    assert mounts.mount_type(folder, table) == "fuse.nbsync"
    assert mounts.mount_type(tmp_path / "other", table) is None


def test_pid_alive(tmp_path):
    assert mounts.pid_alive(os.getpid())
    assert not mounts.pid_alive(2**22 + 12345)


def test_unmount_of_a_folder_nothing_can_unmount_raises(tmp_path, monkeypatch):
    monkeypatch.setattr(mounts, "mount_type", lambda folder, *a: "fuse.nbsync")
    with pytest.raises(mounts.MountError) as info:
        mounts.unmount(tmp_path / "f", runner=lambda argv: 1)
    assert "cannot unmount" in str(info.value)


def test_default_state_dir_follows_nb_state_dir(tmp_path):
    assert mounts.default_state_dir({"NB_STATE_DIR": str(tmp_path)}) == tmp_path
    assert mounts.default_state_dir({}).name == ".nitro-bundles-local"


def test_store_marker_is_checked(tmp_path):
    store = BackingStore.open_or_create(tmp_path / "s", tmp_path / "f")
    assert sorted(p.name for p in store.tree.iterdir()) == ["dataset", "encrypted", "model"]
    assert BackingStore.open_or_create(tmp_path / "s", tmp_path / "f").tree == store.tree
    (tmp_path / "foreign").mkdir()
    with pytest.raises(StoreError):
        BackingStore.open_or_create(tmp_path / "foreign", tmp_path / "f")
    assert default_store_dir(tmp_path / "synced_folder") == tmp_path / ".synced_folder.nb-store"
