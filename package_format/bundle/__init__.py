# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The bundle format (specs/bundle-format.md): header, signature, sealed payload.

Read: `BundleReader.open(stream)` -> `.verify_signature(keys)` -> `.iter_files(key)`.
Write: `build_header(...)` -> `write_bundle(out, header, ...)`.
"""

from __future__ import annotations

from package_format.bundle.config import BundleConfig, parse_bundle_toml
from package_format.bundle.header import BundleHeader, ParsedHeader, read_header
from package_format.bundle.limits import DEFAULT_LIMITS, FORMAT_VERSION, BundleLimits
from package_format.bundle.manifest import (
    Entrypoint,
    Environment,
    EnvPolicy,
    FileEntry,
    Manifest,
    OutputPolicy,
)
from package_format.bundle.reader import BundleReader, PayloadFile, check_validity
from package_format.bundle.signing import (
    dump_private_key,
    dump_public_key,
    fingerprint,
    load_private_key,
    load_public_key,
    public_key_of,
)
from package_format.bundle.writer import build_header, write_bundle

__all__ = [
    "DEFAULT_LIMITS",
    "FORMAT_VERSION",
    "BundleConfig",
    "BundleHeader",
    "BundleLimits",
    "BundleReader",
    "Entrypoint",
    "EnvPolicy",
    "Environment",
    "FileEntry",
    "Manifest",
    "OutputPolicy",
    "ParsedHeader",
    "PayloadFile",
    "build_header",
    "check_validity",
    "dump_private_key",
    "dump_public_key",
    "fingerprint",
    "load_private_key",
    "load_public_key",
    "parse_bundle_toml",
    "public_key_of",
    "read_header",
    "write_bundle",
]
