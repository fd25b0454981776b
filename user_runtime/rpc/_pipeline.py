# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Pipelined requests: sent without waiting for their replies, within a window.

`write_pipelined`, `put_pipelined`, `puts_pipelined` and `call_pipelined` return once the
request is sent; they block only while the window (`window_requests`, `window_bytes`) is
full. Each request's error is kept under its key and raised by `flush(key)`
(specs/rpc-protocol.md §7.3, §7.7). `EnclaveClient` (client.py) builds on this.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any, NamedTuple

from package_format.rpc import FrameDecoder, FrameLimits, Request, encode_frame
from package_format.rpc.frames import PREFIX
from package_format.rpc.messages import MAX_PUTS
from user_runtime.rpc._pending import FileState, PutsSlot, WriteSlot
from user_runtime.rpc.connection import RpcConnection

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


class PipelinedConnection(RpcConnection):
    """A connection that sends requests without waiting; see the module docstring."""

    def __init__(self, sock: socket.socket, decoder: FrameDecoder, limits: FrameLimits) -> None:
        super().__init__(sock, decoder, limits)
        self.chunk_size = min(limits.max_chunk, limits.max_frame - _HEADER_ROOM)
        self.window_bytes = 32 * 1024 * 1024
        self.window_requests = 64

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
        request_id = self._enter_window(PutsSlot(keys, paths, size), keys)
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
        request_id = self._enter_window(WriteSlot(key, size), [key])
        if isinstance(body, tuple):
            self._send_from_file(request_id, op, args, *body, args["offset"])
        else:
            self._send(request_id, op, args, body)

    def _enter_window(self, slot: WriteSlot, keys: Sequence[str]) -> int:
        """Wait until the window has room for `slot`, then count it in; its request id."""
        size = slot.size
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
        return request_id

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


def _pread_full(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    return data + bytes(size - len(data))
