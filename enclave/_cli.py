# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The `enclave-server` command line: a thin shell over the library.

Only this module (and the `_cli_*` modules it registers) prints or exits; the error
handling and exit codes are `cli_shell`'s (specs/cli.md).
"""

from __future__ import annotations

import sys

from cli_shell import CliShell
from enclave import _cli_server
from enclave.errors import EnclaveError, UsageError
from package_format.errors import PackageFormatError

PROG = "enclave-server"

shell = CliShell(
    PROG,
    [_cli_server],
    (EnclaveError, PackageFormatError),
    UsageError,
    summary=(
        "The server inside the enclave: verifies bundles with the pinned owner keys, "
        "releases their keys through attestation, runs declared entrypoints."
    ),
    example="enclave-server serve --vsock 5005 --config /etc/nitro-bundles/enclave.json",
)
app = shell.app
fail = shell.fail
main = shell.main


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
