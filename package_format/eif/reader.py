# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Streaming EIF reader and verifier (specs/enclave-image.md §2, §3, §7).

`read_eif` validates the header and the section table against the file, then
streams every section once: CRC32, PCR0/1/2, and the small sections (cmdline,
metadata, signature) kept in memory within limits. It reports the CRC result
instead of raising, so `describe-eif` can show `CheckCRC: false`;
`EifImage.verify()` raises on any failure.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from package_format.eif.errors import (
    EifCrcError,
    EifSectionError,
    EifSignatureError,
    EifSignatureFormatError,
    EifTooManySectionsError,
    EifTruncatedError,
)
from package_format.eif.hashing import PcrHasher
from package_format.eif.layout import (
    CRC_OFFSET,
    HEADER_SIZE,
    SECTION_HEADER_SIZE,
    EifHeader,
    SectionType,
    parse_section_header,
    section_offsets,
)
from package_format.eif.metadata import IdentityInfo
from package_format.eif.pcr import Measurements
from package_format.eif.signature import (
    MAX_SIGNATURE_SECTION,
    PcrSignature,
    decode_signature_section,
    verify_signature,
)

CHUNK = 1 << 20


@dataclass(frozen=True)
class EifLimits:
    """Limits on untrusted images."""

    max_cmdline: int = 64 << 10
    max_metadata: int = 1 << 20
    max_signature: int = MAX_SIGNATURE_SECTION
    max_section: int = 64 << 30


@dataclass(frozen=True)
class EifSection:
    """Where one section lies: its header's offset and its data size."""

    index: int
    type: SectionType
    offset: int
    size: int

    @property
    def data_offset(self) -> int:
        """Offset of the section's data."""
        return self.offset + SECTION_HEADER_SIZE


@dataclass(frozen=True)
class EifImage:
    """A parsed image: header, sections, computed CRC and PCRs, small sections."""

    header: EifHeader
    sections: tuple[EifSection, ...]
    file_size: int
    computed_crc32: int
    measurements: Measurements
    cmdline: bytes
    metadata: IdentityInfo | None
    signatures: tuple[PcrSignature, ...]

    @property
    def crc_ok(self) -> bool:
        """True when the header's CRC32 matches the bytes."""
        return self.computed_crc32 == self.header.crc32

    @property
    def is_signed(self) -> bool:
        """True when a signature section is present."""
        return bool(self.signatures)

    def ramdisks(self) -> list[EifSection]:
        """The ramdisk sections in file order (bootstrap first)."""
        return [s for s in self.sections if s.type == SectionType.RAMDISK]

    def signature_ok(self) -> bool:
        """True when signed and the first signature verifies over PCR0."""
        if not self.signatures:
            return False
        try:
            verify_signature(self.signatures[0], self.measurements.pcr0)
        except (EifSignatureError, EifSignatureFormatError):
            return False
        return True

    def verify(self) -> None:
        """Raise unless the CRC matches and, when signed, the signature verifies.

        Raises:
            EifCrcError: CRC mismatch.
            EifSignatureError: the signature does not verify.
            EifSignatureFormatError: the signature cannot be decoded.
        """
        if not self.crc_ok:
            raise EifCrcError(
                f"eif: crc32 mismatch (header {self.header.crc32:08x}, "
                f"computed {self.computed_crc32:08x})"
            )
        if self.signatures:
            verify_signature(self.signatures[0], self.measurements.pcr0)


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EifTruncatedError(f"eif: file ends inside {what}")
    return data


def _check_table(header: EifHeader, file_size: int) -> None:
    n = header.num_sections
    if n == 0:
        raise EifSectionError("eif: no sections")
    end = header.section_offsets[-1] + SECTION_HEADER_SIZE + header.section_sizes[-1]
    for i in range(n):
        off, size = header.section_offsets[i], header.section_sizes[i]
        if off + SECTION_HEADER_SIZE + size > file_size:
            raise EifTruncatedError(
                f"eif: section {i} ({size} bytes at offset {off}) runs past the end of the file"
            )
    if list(header.section_offsets) != section_offsets(list(header.section_sizes)):
        raise EifSectionError("eif: section table offsets are not packed after the header")
    if end != file_size:
        raise EifSectionError(f"eif: {file_size - end} bytes after the last section")


def _check_types(types: list[SectionType]) -> None:
    counts = {t: types.count(t) for t in SectionType}
    if counts[SectionType.KERNEL] != 1 or counts[SectionType.CMDLINE] != 1:
        raise EifSectionError("eif: need exactly one kernel and one cmdline section")
    if counts[SectionType.RAMDISK] < 1:
        raise EifSectionError("eif: no ramdisk section")
    if counts[SectionType.METADATA] > 1 or counts[SectionType.SIGNATURE] > 1:
        raise EifSectionError("eif: duplicate metadata or signature section")
    if counts[SectionType.SIGNATURE] and types[-1] != SectionType.SIGNATURE:
        raise EifSectionError("eif: signature section is not the last section")


def _decode_small(
    small: dict[SectionType, bytes], crc: int, header_crc: int
) -> tuple[list[PcrSignature], IdentityInfo | None]:
    sig, meta = small.get(SectionType.SIGNATURE), small.get(SectionType.METADATA)
    try:
        signatures = [] if sig is None else decode_signature_section(sig)
        return signatures, None if meta is None else IdentityInfo.from_bytes(meta)
    except (EifSignatureFormatError, EifSectionError) as exc:
        if crc != header_crc:  # a damaged file: report the damage, not its symptom
            raise EifCrcError(
                f"eif: crc32 mismatch (header {header_crc:08x}, computed {crc:08x})"
            ) from exc
        raise


def _small_limit(stype: SectionType, lim: EifLimits) -> int | None:
    return {
        SectionType.CMDLINE: lim.max_cmdline,
        SectionType.METADATA: lim.max_metadata,
        SectionType.SIGNATURE: lim.max_signature,
    }.get(stype)


def read_eif(f: BinaryIO, limits: EifLimits | None = None) -> EifImage:
    """Parse, validate and measure an EIF from a seekable binary stream.

    Raises:
        EifMagicError: not an EIF.
        EifTruncatedError: the file ends before the header or a section.
        EifVersionError: unsupported version.
        EifTooManySectionsError: over 32 sections, or a section over its limit.
        EifSectionError: bad section table, types or order.
        EifSignatureFormatError: undecodable signature section.
        EifCrcError: the CRC does not match and a section cannot be decoded.
    """
    lim = limits or EifLimits()
    f.seek(0, os.SEEK_END)
    file_size = f.tell()
    f.seek(0)
    raw_header = _read_exact(f, HEADER_SIZE, "the header")
    header = EifHeader.from_bytes(raw_header)
    _check_table(header, file_size)
    crc = zlib.crc32(raw_header[:CRC_OFFSET])
    sections: list[EifSection] = []
    small: dict[SectionType, bytes] = {}
    with PcrHasher() as hasher:
        for i, (off, size) in enumerate(
            zip(header.section_offsets, header.section_sizes, strict=True)
        ):
            stype, data, crc = _read_section(f, i, size, lim=lim, crc=crc, hasher=hasher)
            if data is not None:
                small[stype] = data
            sections.append(EifSection(i, stype, off, size))
        _check_types([s.type for s in sections])
        signatures, meta = _decode_small(small, crc, header.crc32)
        measurements = hasher.finish(signatures[0].certificate_der if signatures else None)
    return EifImage(
        header=header,
        sections=tuple(sections),
        file_size=file_size,
        computed_crc32=crc,
        measurements=measurements,
        cmdline=small[SectionType.CMDLINE],
        metadata=meta,
        signatures=tuple(signatures),
    )


def _read_section(
    f: BinaryIO, index: int, size: int, *, lim: EifLimits, crc: int, hasher: PcrHasher
) -> tuple[SectionType, bytes | None, int]:
    """Read section `index` at the stream's position (specs/enclave-image.md §2.2).

    Its header must agree with the table; its header and data go into the CRC (§3) and its
    data into the PCRs (§4); the small sections' bytes (cmdline, metadata, signature, §2.4)
    are kept for decoding.

    Returns:
        The section's type, its bytes when kept (else None), and the CRC so far.

    Raises:
        EifTruncatedError: the file ends early.
        EifSectionError: the header's size differs from the table's.
        EifTooManySectionsError: the section is over its limit.
    """
    raw_sh = _read_exact(f, SECTION_HEADER_SIZE, f"section {index} header")
    stype, declared = parse_section_header(raw_sh, f"eif section {index}")
    if declared != size:
        raise EifSectionError(
            f"eif section {index}: header says {declared} bytes, table says {size}"
        )
    limit = _small_limit(stype, lim) or lim.max_section
    if size > limit:
        raise EifTooManySectionsError(
            f"eif section {index} ({stype.name.lower()}): {size} bytes over the limit"
        )
    crc = zlib.crc32(raw_sh, crc)
    hasher.begin_section(stype)
    keep = _small_limit(stype, lim) is not None
    parts: list[bytes] = []
    left = size
    while left:
        chunk = _read_exact(f, min(CHUNK, left), f"section {index}")
        left -= len(chunk)
        crc = zlib.crc32(chunk, crc)
        hasher.update(chunk)
        if keep:
            parts.append(chunk)
    return stype, b"".join(parts) if keep else None, crc


def iter_section(f: BinaryIO, section: EifSection, chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Yield one section's data from a seekable stream (e.g. a ramdisk for `iter_cpio`).

    Raises:
        EifTruncatedError: the file ends early.
    """
    f.seek(section.data_offset)
    left = section.size
    while left:
        chunk = _read_exact(f, min(chunk_size, left), f"section {section.index}")
        left -= len(chunk)
        yield chunk


class SectionReader:
    """A read-only binary stream over one section's data (for `iter_cpio`)."""

    def __init__(self, f: BinaryIO, section: EifSection) -> None:
        self._f = f
        self._start = section.data_offset
        self._left = section.size
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        """Read up to `n` bytes (all remaining when negative)."""
        if n < 0 or n > self._left:
            n = self._left
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        self._pos += len(data)
        self._left -= len(data)
        return data
