# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Allow `python -m enclave`."""

from enclave._cli import entry

entry()
