# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Constants and limits of the bundle format (specs/bundle-format.md §2, §8)."""

from __future__ import annotations

from dataclasses import dataclass

# specs/bundle-format.md §3: the preamble.
MAGIC = b"NBNDL"
FORMAT_VERSION = 1
PREAMBLE_SIZE = len(MAGIC) + 1 + 4  # magic, version byte, uint32 header length
SIGNATURE_SIZE = 64
PUBLIC_KEY_SIZE = 32
DATA_KEY_SIZE = 32
SALT_SIZE = 32
COMMITMENT_SIZE = 32
TAG_SIZE = 16
DEFAULT_SEGMENT_SIZE = 1 << 20

# specs/bundle-format.md §6: domain-separation labels.
SIGNATURE_LABEL = b"nitro-bundles/v1 header signature\x00"
PAYLOAD_KEY_INFO = b"nitro-bundles/v1 payload key"
COMMITMENT_INFO = b"nitro-bundles/v1 key commitment"

# specs/bundle-format.md §5.3: file modes a bundle may carry.
FILE_MODES = frozenset({0o644, 0o755})
DIR_MODE = 0o755


@dataclass(frozen=True)
class BundleLimits:
    """Every size and count limit a reader applies to untrusted bundles (§8).

    Writers apply the same limits, so what one side writes the other accepts.
    """

    max_header_size: int = 16 << 20
    max_files: int = 100_000
    max_path_bytes: int = 1024
    max_component_bytes: int = 255
    max_path_depth: int = 32
    max_name_bytes: int = 64
    max_version_bytes: int = 64
    max_entrypoints: int = 64
    max_context_entries: int = 16
    max_context_bytes: int = 256
    max_kms_key_id_bytes: int = 2048
    max_wrapped_key_bytes: int = 4096
    min_segment_size: int = 64
    max_segment_size: int = 16 << 20
    max_file_size: int = 1 << 44
    max_payload_size: int = 1 << 46
    max_cbor_depth: int = 8
    # 9 items per file-table row (a map of 4 pairs) at max_files, plus the rest of the header.
    max_cbor_items: int = 1_000_000


DEFAULT_LIMITS = BundleLimits()
