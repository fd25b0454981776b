# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""What `user-runtime run` does with a receipt: the `--nonce` value and one summary line."""

from __future__ import annotations

import hashlib

from package_format.receipt import ReceiptError, RunRecord, parse_receipt
from user_runtime.errors import UsageError

MAX_NONCE = 1024  # the NSM's limit


def parse_nonce(text: str | None) -> bytes | None:
    """Parse `--nonce HEX` (1 to 1024 bytes); None when not given.

    Raises:
        UsageError: Not hex, or of the wrong length.
    """
    if text is None:
        return None
    try:
        value = bytes.fromhex(text)
    except ValueError as exc:
        raise UsageError("--nonce: expected hex") from exc
    if not 1 <= len(value) <= MAX_NONCE:
        raise UsageError(f"--nonce: 1 to {MAX_NONCE} bytes")
    return value


def receipt_line(receipt: bytes, nonce: bytes | None) -> str:
    """One stderr line naming the run's receipt (not a verification: `receipt verify` is)."""
    try:
        record = RunRecord.decode(parse_receipt(receipt).record)
    except ReceiptError as exc:
        return f"user-runtime: receipt: output/receipt.cbor (unreadable: {exc})"
    digest = hashlib.sha384(parse_receipt(receipt).record).hexdigest()[:16]
    bound = "" if nonce is None else f", nonce {'bound' if record.nonce == nonce else 'MISSING'}"
    return (
        f"user-runtime: receipt: output/receipt.cbor (record {digest}..., "
        f"{len(record.outputs)} output(s), {len(record.inputs)} input(s){bound})"
    )
