# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""sign_eif: append or replace the signature section; PCR8; signature checks."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from package_format.eif import describe, read_eif, sign_eif
from package_format.eif.errors import EifCrcError, EifSignatureError, EifSignatureFormatError
from package_format.eif.signature import make_signature, verify_signature

PCR8 = "593210dba4b3e11d73fca047aa4f230ef611a4b104e9d9a7e19a1e08ef56a5fe8ffafa4b341ad3058d02721cc9e3af63"


@pytest.fixture
def test_key(eif_vector):
    pem = eif_vector("inputs/signing-cert.pem")
    key = serialization.load_pem_private_key(eif_vector("inputs/signing-key.TEST-ONLY.pem"), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return pem, key


def _other_cert(curve=None):
    key = ec.generate_private_key(curve or ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA384())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key


def test_sign_unsigned_vector_appends_section_and_sets_pcr8(eif_vector, test_key):
    original = eif_vector("eif/tiny-x86_64-unsigned.eif")
    f = io.BytesIO(original)
    image = sign_eif(f, *test_key)
    assert image.header.num_sections == 6
    assert image.crc_ok
    assert image.measurements.pcr8.hex() == PCR8
    assert image.signature_ok()
    assert f.getvalue()[548:13274] == original[548:13274]
    before = read_eif(io.BytesIO(original)).measurements
    assert (image.measurements.pcr0, image.measurements.pcr1, image.measurements.pcr2) == (
        before.pcr0,
        before.pcr1,
        before.pcr2,
    )
    assert describe(image)["SignatureCheck"] is True


def test_resign_replaces_signature_section(eif_vector):
    f = io.BytesIO(eif_vector("eif/tiny-x86_64-signed-after.eif"))
    pem, key = _other_cert()
    image = sign_eif(f, pem, key)
    assert image.header.num_sections == 6
    assert image.crc_ok
    assert image.signature_ok()
    assert image.measurements.pcr8.hex() != PCR8


def test_sign_with_key_not_matching_certificate_rejected(eif_vector, test_key):
    _, other_key = _other_cert()
    with pytest.raises(EifSignatureFormatError, match="does not match"):
        sign_eif(io.BytesIO(eif_vector("eif/tiny-x86_64-unsigned.eif")), test_key[0], other_key)


def test_sign_corrupt_image_refused(eif_vector, test_key):
    data = bytearray(eif_vector("eif/tiny-x86_64-unsigned.eif"))
    data[700] ^= 1
    with pytest.raises(EifCrcError):
        sign_eif(io.BytesIO(bytes(data)), *test_key)


def test_signature_over_other_pcr0_rejected(test_key):
    sig = make_signature(bytes(48), *test_key)
    with pytest.raises(EifSignatureError, match="differs"):
        verify_signature(sig, b"\x01" * 48)


def test_signature_by_another_key_under_test_certificate_rejected(test_key):
    pem, _ = test_key
    other_pem, other_key = _other_cert()
    forged = make_signature(bytes(48), other_pem, other_key)
    from package_format.eif.signature import PcrSignature

    with pytest.raises(EifSignatureError):
        verify_signature(PcrSignature(pem, forged.cose_sign1), bytes(48))


def test_p256_signature_round_trip():
    pem, key = _other_cert(ec.SECP256R1())
    sig = make_signature(b"\x07" * 48, pem, key)
    verify_signature(sig, b"\x07" * 48)
