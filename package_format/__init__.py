# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Pure formats: bundles, enclave images, attestation, CMS and the RPC frames.

Nothing here touches files, sockets, boto3, environment variables or the clock:
callers pass bytes or file-like objects in, plus keys, randomness and the time.
"""
