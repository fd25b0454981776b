# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Issue 3 must-show 1 and 3 at the format level: damaged and foreign files."""

from __future__ import annotations

import io
import struct

import pytest

from package_format.eif import read_eif
from package_format.eif.errors import (
    EifCrcError,
    EifMagicError,
    EifSectionError,
    EifTooManySectionsError,
    EifTruncatedError,
    EifVersionError,
)


def _flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


@pytest.mark.parametrize("name", ["tiny-x86_64-unsigned", "tiny-x86_64-signed-after"])
def test_bit_flip_in_any_section_is_crc_failure(name, eif_vector):
    data = eif_vector(f"eif/{name}.eif")
    image = read_eif(io.BytesIO(data))
    assert image.crc_ok
    for section in image.sections:
        for where in (section.data_offset, section.data_offset + section.size // 2):
            for bit in (0, 7):
                # either the image reads and reports the bad CRC, or a section it
                # must decode (metadata, signature) fails and the CRC is blamed
                with pytest.raises(EifCrcError):
                    read_eif(io.BytesIO(_flip(data, where, bit))).verify()


def test_bit_flip_in_signature_cbor_structure_is_crc_failure(eif_vector):
    data = eif_vector("eif/tiny-x86_64-signed-after.eif")
    sig = read_eif(io.BytesIO(data)).sections[-1]
    # the first byte is the CBOR array header: flipping it breaks decoding
    with pytest.raises(EifCrcError):
        read_eif(io.BytesIO(_flip(data, sig.data_offset, 1)))


def test_bit_flip_in_header_default_mem_is_crc_failure(eif_vector):
    data = _flip(eif_vector("eif/tiny-x86_64-unsigned.eif"), 12)
    assert not read_eif(io.BytesIO(data)).crc_ok


def test_wrong_magic_rejected(eif_vector):
    data = b"\x7fELF" + eif_vector("eif/tiny-x86_64-unsigned.eif")[4:]
    with pytest.raises(EifMagicError):
        read_eif(io.BytesIO(data))


def test_foreign_file_rejected():
    with pytest.raises(EifMagicError):
        read_eif(io.BytesIO(b"PK\x03\x04" + bytes(1000)))


@pytest.mark.parametrize("cut", [0, 3, 100, 547, 548, 560, 9000, 13273])
def test_truncated_file_rejected(cut, eif_vector):
    data = eif_vector("eif/tiny-x86_64-unsigned.eif")[:cut]
    with pytest.raises((EifTruncatedError, EifMagicError)):
        read_eif(io.BytesIO(data))


def test_more_than_32_sections_rejected(eif_vector):
    data = bytearray(eif_vector("eif/tiny-x86_64-unsigned.eif"))
    struct.pack_into(">H", data, 26, 33)
    with pytest.raises(EifTooManySectionsError):
        read_eif(io.BytesIO(bytes(data)))


def test_section_size_past_end_rejected(eif_vector):
    data = bytearray(eif_vector("eif/tiny-x86_64-unsigned.eif"))
    struct.pack_into(">Q", data, 284 + 4 * 8, 1 << 40)  # last ramdisk size in the table
    with pytest.raises(EifTruncatedError, match="past the end"):
        read_eif(io.BytesIO(bytes(data)))


def test_unsupported_version_rejected(eif_vector):
    data = bytearray(eif_vector("eif/tiny-x86_64-unsigned.eif"))
    struct.pack_into(">H", data, 4, 3)
    with pytest.raises(EifVersionError):
        read_eif(io.BytesIO(bytes(data)))


def test_appended_bytes_rejected(eif_vector):
    data = eif_vector("eif/tiny-x86_64-unsigned.eif") + b"extra"
    with pytest.raises(EifSectionError, match="after the last section"):
        read_eif(io.BytesIO(data))


def test_invalid_section_type_rejected(eif_vector):
    data = bytearray(eif_vector("eif/tiny-x86_64-unsigned.eif"))
    struct.pack_into(">H", data, 548, 9)
    with pytest.raises(EifSectionError, match="invalid section type 9"):
        read_eif(io.BytesIO(bytes(data)))


def test_section_header_size_disagreeing_with_table_rejected(eif_vector):
    data = bytearray(eif_vector("eif/tiny-x86_64-unsigned.eif"))
    struct.pack_into(">Q", data, 548 + 4, 8191)
    with pytest.raises(EifSectionError, match="table says"):
        read_eif(io.BytesIO(bytes(data)))


def test_section_offsets_not_packed_rejected(eif_vector):
    data = bytearray(eif_vector("eif/tiny-x86_64-unsigned.eif"))
    struct.pack_into(">Q", data, 28 + 8, 600)
    with pytest.raises(EifSectionError, match="not packed"):
        read_eif(io.BytesIO(bytes(data)))
