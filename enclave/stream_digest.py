# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""SHA-256 of a session file, computed as its bytes arrive (specs/receipts.md §4.1).

The receipt names every input's digest; hashing them at run time would read every byte
again (a second pass over a GiB of data). Instead each session file carries the running
hash of its bytes, advanced by writes that continue where the hashed prefix ends (what a
copy, `put` or the sync replay does). Anything else (a write that overwrites or skips past
the hashed prefix, a shrinking truncate) drops the running hash; that file is hashed again
from its bytes when a run needs its digest (`SessionFs.file_digest`).

The hashing itself runs on a `Hasher` thread, off the write path: a write copies its chunk
into the hasher's queue (bounded: a writer waits while `max_queued` bytes are pending) and
returns, so the server takes the next chunk while the previous one is hashed on the other
core. `result` waits for the file's pending chunks. Callers of `StreamDigest` hold the
session filesystem's lock; the hasher never takes it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from typing import Any

INLINE_BYTES = 64 * 1024
"""Chunks smaller than this are hashed in place when nothing of the file is pending."""


class Hasher:
    """Applies queued hash updates in submission order on a thread of its own."""

    def __init__(self, max_queued: int = 64 << 20) -> None:
        self._cond = threading.Condition()
        self._jobs: deque[tuple[StreamDigest, Any, bytes]] = deque()
        self._queued = 0
        self._max = max_queued
        self._running = False

    def submit(self, digest: StreamDigest, hashed: Any, data: bytes) -> None:
        """Queue `hashed.update(data)` for `digest`; wait while the queue is full."""
        with self._cond:
            while self._queued > self._max:
                self._cond.wait()
            self._jobs.append((digest, hashed, data))
            self._queued += len(data)
            digest.pending += 1
            if not self._running:  # a thread per burst of writes: none idles
                self._running = True
                threading.Thread(target=self._loop, name="stream-digest", daemon=True).start()

    def drain(self, digest: StreamDigest) -> None:
        """Wait until every queued update of `digest` is applied."""
        with self._cond:
            while digest.pending:
                self._cond.wait()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._jobs:
                    self._running = False
                    return
                digest, hashed, data = self._jobs.popleft()
            hashed.update(data)  # releases the GIL: runs beside the writer
            with self._cond:
                self._queued -= len(data)
                digest.pending -= 1
                self._cond.notify_all()


class StreamDigest:
    """The running SHA-256 of one file's prefix, or nothing (dropped, or switched off)."""

    __slots__ = ("_hash", "_hasher", "_length", "_on", "pending")

    def __init__(self, *, on: bool = True, hasher: Hasher | None = None) -> None:
        self._on = on
        self._hasher = hasher
        self._hash: Any = hashlib.sha256() if on else None
        self._length = 0
        self.pending = 0  # chunks queued on the hasher (changed under its lock)

    def wrote(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Account for `data` written at `offset` (§4.1: only appends to the prefix count)."""
        if self._hash is None:
            return
        if offset != self._length:
            self._hash = None  # a random write: hashed again when needed
            return
        size = memoryview(data).nbytes
        self._length += size
        # Only the writer (under the filesystem's lock) raises `pending`: reading 0 is exact.
        if self._hasher is None or (size < INLINE_BYTES and not self.pending):
            self._hash.update(data)
        else:
            self._hasher.submit(self, self._hash, bytes(data))  # the caller's buffer is reused

    def truncated(self, size: int) -> None:
        """Account for a truncate to `size` (growing keeps the prefix; the zeros are not hashed)."""
        if size == 0:
            self.reset()
        elif size < self._length:
            self._hash = None

    def reset(self) -> None:
        """The file is empty again (queued updates go to the old hash, which is dropped)."""
        self._hash = hashlib.sha256() if self._on else None
        self._length = 0

    def result(self, size: int) -> bytes | None:
        """SHA-256 of the file when the prefix is the whole file of `size` bytes, else None."""
        if self._hash is None or self._length != size:
            return None
        if self._hasher is not None:
            self._hasher.drain(self)
        return bytes(self._hash.digest())

    def adopt(self, hashed: Any, size: int) -> None:
        """Keep a hash computed from the file's `size` bytes (after a re-read), so appends go on."""
        if self._on:
            self._hash, self._length = hashed, size
