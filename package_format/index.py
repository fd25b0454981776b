# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The signed distribution index: one per bundle name (specs/distribution.md).

Modelled on The Update Framework: the index is signed by the owner's Ed25519 key,
carries a monotonically increasing version and an expiry, and lists every
published version of a bundle with the size and SHA-256 of each file. This module
is pure: bytes in, validated objects out, and back. Time and keys are parameters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from package_format.errors import (
    FormatError,
    IntegrityError,
    LimitExceededError,
    PolicyError,
    UnsupportedVersionError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "INDEX_FILE",
    "INDEX_SPEC_VERSION",
    "FileEntry",
    "Index",
    "IndexExpiredError",
    "IndexFormatError",
    "IndexKeyMismatchError",
    "IndexLimitError",
    "IndexLimits",
    "IndexNameMismatchError",
    "IndexRollbackError",
    "IndexSignatureError",
    "IndexVersionError",
    "Revocation",
    "S3Location",
    "VersionEntry",
    "VersionNotFoundError",
    "VersionRevokedError",
    "check_file_name",
    "check_fresh",
    "check_not_rolled_back",
    "expiry_after",
    "format_time",
    "index_digest",
    "key_id",
    "parse_signed_index",
    "sign_index",
    "verify_index",
    "version_key",
]

# specs/distribution.md §3
INDEX_SPEC_VERSION = 1
INDEX_TYPE = "nitro-bundles/index"
INDEX_FILE = "index.json"
# specs/distribution.md §3.3: domain separation from every other owner-key signature.
SIGNATURE_CONTEXT = b"nitro-bundles/index/v1\x00"

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_KEYID_RE = _SHA256_RE


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


def key_id(public_key: bytes) -> str:
    """Return the key id of a raw Ed25519 public key: lowercase hex SHA-256 of its 32 bytes.

    Raises:
        IndexFormatError: the key is not 32 bytes.
    """
    if len(public_key) != 32:
        raise IndexFormatError("owner public key must be 32 bytes of Ed25519")
    return hashlib.sha256(public_key).hexdigest()


def sign_index(index: Index, private_key: bytes) -> bytes:
    """Return the canonical signed envelope of `index` (the bytes of index.json).

    Args:
        index: the index to sign.
        private_key: the 32-byte Ed25519 seed of the owner key.

    Raises:
        IndexFormatError: the key is not a 32-byte seed.
    """
    if len(private_key) != 32:
        raise IndexFormatError("owner private key must be a 32-byte Ed25519 seed")
    signer = SigningKey(private_key)
    signed = _canonical(index.to_json())
    sig = signer.sign(SIGNATURE_CONTEXT + signed).signature
    envelope = {
        "signature": {
            "keyid": key_id(bytes(signer.verify_key)),
            "sig": base64.b64encode(sig).decode("ascii"),
        },
        "signed": index.to_json(),
    }
    return _canonical(envelope)


def index_digest(data: bytes) -> str:
    """Return the SHA-256 (lowercase hex) of a signed index as stored."""
    return hashlib.sha256(data).hexdigest()


def parse_signed_index(
    data: bytes, public_key: bytes, *, limits: IndexLimits = DEFAULT_LIMITS
) -> Index:
    """Decode `data`, check it is canonical and verify its signature; ignore the clock.

    Raises:
        IndexLimitError: `data` or a list in it is over a limit.
        IndexFormatError: `data` is not a canonical, well-formed index.
        IndexVersionError: the index uses another spec version.
        IndexKeyMismatchError: the signature names a key other than `public_key`.
        IndexSignatureError: the signature does not verify.
    """
    if len(data) > limits.max_bytes:
        raise IndexLimitError(f"index: {len(data)} bytes is over the limit of {limits.max_bytes}")
    envelope = _decode_canonical(data)
    _exact_keys("index", envelope, {"signature", "signed"})
    sig_obj = envelope["signature"]
    _exact_keys("index signature", sig_obj, {"keyid", "sig"})
    keyid, sig_b64 = sig_obj["keyid"], sig_obj["sig"]
    if not isinstance(keyid, str) or not _KEYID_RE.fullmatch(keyid):
        raise IndexFormatError("index: signature keyid is not 64 lowercase hex digits")
    sig = _decode_sig(sig_b64)
    if keyid != key_id(public_key):
        raise IndexKeyMismatchError(
            f"index is signed by key {keyid[:16]}, not by the owner key {key_id(public_key)[:16]}"
        )
    try:
        VerifyKey(public_key).verify(SIGNATURE_CONTEXT + _canonical(envelope["signed"]), sig)
    except BadSignatureError:
        raise IndexSignatureError("index signature does not verify under the owner key") from None
    return _index_from_json(envelope["signed"], limits)


def check_fresh(index: Index, now: datetime) -> None:
    """Refuse an index at or past its expiry (specs/distribution.md §4 step 4).

    Raises:
        IndexExpiredError: `now` is at or after `index.expires`.
    """
    if now >= index.expires:
        raise IndexExpiredError(
            f"index of {index.name} (version {index.version}) expired at "
            f"{format_time(index.expires)}"
        )


def check_not_rolled_back(
    index: Index, digest: str, trusted_version: int | None, trusted_digest: str | None
) -> None:
    """Refuse an index older than, or different at the same version from, the trusted one.

    Raises:
        IndexRollbackError: `index.version` is lower than the trusted version, or equal
            with a different digest.
    """
    if trusted_version is None:
        return
    if index.version < trusted_version:
        raise IndexRollbackError(
            f"index of {index.name} is version {index.version}, older than version "
            f"{trusted_version} already seen (rollback refused)"
        )
    if index.version == trusted_version and digest != trusted_digest:
        raise IndexRollbackError(
            f"index of {index.name} version {index.version} differs from the one already seen"
        )


def verify_index(
    data: bytes,
    public_key: bytes,
    *,
    name: str,
    now: datetime,
    limits: IndexLimits = DEFAULT_LIMITS,
) -> Index:
    """Verify a fetched index for `name`: format, key, signature, name, expiry.

    Raises:
        IndexLimitError: over a limit.
        IndexFormatError: not a canonical, well-formed index.
        IndexVersionError: another spec version.
        IndexKeyMismatchError: signed by another key.
        IndexSignatureError: bad signature.
        IndexNameMismatchError: the index describes another bundle name.
        IndexExpiredError: past its expiry.
    """
    index = parse_signed_index(data, public_key, limits=limits)
    if index.name != name:
        raise IndexNameMismatchError(f"index fetched for {name} describes {index.name}")
    check_fresh(index, now)
    return index


def expiry_after(now: datetime, lifetime: timedelta) -> datetime:
    """Return `now + lifetime`, truncated to whole seconds as the index stores it."""
    return (now + lifetime).astimezone(UTC).replace(microsecond=0)


def _decode_sig(value: object) -> bytes:
    if not isinstance(value, str):
        raise IndexFormatError("index: signature sig is not a string")
    try:
        sig = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise IndexFormatError("index: signature sig is not base64") from None
    if len(sig) != 64 or base64.b64encode(sig).decode("ascii") != value:
        raise IndexFormatError("index: signature sig is not 64 bytes in canonical base64")
    return sig


# --- S3 layout (specs/distribution.md §2) ------------------------------------------------

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_SEGMENT_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")


@dataclass(frozen=True)
class S3Location:
    """Where a repository lives: `s3://bucket/prefix` (prefix may be empty)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """Parse `s3://bucket[/prefix]`; the prefix is normalised without slashes at its ends.

        Raises:
            FormatError: not an s3:// URL with a valid bucket and plain prefix segments.
        """
        if not url.startswith("s3://"):
            raise FormatError(f"{url}: not an s3:// URL")
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
            raise FormatError(f"{url}: invalid bucket name {bucket!r}")
        segments = [s for s in prefix.split("/") if s]
        for seg in segments:
            if not _PREFIX_SEGMENT_RE.fullmatch(seg) or seg in {".", ".."}:
                raise FormatError(f"{url}: invalid prefix segment {seg!r}")
        return cls(bucket=bucket, prefix="/".join(segments))

    def key(self, *parts: str) -> str:
        """Return the object key of `parts` under the prefix."""
        return "/".join(p for p in (self.prefix, *parts) if p)

    def index_key(self, name: str) -> str:
        """Return the key of NAME's signed index: `prefix/NAME/index.json`."""
        return self.key(name, INDEX_FILE)

    def file_key(self, name: str, version: str, file: str) -> str:
        """Return the key of a published file: `prefix/NAME/VERSION/FILE`."""
        return self.key(name, version, file)

    def url(self, key: str = "") -> str:
        """Return the s3:// URL of `key` (or of the repository itself)."""
        return f"s3://{self.bucket}/{key or self.prefix}".rstrip("/")


# --- canonical JSON (specs/distribution.md §3.1) -----------------------------------------

_MAX_UINT = 2**53 - 1
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_FILE_RE = _NAME_RE
_SEMVER_RE = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


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
        obj = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_float=_reject_float,
            parse_constant=_reject_constant,
        )
    except UnicodeDecodeError:
        raise IndexFormatError("index: not UTF-8") from None
    except RecursionError:
        raise IndexFormatError("index: nested too deeply") from None
    except json.JSONDecodeError as e:
        raise IndexFormatError(f"index: not JSON ({e.msg} at byte {e.pos})") from None
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


def _check_uint(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_UINT:
        raise IndexFormatError(f"index: {what} is not an integer in 0..2^53-1")
    return value


def _check_str(what: str, value: object, max_chars: int = 1024) -> str:
    if not isinstance(value, str):
        raise IndexFormatError(f"index: {what} is not a string")
    if len(value) > max_chars:
        raise IndexLimitError(f"index: {what} is longer than {max_chars} characters")
    return value


def _check_name(value: object) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise IndexFormatError(f"index: invalid bundle name {str(value)[:64]!r}")
    return value


def check_file_name(value: object) -> str:
    """Return `value` if it is a valid published file name (specs/distribution.md §3.2).

    Raises:
        IndexFormatError: not one path segment of `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`.
    """
    return _check_file_name(value)


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


def _parse_time(what: str, value: object) -> datetime:
    if not isinstance(value, str) or not _TIME_RE.fullmatch(value):
        raise IndexFormatError(f"index: {what} is not a YYYY-MM-DDTHH:MM:SSZ time")
    try:
        return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise IndexFormatError(f"index: {what} is not a valid time") from None


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
    if isinstance(obj, dict) and "spec_version" in obj and obj["spec_version"] != 1:
        raise IndexVersionError(f"index: spec_version {str(obj['spec_version'])[:16]} unsupported")
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
