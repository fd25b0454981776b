# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Verify an attestation document against a pinned root at a given time.

specs/attestation.md §5 fixes the order: decode and header, payload fields,
root pin, certificate chain (validity, issuer, signature, CA constraints),
then the COSE signature with the leaf key. The chain walk is done by hand so
that each failure has its own typed error; cryptography's path validator then
checks the same chain independently (defence in depth, §5 step 6).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification

from package_format.attestation.cose import verify_es384
from package_format.attestation.document import (
    DEFAULT_LIMITS,
    AttestationDocument,
    AttestationLimits,
    parse_document,
)
from package_format.attestation.errors import (
    CertificateInvalidError,
    CertificateTimeError,
    ChainBrokenError,
    UntrustedRootError,
)

if TYPE_CHECKING:
    from datetime import datetime


_E = TypeVar("_E", bound=x509.ExtensionType)


@dataclass(frozen=True)
class _Link:
    name: str
    cert: x509.Certificate


def load_root(root: bytes | x509.Certificate) -> x509.Certificate:
    """Return the pinned root as a certificate, from DER, PEM or a certificate object.

    Args:
        root: the pinned root certificate.

    Returns:
        The parsed certificate.

    Raises:
        CertificateInvalidError: the bytes are not a certificate.
    """
    if isinstance(root, x509.Certificate):
        return root
    try:
        if root.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(root)
        return x509.load_der_x509_certificate(root)
    except ValueError as exc:
        raise CertificateInvalidError("pinned root: not a certificate") from exc


def verify_attestation(
    data: bytes,
    *,
    root: bytes | x509.Certificate,
    at: datetime,
    limits: AttestationLimits = DEFAULT_LIMITS,
) -> AttestationDocument:
    """Verify a Nitro attestation document and return its fields.

    Args:
        data: the COSE_Sign1 document (tagged or untagged).
        root: the pinned root certificate (DER, PEM or object). The document's own
            `cabundle[0]` must be byte-identical to it.
        at: the verification time, timezone-aware; every certificate must be valid then.
        limits: limits on untrusted input.

    Returns:
        The document's fields, authenticated.

    Raises:
        TypeError: `at` is naive.
        CoseStructureError: the envelope or payload is malformed.
        UnsupportedAlgorithmError: the header is not ES384.
        FieldError: a payload field is missing or of the wrong type or value.
        FieldLimitError: the document or a field exceeds `limits`.
        UntrustedRootError: `cabundle[0]` is not the pinned root.
        CertificateInvalidError: a certificate does not parse or breaks a constraint.
        CertificateTimeError: a certificate is not valid at `at`.
        ChainBrokenError: a certificate is not issued by the next one up.
        SignatureInvalidError: the COSE signature does not verify.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise TypeError("verification time must be timezone-aware")
    pinned = load_root(root)
    cose, document = parse_document(data, limits=limits)
    # specs/attestation.md §5 step 3: pin the root by bytes, never trust the bundle.
    if document.cabundle[0] != pinned.public_bytes(Encoding.DER):
        raise UntrustedRootError("cabundle[0]: not the pinned root certificate")
    chain = _build_chain(document, pinned)
    _check_chain(chain, at)
    _cross_check(chain, at)
    leaf_key = chain[0].cert.public_key()
    assert isinstance(leaf_key, ec.EllipticCurvePublicKey)  # checked in _check_leaf
    verify_es384(cose, leaf_key)  # specs/attestation.md §5 step 7
    return document


def _build_chain(document: AttestationDocument, pinned: x509.Certificate) -> list[_Link]:
    # specs/attestation.md §5 step 4: [leaf, cabundle[n] ... cabundle[1], pinned root]
    links = [_Link("certificate", _load(document.certificate, "certificate"))]
    for index in range(len(document.cabundle) - 1, 0, -1):
        name = f"cabundle[{index}]"
        links.append(_Link(name, _load(document.cabundle[index], name)))
    links.append(_Link("cabundle[0]", pinned))
    return links


def _load(der: bytes, name: str) -> x509.Certificate:
    try:
        cert = x509.load_der_x509_certificate(der)
        # Touch the lazily parsed parts now so a broken encoding fails here, typed.
        _ = (cert.subject, cert.issuer, cert.extensions, cert.not_valid_after_utc)
        _ = (cert.not_valid_before_utc, cert.public_key(), cert.signature_hash_algorithm)
        _ = (cert.version, cert.serial_number, cert.signature_algorithm_oid)
    except (
        ValueError,
        TypeError,
        UnsupportedAlgorithm,
        x509.InvalidVersion,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    ) as exc:
        raise CertificateInvalidError(f"{name}: not a valid der certificate") from exc
    return cert


def _check_chain(chain: list[_Link], at: datetime) -> None:
    for link in chain:
        cert = link.cert
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            raise CertificateTimeError(
                f"{link.name}: not valid at {at.isoformat()} "
                f"(valid {cert.not_valid_before_utc.isoformat()} "
                f"to {cert.not_valid_after_utc.isoformat()})"
            )
    _check_leaf(chain[0])
    for depth, (child, parent) in enumerate(itertools.pairwise(chain)):
        if child.cert.issuer != parent.cert.subject:
            raise ChainBrokenError(f"{child.name}: issuer does not match {parent.name}")
        try:
            child.cert.verify_directly_issued_by(parent.cert)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise ChainBrokenError(f"{child.name}: signature by {parent.name} invalid") from exc
        # `depth` CA certificates sit between `parent` and the leaf.
        _check_ca(parent, depth)


def _check_leaf(link: _Link) -> None:
    # specs/attestation.md §5 step 5: CA:FALSE (or absent), digitalSignature, P-384 key.
    cert = link.cert
    bc = _extension(cert, x509.BasicConstraints, link.name)
    if bc is not None and bc.ca:
        raise CertificateInvalidError(f"{link.name}: leaf is a ca certificate")
    ku = _extension(cert, x509.KeyUsage, link.name)
    if ku is None or not ku.digital_signature:
        raise CertificateInvalidError(f"{link.name}: key usage lacks digitalsignature")
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise CertificateInvalidError(f"{link.name}: key is not p-384")


def _check_ca(link: _Link, cas_below: int) -> None:
    cert = link.cert
    bc = _extension(cert, x509.BasicConstraints, link.name)
    if bc is None or not bc.ca:
        raise CertificateInvalidError(f"{link.name}: not a ca certificate")
    if bc.path_length is not None and cas_below > bc.path_length:
        raise CertificateInvalidError(
            f"{link.name}: path length {bc.path_length} exceeded by {cas_below} cas below"
        )
    ku = _extension(cert, x509.KeyUsage, link.name)
    if ku is None or not ku.key_cert_sign:
        raise CertificateInvalidError(f"{link.name}: key usage lacks keycertsign")


def _extension(cert: x509.Certificate, kind: type[_E], name: str) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:  # pragma: no cover - extensions were parsed in _load
        raise CertificateInvalidError(f"{name}: malformed extension") from exc


def _cross_check(chain: list[_Link], at: datetime) -> None:
    # specs/attestation.md §5 step 6: the same chain through cryptography's RFC 5280
    # validator; the Nitro leaf has no AKI/SKI, so its extension policy is relaxed.
    builder = (
        verification.PolicyBuilder()
        .store(verification.Store([chain[-1].cert]))
        .time(at)
        .max_chain_depth(len(chain))
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
    )
    verifier = builder.build_client_verifier()
    try:
        verifier.verify(chain[0].cert, [link.cert for link in chain[1:-1]])
    except verification.VerificationError as exc:
        raise ChainBrokenError(f"certificate chain rejected by path validation ({exc})") from exc
