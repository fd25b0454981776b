# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""What runs inside the enclave: RPC server, session filesystem, runner, NSM, KMS client."""
