# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Signing an EIF in place, as `nitro-cli sign-eif` does (specs/enclave-image.md §6.4).

An unsigned image gets the signature section appended; a signed one has its
signature section replaced. The section table, count and CRC are rewritten.
PCR0/1/2 do not change; PCR8 becomes extend0(SHA384(certificate DER)).
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric import ec

from package_format.eif.errors import EifTooManySectionsError
from package_format.eif.layout import (
    CRC_OFFSET,
    HEADER_SIZE,
    MAX_SECTIONS,
    EifHeader,
    SectionType,
    section_header,
)
from package_format.eif.reader import EifImage, EifLimits, read_eif
from package_format.eif.signature import encode_signature_section, make_signature

CHUNK = 1 << 20


def _crc_of_file(f: BinaryIO, header: bytes) -> int:
    crc = zlib.crc32(header[:CRC_OFFSET])
    f.seek(HEADER_SIZE)
    while chunk := f.read(CHUNK):
        crc = zlib.crc32(chunk, crc)
    return crc


def sign_eif(
    f: BinaryIO,
    certificate_pem: bytes,
    key: ec.EllipticCurvePrivateKey,
    limits: EifLimits | None = None,
) -> EifImage:
    """Sign the image in `f` (opened read-write, seekable); return the re-read image.

    Raises:
        EifCrcError: the image is corrupt (it is never signed then).
        EifSignatureFormatError: key and certificate do not match, or unsupported curve.
        EifTooManySectionsError: no room for another section.
        PackageFormatError: any error of `read_eif`.
    """
    image = read_eif(f, limits)
    if not image.crc_ok:
        image.verify()
    sig = make_signature(image.measurements.pcr0, certificate_pem, key)
    data = encode_signature_section([sig])
    kept = [s for s in image.sections if s.type != SectionType.SIGNATURE]
    if len(kept) + 1 > MAX_SECTIONS:
        raise EifTooManySectionsError("eif: no room for a signature section")
    last = kept[-1]
    offset = last.data_offset + last.size
    f.seek(offset)
    f.write(section_header(SectionType.SIGNATURE, len(data)))
    f.write(data)
    f.truncate()
    header = EifHeader(
        version=image.header.version,
        flags=image.header.flags,
        num_sections=len(kept) + 1,
        section_offsets=(*(s.offset for s in kept), offset),
        section_sizes=(*(s.size for s in kept), len(data)),
        default_mem=image.header.default_mem,
        default_cpus=image.header.default_cpus,
    )
    raw = header.to_bytes()
    crc = _crc_of_file(f, raw)
    f.seek(0)
    f.write(raw[:CRC_OFFSET] + crc.to_bytes(4, "big"))
    f.flush()
    return read_eif(f, limits)
