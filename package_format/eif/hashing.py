# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Streaming PCR hashing with one thread per hash (specs/enclave-image.md §4.3).

PCR0 and PCR2 (or PCR1) both cover each ramdisk; SHA-384 runs at about half the
speed of the disk here, so each running hash gets its own thread (hashlib
releases the GIL for large updates) and the caller's thread does CRC32 and I/O.
Queues are bounded, so memory stays at a few chunks whatever the image size.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from types import TracebackType
from typing import Self

from package_format.eif.pcr import Measurements, extend0, pcr8_from_cert_der

_DEPTH = 4
_STOP = None


class _Lane:
    def __init__(self) -> None:
        self.hash = hashlib.sha384()
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_DEPTH)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            chunk = self.queue.get()
            if chunk is _STOP:
                return
            self.hash.update(chunk)

    def stop(self) -> None:
        self.queue.put(_STOP)
        self.thread.join()


class PcrHasher:
    """Feed section bytes in file order; `finish()` returns the PCRs.

    Use as a context manager so the threads end even on errors.
    """

    def __init__(self) -> None:
        self._lanes = [_Lane(), _Lane(), _Lane()]  # PCR0, PCR1, PCR2
        self._targets: tuple[_Lane, ...] = ()
        self._ramdisks = 0
        self._closed = False

    def begin_section(self, section_type: int) -> None:
        """Start a section of the given type (1 kernel, 2 cmdline, 3 ramdisk, others unmeasured)."""
        l0, l1, l2 = self._lanes
        if section_type in (1, 2):
            self._targets = (l0, l1)
        elif section_type == 3:
            self._targets = (l0, l1) if self._ramdisks == 0 else (l0, l2)
            self._ramdisks += 1
        else:
            self._targets = ()

    def update(self, chunk: bytes) -> None:
        """Hash `chunk` into the registers the current section counts toward."""
        for lane in self._targets:
            lane.queue.put(chunk)

    def close(self) -> None:
        """Stop the threads (idempotent)."""
        if not self._closed:
            self._closed = True
            for lane in self._lanes:
                lane.stop()

    def finish(self, cert_der: bytes | None = None) -> Measurements:
        """Stop the threads and return the PCRs (PCR8 from `cert_der` when signed)."""
        self.close()
        d0, d1, d2 = (lane.hash.digest() for lane in self._lanes)
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
