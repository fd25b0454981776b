# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The replay and the reconnecting link, against a real enclave server (no FUSE needed)."""

from __future__ import annotations

import errno

import pytest

from user_runtime.rpc.client import ConnectionLostError, EnclaveClient, RemoteError
from user_runtime.sync.link import EnclaveLink, RetryPolicy
from user_runtime.sync.operations import classify
from user_runtime.sync.reconcile import reconcile
from user_runtime.sync.store import BackingStore


@pytest.fixture
def store(tmp_path):
    s = BackingStore.open_or_create(tmp_path / "store", tmp_path / "folder")
    (s.tree / "dataset" / "a.csv").write_bytes(b"1,2\n")
    (s.tree / "model" / "deep").mkdir()
    (s.tree / "model" / "deep" / "m.h5").write_bytes(b"m" * 5000)
    return s


def _tree(client, path=""):
    out = {}
    for name, info in client.listdir(path):
        sub = f"{path}/{name}" if path else name
        if sub == "output":
            continue
        out[sub] = info.size if info.mode & 0o040000 == 0 else "dir"
        if out[sub] == "dir":
            out.update(_tree(client, sub))
    return out


def test_reconcile_makes_the_enclave_equal_to_the_store(sync_enclave, store):
    with sync_enclave.client() as c:
        c.create("dataset/stray")
        c.mkdir("encrypted/x")
        c.create("encrypted/x/y")
        assert reconcile(c, store, classify) == 2
        assert _tree(c) == {
            "dataset": "dir",
            "dataset/a.csv": 4,
            "encrypted": "dir",
            "model": "dir",
            "model/deep": "dir",
            "model/deep/m.h5": 5000,
        }
        assert c.read("model/deep/m.h5", 0, 10000) == b"m" * 5000
        # equal size and time: nothing is uploaded again
        assert reconcile(c, store, classify) == 0
        # a changed file is uploaded again
        (store.tree / "dataset" / "a.csv").write_bytes(b"3,4\n5,6\n")
        assert reconcile(c, store, classify) == 1
        assert c.read("dataset/a.csv", 0, 100) == b"3,4\n5,6\n"


@pytest.mark.parametrize("sync_enclave", [4096], indirect=True)
def test_reconcile_of_a_store_bigger_than_the_budget_keeps_the_store(sync_enclave, store):
    with sync_enclave.client() as c:
        reconcile(c, store, classify)  # logs, does not raise
        assert c.stat("dataset/a.csv").size == 4
    assert (store.tree / "model" / "deep" / "m.h5").stat().st_size == 5000


def test_link_reconnects_and_replays_after_enclave_restart(sync_enclave, store):
    link = EnclaveLink(lambda: EnclaveClient.connect(sync_enclave.address), store, classify)
    link.start()
    try:
        assert link.call(lambda c: c.stat("dataset/a.csv")).size == 4
        sync_enclave.restart()
        assert link.call(lambda c: c.stat("model/deep/m.h5")).size == 5000
        assert link.replays == 1
    finally:
        link.close()


def test_link_fails_with_eio_when_the_enclave_stays_away(sync_enclave, store):
    sleeps = []
    link = EnclaveLink(
        lambda: EnclaveClient.connect(sync_enclave.address),
        store,
        classify,
        policy=RetryPolicy(first_delay=0.01, max_delay=0.02, give_up_after=0.2),
        sleep=sleeps.append,
        clock=lambda: 0.05 * len(sleeps),
    )
    link.start()
    sync_enclave.kill()
    with pytest.raises(OSError) as info:
        link.call(lambda c: c.stat("dataset"))
    assert info.value.errno == errno.EIO
    assert sleeps  # it retried with backoff before giving up
    link.close()


def test_classify_maps_enclave_errors_to_errno():
    assert classify(RemoteError(28, "ENOSPC", "full")) == errno.ENOSPC
    assert classify(RemoteError(1004, "NOT_ALLOWED", "no")) == errno.EPERM
    assert classify(RemoteError(1003, "BUSY", "busy")) == errno.EBUSY
    assert classify(RemoteError(1007, "INTERNAL", "x")) == errno.EIO
    assert classify(ConnectionLostError("gone")) is None
    assert classify(OSError(errno.ENOSPC, "host disk full")) == errno.ENOSPC
