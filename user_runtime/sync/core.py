# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The sync daemon's FUSE state: open handles, the queues, and the helpers every operation uses.

`OperationsCore` holds what `SyncOperations` (operations.py) and its namespace half
(namespace.py) share: the store, the enclave link, the write queue (specs/sync.md §6.1),
the replay queue (§6.3) and the open handles, each with its store descriptor.
"""

# The hot paths use os.* on str paths: pathlib would add an object per call.
from __future__ import annotations

import errno
import itertools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from user_runtime.rpc.client import (
    ConnectionLostError,
    EnclaveUnavailableError,
    PutFile,
    RemoteError,
)
from user_runtime.sync.link import EnclaveLink
from user_runtime.sync.reconcile import upload_file
from user_runtime.sync.replay import Pending, ReplayQueue
from user_runtime.sync.session import SessionClient
from user_runtime.sync.store import BackingStore, PathSplitter
from user_runtime.sync.writes import PutSend, WriteQueue

if TYPE_CHECKING:
    from user_runtime.sync.fastpath import FastPath

__all__ = [
    "BLOCK",
    "IO_SIZE",
    "UTIME_NOW",
    "UTIME_OMIT",
    "Attrs",
    "Handle",
    "OperationsCore",
    "classify",
    "session_path",
    "stat_dict",
    "store_write",
]

log = logging.getLogger(__name__)
_UID, _GID = os.getuid(), os.getgid()

BLOCK = 4096
IO_SIZE = 1024 * 1024  # st_blksize: `cp` then writes 1 MiB at a time
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
_PROTOCOL_ERRNO = {
    "BUSY": errno.EBUSY,
    "NOT_ALLOWED": errno.EPERM,
    "BAD_ARGS": errno.EINVAL,
    "TOO_LARGE": errno.EFBIG,
    "UNKNOWN_OP": errno.ENOSYS,
}


def classify(exc: BaseException) -> int | None:
    """Map an exception met while talking to the enclave to an errno (None: link lost)."""
    if isinstance(exc, RemoteError):
        return exc.errno or _PROTOCOL_ERRNO.get(exc.name, errno.EIO)
    if isinstance(exc, ConnectionLostError | EnclaveUnavailableError | ConnectionError):
        return None
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return errno.EIO


def session_path(path: str) -> str:
    """Turn a mount path (`/dataset/a`) into a session path (`dataset/a`)."""
    return path.lstrip("/")


@dataclass
class Handle:
    """One open file: its store descriptor (None inside output/) and first error."""

    path: str
    fd: int | None
    error: int = 0
    dirty: bool = False  # written since the last flush
    written: bool = False  # written since opened
    # Created by us and, so far, only in the store: the enclave gets it in one `put`
    # (specs/sync.md §6). `lock` orders its store writes against that `put`.
    fresh: bool = False
    mode: int = 0o644
    lock: threading.Lock = field(default_factory=threading.Lock)
    fd_sends: bool = False  # queued work reads the descriptor: drain before closing it
    pending: Pending | None = None  # its last close's answers, awaited by `fsync`

    def fail(self, code: int) -> None:
        """Keep the first error (the write queue's thread may set it concurrently)."""
        if not self.error:
            self.error = code


Attrs = tuple[int, int, int, int, int, int]


def stat_dict(mode: int, size: int, nlink: int, times: tuple[int, int, int]) -> dict[str, int]:
    """`getattr`'s dict for mfusepy, times in nanoseconds (atime, mtime, ctime)."""
    atime, mtime, ctime = times
    return {
        "st_mode": mode,
        "st_size": size,
        "st_nlink": nlink,
        "st_uid": _UID,
        "st_gid": _GID,
        "st_atime": atime,
        "st_mtime": mtime,
        "st_ctime": ctime,
        "st_blksize": IO_SIZE,
        "st_blocks": (size + 511) // 512,
    }


def store_write(fd: int, offset: int, data: bytes | memoryview) -> None:
    """`pwrite` all of `data` into the store file `fd` at `offset`."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class OperationsCore:
    """Handles, queues and helpers shared by the FUSE operations (specs/sync.md §6)."""

    def __init__(
        self,
        store: BackingStore,
        link: EnclaveLink,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.enclave_link = link
        self._on_ready = on_ready
        self.on_init: Callable[[], None] | None = None
        self._writes = WriteQueue(link, self._write_failed)
        self.replay = ReplayQueue(
            link,
            send_all=self._send_all,
            send_queued=self._writes.drain,
            classify=classify,
            upload=lambda c, sp: upload_file(c, store, sp, link.synced),
        )
        self._handles: dict[int, Handle] = {}
        self._fresh: dict[int, Handle] = {}  # handles still `fresh`
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._split = PathSplitter()
        self._fast: FastPath | None = None

    @property
    def inline_bytes(self) -> int:
        """The largest file a single `put` carries (a fresh file's writes stay below it)."""
        return self._writes.inline_bytes

    def use_fast_path(self, fast: FastPath) -> None:
        """Keep the compiled hot path (fastpath.py, specs/sync.md §8.1) told of what it needs.

        Its getattr answers only while no store write is queued; its write answers only for
        handles registered here as fresh, until `_materialize` or `release` unregisters them.
        """
        self._fast = fast
        self._writes.local_hooks = (fast.hold, fast.release)

    # -- helpers -------------------------------------------------------------------------

    def _parts(self, path: str) -> tuple[str, ...]:
        return self._split(path)

    def _new_handle(self, path: str, fd: int | None) -> int:
        with self._lock:
            fh = next(self._ids)
            self._handles[fh] = Handle(path, fd)
        return fh

    def _handle(self, fh: int) -> Handle:
        try:
            return self._handles[fh]
        except KeyError:
            raise OSError(errno.EBADF, "bad file handle") from None

    def _remote(self, fn: Callable[[SessionClient], Any]) -> Any:
        if self._fresh:  # what it touches may be a file the enclave has not seen yet
            with self._lock:
                fresh, self._fresh = self._fresh, {}
            for fh, handle in fresh.items():
                self._materialize(fh, handle)
        self._writes.drain()  # nothing may overtake a queued write
        return self.enclave_link.call(fn)

    def _materialize(self, fh: int, handle: Handle) -> None:
        """Queue a fresh file's `put` (its whole bytes from the store); no-op once sent.

        Its verdict comes, like a queued write's, from `flush(fh:N)` at its close.
        """
        with self._lock:
            self._fresh.pop(fh, None)
        with handle.lock:
            if handle.fd is not None and handle.fresh:
                handle.fresh = False
                if self._fast is not None:
                    self._fast.unregister(fh)  # C's writes of it are done before we read
                self._queue_put(fh, handle, handle.fd)

    def _queue_put(self, fh: int, handle: Handle, fd: int) -> None:
        # Called with handle.lock held: no store write of this handle can slip between
        # reading its bytes and queueing them; later writes queue behind.
        sp, mode, key = session_path(handle.path), handle.mode, f"fh:{fh}"
        size = os.fstat(fd).st_size
        if size <= self._writes.inline_bytes:
            data = os.pread(fd, size, 0)
            self._writes.put_call(handle, PutSend(PutFile(key, sp, mode, data)), size)
            return
        # Grown past a `put` through another descriptor: create, then the store's bytes.
        handle.fd_sends = True
        args = {"path": sp, "mode": mode, "truncate": True, "exclusive": False}

        def send(c: SessionClient) -> None:
            c.call_pipelined("create", args, key=key)
            c.write_pipelined_from(sp, 0, fd, size, key=key)

        self._writes.put_call(handle, send, size)

    def _write_failed(self, token: object, code: int) -> None:
        if isinstance(token, Handle):
            token.fail(code)
            if token.fd is not None:
                self.replay.fail(session_path(token.path), code)

    def _send_all(self) -> None:
        """Queue every fresh file's `put`, hand everything queued to the connection."""
        if self._fresh:
            with self._lock:
                fresh, self._fresh = self._fresh, {}
            for fh, handle in fresh.items():
                self._materialize(fh, handle)
        self._writes.drain()

    def _check_failed(self, path: str) -> None:
        """The enclave refused `path` after its close returned: say so, once (§6.3)."""
        code = self.replay.failed_errno(session_path(path))
        if code:
            raise OSError(code, f"the enclave refused this file earlier: {os.strerror(code)}")

    def _flush_handle(self, path: str | None, fh: int, *, wait: bool = False) -> None:
        handle = self._handle(fh)
        self._materialize(fh, handle)
        if handle.fd is None:  # output/: the enclave's verdict now, as ever
            if handle.dirty and not handle.error:
                key = f"fh:{fh}"
                try:
                    self._remote(lambda c: c.flush(key))  # drains the queue first
                except OSError as e:
                    handle.fail(e.errno or errno.EIO)
        elif handle.dirty and not handle.error:
            # Synced tree: the file is in the store; its answers come behind (§6.3).
            if handle.fd_sends:
                self._writes.drain_local()  # its queued store writes land before the stat
            st = os.fstat(handle.fd)
            sp = session_path(path if path is not None else handle.path)
            item = Pending(f"fh:{fh}", sp, st.st_size, st.st_mtime_ns, handle.fail)
            handle.pending, handle.dirty = item, False
            self.replay.add(item)
        if wait and handle.pending is not None:
            code = self.replay.wait(handle.pending)
            if code:
                handle.fail(code)
        if handle.error:
            raise OSError(handle.error, os.strerror(handle.error))
        handle.dirty = False
