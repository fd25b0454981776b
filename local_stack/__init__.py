# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The local cloud: moto's server plus a KMS front that enforces attestation and PCR policy."""
