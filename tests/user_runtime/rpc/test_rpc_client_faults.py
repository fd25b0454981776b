# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Faults: the server killed mid-run, the client killed mid-run, a socket closed mid-frame."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from enclave.runner.api import RunResult
from enclave.server import EnclaveServer
from enclave.sessionfs import SessionFs
from enclave.transport import SocketServer, listen_unix
from package_format.rpc import FrameDecoder, Response, Welcome
from package_format.rpc.frames import FrameLimits, frame_bytes
from user_runtime.rpc.client import ConnectionLostError, EnclaveClient

SERVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from enclave.runner.api import RunResult
    from enclave.server import EnclaveServer
    from enclave.sessionfs import SessionFs
    from enclave.transport import SocketServer, listen_unix, serve_until_signal

    class Runner:
        def run(self, request, session, sink, cancel):
            sink.stdout(b"started\\n")
            cancel.wait()
            return RunResult(0)

    fs = SessionFs()
    serve_until_signal(SocketServer(EnclaveServer(fs, Runner()), listen_unix(Path(sys.argv[1]))))
    """
)

CLIENT = textwrap.dedent(
    """
    import sys
    from user_runtime.rpc.client import EnclaveClient
    client = EnclaveClient.connect(sys.argv[1])
    for output in client.start_run("encrypted/app", "main", []).events():
        print(output.data.decode(), end="", flush=True)
    """
)


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def start_server(sock: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(sock)], stderr=subprocess.PIPE)
    wait_until(lambda: accepts(sock) or proc.poll() is not None, "server did not start")
    assert proc.poll() is None
    return proc


def accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_server_killed_mid_run_is_connection_lost(tmp_path: Path, procs: list) -> None:
    sock = tmp_path / "enclave.sock"
    procs.append(start_server(sock))
    client = EnclaveClient.connect(f"unix:{sock}")
    client.create("dataset/kept")
    events = client.start_run("encrypted/app", "main", []).events()
    assert next(events).data == b"started\n"
    procs[0].send_signal(signal.SIGKILL)
    with pytest.raises(ConnectionLostError) as info:
        next(events)
    message = str(info.value)
    assert "\n" not in message
    assert "enclave" in message
    with pytest.raises(ConnectionLostError):
        client.stat("dataset/kept")
    client.close()
    procs[0].wait()
    # the next start on the same socket path works (the stale socket file is replaced)
    procs.append(start_server(sock))
    with EnclaveClient.connect(f"unix:{sock}") as again:
        again.ping()


def test_client_killed_mid_run_cancels_the_run(tmp_path: Path, procs: list) -> None:
    cancelled = threading.Event()

    class Runner:
        def run(self, request, session, sink, cancel):
            sink.stdout(b"started\n")
            if request.entrypoint == "main":
                cancel.wait()
                cancelled.set()
            return RunResult(0)

    sock = tmp_path / "enclave.sock"
    server = SocketServer(EnclaveServer(SessionFs(), Runner()), listen_unix(sock))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client_proc = subprocess.Popen(
            [sys.executable, "-c", CLIENT, f"unix:{sock}"], stdout=subprocess.PIPE
        )
        procs.append(client_proc)
        assert client_proc.stdout is not None
        assert client_proc.stdout.readline() == b"started\n"
        os.kill(client_proc.pid, signal.SIGKILL)
        assert cancelled.wait(30)
        with EnclaveClient.connect(f"unix:{sock}") as other:
            wait_until(lambda: other.cancel() is False, "run slot not released")
            assert other.run("encrypted/app", "quick", []) == 0  # not BUSY
    finally:
        server.shutdown()


def test_socket_closed_mid_frame_is_connection_lost(tmp_path: Path) -> None:
    sock_path = tmp_path / "fake.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    listener.listen(1)

    def fake_server() -> None:
        conn, _ = listener.accept()
        decoder = FrameDecoder()
        seen = 0
        while seen < 2:  # hello, then the stat request
            seen += len(decoder.feed(conn.recv(65536)))
            if seen == 1:
                conn.sendall(frame_bytes(Welcome(1, FrameLimits()).header()))
        reply = frame_bytes(Response(1, 0, {"stat": {}}).header())
        conn.sendall(reply[: len(reply) // 2])
        conn.close()

    thread = threading.Thread(target=fake_server, daemon=True)
    thread.start()
    client = EnclaveClient.connect(f"unix:{sock_path}")
    with pytest.raises(ConnectionLostError) as info:
        client.stat("dataset")
    assert "middle of a frame" in str(info.value)
    thread.join(10)
    listener.close()
