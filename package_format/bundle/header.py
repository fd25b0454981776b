# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The signed bundle header and its canonical CBOR encoding (specs/bundle-format.md §3, §4).

A `BundleHeader` is always valid: the constructor checks every cross-field
rule, and `decode_header` re-encodes what it decoded and rejects any input
whose bytes differ (non-canonical CBOR, duplicate keys, indefinite lengths).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import cbor2

from package_format.bundle._fields import fields, get_bytes, get_int, get_text
from package_format.bundle.errors import (
    BadMagicError,
    BundleLimitError,
    HeaderEncodingError,
    HeaderFieldError,
    TruncatedHeaderError,
    UnsupportedBundleVersionError,
)
from package_format.bundle.limits import (
    COMMITMENT_SIZE,
    DEFAULT_LIMITS,
    FORMAT_VERSION,
    MAGIC,
    PREAMBLE_SIZE,
    PUBLIC_KEY_SIZE,
    SALT_SIZE,
    SIGNATURE_SIZE,
    BundleLimits,
)
from package_format.bundle.manifest import Manifest
from package_format.limits import CborScanError, decode_cbor

HEADER_FIELDS = {
    "commitment",
    "encryption_context",
    "format",
    "kms_key_id",
    "manifest",
    "payload_size",
    "salt",
    "segment_size",
    "signer",
    "wrapped_key",
}
RESERVED_CONTEXT_PREFIX = "aws:"


@dataclass(frozen=True)
class BundleHeader:
    """Everything before the payload except the signature (§4).

    `encryption_context` is exposed read-only; it always holds `bundle` = the
    manifest name and `version` = the manifest version.
    """

    manifest: Manifest
    kms_key_id: str
    encryption_context: Mapping[str, str]
    wrapped_key: bytes
    salt: bytes
    segment_size: int
    payload_size: int
    commitment: bytes
    signer: bytes
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "encryption_context", MappingProxyType(dict(self.encryption_context))
        )
        self.validate(DEFAULT_LIMITS)

    @property
    def name(self) -> str:
        """The bundle name from the manifest."""
        return self.manifest.name

    @property
    def version(self) -> str:
        """The bundle version from the manifest."""
        return self.manifest.version

    def validate(self, limits: BundleLimits) -> None:
        """Check the cross-field rules of §4 against `limits`.

        Raises:
            HeaderFieldError: A field is invalid or inconsistent with another.
            UnsupportedBundleVersionError: `format_version` is not 1.
            BundleLimitError: A size is over the limits.
        """
        if self.format_version != FORMAT_VERSION:
            raise UnsupportedBundleVersionError(
                f"header: format version {self.format_version} is not supported"
            )
        self.manifest.validate(limits)
        if not self.kms_key_id or len(self.kms_key_id.encode()) > limits.max_kms_key_id_bytes:
            raise HeaderFieldError("header: kms_key_id empty or too long")
        if not 0 < len(self.wrapped_key) <= limits.max_wrapped_key_bytes:
            raise BundleLimitError("header: wrapped_key empty or too long")
        for name, value, size in (
            ("salt", self.salt, SALT_SIZE),
            ("commitment", self.commitment, COMMITMENT_SIZE),
            ("signer", self.signer, PUBLIC_KEY_SIZE),
        ):
            if len(value) != size:
                raise HeaderFieldError(f"header: {name} must be {size} bytes")
        if not limits.min_segment_size <= self.segment_size <= limits.max_segment_size:
            raise BundleLimitError(
                f"header: segment_size {self.segment_size} outside "
                f"[{limits.min_segment_size}, {limits.max_segment_size}]"
            )
        if self.payload_size != self.manifest.payload_size:
            raise HeaderFieldError("header: payload_size differs from the file table's total")
        self._check_context(limits)

    def _check_context(self, limits: BundleLimits) -> None:
        ctx = self.encryption_context
        if len(ctx) > limits.max_context_entries:
            raise BundleLimitError(
                f"header: more than {limits.max_context_entries} encryption context entries"
            )
        items: list[tuple[object, object]] = list(ctx.items())
        for key, value in items:
            if not isinstance(key, str) or not isinstance(value, str) or not key:
                raise HeaderFieldError("header: encryption context must map text to text")
            if len(key.encode()) + len(value.encode()) > limits.max_context_bytes:
                raise BundleLimitError(f"header: encryption context entry {key!r} too long")
            if key.lower().startswith(RESERVED_CONTEXT_PREFIX):
                raise HeaderFieldError(f"header: encryption context key {key!r} is reserved")
        if ctx.get("bundle") != self.manifest.name or ctx.get("version") != self.manifest.version:
            raise HeaderFieldError(
                "header: encryption context must hold bundle and version equal to the manifest's"
            )
        # §4.3: a data key is bound to its kind too, so it cannot serve as an app's key.
        if (ctx.get("kind") == "data") != (self.manifest.kind == "data"):
            raise HeaderFieldError(
                "header: encryption context kind must be data exactly for a data bundle"
            )

    def to_cbor_obj(self) -> dict[str, Any]:
        """Return the CBOR map of this header (§4)."""
        return {
            "commitment": self.commitment,
            "encryption_context": dict(self.encryption_context),
            "format": self.format_version,
            "kms_key_id": self.kms_key_id,
            "manifest": self.manifest.to_cbor_obj(),
            "payload_size": self.payload_size,
            "salt": self.salt,
            "segment_size": self.segment_size,
            "signer": self.signer,
            "wrapped_key": self.wrapped_key,
        }

    def encode(self) -> bytes:
        """Return the canonical CBOR bytes of this header (§4.1)."""
        return cbor2.dumps(self.to_cbor_obj(), canonical=True)

    def signed_bytes(self) -> bytes:
        """Return preamble || header: the bytes the signature covers, minus its label (§6)."""
        body = self.encode()
        return preamble(len(body), self.format_version) + body

    @classmethod
    def decode(cls, data: bytes, limits: BundleLimits = DEFAULT_LIMITS) -> BundleHeader:
        """Decode canonical header bytes (§4.1).

        Raises:
            HeaderEncodingError: The bytes are not canonical CBOR.
            HeaderFieldError: A field is missing, unknown or invalid.
            UnsafePathError: A path is unsafe.
            BundleLimitError: A size or count is over the limits.
            UnsupportedBundleVersionError: The header's format field is not 1.
        """
        try:
            obj = decode_cbor(
                data,
                max_items=limits.max_cbor_items,
                max_depth=limits.max_cbor_depth,
                allow_indefinite=False,
                allow_duplicate_keys=False,
            )
        except CborScanError as exc:
            kind = BundleLimitError if exc.limit else HeaderEncodingError
            raise kind(f"header: {exc}") from exc
        try:
            again = cbor2.dumps(obj, canonical=True)
        except (cbor2.CBORError, ValueError, TypeError) as exc:
            raise HeaderEncodingError(f"header: not valid cbor ({exc})") from exc
        if again != data:
            raise HeaderEncodingError("header: cbor is not in canonical (deterministic) form")
        h = fields(obj, HEADER_FIELDS, set(), "header")
        fmt = get_int(h, "format", "header", 0, 255)
        if fmt != FORMAT_VERSION:
            raise UnsupportedBundleVersionError(f"header: format version {fmt} is not supported")
        ctx = h["encryption_context"]
        if not isinstance(ctx, dict):
            raise HeaderFieldError("header: encryption_context must be a map")
        header = cls(
            manifest=Manifest.from_cbor_obj(h["manifest"], limits),
            kms_key_id=get_text(h, "kms_key_id", "header", limits.max_kms_key_id_bytes),
            encryption_context=ctx,
            wrapped_key=get_bytes(h, "wrapped_key", "header", None, limits.max_wrapped_key_bytes),
            salt=get_bytes(h, "salt", "header", SALT_SIZE, SALT_SIZE),
            segment_size=get_int(h, "segment_size", "header"),
            payload_size=get_int(h, "payload_size", "header"),
            commitment=get_bytes(h, "commitment", "header", COMMITMENT_SIZE, COMMITMENT_SIZE),
            signer=get_bytes(h, "signer", "header", PUBLIC_KEY_SIZE, PUBLIC_KEY_SIZE),
            format_version=fmt,
        )
        if limits != DEFAULT_LIMITS:
            header.validate(limits)
        return header


def preamble(header_length: int, version: int = FORMAT_VERSION) -> bytes:
    """Return magic || version || uint32be(header length) (§3)."""
    return MAGIC + bytes([version]) + struct.pack(">I", header_length)


@dataclass(frozen=True)
class ParsedHeader:
    """A header read from a stream, with the exact bytes it was decoded from."""

    header: BundleHeader
    signed_bytes: bytes
    signature: bytes

    @property
    def header_digest(self) -> bytes:
        """SHA-256 of the signed bytes: the AAD of every payload segment (§7.3)."""
        return hashlib.sha256(self.signed_bytes).digest()


class ByteSource(Protocol):
    """Anything with `read(n)`: an open binary file, `io.BytesIO`, a socket file."""

    def read(self, size: int = -1, /) -> bytes:
        """Read up to `size` bytes."""


def read_exact(stream: ByteSource, size: int) -> bytes:
    """Read exactly `size` bytes, or fewer only at end of stream."""
    chunks = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class RawHeader:
    """The preamble, header and signature bytes of a bundle, before any decoding (§3)."""

    signed_bytes: bytes
    signature: bytes

    @property
    def body(self) -> bytes:
        """The header's CBOR bytes."""
        return self.signed_bytes[PREAMBLE_SIZE:]

    def signer(self) -> bytes:
        """The `signer` field, read at its fixed place without decoding the header (§4.1).

        Canonical encoding puts the header map's keys in a fixed order: `salt` (32 bytes),
        `format` (1), then `signer` (32 bytes), so every valid header starts with the same
        57 bytes of structure around two 32-byte values.

        Raises:
            HeaderEncodingError: The header does not start as a valid header must.
        """
        body = self.body
        salt_end = len(_SIGNER_PREFIX[0]) + SALT_SIZE
        signer_at = salt_end + len(_SIGNER_PREFIX[1])
        if (
            body[: len(_SIGNER_PREFIX[0])] != _SIGNER_PREFIX[0]
            or body[salt_end:signer_at] != _SIGNER_PREFIX[1]
            or len(body) < signer_at + PUBLIC_KEY_SIZE
        ):
            raise HeaderEncodingError("header: does not start with salt, format 1 and signer")
        return body[signer_at : signer_at + PUBLIC_KEY_SIZE]

    def decode(self, limits: BundleLimits = DEFAULT_LIMITS) -> ParsedHeader:
        """Decode the header (see `BundleHeader.decode`)."""
        header = BundleHeader.decode(self.body, limits)
        return ParsedHeader(header=header, signed_bytes=self.signed_bytes, signature=self.signature)


# map(10), "salt", bytes(32) ... then "format", 1, "signer", bytes(32): see RawHeader.signer.
_SIGNER_PREFIX = (
    b"\xaa" + cbor2.dumps("salt") + b"\x58\x20",
    cbor2.dumps("format") + bytes([FORMAT_VERSION]) + cbor2.dumps("signer") + b"\x58\x20",
)


def read_raw_header(stream: ByteSource, limits: BundleLimits = DEFAULT_LIMITS) -> RawHeader:
    """Read the preamble, header and signature bytes from `stream`, decoding nothing (§3).

    Raises:
        BadMagicError: The stream does not start with `NBNDL`.
        UnsupportedBundleVersionError: The version byte is not 1.
        TruncatedHeaderError: The stream ends before the signature's last byte.
        BundleLimitError: The header length is over `limits.max_header_size`.
    """
    pre = read_exact(stream, PREAMBLE_SIZE)
    if pre[: len(MAGIC)] != MAGIC[: len(pre)]:
        raise BadMagicError("bundle: not a bundle (bad magic)")
    if len(pre) < PREAMBLE_SIZE:
        raise TruncatedHeaderError("bundle: ends inside the preamble")
    version = pre[len(MAGIC)]
    if version != FORMAT_VERSION:
        raise UnsupportedBundleVersionError(f"bundle: format version {version} is not supported")
    (length,) = struct.unpack(">I", pre[len(MAGIC) + 1 :])
    if length > limits.max_header_size:
        raise BundleLimitError(f"bundle: header of {length} bytes exceeds the limit")
    body = read_exact(stream, length)
    if len(body) < length:
        raise TruncatedHeaderError("bundle: ends inside the header")
    signature = read_exact(stream, SIGNATURE_SIZE)
    if len(signature) < SIGNATURE_SIZE:
        raise TruncatedHeaderError("bundle: ends inside the signature")
    return RawHeader(signed_bytes=pre + body, signature=signature)


def read_header(stream: ByteSource, limits: BundleLimits = DEFAULT_LIMITS) -> ParsedHeader:
    """Read and decode the preamble, header and signature from `stream` (§3).

    The stream is left at the first payload byte. No key is needed and the
    signature is not checked here (see `signing.verify_header`); a reader that has
    its trusted keys should rather use `BundleReader.open(..., trusted_keys=...)`,
    which checks the signature before decoding.

    Raises:
        BadMagicError, UnsupportedBundleVersionError, TruncatedHeaderError: see
            `read_raw_header`.
        BundleLimitError: The header length, or a size or count in it, is over `limits`.
        HeaderEncodingError: The header is not canonical CBOR.
        HeaderFieldError: A header field is missing, unknown or invalid.
        UnsafePathError: A path is unsafe.
    """
    return read_raw_header(stream, limits).decode(limits)
