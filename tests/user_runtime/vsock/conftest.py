# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Fixtures: a real back-end (in a thread) and the fake front-end connected to it."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from vsock_fake import TIMEOUT, FakeFrontEnd

from user_runtime.vsock import BackendConfig, DeviceLimits, VsockBackend


@dataclass
class Harness:
    backend: VsockBackend
    guest: FakeFrontEnd
    prefix: str
    pool: ThreadPoolExecutor

    def host_listen(self, port: int) -> socket.socket:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(f"{self.prefix}_{port}")
        server.listen(64)
        server.settimeout(TIMEOUT)
        return server

    def host_connect(self, port: int) -> tuple[socket.socket, bytes]:
        """Connect through the CONNECT socket; return the socket and the answer line."""
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(TIMEOUT)
        client.connect(self.prefix)
        client.sendall(f"CONNECT {port}\n".encode())
        return client, read_line(client)

    def run(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self.pool.submit(fn, *args)

    def result(self, future: Future[Any]) -> Any:
        """Drive the guest until a host-side helper finishes, then return its result."""
        self.guest.wait(future.done, "the host side")
        return future.result()

    def wait_fault(self, before: int) -> None:
        self.guest.wait(lambda: self.backend.device.faults > before, "a guest fault")

    def assert_serving(self) -> None:
        """A fresh guest->host connection carries data both ways."""
        port = 7999
        with self.host_listen(port) as server:
            future = self.run(echo_once, server)
            conn = self.guest.connect(port)
            conn.send(b"ping" * 1000)
            assert conn.recv_exact(4000) == b"ping" * 1000
            conn.close()
            self.result(future)
        Path(f"{self.prefix}_{port}").unlink()


def read_line(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            return line
        line += byte
    return line


def recv_all(sock: socket.socket) -> bytes:
    out = bytearray()
    while chunk := sock.recv(1 << 20):
        out += chunk
    return bytes(out)


def echo_once(server: socket.socket) -> int:
    """Accept one connection and echo until end of stream; return the byte count."""
    conn, _ = server.accept()
    conn.settimeout(TIMEOUT)
    total = 0
    with conn:
        while chunk := conn.recv(1 << 16):
            conn.sendall(chunk)
            total += len(chunk)
    return total


def short_dir() -> Path:
    # Unix socket paths are limited to 108 bytes: pytest's tmp_path can be longer.
    return Path(tempfile.mkdtemp(prefix="vs", dir="/tmp"))


@pytest.fixture
def make_harness() -> Iterator[Callable[..., Harness]]:
    made: list[tuple[Harness, threading.Thread, list[BaseException], Path]] = []

    def make(guest_cid: int = 16, limits: DeviceLimits | None = None, **fake: Any) -> Harness:
        directory = short_dir()
        config = BackendConfig(
            str(directory / "vhost.sock"),
            str(directory / "vsock"),
            guest_cid=guest_cid,
            limits=limits or DeviceLimits(),
        )
        backend = VsockBackend(config)
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                backend.serve()
            except BaseException as error:  # reported by the fixture's teardown
                errors.append(error)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        guest = FakeFrontEnd(config.socket_path, guest_cid=guest_cid, **fake)
        guest.handshake()
        harness = Harness(backend, guest, config.uds_path, ThreadPoolExecutor(64))
        made.append((harness, thread, errors, directory))
        return harness

    yield make
    for harness, thread, errors, directory in made:
        harness.backend.stop()
        thread.join(TIMEOUT)
        harness.pool.shutdown(wait=False, cancel_futures=True)
        harness.guest.close()
        shutil.rmtree(directory, ignore_errors=True)
        assert not thread.is_alive(), "the back-end did not stop"
        assert not errors, errors
        assert not harness.guest.credit_violations, harness.guest.credit_violations


@pytest.fixture
def vsock(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()
