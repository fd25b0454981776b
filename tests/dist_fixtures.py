# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Helpers for the distribution tests (publish, revoke, pull): keys, real bundles, buckets."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import boto3

from owner_tools.keys import keygen, load_owner_key, load_signing_key
from owner_tools.pack import pack
from package_format.bundle.config import BundleConfig
from package_format.bundle.manifest import Entrypoint

KMS_KEY_ID = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


class FakeKms:
    """A local KeyService: random data keys, 'wrapped' as a fixed label plus the key."""

    def generate_data_key(self, key_id, context):
        key = os.urandom(32)
        return key, b"fake-wrapped:" + key

    def decrypt(self, ciphertext_blob, key_id, context):
        return ciphertext_blob.removeprefix(b"fake-wrapped:")


@dataclass(frozen=True)
class OwnerKey:
    private_path: Path
    public_path: Path

    @property
    def seed(self) -> bytes:
        return load_signing_key(self.private_path)

    @property
    def public(self) -> bytes:
        return load_owner_key(self.public_path)


def owner_key(directory: Path, name: str = "owner") -> OwnerKey:
    directory.mkdir(parents=True, exist_ok=True)
    private, public = keygen(directory / name)
    return OwnerKey(private, public)


def make_bundle(
    directory: Path,
    key: OwnerKey,
    *,
    name: str = "demo",
    version: str = "1.0.0",
    payload: bytes = b"print('hello')\n",
    payload_size: int | None = None,
) -> Path:
    """Pack a real bundle; `payload_size` writes a sparse-free file of that many bytes."""
    app = directory / f"app-{name}-{version}"
    app.mkdir(parents=True)
    (app / "main.py").write_bytes(payload)
    if payload_size is not None:
        chunk = os.urandom(1024 * 1024)
        with (app / "model.bin").open("wb") as fh:
            left = payload_size
            while left > 0:
                fh.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
    out = directory / f"{name}-{version}.nbundle"
    config = BundleConfig(
        name=name, version=version, entrypoints=(Entrypoint(name="main", path="main.py"),)
    )
    pack(
        app,
        out,
        config=config,
        key_id=KMS_KEY_ID,
        signing_key=key.seed,
        kms=FakeKms(),
        created=1_760_000_000,
    )
    return out


def s3_client(url: str):
    return boto3.client("s3", endpoint_url=url)


def new_bucket(url: str, name: str) -> str:
    s3_client(url).create_bucket(Bucket=name)
    return name
