# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Real AWS attestation documents verify at their own timestamps (issue 4, must-show 1)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from package_format.attestation.document import parse_document
from package_format.attestation.errors import (
    AttestationError,
    CertificateInvalidError,
    CertificateTimeError,
    ChainBrokenError,
    CoseStructureError,
    FieldError,
    FieldLimitError,
    SignatureInvalidError,
    UnsupportedAlgorithmError,
    UntrustedRootError,
)
from package_format.attestation.verify import verify_attestation

ROOT_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"

# From tests/vectors/aws/README.md: timestamp, PCR0 prefix, and the extra facts listed there.
EXPECTED = {
    "nitrite_pr2_d2d8010.cose": (1635440522077, "0" * 16),
    "tkhq_qos_mock_attestation_doc.cose": (1657117102484, "f8bb0133c427bc49"),
    "evervault_beta_valid-attestation-doc-bytes.cose": (1665651482136, "f4d48b81a460c991"),
    "evervault_beta_debug-mode-attestation-doc-bytes.cose": (1665582606081, "0" * 16),
    "evervault_valid-attestation-doc.cose": (1695049410860, "0" * 16),
}


@pytest.fixture
def root(aws_vector) -> bytes:
    return aws_vector("attestation/aws_nitro_root_g1.pem").read_bytes()


def _doc(aws_vector, name: str) -> bytes:
    return aws_vector(f"attestation/{name}").read_bytes()


def _at(data: bytes):
    return parse_document(data)[1].timestamp


def test_pinned_root_fingerprint(root):
    der = x509.load_pem_x509_certificate(root).public_bytes(Encoding.DER)
    assert hashlib.sha256(der).hexdigest() == ROOT_SHA256


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_document_verifies_at_own_timestamp(aws_vector, root, name):
    data = _doc(aws_vector, name)
    timestamp_ms, pcr0_prefix = EXPECTED[name]
    doc = verify_attestation(data, root=root, at=_at(data))
    assert doc.timestamp_ms == timestamp_ms
    assert doc.digest == "SHA384"
    assert doc.pcrs[0].hex()[:16] == pcr0_prefix
    assert sorted(doc.pcrs) == list(range(16))
    assert all(len(value) == 48 for value in doc.pcrs.values())
    assert doc.module_id.startswith("i-")
    assert len(doc.cabundle) == 4


def test_real_document_fields(aws_vector, root):
    def verified(name: str):
        data = _doc(aws_vector, name)
        return verify_attestation(data, root=root, at=_at(data))

    nitrite = verified("nitrite_pr2_d2d8010.cose")
    assert nitrite.public_key == b""
    assert len(nitrite.nonce or b"") == 20
    assert len(nitrite.user_data or b"") == 64
    qos = verified("tkhq_qos_mock_attestation_doc.cose")
    assert qos.pcrs[1].hex().startswith("bcdf05fefccaa8e5")
    assert qos.pcrs[2].hex().startswith("c185515d78cb90a2")
    assert qos.pcrs[3] == bytes(48)
    assert qos.user_data == bytes.fromhex(
        "a2ec4272c44690b2dc32ed89d4bdd266ec2b0e753dff2f25f08b5d2a15cfe2e6"
    )
    assert len(qos.public_key or b"") == 800
    assert qos.nonce is None
    signed = verified("evervault_beta_valid-attestation-doc-bytes.cose")
    assert signed.pcrs[8].hex().startswith("8790eb3cce6c83d0")
    debug = verified("evervault_beta_debug-mode-attestation-doc-bytes.cose")
    assert debug.public_key == b"my super secret key"
    assert debug.user_data == b"hello, world!"
    assert all(debug.pcrs[i] == bytes(48) for i in (0, 1, 2, 8))


def test_tagged_document_verifies(aws_vector, root):
    data = _doc(aws_vector, "tkhq_qos_mock_attestation_doc.cose")
    tagged = cbor2.dumps(cbor2.CBORTag(18, cbor2.loads(data)))
    assert tagged[0] == 0xD2
    assert verify_attestation(tagged, root=root, at=_at(data)).module_id


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


def test_signature_bit_flip_rejected(aws_vector, root):
    data = _doc(aws_vector, "evervault_valid-attestation-doc.cose")
    with pytest.raises(SignatureInvalidError):
        verify_attestation(_flip(data, len(data) - 1), root=root, at=_at(data))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_payload_bit_flip_rejected(aws_vector, root, name):
    data = _doc(aws_vector, name)
    cose, doc = parse_document(data)
    # Flip a bit inside PCR 15's value: the CBOR stays well-formed, the signature breaks.
    offset = data.index(cose.payload) + cose.payload.index(doc.pcrs[15]) + 5
    with pytest.raises(SignatureInvalidError):
        verify_attestation(_flip(data, offset), root=root, at=doc.timestamp)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("which", ["certificate", 1, 2, 3])
def test_certificate_bit_flip_rejected(aws_vector, root, name, which):
    data = _doc(aws_vector, name)
    _, doc = parse_document(data)
    cert = doc.certificate if which == "certificate" else doc.cabundle[which]
    # The last byte of a DER certificate is inside its signature value.
    offset = data.index(cert) + len(cert) - 1
    with pytest.raises(ChainBrokenError):
        verify_attestation(_flip(data, offset), root=root, at=doc.timestamp)


def test_root_bit_flip_in_cabundle_rejected(aws_vector, root):
    data = _doc(aws_vector, "nitrite_pr2_d2d8010.cose")
    _, doc = parse_document(data)
    offset = data.index(doc.cabundle[0]) + 40
    with pytest.raises(UntrustedRootError):
        verify_attestation(_flip(data, offset), root=root, at=doc.timestamp)


def test_certificate_garbage_rejected(aws_vector, root):
    data = _doc(aws_vector, "nitrite_pr2_d2d8010.cose")
    _, doc = parse_document(data)
    # Corrupt the DER header of the first intermediate: it no longer parses.
    offset = data.index(doc.cabundle[1])
    with pytest.raises(CertificateInvalidError):
        verify_attestation(_flip(data, offset + 1), root=root, at=doc.timestamp)


def test_wrong_pinned_root_rejected(aws_vector):
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives.asymmetric import ec

    from package_format.attestation.build import build_ca_certificate

    key = ec.generate_private_key(ec.SECP384R1())
    other = build_ca_certificate(
        common_name="not aws",
        public_key=key.public_key(),
        issuer=None,
        issuer_key=key,
        not_before=datetime(2019, 1, 1, tzinfo=UTC),
        not_after=datetime(2049, 1, 1, tzinfo=UTC),
        serial=7,
        path_length=None,
    )
    data = _doc(aws_vector, "nitrite_pr2_d2d8010.cose")
    with pytest.raises(UntrustedRootError):
        verify_attestation(data, root=other, at=_at(data))


@pytest.mark.parametrize("edge", ["before", "after"])
def test_time_outside_leaf_validity_rejected(aws_vector, root, edge):
    data = _doc(aws_vector, "tkhq_qos_mock_attestation_doc.cose")
    _, doc = parse_document(data)
    leaf = x509.load_der_x509_certificate(doc.certificate)
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert timedelta(hours=3) <= lifetime < timedelta(hours=3, minutes=1)
    at = (
        leaf.not_valid_before_utc - timedelta(seconds=1)
        if edge == "before"
        else leaf.not_valid_after_utc + timedelta(seconds=1)
    )
    # The same instants one second inside the window pass.
    inside = at + timedelta(seconds=1) if edge == "before" else at - timedelta(seconds=1)
    assert verify_attestation(data, root=root, at=inside).module_id
    with pytest.raises(CertificateTimeError):
        verify_attestation(data, root=root, at=at)


def test_now_rejects_old_real_document(aws_vector, root):
    from datetime import UTC, datetime

    data = _doc(aws_vector, "evervault_valid-attestation-doc.cose")
    with pytest.raises(CertificateTimeError):
        verify_attestation(data, root=root, at=datetime.now(tz=UTC))


def test_naive_time_is_a_programming_error(aws_vector, root):
    from datetime import datetime

    data = _doc(aws_vector, "evervault_valid-attestation-doc.cose")
    with pytest.raises(TypeError):
        verify_attestation(data, root=root, at=datetime(2023, 9, 18))  # noqa: DTZ001


@pytest.mark.parametrize("cut", [1, 10, 100, 1000, 4000])
def test_truncation_rejected(aws_vector, root, cut):
    data = _doc(aws_vector, "evervault_beta_valid-attestation-doc-bytes.cose")
    with pytest.raises(CoseStructureError):
        verify_attestation(data[: len(data) - cut], root=root, at=_at(data))


def test_trailing_bytes_rejected(aws_vector, root):
    data = _doc(aws_vector, "evervault_beta_valid-attestation-doc-bytes.cose")
    with pytest.raises(CoseStructureError):
        verify_attestation(data + b"\x00", root=root, at=_at(data))


@pytest.mark.parametrize("alg", [-7, -36, -37, 0, "ES384"])
def test_non_es384_header_rejected(aws_vector, root, alg):
    data = _doc(aws_vector, "evervault_beta_valid-attestation-doc-bytes.cose")
    parts = cbor2.loads(data)
    parts[0] = cbor2.dumps({1: alg})
    with pytest.raises(UnsupportedAlgorithmError):
        verify_attestation(cbor2.dumps(parts), root=root, at=_at(data))


def _resign_payload(data: bytes, **changes) -> bytes:
    parts = cbor2.loads(data)
    fields = cbor2.loads(parts[2])
    fields.update(changes)
    parts[2] = cbor2.dumps(fields)
    return cbor2.dumps(parts)


@pytest.mark.parametrize(
    "change",
    [
        {"user_data": bytes(1025)},
        {"nonce": bytes(1025)},
        {"public_key": bytes(1025)},
        {"module_id": "i-" + "x" * 300},
        {"pcrs": {i: bytes(48) for i in range(33)}},
        {"certificate": bytes(1025)},
        {"cabundle": [bytes(10)] * 9},
    ],
    ids=["user_data", "nonce", "public_key", "module_id", "pcrs", "certificate", "cabundle"],
)
def test_oversized_field_rejected(aws_vector, root, change):
    data = _doc(aws_vector, "evervault_beta_valid-attestation-doc-bytes.cose")
    with pytest.raises(FieldLimitError):
        verify_attestation(_resign_payload(data, **change), root=root, at=_at(data))


@pytest.mark.parametrize(
    "change",
    [
        {"digest": "SHA256"},
        {"timestamp": -1},
        {"timestamp": 1.5},
        {"pcrs": {32: bytes(48)}},
        {"pcrs": {0: bytes(47)}},
        {"pcrs": {}},
        {"module_id": ""},
        {"user_data": "text"},
        {"cabundle": []},
        {"extra": 1},
    ],
    ids=[
        "digest",
        "negative-ts",
        "float-ts",
        "pcr-index",
        "pcr-len",
        "no-pcrs",
        "empty-module",
        "text-user-data",
        "empty-cabundle",
        "unknown-field",
    ],
)
def test_bad_field_rejected(aws_vector, root, change):
    data = _doc(aws_vector, "evervault_beta_valid-attestation-doc-bytes.cose")
    with pytest.raises(FieldError):
        verify_attestation(_resign_payload(data, **change), root=root, at=_at(data))


def test_missing_field_rejected(aws_vector, root):
    data = _doc(aws_vector, "evervault_beta_valid-attestation-doc-bytes.cose")
    parts = cbor2.loads(data)
    fields = cbor2.loads(parts[2])
    del fields["certificate"]
    parts[2] = cbor2.dumps(fields)
    with pytest.raises(FieldError):
        verify_attestation(cbor2.dumps(parts), root=root, at=_at(data))


def test_every_error_is_an_attestation_error():
    for cls in (
        CoseStructureError,
        UnsupportedAlgorithmError,
        FieldError,
        FieldLimitError,
        UntrustedRootError,
        CertificateInvalidError,
        CertificateTimeError,
        ChainBrokenError,
        SignatureInvalidError,
    ):
        assert issubclass(cls, AttestationError)


def test_crit_header_rejected(aws_vector, root):
    data = _doc(aws_vector, "evervault_beta_valid-attestation-doc-bytes.cose")
    parts = cbor2.loads(data)
    parts[0] = cbor2.dumps({1: -35, 2: [99]})
    with pytest.raises(CoseStructureError):
        verify_attestation(cbor2.dumps(parts), root=root, at=_at(data))


@pytest.mark.parametrize("timestamp", [0, 253402300800000, 2**64 - 1])
def test_timestamp_out_of_range_rejected(aws_vector, root, timestamp):
    data = _doc(aws_vector, "evervault_beta_valid-attestation-doc-bytes.cose")
    with pytest.raises(FieldError):
        parse_document(_resign_payload(data, timestamp=timestamp))
