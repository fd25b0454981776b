# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Inputs that once escaped the CMS parser as untyped errors (tests/vectors/cms/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyasn1.codec.ber import decoder

from package_format.cms import CmsFormatError, parse_envelope
from package_format.cms import envelope as cms_envelope

VECTOR = (
    Path(__file__).resolve().parents[2]
    / "vectors"
    / "cms"
    / "contentinfo_pyasn1_attributeerror.der"
)


def test_pyasn1_attributeerror_input_is_a_format_error() -> None:
    data = VECTOR.read_bytes()
    # The library underneath still fails this way; the parser must turn it into a typed error.
    with pytest.raises(AttributeError):
        decoder.decode(data, asn1Spec=cms_envelope._EnvelopedContentInfo())
    with pytest.raises(CmsFormatError):
        parse_envelope(data)


# Issue 15 (parser fuzzing): errors raised while reading fields after decoding.
_OID_ENVELOPED = bytes.fromhex("06092a864886f70d010703")


def test_indefinite_length_content_is_a_format_error() -> None:
    # [0] with an indefinite length and nothing in it: pyasn1 leaves a schema object that
    # raises PyAsn1Error when read.
    for data in (
        b"\x30\x80" + _OID_ENVELOPED + b"\xa0\x80\x00\x00\x00\x00",
        b"\x30\x0f" + _OID_ENVELOPED + b"\xa0\x80\x00\x00",
    ):
        with pytest.raises(CmsFormatError):
            parse_envelope(data)


def _der_length(n: int) -> bytes:
    return bytes([n]) if n < 128 else b"\x82" + n.to_bytes(2, "big")


def _with_version(envelope: bytes, version: bytes) -> bytes:
    """Replace EnvelopedData's version INTEGER 2; the builder writes indefinite lengths, as KMS."""
    prefix = b"\x30\x80" + _OID_ENVELOPED + b"\xa0\x80\x30\x80"
    assert envelope.startswith(prefix + b"\x02\x01\x02")
    return prefix + b"\x02" + _der_length(len(version)) + version + envelope[len(prefix) + 3 :]


def test_huge_version_is_a_typed_error() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from package_format.cms import CmsError
    from package_format.cms.build import build_enveloped_data

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    envelope = build_enveloped_data(
        bytes(32), recipient_public_key_der=spki, content_key=b"K" * 32, iv=b"I" * 16
    )
    assert parse_envelope(_with_version(envelope, b"\x02")).iv == b"I" * 16  # the helper is exact
    huge = b"\x01" + bytes(2500)  # about 6,000 decimal digits
    with pytest.raises(CmsError):
        parse_envelope(_with_version(envelope, huge))
