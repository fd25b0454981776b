# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Generate tests/vectors/enclave-image/: one EIF layout scenario per file.

specs/enclave-image.md §2 (layout, reader rules) and §3 (CRC). Each file (layout:
vectorlib.py): `expect:` (`success` or the `package_format.eif` error class that
`read_eif` then `EifImage.verify` raise), `comment:`, on success `pcr0:` and `crc32:`
(hex), a blank line, then the EIF bytes. The good image is written by `write_eif` from tiny
sections of fixed test randomness; the bad ones are assembled here, byte by byte, from the
spec, so a reader and this generator agree only if both follow it.
Usage: generate_enclave_image_vectors.py [OUT_DIR]
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from vectorlib import Vector, main, rand, write_all

from package_format.eif.layout import SectionType
from package_format.eif.writer import SectionSource, write_eif

OUT = Path(__file__).resolve().parent / "enclave-image"
HEADER_SIZE = 548
K, C, R, S, M = (SectionType.KERNEL, SectionType.CMDLINE, SectionType.RAMDISK,
                 SectionType.SIGNATURE, SectionType.METADATA)  # fmt: skip
KERNEL = rand("kernel", 200)
CMDLINE = b"reboot=k panic=30 pci=off nomodules console=ttyS0 quiet"
RAMDISKS = (rand("bootstrap ramdisk", 120), rand("customer ramdisk", 90))
GOOD_SECTIONS = [(K, KERNEL), (C, CMDLINE), (R, RAMDISKS[0]), (R, RAMDISKS[1])]


def _written() -> tuple[bytes, str]:
    out = io.BytesIO()
    result = write_eif(out, [SectionSource.from_bytes(t, d) for t, d in GOOD_SECTIONS])
    return out.getvalue(), result.measurements.pcr0.hex()


def _packed(sizes: list[int]) -> list[int]:
    """§2.3: off[0] = 548, off[i+1] = off[i] + 12 + size[i]."""
    offsets = [HEADER_SIZE]
    for size in sizes[:-1]:
        offsets.append(offsets[-1] + 12 + size)
    return offsets


def assemble(
    sections: list[tuple[int, bytes]],
    *,
    magic: bytes = b".eif",
    version: int = 4,
    num_sections: int | None = None,
    sizes: list[int] | None = None,
    offsets: list[int] | None = None,
) -> bytes:
    """An EIF from the spec's §2 layout, CRC included; each keyword overrides one field."""
    real_sizes = [len(d) for _, d in sections]
    sizes = real_sizes if sizes is None else sizes
    offsets = _packed(real_sizes) if offsets is None else offsets
    count = len(sections) if num_sections is None else num_sections
    # §2.1: magic, version, flags, default_mem 1 GiB, default_cpus 2, reserved, count,
    # 32 offsets, 32 sizes, unused, crc (patched below).
    header = struct.pack(
        ">4sHHQQHH32Q32QII",
        magic, version, 0, 1 << 30, 2, 0, count,
        *(offsets + [0] * (32 - len(offsets))), *(sizes + [0] * (32 - len(sizes))), 0, 0,
    )  # fmt: skip
    body = b"".join(struct.pack(">HHQ", t, 0, len(d)) + d for t, d in sections)
    crc = zlib.crc32(header[: HEADER_SIZE - 4] + body)
    return header[: HEADER_SIZE - 4] + struct.pack(">I", crc) + body


GOOD, PCR0 = _written()
assert assemble(GOOD_SECTIONS) == GOOD, "the spec's layout and write_eif disagree"
CRC = GOOD[HEADER_SIZE - 4 : HEADER_SIZE].hex()


def _vector(name: str, expect: str, comment: str, data: bytes) -> Vector:
    fields = {"expect": expect, "comment": comment}
    if expect == "success":
        fields.update({"pcr0": PCR0, "crc32": CRC})
    return f"eif_{name}", fields, data


def _patch(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def vectors() -> list[Vector]:
    kernel_at = HEADER_SIZE
    offs = _packed([len(d) for _, d in GOOD_SECTIONS])
    return [
        _vector("ok", "success", "kernel, cmdline, two ramdisks, unsigned", GOOD),
        _vector("short_header", "EifTruncatedError", "547 bytes", GOOD[: HEADER_SIZE - 1]),
        _vector("section_past_end", "EifTruncatedError", "the last ramdisk cut", GOOD[:-1]),
        _vector("bad_magic", "EifMagicError", "magic .elf", assemble(GOOD_SECTIONS, magic=b".elf")),
        _vector("version_3", "EifVersionError", "version 3", assemble(GOOD_SECTIONS, version=3)),
        _vector("33_sections", "EifTooManySectionsError", "num_sections 33",
                _patch(GOOD, 26, struct.pack(">H", 33))),
        _vector("table_slot_past_count", "EifSectionError", "a size in slot 4 of 4 sections",
                assemble(GOOD_SECTIONS, sizes=[len(d) for _, d in GOOD_SECTIONS] + [1])),
        _vector("offsets_not_packed", "EifSectionError", "one byte of padding after the kernel",
                assemble(GOOD_SECTIONS, offsets=[offs[0], offs[1] + 1, *offs[2:]])),
        _vector("trailing_byte", "EifSectionError", "a byte after the last section",
                GOOD + b"\x00"),
        _vector("section_type_6", "EifSectionError", "kernel header type 6",
                _patch(GOOD, kernel_at, struct.pack(">H", 6))),
        _vector("section_flags", "EifSectionError", "kernel header flags 1",
                _patch(GOOD, kernel_at + 2, struct.pack(">H", 1))),
        _vector("size_differs_from_table", "EifSectionError", "table says one byte less",
                assemble(GOOD_SECTIONS, sizes=[len(KERNEL) - 1, *[len(d) for _, d in
                                                                GOOD_SECTIONS[1:]]])),
        _vector("two_kernels", "EifSectionError", "a second kernel",
                assemble([(K, KERNEL), *GOOD_SECTIONS])),
        _vector("no_ramdisk", "EifSectionError", "kernel and cmdline only",
                assemble(GOOD_SECTIONS[:2])),
        _vector("two_metadata", "EifSectionError", "metadata twice",
                assemble([*GOOD_SECTIONS[:2], (M, b"{}"), (M, b"{}"), *GOOD_SECTIONS[2:]])),
        _vector("crc_mismatch", "EifCrcError", "one kernel byte changed after the CRC",
                _patch(GOOD, kernel_at + 12, bytes([GOOD[kernel_at + 12] ^ 1]))),
    ]  # fmt: skip


def generate(out: Path = OUT) -> list[Path]:
    return write_all(out, vectors())


if __name__ == "__main__":
    main(OUT, generate)
