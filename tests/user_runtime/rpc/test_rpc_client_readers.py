# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Who reads the client's socket: the waiting thread itself, never the main thread."""

from __future__ import annotations

import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_rpc_client import Harness

from user_runtime.rpc.client import ConnectionLostError, EnclaveClient


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.stop()


class RecordingSocket:
    """The client's socket, noting which thread reads from it."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.readers: set[int] = set()

    def recv_into(self, *args: Any) -> int:
        self.readers.add(threading.get_ident())
        return self._sock.recv_into(*args)

    def recv(self, *args: Any) -> bytes:
        self.readers.add(threading.get_ident())
        return self._sock.recv(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _recording(client: EnclaveClient) -> RecordingSocket:
    recorder = RecordingSocket(client._sock)  # the test watches the client's socket
    client._sock = recorder  # type: ignore[assignment]
    return recorder


def _in_thread(fn: Any) -> int:
    errors: list[BaseException] = []
    ident: list[int] = []

    def body() -> None:
        ident.append(threading.get_ident())
        try:
            fn()
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(30)
    assert errors == []
    return ident[0]


def test_waiting_worker_thread_reads_its_own_reply(harness: Harness) -> None:
    # The fast path: no hand-over to another thread between the reply and its caller.
    c = harness.client()
    sock = _recording(c)

    def calls() -> None:
        c.ping()
        c.create("dataset/a")
        c.write_pipelined("dataset/a", 0, b"x" * 100_000)
        c.flush("dataset/a")
        assert c.stat("dataset/a").size == 100_000

    worker = _in_thread(calls)
    assert sock.readers == {worker}


def test_main_thread_never_reads_the_socket(harness: Harness) -> None:
    # A Ctrl-C landing between a recv and its bookkeeping would lose bytes mid-frame.
    c = harness.client()
    sock = _recording(c)
    c.ping()
    c.create("dataset/b")
    assert c.write("dataset/b", 0, b"y" * 10) == 10
    out: list[bytes] = []
    assert c.run("encrypted/app", "ok.py", ["one", "two"], on_stdout=out.append) == 0
    assert out == [b"one\n", b"two\n"]
    assert sock.readers
    assert threading.get_ident() not in sock.readers


def test_many_waiting_threads_all_get_their_replies(harness: Harness) -> None:
    # One thread reads at a time; the replies it reads for the others reach them.
    c = harness.client()
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def worker(n: int) -> None:
        try:
            start.wait(10)
            for i in range(50):
                path = f"dataset/t{n}-{i}"
                c.put(path, bytes([n, i]) * 1000)
                assert c.read(path, 0, 4) == bytes([n, i, n, i])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    c.ping()  # the main thread waits meanwhile, through the helper
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(c.listdir("dataset")) == 300


def test_idle_connection_notices_the_server_going_away(harness: Harness) -> None:
    # Nobody waits for a reply, so nobody is reading: `connected` looks itself.
    c = harness.client()
    c.ping()
    assert c.connected
    harness.server.shutdown()
    deadline = time.monotonic() + 10
    while c.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not c.connected
    with pytest.raises(ConnectionLostError):
        c.ping()


def test_reply_read_by_another_waiting_thread_reaches_its_caller(harness: Harness) -> None:
    # A worker following a paused run is the reader, blocked in recv; a second
    # worker's stat reply is read by it and handed over.
    c = harness.client()
    sock = _recording(c)
    handle = c.start_run("encrypted/app", "stepwise.py", ["first", "second"])
    seen: list[bytes] = []
    got = threading.Semaphore(0)

    def follow_run() -> None:
        for output in handle.events():
            seen.append(output.data)
            got.release()

    runner = threading.Thread(target=follow_run)
    runner.start()
    assert got.acquire(timeout=10)  # "first": the run now waits for `release`
    deadline = time.monotonic() + 10
    while not c._reading and time.monotonic() < deadline:  # the follower is back in recv
        time.sleep(0.01)
    modes: list[int] = []
    stat_thread = _in_thread(lambda: modes.append(c.stat("dataset").mode))
    assert [stat.S_ISDIR(mode) for mode in modes] == [True]
    assert stat_thread not in sock.readers  # its reply came through the run's reader
    harness.runner.release.set()
    assert got.acquire(timeout=10)  # "second"
    harness.runner.release.set()
    runner.join(30)
    assert seen[:2] == [b"first\n", b"second\n"]
    assert handle.exit_status == 0
