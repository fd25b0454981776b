# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The enclave's end of the KMS channel: TCP on loopback -> Unix socket or vsock.

An enclave has no network. boto3 speaks HTTPS/HTTP over TCP, so the enclave listens on
127.0.0.1 (its own loopback) and relays each connection to the host: over vsock to the
parent's `vsock-proxy` on Nitro, over a Unix socket to the local launcher's relay locally
(specs/threat-model.md §6). Bytes are relayed unchanged; TLS, when used, is end to end.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
import threading

from enclave.errors import ExternalError, UsageError

_CHUNK = 1 << 16
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def parse_target(target: str) -> tuple[int, str | tuple[int, int]]:
    """Parse `unix:/path` or `vsock:CID:PORT` into a socket family and address.

    Raises:
        UsageError: The target is neither.
    """
    if target.startswith("unix:") and len(target) > len("unix:"):
        return socket.AF_UNIX, target[len("unix:") :]
    if target.startswith("vsock:"):
        parts = target.split(":")
        family = getattr(socket, "AF_VSOCK", None)
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() and family is not None:
            return family, (int(parts[1]), int(parts[2]))
    raise UsageError(f"kms target {target!r}: expected unix:/path or vsock:CID:PORT")


def bring_up_loopback() -> None:
    """Set `lo` up (a fresh network namespace starts with it down).

    Raises:
        OSError: The interface flags cannot be read or set (not root in the namespace).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        req = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, _SIOCGIFFLAGS, req)[:18])[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | _IFF_UP))


class LoopbackForwarder:
    """Listens on 127.0.0.1 (ephemeral port) and relays every connection to `target`."""

    def __init__(self, target: str) -> None:
        """Bind the listener (bringing loopback up if the namespace left it down).

        Raises:
            UsageError: `target` is malformed.
            ExternalError: The listener cannot be bound.
        """
        self._family, self._address = parse_target(target)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(OSError):
                # A fresh network namespace has `lo` down: 127.0.0.1 binds but is unreachable.
                bring_up_loopback()
            self._listener.bind(("127.0.0.1", 0))
            self._listener.listen(16)
        except OSError as exc:
            self._listener.close()
            raise ExternalError(f"kms relay: cannot listen on loopback: {exc}") from exc
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True, name="kms-relay")
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        """The URL boto3 uses to reach KMS through this relay."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop accepting (open relays end when either side closes)."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        upstream = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            upstream.connect(self._address)
        except OSError:
            conn.close()
            upstream.close()
            return
        pump(conn, upstream)


def pump(a: socket.socket, b: socket.socket) -> None:
    """Relay bytes both ways between two connected sockets until both directions end."""

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
