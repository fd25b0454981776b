# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 15 item 3: a second sync of the same enclave would empty it; it is refused (sync.md §7)."""

from __future__ import annotations

import os

import pytest
from conftest import SyncMount

from user_runtime.sync import mounts

pytestmark = pytest.mark.fuse


def _enclave_has(enclave, path: str, data: bytes) -> bool:
    with enclave.client() as c:
        return c.read(path, 0, len(data) + 1) == data


def test_second_sync_of_the_same_enclave_is_refused_and_keeps_its_files(sync_mount, tmp_path):
    (sync_mount.folder / "dataset" / "rows.csv").write_bytes(b"a,b\n1,2\n")
    with (sync_mount.folder / "dataset" / "rows.csv").open("rb+") as f:
        os.fsync(f.fileno())  # the write reaches the enclave before the second sync
    assert _enclave_has(sync_mount.enclave, "dataset/rows.csv", b"a,b\n1,2\n")
    second = SyncMount(
        tmp_path / "second_folder", tmp_path / "second_store", sync_mount.state, sync_mount.enclave
    )
    try:
        result = second.start(check=False)
    finally:
        if mounts.mount_type(second.folder) is not None:
            second.stop()  # today's main mounts it: do not leave it behind
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(sync_mount.folder) in lines[0]
    assert f"(pid {sync_mount.pid})" in lines[0]
    assert "sync --stop" in lines[0]
    assert mounts.mount_type(second.folder) is None
    assert mounts.read_state(second.folder, second.state) is None
    # The first mount and the enclave still agree: nothing was replayed over them.
    assert _enclave_has(sync_mount.enclave, "dataset/rows.csv", b"a,b\n1,2\n")
    assert (sync_mount.folder / "dataset" / "rows.csv").read_bytes() == b"a,b\n1,2\n"


def test_second_sync_daemon_cannot_take_the_enclave_lock(sync_mount, tmp_path):
    # Two syncs started at once both pass the state check; the daemon's lock stops the second.
    with pytest.raises(mounts.EnclaveAlreadySyncedError) as info:
        mounts.EnclaveLock(sync_mount.enclave.address, tmp_path / "other", sync_mount.state)
    assert str(sync_mount.folder) in str(info.value)


def test_sync_of_the_same_enclave_after_stop_works(sync_mount, tmp_path):
    sync_mount.stop()
    second = SyncMount(
        tmp_path / "second_folder", tmp_path / "second_store", sync_mount.state, sync_mount.enclave
    )
    second.start()
    try:
        assert mounts.mount_type(second.folder) is not None
    finally:
        second.stop()
