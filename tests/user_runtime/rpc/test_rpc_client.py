# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The client library against a real server on a Unix socket (server in a thread)."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from enclave.runner.api import RunRequest, RunResult
from enclave.runner.errors import EntrypointNotDeclaredError
from enclave.server import EnclaveServer
from enclave.sessionfs import SessionFs, SessionLimits
from enclave.transport import SocketServer, listen_unix
from package_format.rpc import ErrorCode
from user_runtime.errors import UsageError
from user_runtime.rpc.client import (
    ConnectionLostError,
    EnclaveClient,
    EnclaveUnavailableError,
    RemoteError,
    parse_address,
)


class FakeRunner:
    """Echoes each argument as one stdout line; `block` waits for cancel."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def run(self, request: RunRequest, session, sink, cancel) -> RunResult:
        self.started.set()
        entrypoint = request.entrypoint
        if entrypoint == "undeclared.py":
            raise EntrypointNotDeclaredError("run: entrypoint not declared")
        for arg in request.args:
            sink.stdout(arg.encode() + b"\n")
            # wait for the test to let the next line go (no timing in tests)
            if entrypoint == "stepwise.py":
                self.release.wait(10)
                self.release.clear()
        if entrypoint == "block.py":
            cancel.wait(30)
        sink.stderr(b"done\n")
        return RunResult(3 if entrypoint == "fail.py" else 0)


class Harness:
    def __init__(self, tmp_path: Path, limits: SessionLimits | None = None) -> None:
        self.fs = SessionFs(limits)
        self.runner = FakeRunner()
        self.path = tmp_path / "enclave.sock"
        self.server = SocketServer(EnclaveServer(self.fs, self.runner), listen_unix(self.path))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.address = f"unix:{self.path}"
        self.clients: list[EnclaveClient] = []

    def client(self) -> EnclaveClient:
        client = EnclaveClient.connect(self.address)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.stop()


def test_connect_and_list_top_level(harness: Harness) -> None:
    client = harness.client()
    names = [name for name, _ in client.listdir("")]
    assert names == ["dataset", "encrypted", "model", "output"]
    assert all(info.mode & 0o170000 == 0o040000 for _, info in client.listdir(""))


def test_file_operations_round_trip(harness: Harness) -> None:
    c = harness.client()
    c.mkdir("dataset/sub", 0o750)
    c.create("dataset/sub/a.txt", 0o600)
    assert c.write("dataset/sub/a.txt", 0, b"hello world") == 11
    assert c.read("dataset/sub/a.txt", 6, 100) == b"world"
    c.truncate("dataset/sub/a.txt", 5)
    c.chmod("dataset/sub/a.txt", 0o640)
    c.utimens("dataset/sub/a.txt", 1_000_000_000, 2_000_000_000)
    info = c.stat("dataset/sub/a.txt")
    assert (info.size, info.mode & 0o7777, info.atime_ns, info.mtime_ns) == (
        5,
        0o640,
        10**9,
        2 * 10**9,
    )
    c.rename("dataset/sub/a.txt", "dataset/b.txt")
    assert [n for n, _ in c.listdir("dataset")] == ["b.txt", "sub"]
    assert dict(c.listdir("dataset"))["b.txt"].size == 5
    c.unlink("dataset/b.txt")
    c.rmdir("dataset/sub")
    assert c.listdir("dataset") == []
    assert harness.fs.listdir("dataset") == []


def test_create_truncates_existing_file(harness: Harness) -> None:
    c = harness.client()
    c.create("model/m.bin")
    c.write("model/m.bin", 0, b"x" * 100)
    c.create("model/m.bin")  # O_TRUNC
    assert c.stat("model/m.bin").size == 0
    with pytest.raises(RemoteError) as info:
        c.create("model/m.bin", exclusive=True)
    assert info.value.errno == errno.EEXIST


def test_remote_errors_carry_errno(harness: Harness) -> None:
    c = harness.client()
    cases = [
        (lambda: c.stat("dataset/missing"), errno.ENOENT),
        (lambda: c.create("dataset/missing/file"), errno.ENOENT),
        (lambda: c.mkdir("dataset"), errno.EEXIST),
        (lambda: c.rmdir("output"), errno.EBUSY),
        (lambda: c.read("dataset", 0, 1), errno.EISDIR),
        (lambda: c.stat("a" * 300), errno.ENAMETOOLONG),
    ]
    for call, expected in cases:
        with pytest.raises(RemoteError) as info:
            call()
        assert info.value.errno == expected
        assert info.value.name == errno.errorcode[expected]
    c.mkdir("dataset/d")
    c.create("dataset/d/f")
    with pytest.raises(RemoteError) as info:
        c.rmdir("dataset/d")
    assert info.value.errno == errno.ENOTEMPTY
    c.ping()  # the connection is still good after errors


def test_pipelined_writes_large_file(harness: Harness) -> None:
    c = harness.client()
    c.window_requests = 4  # force the window to fill and drain
    data = os.urandom(3 * 1024 * 1024 + 123)
    c.create("dataset/big")
    c.write_pipelined("dataset/big", 0, data[: 2 * 1024 * 1024])
    c.write_pipelined("dataset/big", 2 * 1024 * 1024, data[2 * 1024 * 1024 :])
    c.flush("dataset/big")
    assert c.stat("dataset/big").size == len(data)
    assert c.read("dataset/big", 0, len(data)) == data


def test_pipelined_write_error_raised_on_flush(harness: Harness) -> None:
    c = harness.client()
    c.write_pipelined("dataset/nowhere/f", 0, b"abc")  # returns at once
    with pytest.raises(RemoteError) as info:
        c.flush("dataset/nowhere/f")
    assert info.value.errno == errno.ENOENT
    c.flush("dataset/nowhere/f")  # the error was reported once


def test_pipelined_write_first_error_kept(tmp_path: Path) -> None:
    h = Harness(tmp_path, SessionLimits(budget_bytes=1024 * 1024))
    try:
        c = h.client()
        c.create("dataset/f")
        c.write_pipelined("dataset/f", 0, b"a" * (1024 * 1024))
        c.write_pipelined("dataset/f", 1024 * 1024, b"b" * 10)  # ENOSPC
        c.write_pipelined("dataset/f", 10**9, b"c")  # ENOSPC again
        with pytest.raises(RemoteError) as info:
            c.flush("dataset/f")
        assert info.value.errno == errno.ENOSPC
        assert c.stat("dataset/f").size == 1024 * 1024
        assert c.statfs()["free_bytes"] == 0
    finally:
        h.stop()


def test_run_streams_output_and_exit_status(harness: Harness) -> None:
    c = harness.client()
    out: list[bytes] = []
    err: list[bytes] = []
    status = c.run(
        "encrypted/app", "fail.py", ["one", "two"], on_stdout=out.append, on_stderr=err.append
    )
    assert (status, out, err) == (3, [b"one\n", b"two\n"], [b"done\n"])


def test_run_output_streams_while_fs_ops_continue(harness: Harness) -> None:
    c = harness.client()
    handle = c.start_run("encrypted/app", "stepwise.py", ["first", "second"])
    events = handle.events()
    first = next(events)
    assert first.data == b"first\n"  # arrived while the run is still going
    c.mkdir("dataset/during-run")  # the same connection serves fs ops meanwhile
    assert c.stat("dataset/during-run").mode & 0o040000
    harness.runner.release.set()
    second = next(events)
    assert second.data == b"second\n"
    harness.runner.release.set()
    rest = list(events)
    assert [o.stream for o in rest] == ["stderr"]
    assert handle.exit_status == 0


def test_second_run_while_one_is_going_gets_busy(harness: Harness) -> None:
    c1 = harness.client()
    c2 = harness.client()
    handle = c1.start_run("encrypted/app", "block.py", [])
    assert harness.runner.started.wait(10)
    with pytest.raises(RemoteError) as info:
        c2.run("encrypted/app", "echo.py", ["x"])
    assert info.value.code == ErrorCode.BUSY
    assert c2.cancel() is True
    with pytest.raises(RemoteError) as cancelled:
        list(handle.events())
    assert cancelled.value.code == ErrorCode.CANCELLED
    assert c2.run("encrypted/app", "echo.py", ["again"]) == 0  # the slot is free again


def test_run_failure_is_typed(harness: Harness) -> None:
    c = harness.client()
    with pytest.raises(RemoteError) as info:
        c.run("encrypted/app", "undeclared.py", [])
    assert info.value.code == ErrorCode.ENTRYPOINT_NOT_DECLARED
    assert info.value.errno is None


def test_cancel_without_run_reports_false(harness: Harness) -> None:
    assert harness.client().cancel() is False


def test_connect_to_missing_socket_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(EnclaveUnavailableError) as info:
        EnclaveClient.connect(f"unix:{tmp_path / 'none.sock'}")
    assert "cannot reach the enclave" in str(info.value)


def test_bad_address_is_usage_error() -> None:
    for address in ("tcp:1.2.3.4:5", "unix:", "vsock:x:1", "vsock:3"):
        with pytest.raises(UsageError):
            parse_address(address)


def test_server_shutdown_mid_request_is_connection_lost(harness: Harness) -> None:
    c = harness.client()
    handle = c.start_run("encrypted/app", "block.py", [])
    assert harness.runner.started.wait(10)
    harness.server.shutdown()
    with pytest.raises(ConnectionLostError):
        list(handle.events())
    with pytest.raises(ConnectionLostError):
        c.ping()
    assert not c.connected


def test_call_pipelined_errors_surface_on_flush(harness: Harness) -> None:
    c = harness.client()
    c.create("dataset/f")
    c.write_pipelined("dataset/f", 0, b"data")
    c.call_pipelined("chmod", {"path": "dataset/f", "mode": 0o600}, key="dataset/f")
    c.call_pipelined(
        "utimens", {"path": "dataset/f", "atime_ns": 1, "mtime_ns": 2}, key="dataset/f"
    )
    c.flush("dataset/f")
    info = c.stat("dataset/f")
    assert (info.size, info.mode & 0o777, info.mtime_ns) == (4, 0o600, 2)
    c.call_pipelined("chmod", {"path": "dataset/missing", "mode": 0o600}, key="k")
    c.call_pipelined("mkdir", {"path": "dataset/new"}, key="k")
    with pytest.raises(RemoteError) as err:
        c.flush("k")
    assert err.value.errno == errno.ENOENT
    assert c.stat("dataset/new").mode & 0o040000  # later requests still ran


def test_concurrent_callers_share_one_connection(harness: Harness) -> None:
    c = harness.client()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            path = f"dataset/w{n}"
            c.create(path)
            payload = bytes([n]) * (300_000 + n)
            c.write_pipelined(path, 0, payload)
            c.flush(path)
            assert c.read(path, 0, len(payload)) == payload
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(c.listdir("dataset")) == 8


def test_listdir_of_a_large_directory_comes_in_pages(harness: Harness) -> None:
    c = harness.client()
    names = sorted(f"{i:05d}-" + "n" * 200 for i in range(1500))  # ~500 KB of entries
    for name in names:
        c.call_pipelined("create", {"path": f"dataset/{name}"}, key="bulk")
    c.flush("bulk")
    listed = c.listdir("dataset")
    assert [n for n, _ in listed] == names
    assert all(info.size == 0 for _, info in listed)


def test_calls_after_close_say_the_connection_was_closed(harness: Harness) -> None:
    c = harness.client()
    c.close()
    with pytest.raises(ConnectionLostError) as info:
        c.ping()
    assert str(info.value) == "the connection to the enclave was closed"
    assert not c.connected
