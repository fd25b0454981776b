# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Fetch a bundle version the owner published, the way The Update Framework's client does.

specs/distribution.md §5. Steps: fetch NAME's index; verify its signature with the owner
key, its name and its expiry; refuse it if older than the newest seen for that owner
key (then remember it); pick the version (current, or the one asked for) and refuse it
if revoked; download each file with resume into a hidden `.partial` file in the target
directory and rename it into place only once its size and SHA-256 match the index.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore import exceptions as bx
from botocore.config import Config

from package_format.index import (
    FileEntry,
    Index,
    IndexLimits,
    S3Location,
    check_not_rolled_back,
    index_digest,
    key_id,
    verify_index,
)
from user_runtime.errors import ExternalError, InputError
from user_runtime.trust_state import TrustedIndex, TrustState

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime

    from mypy_boto3_s3.client import S3Client

CHUNK = 1024 * 1024
IMAGE_FILE = "image.eif"
PCRS_FILE = "image.pcrs.json"


class S3Error(ExternalError):
    """S3 failed: no credentials, unreachable endpoint, missing bucket, denied, interrupted."""


class IndexNotFoundError(InputError):
    """The repository holds no index for this name."""


class NoImageError(InputError):
    """The image was asked for but the version was published without one."""


class DownloadIntegrityError(InputError):
    """A downloaded file's size or SHA-256 does not match the signed index."""


class DownloadBusyError(InputError):
    """Another pull is writing the same partial file."""


@dataclass(frozen=True)
class PullResult:
    """What pull fetched: the version, the index version it trusted, the files in place."""

    name: str
    version: str
    index_version: int
    files: list[Path] = field(default_factory=list)
    downloaded_bytes: int = 0


def make_client(endpoint_url: str | None = None) -> S3Client:
    """Return an S3 client; `endpoint_url` (or AWS_ENDPOINT_URL_S3) points at a local stack."""
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=120
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)


@contextlib.contextmanager
def _s3_errors(where: str) -> Iterator[None]:
    try:
        yield
    except (bx.NoCredentialsError, bx.PartialCredentialsError) as e:
        raise S3Error(f"{where}: no AWS credentials found") from e
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ConnectionClosedError) as e:
        raise S3Error(f"{where}: cannot reach the S3 endpoint ({e})") from e
    except bx.ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            bucket = where.removeprefix("s3://").split("/", 1)[0]
            raise S3Error(f"s3://{bucket}: bucket does not exist") from e
        if code in {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
            raise S3Error(f"{where}: access denied ({code})") from e
        raise S3Error(f"{where}: {' '.join(str(e).split())}") from e
    except (bx.BotoCoreError, bx.ResponseStreamingError) as e:
        raise S3Error(f"{where}: transfer failed ({e}); run again to resume") from e


def split_spec(spec: str) -> tuple[str, str | None]:
    """Split `NAME[@VERSION]`."""
    name, sep, version = spec.partition("@")
    return name, (version if sep else None)


def fetch_index(client: S3Client, location: S3Location, name: str, limits: IndexLimits) -> bytes:
    """Return the stored bytes of NAME's index (at most `limits.max_bytes` + 1 are read).

    Raises:
        IndexNotFoundError: no index for `name`.
        S3Error: S3 failed.
    """
    key = location.index_key(name)
    where = location.url(key)
    with _s3_errors(where):
        try:
            response = client.get_object(Bucket=location.bucket, Key=key)
        except bx.ClientError as e:
            if e.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                raise IndexNotFoundError(f"{where}: no index for {name}") from e
            raise
        body = response["Body"]
        try:
            return body.read(limits.max_bytes + 1)
        finally:
            body.close()


def update_trust(
    data: bytes,
    *,
    public_key: bytes,
    name: str,
    now: datetime,
    state: TrustState,
    limits: IndexLimits,
) -> Index:
    """Verify a fetched index and, if it is not a rollback, record it as the newest seen.

    Raises:
        PackageFormatError: bad format, another key, bad signature, wrong name, expired, or
            rolled back (`IndexRollbackError`).
        TrustStateError: the state file is corrupt.
    """
    index = verify_index(data, public_key, name=name, now=now, limits=limits)
    digest = index_digest(data)
    with state.locked() as known:
        trusted = known.get(name)
        check_not_rolled_back(
            index,
            digest,
            None if trusted is None else trusted.version,
            None if trusted is None else trusted.sha256,
        )
        known[name] = TrustedIndex(version=index.version, sha256=digest)
    return index


def pull(
    client: S3Client,
    location: S3Location,
    name: str,
    version: str | None,
    *,
    public_key: bytes,
    dest_dir: Path,
    state_dir: Path,
    now: datetime,
    with_image: bool = False,
    progress: Callable[[int], None] | None = None,
    limits: IndexLimits | None = None,
) -> PullResult:
    """Run the client workflow of specs/distribution.md §5 and return what is in place.

    Raises:
        IndexNotFoundError: no index for `name`.
        PackageFormatError: the index is refused (see `update_trust`), or the version is
            missing or revoked.
        NoImageError: `with_image` and the version has no image.
        DownloadIntegrityError: a file does not match the index (nothing left in place).
        S3Error: S3 failed; a partial download is kept for the next run to resume.
    """
    limits = limits or IndexLimits()
    data = fetch_index(client, location, name, limits)
    state = TrustState(state_dir, key_id(public_key))
    index = update_trust(
        data, public_key=public_key, name=name, now=now, state=state, limits=limits
    )
    ver, entry = index.installable(version)
    stem = f"{name}-{ver}"
    # specs/distribution.md §5.3: local names, and hidden partial names beside them.
    wanted = [(entry.bundle, entry.bundle.file, f".{stem}.partial")]
    if with_image:
        if entry.image is None or entry.pcrs is None:
            raise NoImageError(f"{name}@{ver} was published without an enclave image")
        wanted.append((entry.image, f"{stem}.eif", f".{stem}.eif.partial"))
        wanted.append((entry.pcrs, f"{stem}.pcrs.json", f".{stem}.pcrs.json.partial"))
    dest_dir.mkdir(parents=True, exist_ok=True)
    files, total = [], 0
    for file_entry, local_name, partial_name in wanted:
        total += fetch_file(
            client,
            location.bucket,
            location.file_key(name, ver, file_entry.file),
            file_entry,
            final=dest_dir / local_name,
            partial=dest_dir / partial_name,
            progress=progress,
        )
        files.append(dest_dir / local_name)
    return PullResult(name, ver, index.version, files, total)


def _hash_prefix(path: Path, digest: hashlib._Hash) -> None:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)


def _matches(path: Path, expected: FileEntry) -> bool:
    if not path.is_file() or path.stat().st_size != expected.size:
        return False
    digest = hashlib.sha256()
    _hash_prefix(path, digest)
    return digest.hexdigest() == expected.sha256


def fetch_file(
    client: S3Client,
    bucket: str,
    key: str,
    expected: FileEntry,
    *,
    final: Path,
    partial: Path,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Download `key` into `final` via `partial`, resuming; return the bytes fetched now.

    Raises:
        DownloadIntegrityError: the bytes do not match `expected` (partial removed).
        DownloadBusyError: another pull holds `partial`.
        S3Error: S3 failed (partial kept for resuming).
    """
    if _matches(final, expected):
        partial.unlink(missing_ok=True)
        return 0
    fetched = 0
    for attempt in range(2):
        resumed, count, size, digest = _download(
            client, bucket, key, expected, partial=partial, progress=progress
        )
        fetched += count
        if (size, digest) == (expected.size, expected.sha256):
            partial.replace(final)
            _fsync_dir(final.parent)
            return fetched
        partial.unlink(missing_ok=True)
        if not resumed or attempt:
            break  # a resumed prefix may have been bad: start once from scratch
    raise DownloadIntegrityError(
        f"s3://{bucket}/{key}: size or sha-256 does not match the signed index; refused"
    )


def _download(
    client: S3Client,
    bucket: str,
    key: str,
    expected: FileEntry,
    *,
    partial: Path,
    progress: Callable[[int], None] | None,
) -> tuple[bool, int, int, str]:
    """Append the missing bytes to `partial`; return (resumed, fetched, size, sha-256).

    One hash pass: the prefix kept from an earlier run is hashed, then each new chunk
    as it arrives.
    """
    where = f"s3://{bucket}/{key}"
    with partial.open("ab") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadBusyError(f"{partial}: another pull is downloading it") from None
        offset = fh.seek(0, os.SEEK_END)
        if offset > expected.size:
            fh.truncate(0)
            offset = 0
        digest = hashlib.sha256()
        if offset:
            _hash_prefix(partial, digest)
        fetched = 0
        if offset < expected.size:
            with _s3_errors(where):
                try:
                    response = client.get_object(
                        Bucket=bucket, Key=key, Range=f"bytes={offset}-{expected.size - 1}"
                    )
                except bx.ClientError as e:
                    if e.response.get("Error", {}).get("Code") == "InvalidRange":
                        # The object is shorter than the index says: the size check fails.
                        return offset > 0, 0, offset, digest.hexdigest()
                    raise
                body = response["Body"]
                try:
                    remaining = expected.size - offset
                    while remaining > 0 and (chunk := body.read(min(CHUNK, remaining))):
                        fh.write(chunk)
                        digest.update(chunk)
                        remaining -= len(chunk)
                        fetched += len(chunk)
                        if progress is not None:
                            progress(len(chunk))
                finally:
                    body.close()
        fh.flush()
        os.fsync(fh.fileno())
    return offset > 0, fetched, offset + fetched, digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
