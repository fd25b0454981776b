# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 6 item 1: every file operation on a real FUSE mount, checked against the enclave."""

from __future__ import annotations

import os

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
