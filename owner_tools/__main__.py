# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Allow `python -m owner_tools`."""

from owner_tools._cli import entry

entry()
