# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Allow `python -m user_runtime`."""

from user_runtime._cli import entry

entry()
