# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The parent's end of the enclave heartbeat (specs/enclave-image.md §13; Nitro's contract).

Run by the qemu backend as its own process: `python -m user_runtime.enclave.heartbeat SOCK
MARK`. The guest's init connects to the parent (CID 3) port 9000 and writes 0xB7; the vsock
back-end turns that into a connection to the Unix socket SOCK (`PREFIX_9000`). We answer
0xB7 and touch MARK, so `enclave start` knows the image's init ran. Anything else gets the
connection closed without an answer (the init then powers the enclave off, as on Nitro).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import time
from pathlib import Path

HEARTBEAT = b"\xb7"
_READ_TIMEOUT = 10.0


def serve(sock_path: str, mark_path: str) -> None:
    """Answer heartbeats on `sock_path` until SIGTERM."""
    with contextlib.suppress(FileNotFoundError):
        Path(sock_path).unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(4)
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(_READ_TIMEOUT)
            try:
                if conn.recv(1) != HEARTBEAT:
                    continue
                conn.sendall(HEARTBEAT)
            except OSError:
                continue
            with Path(mark_path).open("a", encoding="ascii") as mark:
                mark.write(f"{time.time():.3f}\n")


def main(argv: list[str]) -> int:
    """Entry point: `SOCK MARK`."""
    # A program of its own (python -m, started by the qemu backend): its usage line.
    if len(argv) != 2:
        sys.stderr.write("usage: python -m user_runtime.enclave.heartbeat SOCK MARK\n")
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(argv[0], argv[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
