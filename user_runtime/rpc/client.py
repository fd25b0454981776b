# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The client of the enclave server: every filesystem operation, pipelined writes, runs.

    client = EnclaveClient.connect("unix:/run/enclave.sock")   # or "vsock:16:5005"
    client.mkdir("dataset/train")
    client.write_pipelined("dataset/train/a.csv", 0, data)      # returns at once
    client.flush("dataset/train/a.csv")                         # raises the first error
    status = client.run("encrypted/app.bundle", "train.py", ["-d", "/dataset/"],
                        on_stdout=sys.stdout.buffer.write)

Calls may come from several threads; the waiting thread reads its own reply
(connection.py holds the connection itself).

Paths are session paths (specs/rpc-protocol.md §8): relative, e.g.
`dataset/a.csv`; a FUSE layer strips the leading `/` of its paths. Failures
raise `EnclaveUnavailableError` (cannot connect), `ConnectionLostError` (the
connection broke; every pending call fails with it) or `RemoteError` (the
server refused one request; `errno` is set for filesystem errors).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from package_format.rpc import (
    FrameDecoder,
    FrameLimits,
    Hello,
    Request,
    Response,
    RpcFormatError,
    Welcome,
    encode_frame,
    parse_message,
)
from package_format.rpc.frames import PREFIX
from package_format.rpc.messages import MAX_PUTS, SUPPORTED_VERSIONS
from user_runtime.rpc.connection import FileState, PutsSlot, RpcConnection, WriteSlot
from user_runtime.rpc.values import (
    ConnectionLostError,
    EnclaveUnavailableError,
    RemoteError,
    RemoteStat,
    RunHandle,
    RunOutput,
    connect_preamble,
    parse_address,
)

_SOCKET_BUFFER = 4 * 1024 * 1024
_HEADER_ROOM = 4096  # room for a write header beside a full chunk
_EMPTY = memoryview(b"")
_PUTS_HEADER_ROOM = 256  # a `puts` header beside its entries
_PUTS_ENTRY_ROOM = 16  # one entry's CBOR besides its path: [text head, mode, size]


class PutFile(NamedTuple):
    """One file of a `puts` (§7.7): its flush key, session path, mode and whole bytes."""

    key: str
    path: str
    mode: int
    data: bytes


def _vsock_connect(sock: socket.socket, preamble: bytes, address: str) -> None:
    """The host handshake: a `CONNECT <port>` line, an `OK <port>` line (specs/vsock.md §5)."""
    sock.sendall(preamble)
    line = b""
    while not line.endswith(b"\n"):
        piece = sock.recv(1)
        if not piece or len(line) > 64:
            raise EnclaveUnavailableError(f"{address}: the enclave's vsock port did not answer")
        line += piece
    if not line.startswith(b"OK "):
        raise EnclaveUnavailableError(f"{address}: the vsock back-end refused the connection")


class EnclaveClient(RpcConnection):
    """A connection to the enclave server; see the module docstring."""

    def __init__(self, sock: socket.socket, welcome: Welcome, decoder: FrameDecoder) -> None:
        super().__init__(sock, decoder, welcome.limits)
        self.version = welcome.version
        self.chunk_size = min(welcome.limits.max_chunk, welcome.limits.max_frame - _HEADER_ROOM)
        self.window_bytes = 32 * 1024 * 1024
        self.window_requests = 64

    # -- connection ----------------------------------------------------------

    @classmethod
    def connect(cls, address: str, *, timeout: float = 10.0) -> EnclaveClient:
        """Connect and perform the version handshake (specs/rpc-protocol.md §4.1).

        Raises:
            UsageError: the address is malformed.
            EnclaveUnavailableError: nothing listens there, or the handshake failed.
        """
        family, target = parse_address(address)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
            sock.connect(target)
            preamble = connect_preamble(address)
            if preamble is not None:
                _vsock_connect(sock, preamble, address)
            head, _ = encode_frame(Hello(SUPPORTED_VERSIONS).header())
            sock.sendall(head)
            decoder = FrameDecoder()
            welcome = cls._read_welcome(sock, decoder, address)
            sock.settimeout(None)
        except OSError as e:
            sock.close()
            reason = e.strerror or str(e) or type(e).__name__
            raise EnclaveUnavailableError(f"{address}: cannot reach the enclave: {reason}") from e
        except BaseException:
            sock.close()
            raise
        return cls(sock, welcome, decoder)

    @staticmethod
    def _read_welcome(sock: socket.socket, decoder: FrameDecoder, address: str) -> Welcome:
        while True:
            count = sock.recv_into(decoder.buffer())
            if count == 0:
                raise EnclaveUnavailableError(f"{address}: the enclave closed the connection")
            try:
                frame = decoder.advance(count)
                if frame is None:
                    continue
                message = parse_message(frame)
            except RpcFormatError as e:
                raise EnclaveUnavailableError(f"{address}: bad handshake: {e}") from e
            if isinstance(message, Welcome):
                return message
            if isinstance(message, Response) and not message.ok:
                text = message.args.get("message", "handshake refused")
                raise EnclaveUnavailableError(f"{address}: {text}")
            raise EnclaveUnavailableError(f"{address}: unexpected reply to hello")

    # -- filesystem operations (specs/rpc-protocol.md §7.2) ------------------

    def ping(self) -> None:
        """Round-trip a no-op request."""
        self._call("ping", {})

    def statfs(self) -> dict[str, int]:
        """Return the session budget: total_bytes, used_bytes, free_bytes, nodes, ..."""
        return {k: int(v) for k, v in self._call("statfs", {}).args.items()}

    def stat(self, path: str) -> RemoteStat:
        """Return the status of `path`."""
        return RemoteStat.from_wire(self._call("stat", {"path": path}).args["stat"])

    def listdir(self, path: str) -> list[tuple[str, RemoteStat]]:
        """Return a directory's entries with their status (one round trip per ~60 KiB)."""
        result: list[tuple[str, RemoteStat]] = []
        after = ""
        while True:
            reply = self._call("listdir", {"path": path, "after": after}).args
            result += [(str(name), RemoteStat.from_wire(info)) for name, info in reply["entries"]]
            if not reply.get("more") or not reply["entries"]:
                return result
            after = result[-1][0]

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        """Create a directory."""
        self._call("mkdir", {"path": path, "mode": mode})

    def rmdir(self, path: str) -> None:
        """Remove an empty directory."""
        self._call("rmdir", {"path": path})

    def unlink(self, path: str) -> None:
        """Remove a file."""
        self._call("unlink", {"path": path})

    def rename(self, src: str, dst: str) -> None:
        """Rename with POSIX semantics (replaces a file or an empty directory)."""
        self._call("rename", {"src": src, "dst": dst})

    def create(
        self, path: str, mode: int = 0o644, *, truncate: bool = True, exclusive: bool = False
    ) -> None:
        """Create a file, or truncate an existing one when `truncate` (O_TRUNC)."""
        self._call(
            "create", {"path": path, "mode": mode, "truncate": truncate, "exclusive": exclusive}
        )

    def truncate(self, path: str, size: int) -> None:
        """Set a file's size."""
        self._call("truncate", {"path": path, "size": size})

    def chmod(self, path: str, mode: int) -> None:
        """Set permission bits."""
        self._call("chmod", {"path": path, "mode": mode})

    def utimens(self, path: str, atime_ns: int, mtime_ns: int) -> None:
        """Set access and modification times (nanoseconds since the epoch)."""
        self._call("utimens", {"path": path, "atime_ns": atime_ns, "mtime_ns": mtime_ns})

    def read(self, path: str, offset: int, length: int) -> bytes:
        """Read up to `length` bytes from `offset` (fewer at end of file)."""
        parts: list[bytes] = []
        while length > 0:
            step = min(length, self.chunk_size)
            reply = self._call("read", {"path": path, "offset": offset, "length": step})
            parts.append(bytes(reply.body))
            if reply.body.nbytes < step:
                break
            offset += step
            length -= step
        return b"".join(parts)

    def put(self, path: str, data: bytes | bytearray | memoryview, mode: int = 0o644) -> int:
        """Make `path` a file holding exactly `data` (at most `chunk_size`), in one request.

        Creates the file (with `mode`) or truncates it, then writes `data` at 0
        (specs/rpc-protocol.md §7.2 `put`).

        Raises:
            ValueError: `data` is over `chunk_size`.
            RemoteError: as `create` or `write` would (the file may then exist, empty).
        """
        view = self._put_body(data)
        self._call("put", {"mode": mode, "path": path}, view)  # keys in wire order
        return len(view)

    def put_pipelined(
        self,
        path: str,
        data: bytes | bytearray | memoryview,
        mode: int = 0o644,
        *,
        key: str | None = None,
    ) -> None:
        """`put` without waiting: its error is raised by `flush(key)` (default: the path).

        Raises:
            ValueError: `data` is over `chunk_size`.
            ConnectionLostError: the connection is already lost.
        """
        view = self._put_body(data)
        args = {"mode": mode, "path": path}  # keys in wire order: no reordering per frame
        self._submit(path if key is None else key, "put", args, view)

    def puts_pipelined(self, files: Sequence[PutFile]) -> None:
        """Many `put`s in one `puts` request, without waiting (specs/rpc-protocol.md §7.7).

        Each file's verdict is kept under its key and raised by `flush(key)`, as
        for `put_pipelined`. The caller keeps the batch within `puts_fits`.

        Raises:
            ValueError: empty, over `MAX_PUTS` files, or the bytes over `chunk_size`.
            ConnectionLostError: the connection is already lost.
        """
        size = sum(len(f.data) for f in files)
        if not 0 < len(files) <= MAX_PUTS or size > self.chunk_size:
            raise ValueError(f"puts of {len(files)} files, {size} bytes: over the limits")
        args = {"files": [[f.path, f.mode, len(f.data)] for f in files]}
        keys, paths = [f.key for f in files], [f.path for f in files]
        slot = PutsSlot(keys, paths, size)
        with self._cond:
            self._await(
                lambda: (
                    self._inflight_writes == 0
                    or (
                        self._inflight_writes < self.window_requests
                        and self._inflight_bytes + size <= self.window_bytes
                    )
                )
            )
            request_id = self._register(slot)
            self._inflight_writes += 1
            self._inflight_bytes += size
            for key in keys:
                self._files.setdefault(key, FileState()).inflight += 1
        self._send(request_id, "puts", args, b"".join(f.data for f in files))

    def puts_fits(self, count: int, size: int, path_bytes: int) -> bool:
        """Whether `count` files of `size` bytes in all, paths of `path_bytes`, fit one `puts`."""
        header = _PUTS_HEADER_ROOM + count * _PUTS_ENTRY_ROOM + path_bytes
        return count <= MAX_PUTS and size <= self.chunk_size and header <= self.limits.max_header

    def _put_body(self, data: bytes | bytearray | memoryview) -> memoryview:
        view = memoryview(data).cast("B")
        if len(view) > self.chunk_size:
            raise ValueError(f"put of {len(view)} bytes is over the {self.chunk_size} limit")
        return view

    def write(self, path: str, offset: int, data: bytes | bytearray | memoryview) -> int:
        """Write and wait for the result (pipelined chunks, then `flush`)."""
        self.write_pipelined(path, offset, data)
        self.flush(path)
        return memoryview(data).nbytes

    def write_pipelined(
        self,
        path: str,
        offset: int,
        data: bytes | bytearray | memoryview,
        *,
        key: str | None = None,
    ) -> None:
        """Send a write without waiting for its reply (specs/rpc-protocol.md §7.3).

        Blocks only while the window (`window_requests`, `window_bytes`) is
        full. An error is kept per `key` (default: the path) and raised by the
        next `flush(key)`. `data` must not change until that flush.

        Raises:
            ConnectionLostError: the connection is already lost.
        """
        view = memoryview(data).cast("B")
        key = path if key is None else key
        for start in range(0, len(view), self.chunk_size):
            chunk = view[start : start + self.chunk_size]
            self._submit(key, "write", {"path": path, "offset": offset + start}, chunk)

    def write_pipelined_from(
        self, path: str, offset: int, fd: int, length: int, *, key: str | None = None
    ) -> None:
        """Like `write_pipelined` of `fd`'s bytes `[offset, offset + length)` at `offset`.

        The bodies go from the file to the socket with `sendfile` (no copy in
        Python). Bytes the file no longer has by then (it was truncated) are
        sent as zeros; a later truncate puts the size right.

        Raises:
            ConnectionLostError: the connection is already lost.
        """
        key = path if key is None else key
        for start in range(0, length, self.chunk_size):
            size = min(self.chunk_size, length - start)
            self._submit(key, "write", {"path": path, "offset": offset + start}, (fd, size))

    def call_pipelined(self, op: str, args: dict[str, Any], *, key: str) -> None:
        """Send any bodiless request without waiting; its error is raised by `flush(key)`.

        For sequences whose errors may wait, e.g. `chmod` and `utimens` after a
        file's writes: `call_pipelined("utimens", {...}, key=path)`.

        Raises:
            ConnectionLostError: the connection is already lost.
        """
        self._submit(key, op, args, _EMPTY)

    def _submit(
        self, key: str, op: str, args: dict[str, Any], body: memoryview | tuple[int, int]
    ) -> None:
        size = body[1] if isinstance(body, tuple) else len(body)
        slot = WriteSlot(key, size)
        with self._cond:
            self._await(
                lambda: (
                    self._inflight_writes == 0
                    or (
                        self._inflight_writes < self.window_requests
                        and self._inflight_bytes + size <= self.window_bytes
                    )
                )
            )
            request_id = self._register(slot)
            self._inflight_writes += 1
            self._inflight_bytes += size
            self._files.setdefault(key, FileState()).inflight += 1
        if isinstance(body, tuple):
            self._send_from_file(request_id, op, args, *body, args["offset"])
        else:
            self._send(request_id, op, args, body)

    def _send_from_file(  # noqa: PLR0917 - one frame's parts
        self, request_id: int, op: str, args: dict[str, Any], fd: int, size: int, offset: int
    ) -> None:
        encoded = encode_frame(Request(request_id, op, args).header(), b"", self.limits)[0]
        head = PREFIX.pack(PREFIX.unpack_from(encoded)[0], size) + encoded[PREFIX.size :]
        with self._send_lock:
            if self._corked is not None:
                self._corked += [memoryview(head), memoryview(_pread_full(fd, size, offset))]
                return
            self._send_parts([memoryview(head)])
            try:
                done = 0
                while done < size:
                    sent = os.sendfile(self._sock.fileno(), fd, offset + done, size - done)
                    if sent == 0:  # the file shrank: the frame still needs its bytes
                        self._sock.sendall(bytes(size - done))
                        break
                    done += sent
            except OSError as e:
                self._connection_lost(f"cannot send to the enclave: {e.strerror or e}")
                raise self._lost_error() from e

    def flush(self, key: str) -> None:
        """Wait for every pipelined write of `key`; raise the first error they met.

        Raises:
            RemoteError: a write failed (e.g. `errno == ENOSPC`).
            ConnectionLostError: the connection broke before every write was answered.
        """
        with self._cond:
            state = self._files.get(key)
            if state is None:
                return
            self._await(lambda: state.inflight == 0)
            error = state.error
            del self._files[key]
        if error is not None:
            raise error

    def fsync(self, path: str) -> None:
        """Flush `path`'s pipelined writes, then check it on the server."""
        self.flush(path)
        self._call("fsync", {"path": path})

    # -- runs (specs/rpc-protocol.md §7.4) -----------------------------------

    def start_run(
        self,
        bundle: str,
        entrypoint: str,
        args: Sequence[str],
        timeout: int | None = None,
        env: Sequence[str] = (),
        *,
        data: Sequence[str] = (),
        nonce: bytes | None = None,
    ) -> RunHandle:
        """Ask the enclave to run `entrypoint`; output streams through the handle.

        `timeout` (seconds), `env` (`NAME=VALUE` items) and `nonce` (for the run's receipt,
        specs/receipts.md §5.2) are sent only when set, so older servers still accept the
        request.
        """
        with self._cond:
            request_id = self._register(None)
            handle = RunHandle(self.cancel, self.wait_until, request_id)
            self._pending[request_id] = handle
        fields: dict[str, Any] = {"bundle": bundle, "entrypoint": entrypoint, "args": list(args)}
        if timeout:
            fields["timeout_s"] = timeout
        if env:
            fields["env"] = list(env)
        if data:  # data bundles' session paths (issue 22), sent only when given
            fields["data"] = list(data)
        if nonce:
            fields["nonce"] = bytes(nonce)
        self._send(request_id, "run", fields)
        return handle

    def run(
        self,
        bundle: str,
        entrypoint: str,
        args: Sequence[str],
        *,
        on_stdout: Callable[[bytes], object] | None = None,
        on_stderr: Callable[[bytes], object] | None = None,
    ) -> int:
        """Run and wait; output goes to the callbacks as it comes. Returns the exit status.

        Raises:
            RemoteError: the run was refused (`BUSY`, `NOT_ALLOWED`, ...), failed
                or was cancelled (`CANCELLED`).
            ConnectionLostError: the connection broke mid-run.
        """
        handle = self.start_run(bundle, entrypoint, args)
        for output in handle.events():
            sink = on_stdout if output.stream == "stdout" else on_stderr
            if sink is not None:
                sink(output.data)
        assert handle.exit_status is not None
        return handle.exit_status

    def cancel(self) -> bool:
        """Cancel the enclave's current run; True when one was running."""
        return bool(self._call("cancel", {}).args.get("cancelled", False))

    def attest(self, nonce: bytes | None = None, user_data: bytes | None = None) -> bytes:
        """A fresh attestation document from the enclave's NSM (specs/rpc-protocol.md §7.6)."""
        args = {"nonce": (nonce or b"").hex(), "user_data": (user_data or b"").hex()}
        return bytes(self._call("attest", args).body)

    def set_credentials(
        self, access_key_id: str, secret_access_key: str, session_token: str = "", region: str = ""
    ) -> None:
        """Hand the enclave AWS credentials for KMS (specs/rpc-protocol.md §7.5)."""
        args = {
            "access_key_id": access_key_id,
            "secret_access_key": secret_access_key,
            "session_token": session_token,
            "region": region,
        }
        self._call("credentials", args)


def _pread_full(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    return data + bytes(size - len(data))


__all__ = [
    "ConnectionLostError",
    "EnclaveClient",
    "EnclaveUnavailableError",
    "FrameLimits",
    "RemoteError",
    "RemoteStat",
    "RunHandle",
    "RunOutput",
    "parse_address",
]
