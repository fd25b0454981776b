# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The signed distribution index: one per bundle name (specs/distribution.md).

Modelled on The Update Framework: the index is signed by the owner's Ed25519 key,
carries a monotonically increasing version and an expiry, and lists every
published version of a bundle with the size and SHA-256 of each file. This package
is pure: bytes in, validated objects out, and back. Time and keys are parameters.

Modules: `model` (limits, errors, entries, `Index`, version precedence), `codec`
(canonical JSON and the JSON decoders), `signing` (sign, verify, freshness, rollback),
`location` (the S3 layout).
"""

from __future__ import annotations

from package_format.index.codec import _canonical as _canonical
from package_format.index.codec import check_file_name
from package_format.index.location import S3Location
from package_format.index.model import DEFAULT_LIMITS as DEFAULT_LIMITS
from package_format.index.model import (
    INDEX_FILE,
    INDEX_SPEC_VERSION,
    FileEntry,
    Index,
    IndexExpiredError,
    IndexFormatError,
    IndexKeyMismatchError,
    IndexLimitError,
    IndexLimits,
    IndexNameMismatchError,
    IndexRollbackError,
    IndexSignatureError,
    IndexVersionError,
    Revocation,
    VersionEntry,
    VersionNotFoundError,
    VersionRevokedError,
    format_time,
    version_key,
)
from package_format.index.model import INDEX_TYPE as INDEX_TYPE
from package_format.index.signing import SIGNATURE_CONTEXT as SIGNATURE_CONTEXT
from package_format.index.signing import (
    check_fresh,
    check_not_rolled_back,
    expiry_after,
    index_digest,
    key_id,
    parse_signed_index,
    sign_index,
    verify_index,
)

__all__ = [
    "INDEX_FILE",
    "INDEX_SPEC_VERSION",
    "FileEntry",
    "Index",
    "IndexExpiredError",
    "IndexFormatError",
    "IndexKeyMismatchError",
    "IndexLimitError",
    "IndexLimits",
    "IndexNameMismatchError",
    "IndexRollbackError",
    "IndexSignatureError",
    "IndexVersionError",
    "Revocation",
    "S3Location",
    "VersionEntry",
    "VersionNotFoundError",
    "VersionRevokedError",
    "check_file_name",
    "check_fresh",
    "check_not_rolled_back",
    "expiry_after",
    "format_time",
    "index_digest",
    "key_id",
    "parse_signed_index",
    "sign_index",
    "verify_index",
    "version_key",
]
