# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Sockets for the RPC server: a Unix socket locally, vsock inside a Nitro Enclave.

One thread per connection reads frames with `recv_into` straight into the
decoder's buffer and sends replies with `sendmsg` (prefix + header, body)
without joining them. A bad frame drops its own connection only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import threading
from pathlib import Path

from enclave.errors import ExternalError, InputError
from enclave.server import EnclaveServer, ServerConnection
from package_format.rpc import (
    ErrorCode,
    FrameDecoder,
    FrameLimits,
    Message,
    Response,
    RpcFormatError,
    encode_frame,
)

_log = logging.getLogger(__name__)
_SOCKET_BUFFER = 4 * 1024 * 1024
MAX_CONNECTIONS = 16
HELLO_TIMEOUT = 10.0  # seconds a new connection has to send its hello
VMADDR_CID_ANY = 0xFFFFFFFF
_IOV_MAX = 1024


def listen_unix(path: Path) -> socket.socket:
    """Listen on a Unix socket at `path` (mode 0600; a stale socket file is replaced).

    Raises:
        InputError: `path` exists and is not a socket.
        ExternalError: the socket cannot be bound.
    """
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise InputError(f"{path}: exists and is not a socket")
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as e:
        sock.close()
        raise ExternalError(f"{path}: cannot listen: {e.strerror or e}") from e
    finally:
        os.umask(old_umask)
    sock.listen(MAX_CONNECTIONS)
    return sock


def listen_vsock(port: int) -> socket.socket:
    """Listen on vsock `port` for any CID (inside the enclave).

    Raises:
        ExternalError: vsock is not available or the port cannot be bound.
    """
    family = getattr(socket, "AF_VSOCK", None)
    if family is None:
        raise ExternalError("vsock is not supported on this system")
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind((VMADDR_CID_ANY, port))
    except OSError as e:
        raise ExternalError(f"vsock port {port}: cannot listen: {e.strerror or e}") from e
    sock.listen(MAX_CONNECTIONS)
    return sock


class SocketServer:
    """Accepts connections on a listening socket and serves each on a thread."""

    def __init__(
        self,
        server: EnclaveServer,
        listener: socket.socket,
        *,
        max_connections: int = MAX_CONNECTIONS,
        hello_timeout: float = HELLO_TIMEOUT,
    ) -> None:
        self.max_connections = max_connections
        self.hello_timeout = hello_timeout
        self.enclave = server
        self._server = server
        self._listener = listener
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()

    def serve_forever(self) -> None:
        """Accept until `shutdown`; each connection runs on a daemon thread."""
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                raise
            with self._lock:
                if len(self._connections) >= self.max_connections:
                    conn.close()
                    continue
                self._connections.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def shutdown(self) -> None:
        """Stop accepting and close every connection (their runs are cancelled); idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def _serve(self, conn: socket.socket) -> None:
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
        out = _Outbox(conn, self._server.limits)
        handler = self._server.connection(out.send)
        try:
            self._read_loop(conn, handler, out)
        except RpcFormatError as e:
            _log.warning("dropping connection: %s", e)
            with contextlib.suppress(OSError, RpcFormatError):
                out.queue(handler.fatal(str(e)))
                out.flush()
        except OSError as e:
            _log.info("connection lost: %s", e)
        finally:
            handler.on_close()
            with self._lock:
                self._connections.discard(conn)
            conn.close()

    def _read_loop(self, conn: socket.socket, handler: ServerConnection, out: _Outbox) -> None:
        # Frames are handled one at a time before the next read: one reused buffer.
        decoder = FrameDecoder(self._server.limits, reuse_buffer=True)
        conn.settimeout(self.hello_timeout)  # a silent peer does not hold a slot for ever
        while not handler.closed:
            target = decoder.buffer()
            try:
                count = conn.recv_into(target, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                # Nothing more to read now: send the replies gathered so far, then wait.
                out.flush()
                count = conn.recv_into(target)
            if count == 0:
                out.flush()
                decoder.end_of_stream()
                return
            frame = decoder.advance(count)
            if frame is None:
                continue
            for message in handler.on_frame(frame):
                out.queue(message)
            if handler.ready and conn.gettimeout() is not None:
                conn.settimeout(None)
        out.flush()


class _Outbox:
    """Replies of one connection: gathered while more requests wait, sent in one `sendmsg`.

    A client pipelining writes gets its acknowledgements in batches (fewer
    system calls and wake-ups on both sides); replies are always flushed
    before the reader blocks, so a waiting client is never left waiting.
    Run events (from the run's thread) are sent at once, under the same lock.
    """

    _MAX_PARTS = 512
    _MAX_BYTES = 2 * 1024 * 1024

    def __init__(self, conn: socket.socket, limits: FrameLimits) -> None:
        self._conn = conn
        self._limits = limits
        self._lock = threading.Lock()
        self._parts: list[memoryview] = []
        self._bytes = 0

    def queue(self, message: Message) -> None:
        try:
            head, body = encode_frame(message.header(), message.body, self._limits)
        except RpcFormatError:
            if not isinstance(message, Response):
                raise
            _log.exception("reply to request %d cannot be encoded", message.id)
            fallback = Response.error(message.id, ErrorCode.INTERNAL, "reply too large")
            head, body = encode_frame(fallback.header(), fallback.body, self._limits)
        self._parts.append(memoryview(head))
        view = memoryview(body).cast("B")
        if view:
            self._parts.append(view)
        self._bytes += len(head) + len(view)
        if len(self._parts) >= self._MAX_PARTS or self._bytes >= self._MAX_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._parts:
            return
        parts, self._parts, self._bytes = self._parts, [], 0
        with self._lock:
            send_parts(self._conn, parts)

    def send(self, message: Message) -> None:
        head, body = encode_frame(message.header(), message.body, self._limits)
        with self._lock:
            send_parts(self._conn, [memoryview(head), memoryview(body).cast("B")])


def send_parts(sock: socket.socket, parts: list[memoryview]) -> None:
    """Send buffers in order with `sendmsg`, resuming after partial sends."""
    parts = [p for p in parts if p]
    first = 0
    while first < len(parts):
        sent = sock.sendmsg(parts[first : first + _IOV_MAX])
        while first < len(parts) and sent >= len(parts[first]):
            sent -= len(parts[first])
            first += 1
        if sent:
            parts[first] = parts[first][sent:]


RUN_STOP_TIMEOUT = 30.0


def serve_until_signal(server: SocketServer) -> None:
    """Serve on the calling (main) thread until SIGTERM or SIGINT, then shut down.

    A run still going is cancelled, and its runner given `RUN_STOP_TIMEOUT`
    seconds to return (and wipe what it decrypted) before this returns.
    """
    import signal  # noqa: PLC0415

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.shutdown()
        if not server.enclave.cancel_and_wait(RUN_STOP_TIMEOUT):
            _log.error("the run did not stop within %s s of the shutdown", RUN_STOP_TIMEOUT)
