# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Options several `owner-tools` commands share, declared once (specs/cli.md §1).

Each alias is a type for a command's parameter: `as_json: AsJson = False`. The name, help and
environment variable of an option are the same in every command that takes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

KMS_ENDPOINT_ENV = "NB_KMS_ENDPOINT"

AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object (cli.md §1.2).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]
Force = Annotated[bool, typer.Option("--force", help="Replace OUTPUT if it exists.")]
KmsEndpoint = Annotated[
    str | None, typer.Option("--kms-endpoint", envvar=KMS_ENDPOINT_ENV, help="KMS endpoint URL.")
]
KmsEndpointUrl = Annotated[
    str | None, typer.Option("--kms-endpoint-url", help="KMS endpoint for --apply-policy.")
]
Region = Annotated[str | None, typer.Option("--region", help="AWS region.")]
NitroCliCompat = Annotated[
    str, typer.Option("--nitro-cli-compat", help="HashAlgorithm string of nitro-cli 1.4 or 1.5.")
]
ExpiresIn = Annotated[int, typer.Option("--expires-in", help="Index lifetime in days.")]
SigningKey = Annotated[Path, typer.Option("--key", help="Owner private key (signs the index).")]
Eif = Annotated[Path | None, typer.Option("--eif", help="The enclave image (its PCRs).")]
Pcrs = Annotated[
    Path | None,
    typer.Option("--pcrs", help="PCR JSON of the image (as build-eif writes IMAGE.pcrs.json)."),
]
SigningCertificate = Annotated[
    Path | None, typer.Option("--signing-certificate", help="Sign with this certificate (PEM).")
]
PrivateKey = Annotated[Path | None, typer.Option("--private-key", help="Its EC key (PEM).")]

# The principals of a key policy (`policy`, `publish --apply-policy`; key-policy.md §3).
Account = Annotated[str | None, typer.Option("--account", help="AWS account id (12 digits).")]
EnclavePrincipal = Annotated[
    str | None,
    typer.Option("--enclave-principal", help="IAM role ARN of the enclave's parent instance."),
]
AdminPrincipals = Annotated[
    list[str] | None,
    typer.Option("--admin-principal", help="Key administrator ARN (repeatable)."),
]
OwnerPrincipal = Annotated[
    str | None,
    typer.Option("--owner-principal", help="ARN allowed to pack (GenerateDataKey, no Decrypt)."),
]
