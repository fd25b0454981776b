# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Build attestation documents and their certificates, shaped like AWS's (for the simulator).

Pure functions: keys, times and serial numbers are parameters. The chain the
simulator uses mirrors AWS's (specs/attestation.md §8): a P-384 root (CA, no
path length), intermediates with decreasing path lengths, and a leaf with only
basicConstraints CA:FALSE and a non-critical keyUsage (digitalSignature,
nonRepudiation), signed ecdsa-with-SHA384. Signatures are deterministic (RFC 6979): the
same inputs give the same bytes, so tests/vectors/attestation/ regenerates and diffs.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from package_format.attestation.cose import sign_es384
from package_format.attestation.document import DIGEST_SHA384

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime


def encode_payload(
    *,
    module_id: str,
    timestamp_ms: int,
    pcrs: Mapping[int, bytes],
    certificate: bytes,
    cabundle: Sequence[bytes],
    public_key: bytes | None = None,
    user_data: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """Encode a payload map in the NSM's field order (specs/attestation.md §4).

    Args:
        module_id: the module id text.
        timestamp_ms: UTC milliseconds since the epoch.
        pcrs: PCR index to value.
        certificate: the leaf certificate, DER.
        cabundle: root first, then intermediates, DER each.
        public_key: optional requester key (null when `None`).
        user_data: optional requester data (null when `None`).
        nonce: optional requester nonce (null when `None`).

    Returns:
        The CBOR payload bytes.

    Raises:
        ValueError: never for well-typed arguments (cbor2 encoding errors propagate).
    """
    return cbor2.dumps(
        {
            "module_id": module_id,
            "digest": DIGEST_SHA384,
            "timestamp": timestamp_ms,
            "pcrs": {index: pcrs[index] for index in sorted(pcrs)},
            "certificate": certificate,
            "cabundle": list(cabundle),
            "public_key": public_key,
            "user_data": user_data,
            "nonce": nonce,
        }
    )


def build_document(
    *,
    signing_key: ec.EllipticCurvePrivateKey,
    module_id: str,
    timestamp_ms: int,
    pcrs: Mapping[int, bytes],
    certificate: bytes,
    cabundle: Sequence[bytes],
    public_key: bytes | None = None,
    user_data: bytes | None = None,
    nonce: bytes | None = None,
    deterministic: bool = True,
) -> bytes:
    """Build a signed, untagged COSE_Sign1 attestation document.

    Args:
        signing_key: the P-384 key of `certificate`.
        module_id: the module id text.
        timestamp_ms: UTC milliseconds since the epoch.
        pcrs: PCR index to value.
        certificate: the leaf certificate, DER.
        cabundle: root first, then intermediates, DER each.
        public_key: optional requester key.
        user_data: optional requester data.
        nonce: optional requester nonce.
        deterministic: sign with RFC 6979 nonces (reproducible test vectors).

    Returns:
        The document bytes, as `/dev/nsm` would return them.

    Raises:
        TypeError: `signing_key` is not a P-384 key.
    """
    payload = encode_payload(
        module_id=module_id,
        timestamp_ms=timestamp_ms,
        pcrs=pcrs,
        certificate=certificate,
        cabundle=cabundle,
        public_key=public_key,
        user_data=user_data,
        nonce=nonce,
    )
    return sign_es384(payload, signing_key, deterministic=deterministic)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nitro-bundles local"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "simulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def build_ca_certificate(
    *,
    common_name: str,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: datetime,
    not_after: datetime,
    serial: int,
    path_length: int | None,
    deterministic: bool = True,
) -> x509.Certificate:
    """Build a CA certificate (self-signed root when `issuer` is `None`).

    Args:
        common_name: the subject CN.
        public_key: the CA's P-384 public key.
        issuer: the issuing CA certificate, or `None` for a self-signed root.
        issuer_key: the issuer's private key (the CA's own key for a root).
        not_before: start of validity.
        not_after: end of validity.
        serial: a positive serial number (at most 159 bits).
        path_length: basicConstraints pathLen, `None` for unlimited.
        deterministic: sign with RFC 6979 nonces (reproducible test vectors).

    Returns:
        The signed certificate (ecdsa-with-SHA384).

    Raises:
        ValueError: invalid serial or validity range.
    """
    subject = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA384(), ecdsa_deterministic=deterministic)


def build_leaf_certificate(
    *,
    common_name: str,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: datetime,
    not_after: datetime,
    serial: int,
    deterministic: bool = True,
) -> x509.Certificate:
    """Build an enclave leaf certificate with AWS's extensions (BC CA:FALSE, KU).

    Args:
        common_name: the subject CN (AWS uses the module id).
        public_key: the leaf's P-384 public key.
        issuer: the issuing intermediate.
        issuer_key: the intermediate's private key.
        not_before: start of validity.
        not_after: end of validity (AWS: 3 hours later).
        serial: a positive serial number.
        deterministic: sign with RFC 6979 nonces (reproducible test vectors).

    Returns:
        The signed certificate.

    Raises:
        ValueError: invalid serial or validity range.
    """
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=False)
        .sign(issuer_key, hashes.SHA384(), ecdsa_deterministic=deterministic)
    )


def serial_from(seed: bytes) -> int:
    """Derive a positive 120-bit certificate serial from caller-supplied random bytes.

    Args:
        seed: random bytes (at least 16 recommended).

    Returns:
        A serial number in [1, 2**120).

    Raises:
        ValueError: `seed` is empty.
    """
    if not seed:
        raise ValueError("serial seed is empty")
    value = int.from_bytes(hashlib.sha256(seed).digest()[:15], "big")
    return value or 1
