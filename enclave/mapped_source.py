# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""A read-only mapping of a file, read like a stream; `readview` hands out views, no copy.

The runner decrypts a large bundle straight from the session filesystem's memory through
this (specs/threat-model.md §5.2): the session file's memfd is sealed first
(`enclave.file_content`), so the kernel guarantees the mapped bytes cannot change while
AES-GCM authenticates and decrypts them, and a writer gets a fresh copy instead. That saves
the copy of every sealed segment into a buffer (about 100 ms per GiB here).
package_format's `PayloadSegments` uses `readview` when a stream has it.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os

# madvise(MADV_POPULATE_READ), Linux 5.14: map every page now, in one call (Python 3.11's
# mmap module does not name it).
_MADV_POPULATE_READ = 22


class MappedReader(io.RawIOBase):
    """Reads `size` bytes of `fd` through a read-only shared mapping (the fd may be closed)."""

    def __init__(self, fd: int, size: int) -> None:
        super().__init__()
        self._size = size
        self._pos = 0
        self._map = (
            mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ) if size else None
        )
        self._view = memoryview(self._map) if self._map is not None else memoryview(b"")

    @classmethod
    def of_path(cls, path: str | os.PathLike[str]) -> MappedReader:
        """Map a whole regular file (the caller vouches nobody rewrites it meanwhile)."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return cls(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)

    def readable(self) -> bool:
        """Yes."""
        return True

    def tell(self) -> int:
        """The read position."""
        return self._pos

    def populate(self) -> None:
        """Map every page now (e.g. while a key release runs), so reads do not fault later."""
        if self._map is not None:
            with contextlib.suppress(OSError, ValueError):
                self._map.madvise(_MADV_POPULATE_READ)

    def readview(self, size: int) -> memoryview:
        """The next `size` bytes (fewer at the end) as a view of the mapping."""
        view = self._view[self._pos : self._pos + max(0, size)]
        self._pos += len(view)
        return view

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Copy the next bytes into `buffer`."""
        view = self.readview(memoryview(buffer).nbytes)
        memoryview(buffer).cast("B")[: len(view)] = view
        return len(view)

    def close(self) -> None:
        """Unmap, once no view handed out is alive any more (else when they are gone)."""
        if not self.closed:
            self._view.release()
            if self._map is not None:
                with contextlib.suppress(BufferError):  # views still held: freed with them
                    self._map.close()
        super().close()
