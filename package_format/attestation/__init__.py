# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Nitro attestation documents: parse, verify, and build (specs/attestation.md)."""

from package_format.attestation.build import (
    build_ca_certificate,
    build_document,
    build_leaf_certificate,
    encode_payload,
)
from package_format.attestation.document import (
    DEFAULT_LIMITS,
    AttestationDocument,
    AttestationLimits,
    parse_document,
)
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

__all__ = [
    "DEFAULT_LIMITS",
    "AttestationDocument",
    "AttestationError",
    "AttestationLimits",
    "CertificateInvalidError",
    "CertificateTimeError",
    "ChainBrokenError",
    "CoseStructureError",
    "FieldError",
    "FieldLimitError",
    "SignatureInvalidError",
    "UnsupportedAlgorithmError",
    "UntrustedRootError",
    "build_ca_certificate",
    "build_document",
    "build_leaf_certificate",
    "encode_payload",
    "parse_document",
    "verify_attestation",
]
