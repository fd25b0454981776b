# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""An output file that starts the disk write-back of what it wrote as it goes.

`pack` and `build-eif` end with an fsync (specs/bundle-format.md, specs/enclave-image.md: the
output is written under a temporary name, fsynced, renamed). Without help the kernel keeps
most of a GiB-sized output dirty in the page cache and that fsync then waits for all of it;
asking for write-back every `KICK` bytes (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`,
which does not wait) lets the disk work while the CPU hashes or encrypts. The fsync that
follows still decides durability; elsewhere this is a plain file.
"""

from __future__ import annotations

import ctypes
import io
import queue
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

KICK = 32 << 20
_SYNC_FILE_RANGE_WRITE = 2


class WritebackFile(io.FileIO):
    """A raw file over `fd` (closed with the object) that kicks write-back as it writes."""

    def __init__(self, fd: int, mode: str = "r+") -> None:
        """Wrap `fd`, open for writing ("w") or reading and writing ("r+")."""
        super().__init__(fd, mode, closefd=True)
        self._since = 0
        self._kicked = 0

    def write(self, data: ReadableBuffer) -> int:
        """Write like `FileIO.write`; every `KICK` bytes, start write-back of the new ones."""
        n = super().write(data) or 0
        self._since += n
        if self._since >= KICK:
            end = self.tell()
            start_writeback(self.fileno(), self._kicked, end - self._kicked)
            self._kicked, self._since = end, 0
        return n


def _load() -> Callable[[int, int, int], None] | None:
    if sys.platform != "linux":
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int

    def start(fd: int, offset: int, length: int) -> None:
        fn(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # best effort: the fsync still follows

    return start


_sync_file_range = _load()


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing `[offset, offset + length)` of `fd` (no waiting)."""
    if _sync_file_range is not None and length > 0:
        _sync_file_range(fd, offset, length)


class QueuedWriter:
    """Writes what it is given to a raw file from its own thread (the caller goes on at once).

    `write` queues the object itself, not a copy: a caller passing views of reused buffers
    MUST keep each unchanged until `depth + 1` more writes were queued (`write_bundle`'s
    `out_buffers = depth + 2`). `close` waits for the queue and re-raises a write error; an
    error also surfaces at the next `write`.
    """

    def __init__(self, raw: io.RawIOBase, depth: int = 2) -> None:
        """Start the writing thread over `raw`."""
        self._raw = raw
        self._queue: queue.Queue[ReadableBuffer | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="queued-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep draining so the caller never blocks on a dead writer
            try:
                _write_all(self._raw, data)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = exc

    def write(self, data: ReadableBuffer) -> int:
        """Queue `data`; return its length.

        Raises:
            OSError: An earlier write failed.
        """
        if self._error is not None:
            raise self._error
        n = memoryview(data).nbytes
        if n:
            self._queue.put(data)
        return n

    def close(self) -> None:
        """Wait until everything queued is written (idempotent).

        Raises:
            OSError: A write failed.
        """
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error


def _write_all(raw: io.RawIOBase, data: ReadableBuffer) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = raw.write(view)
        if not n:
            raise OSError("the output accepted no bytes")
        view = view[n:]
