# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Streaming bundle reader for the enclave and `verify` (specs/bundle-format.md §11).

1. `BundleReader.open(stream)` parses and validates the header (no key needed).
2. `reader.verify_signature(trusted_keys)` checks the owner signature.
3. `reader.iter_files(data_key)` yields the files one by one, each with an
   iterator of plaintext chunks; nothing is held whole in memory.

A chunk is a view of a reused buffer: consume (write or hash) it before asking
for the next one. A file's bytes are authentic once its chunks are consumed,
but truncation or trailing data after it is only known when the iteration ends:
a caller that extracts MUST discard everything if iteration raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from package_format.bundle.errors import (
    BundleExpiredError,
    BundleNotYetValidError,
    PayloadAlreadyReadError,
    SignatureNotVerifiedError,
    TrailingDataError,
    TruncatedPayloadError,
)
from package_format.bundle.header import BundleHeader, ParsedHeader, read_raw_header
from package_format.bundle.limits import DEFAULT_LIMITS, TAG_SIZE, BundleLimits
from package_format.bundle.manifest import FileEntry, Manifest
from package_format.bundle.segments import PayloadSegments
from package_format.bundle.signing import verify_header, verify_raw_header
from package_format.bundle.stream import (
    SegmentOpener,
    check_commitment,
    derive_payload_key,
    segment_count,
)


class ReadableStream(Protocol):
    """A binary stream the reader consumes (an open file or `io.BytesIO` fits)."""

    def read(self, size: int = -1, /) -> bytes:
        """Read up to `size` bytes."""

    def readinto(self, buffer: memoryview, /) -> int | None:
        """Read into `buffer`; return the count (0 at end of stream)."""


@dataclass(frozen=True)
class PayloadFile:
    """One file-table entry and, for a file, an iterator of its plaintext chunks."""

    entry: FileEntry
    chunks: Iterator[memoryview]

    @property
    def path(self) -> str:
        """The normalised relative path."""
        return self.entry.path

    @property
    def mode(self) -> int:
        """0o644 or 0o755."""
        return self.entry.mode

    @property
    def size(self) -> int:
        """The plaintext size in bytes."""
        return self.entry.size

    @property
    def kind(self) -> str:
        """'file' or 'dir'."""
        return self.entry.kind


def declared_size(parsed: ParsedHeader) -> int:
    """The exact length of the bundle the header declares (§3, §7.3): no key needed."""
    header = parsed.header
    count = segment_count(header.payload_size, header.segment_size)
    return len(parsed.signed_bytes) + len(parsed.signature) + header.payload_size + TAG_SIZE * count


def check_length(parsed: ParsedHeader, actual: int) -> None:
    """Compare a bundle's length with what its header declares (truncation without a key).

    The messages are the ones reading the payload gives (`_segments`).

    Raises:
        TruncatedPayloadError: The bundle is shorter than declared.
        TrailingDataError: The bundle is longer than declared.
    """
    header = parsed.header
    expected = declared_size(parsed)
    if actual > expected:
        raise TrailingDataError("payload: bytes follow the last segment")
    if actual == expected:
        return
    count = segment_count(header.payload_size, header.segment_size)
    have = max(0, actual - len(parsed.signed_bytes) - len(parsed.signature))
    sealed = header.segment_size + TAG_SIZE
    counter = min(have // sealed, count - 1)
    where = "at a segment boundary" if have == counter * sealed else "inside a segment"
    raise TruncatedPayloadError(f"payload: ends {where} (segment {counter} of {count})")


def check_validity(manifest: Manifest, now: int) -> None:
    """Apply the manifest's `not_before` and `expires` at time `now` (seconds, §5.1).

    Raises:
        BundleNotYetValidError: `now` is before `not_before`.
        BundleExpiredError: `now` is at or after `expires`.
    """
    if manifest.not_before is not None and now < manifest.not_before:
        raise BundleNotYetValidError(f"bundle {manifest.name} {manifest.version} is not yet valid")
    if manifest.expires is not None and now >= manifest.expires:
        raise BundleExpiredError(f"bundle {manifest.name} {manifest.version} has expired")


class BundleReader:
    """A bundle being read from a stream, header first (construct with `open`)."""

    def __init__(self, stream: ReadableStream, parsed: ParsedHeader) -> None:
        self._stream = stream
        self.parsed = parsed
        self._verified = False
        self._consumed = False

    @classmethod
    def open(
        cls,
        stream: ReadableStream,
        limits: BundleLimits = DEFAULT_LIMITS,
        trusted_keys: Iterable[bytes] | None = None,
    ) -> BundleReader:
        """Read the header from `stream` and leave the stream at the payload.

        With `trusted_keys`, the signature is checked before the header is decoded
        (§8: nothing costly before the signature) and the reader is verified.

        Raises:
            BadMagicError, UnsupportedBundleVersionError, TruncatedHeaderError,
            HeaderEncodingError, HeaderFieldError, UnsafePathError,
            BundleLimitError: see `header.read_header`.
            UntrustedSignerError, BundleSignatureError: see `verify_signature`.
        """
        raw = read_raw_header(stream, limits)
        if trusted_keys is None:
            return cls(stream, raw.decode(limits))
        signer = verify_raw_header(raw, trusted_keys)
        reader = cls(stream, raw.decode(limits))
        # The decoded signer is the field verify_raw_header read (canonical encoding).
        assert reader.header.signer == signer
        reader._verified = True
        return reader

    @property
    def header(self) -> BundleHeader:
        """The validated header."""
        return self.parsed.header

    def verify_signature(self, trusted_keys: Iterable[bytes]) -> bytes:
        """Check the owner signature; return the signer's public key.

        Raises:
            UntrustedSignerError: The signer is not in `trusted_keys`.
            BundleSignatureError: The signature does not verify.
        """
        signer = verify_header(self.parsed, trusted_keys)
        self._verified = True
        return signer

    def iter_files(self, data_key: bytes) -> Iterator[PayloadFile]:
        """Yield every file-table entry in order with its plaintext chunks.

        The key commitment is checked before any segment is decrypted. If the
        caller leaves a file's chunks unconsumed they are read and checked anyway.

        Raises:
            SignatureNotVerifiedError: `verify_signature` was not called first.
            PayloadAlreadyReadError: the payload was already requested.
            KeyCommitmentError: `data_key` is not this bundle's key.
            SegmentAuthenticationError: A segment was modified or comes from elsewhere.
            SegmentOrderError: A segment was moved (reordered, swapped).
            TruncatedPayloadError: The payload ends early.
            TrailingDataError: Bytes follow the last segment.
        """
        if not self._verified:
            raise SignatureNotVerifiedError("bundle: verify the signature before the payload")
        if self._consumed:
            raise PayloadAlreadyReadError("bundle: the payload can be read only once")
        self._consumed = True
        header = self.header
        check_commitment(data_key, header.salt, header.commitment)
        cursor = _Cursor(self._segments(data_key))
        for entry in header.manifest.files:
            chunks = cursor.take(entry.size)
            yield PayloadFile(entry, chunks)
            for _ in chunks:
                pass
        cursor.finish()

    def segments(self, data_key: bytes) -> PayloadSegments:
        """The payload as numbered segments, to open several at once (see `segments.py`).

        The key commitment is checked before anything is read; the payload can be read once.

        Raises:
            SignatureNotVerifiedError: `verify_signature` was not called first.
            PayloadAlreadyReadError: the payload was already requested.
            KeyCommitmentError: `data_key` is not this bundle's key.
        """
        if not self._verified:
            raise SignatureNotVerifiedError("bundle: verify the signature before the payload")
        if self._consumed:
            raise PayloadAlreadyReadError("bundle: the payload can be read only once")
        self._consumed = True
        header = self.header
        check_commitment(data_key, header.salt, header.commitment)
        opener = SegmentOpener(
            derive_payload_key(data_key, header.salt),
            self.parsed.header_digest,
            header.payload_size,
            header.segment_size,
        )
        return PayloadSegments(self._stream, opener, header.payload_size, header.segment_size)

    def verify_payload(self, data_key: bytes) -> int:
        """Decrypt and check every segment, discarding the plaintext; return its size.

        Raises:
            The errors of `iter_files`.
        """
        for _ in self.iter_files(data_key):
            pass
        return self.header.payload_size

    def _segments(self, data_key: bytes) -> Iterator[memoryview]:
        header = self.header
        seg = header.segment_size
        opener = SegmentOpener(
            derive_payload_key(data_key, header.salt),
            self.parsed.header_digest,
            header.payload_size,
            seg,
        )
        sealed = memoryview(bytearray(seg + TAG_SIZE))
        remaining = header.payload_size
        for counter in range(opener.count):
            size = min(seg, remaining) + TAG_SIZE
            got = _read_full(self._stream, sealed[:size])
            if got < size:
                where = "at a segment boundary" if got == 0 else "inside a segment"
                raise TruncatedPayloadError(
                    f"payload: ends {where} (segment {counter} of {opener.count})"
                )
            remaining -= size - TAG_SIZE
            yield opener.open(counter, sealed[:size])
        if self._stream.read(1):
            raise TrailingDataError("payload: bytes follow the last segment")


def _read_full(stream: ReadableStream, buf: memoryview) -> int:
    got = 0
    while got < len(buf):
        n = stream.readinto(buf[got:]) or 0
        if n == 0:
            break
        got += n
    return got


class _Cursor:
    """Cuts the stream of plaintext segments into per-file pieces."""

    def __init__(self, segments: Iterator[memoryview]) -> None:
        self._segments = segments
        self._pending = memoryview(b"")

    def take(self, size: int) -> Iterator[memoryview]:
        remaining = size
        while remaining:
            if not self._pending:
                self._pending = next(self._segments)
            part = self._pending[:remaining]
            self._pending = self._pending[len(part) :]
            remaining -= len(part)
            yield part

    def finish(self) -> None:
        for _ in self._segments:
            pass
