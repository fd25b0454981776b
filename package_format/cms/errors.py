# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Typed errors of the KMS recipient envelope (specs/attestation.md §9.5).

Every error is a `CmsError` and also a member of one `package_format.errors` group.
"""

from __future__ import annotations

from package_format.errors import (
    FormatError,
    IntegrityError,
    LimitExceededError,
    PackageFormatError,
    UnsupportedVersionError,
)


class CmsError(PackageFormatError):
    """Base of every CMS envelope error."""


class CmsFormatError(CmsError, FormatError):
    """The bytes are not a BER ContentInfo(EnvelopedData) of the KMS shape."""


class CmsLimitError(CmsError, LimitExceededError):
    """The envelope or one of its parts is larger than its limit."""


class CmsUnsupportedError(CmsError, UnsupportedVersionError):
    """A version, recipient kind or algorithm other than the KMS ones."""


class RecipientMismatchError(CmsError, IntegrityError):
    """The envelope is addressed to another key (subjectKeyIdentifier differs)."""


class CmsDecryptError(CmsError, IntegrityError):
    """RSA-OAEP unwrapping, AES-CBC decryption or PKCS#7 unpadding failed."""
