# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The host's end of the local enclave's KMS channel: Unix socket -> TCP (a local vsock-proxy).

Run as its own process by the launcher: `python -m user_runtime.enclave.relay UNIX HOST PORT`.
It accepts on a Unix socket in the enclave's state directory (reachable from the enclave's
network namespace through the file system) and relays each connection, unchanged, to the one
TCP endpoint it was started with — the KMS front — and nowhere else (specs/threat-model.md §6).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from pathlib import Path

_CHUNK = 1 << 16


def _pump(a: socket.socket, b: socket.socket) -> None:
    def one_way(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(_CHUNK):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    back = threading.Thread(target=one_way, args=(b, a), daemon=True)
    back.start()
    one_way(a, b)
    back.join()
    a.close()
    b.close()


def _serve_one(conn: socket.socket, host: str, port: int) -> None:
    try:
        upstream = socket.create_connection((host, port), timeout=10)
        upstream.settimeout(None)
    except OSError:
        conn.close()
        return
    _pump(conn, upstream)


def relay(unix_path: Path, host: str, port: int) -> None:
    """Accept on `unix_path` forever, relaying each connection to `host:port`."""
    with contextlib.suppress(FileNotFoundError):
        unix_path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(str(unix_path))
    finally:
        os.umask(old)
    listener.listen(16)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve_one, args=(conn, host, port), daemon=True).start()


def main(argv: list[str]) -> int:
    """Entry point: `UNIX HOST PORT`."""
    # A program of its own (python -m, started by the launcher): its stderr is its only output.
    if len(argv) != 3 or not argv[2].isdigit():
        sys.stderr.write("usage: python -m user_runtime.enclave.relay UNIX HOST PORT\n")
        return 2
    try:
        relay(Path(argv[0]), argv[1], int(argv[2]))
    except OSError as exc:
        sys.stderr.write(f"enclave-relay: error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
