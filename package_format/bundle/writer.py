# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Writing a bundle: header, signature, sealed payload (specs/bundle-format.md §3, §7).

Pure: the caller supplies the manifest, the data key and its wrapped form, the
salt, the signing key and a callback that opens each file; nothing here reads
paths, the clock or randomness. Memory stays at one segment in, one segment out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from hashlib import sha256
from typing import Protocol

from package_format.bundle.errors import KeyFileError, PayloadSourceError
from package_format.bundle.header import BundleHeader
from package_format.bundle.limits import DEFAULT_SEGMENT_SIZE, FORMAT_VERSION
from package_format.bundle.manifest import FileEntry, Manifest
from package_format.bundle.signing import public_key_of, sign
from package_format.bundle.stream import (
    SegmentSealer,
    check_commitment,
    derive_payload_key,
    key_commitment,
)


class WriteStream(Protocol):
    """Where the bundle goes: an open file, `io.BytesIO`, or a writer of the caller's."""

    def write(self, data: bytes | memoryview, /) -> int:
        """Write (or queue) all of `data`; return its length."""


class ReadIntoStream(Protocol):
    """What the writer reads files through (a file opened in binary mode fits)."""

    def readinto(self, buffer: memoryview, /) -> int | None:
        """Read into `buffer`; return the count (0 at end of file)."""

    def read(self, size: int = -1, /) -> bytes:
        """Read up to `size` bytes."""


OpenFile = Callable[[FileEntry], AbstractContextManager[ReadIntoStream]]
Progress = Callable[[int], None]


def build_header(
    manifest: Manifest,
    *,
    kms_key_id: str,
    encryption_context: Mapping[str, str],
    wrapped_key: bytes,
    data_key: bytes,
    salt: bytes,
    signer: bytes,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> BundleHeader:
    """Return the header for `manifest` sealed under `data_key` (§4).

    `encryption_context` gets `bundle` and `version` from the manifest; passing
    other values for those two keys is an error.

    Raises:
        HeaderFieldError: A field is invalid (e.g. a reserved context key).
        BundleLimitError: A size is over the default limits.
        ValueError: The data key or salt is not 32 bytes.
    """
    context = dict(encryption_context)
    context.setdefault("bundle", manifest.name)
    context.setdefault("version", manifest.version)
    if manifest.kind == "data":
        context.setdefault("kind", "data")
    return BundleHeader(
        manifest=manifest,
        kms_key_id=kms_key_id,
        encryption_context=context,
        wrapped_key=wrapped_key,
        salt=salt,
        segment_size=segment_size,
        payload_size=manifest.payload_size,
        commitment=key_commitment(data_key, salt),
        signer=signer,
        format_version=FORMAT_VERSION,
    )


def write_bundle(
    out: WriteStream,
    header: BundleHeader,
    *,
    signing_key: bytes,
    data_key: bytes,
    open_file: OpenFile,
    progress: Progress | None = None,
    out_buffers: int = 1,
) -> int:
    """Write the whole bundle to `out`; return the number of bytes written.

    Files are read in file-table order through `open_file`; each must deliver
    exactly the size its entry declares. Each sealed segment goes to `out.write`
    as a view of one of `out_buffers` reused buffers: an `out` that writes later
    (another thread) may hold a view until `out_buffers - 1` more were passed.

    Raises:
        KeyFileError: `signing_key` does not match the header's signer.
        KeyCommitmentError: `data_key` does not match the header's commitment.
        PayloadSourceError: A file is shorter or longer than its entry says.
    """
    if public_key_of(signing_key) != header.signer:
        raise KeyFileError("signing key does not match the header's signer")
    check_commitment(data_key, header.salt, header.commitment)
    signed = header.signed_bytes()
    signature = sign(signed, signing_key)
    out.write(signed)
    out.write(signature)
    written = len(signed) + len(signature)
    segmenter = _Segmenter(
        out,
        SegmentSealer(
            derive_payload_key(data_key, header.salt),
            sha256(signed).digest(),
            header.payload_size,
            header.segment_size,
            out_buffers,
        ),
        header.segment_size,
        progress,
    )
    for entry in header.manifest.files:
        if entry.kind == "file":
            with open_file(entry) as source:
                segmenter.feed(entry, source)
    return written + segmenter.close(header.payload_size)


class _Segmenter:
    """Fills one segment-sized buffer from successive files and seals it when full."""

    def __init__(
        self, out: WriteStream, sealer: SegmentSealer, seg: int, progress: Progress | None
    ) -> None:
        self._out = out
        self._sealer = sealer
        self._seg = seg
        self._progress = progress
        self._buf = memoryview(bytearray(seg))
        self._fill = 0
        self.written = 0

    def _emit(self) -> None:
        self.written += self._out.write(self._sealer.seal(self._buf[: self._fill]))
        if self._progress is not None:
            self._progress(self._fill)
        self._fill = 0

    def feed(self, entry: FileEntry, source: ReadIntoStream) -> None:
        remaining = entry.size
        while remaining:
            want = min(self._seg - self._fill, remaining)
            got = source.readinto(self._buf[self._fill : self._fill + want]) or 0
            if got == 0:
                raise PayloadSourceError(f"{entry.path}: file shrank while packing")
            self._fill += got
            remaining -= got
            if self._fill == self._seg:
                self._emit()
        if source.read(1):
            raise PayloadSourceError(f"{entry.path}: file grew while packing")

    def close(self, payload_size: int) -> int:
        if self._fill or payload_size == 0:
            self._emit()
        return self.written
