# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Load tests/vectors/generate_bundle_vectors.py and run one vector through the reader."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from types import ModuleType

import vector_files as vector_files_module

from package_format.bundle.reader import BundleReader

REPO = Path(__file__).resolve().parents[3]
VECTOR_DIR = REPO / "tests" / "vectors" / "bundle"


def generator() -> ModuleType:
    return vector_files_module.generator("bundle")


def vector_files() -> list[Path]:
    return sorted(p for p in VECTOR_DIR.iterdir() if p.is_file())


def read_vector(path: Path) -> tuple[dict[str, str], bytes]:
    return generator().parse_vector(path.read_bytes())


def open_bundle(fields: dict[str, str], data: bytes) -> dict[str, str]:
    """Verify and decrypt the bundle; return {path: sha256 hex} of its files."""
    reader = BundleReader.open(io.BytesIO(data))
    reader.verify_signature([bytes.fromhex(fields["owner key"])])
    digests = {}
    for item in reader.iter_files(bytes.fromhex(fields["data key"])):
        h = hashlib.sha256()
        for chunk in item.chunks:
            h.update(chunk)
        digests[item.path] = h.hexdigest()
    return digests
