# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The user's side: enclave start/stop, sync (FUSE), run, pull, attestation verify."""
