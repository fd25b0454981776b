# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""One strict CBOR decoding entry point for attestation inputs (specs/attestation.md §2).

cbor2's `loads` silently ignores trailing bytes and accepts duplicate map keys;
both are refused here, and nesting is capped so hostile input cannot recurse.
"""

from __future__ import annotations

from typing import Any

from package_format.attestation.errors import CoseStructureError, FieldLimitError
from package_format.limits import DECODE_LIMITS, CborScanError, decode_cbor

MAX_CBOR_DEPTH = 8  # the deepest real structure is pcrs inside the payload map (depth 2)


def strict_loads(data: bytes, what: str) -> Any:
    """Decode exactly one CBOR item that spans all of `data`.

    Args:
        data: the encoded item.
        what: names the item in error messages.

    Returns:
        The decoded value (cbor2's Python types).

    Raises:
        CoseStructureError: invalid CBOR, duplicate keys or trailing bytes.
        FieldLimitError: too deep, too many items, or a bignum too long (checked before
            decoding, DECODE_LIMITS).
    """
    try:
        return decode_cbor(
            data,
            max_items=DECODE_LIMITS.max_cbor_items,
            max_depth=MAX_CBOR_DEPTH,
            allow_duplicate_keys=False,
        )
    except CborScanError as exc:
        kind = FieldLimitError if exc.limit else CoseStructureError
        raise kind(f"{what}: invalid cbor ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split()).lower()
