# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The shell every command line of the project shares: errors to one line and an exit code.

A leaf package (it imports only typer), so the four CLIs share it without breaking the
import rules between their packages; the enclave image ships it beside `enclave`.
"""

from cli_shell.shell import CliShell

__all__ = ["CliShell"]
