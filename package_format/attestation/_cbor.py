# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""One strict CBOR decoding entry point for attestation inputs (specs/attestation.md §2).

cbor2's `loads` silently ignores trailing bytes and accepts duplicate map keys;
both are refused here, and nesting is capped so hostile input cannot recurse.
"""

from __future__ import annotations

import io
from typing import Any

import cbor2

from package_format.attestation.errors import CoseStructureError

MAX_CBOR_DEPTH = 8  # the deepest real structure is pcrs inside the payload map (depth 2)


def strict_loads(data: bytes, what: str) -> Any:
    """Decode exactly one CBOR item that spans all of `data`.

    Args:
        data: the encoded item.
        what: names the item in error messages.

    Returns:
        The decoded value (cbor2's Python types).

    Raises:
        CoseStructureError: invalid CBOR, duplicate keys, too deep, or trailing bytes.
    """
    stream = io.BytesIO(data)
    try:
        decoder = cbor2.CBORDecoder(stream, max_depth=MAX_CBOR_DEPTH, allow_duplicate_keys=False)
        value = decoder.decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError, LookupError, OverflowError) as exc:
        raise CoseStructureError(f"{what}: invalid cbor ({_first_line(exc)})") from exc
    except (RecursionError, MemoryError) as exc:
        raise CoseStructureError(f"{what}: cbor nested too deeply") from exc
    if stream.tell() != len(data):
        raise CoseStructureError(f"{what}: {len(data) - stream.tell()} trailing bytes")
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split()).lower()
