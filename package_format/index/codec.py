# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Canonical JSON and the JSON -> index decoders (specs/distribution.md §3.1, §3.2).

Decoding rejects input that does not re-encode to the same bytes, and checks every
field against `IndexLimits`. Pure.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from package_format.index.model import (
    _TIME_FORMAT,
    INDEX_TYPE,
    FileEntry,
    Index,
    IndexFormatError,
    IndexLimitError,
    IndexLimits,
    IndexVersionError,
    Revocation,
    VersionEntry,
    _check_bundle_version,
    _check_file_name,
    _check_name,
    _check_uint,
)
from package_format.limits import JsonLimitError, json_loads, short_repr

# --- canonical JSON (specs/distribution.md §3.1) -----------------------------------------

_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def _canonical(obj: Any) -> bytes:
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError) as e:
        raise IndexFormatError(f"index: value cannot be encoded canonically ({e})") from e


def _reject_constant(name: str) -> Any:
    raise IndexFormatError(f"index: {name} is not allowed")


def _reject_float(text: str) -> Any:
    raise IndexFormatError(f"index: number {text[:20]} is not an integer")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise IndexFormatError(f"index: duplicate key {key[:64]!r}")
        out[key] = value
    return out


def _decode_canonical(data: bytes) -> dict[str, Any]:
    try:
        obj = json_loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_float=_reject_float,
            parse_constant=_reject_constant,
        )
    except UnicodeDecodeError:
        raise IndexFormatError("index: not UTF-8") from None
    except JsonLimitError as e:
        raise IndexLimitError(f"index: {e}") from None
    except json.JSONDecodeError as e:
        raise IndexFormatError(f"index: not JSON ({e.msg} at byte {e.pos})") from None
    except ValueError as e:  # what json raises besides JSONDecodeError (bad escapes...)
        raise IndexFormatError(f"index: not JSON ({str(e)[:80]})") from None
    if not isinstance(obj, dict):
        raise IndexFormatError("index: top level is not an object")
    if _canonical(obj) != data:
        raise IndexFormatError("index: not in canonical JSON form")
    return obj


def _exact_keys(where: str, obj: object, keys: set[str]) -> None:
    if not isinstance(obj, dict):
        raise IndexFormatError(f"{where}: not an object")
    if set(obj) != keys:
        missing, unknown = sorted(keys - set(obj)), sorted(set(obj) - keys)
        detail = f"missing {missing}" if missing else f"unknown {unknown}"
        raise IndexFormatError(f"{where}: fields {detail}")


def _check_str(what: str, value: object, max_chars: int = 1024) -> str:
    if not isinstance(value, str):
        raise IndexFormatError(f"index: {what} is not a string")
    if len(value) > max_chars:
        raise IndexLimitError(f"index: {what} is longer than {max_chars} characters")
    return value


def check_file_name(value: object) -> str:
    """Return `value` if it is a valid published file name (specs/distribution.md §3.2).

    Raises:
        IndexFormatError: not one path segment of `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`.
    """
    return _check_file_name(value)


def _parse_time(what: str, value: object) -> datetime:
    if not isinstance(value, str) or not _TIME_RE.fullmatch(value):
        raise IndexFormatError(f"index: {what} is not a YYYY-MM-DDTHH:MM:SSZ time")
    try:
        return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise IndexFormatError(f"index: {what} is not a valid time") from None


# --- JSON -> index (specs/distribution.md §3.2) -----------------------------------------


def _file_from_json(where: str, obj: object, *, optional: bool) -> FileEntry | None:
    if obj is None and optional:
        return None
    _exact_keys(where, obj, {"file", "sha256", "size"})
    assert isinstance(obj, dict)
    sha = _check_str(f"{where} sha256", obj["sha256"], 64)
    return FileEntry(
        file=_check_file_name(obj["file"]), size=_check_uint("size", obj["size"]), sha256=sha
    )


def _entry_from_json(ver: str, obj: object, limits: IndexLimits) -> VersionEntry:
    where = f"index: version {ver}"
    keys = {"bundle", "encryption_context", "image", "kms_key_id", "pcrs", "published", "revoked"}
    _exact_keys(where, obj, keys)
    assert isinstance(obj, dict)
    bundle = _file_from_json(f"{where} bundle", obj["bundle"], optional=False)
    assert bundle is not None
    revoked = None
    if obj["revoked"] is not None:
        _exact_keys(f"{where} revoked", obj["revoked"], {"at", "reason"})
        reason = _check_str("revocation reason", obj["revoked"]["reason"], limits.max_reason_chars)
        revoked = Revocation(reason=reason, at=_parse_time("revoked at", obj["revoked"]["at"]))
    context = obj["encryption_context"]
    if not isinstance(context, dict) or len(context) > limits.max_context_pairs:
        raise IndexFormatError(f"{where}: encryption_context is not a small object")
    for k, v in context.items():
        _check_str("encryption context key", k, 256)
        _check_str("encryption context value", v, 1024)
    key = obj["kms_key_id"]
    return VersionEntry(
        bundle=bundle,
        published=_parse_time("published", obj["published"]),
        image=_file_from_json(f"{where} image", obj["image"], optional=True),
        pcrs=_file_from_json(f"{where} pcrs", obj["pcrs"], optional=True),
        revoked=revoked,
        kms_key_id=None if key is None else _check_str("kms_key_id", key, 2048),
        encryption_context=dict(context),
    )


def _index_from_json(obj: object, limits: IndexLimits) -> Index:
    keys = {"current", "expires", "name", "spec_version", "type", "version", "versions"}
    if isinstance(obj, dict) and "spec_version" in obj:
        spec = obj["spec_version"]
        if type(spec) is not int:  # `true == 1` in Python: a bool is not a version
            raise IndexFormatError("index: spec_version is not an integer")
        if spec != 1:
            raise IndexVersionError(f"index: spec_version {short_repr(spec, 16)} unsupported")
    _exact_keys("index signed", obj, keys)
    assert isinstance(obj, dict)
    if obj["type"] != INDEX_TYPE:
        raise IndexFormatError(f"index: type is not {INDEX_TYPE!r}")
    versions = obj["versions"]
    if not isinstance(versions, dict):
        raise IndexFormatError("index: versions is not an object")
    if len(versions) > limits.max_versions:
        raise IndexLimitError(f"index: more than {limits.max_versions} versions")
    entries = {
        _check_bundle_version(v): _entry_from_json(v, e, limits) for v, e in versions.items()
    }
    version = _check_uint("version", obj["version"])
    if version < 1:
        raise IndexFormatError("index: version must be at least 1")
    index = Index(
        name=_check_name(obj["name"]),
        version=version,
        expires=_parse_time("expires", obj["expires"]),
        versions=entries,
    )
    if obj["current"] != index.current:
        raise IndexFormatError("index: current is not the highest version that is not revoked")
    return index
