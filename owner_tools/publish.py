# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Publish bundle versions to S3 and revoke them, keeping NAME's signed index up to date.

specs/distribution.md §6. The files go up first, then the new index (version + 1) is
written with a conditional PUT, so a reader never sees an index that names a file
which is not there yet, and two owners publishing at once cannot lose a version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from nacl.signing import SigningKey

from owner_tools import s3
from owner_tools.errors import InputError
from package_format.bundle.header import read_header
from package_format.bundle.signing import verify_header
from package_format.index import (
    FileEntry,
    Index,
    IndexFormatError,
    IndexLimits,
    Revocation,
    S3Location,
    VersionEntry,
    check_file_name,
    expiry_after,
    parse_signed_index,
    sign_index,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime
    from pathlib import Path

    from mypy_boto3_s3.client import S3Client

DEFAULT_LIFETIME = timedelta(days=30)
IMAGE_FILE = "image.eif"
PCRS_FILE = "image.pcrs.json"
INDEX_CONTENT_TYPE = "application/json"
_LIMITS = IndexLimits()


class VersionConflictError(InputError):
    """Different bytes are already published under this version."""


class RevokedVersionError(InputError):
    """The version was revoked; it cannot be published again."""


class BundleSignerError(InputError):
    """The bundle is not signed by the key that signs the index."""


@dataclass(frozen=True)
class BundleIdentity:
    """What publish needs from a bundle header (specs/bundle-format.md §4)."""

    name: str
    version: str
    kms_key_id: str
    encryption_context: Mapping[str, str]
    signer: bytes


@dataclass(frozen=True)
class PublishResult:
    """What publish did: `changed` is False for an identical re-publish."""

    name: str
    version: str
    changed: bool
    index: Index
    urls: list[str] = field(default_factory=list)

    @property
    def index_version(self) -> int:
        """The version of the index now in force."""
        return self.index.version


@dataclass(frozen=True)
class RevokeResult:
    """What revoke did, and the index now in force (for the key-policy step)."""

    name: str
    version: str
    changed: bool
    index: Index

    @property
    def index_version(self) -> int:
        """The version of the index now in force."""
        return self.index.version


def bundle_identity(path: Path) -> BundleIdentity:
    """Read name, version, KMS key and encryption context from the bundle header at `path`.

    Raises:
        PackageFormatError: the file is not a valid bundle header.
        OSError: the file cannot be read.
    """
    with path.open("rb") as fh:
        parsed = read_header(fh)
    header = parsed.header
    verify_header(parsed, [header.signer])
    return BundleIdentity(
        name=header.name,
        version=header.version,
        kms_key_id=header.kms_key_id,
        encryption_context=dict(header.encryption_context),
        signer=bytes(header.signer),
    )


def public_key_of(private_key: bytes) -> bytes:
    """Return the Ed25519 public key of a 32-byte seed."""
    return bytes(SigningKey(private_key).verify_key)


def read_index(
    client: S3Client, location: S3Location, name: str, public_key: bytes
) -> tuple[Index | None, str | None]:
    """Return NAME's current index (verified, expiry ignored) and its ETag, or (None, None).

    Raises:
        S3Error: S3 failed.
        PackageFormatError: the stored index is malformed or signed by another key.
    """
    stored = s3.get_object(client, location.bucket, location.index_key(name), _LIMITS.max_bytes)
    if stored is None:
        return None, None
    return parse_signed_index(stored.data, public_key, limits=_LIMITS), stored.etag


def _write_index(
    client: S3Client, location: S3Location, index: Index, private_key: bytes, etag: str | None
) -> None:
    s3.put_object(
        client,
        location.bucket,
        location.index_key(index.name),
        sign_index(index, private_key),
        content_type=INDEX_CONTENT_TYPE,
        if_match=etag,
        if_none_match=etag is None,
    )


def _same(published: FileEntry | None, local: Path | None) -> bool:
    if local is None:
        return True
    if published is None:
        return False
    digest = s3.hash_file(local)
    return (digest.size, digest.sha256) == (published.size, published.sha256)


def _check_inputs(bundle: Path, image: Path | None, pcrs: Path | None) -> None:
    if (image is None) != (pcrs is None):
        raise InputError("an image and its PCR file are published together")
    for path in (bundle, image, pcrs):
        if path is not None and not path.is_file():
            raise InputError(f"{path}: no such file")
    try:
        check_file_name(bundle.name)
    except IndexFormatError as e:
        raise InputError(
            f"{bundle}: a published file name must match [A-Za-z0-9][A-Za-z0-9._-]* (rename it)"
        ) from e


def _check_republish(
    current: Index, ver: str, bundle: Path, image: Path | None, pcrs: Path | None
) -> None:
    """specs/distribution.md §6.1 step 4: identical bytes are a no-op, others are refused."""
    entry = current.versions[ver]
    if entry.revoked is not None:
        raise RevokedVersionError(f"{current.name}@{ver} is revoked; publish a new version")
    same = _same(entry.bundle, bundle) and _same(entry.image, image) and _same(entry.pcrs, pcrs)
    if not same:
        raise VersionConflictError(
            f"{current.name}@{ver} is already published with different bytes; bump the version"
        )


def publish(
    client: S3Client,
    location: S3Location,
    bundle: Path,
    *,
    private_key: bytes,
    now: datetime,
    image: Path | None = None,
    pcrs: Path | None = None,
    lifetime: timedelta = DEFAULT_LIFETIME,
    part_size: int = s3.DEFAULT_PART_SIZE,
    progress: Callable[[int], None] | None = None,
    identify: Callable[[Path], BundleIdentity] = bundle_identity,
) -> PublishResult:
    """Upload `bundle` (and `image`, `pcrs`) under NAME/VERSION/ and sign the next index.

    Raises:
        BundleSignerError: the bundle is signed by another key than `private_key`'s.
        VersionConflictError: other bytes are already published under this version.
        RevokedVersionError: the version is revoked.
        S3Error: S3 failed (missing bucket, no credentials, unreachable, concurrent update).
        PackageFormatError: the bundle or the stored index is invalid.
    """
    _check_inputs(bundle, image, pcrs)
    ident = identify(bundle)
    public_key = public_key_of(private_key)
    if ident.signer != public_key:
        raise BundleSignerError(f"{bundle}: bundle is not signed by the publishing key")
    s3.check_bucket(client, location.bucket)
    current, etag = read_index(client, location, ident.name, public_key)
    ver = ident.version
    if current is not None and ver in current.versions:
        _check_republish(current, ver, bundle, image, pcrs)
        return PublishResult(ident.name, ver, changed=False, index=current)

    upload = _Uploader(client, location, ident.name, ver, part_size, progress)
    bundle_entry = upload(bundle, bundle.name, "application/octet-stream")
    image_entry = pcrs_entry = None
    if image is not None and pcrs is not None:
        image_entry = upload(image, IMAGE_FILE, "application/octet-stream")
        pcrs_entry = upload(pcrs, PCRS_FILE, "application/json")
    entry = VersionEntry(
        bundle=bundle_entry,
        published=now.replace(microsecond=0),
        image=image_entry,
        pcrs=pcrs_entry,
        kms_key_id=ident.kms_key_id,
        encryption_context=dict(ident.encryption_context),
    )
    new = _next_index(current, ident.name, ver, entry, expiry_after(now, lifetime))
    _write_index(client, location, new, private_key, etag)
    files = [bundle_entry.file] + ([IMAGE_FILE] if image_entry is not None else [])
    urls = [location.url(location.file_key(ident.name, ver, f)) for f in files]
    return PublishResult(ident.name, ver, changed=True, index=new, urls=urls)


def _next_index(
    current: Index | None, name: str, version: str, entry: VersionEntry, expires: datetime
) -> Index:
    """The index with `version` added; specs/distribution.md §3.2: the first one is version 1."""
    if current is None:
        return Index(name=name, version=1, expires=expires, versions={version: entry})
    return current.with_version(version, entry, expires=expires)


@dataclass(frozen=True)
class _Uploader:
    """Uploads one version's files to NAME/VERSION/FILE (specs/distribution.md §2)."""

    client: S3Client
    location: S3Location
    name: str
    version: str
    part_size: int
    progress: Callable[[int], None] | None

    def __call__(self, path: Path, file: str, content_type: str) -> FileEntry:
        """Upload `path` as `file`; return its index entry (size and SHA-256 as uploaded)."""
        digest = s3.upload_file(
            self.client,
            self.location.bucket,
            self.location.file_key(self.name, self.version, file),
            path,
            content_type=content_type,
            part_size=self.part_size,
            progress=self.progress,
        )
        return FileEntry(file=file, size=digest.size, sha256=digest.sha256)


def revoke(
    client: S3Client,
    location: S3Location,
    name: str,
    version: str,
    *,
    private_key: bytes,
    now: datetime,
    reason: str,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> RevokeResult:
    """Mark NAME@VERSION revoked in a newly signed index (idempotent).

    Raises:
        InputError: there is no index for `name`, or the reason is empty or too long.
        VersionNotFoundError: `version` is not listed.
        S3Error: S3 failed.
        PackageFormatError: the stored index is invalid or signed by another key.
    """
    if not reason or len(reason) > _LIMITS.max_reason_chars or "\n" in reason:
        raise InputError(
            f"revocation reason must be one line of 1 to {_LIMITS.max_reason_chars} characters"
        )
    s3.check_bucket(client, location.bucket)
    current, etag = read_index(client, location, name, public_key_of(private_key))
    if current is None:
        raise InputError(f"{location.url(location.index_key(name))}: no index for {name}")
    entry = current.entry(version)
    if entry.revoked is not None:
        return RevokeResult(name, version, changed=False, index=current)
    revocation = Revocation(reason=reason, at=now.replace(microsecond=0))
    new = current.with_revocation(version, revocation, expires=expiry_after(now, lifetime))
    _write_index(client, location, new, private_key, etag)
    return RevokeResult(name, version, changed=True, index=new)
