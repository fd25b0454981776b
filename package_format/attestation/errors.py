# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Typed errors of attestation-document parsing and verification (specs/attestation.md §7).

Every error is an `AttestationError` (catch that to mean "the document is not
acceptable") and also a member of one `package_format.errors` group, so callers
can tell hostile input (`FormatError`) from failed authentication
(`IntegrityError`) and from authentic-but-expired material (`PolicyError`).
"""

from __future__ import annotations

from package_format.errors import (
    FormatError,
    IntegrityError,
    LimitExceededError,
    PackageFormatError,
    PolicyError,
    UnsupportedVersionError,
)


class AttestationError(PackageFormatError):
    """Base of every attestation-document error."""


class CoseStructureError(AttestationError, FormatError):
    """The bytes are not a well-formed COSE_Sign1 (CBOR, array shape, header types)."""


class UnsupportedAlgorithmError(AttestationError, UnsupportedVersionError):
    """The protected header names an algorithm other than ES384 (-35)."""


class FieldError(AttestationError, FormatError):
    """A payload field is missing, of the wrong type, or has a forbidden value."""


class FieldLimitError(AttestationError, LimitExceededError):
    """A payload field, or the document itself, is larger than its limit."""


class UntrustedRootError(AttestationError, IntegrityError):
    """The document's `cabundle[0]` is not the pinned root certificate."""


class CertificateInvalidError(AttestationError, IntegrityError):
    """A certificate cannot be parsed or breaks a constraint (basicConstraints, keyUsage, key)."""


class CertificateTimeError(AttestationError, PolicyError):
    """A certificate of the chain is not valid at the verification time."""


class ChainBrokenError(AttestationError, IntegrityError):
    """A certificate is not issued (name or signature) by the next one up the chain."""


class SignatureInvalidError(AttestationError, IntegrityError):
    """The COSE_Sign1 signature does not verify with the leaf certificate's key."""
