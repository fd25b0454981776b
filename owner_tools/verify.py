# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools inspect` and `verify`: read a bundle, check it, write nothing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from owner_tools.kms.interface import KeyService, KmsAccessDeniedError
from package_format.bundle.header import BundleHeader
from package_format.bundle.reader import BundleReader, check_length
from package_format.bundle.signing import fingerprint
from package_format.bundle.stream import segment_count


@dataclass(frozen=True)
class VerifyResult:
    """What verify established."""

    header: BundleHeader
    signer: bytes
    decrypted: bool
    bundle_size: int


def inspect_bundle(path: Path) -> tuple[BundleHeader, int]:
    """Parse the header of the bundle at `path` (no key, no signature check).

    Returns:
        The header and the bundle's size in bytes.

    Raises:
        PackageFormatError: The header is malformed.
        OSError: The file cannot be read.
    """
    with path.open("rb") as f:
        header = BundleReader.open(f).header
        size = path.stat().st_size
    return header, size


def verify_bundle(
    path: Path,
    trusted_keys: Iterable[bytes],
    *,
    kms: KeyService | None = None,
    data_key: bytes | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Check the signature and the length the header declares; with a key, every segment.

    Without a key the payload's bytes are not authenticated, but a truncated bundle, or one
    with bytes after its end, is caught from the header's declared sizes (bundle-format §3,
    §7.3: `TruncatedPayloadError`, `TrailingDataError`).

    Raises:
        PackageFormatError: Any integrity or format failure (typed, see specs §9).
        KmsError: The key service failed.
        OSError: The file cannot be read.
    """
    with path.open("rb", buffering=0) as f:
        # The signature is checked before the header is decoded (bundle-format.md §8).
        reader = BundleReader.open(f, trusted_keys=trusted_keys)
        signer = reader.header.signer
        header = reader.header
        check_length(reader.parsed, os.fstat(f.fileno()).st_size)
        if kms is not None and data_key is None:
            try:
                data_key = kms.decrypt(
                    header.wrapped_key, header.kms_key_id, header.encryption_context
                )
            except KmsAccessDeniedError as exc:
                # The usual cause: publish --apply-policy bound Decrypt to the image, as it
                # should; only the attested enclave may decrypt from then on.
                raise KmsAccessDeniedError(
                    f"{exc}; if the key's policy binds Decrypt to an enclave image "
                    "(owner-tools policy / publish --apply-policy), only that enclave may "
                    "decrypt; verify without --decrypt checks the signature and sizes"
                ) from exc
        if data_key is not None:
            for item in reader.iter_files(data_key):
                for chunk in item.chunks:
                    if progress is not None:
                        progress(len(chunk))
        size = path.stat().st_size
    return VerifyResult(
        header=header, signer=signer, decrypted=data_key is not None, bundle_size=size
    )


def describe(header: BundleHeader, bundle_size: int) -> dict[str, Any]:
    """Return a JSON-ready description of a header (the `inspect --json` output)."""
    m = header.manifest
    return {
        "format": header.format_version,
        "name": m.name,
        "version": m.version,
        "created": m.created,
        "not_before": m.not_before,
        "expires": m.expires,
        "max_run_seconds": m.max_run_seconds,
        "entrypoints": [e.to_cbor_obj() for e in m.entrypoints],
        "output": m.output.to_cbor_obj(),
        "files": [
            {"path": f.path, "kind": f.kind, "size": f.size, "mode": f"{f.mode:04o}"}
            for f in m.files
        ],
        "file_count": sum(1 for f in m.files if f.kind == "file"),
        "payload_size": header.payload_size,
        "bundle_size": bundle_size,
        "segment_size": header.segment_size,
        "segments": segment_count(header.payload_size, header.segment_size),
        "kms_key_id": header.kms_key_id,
        "encryption_context": dict(header.encryption_context),
        "wrapped_key_size": len(header.wrapped_key),
        "signer": header.signer.hex(),
        "signer_fingerprint": fingerprint(header.signer),
        "kind": m.kind,
        **_access(header),
    }


def _access(header: BundleHeader) -> dict[str, Any]:
    """The access rules and terms of specs/bundle-format.md §5.7, when the manifest has any."""
    m = header.manifest
    out: dict[str, Any] = {}
    if m.data:
        out["data"] = [{**r.to_cbor_obj(), "signers": [k.hex() for k in r.signers]} for r in m.data]
    if m.apps:
        out["apps"] = [{**g.to_cbor_obj(), "signers": [k.hex() for k in g.signers]} for g in m.apps]
    if m.terms is not None:
        out["terms"] = m.terms.to_cbor_obj()
    return out
