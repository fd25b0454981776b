# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The write queue's held sends and the RPC client's `batch()`, against a real enclave server."""

from __future__ import annotations

import errno
import os

import pytest

from user_runtime.rpc.client import EnclaveClient, RemoteError
from user_runtime.sync.link import EnclaveLink
from user_runtime.sync.operations import classify
from user_runtime.sync.store import BackingStore
from user_runtime.sync.writes import WriteQueue


@pytest.fixture
def link(sync_enclave, tmp_path):
    store = BackingStore.open_or_create(tmp_path / "store", tmp_path / "folder")
    lnk = EnclaveLink(lambda: EnclaveClient.connect(sync_enclave.address), store, classify)
    lnk.start()
    yield lnk
    lnk.close()


def _queue(link, errors):
    queue = WriteQueue(link, lambda token, code: errors.append((token, code)))
    queue.hold_seconds = 3600.0  # only drain() sends what is held, in these tests
    return queue


def _create(path, key):
    args = {"path": path, "mode": 0o644, "truncate": False, "exclusive": False}
    return lambda c: c.call_pipelined("create", args, key=key)


def test_batch_sends_its_requests_in_one_message(sync_enclave):
    with EnclaveClient.connect(sync_enclave.address) as c:
        sends = []
        real = c._send_parts
        c._send_parts = lambda parts: (sends.append(len(parts)), real(parts))
        with c.batch():
            c.call_pipelined("create", {"path": "dataset/a", "mode": 0o600}, key="k")
            c.write_pipelined("dataset/a", 0, b"abc", key="k")
            assert sends == []  # nothing leaves inside the block
        assert len(sends) == 1
        c.flush("k")
        assert c.read("dataset/a", 0, 10) == b"abc"


def test_batch_errors_surface_on_flush(sync_enclave):
    with EnclaveClient.connect(sync_enclave.address) as c:
        with c.batch():
            c.call_pipelined("create", {"path": "dataset/missing/a", "mode": 0o600}, key="k")
            c.write_pipelined("dataset/missing/a", 0, b"abc", key="k")
        with pytest.raises(RemoteError) as err:
            c.flush("k")
        assert err.value.errno == errno.ENOENT


def test_small_requests_are_held_until_drain_then_sent_in_order(link, sync_enclave):
    errors = []
    queue = _queue(link, errors)
    stored = []
    queue.put_call("h", _create("dataset/f", "fh:1"))
    queue.put("h", local=stored.append, path="dataset/f", offset=0, data=b"hello", key="fh:1")
    assert stored == [b"hello"]  # the store write is done at once
    with EnclaveClient.connect(sync_enclave.address) as c:
        assert [name for name, _ in c.listdir("dataset")] == []  # the sends are held
        queue.drain()
        link.call(lambda cl: cl.flush("fh:1"))
        assert c.read("dataset/f", 0, 100) == b"hello"
    queue.stop()
    assert errors == []


def test_a_large_write_leaves_after_the_held_requests(link, sync_enclave):
    errors = []
    queue = _queue(link, errors)
    big = bytes(range(256)) * 1024  # over inline_bytes: goes through the queue thread
    queue.put_call("h", _create("dataset/big", "fh:2"))
    queue.put("h", local=None, path="dataset/big", offset=0, data=b"x" * 10, key="fh:2")
    queue.put("h", local=None, path="dataset/big", offset=0, data=memoryview(big), key="fh:2")
    queue.drain()
    link.call(lambda c: c.flush("fh:2"))
    with EnclaveClient.connect(sync_enclave.address) as c:
        assert c.read("dataset/big", 0, len(big) + 1) == big
    queue.stop()
    assert errors == []


def test_a_failed_store_write_is_not_sent(link, sync_enclave):
    errors = []
    queue = _queue(link, errors)

    def full(data):
        raise OSError(errno.ENOSPC, "host disk full")

    queue.put_call("h", _create("dataset/g", "fh:3"))
    queue.put("h2", local=full, path="dataset/g", offset=0, data=b"lost", key="fh:3")
    queue.drain()
    link.call(lambda c: c.flush("fh:3"))
    with EnclaveClient.connect(sync_enclave.address) as c:
        assert c.stat("dataset/g").size == 0
    queue.stop()
    assert errors == [("h2", errno.ENOSPC)]


def test_stop_sends_what_is_held(link, sync_enclave):
    queue = _queue(link, [])
    queue.put_call("h", _create("dataset/s", "fh:4"))
    queue.stop()
    link.call(lambda c: c.flush("fh:4"))
    with EnclaveClient.connect(sync_enclave.address) as c:
        assert c.stat("dataset/s").size == 0


def test_write_from_a_file_sends_its_bytes(sync_enclave, tmp_path):
    data = bytes(range(256)) * 9000  # over two 1 MiB chunks
    (tmp_path / "big").write_bytes(data)
    (tmp_path / "patch").write_bytes(b"Z" * 200)
    big = os.open(tmp_path / "big", os.O_RDONLY)
    patch = os.open(tmp_path / "patch", os.O_RDONLY)
    try:
        with EnclaveClient.connect(sync_enclave.address) as c:
            c.create("dataset/from")
            c.write_pipelined_from("dataset/from", 0, big, len(data), key="k")
            with c.batch():  # inside a batch the bytes are read, not sent from the file
                c.write_pipelined_from("dataset/from", 100, patch, 50, key="k")
            c.flush("k")
            got = c.read("dataset/from", 0, len(data) + 1)
            assert got == data[:100] + b"Z" * 50 + data[150:]
    finally:
        os.close(big)
        os.close(patch)


def test_write_from_a_shrunk_file_sends_zeros_and_the_connection_stays_usable(
    sync_enclave, tmp_path
):
    source = tmp_path / "store-file"
    source.write_bytes(b"abc")
    fd = os.open(source, os.O_RDONLY)
    try:
        with EnclaveClient.connect(sync_enclave.address) as c:
            c.create("dataset/shrunk")
            c.write_pipelined_from("dataset/shrunk", 0, fd, 8, key="k")
            c.flush("k")
            assert c.read("dataset/shrunk", 0, 100) == b"abc" + bytes(5)
            assert c.stat("dataset/shrunk").size == 8
    finally:
        os.close(fd)
