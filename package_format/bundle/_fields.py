# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Strict readers for decoded CBOR maps: exact key sets, exact types (§4)."""

from __future__ import annotations

from typing import Any

from package_format.bundle.errors import BundleLimitError, HeaderFieldError


def fields(obj: object, required: set[str], optional: set[str], where: str) -> dict[str, Any]:
    """Return `obj` as a dict after checking it has exactly the allowed text keys.

    Raises:
        HeaderFieldError: `obj` is not a map, lacks a required key or has an unknown one.
    """
    if not isinstance(obj, dict):
        raise HeaderFieldError(f"{where}: expected a map")
    keys = set(obj)
    if not all(isinstance(k, str) for k in keys):
        raise HeaderFieldError(f"{where}: map keys must be text")
    missing = required - keys
    if missing:
        raise HeaderFieldError(f"{where}: missing field {min(missing)!r}")
    unknown = keys - required - optional
    if unknown:
        raise HeaderFieldError(f"{where}: unknown field {min(unknown)!r}")
    return obj


def get_int(obj: dict[str, Any], key: str, where: str, lo: int = 0, hi: int = 2**63 - 1) -> int:
    """Return `obj[key]` as an int within [lo, hi] (bools are not ints here).

    Raises:
        HeaderFieldError: The value is not an integer or is out of range.
    """
    value = obj[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise HeaderFieldError(f"{where}: {key} must be an integer")
    if not lo <= value <= hi:
        raise HeaderFieldError(f"{where}: {key} out of range")
    return value


def get_bool(obj: dict[str, Any], key: str, where: str) -> bool:
    """Return `obj[key]` as a bool.

    Raises:
        HeaderFieldError: The value is not a boolean.
    """
    value = obj[key]
    if not isinstance(value, bool):
        raise HeaderFieldError(f"{where}: {key} must be a boolean")
    return value


def get_text(obj: dict[str, Any], key: str, where: str, max_bytes: int) -> str:
    """Return `obj[key]` as a non-empty string of at most `max_bytes` UTF-8 bytes.

    Raises:
        HeaderFieldError: The value is not a non-empty string.
        BundleLimitError: The value is too long.
    """
    value = obj[key]
    if not isinstance(value, str) or not value:
        raise HeaderFieldError(f"{where}: {key} must be a non-empty string")
    if len(value.encode("utf-8", "surrogatepass")) > max_bytes:
        raise BundleLimitError(f"{where}: {key} longer than {max_bytes} bytes")
    return value


def get_bytes(obj: dict[str, Any], key: str, where: str, size: int | None, max_size: int) -> bytes:
    """Return `obj[key]` as bytes of exactly `size` (or 1..max_size) bytes.

    Raises:
        HeaderFieldError: The value is not a byte string of the right size.
        BundleLimitError: The value is longer than `max_size`.
    """
    value = obj[key]
    if not isinstance(value, bytes):
        raise HeaderFieldError(f"{where}: {key} must be a byte string")
    if size is not None and len(value) != size:
        raise HeaderFieldError(f"{where}: {key} must be {size} bytes")
    if len(value) > max_size:
        raise BundleLimitError(f"{where}: {key} longer than {max_size} bytes")
    if not value:
        raise HeaderFieldError(f"{where}: {key} must not be empty")
    return value


def get_list(obj: dict[str, Any], key: str, where: str, max_items: int) -> list[Any]:
    """Return `obj[key]` as a list of at most `max_items` items.

    Raises:
        HeaderFieldError: The value is not an array.
        BundleLimitError: The array is too long.
    """
    value = obj[key]
    if not isinstance(value, list):
        raise HeaderFieldError(f"{where}: {key} must be an array")
    if len(value) > max_items:
        raise BundleLimitError(f"{where}: {key} has more than {max_items} items")
    return value
