# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Typed errors of the EIF, cpio and EIF-signature formats (specs/enclave-image.md §9)."""

from __future__ import annotations

from package_format.errors import (
    FormatError,
    IntegrityError,
    LimitExceededError,
    UnsupportedVersionError,
)


class EifMagicError(FormatError):
    """The file does not start with the EIF magic `.eif`."""


class EifTruncatedError(FormatError):
    """The file ends before its header or a declared section ends."""


class EifVersionError(UnsupportedVersionError):
    """The header declares an EIF version this code does not read."""


class EifSectionError(FormatError):
    """A section header or the section table is invalid (type, order, offset, size)."""


class EifTooManySectionsError(LimitExceededError):
    """The header declares more than 32 sections, or a section is over its size limit."""


class EifCrcError(IntegrityError):
    """The CRC32 in the header does not match the file's bytes."""


class EifSignatureFormatError(FormatError):
    """The signature section, its COSE_Sign1 or its certificate cannot be decoded."""


class EifSignatureError(IntegrityError):
    """The COSE_Sign1 signature does not verify, or signs a different PCR0."""


class CpioFormatError(FormatError):
    """A newc cpio archive is malformed (magic, hex field, name, padding, trailer)."""


class CpioLimitError(LimitExceededError):
    """A newc cpio archive exceeds an entry-count, name or size limit."""
