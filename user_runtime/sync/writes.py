# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The sync daemon's write queue: store writes first, then ordered sends (specs/sync.md §6.1)."""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from user_runtime.rpc.client import PutFile
from user_runtime.sync.link import EnclaveLink
from user_runtime.sync.session import SessionClient


def _send_write(path: str, offset: int, data: bytes, key: str, client: SessionClient) -> None:
    client.write_pipelined(path, offset, data, key=key)


Send = Callable[[SessionClient], object]


class PutSend:
    """A small file's whole `put`; held ones leave together as `puts` (rpc-protocol.md §7.7)."""

    __slots__ = ("file",)

    def __init__(self, file: PutFile) -> None:
        self.file = file

    def __call__(self, client: SessionClient) -> None:
        """Send it alone."""
        f = self.file
        client.put_pipelined(f.path, f.data, f.mode, key=f.key)


def _send_puts(files: list[PutFile], client: SessionClient) -> None:
    if len(files) == 1:
        PutSend(files[0])(client)
    elif files:
        client.puts_pipelined(files)


def _send_all(sends: Sequence[Send], client: SessionClient) -> None:
    """Send requests in order, in one `sendmsg` when the client can batch them.

    Runs of consecutive `PutSend`s become `puts` requests (one frame and one
    answer for many files), split where one would exceed the frame's limits.
    """
    batch = getattr(client, "batch", None)
    many = hasattr(client, "puts_pipelined")
    run: list[PutFile] = []
    size = path_bytes = 0
    with batch() if batch is not None else contextlib.nullcontext():
        for send in sends:
            if not (many and isinstance(send, PutSend)):
                _send_puts(run, client)
                run, size, path_bytes = [], 0, 0
                send(client)
                continue
            f = send.file
            grown, grown_paths = size + len(f.data), path_bytes + len(f.path.encode())
            if run and not client.puts_fits(len(run) + 1, grown, grown_paths):
                _send_puts(run, client)
                run, grown, grown_paths = [], len(f.data), len(f.path.encode())
            run.append(f)
            size, path_bytes = grown, grown_paths
        _send_puts(run, client)


@dataclass
class _Item:
    """Queued work: store writes first, then the sends; failures go to every token."""

    tokens: tuple[object, ...]
    local: Callable[[], object] | None
    sends: tuple[Send, ...]
    size: int


class WriteQueue:
    """Sends pipelined writes in order, from a thread of its own or held for a batch.

    Large writes (over `inline_bytes`) go through the queue thread (specs/sync.md
    §6.1): a FUSE write then costs a copy and a queue append, and the next kernel
    request is read while this thread writes the previous chunk to the store
    and sends it. Small requests with nothing queued do their store write at once
    in the caller's thread and their send is *held*: the held sends leave
    together in one `sendmsg` at the next `drain()` (every flush and enclave
    request drains), when a large write is queued, when `hold_count` or
    `inline_bytes` is reached, or once they have waited `hold_seconds` (the thread
    looks every `hold_seconds`). A small file's create, write and close so cost one
    message each way and no hand-over between threads: the queue thread is woken
    only for queued work, never per small request (each wake costs the caller the GIL).

    The store write always comes before the send, so a replay after a lost
    connection includes it. Requests leave in the order put; callers `drain()`
    before any other enclave request, so nothing overtakes a queued write. A
    failure is handed to `on_error` with the request's token (the file handle)
    and its errno.
    """

    def __init__(
        self,
        link: EnclaveLink,
        on_error: Callable[[object, int], None],
        limit_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self._link = link
        self._on_error = on_error
        self._limit = limit_bytes
        lock = threading.RLock()
        self._cond = threading.Condition(lock)  # callers: drain, room, store writes done
        self._work = threading.Condition(lock)  # the queue thread: work queued, stop
        self._queue: collections.deque[_Item] = collections.deque()
        self._held: list[tuple[object, Send]] = []
        self._held_bytes = 0
        self._held_since = 0.0
        self.inline_bytes = 64 * 1024
        # Held small files leave as one `puts` (§7.7): one frame and one answer for up to
        # `hold_count` files or `hold_bytes`, whichever comes first.
        self.hold_count = 256
        self.hold_bytes = 512 * 1024
        # Held requests that are not whole files' `put`s (small writes) each stay one
        # request in `_send_all`'s `batch()`, which must stay under the client's window
        # (64 requests): a corked request never gets its answer.
        self.hold_other = 16
        self._held_other = 0
        self.hold_seconds = 0.05
        self._bytes = 0
        self._local = 0  # queued store writes not yet done
        # Told of each queued store write and of its end: the compiled getattr (fastpath.py)
        # leaves sizes to Python while any is pending.
        self.local_hooks: tuple[Callable[[], None], Callable[[], None]] | None = None
        self._busy = False
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="enclave-writes", daemon=True)
        self._thread.start()

    def put(
        self,
        token: object,
        *,
        local: Callable[[bytes | memoryview], object] | None,
        path: str | None,
        offset: int,
        data: bytes | memoryview,
        key: str,
    ) -> None:
        """Put one write: `local(data)` (the store write) first, then the send when `path`.

        `data` may be borrowed (e.g. libfuse's buffer): it is used in this call
        or copied when queued.
        """
        size = len(data)
        with self._cond:
            inline = self._claim(size)
            if inline:
                store = None if local is None else functools.partial(local, data)
            data = bytes(data)  # kept past this call: queued, or the send held
            send = None if path is None else functools.partial(_send_write, path, offset, data, key)
            if not inline:
                store = None if local is None else functools.partial(local, data)
                self._enqueue(_Item((token,), store, () if send is None else (send,), size))
                return
        self._inline(token, store, send, size)

    def put_call(
        self,
        token: object,
        fn: Send | None,
        size: int = 0,
        local: Callable[[], object] | None = None,
    ) -> None:
        """Put a request whose failure belongs to `token` (e.g. the create of a file).

        A small request without a store write is held even while the queue is
        busy (it is queued behind everything already queued when it leaves), so
        the files closed during a send still leave together as one `puts`.
        """
        with self._cond:
            if local is None and fn is not None and size <= self.inline_bytes:
                while self._bytes >= self._limit and not self._stopped:
                    self._cond.wait()
                self._hold(token, fn, size)
                return
            if not self._claim(size):
                self._enqueue(_Item((token,), local, () if fn is None else (fn,), size))
                return
        self._inline(token, local, fn, size)

    def _claim(self, size: int) -> bool:
        # Called with self._cond held: True = run in the caller (self._busy is set).
        if not self._queue and not self._busy and size <= self.inline_bytes:
            self._busy = True
            return True
        self._queue_held()
        while self._bytes >= self._limit and not self._stopped:
            self._cond.wait()
        return False

    def _enqueue(self, item: _Item) -> None:
        # Called with self._cond held.
        self._queue.append(item)
        self._bytes += item.size
        if item.local is not None:
            self._local += 1
            if self.local_hooks is not None:
                self.local_hooks[0]()
        self._work.notify()

    def _inline(
        self, token: object, local: Callable[[], object] | None, fn: Send | None, size: int
    ) -> None:
        # Runs with self._busy set by `_claim`: the store write now, the send held.
        try:
            if local is not None:
                local()
        except OSError as e:
            fn = None  # as when queued: no send after a failed store write
            self._on_error(token, e.errno or errno.EIO)
        with self._cond:
            self._busy = False
            if fn is not None:
                self._hold(token, fn, size)
            else:
                self._cond.notify_all()
                if self._queue or self._stopped:
                    self._work.notify()

    def _hold(self, token: object, fn: Send, size: int) -> None:
        # Called with self._cond held: hold a send for the next batch.
        if not self._held:
            self._held_since = time.monotonic()
        self._held.append((token, fn))
        self._held_bytes += size
        self._held_other += not isinstance(fn, PutSend)
        if (
            len(self._held) >= self.hold_count
            or self._held_bytes >= self.hold_bytes
            or self._held_other >= self.hold_other
        ):
            self._queue_held()
        self._cond.notify_all()
        if self._queue or self._stopped:
            self._work.notify()

    def _queue_held(self) -> None:
        # Called with self._cond held: the held sends become one queued item.
        if self._held:
            tokens = tuple(token for token, _ in self._held)
            sends = tuple(send for _, send in self._held)
            self._queue.append(_Item(tokens, None, sends, self._held_bytes))
            self._bytes += self._held_bytes
            self._held, self._held_bytes, self._held_other = [], 0, 0

    def drain(self) -> None:
        """Wait until every queued or held request has been handed to the connection."""
        with self._cond:
            if self._held and not self._queue and not self._busy:
                self._queue_held()
                item = self._queue.popleft()
                self._busy = True
            else:
                self._queue_held()
                item = None
        if item is not None:
            self._finish(item)
        with self._cond:
            while self._queue or self._busy:
                self._cond.wait()

    def drain_local(self) -> None:
        """Wait until every queued store write is done (not needed for sends)."""
        with self._cond:
            while self._local:
                self._cond.wait()

    def stop(self) -> None:
        """Send what is queued or held, then end the thread."""
        with self._cond:
            self._stopped = True
            self._work.notify()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                # Never beside a caller's inline work or drain (`_busy`): requests leave in order.
                while self._busy or (not self._queue and not self._stopped):
                    if (
                        not self._busy
                        and self._held
                        and time.monotonic() - self._held_since >= self.hold_seconds
                    ):
                        self._queue_held()  # nobody drained them: send them now
                        continue
                    self._work.wait(self.hold_seconds)
                if self._stopped:
                    self._queue_held()
                if not self._queue:
                    return
                item = self._queue.popleft()
                self._busy = True
            self._finish(item)

    def _finish(self, item: _Item) -> None:
        # Runs with self._busy set by the caller.
        try:
            self._run(item)
        finally:
            with self._cond:
                self._bytes -= item.size
                self._busy = False
                self._cond.notify_all()
                if self._queue or self._stopped:
                    self._work.notify()

    def _run(self, item: _Item) -> None:
        try:
            if item.local is not None:
                try:
                    item.local()
                finally:
                    with self._cond:
                        self._local -= 1
                        if self.local_hooks is not None:
                            self.local_hooks[1]()
                        self._cond.notify_all()
            if len(item.sends) == 1:
                self._link.call(item.sends[0])
            elif item.sends:
                self._link.call(functools.partial(_send_all, item.sends))
        except OSError as e:
            for token in item.tokens:
                self._on_error(token, e.errno or errno.EIO)
