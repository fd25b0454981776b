# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The shell every command line of the project shares: errors to one line and an exit code.

A leaf package (it imports only typer), so the four CLIs share it without breaking the
import rules between their packages; the enclave image ships it beside `enclave`.
`guard` needs no typer: `CliShell` (which does) is imported on first use, so a command that
starts lean (`user-runtime run`) can use `cli_shell.guard` without paying for typer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cli_shell.shell import CliShell

__all__ = ["CliShell"]


def __getattr__(name: str) -> object:
    if name == "CliShell":
        from cli_shell.shell import CliShell  # noqa: PLC0415 - typer only when asked for

        return CliShell
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
