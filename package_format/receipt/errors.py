# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Typed errors of run records and receipts (specs/receipts.md §7).

Every error is a `ReceiptError`, and also a member of one `package_format.errors` group:
hostile or broken bytes (`FormatError`), a check that failed (`IntegrityError`). Each
`expect:` class of the test vectors (specs/receipts.md §8) has its own class here.
"""

from __future__ import annotations

from package_format.errors import (
    FormatError,
    IntegrityError,
    LimitExceededError,
    PackageFormatError,
    UnsupportedVersionError,
)


class ReceiptError(PackageFormatError):
    """Base of every receipt error; `step` is the verification step that failed (§6)."""

    step = "receipt"


class ReceiptFormatError(ReceiptError, FormatError):
    """The receipt or its record is not valid, canonical CBOR of the right shape."""

    step = "format"


class ReceiptVersionError(ReceiptError, UnsupportedVersionError):
    """The receipt or record names a format this code does not know."""

    step = "format"


class ReceiptLimitError(ReceiptError, LimitExceededError):
    """The receipt or record is larger than its limit (ReceiptLimits)."""

    step = "format"


class DocumentInvalidError(ReceiptError, IntegrityError):
    """The attestation document does not verify (signature, chain, root, fields).

    `reason` is the attestation error's own message; its class is the `__cause__`.
    """

    step = "document"


class PcrMismatchError(ReceiptError, IntegrityError):
    """A PCR of the document is not the value the verifier expects (another image)."""

    step = "pcr"

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


class RecordHashMismatchError(ReceiptError, IntegrityError):
    """The document's `user_data` is not SHA-384 of the record bytes."""

    step = "record"


class NonceMismatchError(ReceiptError, IntegrityError):
    """The document (or record) does not carry the nonce the verifier gave (a replay)."""

    step = "nonce"


class FileMismatchError(ReceiptError, IntegrityError):
    """A file is missing, or its size or SHA-256 differs from the record.

    Attributes:
        path: The file's path as the record names it.
        problem: `missing`, `size` or `digest`.
    """

    step = "file"

    def __init__(self, message: str, path: str, problem: str) -> None:
        super().__init__(message)
        self.path = path
        self.problem = problem


class OutputMismatchError(FileMismatchError):
    """An output file does not match the record."""

    step = "output"


class InputMismatchError(FileMismatchError):
    """An input file does not match the record."""

    step = "input"
