# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Where a distribution repository lives in S3, and its object keys (specs/distribution.md §2)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from package_format.errors import FormatError
from package_format.index.model import INDEX_FILE

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
