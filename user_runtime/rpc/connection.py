# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""One connection to the enclave server: requests out, replies and events back to their callers.

`EnclaveClient` (client.py) builds its operations on this. Calls may come from
several threads. There is no reader thread: a thread that waits for a reply reads the
socket itself and hands other threads' replies over as they pass (one reader at a
time; the others wait), which saves a thread hand-over per round trip (about 130 of
230 µs here). The main thread never reads, so Ctrl-C cannot cut a frame in half: a
helper thread reads while it waits (specs/rpc-protocol.md §11, client library).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, Self

from package_format.rpc import (
    Event,
    FrameDecoder,
    FrameLimits,
    Request,
    Response,
    RpcFormatError,
    encode_frame,
    parse_message,
)
from user_runtime.errors import ExternalError
from user_runtime.rpc._pending import FileState, PutsSlot, Waiter, WriteSlot, puts_errors
from user_runtime.rpc.values import (
    ConnectionLostError,
    RunHandle,
    RunOutput,
    remote_error,
)

_IOV_MAX = 1024
_EMPTY = memoryview(b"")


class RpcConnection:
    """One connection's requests and replies, shared by threads; see the module docstring."""

    def __init__(self, sock: socket.socket, decoder: FrameDecoder, limits: FrameLimits) -> None:
        self._sock = sock
        self.limits = limits
        self._decoder = decoder
        self._send_lock = threading.RLock()
        self._corked: list[memoryview] | None = None  # frames held by `batch()`
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        # The helper sleeps on its own condition: waking it at every delivered frame
        # would cost the reading thread the GIL at every reply.
        self._helper_cond = threading.Condition(lock)
        self._pending: dict[int, Waiter | WriteSlot | RunHandle] = {}
        self._files: dict[str, FileState] = {}  # pipelined writes by key (the client's)
        self._next_id = 1
        self._inflight_bytes = 0
        self._inflight_writes = 0
        self._lost: ExternalError | None = None
        self._closing = False
        self._reading = False  # a thread holds the socket's read side (`_lead`)
        self._main_waiting = 0  # main-thread waits the helper reads for
        self._helper: threading.Thread | None = None

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

    def _register(self, item: Waiter | WriteSlot | RunHandle | None) -> int:
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
        waiter = Waiter()
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
            if isinstance(target, WriteSlot):
                self._write_done(target, message)
            elif isinstance(target, (Waiter, RunHandle)):
                target._put(message)  # noqa: SLF001
            self._cond.notify_all()

    def _write_done(self, slot: WriteSlot, response: Response) -> None:
        # Called with self._cond held.
        self._inflight_bytes -= slot.size
        self._inflight_writes -= 1
        if isinstance(slot, PutsSlot):
            self._puts_done(slot, response)
            return
        state = self._files[slot.key]
        state.inflight -= 1
        if not response.ok and state.error is None:
            state.error = remote_error(response)

    def _puts_done(self, slot: PutsSlot, response: Response) -> None:
        # Called with self._cond held: each file's verdict goes to its own key (§7.7).
        errors = puts_errors(slot, response)
        for index, key in enumerate(slot.keys):
            state = self._files[key]
            state.inflight -= 1
            found = errors.get(index)
            if found is not None and state.error is None:
                state.error = found

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
                if isinstance(item, (Waiter, RunHandle)):
                    item._put(lost)  # noqa: SLF001
            self._cond.notify_all()

    @property
    def connected(self) -> bool:
        """Whether the connection is still up (what has arrived is read first)."""
        self._poll()
        with self._cond:
            return self._lost is None


class _ServerClosedError(Exception):
    """The server sent a connection-level error (response id 0) and closes."""
