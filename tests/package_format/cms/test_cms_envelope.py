# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""KMS `CiphertextForRecipient` envelopes: real samples parse, built ones open (must-show 2)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pyasn1.codec.der import encoder
from pyasn1_modules import rfc4055

from package_format.cms.build import build_enveloped_data
from package_format.cms.envelope import (
    OID_AES_256_CBC,
    OID_RSAES_OAEP,
    OID_SHA256,
    open_envelope,
    parse_envelope,
    subject_key_identifier,
)
from package_format.cms.errors import (
    CmsDecryptError,
    CmsError,
    CmsFormatError,
    CmsLimitError,
    CmsUnsupportedError,
    RecipientMismatchError,
)

SAMPLES = {
    "kms_sdk-c_cms_test_input_ber.der": (
        "7087b55df94ba3255cdf3c01840a2aa3ec93620625d601cf56f97bde7a3d2eb1",
        "688c6d5f7f31b0fecedf09f2e7c99ac9",
        48,
    ),
    "kms_sdk-c_cms_test_input_ber_w_ctx.der": (
        "4e61df69e443b8e25c8ae83318cfc72d9b6a5176d2167790fdf819c086e6967a",
        "e66c1172aee0f2f7be34e3afc6b0e4fe",
        16,
    ),
}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _spki(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _build(key: rsa.RSAPrivateKey, secret: bytes = bytes(range(32))) -> bytes:
    return build_enveloped_data(
        secret, recipient_public_key_der=_spki(key), content_key=b"K" * 32, iv=b"I" * 16
    )


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_real_kms_sample_parses(aws_vector, name):
    ski, iv, content_len = SAMPLES[name]
    envelope = parse_envelope(aws_vector(f"kms-cms/{name}").read_bytes())
    assert envelope.recipient_key_id.hex() == ski
    assert envelope.key_encryption_algorithm == OID_RSAES_OAEP
    assert envelope.oaep_hash == OID_SHA256
    assert envelope.mgf1_hash == OID_SHA256
    assert envelope.content_encryption_algorithm == OID_AES_256_CBC
    assert envelope.iv.hex() == iv
    assert len(envelope.encrypted_key) == 256
    assert len(envelope.encrypted_content) == content_len


def test_real_kms_sample_refuses_unrelated_key(aws_vector, rsa_key):
    data = aws_vector("kms-cms/kms_sdk-c_cms_test_input_ber.der").read_bytes()
    with pytest.raises(RecipientMismatchError):
        open_envelope(data, rsa_key)


def test_built_envelope_opens_to_data_key(rsa_key):
    secret = bytes(range(32))
    assert open_envelope(_build(rsa_key, secret), rsa_key) == secret


@pytest.mark.parametrize("size", [1, 15, 16, 17, 1024])
def test_built_envelope_round_trips_sizes(rsa_key, size):
    secret = bytes([size % 251]) * size
    assert open_envelope(_build(rsa_key, secret), rsa_key) == secret


def test_built_envelope_has_kms_layout(aws_vector, rsa_key):
    real = aws_vector("kms-cms/kms_sdk-c_cms_test_input_ber.der").read_bytes()
    built = _build(rsa_key)
    assert len(built) == len(real)
    assert built[:2] == b"\x30\x80"
    # Same structure bytes around the variable parts (SKI, wrapped key, IV, ciphertext).
    for start, end in [(0, 33), (65, 131), (387, 415), (431, 435), (483, 493)]:
        assert built[start:end] == real[start:end], (start, end)


def test_subject_key_identifier_is_sha256_of_spki(rsa_key):
    import hashlib

    ski = subject_key_identifier(rsa_key.public_key())
    assert ski == hashlib.sha256(_spki(rsa_key)).digest()
    assert parse_envelope(_build(rsa_key)).recipient_key_id == ski


def test_envelope_for_another_key_rejected(rsa_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(RecipientMismatchError):
        open_envelope(_build(other), rsa_key)


def _replace(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1
    return data.replace(old, new)


def test_wrong_oaep_hash_rejected(rsa_key):
    built = _build(rsa_key)
    sha256 = bytes(encoder.encode(rfc4055.rSAES_OAEP_SHA256_Params))
    sha384 = bytes(encoder.encode(rfc4055.rSAES_OAEP_SHA384_Params))
    assert len(sha256) == len(sha384)
    with pytest.raises(CmsUnsupportedError):
        parse_envelope(_replace(built, sha256, sha384))


def test_wrong_key_transport_rejected(rsa_key):
    built = _build(rsa_key)
    oaep = bytes.fromhex("06092a864886f70d010107")
    pkcs1 = bytes.fromhex("06092a864886f70d010101")
    with pytest.raises(CmsUnsupportedError):
        open_envelope(_replace(built, oaep, pkcs1), rsa_key)


def test_wrong_content_cipher_rejected(rsa_key):
    built = _build(rsa_key)
    aes256 = bytes.fromhex("060960864801650304012a")
    aes128 = bytes.fromhex("0609608648016503040102")
    with pytest.raises(CmsUnsupportedError):
        open_envelope(_replace(built, aes256, aes128), rsa_key)


def test_bad_padding_rejected(rsa_key):
    built = _build(rsa_key, bytes(32))
    envelope = parse_envelope(built)
    # Flipping the last ciphertext byte scrambles the final block, so its padding breaks.
    tampered = bytearray(built)
    tampered[built.index(envelope.encrypted_content) + len(envelope.encrypted_content) - 1] ^= 0x80
    with pytest.raises(CmsDecryptError):
        open_envelope(bytes(tampered), rsa_key)


def test_wrapped_key_tamper_rejected(rsa_key):
    built = _build(rsa_key)
    envelope = parse_envelope(built)
    tampered = bytearray(built)
    tampered[built.index(envelope.encrypted_key) + 100] ^= 0x01
    with pytest.raises(CmsDecryptError):
        open_envelope(bytes(tampered), rsa_key)


@pytest.mark.parametrize("cut", [1, 2, 10, 100, 400])
def test_truncated_envelope_rejected(rsa_key, cut):
    built = _build(rsa_key)
    with pytest.raises(CmsFormatError):
        parse_envelope(built[:-cut])


def test_trailing_bytes_rejected(rsa_key):
    with pytest.raises(CmsFormatError):
        parse_envelope(_build(rsa_key) + b"\x00")


def test_oversized_envelope_rejected():
    with pytest.raises(CmsLimitError):
        parse_envelope(b"\x30\x80" + bytes(7000))


def test_errors_share_base():
    for cls in (
        CmsDecryptError,
        CmsFormatError,
        CmsLimitError,
        CmsUnsupportedError,
        RecipientMismatchError,
    ):
        assert issubclass(cls, CmsError)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_opens_built_envelope(rsa_key, tmp_path):
    """An independent CMS implementation decrypts what we build."""
    secret = b"independent check of the layout!"
    (tmp_path / "env.der").write_bytes(_build(rsa_key, secret))
    (tmp_path / "key.pem").write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    result = subprocess.run(
        [
            "openssl",
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "env.der"),
            "-inkey",
            str(tmp_path / "key.pem"),
        ],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == secret
