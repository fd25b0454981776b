# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`python -m user_runtime.vsock`: run the back-end."""

from __future__ import annotations

from user_runtime.vsock._cli import entry

entry()
