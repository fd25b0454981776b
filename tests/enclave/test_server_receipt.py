# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""RPC `run` with a nonce and a receipt in its reply (specs/receipts.md §5.2)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enclave.runner.api import RunRequest, RunResult, RunSink, SessionFiles
from enclave.server import EnclaveServer
from enclave.sessionfs import SessionFs
from enclave.transport import SocketServer, listen_unix
from package_format.rpc import FrameLimits
from user_runtime.rpc.client import EnclaveClient, RemoteError


class RecordingRunner:
    """A runner that records each request; it returns a fixed receipt."""

    def __init__(self, receipt: bytes | None) -> None:
        self.receipt = receipt
        self.calls: list[RunRequest] = []

    def run(
        self,
        request: RunRequest,
        session: SessionFiles,
        sink: RunSink,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        self.calls.append(request)
        sink.stdout(b"out\n")
        outputs = ("output/receipt.cbor",) if self.receipt else ()
        return RunResult(0, outputs=outputs, receipt=self.receipt)


def serve(
    tmp_path: Path, runner: RecordingRunner, limits: FrameLimits | None = None
) -> Iterator[str]:
    path = tmp_path / "s.sock"
    server = EnclaveServer(SessionFs(), runner, **({"limits": limits} if limits else {}))
    sock = SocketServer(server, listen_unix(path))
    thread = threading.Thread(target=sock.serve_forever, daemon=True)
    thread.start()
    yield f"unix:{path}"
    sock.shutdown()
    thread.join(5)


@pytest.fixture
def runner() -> RecordingRunner:
    return RecordingRunner(b"\xa3RECEIPT" * 10)


@pytest.fixture
def address(tmp_path: Path, runner: RecordingRunner) -> Iterator[str]:
    yield from serve(tmp_path, runner)


def run(address: str, nonce: bytes | None) -> Any:
    with EnclaveClient.connect(address) as client:
        handle = client.start_run("encrypted/a.nb", "main.py", [], nonce=nonce)
        list(handle.events())
        return handle


def test_nonce_reaches_the_runner_and_the_receipt_comes_back(address, runner) -> None:
    handle = run(address, b"\x07" * 32)
    assert [call.nonce for call in runner.calls] == [b"\x07" * 32]
    assert handle.exit_status == 0
    assert handle.receipt == runner.receipt
    assert handle.outputs == ("output/receipt.cbor",)


def test_run_without_a_nonce_passes_no_nonce_to_the_runner(address, runner) -> None:
    handle = run(address, None)
    assert [call.nonce for call in runner.calls] == [None]
    assert handle.receipt == runner.receipt


def test_run_without_a_receipt_has_none(tmp_path) -> None:
    quiet = RecordingRunner(None)
    for address in serve(tmp_path, quiet):
        handle = run(address, None)
        assert handle.receipt is None
        assert handle.exit_status == 0


def test_receipt_larger_than_a_chunk_stays_in_the_session_only(tmp_path) -> None:
    big = RecordingRunner(b"R" * 70_000)
    for address in serve(tmp_path, big, FrameLimits(max_chunk=65536)):
        handle = run(address, None)
        assert handle.receipt is None  # the client reads output/receipt.cbor instead
        assert handle.outputs == ("output/receipt.cbor",)


def test_nonce_over_1024_bytes_is_refused(address, runner) -> None:
    with pytest.raises(RemoteError) as caught:
        run(address, b"\x01" * 1025)
    assert caught.value.name == "BAD_ARGS"
    assert runner.calls == []
