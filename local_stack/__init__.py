# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The local cloud: moto's server plus a KMS front that enforces attestation and PCR policy.

Modules: `stack` (up, down, status of the local stack), `kms_front` (the request handler),
`kms_moto` (its wire side), `kms_server` (its HTTP process), `attested` (Recipient checks),
`pki` (the simulated NSM's certificates), `cloud` and `processes`. This package declares the
error root they raise from.
"""

from local_stack.errors import ExternalError, InputError, LocalStackError, UsageError

__all__ = ["ExternalError", "InputError", "LocalStackError", "UsageError"]
