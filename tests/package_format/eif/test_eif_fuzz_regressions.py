# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Inputs the parser fuzzing of issue 15 found in EIFs, one test each (enclave-image.md §9)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from package_format.eif import describe, read_eif
from package_format.eif.cpio import build_archive
from package_format.eif.cpio_reader import read_cpio
from package_format.eif.describe import certificate_json
from package_format.eif.errors import CpioFormatError, EifSectionError, EifSignatureFormatError
from package_format.eif.metadata import IdentityInfo
from package_format.eif.signature import PcrSignature, verify_signature


def _cert_der() -> tuple[bytearray, bytes]:
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "subject")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ISSUERCN")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA384())
    )
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return bytearray(cert.public_bytes(serialization.Encoding.DER)), point


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def _pem_with_bad_key() -> bytes:
    der, point = _cert_der()
    der[der.index(point) + 5] ^= 1  # the EC point is no longer on the curve
    return _pem(bytes(der))


def _pem_with_bad_issuer() -> bytes:
    der, _ = _cert_der()
    at = der.index(b"ISSUERCN")
    der[at : at + 2] = b"\xff\xfe"  # not UTF-8 in a UTF8String
    return _pem(bytes(der))


def test_certificate_key_that_cannot_load_is_a_signature_format_error() -> None:
    with pytest.raises(EifSignatureFormatError):
        verify_signature(PcrSignature(_pem_with_bad_key(), b"\x80"), bytes(48))


def test_describe_issuer_that_cannot_decode_is_a_signature_format_error() -> None:
    cert = x509.load_pem_x509_certificate(_pem_with_bad_issuer())
    with pytest.raises(EifSignatureFormatError):
        certificate_json(cert)


def test_signature_ok_is_false_for_a_certificate_key_that_cannot_load(eif_vector) -> None:
    image = read_eif(io.BytesIO(eif_vector("eif/tiny-x86_64-signed-after.eif")))
    assert image.signature_ok()
    bad = PcrSignature(_pem_with_bad_key(), image.signatures[0].cose_sign1)
    assert dataclasses.replace(image, signatures=(bad,)).signature_ok() is False


def test_signed_vector_still_describes(eif_vector) -> None:
    image = read_eif(io.BytesIO(eif_vector("eif/tiny-x86_64-signed-after.eif")))
    assert describe(image)["SigningCertificate"]["IssuerName"]


class _Recorder(io.BytesIO):
    """A stream that counts the bytes handed out."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.handed = 0

    def read(self, size: int | None = -1, /) -> bytes:
        out = super().read(size)
        self.handed += len(out)
        return out


def test_cpio_reader_stops_reading_after_the_trailer() -> None:
    archive = build_archive([])
    stream = _Recorder(archive + bytes(8 << 20))  # 8 MiB of zeros after the trailer
    with pytest.raises(CpioFormatError):
        read_cpio(stream)
    assert stream.handed <= len(archive) + 4096


def test_cpio_padding_to_512_after_the_trailer_accepted() -> None:
    archive = build_archive([])
    assert len(archive) % 512 == 0
    assert read_cpio(archive) == []


def test_metadata_deep_json_is_a_section_error() -> None:
    with pytest.raises(EifSectionError):
        IdentityInfo.from_bytes(b"[" * 100_000 + b"]" * 100_000)


def test_metadata_huge_json_integer_is_a_section_error() -> None:
    with pytest.raises(EifSectionError):
        IdentityInfo.from_bytes(b'{"ImageName":1' + b"0" * 5000 + b"}")
