# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""What `user-runtime run` does with a receipt: the `--nonce` value and one summary line."""

from __future__ import annotations

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
    """One stderr line naming the run's receipt (not a verification: `receipt verify` is).

    Read with cbor2 alone (the RPC client has it loaded): the record's decoder and hashlib's
    OpenSSL cost a warm run ~10 ms of imports for a line that checks nothing.
    """
    import cbor2  # noqa: PLC0415

    try:
        record_bytes = cbor2.loads(receipt)["record"]
        record = cbor2.loads(record_bytes)
        counts = len(record["outputs"]), len(record["inputs"])
        bound_nonce = record["nonce"]
    except (cbor2.CBORDecodeError, KeyError, TypeError, ValueError) as exc:
        return f"user-runtime: receipt: output/receipt.cbor (unreadable: {exc})"
    from hashlib import sha384  # noqa: PLC0415

    digest = sha384(record_bytes).hexdigest()[:16]
    bound = "" if nonce is None else f", nonce {'bound' if bound_nonce == nonce else 'MISSING'}"
    return (
        f"user-runtime: receipt: output/receipt.cbor (record {digest}..., "
        f"{counts[0]} output(s), {counts[1]} input(s){bound})"
    )
