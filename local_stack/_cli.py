# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The `local-stack` command line: a thin shell over the library.

Only this module (and the `_cli_*` modules it registers) prints or exits; the error
handling and exit codes are `cli_shell`'s (specs/cli.md).
"""

from __future__ import annotations

import sys

from cli_shell import CliShell
from local_stack import _cli_cloud, _cli_stack
from local_stack.errors import LocalStackError, UsageError
from package_format.errors import PackageFormatError

PROG = "local-stack"

shell = CliShell(
    PROG,
    [_cli_stack, _cli_cloud],
    (LocalStackError, PackageFormatError),
    UsageError,
    summary=(
        "The local cloud for development and tests: moto's S3 and KMS over HTTP, a KMS "
        "front that enforces attestation and PCR policies, a simulated NSM root."
    ),
    example='eval "$(local-stack up --env)"',
)
app = shell.app
fail = shell.fail
main = shell.main


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
