# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Run records and receipts: encode, decode and verify (specs/receipts.md)."""

from package_format.receipt.errors import (
    DocumentInvalidError,
    FileMismatchError,
    InputMismatchError,
    NonceMismatchError,
    OutputMismatchError,
    PcrMismatchError,
    ReceiptError,
    ReceiptFormatError,
    ReceiptLimitError,
    ReceiptVersionError,
    RecordHashMismatchError,
)
from package_format.receipt.receipt import (
    RECEIPT_FILE,
    RECEIPT_FORMAT,
    Receipt,
    encode_receipt,
    parse_receipt,
)
from package_format.receipt.record import (
    DEFAULT_LIMITS,
    RECORD_FORMAT,
    FileDigest,
    ReceiptLimits,
    RecordBundle,
    RecordTerms,
    RunRecord,
)
from package_format.receipt.report import receipt_json, summary_lines
from package_format.receipt.verify import (
    FileOpener,
    VerifiedReceipt,
    sha256_stream,
    verify_inputs,
    verify_outputs,
    verify_receipt,
)

__all__ = [
    "DEFAULT_LIMITS",
    "RECEIPT_FILE",
    "RECEIPT_FORMAT",
    "RECORD_FORMAT",
    "DocumentInvalidError",
    "FileDigest",
    "FileMismatchError",
    "FileOpener",
    "InputMismatchError",
    "NonceMismatchError",
    "OutputMismatchError",
    "PcrMismatchError",
    "Receipt",
    "ReceiptError",
    "ReceiptFormatError",
    "ReceiptLimitError",
    "ReceiptLimits",
    "ReceiptVersionError",
    "RecordBundle",
    "RecordHashMismatchError",
    "RecordTerms",
    "RunRecord",
    "VerifiedReceipt",
    "encode_receipt",
    "parse_receipt",
    "receipt_json",
    "sha256_stream",
    "summary_lines",
    "verify_inputs",
    "verify_outputs",
    "verify_receipt",
]
