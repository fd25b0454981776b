# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Allow `python -m local_stack`."""

from local_stack._cli import entry

entry()
