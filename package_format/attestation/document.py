# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The attestation payload: its fields, their limits, and a strict parser.

specs/attestation.md §4 lists the fields. The parser checks types and limits
only; it does not authenticate anything (that is `verify.verify_attestation`),
so an `AttestationDocument` returned by `parse_document` is well-formed but
untrusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from package_format.attestation._cbor import strict_loads
from package_format.attestation.cose import MAX_COSE_BYTES, CoseSign1, parse_cose_sign1
from package_format.attestation.errors import FieldError, FieldLimitError
from package_format.limits import short_repr

if TYPE_CHECKING:
    from collections.abc import Mapping

REQUIRED_FIELDS = ("module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle")
OPTIONAL_FIELDS = ("public_key", "user_data", "nonce")
DIGEST_SHA384 = "SHA384"
# 9999-12-31T23:59:59.999Z: keeps `timestamp` representable as a datetime.
MAX_TIMESTAMP_MS = 253402300799999


@dataclass(frozen=True)
class AttestationLimits:
    """Limits on untrusted attestation input (specs/attestation.md §6).

    Attributes:
        max_document_bytes: the whole COSE_Sign1.
        max_payload_bytes: the payload byte string (nsm-api: 1..16384).
        max_module_id_chars: the `module_id` text.
        max_pcrs: entries in the `pcrs` map (at least 1).
        max_pcr_index: highest PCR index accepted.
        pcr_lengths: accepted PCR value lengths (SHA-256/384/512 sizes).
        max_certificate_bytes: `certificate` and each `cabundle` entry.
        max_cabundle_entries: entries in `cabundle` (root plus intermediates).
        max_optional_bytes: each of `public_key`, `user_data`, `nonce`.
    """

    max_document_bytes: int = MAX_COSE_BYTES
    max_payload_bytes: int = 16384
    max_module_id_chars: int = 256
    max_pcrs: int = 32
    max_pcr_index: int = 31
    pcr_lengths: frozenset[int] = frozenset({32, 48, 64})
    max_certificate_bytes: int = 1024
    max_cabundle_entries: int = 8
    max_optional_bytes: int = 1024


DEFAULT_LIMITS = AttestationLimits()


@dataclass(frozen=True)
class AttestationDocument:
    """The fields of an attestation document (verified only if `verify_attestation` made it).

    Attributes:
        module_id: the NSM module id, e.g. `i-0123...-enc0123...`.
        digest: always `"SHA384"`.
        timestamp_ms: UTC milliseconds since the epoch when the NSM signed it.
        pcrs: PCR index to value, read-only.
        certificate: the leaf certificate (DER) whose key signed the document.
        cabundle: `[root, intermediate_1, ..., intermediate_n]`, DER each.
        public_key: the requester's public key, `None` when null or absent.
        user_data: opaque requester data, `None` when null or absent.
        nonce: the requester's nonce, `None` when null or absent.
        payload: the payload bytes exactly as signed.
    """

    module_id: str
    digest: str
    timestamp_ms: int
    pcrs: Mapping[int, bytes]
    certificate: bytes
    cabundle: tuple[bytes, ...]
    public_key: bytes | None
    user_data: bytes | None
    nonce: bytes | None
    payload: bytes = field(repr=False)

    @property
    def timestamp(self) -> datetime:
        """The signing time as an aware UTC datetime (millisecond precision)."""
        seconds, millis = divmod(self.timestamp_ms, 1000)
        return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=millis * 1000)


def parse_document(
    data: bytes, *, limits: AttestationLimits = DEFAULT_LIMITS
) -> tuple[CoseSign1, AttestationDocument]:
    """Parse a COSE_Sign1 attestation document without authenticating it.

    Args:
        data: the document as the NSM returned it.
        limits: limits on untrusted input.

    Returns:
        The COSE parts and the typed payload fields.

    Raises:
        CoseStructureError: the envelope or the payload is not well-formed CBOR of the right shape.
        UnsupportedAlgorithmError: the header is not ES384.
        FieldError: a payload field is missing, unknown, or of the wrong type or value.
        FieldLimitError: the document or a field exceeds `limits`.
    """
    cose = parse_cose_sign1(data, max_bytes=limits.max_document_bytes)
    return cose, parse_payload(cose.payload, limits=limits)


def parse_payload(
    payload: bytes, *, limits: AttestationLimits = DEFAULT_LIMITS
) -> AttestationDocument:
    """Parse and check the payload map of an attestation document (specs/attestation.md §4).

    Args:
        payload: the payload byte string of the COSE_Sign1.
        limits: limits on untrusted input.

    Returns:
        The typed fields; optional fields that are null or absent become `None`.

    Raises:
        CoseStructureError: the payload is not one well-formed CBOR item.
        FieldError: a field is missing, unknown, or of the wrong type or value.
        FieldLimitError: the payload or a field exceeds `limits`.
    """
    if not payload:
        raise FieldError("payload: empty")
    if len(payload) > limits.max_payload_bytes:
        raise FieldLimitError(f"payload: {len(payload)} bytes, limit is {limits.max_payload_bytes}")
    fields = strict_loads(payload, "payload")
    if not isinstance(fields, dict):
        raise FieldError("payload: not a map")
    for key in fields:
        if not isinstance(key, str) or key not in REQUIRED_FIELDS + OPTIONAL_FIELDS:
            raise FieldError(f"payload: unknown field {short_repr(key)}")
    for name in REQUIRED_FIELDS:
        if name not in fields:
            raise FieldError(f"payload: missing field {name}")
    return AttestationDocument(
        module_id=_module_id(fields["module_id"], limits),
        digest=_digest(fields["digest"]),
        timestamp_ms=_timestamp(fields["timestamp"]),
        pcrs=_pcrs(fields["pcrs"], limits),
        certificate=_der("certificate", fields["certificate"], limits),
        cabundle=_cabundle(fields["cabundle"], limits),
        public_key=_optional("public_key", fields.get("public_key"), limits),
        user_data=_optional("user_data", fields.get("user_data"), limits),
        nonce=_optional("nonce", fields.get("nonce"), limits),
        payload=payload,
    )


def _module_id(value: object, limits: AttestationLimits) -> str:
    if not isinstance(value, str):
        raise FieldError("payload: module_id is not a text string")
    if not value:
        raise FieldError("payload: module_id is empty")
    if len(value) > limits.max_module_id_chars:
        raise FieldLimitError(
            f"payload: module_id is {len(value)} characters, limit is {limits.max_module_id_chars}"
        )
    return value


def _digest(value: object) -> str:
    if value != DIGEST_SHA384 or not isinstance(value, str):
        raise FieldError(f"payload: digest {short_repr(value)} is not {DIGEST_SHA384}")
    return value


def _timestamp(value: object) -> int:
    if type(value) is not int or not 0 < value <= MAX_TIMESTAMP_MS:
        raise FieldError("payload: timestamp is not a positive millisecond time before year 10000")
    return value


def _pcrs(value: object, limits: AttestationLimits) -> Mapping[int, bytes]:
    if not isinstance(value, dict):
        raise FieldError("payload: pcrs is not a map")
    if not value:
        raise FieldError("payload: pcrs is empty")
    if len(value) > limits.max_pcrs:
        raise FieldLimitError(f"payload: {len(value)} pcrs, limit is {limits.max_pcrs}")
    pcrs: dict[int, bytes] = {}
    for index, digest in value.items():
        if type(index) is not int or not 0 <= index <= limits.max_pcr_index:
            raise FieldError(f"payload: pcr index {short_repr(index)} out of range")
        if not isinstance(digest, bytes):
            raise FieldError(f"payload: pcr {index} is not a byte string")
        if len(digest) not in limits.pcr_lengths:
            raise FieldError(f"payload: pcr {index} is {len(digest)} bytes")
        pcrs[index] = digest
    return MappingProxyType(dict(sorted(pcrs.items())))


def _der(name: str, value: object, limits: AttestationLimits) -> bytes:
    if not isinstance(value, bytes):
        raise FieldError(f"payload: {name} is not a byte string")
    if not value:
        raise FieldError(f"payload: {name} is empty")
    if len(value) > limits.max_certificate_bytes:
        raise FieldLimitError(
            f"payload: {name} is {len(value)} bytes, limit is {limits.max_certificate_bytes}"
        )
    return value


def _cabundle(value: object, limits: AttestationLimits) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise FieldError("payload: cabundle is not an array")
    if not value:
        raise FieldError("payload: cabundle is empty")
    if len(value) > limits.max_cabundle_entries:
        raise FieldLimitError(
            f"payload: cabundle has {len(value)} entries, limit is {limits.max_cabundle_entries}"
        )
    return tuple(_der(f"cabundle[{i}]", entry, limits) for i, entry in enumerate(value))


def _optional(name: str, value: object, limits: AttestationLimits) -> bytes | None:
    # Real documents carry null for absent fields and, once, an empty public_key.
    if value is None:
        return None
    if not isinstance(value, bytes):
        raise FieldError(f"payload: {name} is neither null nor a byte string")
    if len(value) > limits.max_optional_bytes:
        raise FieldLimitError(
            f"payload: {name} is {len(value)} bytes, limit is {limits.max_optional_bytes}"
        )
    return value
