# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""KMS `CiphertextForRecipient`: CMS EnvelopedData, open and build (specs/attestation.md §9)."""
