# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The decoder limits every parser applies before it decodes untrusted bytes.

One frozen config, `DECODE_LIMITS`, holds the limits shared by the generic decoders (CBOR,
JSON, TOML, BER); each format keeps its own frozen limits for its fields (`BundleLimits`,
`EifLimits`, `CpioLimits`, `CmsLimits`, `AttestationLimits`, `IndexLimits`) and takes the
decoder limits below from here. The specs list them: bundle-format.md §8,
enclave-image.md §9, attestation.md §2 and §9.1, distribution.md (index), rpc-protocol.md.

The CBOR pre-scan walks item heads without building objects, so a hostile input is
refused (too many items, too deep, a bignum too long, truncated) before cbor2 allocates
anything; cbor2 then only ever sees input whose cost is bounded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import cbor2


@dataclass(frozen=True)
class DecodeLimits:
    """Limits on generic decoders, applied before decoding (see the module docstring)."""

    #: CBOR items (every head counts: ints, strings, arrays, maps, tags) in one document.
    max_cbor_items: int = 4096
    #: Nesting of arrays, maps and tags.
    max_cbor_depth: int = 8
    #: Bytes of a CBOR bignum (tags 2 and 3); 16 bytes covers every 128-bit integer.
    max_bignum_bytes: int = 16
    #: Nesting of JSON arrays and objects (the index, EIF metadata).
    max_json_depth: int = 32
    #: Digits of a JSON or TOML integer (Python refuses to print more than 4,300).
    max_int_digits: int = 20
    #: Nesting of TOML tables and arrays, counted from brackets and braces.
    max_toml_depth: int = 16
    #: BER nesting (constructed encodings) in a CMS envelope.
    max_ber_depth: int = 16


DECODE_LIMITS = DecodeLimits()


class CborScanError(ValueError):
    """The pre-scan refused the input; `limit` is True for a limit, False for malformed.

    `trailing` is True when one well-formed item is followed by more bytes.
    """

    def __init__(self, message: str, *, limit: bool, trailing: bool = False) -> None:
        super().__init__(message)
        self.limit = limit
        self.trailing = trailing


_ARG_SIZES = {24: 1, 25: 2, 26: 4, 27: 8}


def _head(data: bytes, pos: int) -> tuple[int, int, int | None, int]:
    """Return (major, info, argument or None for indefinite, next position)."""
    ib = data[pos]
    major, info = ib >> 5, ib & 0x1F
    pos += 1
    if info < 24:
        return major, info, info, pos
    size = _ARG_SIZES.get(info)
    if size is not None:
        if pos + size > len(data):
            raise CborScanError("cbor: truncated item head", limit=False)
        return major, info, int.from_bytes(data[pos : pos + size]), pos + size
    if info == 31 and major in (2, 3, 4, 5):
        return major, info, None, pos
    raise CborScanError(f"cbor: reserved or misplaced additional info {info}", limit=False)


def scan_cbor(
    data: bytes,
    *,
    max_items: int,
    max_depth: int,
    max_bignum_bytes: int = DECODE_LIMITS.max_bignum_bytes,
    allow_indefinite: bool = True,
) -> int:
    """Check the first CBOR item of `data` against the limits; return where it ends.

    Runs in time linear in the number of item heads (at most `max_items`), allocating
    nothing per item. Trailing bytes after the first item are left to the caller.

    Raises:
        CborScanError: truncated or malformed (limit=False), or over a limit (limit=True).
    """
    pos, items = 0, 0
    stack: list[int] = []  # children still due per open container; -1 = until break
    bignum = False  # the item is the content of tag 2 or 3
    while True:
        if pos >= len(data):
            raise CborScanError("cbor: truncated", limit=False)
        if data[pos] == 0xFF:
            _close_indefinite(stack)
            pos += 1
        else:
            items += 1
            if items > max_items:
                raise CborScanError(f"cbor: more than {max_items} items", limit=True)
            major, arg, pos = _item(data, pos, allow_indefinite)
            if bignum and (major != 2 or arg is None or arg > max_bignum_bytes):
                raise CborScanError("cbor: bignum too long or not a byte string", limit=True)
            count = _children(major, arg)
            bignum = major == 6 and arg in (2, 3)
            if count:
                if count > max_items or len(stack) >= max_depth:
                    raise CborScanError(
                        f"cbor: over {max_items} items or {max_depth} deep", limit=True
                    )
                stack.append(count)
                continue
        if _completed(stack):
            return pos


def _close_indefinite(stack: list[int]) -> None:
    if not stack or stack[-1] != -1:
        raise CborScanError("cbor: unexpected break", limit=False)
    stack.pop()


def _completed(stack: list[int]) -> bool:
    """Count a complete item against its parents, closing finished ones; True at the top."""
    while stack and stack[-1] > 0:
        stack[-1] -= 1
        if stack[-1]:
            break
        stack.pop()
    return not stack


def _item(data: bytes, pos: int, allow_indefinite: bool) -> tuple[int, int | None, int]:
    """Read one head and skip a definite string's bytes: (major, argument, next position)."""
    major, _info, arg, pos = _head(data, pos)
    if arg is None and not allow_indefinite:
        raise CborScanError("cbor: indefinite length", limit=False)
    if major in (2, 3) and arg is not None:
        pos += arg
        if pos > len(data):
            raise CborScanError("cbor: truncated string", limit=False)
    return major, arg, pos


def _children(major: int, arg: int | None) -> int:
    """Items a head opens: 0 for a leaf, -1 until a break, else the definite count."""
    if arg is None:
        return -1
    if major == 4:
        return arg
    if major == 5:
        return 2 * arg
    if major == 6:
        return 1
    return 0


def is_decoder_panic(exc: BaseException) -> bool:
    """True for a Rust extension's panic (pyo3's PanicException derives from BaseException).

    Only that type qualifies: KeyboardInterrupt, SystemExit and the like stay fatal.
    """
    kind = type(exc)
    return kind.__name__ == "PanicException" and not isinstance(exc, Exception)


def decode_cbor(
    data: bytes,
    *,
    max_items: int = DECODE_LIMITS.max_cbor_items,
    max_depth: int = DECODE_LIMITS.max_cbor_depth,
    allow_indefinite: bool = True,
    allow_duplicate_keys: bool = True,
) -> Any:
    """Pre-scan `data` (exactly one CBOR item, no trailing bytes), then decode it with cbor2.

    Raises:
        CborScanError: over a limit (limit=True), or not exactly one well-formed item; a
            decoder error of any kind, including a Rust panic, becomes this error.
    """
    if scan_cbor(data, max_items=max_items, max_depth=max_depth,
                 allow_indefinite=allow_indefinite) != len(data):  # fmt: skip
        raise CborScanError("cbor: trailing bytes after the item", limit=False, trailing=True)
    try:
        return cbor2.loads(
            data,
            max_depth=max_depth + 1,
            allow_indefinite=allow_indefinite,
            allow_duplicate_keys=allow_duplicate_keys,
        )
    except (cbor2.CBORError, ValueError, TypeError, LookupError, OverflowError) as exc:
        raise CborScanError(f"cbor: {_first_line(exc)}", limit=False) from exc
    except (RecursionError, MemoryError) as exc:
        raise CborScanError("cbor: too large or too deep to decode", limit=True) from exc
    except BaseException as exc:
        if not is_decoder_panic(exc):
            raise
        raise CborScanError("cbor: the decoder failed on this input", limit=False) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:200].lower()


class JsonLimitError(ValueError):
    """JSON over `DecodeLimits.max_json_depth` or `max_int_digits`."""


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in `text`, strings skipped (no recursion)."""
    depth = deepest = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def json_loads(text: str, limits: DecodeLimits = DECODE_LIMITS, **hooks: Any) -> Any:
    """`json.loads` with the depth checked first and integers' digits capped.

    Raises:
        JsonLimitError: nested deeper than `max_json_depth`, or an integer longer than
            `max_int_digits` digits (checked on its text, before any conversion).
        json.JSONDecodeError, ValueError: as `json.loads`, or from `hooks`.
    """
    if json_depth(text) > limits.max_json_depth:
        raise JsonLimitError(f"json: nested deeper than {limits.max_json_depth}")

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > limits.max_int_digits:
            raise JsonLimitError(f"json: integer longer than {limits.max_int_digits} digits")
        return int(digits)

    try:
        return json.loads(text, parse_int=parse_int, **hooks)
    except RecursionError as exc:  # the depth check makes this unreachable; kept typed
        raise JsonLimitError("json: nested too deeply") from exc


def short_repr(value: object, width: int = 40) -> str:
    """`repr(value)` cut to `width` characters, safe for any value (huge ints included)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"<integer of {value.bit_length()} bits>"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"<{type(value).__name__}>"
    return text[:width]
