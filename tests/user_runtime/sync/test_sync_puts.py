# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Held small files leave as `puts` requests (specs/sync.md §6.1, rpc-protocol.md §7.7)."""

from __future__ import annotations

import errno

import pytest

from user_runtime.rpc.client import EnclaveClient, PutFile, RemoteError
from user_runtime.sync.link import EnclaveLink
from user_runtime.sync.operations import classify
from user_runtime.sync.store import BackingStore
from user_runtime.sync.writes import PutSend, WriteQueue


@pytest.fixture
def link(sync_enclave, tmp_path):
    store = BackingStore.open_or_create(tmp_path / "store", tmp_path / "folder")
    lnk = EnclaveLink(lambda: EnclaveClient.connect(sync_enclave.address), store, classify)
    lnk.start()
    yield lnk
    lnk.close()


def _record_ops(client: EnclaveClient) -> list[tuple[str, int]]:
    """(op, files) of every request the client sends from now on."""
    ops: list[tuple[str, int]] = []
    real = client._send

    def send(request_id, op, args, body=b""):
        ops.append((op, len(args["files"]) if op == "puts" else 1))
        return real(request_id, op, args, body)

    client._send = send
    return ops


def test_puts_reports_each_files_verdict_under_its_own_key(sync_enclave):
    with EnclaveClient.connect(sync_enclave.address) as c:
        c.puts_pipelined(
            [
                PutFile("k1", "dataset/a", 0o600, b"one"),
                PutFile("k2", "dataset/missing/b", 0o644, b"two"),
                PutFile("k3", "dataset/c", 0o644, b"three"),
            ]
        )
        c.flush("k1")
        with pytest.raises(RemoteError) as err:
            c.flush("k2")
        assert err.value.errno == errno.ENOENT
        assert "dataset/missing/b" in str(err.value)
        c.flush("k3")
        assert c.read("dataset/a", 0, 10) == b"one"
        assert c.read("dataset/c", 0, 10) == b"three"
        assert c.stat("dataset/a").mode & 0o7777 == 0o600


def test_puts_refused_whole_fails_every_key(sync_enclave):
    with EnclaveClient.connect(sync_enclave.address) as c:
        real = c._send
        # A body one byte short of the sizes: the server refuses the request as a whole.
        c._send = lambda rid, op, args, body=b"": real(rid, op, args, body[:-1])
        c.puts_pipelined(
            [PutFile("k1", "dataset/a", 0o644, b"a"), PutFile("k2", "dataset/b", 0o644, b"b")]
        )
        for key in ("k1", "k2"):
            with pytest.raises(RemoteError) as err:
                c.flush(key)
            assert err.value.name == "BAD_ARGS"


def test_puts_over_the_limits_is_refused_by_the_client(sync_enclave):
    with EnclaveClient.connect(sync_enclave.address) as c:
        with pytest.raises(ValueError, match="over the limits"):
            c.puts_pipelined([])
        with pytest.raises(ValueError, match="over the limits"):
            c.puts_pipelined([PutFile("k", "dataset/a", 0o644, bytes(c.chunk_size + 1))])
        assert c.puts_fits(1024, c.chunk_size, 0)
        assert not c.puts_fits(1025, 0, 0)
        assert not c.puts_fits(1, c.chunk_size + 1, 0)
        assert not c.puts_fits(1, 0, c.limits.max_header)


def test_held_small_files_leave_as_few_puts_requests_and_all_arrive(link, sync_enclave):
    client = link.call(lambda c: c)
    ops = _record_ops(client)
    errors: list[tuple[object, int]] = []
    queue = WriteQueue(link, lambda token, code: errors.append((token, code)))
    queue.hold_seconds = 3600.0  # only drain() sends what is held
    files = [
        PutFile(f"fh:{i}", f"dataset/f{i:04d}", 0o644, bytes([i % 256]) * 4096) for i in range(600)
    ]
    for f in files:
        queue.put_call(f.key, PutSend(f), len(f.data))
    queue.drain()
    for f in files:
        link.call(lambda c, key=f.key: c.flush(key))
    queue.stop()
    assert errors == []
    assert {op for op, _ in ops} == {"puts"}
    assert sum(n for _, n in ops) == 600
    assert len(ops) <= 600 // 100  # ~128 files (512 KiB held) per request, not one each
    with EnclaveClient.connect(sync_enclave.address) as c:
        names = [name for name, _ in c.listdir("dataset")]
        assert len(names) == 600
        assert c.read("dataset/f0257", 0, 8192) == bytes([257 % 256]) * 4096


def test_a_refused_file_in_a_batch_fails_only_its_own_token(link):
    errors: list[tuple[object, int]] = []
    queue = WriteQueue(link, lambda token, code: errors.append((token, code)))
    queue.hold_seconds = 3600.0
    files = [
        PutFile("fh:1", "dataset/ok1", 0o644, b"1"),
        PutFile("fh:2", "dataset/nofolder/x", 0o644, b"2"),
        PutFile("fh:3", "dataset/ok3", 0o644, b"3"),
    ]
    for f in files:
        queue.put_call(f.key, PutSend(f), len(f.data))
    queue.drain()
    verdicts = {}
    for f in files:
        try:
            link.call(lambda c, key=f.key: c.flush(key))
            verdicts[f.key] = 0
        except OSError as e:
            verdicts[f.key] = e.errno
    queue.stop()
    assert verdicts == {"fh:1": 0, "fh:2": errno.ENOENT, "fh:3": 0}


@pytest.mark.fuse
@pytest.mark.parametrize("sync_enclave", [8 * 1024 * 1024], indirect=True)
def test_one_refused_file_among_many_small_ones_fails_alone_through_the_mount(sync_mount):
    folder = sync_mount.folder / "dataset"
    with sync_mount.enclave.client() as c:
        free = c.statfs()["free_bytes"]
    (folder / "filler.bin").write_bytes(
        b"f" * (free - 90 * 1024)
    )  # room for the 40 small ones, not the big one
    small = {f"s{i:02d}.csv": bytes([65 + i % 26]) * 2048 for i in range(40)}
    names = [*list(small)[:20], "big.csv", *list(small)[20:]]
    for name in names:  # closed back to back: they leave in the same few `puts`
        (folder / name).write_bytes(small.get(name, b"b" * 60 * 1024))
    assert sync_mount.settle()["failed"] == {"dataset/big.csv": "ENOSPC"}
    with sync_mount.enclave.client() as c:
        for name, data in small.items():
            assert c.read(f"dataset/{name}", 0, 4096) == data, name
    with pytest.raises(OSError) as info:  # the next operation on it says so, once (§6.3)
        (folder / "big.csv").read_bytes()
    assert info.value.errno == errno.ENOSPC
    assert (folder / "big.csv").read_bytes() == b"b" * 60 * 1024  # the host keeps it whole


@pytest.mark.timeout(120)  # the bug this guards against was a hang
def test_many_held_small_writes_never_cork_more_requests_than_the_window(link, sync_enclave):
    # Small writes to files the enclave already has stay one request each: a `batch()`
    # of more than the client's window (64) would wait forever for corked answers.
    with EnclaveClient.connect(sync_enclave.address) as c:
        for i in range(100):
            c.put(f"dataset/w{i:03d}", b"")
    errors: list[tuple[object, int]] = []
    queue = WriteQueue(link, lambda token, code: errors.append((token, code)))
    queue.hold_seconds = 3600.0
    for i in range(100):
        queue.put(i, local=None, path=f"dataset/w{i:03d}", offset=0, data=b"w" * 100, key=f"k{i}")
    queue.drain()
    for i in range(100):
        link.call(lambda c, key=f"k{i}": c.flush(key))
    queue.stop()
    assert errors == []
    with EnclaveClient.connect(sync_enclave.address) as c:
        assert all(c.stat(f"dataset/w{i:03d}").size == 100 for i in range(100))
