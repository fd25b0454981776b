# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Key wrapping behind an interface (`KeyService`), with an AWS KMS implementation."""
