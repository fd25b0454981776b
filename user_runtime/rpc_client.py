# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The client of the enclave server: every filesystem operation, pipelined writes, runs.

    client = EnclaveClient.connect("unix:/run/enclave.sock")   # or "vsock:16:5005"
    client.mkdir("dataset/train")
    client.write_pipelined("dataset/train/a.csv", 0, data)      # returns at once
    client.flush("dataset/train/a.csv")                         # raises the first error
    status = client.run("encrypted/app.bundle", "train.py", ["-d", "/dataset/"],
                        on_stdout=sys.stdout.buffer.write)

Calls may come from several threads. There is no reader thread: a thread that
waits for a reply reads the socket itself and hands other threads' replies over as
they pass (one reader at a time; the others wait), which saves a thread hand-over
per round trip (about 130 of 230 µs here). The main thread never reads, so Ctrl-C
cannot cut a frame in half: a helper thread reads while it waits.

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
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Self

from package_format.rpc import (
    Event,
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
from package_format.rpc.messages import SUPPORTED_VERSIONS
from user_runtime.errors import ExternalError
from user_runtime.rpc_values import (
    ConnectionLostError,
    EnclaveUnavailableError,
    RemoteError,
    RemoteStat,
    RunHandle,
    RunOutput,
    parse_address,
    remote_error,
)

_SOCKET_BUFFER = 4 * 1024 * 1024
_IOV_MAX = 1024
_HEADER_ROOM = 4096  # room for a write header beside a full chunk
_EMPTY = memoryview(b"")


class _Waiter:
    def __init__(self) -> None:
        self.done = False
        self.response: Response | None = None
        self.error: ExternalError | None = None


class _WriteSlot:
    def __init__(self, key: str, size: int) -> None:
        self.key = key
        self.size = size


class _FileState:
    def __init__(self) -> None:
        self.inflight = 0
        self.error: ExternalError | None = None


class EnclaveClient:
    """A connection to the enclave server; see the module docstring."""

    def __init__(self, sock: socket.socket, welcome: Welcome, decoder: FrameDecoder) -> None:
        self._sock = sock
        self.version = welcome.version
        self.limits = welcome.limits
        self.chunk_size = min(welcome.limits.max_chunk, welcome.limits.max_frame - _HEADER_ROOM)
        self._decoder = decoder
        self._send_lock = threading.RLock()
        self._corked: list[memoryview] | None = None  # frames held by `batch()`
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        # The helper sleeps on its own condition: waking it at every delivered frame
        # would cost the reading thread the GIL at every reply.
        self._helper_cond = threading.Condition(lock)
        self._pending: dict[int, _Waiter | _WriteSlot | RunHandle] = {}
        self._files: dict[str, _FileState] = {}
        self._next_id = 1
        self._inflight_bytes = 0
        self._inflight_writes = 0
        self._lost: ExternalError | None = None
        self._closing = False
        self.window_bytes = 32 * 1024 * 1024
        self.window_requests = 64
        self._reading = False  # a thread holds the socket's read side (`_lead`)
        self._main_waiting = 0  # main-thread waits the helper reads for
        self._helper: threading.Thread | None = None

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

    def close(self) -> None:
        """Close the connection; pending calls fail with `ConnectionLostError`."""
        self._closing = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._connection_lost("the connection to the enclave was closed")
        with self._cond:
            helper = self._helper
            # A reader still inside recv sees the shutdown and stops.
            self._cond.wait_for(lambda: not self._reading, timeout=5)
        if helper is not None:
            helper.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------

    def _register(self, item: _Waiter | _WriteSlot | RunHandle | None) -> int:
        # Called with self._cond held.
        if self._lost is not None:
            raise self._lost
        request_id = self._next_id
        self._next_id += 1
        if item is not None:
            self._pending[request_id] = item
        return request_id

    def _send(self, request_id: int, op: str, args: dict[str, Any], body: Any = _EMPTY) -> None:
        head, payload = encode_frame(Request(request_id, op, args).header(), body, self.limits)
        parts = [memoryview(head), memoryview(payload).cast("B")]
        with self._send_lock:
            if self._corked is not None:  # only the batching thread gets here
                self._corked += parts
                return
            self._send_parts(parts)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Send the requests made inside in one `sendmsg` when the block ends.

        Other threads' requests wait until then. Meant for a few pipelined
        requests (a small file's create and write): a call that waits for its
        reply, or more pipelined requests than the window, would wait forever.

        Raises:
            ConnectionLostError: the connection broke while sending.
        """
        with self._send_lock:
            if self._corked is not None:  # nested: the outer block sends
                yield
                return
            self._corked = []
            try:
                yield
            finally:
                parts, self._corked = self._corked, None
                if parts:
                    self._send_parts(parts)

    def _send_parts(self, parts: list[memoryview]) -> None:
        try:
            with self._send_lock:
                while parts:
                    sent = self._sock.sendmsg(parts[:_IOV_MAX])
                    while parts and sent >= len(parts[0]):
                        sent -= len(parts[0])
                        parts.pop(0)
                    if parts and sent:
                        parts[0] = parts[0][sent:]
                    parts = [part for part in parts if part]
        except OSError as e:
            self._connection_lost(f"cannot send to the enclave: {e.strerror or e}")
            raise self._lost_error() from e

    def _lost_error(self) -> ExternalError:
        with self._cond:
            return self._lost or ConnectionLostError("connection to the enclave lost")

    def _call(self, op: str, args: dict[str, Any], body: Any = _EMPTY) -> Response:
        waiter = _Waiter()
        with self._cond:
            request_id = self._register(waiter)
        self._send(request_id, op, args, body)
        with self._cond:
            self._await(lambda: waiter.done)
        if waiter.error is not None:
            raise waiter.error
        assert waiter.response is not None
        if not waiter.response.ok:
            raise remote_error(waiter.response)
        return waiter.response

    # -- reading (the waiting thread reads; see the module docstring) --------

    def _await(self, ready: Callable[[], bool]) -> None:
        """Return once `ready()` or the connection is lost. Called with self._cond held."""
        if threading.current_thread() is threading.main_thread():
            self._main_waiting += 1
            self._start_helper()
            self._helper_cond.notify()
            try:
                while not ready() and self._lost is None:
                    self._cond.wait(0.2)  # a timeout keeps Ctrl-C responsive
            finally:
                self._main_waiting -= 1
            return
        while not ready() and self._lost is None:
            if self._reading:
                self._cond.wait()  # woken by each delivery and when the reader stops
            else:
                self._lead(ready)

    def wait_until(self, ready: Callable[[], bool]) -> None:
        """Block (reading replies meanwhile) until `ready()`; for `RunHandle`.

        Raises:
            ConnectionLostError: the connection broke first.
        """
        with self._cond:
            self._await(ready)
            if not ready():
                raise self._lost or ConnectionLostError("connection to the enclave lost")

    def _lead(self, ready: Callable[[], bool]) -> None:
        # Called with self._cond held and nobody reading: read frames until `ready()`.
        self._reading = True
        try:
            while not ready() and self._lost is None:
                self._cond.release()
                try:
                    self._read_frame()
                finally:
                    self._cond.acquire()
        finally:
            self._reading = False
            self._cond.notify_all()  # a waiting thread takes over reading
            if self._main_waiting:
                self._helper_cond.notify()

    def _start_helper(self) -> None:
        # Called with self._cond held.
        if self._helper is None:
            self._helper = threading.Thread(target=self._help, name="enclave-rpc", daemon=True)
            self._helper.start()

    def _help(self) -> None:
        # Reads while the main thread waits (it must not read itself: Ctrl-C).
        with self._cond:
            while self._lost is None:
                if self._main_waiting and not self._reading:
                    self._lead(lambda: not self._main_waiting)
                else:
                    self._helper_cond.wait()

    def _read_frame(self) -> None:
        """Read one whole frame and deliver it; a closed or bad stream loses the connection."""
        decoder = self._decoder
        try:
            while True:
                count = self._sock.recv_into(decoder.buffer())
                if count == 0:
                    decoder.end_of_stream()
                    reason = "the enclave closed the connection"
                    break
                frame = decoder.advance(count)
                if frame is not None:
                    self._deliver(parse_message(frame))
                    return
        except RpcFormatError as e:
            reason = f"the enclave sent a bad frame: {e}"
        except _ServerClosedError as e:
            reason = str(e)
        except OSError as e:
            reason = f"connection to the enclave lost: {e.strerror or e}"
        if self._closing:
            reason = "the connection to the enclave was closed"
        self._connection_lost(reason)

    def _poll(self) -> None:
        """Read what has already arrived, without blocking, when nobody is reading."""
        with self._cond:
            if self._reading or self._lost is not None:
                return
            self._reading = True
        try:
            while True:
                try:
                    peek = self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                except BlockingIOError:
                    return  # nothing has arrived
                except OSError as e:
                    self._connection_lost(f"connection to the enclave lost: {e.strerror or e}")
                    return
                if peek and threading.current_thread() is threading.main_thread():
                    return  # a frame: left for a reader (the main thread never reads)
                self._read_frame()  # a frame already here, or the end of the stream
                if not peek:
                    return
        finally:
            with self._cond:
                self._reading = False
                self._cond.notify_all()
                if self._main_waiting:
                    self._helper_cond.notify()

    def _deliver(self, message: object) -> None:
        if isinstance(message, Event):
            with self._cond:
                target = self._pending.get(message.id)
                if isinstance(target, RunHandle) and message.name in ("stdout", "stderr"):
                    target._put(RunOutput(message.name, bytes(message.body)))  # noqa: SLF001
                    self._cond.notify_all()
            return
        if not isinstance(message, Response):
            raise RpcFormatError(f"unexpected {type(message).__name__} from the enclave")
        if message.id == 0:
            text = message.args.get("message", "connection-level error")
            raise _ServerClosedError(f"the enclave closed the connection: {text}")
        with self._cond:
            target = self._pending.pop(message.id, None)
            if isinstance(target, _WriteSlot):
                self._write_done(target, message)
            elif isinstance(target, _Waiter):
                target.response = message
                target.done = True
            elif isinstance(target, RunHandle):
                target._put(message)  # noqa: SLF001
            self._cond.notify_all()

    def _write_done(self, slot: _WriteSlot, response: Response) -> None:
        # Called with self._cond held.
        self._inflight_bytes -= slot.size
        self._inflight_writes -= 1
        state = self._files[slot.key]
        state.inflight -= 1
        if not response.ok and state.error is None:
            state.error = remote_error(response)

    def _connection_lost(self, reason: str) -> None:
        with self._cond:
            if self._lost is None:
                self._lost = ConnectionLostError(reason)
            lost = self._lost
            pending = list(self._pending.values())
            self._pending.clear()
            for state in self._files.values():
                if state.inflight and state.error is None:
                    state.error = lost
                state.inflight = 0
            self._inflight_bytes = self._inflight_writes = 0
            self._helper_cond.notify()
            for item in pending:
                if isinstance(item, _Waiter):
                    item.error = lost
                    item.done = True
                elif isinstance(item, RunHandle):
                    item._put(lost)  # noqa: SLF001
            self._cond.notify_all()

    @property
    def connected(self) -> bool:
        """Whether the connection is still up (what has arrived is read first)."""
        self._poll()
        with self._cond:
            return self._lost is None

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
        slot = _WriteSlot(key, size)
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
            self._files.setdefault(key, _FileState()).inflight += 1
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

    def start_run(self, bundle: str, entrypoint: str, args: Sequence[str]) -> RunHandle:
        """Ask the enclave to run `entrypoint`; output streams through the handle."""
        with self._cond:
            request_id = self._register(None)
            handle = RunHandle(self.cancel, self.wait_until, request_id)
            self._pending[request_id] = handle
        self._send(
            request_id, "run", {"bundle": bundle, "entrypoint": entrypoint, "args": list(args)}
        )
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


def _pread_full(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    return data + bytes(size - len(data))


class _ServerClosedError(Exception):
    """The server sent a connection-level error (response id 0) and closes."""


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
