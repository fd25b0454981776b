# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The receipt file: the record bytes and the NSM's document over them (specs/receipts.md §5).

`output/receipt.cbor` is one canonical CBOR map of three fields, so a verifier needs no
other file: `format`, `record` (the record's canonical bytes, as hashed) and `document`
(the untagged COSE_Sign1 attestation document whose `user_data` is SHA-384 of `record`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cbor2

from package_format.limits import CborScanError, decode_cbor
from package_format.receipt.errors import (
    ReceiptFormatError,
    ReceiptLimitError,
    ReceiptVersionError,
)
from package_format.receipt.record import DEFAULT_LIMITS, ReceiptLimits

RECEIPT_FORMAT = "nitro-bundles/receipt/v1"
RECEIPT_FILE = "receipt.cbor"
_KEYS = frozenset({"format", "record", "document"})


@dataclass(frozen=True)
class Receipt:
    """A parsed receipt file; nothing in it is verified yet (see `verify_receipt`)."""

    record: bytes
    document: bytes

    def encode(self) -> bytes:
        """Return the canonical CBOR bytes of the receipt file."""
        return encode_receipt(self.record, self.document)


def encode_receipt(record: bytes, document: bytes) -> bytes:
    """Return `receipt.cbor`'s bytes for the record bytes and the document over them."""
    return cbor2.dumps(
        {"format": RECEIPT_FORMAT, "record": record, "document": document}, canonical=True
    )


def parse_receipt(data: bytes, limits: ReceiptLimits = DEFAULT_LIMITS) -> Receipt:
    """Parse a receipt file (specs/receipts.md §6 step 1).

    Raises:
        ReceiptLimitError: Larger than `limits.max_receipt_bytes`.
        ReceiptFormatError: Not one canonical CBOR map of exactly the three fields.
        ReceiptVersionError: Another receipt format.
    """
    if len(data) > limits.max_receipt_bytes:
        raise ReceiptLimitError(f"receipt: over {limits.max_receipt_bytes} bytes")
    try:
        obj = decode_cbor(
            bytes(data), max_items=16, max_depth=2, allow_indefinite=False,
            allow_duplicate_keys=False,
        )  # fmt: skip
    except CborScanError as exc:
        raise ReceiptFormatError(f"receipt: invalid cbor ({exc})") from exc
    if not isinstance(obj, dict) or set(obj) != _KEYS:
        raise ReceiptFormatError("receipt: not a map of format, record and document")
    if obj["format"] != RECEIPT_FORMAT:
        raise ReceiptVersionError(f"receipt: unknown format {str(obj['format'])[:64]!r}")
    record, document = obj["record"], obj["document"]
    if not isinstance(record, bytes) or not isinstance(document, bytes):
        raise ReceiptFormatError("receipt: record and document must be byte strings")
    if encode_receipt(record, document) != bytes(data):
        raise ReceiptFormatError("receipt: cbor is not in canonical (deterministic) form")
    return Receipt(record, document)
