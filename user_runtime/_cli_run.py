# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Commands registered on the `user-runtime` app (placeholder until implemented)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    del app
