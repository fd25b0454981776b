# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""SHA-256 of a session file, computed as its bytes arrive (specs/receipts.md §4.1).

The receipt names every input's digest; hashing them at run time would read every byte
again (a second pass over a GiB of data). Instead each session file carries the running
hash of its bytes, advanced by writes that continue where the hashed prefix ends (what a
copy, `put` or the sync replay does). Anything else (a write that overwrites or skips past
the hashed prefix, a shrinking truncate) drops the running hash; that file is hashed again
from its bytes when a run needs its digest (`SessionFs.file_digest`).

Callers hold the session filesystem's lock; nothing here locks.
"""

from __future__ import annotations

import hashlib
from typing import Any


class StreamDigest:
    """The running SHA-256 of one file's prefix, or nothing (dropped, or switched off)."""

    __slots__ = ("_hash", "_length", "_on")

    def __init__(self, *, on: bool = True) -> None:
        self._on = on
        self._hash: Any = hashlib.sha256() if on else None
        self._length = 0

    def wrote(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Account for `data` written at `offset` (§4.1: only appends to the prefix count)."""
        if self._hash is None:
            return
        if offset != self._length:
            self._hash = None  # a random write: hashed again when needed
            return
        self._hash.update(data)
        self._length += memoryview(data).nbytes

    def truncated(self, size: int) -> None:
        """Account for a truncate to `size` (growing keeps the prefix; the zeros are not hashed)."""
        if size == 0:
            self.reset()
        elif size < self._length:
            self._hash = None

    def reset(self) -> None:
        """The file is empty again."""
        self._hash = hashlib.sha256() if self._on else None
        self._length = 0

    def result(self, size: int) -> bytes | None:
        """SHA-256 of the file when the prefix is the whole file of `size` bytes, else None."""
        if self._hash is None or self._length != size:
            return None
        return bytes(self._hash.digest())

    def adopt(self, hashed: Any, size: int) -> None:
        """Keep a hash computed from the file's `size` bytes (after a re-read), so appends go on."""
        if self._on:
            self._hash, self._length = hashed, size
