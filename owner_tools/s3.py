# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""S3 for the owner: read and conditionally write the index, upload files while hashing them.

specs/distribution.md §2, §6. Every botocore failure leaves this module as one
`S3Error` subclass with a one-line message naming the bucket or object.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore import exceptions as bx
from botocore.config import Config
from botocore.exceptions import ClientError

from owner_tools.errors import ExternalError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from typing import BinaryIO

    from mypy_boto3_s3.client import S3Client

DEFAULT_PART_SIZE = 64 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's floor for every part but the last
MAX_PARTS = 10_000
_HASH_CHUNK = 1024 * 1024


class S3Error(ExternalError):
    """S3 failed or refused a request."""


class NoCredentialsError(S3Error):
    """No AWS credentials were found for S3."""


class EndpointUnreachableError(S3Error):
    """The S3 endpoint did not answer."""


class BucketNotFoundError(S3Error):
    """The bucket does not exist."""


class AccessDeniedError(S3Error):
    """S3 denied the request."""


class ConcurrentUpdateError(S3Error):
    """The index changed between our read and our write (a conditional write failed)."""


@dataclass(frozen=True)
class FileDigest:
    """Size and lowercase hex SHA-256 of a file's bytes."""

    size: int
    sha256: str


@dataclass(frozen=True)
class StoredObject:
    """An object's bytes and its ETag (for a conditional overwrite)."""

    data: bytes
    etag: str


def make_client(endpoint_url: str | None = None) -> S3Client:
    """Return an S3 client; `endpoint_url` (or AWS_ENDPOINT_URL_S3) points at a local stack."""
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)


@contextlib.contextmanager
def s3_errors(where: str) -> Iterator[None]:
    """Turn botocore's exceptions raised in the block into one-line `S3Error`s about `where`."""
    try:
        yield
    except (bx.NoCredentialsError, bx.PartialCredentialsError) as e:
        raise NoCredentialsError(f"{where}: no AWS credentials found") from e
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ConnectionClosedError) as e:
        raise EndpointUnreachableError(f"{where}: cannot reach the S3 endpoint ({e})") from e
    except bx.ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        raise _client_error(where, code, e) from e
    except bx.BotoCoreError as e:
        raise S3Error(f"{where}: {e}") from e


def _client_error(where: str, code: str, e: Exception) -> S3Error:
    bucket = where.removeprefix("s3://").split("/", 1)[0]
    if code == "NoSuchBucket":
        return BucketNotFoundError(f"s3://{bucket}: bucket does not exist")
    if code in {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
        return AccessDeniedError(f"{where}: access denied ({code})")
    if code in {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}:
        return ConcurrentUpdateError(f"{where}: changed by someone else meanwhile; run again")
    message = " ".join(str(e).split())
    return S3Error(f"{where}: {message}")


def get_object(client: S3Client, bucket: str, key: str, max_bytes: int) -> StoredObject | None:
    """Return the object's bytes and ETag, or None if there is no such key.

    Raises:
        S3Error: the bucket is missing, access is denied, the endpoint is unreachable, or
            the object is larger than `max_bytes`.
    """
    where = f"s3://{bucket}/{key}"
    with s3_errors(where):
        try:
            response = client.get_object(Bucket=bucket, Key=key)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise
        body = response["Body"]
        try:
            data = body.read(max_bytes + 1)
        finally:
            body.close()
    if len(data) > max_bytes:
        raise S3Error(f"{where}: larger than {max_bytes} bytes")
    return StoredObject(data=data, etag=str(response.get("ETag", "")))


def put_object(
    client: S3Client,
    bucket: str,
    key: str,
    data: bytes,
    *,
    content_type: str,
    if_match: str | None = None,
    if_none_match: bool = False,
) -> None:
    """Write `data`; with `if_match`/`if_none_match`, only if the object is unchanged/absent.

    Raises:
        ConcurrentUpdateError: the condition failed.
        S3Error: any other S3 failure.
    """
    extra: dict[str, Any] = {}
    if if_match is not None:
        extra["IfMatch"] = if_match
    if if_none_match:
        extra["IfNoneMatch"] = "*"
    with s3_errors(f"s3://{bucket}/{key}"):
        client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type, **extra)


def check_bucket(client: S3Client, bucket: str) -> None:
    """Fail early, before anything is uploaded, when the bucket is missing or unreachable.

    Raises:
        BucketNotFoundError: the bucket does not exist.
        S3Error: any other S3 failure.
    """
    with s3_errors(f"s3://{bucket}"):
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) in {"404", "NoSuchBucket"}:
                raise BucketNotFoundError(f"s3://{bucket}: bucket does not exist") from e
            raise


def hash_file(path: Path) -> FileDigest:
    """Return the size and SHA-256 of the file at `path` (one read pass)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileDigest(size=size, sha256=digest.hexdigest())


@dataclass(frozen=True)
class _Multipart:
    """One multipart upload under way: where it goes and its S3 upload id."""

    client: S3Client
    bucket: str
    key: str
    upload_id: str

    def send_parts(
        self,
        fh: BinaryIO,
        part_size: int,
        digest: hashlib._Hash,
        progress: Callable[[int], None] | None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Read, hash and upload `fh` in parts of `part_size`; return the parts and the size.

        Raises:
            S3Error: a part could not be uploaded.
        """
        where = f"s3://{self.bucket}/{self.key}"
        parts: list[dict[str, Any]] = []
        total = 0
        number = 1
        while data := fh.read(part_size):
            digest.update(data)
            with s3_errors(where):
                etag = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    PartNumber=number,
                    Body=data,
                )["ETag"]
            parts.append({"ETag": etag, "PartNumber": number})
            total += len(data)
            number += 1
            if progress is not None:
                progress(len(data))
        return parts, total


def upload_file(
    client: S3Client,
    bucket: str,
    key: str,
    path: Path,
    *,
    content_type: str = "application/octet-stream",
    part_size: int = DEFAULT_PART_SIZE,
    progress: Callable[[int], None] | None = None,
) -> FileDigest:
    """Upload `path` to `key`, hashing the bytes as they are read; multipart above `part_size`.

    One read pass: each part is read once, hashed and sent. A failed multipart upload is
    aborted so no parts linger in the bucket.

    Raises:
        S3Error: S3 failed; nothing is left under `key` by a failed multipart upload.
        OSError: the file cannot be read.
    """
    size = path.stat().st_size
    part_size = max(part_size, MIN_PART_SIZE, math.ceil(size / MAX_PARTS))
    where = f"s3://{bucket}/{key}"
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        if size <= part_size:
            data = fh.read()
            digest.update(data)
            with s3_errors(where):
                client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
            if progress is not None:
                progress(len(data))
            return FileDigest(size=len(data), sha256=digest.hexdigest())
        with s3_errors(where):
            upload_id = client.create_multipart_upload(
                Bucket=bucket, Key=key, ContentType=content_type
            )["UploadId"]
        try:
            upload = _Multipart(client, bucket, key, upload_id)
            parts, total = upload.send_parts(fh, part_size, digest, progress)
            with s3_errors(where):
                client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                )
        except BaseException:
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise
    return FileDigest(size=total, sha256=digest.hexdigest())
