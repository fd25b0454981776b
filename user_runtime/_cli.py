# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The `user-runtime` command line: a thin shell over the library.

Only this module (and the `_cli_*` modules it registers) prints or exits; the error
handling and exit codes are `cli_shell`'s (specs/cli.md).
"""

from __future__ import annotations

import sys

from cli_shell import CliShell
from user_runtime import (
    _cli_attestation,
    _cli_enclave,
    _cli_pull,
    _cli_receipt,
    _cli_run,
    _cli_sync,
)
from user_runtime._cli_common import ERRORS, HINTS, PROG

shell = CliShell(
    PROG,
    [_cli_enclave, _cli_run, _cli_sync, _cli_pull, _cli_attestation, _cli_receipt],
    ERRORS.failures,
    ERRORS.usage_error,
    summary=(
        "The user's tools: start the enclave, sync a folder into it, run an owner's "
        "entrypoint on your data, get the outputs back; the owner's code never leaves the"
        " enclave in plaintext."
    ),
    example='user-runtime run -f app.nb -s ml_algorithm.py -a "-d /dataset/ -o /output/"',
    hints=HINTS,
)
app = shell.app
fail = shell.fail
main = shell.main


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
