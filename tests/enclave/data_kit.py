# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Helpers for the data bundle tests: app and data bundles, a KMS fake that binds contexts.

`ContextKms` stands for KMS: each wrapped key is only released with the exact key id and
encryption context it was made with (as KMS Decrypt), and it counts calls per bundle name.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field

from package_format.bundle import build_header, public_key_of, write_bundle
from package_format.bundle.access import AppGrant, DataRule, DataTerms, VersionRange
from package_format.bundle.manifest import Entrypoint, FileEntry, Manifest, OutputPolicy

APP_SEED = bytes(range(32))
DATA_SEED = bytes(range(2, 34))
ROGUE_SEED = bytes(range(3, 35))
KEY_ID = "arn:aws:kms:us-east-1:111122223333:key/test"
CREATED = 1_700_000_000


@dataclass
class ContextKms:
    """Wrapped keys bound to (key id, context); `calls` counts releases per bundle name."""

    keys: dict[bytes, tuple[bytes, str, dict[str, str]]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def wrap(self, data_key: bytes, key_id: str, context: Mapping[str, str]) -> bytes:
        blob = b"wrapped:" + bytes([len(self.keys)]) + data_key[:4]
        self.keys[blob] = (data_key, key_id, dict(context))
        return blob

    def __call__(self, kms_key_id: str, wrapped_key: bytes, context: Mapping[str, str]) -> bytes:
        self.calls.append(context.get("bundle", "?"))
        entry = self.keys.get(wrapped_key)
        if entry is None or entry[1] != kms_key_id or entry[2] != dict(context):
            msg = "AccessDeniedException: InvalidCiphertextException (context mismatch)"
            raise RuntimeError(msg)
        return entry[0]


def _rows(files: Mapping[str, bytes]) -> tuple[FileEntry, ...]:
    dirs: set[str] = set()
    for path in files:
        parts = path.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    rows = [FileEntry(p, 0, 0o755, "dir") for p in dirs]
    rows += [FileEntry(p, len(d), 0o644) for p, d in files.items()]
    rows.sort(key=lambda r: tuple(r.path.split("/")))
    return tuple(rows)


def seal(
    manifest: Manifest,
    files: Mapping[str, bytes],
    kms: ContextKms,
    seed: bytes,
    *,
    wrapped: bytes | None = None,
    data_key: bytes | None = None,
) -> bytes:
    """Sign and seal `manifest` with `files`; a fresh data key wrapped by `kms` unless given."""
    context = {"bundle": manifest.name, "version": manifest.version}
    if manifest.kind == "data":
        context["kind"] = "data"
    data_key = data_key or bytes([len(kms.keys) + 1]) * 32
    blob = wrapped if wrapped is not None else kms.wrap(data_key, KEY_ID, context)
    header = build_header(
        manifest,
        kms_key_id=KEY_ID,
        encryption_context=context,
        wrapped_key=blob,
        data_key=data_key,
        salt=b"S" * 32,
        signer=public_key_of(seed),
    )
    out = io.BytesIO()
    write_bundle(
        out, header, signing_key=seed, data_key=data_key,
        open_file=lambda entry: io.BytesIO(files[entry.path]),
    )  # fmt: skip
    return out.getvalue()


def data_rule(
    name: str = "records",
    *,
    signers: tuple[bytes, ...] | None = None,
    versions: str = ">=1.0.0, <2.0.0",
    mount: str | None = None,
    required: bool = True,
) -> DataRule:
    """An app's `[[data]]` entry trusting DATA_SEED's key by default."""
    return DataRule(
        name=name,
        signers=signers or (public_key_of(DATA_SEED),),
        versions=VersionRange(versions),
        mount=mount or f"/data/{name}",
        required=required,
    )


def app_manifest(
    main: bytes, rules: tuple[DataRule, ...], *, name: str = "scorer", version: str = "1.2.0"
) -> tuple[Manifest, dict[str, bytes]]:
    """An app whose `main.py` is `main`, accepting `rules`; stdout and files allowed."""
    files = {"main.py": main}
    manifest = Manifest(
        name=name, version=version, created=CREATED,
        entrypoints=(Entrypoint(name="main.py", path="main.py"),),
        output=OutputPolicy(stdout=True, stderr=True), files=_rows(files), data=rules,
    )  # fmt: skip
    return manifest, files


def data_manifest(
    files: Mapping[str, bytes],
    *,
    name: str = "records",
    version: str = "1.0.0",
    apps: tuple[AppGrant, ...] | None = None,
    terms: DataTerms | None = None,
    expires: int | None = None,
) -> Manifest:
    """A data bundle granting the app `scorer` 1.x signed by APP_SEED's key by default."""
    grants = apps or (AppGrant("scorer", (public_key_of(APP_SEED),), VersionRange(">=1.0.0")),)
    return Manifest(
        name=name, version=version, created=CREATED, entrypoints=(), output=OutputPolicy(),
        files=_rows(files), expires=expires, kind="data", apps=grants, terms=terms,
    )  # fmt: skip
