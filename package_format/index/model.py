# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Index model: limits, errors, field rules, entries, `Index` and its JSON (distribution.md §3)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from package_format.errors import (
    FormatError,
    IntegrityError,
    LimitExceededError,
    PolicyError,
    UnsupportedVersionError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

# specs/distribution.md §3
INDEX_SPEC_VERSION = 1
INDEX_TYPE = "nitro-bundles/index"
INDEX_FILE = "index.json"

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_MAX_UINT = 2**53 - 1
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_FILE_RE = _NAME_RE
_SEMVER_RE = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class IndexLimits:
    """Limits on an untrusted index (specs/distribution.md §3.5)."""

    max_bytes: int = 4 * 1024 * 1024
    max_versions: int = 10_000
    max_reason_chars: int = 1024
    max_context_pairs: int = 16


DEFAULT_LIMITS = IndexLimits()


class IndexFormatError(FormatError):
    """The index is not canonical, or a field is missing, unknown or invalid."""


class IndexVersionError(UnsupportedVersionError):
    """The index declares a spec version this code does not implement."""


class IndexLimitError(LimitExceededError):
    """The index exceeds a limit in `IndexLimits`."""


class IndexSignatureError(IntegrityError):
    """The index signature does not verify under the expected key."""


class IndexKeyMismatchError(IntegrityError):
    """The index is signed by a key other than the expected owner key."""


class IndexNameMismatchError(IntegrityError):
    """The index is authentic but describes another bundle name."""


class IndexExpiredError(PolicyError):
    """The index is authentic but past its expiry."""


class IndexRollbackError(PolicyError):
    """The index is older than (or forks from) one already trusted."""


class VersionNotFoundError(PolicyError):
    """The requested bundle version is not listed in the index."""


class VersionRevokedError(PolicyError):
    """The requested bundle version is revoked by the owner."""


# --- field rules (specs/distribution.md §3.2) -------------------------------------------


def _check_uint(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_UINT:
        raise IndexFormatError(f"index: {what} is not an integer in 0..2^53-1")
    return value


def _check_name(value: object) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise IndexFormatError(f"index: invalid bundle name {str(value)[:64]!r}")
    return value


def _check_file_name(value: object) -> str:
    if not isinstance(value, str) or not _FILE_RE.fullmatch(value):
        raise IndexFormatError(f"index: invalid file name {str(value)[:64]!r}")
    return value


def _check_bundle_version(value: object) -> str:
    if not isinstance(value, str) or len(value) > 64 or not _SEMVER_RE.fullmatch(value):
        raise IndexFormatError(f"index: invalid bundle version {str(value)[:64]!r}")
    return value


def format_time(when: datetime) -> str:
    """Return `when` as the index stores times: `YYYY-MM-DDTHH:MM:SSZ` in UTC."""
    return when.astimezone(UTC).strftime(_TIME_FORMAT)


# --- version precedence (specs/distribution.md §3.4, Semantic Versioning 2.0.0 §11) ------


def version_key(ver: str) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
    """Return a sort key giving Semantic Versioning precedence (build metadata ignored).

    Raises:
        IndexFormatError: `ver` is not a semantic version.
    """
    match = _SEMVER_RE.fullmatch(_check_bundle_version(ver))
    assert match is not None
    major, minor, patch, pre, _build = match.groups()
    ids = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in (pre or "").split(".")
    )
    return (int(major), int(minor), int(patch), 0 if pre else 1, ids if pre else ())


def _current_of(revoked: Mapping[str, bool]) -> str | None:
    live = [v for v, is_revoked in revoked.items() if not is_revoked]
    releases = [v for v in live if "-" not in v.split("+", 1)[0]]
    pool = releases or live
    if not pool:
        return None
    return max(pool, key=lambda v: (version_key(v), v))


@dataclass(frozen=True)
class FileEntry:
    """One published file: its object name under NAME/VERSION/, size and SHA-256."""

    file: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        _check_file_name(self.file)
        _check_uint("size", self.size)
        if not _SHA256_RE.fullmatch(self.sha256):
            raise IndexFormatError(f"index: sha256 of {self.file!r} is not 64 lowercase hex digits")


@dataclass(frozen=True)
class Revocation:
    """Why and when the owner revoked a version."""

    reason: str
    at: datetime


@dataclass(frozen=True)
class VersionEntry:
    """Everything the index says about one bundle version (specs/distribution.md §3.2)."""

    bundle: FileEntry
    published: datetime
    image: FileEntry | None = None
    pcrs: FileEntry | None = None
    revoked: Revocation | None = None
    kms_key_id: str | None = None
    encryption_context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Index:
    """The signed part of an index. Build new ones with `Index.empty` and the `with_*` methods."""

    name: str
    version: int
    expires: datetime
    versions: Mapping[str, VersionEntry]

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.version < 1:
            raise IndexFormatError("index: version must be at least 1")
        for ver in self.versions:
            _check_bundle_version(ver)

    @classmethod
    def empty(cls, name: str, expires: datetime) -> Index:
        """Return an index for `name` with no versions (index version 1, not yet signed)."""
        return cls(name=name, version=1, expires=expires, versions={})

    @property
    def current(self) -> str | None:
        """The version a client pulls by default (specs/distribution.md §3.4)."""
        return _current_of({v: e.revoked is not None for v, e in self.versions.items()})

    def with_version(self, ver: str, entry: VersionEntry, *, expires: datetime) -> Index:
        """Return the next index version, listing `entry` under `ver`."""
        versions = dict(self.versions)
        versions[ver] = entry
        return replace(self, version=self.version + 1, expires=expires, versions=versions)

    def with_revocation(self, ver: str, revocation: Revocation, *, expires: datetime) -> Index:
        """Return the next index version with `ver` marked revoked.

        Raises:
            VersionNotFoundError: `ver` is not listed.
        """
        entry = self.entry(ver)
        versions = dict(self.versions)
        versions[ver] = replace(entry, revoked=revocation)
        return replace(self, version=self.version + 1, expires=expires, versions=versions)

    def entry(self, ver: str) -> VersionEntry:
        """Return the entry of `ver`, revoked or not.

        Raises:
            VersionNotFoundError: `ver` is not listed.
        """
        try:
            return self.versions[ver]
        except KeyError:
            raise VersionNotFoundError(f"index of {self.name}: no version {ver}") from None

    def installable(self, ver: str | None) -> tuple[str, VersionEntry]:
        """Return the version a client may fetch: `ver`, or the current one when None.

        Raises:
            VersionNotFoundError: `ver` is not listed, or no version is current.
            VersionRevokedError: `ver` is revoked.
        """
        if ver is None:
            ver = self.current
            if ver is None:
                raise VersionNotFoundError(f"index of {self.name}: no version is installable")
        entry = self.entry(ver)
        if entry.revoked is not None:
            raise VersionRevokedError(
                f"{self.name}@{ver} is revoked by its owner: {entry.revoked.reason}"
            )
        return ver, entry

    def to_json(self) -> dict[str, Any]:
        """Return the `signed` object as JSON-ready values (specs/distribution.md §3.2)."""
        return _index_to_json(self)


# --- index <-> JSON (specs/distribution.md §3.2) -----------------------------------------


def _file_to_json(entry: FileEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {"file": entry.file, "sha256": entry.sha256, "size": entry.size}


def _entry_to_json(entry: VersionEntry) -> dict[str, Any]:
    revoked = None
    if entry.revoked is not None:
        revoked = {"at": format_time(entry.revoked.at), "reason": entry.revoked.reason}
    return {
        "bundle": _file_to_json(entry.bundle),
        "encryption_context": dict(entry.encryption_context),
        "image": _file_to_json(entry.image),
        "kms_key_id": entry.kms_key_id,
        "pcrs": _file_to_json(entry.pcrs),
        "published": format_time(entry.published),
        "revoked": revoked,
    }


def _index_to_json(index: Index) -> dict[str, Any]:
    return {
        "current": index.current,
        "expires": format_time(index.expires),
        "name": index.name,
        "spec_version": INDEX_SPEC_VERSION,
        "type": INDEX_TYPE,
        "version": index.version,
        "versions": {v: _entry_to_json(e) for v, e in index.versions.items()},
    }
