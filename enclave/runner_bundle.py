# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The runner's `BundleOpener` over package_format.bundle (specs/bundle-format.md §11).

`open_bundle` parses the header and verifies the owner signature against the pinned keys
before anything else; `extract` checks the key commitment, decrypts segment by segment and
writes each file with `O_EXCL | O_NOFOLLOW` under the private directory. If anything fails
the caller wipes the whole directory (the runner's `PrivateDir`), so a truncated or tampered
payload never leaves a partial tree behind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, cast

from enclave.runner_api import BundleFacts, EntryFacts
from package_format.bundle import BundleReader
from package_format.bundle.manifest import Manifest
from package_format.bundle.reader import ReadableStream

_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class VerifiedBundle:
    """A bundle whose signature verified; `extract` may be called once."""

    def __init__(self, reader: BundleReader) -> None:
        self._reader = reader
        self.facts = _facts(reader)

    def extract(self, data_key: bytes, dest: Path) -> None:
        """Decrypt the payload into `dest` (which exists and is private).

        Raises:
            package_format.errors.PackageFormatError: Wrong key or damaged payload.
            OSError: A file could not be written.
        """
        for item in self._reader.iter_files(data_key):
            target = dest.joinpath(*item.path.split("/"))
            if item.kind == "dir":
                target.mkdir(mode=0o700, parents=True, exist_ok=True)
                continue
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(target, _FILE_FLAGS, 0o600)
            try:
                for chunk in item.chunks:
                    view = memoryview(chunk)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
            finally:
                os.close(fd)
            target.chmod(0o700 if item.mode & 0o100 else 0o600)


def open_bundle(stream: IO[bytes], trusted_keys: Sequence[bytes]) -> VerifiedBundle:
    """Parse the header from `stream` and verify its signature with `trusted_keys`.

    Raises:
        package_format.bundle.errors.UntrustedSignerError: Signed by a key not pinned.
        package_format.errors.PackageFormatError: Malformed header or bad signature.
    """
    # Files and session readers have readinto; IO[bytes] just does not declare it.
    reader = BundleReader.open(cast("ReadableStream", stream))
    reader.verify_signature(trusted_keys)
    return VerifiedBundle(reader)


def _facts(reader: BundleReader) -> BundleFacts:
    header = reader.header
    manifest: Manifest = header.manifest
    entries: dict[str, EntryFacts] = {}
    for entry in manifest.entrypoints:
        facts = EntryFacts(path=entry.path, runtime=entry.runtime, allow_args=entry.allow_args)
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
    )


def _time(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)
