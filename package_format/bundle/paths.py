# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Path rules for file-table and entrypoint paths (specs/bundle-format.md §5.3)."""

from __future__ import annotations

import unicodedata

from package_format.bundle.errors import BundleLimitError, UnsafePathError
from package_format.bundle.limits import DEFAULT_LIMITS, BundleLimits


def check_path(path: object, where: str, limits: BundleLimits = DEFAULT_LIMITS) -> str:
    """Check that `path` is a normalised, relative, safe POSIX path and return it.

    Args:
        path: The candidate path, as decoded from a header or built by a writer.
        where: Where the path came from, for the error message.
        limits: The path length and depth limits.

    Returns:
        The path, unchanged.

    Raises:
        UnsafePathError: The path is not a string, is absolute, has empty, `.` or
            `..` components, control characters or backslashes, or is not NFC.
        BundleLimitError: The path or one of its components is too long or too deep.
    """
    if not isinstance(path, str) or not path:
        raise UnsafePathError(f"{where}: path must be a non-empty string")
    if len(path.encode("utf-8", "surrogatepass")) > limits.max_path_bytes:
        raise BundleLimitError(f"{where}: path longer than {limits.max_path_bytes} bytes")
    _check_characters(path, where)
    parts = path.split("/")
    if len(parts) > limits.max_path_depth:
        raise BundleLimitError(f"{where}: path {path!r} deeper than {limits.max_path_depth}")
    for part in parts:
        if part in {"", ".", ".."}:
            raise UnsafePathError(f"{where}: path {path!r} has an empty, '.' or '..' component")
        if len(part.encode("utf-8")) > limits.max_component_bytes:
            raise BundleLimitError(f"{where}: path component longer than 255 bytes")
    return path


def _check_characters(path: str, where: str) -> None:
    if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in path):
        raise UnsafePathError(f"{where}: path {path!r} has control or surrogate characters")
    if "\\" in path:
        raise UnsafePathError(f"{where}: path {path!r} has a backslash")
    if path.startswith("/"):
        raise UnsafePathError(f"{where}: path {path!r} is absolute")
    if not unicodedata.is_normalized("NFC", path):
        raise UnsafePathError(f"{where}: path {path!r} is not in unicode nfc form")


def path_sort_key(path: str) -> tuple[str, ...]:
    """Return the key that orders the file table: component-wise code point order (§5.3)."""
    return tuple(path.split("/"))
