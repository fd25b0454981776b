# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Run records and receipts: encode, decode and verify (specs/receipts.md).

Verification (`verify`, `report`) loads on first use: it pulls in X.509 and the attestation
checks (~150 ms), which `user-runtime run` must not pay to name a run's receipt.
"""

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from package_format.receipt.report import receipt_json, summary_lines
    from package_format.receipt.verify import (
        FileOpener,
        VerifiedReceipt,
        sha256_stream,
        verify_inputs,
        verify_outputs,
        verify_receipt,
    )

_LAZY = {
    "receipt_json": "report",
    "summary_lines": "report",
    "FileOpener": "verify",
    "VerifiedReceipt": "verify",
    "sha256_stream": "verify",
    "verify_inputs": "verify",
    "verify_outputs": "verify",
    "verify_receipt": "verify",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


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
