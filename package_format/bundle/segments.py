# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The payload as numbered segments, for callers that decrypt several at once (§7.3, §11).

`BundleReader.segments(data_key)` checks the key commitment and returns a `PayloadSegments`:

1. one thread reads the sealed segments in order with `read_batch` (a few at a time into a
   caller's buffer); a batch that stops early carries the error reading stopped at
   (`TruncatedPayloadError`, or `TrailingDataError` after the last segment);
2. any thread opens a segment with `open_into` into a caller's buffer; on failure that buffer
   holds unauthenticated bytes the caller MUST discard;
3. `FileSpans.spans` says which files a range of plaintext belongs to (files are concatenated).

The integrity rules are those of the sequential reader: a caller MUST treat the payload as
authentic only when every segment opened and the last batch had no error, and SHOULD report
the failure of the lowest segment index (a batch error counts as the index it stopped at), so
its errors match `iter_files`. Nothing here writes, starts threads or touches paths.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from package_format.bundle.errors import TrailingDataError, TruncatedPayloadError
from package_format.bundle.limits import TAG_SIZE
from package_format.bundle.manifest import FileEntry
from package_format.bundle.stream import SegmentOpener
from package_format.errors import IntegrityError


class _ReadInto(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def readinto(self, buffer: memoryview, /) -> int | None: ...


@dataclass(frozen=True)
class SealedBatch:
    """Consecutive sealed segments read by `PayloadSegments.read_batch`.

    Attributes:
        first: index of the first segment.
        sealed: each complete segment's sealed bytes (views of the caller's buffer).
        error: the error reading stopped at (index `first + len(sealed)`), or None.
        done: True once the payload is read to its end (or stopped at an error).
    """

    first: int
    sealed: tuple[memoryview, ...]
    error: IntegrityError | None
    done: bool


@dataclass(frozen=True)
class Span:
    """Part of a plaintext range that belongs to one file (§5.3 order)."""

    file: int
    file_offset: int
    offset: int
    size: int


class PayloadSegments:
    """Sealed segments of one payload, read in order and opened in any order."""

    def __init__(
        self, stream: _ReadInto, opener: SegmentOpener, payload_size: int, segment_size: int
    ) -> None:
        self._stream = stream
        self._opener = opener
        self.payload_size = payload_size
        self.segment_size = segment_size
        self.count = opener.count
        self._next = 0
        self._done = False

    def plain_size(self, index: int) -> int:
        """Plaintext bytes of segment `index`."""
        start = index * self.segment_size
        return min(self.segment_size, self.payload_size - start)

    def read_batch(self, buf: memoryview, limit: int) -> SealedBatch:
        """Read up to `limit` next segments into `buf` (room for them sealed).

        A stream with a `readview(size)` method, returning a view of memory that cannot
        change while the batch is in use (a sealed mapping), is not copied: the batch's
        views are views of that memory and `buf` is left alone.

        Raises:
            ValueError: `buf` is too small, or the payload was already read to its end.
        """
        if self._done:
            raise ValueError("payload: already read to its end")
        first = self._next
        count = min(limit, self.count - first)
        sizes = [self.plain_size(i) + TAG_SIZE for i in range(first, first + count)]
        want = sum(sizes)
        if len(buf) < want:
            raise ValueError("payload: buffer too small for the batch")
        readview = getattr(self._stream, "readview", None)
        if readview is not None:
            # The stream's own immutable memory (e.g. a sealed mapping): no copy into `buf`.
            source: memoryview = readview(want)
            got = len(source)
        else:
            got = _read_full(self._stream, buf[:want])
            source = buf
        views: list[memoryview] = []
        pos = 0
        for size in sizes:
            if pos + size > got:
                break
            views.append(source[pos : pos + size])
            pos += size
        self._next = first + len(views)
        error: IntegrityError | None = None
        if got < want:
            where = "at a segment boundary" if got == pos else "inside a segment"
            error = TruncatedPayloadError(
                f"payload: ends {where} (segment {self._next} of {self.count})"
            )
        elif self._next == self.count and self._stream.read(1):
            error = TrailingDataError("payload: bytes follow the last segment")
        self._done = error is not None or self._next == self.count
        return SealedBatch(first, tuple(views), error, self._done)

    def open_into(self, index: int, sealed: memoryview, out: memoryview) -> None:
        """Decrypt segment `index` into `out` (`plain_size(index)` bytes); thread-safe.

        Raises:
            SegmentOrderError: The segment is authentic for another position.
            SegmentAuthenticationError: The segment fails authentication.
        """
        self._opener.open_into(index, sealed, out)


class FileSpans:
    """An index from payload offsets to the files of the file table (dirs take no bytes)."""

    def __init__(self, files: Sequence[FileEntry]) -> None:
        self._ids = [i for i, f in enumerate(files) if f.kind == "file" and f.size]
        sizes = [files[i].size for i in self._ids]
        self._starts = [0, *itertools.accumulate(sizes)]

    def spans(self, start: int, size: int) -> Iterator[Span]:
        """The pieces of payload range `[start, start + size)`, file by file."""
        k = bisect.bisect_right(self._starts, start) - 1
        pos, end = start, start + size
        while pos < end and k < len(self._ids):
            file_end = self._starts[k + 1]
            n = min(end, file_end) - pos
            yield Span(self._ids[k], pos - self._starts[k], pos - start, n)
            pos += n
            k += 1


def _read_full(stream: _ReadInto, buf: memoryview) -> int:
    got = 0
    while got < len(buf):
        n = stream.readinto(buf[got:]) or 0
        if n == 0:
            break
        got += n
    return got
