# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""EIF v4 header and section-header layouts (specs/enclave-image.md §2).

Everything is big-endian. The header is 548 bytes; each section is a 12-byte
section header followed by its data, packed back to back from offset 548.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from package_format.eif.errors import (
    EifMagicError,
    EifSectionError,
    EifTooManySectionsError,
    EifTruncatedError,
    EifVersionError,
)

MAGIC = b".eif"
VERSION = 4
HEADER_SIZE = 548
SECTION_HEADER_SIZE = 12
MAX_SECTIONS = 32
CRC_OFFSET = 544
FLAG_ARCH_ARM64 = 0x1
DEFAULT_MEM = 1 << 30
DEFAULT_CPUS = 2

_HEADER = struct.Struct(">4sHHQQHH32Q32QII")
_SECTION = struct.Struct(">HHQ")
assert _HEADER.size == HEADER_SIZE
assert _SECTION.size == SECTION_HEADER_SIZE


class SectionType(enum.IntEnum):
    """`EifSectionType` values (specs/enclave-image.md §2.2)."""

    KERNEL = 1
    CMDLINE = 2
    RAMDISK = 3
    SIGNATURE = 4
    METADATA = 5


@dataclass(frozen=True)
class EifHeader:
    """The fixed 548-byte EIF header.

    Attributes:
        version: format version (4).
        flags: bit 0 set for an arm64 image.
        num_sections: number of sections in the file.
        section_offsets: absolute offset of each section header.
        section_sizes: size of each section's data.
        crc32: CRC-32 (zlib) over header bytes [0, 544) and every section in file order.
        default_mem: informational memory size (1 GiB as nitro-cli writes it).
        default_cpus: informational CPU count (2).
    """

    version: int
    flags: int
    num_sections: int
    section_offsets: tuple[int, ...]
    section_sizes: tuple[int, ...]
    crc32: int = 0
    default_mem: int = DEFAULT_MEM
    default_cpus: int = DEFAULT_CPUS

    def to_bytes(self) -> bytes:
        """Serialize the header (548 bytes).

        Raises:
            EifTooManySectionsError: more than 32 sections.
        """
        n = self.num_sections
        if n > MAX_SECTIONS or len(self.section_offsets) != n or len(self.section_sizes) != n:
            raise EifTooManySectionsError(f"eif header: {n} sections (at most {MAX_SECTIONS})")
        pad = (0,) * (MAX_SECTIONS - n)
        return _HEADER.pack(
            MAGIC,
            self.version,
            self.flags,
            self.default_mem,
            self.default_cpus,
            0,
            n,
            *self.section_offsets,
            *pad,
            *self.section_sizes,
            *pad,
            0,
            self.crc32,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> EifHeader:
        """Parse and validate a header.

        Raises:
            EifTruncatedError: fewer than 548 bytes.
            EifMagicError: wrong magic.
            EifVersionError: a version other than 4.
            EifTooManySectionsError: more than 32 sections.
            EifSectionError: non-zero unused table slots.
        """
        if len(data) < HEADER_SIZE:
            raise EifTruncatedError(f"eif header: {len(data)} bytes, need {HEADER_SIZE}")
        fields = _HEADER.unpack_from(data)
        magic, version, flags, mem, cpus, _reserved, n = fields[:7]
        offsets = fields[7:39]
        sizes = fields[39:71]
        crc = fields[72]
        if magic != MAGIC:
            raise EifMagicError("not an enclave image file: wrong magic")
        if version != VERSION:
            raise EifVersionError(f"eif header: unsupported version {version} (reads {VERSION})")
        if n > MAX_SECTIONS:
            raise EifTooManySectionsError(
                f"eif header: {n} sections declared (at most {MAX_SECTIONS})"
            )
        if any(offsets[n:]) or any(sizes[n:]):
            raise EifSectionError("eif header: non-zero entries past the last section")
        return cls(
            version=version,
            flags=flags,
            num_sections=n,
            section_offsets=tuple(offsets[:n]),
            section_sizes=tuple(sizes[:n]),
            crc32=crc,
            default_mem=mem,
            default_cpus=cpus,
        )


def section_header(section_type: int, size: int) -> bytes:
    """Serialize a 12-byte section header (flags are always 0)."""
    return _SECTION.pack(section_type, 0, size)


def parse_section_header(data: bytes, where: str) -> tuple[SectionType, int]:
    """Parse a 12-byte section header; return its type and data size.

    Raises:
        EifTruncatedError: fewer than 12 bytes.
        EifSectionError: type 0 or unknown, or non-zero flags.
    """
    if len(data) < SECTION_HEADER_SIZE:
        raise EifTruncatedError(f"{where}: truncated section header")
    stype, flags, size = _SECTION.unpack_from(data)
    if stype not in SectionType.__members__.values():
        raise EifSectionError(f"{where}: invalid section type {stype}")
    if flags != 0:
        raise EifSectionError(f"{where}: non-zero section flags {flags:#x}")
    return SectionType(stype), size


def section_offsets(sizes: list[int]) -> list[int]:
    """Offsets of packed sections with the given data sizes (§2.3)."""
    offsets, off = [], HEADER_SIZE
    for size in sizes:
        offsets.append(off)
        off += SECTION_HEADER_SIZE + size
    return offsets
