# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools receipt verify` (specs/receipts.md §6; shared with user-runtime)."""

from __future__ import annotations

import typer

from cli_shell import _cli_receipt as shared
from owner_tools.errors import UsageError


def register(app: typer.Typer) -> None:
    """Add the `receipt` group to `app`."""
    shared.register(app, UsageError)
