# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The `owner-tools` command line: a thin shell over the library.

Only this module (and the `_cli_*` modules it registers) prints or exits; the error
handling and exit codes are `cli_shell`'s (specs/cli.md).
"""

from __future__ import annotations

import sys

from cli_shell import CliShell
from owner_tools import _cli_bundle, _cli_eif, _cli_policy, _cli_publish, _cli_receipt, _cli_try
from owner_tools.errors import OwnerToolsError, UsageError
from package_format.errors import PackageFormatError

PROG = "owner-tools"
#: The command-line words for the `hint` keys of library errors (the library names no flag).
HINTS = {
    "overwrite": "use --force to replace it",
    "manifest-or-flags": "write bundle.toml, or give --name, --version and --entrypoint",
    "kms-region": "use --region or AWS_REGION",
}

shell = CliShell(
    PROG,
    [_cli_bundle, _cli_eif, _cli_policy, _cli_publish, _cli_try, _cli_receipt],
    (OwnerToolsError, PackageFormatError),
    UsageError,
    summary=(
        "The owner's tools: pack, sign and encrypt a bundle of confidential ML code, "
        "build the enclave image that may decrypt it, bind the KMS key to that image, "
        "publish both."
    ),
    example="owner-tools pack examples/ml_app -o app.nb --key-id KEY --signing-key owner.key",
    hints=HINTS,
)
app = shell.app
fail = shell.fail
main = shell.main


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
