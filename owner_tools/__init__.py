# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The owner's side: keygen, pack, inspect, verify, build-eif, policy, publish.

The library is one module per workflow (`keys`, `pack`, `verify`, `image`, `image_sign`,
`publish`, `publish_policy`, `s3`, `try_run`) and `kms` for key wrapping; they are imported
on demand (the CLI starts without boto3 or the crypto stack). This package itself declares
the error root every one of them raises from, grouped by who is at fault.
"""

from owner_tools.errors import ExternalError, InputError, OwnerToolsError, UsageError

__all__ = ["ExternalError", "InputError", "OwnerToolsError", "UsageError"]
