# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Streaming PCR hashing with one thread per hash (specs/enclave-image.md §4.3).

PCR0 and PCR2 (or PCR1) both cover each ramdisk; SHA-384 runs at about half the
speed of the disk here, so each running hash gets its own thread (hashlib
releases the GIL for large updates) and the caller's thread only reads and
dispatches. Chunks are handed over in batches of several MiB so the threads
meet (and take the GIL) rarely; queues are bounded, so memory stays at a few
batches whatever the image size. Chunks are shared between the threads, so a
caller MUST NOT modify a chunk's memory after passing it (bytes are safe).
"""

from __future__ import annotations

import hashlib
import queue
import threading
import zlib
from collections.abc import Callable
from types import TracebackType
from typing import Self

from package_format.eif.pcr import Measurements, extend0, pcr8_from_cert_der

#: Bytes handed to a worker at once, and batches a worker may have queued.
BATCH = 8 << 20
DEPTH = 3

#: A chunk of section bytes (any contiguous buffer hashlib and zlib accept).
Chunk = bytes | bytearray | memoryview
_Batch = list[Chunk] | None


class Worker:
    """A thread that applies `consume` to every chunk of every batch, in order."""

    def __init__(self, consume: Callable[[Chunk], None], name: str) -> None:
        self._consume = consume
        self._queue: queue.Queue[_Batch] = queue.Queue(maxsize=DEPTH)
        self._error: BaseException | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        consume = self._consume
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self._error is not None:
                continue  # drain so the producer never blocks on a dead worker
            try:
                for chunk in batch:
                    consume(chunk)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = exc

    def put(self, batch: list[Chunk]) -> None:
        """Queue a batch (blocks while the worker is `DEPTH` batches behind).

        Raises:
            BaseException: whatever `consume` raised on an earlier batch.
        """
        self.check()
        self._queue.put(batch)

    def check(self) -> None:
        """Re-raise, in the caller's thread, an error the worker hit.

        Raises:
            BaseException: whatever `consume` raised.
        """
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Finish the queued batches and end the thread (idempotent)."""
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)
            self._thread.join()


class Batcher:
    """Collects chunks for a set of workers and hands them over `BATCH` bytes at a time."""

    def __init__(self) -> None:
        self._targets: tuple[Worker, ...] = ()
        self._pending: list[Chunk] = []
        self._size = 0

    def retarget(self, targets: tuple[Worker, ...]) -> None:
        """Flush what is pending to the old targets, then feed `targets`."""
        self.flush()
        self._targets = targets

    def add(self, chunk: Chunk) -> None:
        """Queue `chunk` for the current targets."""
        if not self._targets:
            return
        self._pending.append(chunk)
        self._size += memoryview(chunk).nbytes
        if self._size >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Hand the pending chunks to the targets now."""
        if self._pending:
            batch, self._pending, self._size = self._pending, [], 0
            for worker in self._targets:
                worker.put(batch)


class PcrHasher:
    """Feed section bytes in file order; `finish()` returns the PCRs.

    Use as a context manager so the threads end even on errors.
    """

    def __init__(self) -> None:
        self._hashes = [hashlib.sha384() for _ in range(3)]  # PCR0, PCR1, PCR2
        self._workers = [Worker(h.update, f"pcr{i}") for i, h in enumerate(self._hashes)]
        self._batcher = Batcher()
        self._ramdisks = 0
        self._closed = False

    def begin_section(self, section_type: int) -> None:
        """Start a section of the given type (1 kernel, 2 cmdline, 3 ramdisk, others unmeasured)."""
        w0, w1, w2 = self._workers
        if section_type in (1, 2):
            self._batcher.retarget((w0, w1))
        elif section_type == 3:
            self._batcher.retarget((w0, w1) if self._ramdisks == 0 else (w0, w2))
            self._ramdisks += 1
        else:
            self._batcher.retarget(())

    def update(self, chunk: Chunk) -> None:
        """Hash `chunk` into the registers the current section counts toward."""
        self._batcher.add(chunk)

    def close(self) -> None:
        """Stop the threads (idempotent)."""
        if not self._closed:
            self._closed = True
            try:
                self._batcher.flush()
            finally:
                for worker in self._workers:
                    worker.stop()

    def finish(self, cert_der: bytes | None = None) -> Measurements:
        """Stop the threads and return the PCRs (PCR8 from `cert_der` when signed)."""
        self.close()
        for worker in self._workers:
            worker.check()
        d0, d1, d2 = (h.digest() for h in self._hashes)
        return Measurements(
            pcr0=extend0(d0),
            pcr1=extend0(d1),
            pcr2=extend0(d2),
            pcr8=None if cert_der is None else pcr8_from_cert_der(cert_der),
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Crc32:
    """A running CRC32 (zlib's, which releases the GIL on large buffers)."""

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def update(self, chunk: Chunk) -> None:
        """Fold `chunk` into the CRC."""
        self.value = zlib.crc32(chunk, self.value)
