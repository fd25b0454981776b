# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The runner's `BundleOpener` over package_format.bundle (specs/bundle-format.md §11).

`open_bundle` parses the header and verifies the owner signature against the pinned keys
before anything else; `extract` checks the key commitment, then decrypts the segments in
parallel (`enclave.runner.extract`) into files created with `O_EXCL | O_NOFOLLOW` under the
private directory. If anything fails, what was written is wiped before the error propagates
(and the caller wipes the whole directory too, the runner's `PrivateDir`), so a truncated or
tampered payload never leaves a partial tree behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, cast

import cbor2

from enclave.runner.api import AccessFacts, BundleFacts, EntryFacts
from enclave.runner.extract import PreparedTree, extract_in_order, extract_parallel
from package_format.bundle import BundleReader
from package_format.bundle.manifest import Manifest
from package_format.bundle.reader import ReadableStream

#: Average file size from which two workers pay for their extra opens (measured here).
PARALLEL_MIN_AVERAGE = 64 << 10


class VerifiedBundle:
    """A bundle whose signature verified; `prepare` may be called once, then `extract` once."""

    def __init__(self, reader: BundleReader, stream: object = None) -> None:
        self._reader = reader
        self._stream = stream
        self.facts = _facts(reader)
        self._prepared: PreparedTree | None = None

    def _parallel(self) -> bool:
        header = self._reader.header
        count = sum(1 for f in header.manifest.files if f.kind == "file")
        return header.payload_size >= PARALLEL_MIN_AVERAGE * max(1, count)

    def prepare(self, dest: Path) -> None:
        """Create the file table's tree under `dest`, files pre-sized, before the key is known.

        Sizes come from the signed manifest (the signature verified in `open_bundle`); no
        plaintext is involved, so the runner does this while the key release runs. Only for
        bundles `extract` decrypts with two workers; others are created as they are written.

        Raises:
            OSError: The tree cannot be created, or does not fit (ENOSPC).
        """
        if self._parallel() and self._prepared is None:
            self._prepared = PreparedTree(dest, self._reader.header.manifest.files)
            populate = getattr(self._stream, "populate", None)
            if populate is not None:
                populate()  # a mapped source (enclave.mapped_source): fault it in meanwhile

    def discard(self) -> None:
        """Remove what `prepare` made (no plaintext in it yet); nothing if nothing was made."""
        if self._prepared is not None:
            self._prepared.discard()
            self._prepared = None

    def extract(self, data_key: bytes, dest: Path) -> None:
        """Decrypt the payload into `dest` (which exists and is private).

        Bundles whose files average at least `PARALLEL_MIN_AVERAGE` bytes are decrypted by two
        workers (`extract_parallel`, into the tree `prepare` made when it was called), others
        file by file (`extract_in_order`). On failure what was written is zeroed and removed
        before the error propagates.

        Raises:
            package_format.errors.PackageFormatError: Wrong key or damaged payload.
            OSError: A file could not be written.
        """
        files = self._reader.header.manifest.files
        if self._parallel():
            prepared, self._prepared = self._prepared, None
            if prepared is not None and prepared.dest != dest:
                prepared.discard()
                prepared = None
            try:
                segments = self._reader.segments(data_key)  # the key commitment first
            except BaseException:
                if prepared is not None:
                    prepared.discard()  # still unwritten: nothing to zero
                raise
            extract_parallel(segments, files, dest, prepared=prepared)
        else:
            extract_in_order(self._reader.iter_files(data_key), dest)


def open_bundle(stream: IO[bytes], trusted_keys: Sequence[bytes]) -> VerifiedBundle:
    """Parse the header from `stream` and verify its signature with `trusted_keys`.

    Raises:
        package_format.bundle.errors.UntrustedSignerError: Signed by a key not pinned.
        package_format.errors.PackageFormatError: Malformed header or bad signature.
    """
    # Files and session readers have readinto; IO[bytes] just does not declare it.
    # The signature is checked before the header is decoded (bundle-format.md §8).
    reader = BundleReader.open(cast("ReadableStream", stream), trusted_keys=trusted_keys)
    return VerifiedBundle(reader, stream)


def _facts(reader: BundleReader) -> BundleFacts:
    header = reader.header
    manifest: Manifest = header.manifest
    entries: dict[str, EntryFacts] = {}
    for entry in manifest.entrypoints:
        facts = EntryFacts(
            path=entry.path,
            runtime=entry.runtime,
            allow_args=entry.allow_args,
            module=entry.module,
        )
        entries.setdefault(entry.path, facts)
        entries[entry.name] = facts
    return BundleFacts(
        name=manifest.name,
        version=manifest.version,
        entrypoints=entries,
        allow_stdout=manifest.output.stdout,
        allow_stderr=manifest.output.stderr,
        allow_files=manifest.output.files,
        not_before=_time(manifest.not_before),
        expires=_time(manifest.expires),
        kms_key_id=header.kms_key_id,
        wrapped_key=header.wrapped_key,
        encryption_context=dict(header.encryption_context),
        header_digest=reader.parsed.header_digest,
        max_files_size=manifest.output.max_files_size,
        max_run_seconds=manifest.max_run_seconds,
        env_allow=frozenset(manifest.env.allow if manifest.env else ()),
        env_defaults=dict(manifest.env.defaults if manifest.env else ()),
        environment=manifest.environment.sha256 if manifest.environment else None,
        access=AccessFacts(
            kind=manifest.kind,
            signer=header.signer,
            manifest_digest=manifest_digest(manifest),
            data=manifest.data,
            apps=manifest.apps,
            terms=manifest.terms,
            payload_size=manifest.payload_size,
        ),
        manifest_digest=manifest_digest(manifest),
        signer=bytes(header.signer),
    )


def manifest_digest(manifest: Manifest) -> bytes:
    """SHA-256 of the manifest's canonical CBOR, as signed in its header (receipts.md §3.2)."""
    return hashlib.sha256(cbor2.dumps(manifest.to_cbor_obj(), canonical=True)).digest()


def _time(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)
