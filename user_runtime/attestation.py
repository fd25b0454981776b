# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime attestation verify`: the pinned AWS root, time parsing, JSON output.

specs/attestation.md §12. The AWS Nitro Enclaves root G1 (package_format.attestation.roots,
shared with `receipt verify`) is pinned by its SHA-256 fingerprint; `--root` replaces it
(e.g. with the local simulator's root).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from package_format.attestation.document import AttestationDocument, parse_document
from package_format.attestation.errors import AttestationError
from package_format.attestation.roots import AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256
from package_format.attestation.verify import verify_attestation
from user_runtime.errors import InputError, UsageError

MAX_DOCUMENT_FILE = 64 * 1024
MAX_ROOT_FILE = 64 * 1024
AT_NOW = "now"
AT_DOCUMENT = "doc"
_B64 = re.compile(rb"^[A-Za-z0-9+/=_\-\s]+$")


class DocumentRejectedError(InputError):
    """The attestation document did not verify."""


def aws_root() -> x509.Certificate:
    """Return the embedded AWS Nitro Enclaves root G1 after checking its fingerprint.

    Raises:
        InputError: the embedded bytes do not match the published fingerprint.
    """
    cert = x509.load_pem_x509_certificate(AWS_NITRO_ROOT_G1_PEM)
    if root_fingerprint(cert) != AWS_NITRO_ROOT_G1_SHA256:  # pragma: no cover - constant
        raise InputError("embedded aws nitro root does not match its fingerprint")
    return cert


def root_fingerprint(cert: x509.Certificate) -> str:
    """Return the lowercase hex SHA-256 of a certificate's DER."""
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def load_root_file(path: Path) -> x509.Certificate:
    """Read a PEM (or DER) root certificate file.

    Raises:
        InputError: unreadable, too large or not a certificate.
    """
    data = _read_limited(path, MAX_ROOT_FILE, "root certificate")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise InputError(f"{path}: not a pem or der certificate") from exc


def read_document(path: Path) -> bytes:
    """Read an attestation document file: raw COSE bytes, or the same in base64.

    Raises:
        InputError: unreadable, too large, or empty.
    """
    data = _read_limited(path, MAX_DOCUMENT_FILE, "attestation document")
    if not data.strip():
        raise InputError(f"{path}: empty file")
    # Raw documents start with 0x84 (array of 4) or 0xd2 (tag 18); base64 is text.
    if data[0] not in (0x84, 0xD2) and _B64.match(data):
        compact = b"".join(data.split())
        try:
            if b"-" in compact or b"_" in compact:
                return base64.urlsafe_b64decode(compact + b"=" * (-len(compact) % 4))
            return base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            return data
    return data


def _read_limited(path: Path, limit: int, what: str) -> bytes:
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{path}: {what} larger than {limit} bytes")
    return data


def parse_at(text: str) -> datetime | None:
    """Parse `--at`: `now`, `doc` (returns None), ISO 8601, or Unix milliseconds.

    A time without a zone is taken as UTC.

    Raises:
        UsageError: the text is none of these.
    """
    value = text.strip()
    if value.lower() == AT_NOW:
        return datetime.now(tz=UTC)
    if value.lower() == AT_DOCUMENT:
        return None
    if value.isdigit():
        try:
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        except (OverflowError, ValueError, OSError) as exc:
            raise UsageError(f"--at: {value} milliseconds is out of range") from exc
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise UsageError(
            f"--at: {value!r} is not now, doc, an iso 8601 time or unix milliseconds"
        ) from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_debug_mode(doc: AttestationDocument) -> bool:
    """True for a debug-mode enclave's document: PCR0 is all zeros (specs/attestation.md §12).

    Nitro reports PCR0, 1, 2 (and 8) as zeros when an enclave runs with `--debug-mode`, whose
    memory and console its host can read: such a document proves nothing about the code.
    """
    pcr0 = doc.pcrs.get(0)
    return pcr0 is not None and not any(pcr0)


DEBUG_MODE_WARNING = (
    "warning: debug-mode document (PCR0 is all zeros): the host can read this enclave's "
    "memory, so it proves nothing about the code that ran"
)


def document_json(
    doc: AttestationDocument, *, at: datetime, root: x509.Certificate
) -> dict[str, Any]:
    """Return the printed JSON object for a verified document (specs/attestation.md §12)."""
    leaf = x509.load_der_x509_certificate(doc.certificate)
    return {
        "verified": True,
        "verified_at": _iso(at),
        "root_sha256": root_fingerprint(root),
        "module_id": doc.module_id,
        "digest": doc.digest,
        "timestamp": doc.timestamp_ms,
        "timestamp_iso": _iso(doc.timestamp),
        "pcrs": {str(index): value.hex() for index, value in doc.pcrs.items()},
        "debug_mode": is_debug_mode(doc),
        "public_key": _hex(doc.public_key),
        "user_data": _hex(doc.user_data),
        "nonce": _hex(doc.nonce),
        "certificate": {
            "subject": leaf.subject.rfc4514_string(),
            "issuer": leaf.issuer.rfc4514_string(),
            "not_before": _iso(leaf.not_valid_before_utc),
            "not_after": _iso(leaf.not_valid_after_utc),
        },
    }


def verify_file(path: Path, *, root_path: Path | None, at: datetime | None) -> dict[str, Any]:
    """Verify the document in `path` and return its JSON object.

    Args:
        path: the document file.
        root_path: a PEM root to pin instead of the AWS root.
        at: the verification time; None means the document's own timestamp.

    Raises:
        InputError: unreadable files.
        DocumentRejectedError: the document does not verify.
    """
    root = aws_root() if root_path is None else load_root_file(root_path)
    data = read_document(path)
    try:
        when = at if at is not None else parse_document(data)[1].timestamp
        doc = verify_attestation(data, root=root, at=when)
    except AttestationError as exc:
        raise DocumentRejectedError(f"{path}: {exc}") from exc
    return document_json(doc, at=when, root=root)


class NonceMismatchError(DocumentRejectedError):
    """The enclave's document does not carry the nonce the user asked for (a replay)."""


def verify_fresh(
    data: bytes, *, nonce: bytes, root_path: Path | None, at: datetime | None = None
) -> dict[str, Any]:
    """Verify a document fetched from the running enclave and check it carries `nonce`.

    Raises:
        InputError: an unreadable root file.
        DocumentRejectedError: the document does not verify.
        NonceMismatchError: it verifies but answers another nonce.
    """
    root = aws_root() if root_path is None else load_root_file(root_path)
    when = at if at is not None else datetime.now(tz=UTC)
    try:
        doc = verify_attestation(data, root=root, at=when)
    except AttestationError as exc:
        raise DocumentRejectedError(f"the enclave's document: {exc}") from exc
    if doc.nonce != nonce:
        raise NonceMismatchError("the enclave's document does not carry the requested nonce")
    return document_json(doc, at=when, root=root)
