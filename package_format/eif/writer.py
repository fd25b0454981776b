# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Streaming EIF writer (specs/enclave-image.md §2, §3).

Section sizes are known before any data is written, so the header (with the
section table) goes first and the CRC32 is computed in file order in one pass
while the PCR hashes run alongside; only the 4-byte CRC field is patched at the
end, so the output must be seekable.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from package_format.eif.errors import EifSectionError
from package_format.eif.hashing import Batcher, Chunk, Crc32, PcrHasher, Worker
from package_format.eif.layout import (
    CRC_OFFSET,
    HEADER_SIZE,
    VERSION,
    EifHeader,
    SectionType,
    section_header,
    section_offsets,
)
from package_format.eif.pcr import Measurements


@dataclass(frozen=True)
class SectionSource:
    """A section to write: its type, exact data size and the data as chunks.

    The chunks are handed to other threads: each must stay unchanged once yielded
    (bytes, or views of memory the source never reuses).
    """

    type: SectionType
    size: int
    chunks: Iterable[Chunk]

    @classmethod
    def from_bytes(cls, section_type: SectionType, data: bytes) -> SectionSource:
        """A section held in memory."""
        return cls(section_type, len(data), (data,))


@dataclass(frozen=True)
class WriteResult:
    """What `write_eif` produced."""

    measurements: Measurements
    crc32: int
    size: int


def _check_order(types: list[SectionType]) -> None:
    # specs/enclave-image.md §2.3: kernel, cmdline, metadata, ramdisk..., [signature]
    want = [SectionType.KERNEL, SectionType.CMDLINE]
    rest = types[2:]
    if rest and rest[0] == SectionType.METADATA:
        rest = rest[1:]
    if rest and rest[-1] == SectionType.SIGNATURE:
        rest = rest[:-1]
    if types[:2] != want or not rest or any(t != SectionType.RAMDISK for t in rest):
        names = ", ".join(t.name.lower() for t in types)
        raise EifSectionError(f"eif writer: unsupported section order ({names})")


def _writer(out: BinaryIO, crc: Crc32) -> Callable[[Chunk], None]:
    def consume(chunk: Chunk) -> None:
        crc.update(chunk)
        view = memoryview(chunk)
        while view:
            n = out.write(view)
            if not n:
                raise OSError("eif writer: the output accepted no bytes")
            view = view[n:]

    return consume


def write_eif(
    out: BinaryIO,
    sections: Sequence[SectionSource],
    *,
    flags: int = 0,
    cert_der: bytes | None = None,
) -> WriteResult:
    """Write an EIF v4 to `out` (seekable, positioned at 0) in one streaming pass.

    The caller's thread pulls the chunks; one thread computes the CRC and writes,
    one per PCR hashes (specs/enclave-image.md §4.3), each fed in batches through
    bounded queues. A chunk MUST NOT be modified after the source yields it.

    Args:
        out: the destination.
        sections: in file order: kernel, cmdline, optional metadata, ramdisks
            (bootstrap first), optional signature.
        flags: header flags (`FLAG_ARCH_ARM64` for aarch64).
        cert_der: DER of the signing certificate when a signature section is given.

    Raises:
        EifSectionError: bad section order, or a source yields a different size than declared.
        EifTooManySectionsError: more than 32 sections.
        OSError: the output cannot be written.
    """
    _check_order([s.type for s in sections])
    header = _header(sections, flags)
    # The CRC covers the header up to its own field (§3); the field is patched below.
    crc = Crc32(zlib.crc32(header[:CRC_OFFSET]))
    out.write(header)
    sink = Worker(_writer(out, crc), "eif-write")
    feed = Batcher()
    try:
        feed.retarget((sink,))
        with PcrHasher() as hasher:
            written = HEADER_SIZE + _write_sections(sections, hasher, feed)
            feed.flush()
            measurements = hasher.finish(cert_der)
    finally:
        sink.stop()
    sink.check()
    out.seek(CRC_OFFSET)
    out.write(struct.pack(">I", crc.value))
    out.seek(written)
    return WriteResult(measurements=measurements, crc32=crc.value, size=written)


def _header(sections: Sequence[SectionSource], flags: int) -> bytes:
    """The EIF header with its section table (specs/enclave-image.md §2.1); CRC field zero (§3)."""
    sizes = [s.size for s in sections]
    return EifHeader(
        version=VERSION,
        flags=flags,
        num_sections=len(sections),
        section_offsets=tuple(section_offsets(sizes)),
        section_sizes=tuple(sizes),
    ).to_bytes()


def _write_sections(sections: Sequence[SectionSource], hasher: PcrHasher, feed: Batcher) -> int:
    """Each section's header and data (§2.2), into the writer and the PCRs (§4.3).

    Returns:
        The bytes written after the EIF header.

    Raises:
        EifSectionError: A source yields a different size than it declared.
    """
    written = 0
    for index, section in enumerate(sections):
        sh = section_header(section.type, section.size)
        feed.add(sh)
        hasher.begin_section(section.type)
        count = _feed_section(section, hasher, feed)
        if count != section.size:
            raise EifSectionError(
                f"eif writer: section {index} ({section.type.name.lower()}) "
                f"gave {count} bytes, expected {section.size}"
            )
        written += len(sh) + count
    return written


def _feed_section(section: SectionSource, hasher: PcrHasher, feed: Batcher) -> int:
    count = 0
    for chunk in section.chunks:
        count += len(chunk)
        if count > section.size:
            break
        hasher.update(chunk)
        feed.add(chunk)
    return count
