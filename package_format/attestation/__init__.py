# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Nitro attestation documents: parse, verify, and build (specs/attestation.md)."""
