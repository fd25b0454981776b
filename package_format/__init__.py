# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Pure formats and rules, each in its subpackage.

Bundles, enclave images, attestation, CMS, the RPC frames, the distribution index and KMS
key policies (`key_policy`: writer, checker and evaluator share one set of condition keys).

Nothing here touches files, sockets, boto3, environment variables or the clock:
callers pass bytes or file-like objects in, plus keys, randomness and the time.
"""

from package_format.errors import (
    DetailedError,
    FormatError,
    IntegrityError,
    LimitExceededError,
    PackageFormatError,
    PolicyError,
    UnsupportedVersionError,
)

# The error root and its kinds; each format's API is its subpackage's `__all__`.
__all__ = [
    "DetailedError",
    "FormatError",
    "IntegrityError",
    "LimitExceededError",
    "PackageFormatError",
    "PolicyError",
    "UnsupportedVersionError",
]
