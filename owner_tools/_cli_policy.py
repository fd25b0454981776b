# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools policy` (generate a KMS key policy) and `policy check` (specs/key-policy.md §6)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from owner_tools.errors import InputError, OwnerToolsError, UsageError

if TYPE_CHECKING:
    from package_format.key_policy import PolicyInputError

#: The flag behind each `field` of a key-policy error; PCRs come from a file (exit 1).
_FLAGS = {
    "account_id": "--account",
    "admin_principals": "--admin-principal",
    "enclave_principal": "--enclave-principal",
    "owner_principal": "--owner-principal",
    "bundle_names": "--bundle-name",
    "bundle_version": "--bundle-version",
    "bind": "--bind",
}


class PolicyFindingsError(InputError):
    """`policy check` found unsafe statements."""


def flagged(exc: PolicyInputError) -> OwnerToolsError:
    """A key-policy input error in the CLI's words: a usage error naming the flag, if any."""
    flag = _FLAGS.get(exc.field or "")
    if flag is None:
        return InputError(str(exc), field=exc.field, hint=exc.hint)
    return UsageError(f"{flag} {exc}", field=exc.field, hint=exc.hint)


def _pcrs(eif: Path | None, pcrs: Path | None) -> tuple[str, str | None]:
    if (eif is None) == (pcrs is None):
        raise UsageError("give exactly one of --eif or --pcrs")
    if eif is not None:
        from package_format.eif import read_eif

        with eif.open("rb") as f:
            image = read_eif(f)
        image.verify()
        m = image.measurements
        return m.pcr0.hex(), None if m.pcr8 is None else m.pcr8.hex()
    assert pcrs is not None
    from owner_tools.publish_policy import read_pcrs

    return read_pcrs(pcrs)


def _generate(  # noqa: PLR0917 - typer options
    ctx: typer.Context,
    eif: Path | None = typer.Option(None, "--eif", help="Take PCR0/PCR8 from this image."),
    pcrs: Path | None = typer.Option(None, "--pcrs", help="Or from a .pcrs.json file."),
    bundle_name: list[str] = typer.Option(
        [], "--bundle-name", help="Bundle name (repeatable: one key for several bundles)."
    ),
    bundle_version: str | None = typer.Option(None, "--bundle-version", help="Only this version."),
    account: str | None = typer.Option(None, "--account", help="AWS account id (12 digits)."),
    enclave_principal: str | None = typer.Option(
        None, "--enclave-principal", help="Role ARN of the parent instance."
    ),
    admin_principal: list[str] = typer.Option(
        [], "--admin-principal", help="Key administrator ARN (repeatable)."
    ),
    owner_principal: str | None = typer.Option(
        None, "--owner-principal", help="ARN allowed to pack (GenerateDataKey, no Decrypt)."
    ),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write here, not stdout."),
    bind: str = typer.Option(
        "pcr0",
        "--bind",
        help="pcr0: this image (and its signer when signed); pcr8: any image of its signer.",
    ),
    data: bool = typer.Option(False, "--data", help="A data provider's key: kind = data only."),
) -> None:
    """Write the KMS key policy that releases the key only to the attested enclave."""
    if ctx.invoked_subcommand is not None:
        return
    from owner_tools.image import write_text_atomic
    from package_format.key_policy import PolicyInputError, build_key_policy

    missing = [
        flag
        for flag, value in (
            ("--bundle-name", bundle_name),
            ("--account", account),
            ("--enclave-principal", enclave_principal),
        )
        if not value
    ]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}")
    assert account is not None
    assert enclave_principal is not None
    pcr0, pcr8 = _pcrs(eif, pcrs)
    try:
        policy = build_key_policy(
            account_id=account,
            pcr0=pcr0,
            pcr8=pcr8,
            bundle_name=bundle_name,
            bundle_version=bundle_version,
            enclave_principal=enclave_principal,
            admin_principals=list(admin_principal),
            owner_principal=owner_principal,
            bind=bind,
            kind="data" if data else "app",
        )
    except PolicyInputError as exc:
        raise flagged(exc) from exc
    text = json.dumps(policy, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(output, text)
        print(f"wrote {output}", file=sys.stderr)


def _check(
    policy_file: Path = typer.Argument(..., help="Key policy JSON."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (cli.md §1.2)."),
) -> None:
    """Flag policies a user could get the key around; exit 1 when any finding.

    Example: owner-tools policy check key-policy.json
    """
    from package_format.key_policy import check_policy

    try:
        doc = json.loads(policy_file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{policy_file}: not json") from exc
    findings = check_policy(doc)
    if as_json:  # findings on stdout either way; exit 1 when there are any
        listed = [
            {"code": f.code, "statement": f.statement, "message": f.message} for f in findings
        ]
        print(json.dumps({"policy": str(policy_file), "findings": listed}))
        if findings:
            raise typer.Exit(1)
        return
    for finding in findings:
        print(f"{policy_file}: {finding}")
    if findings:
        n = len(findings)
        raise PolicyFindingsError(f"{policy_file}: {n} finding{'s' if n > 1 else ''}")
    print(f"{policy_file}: ok, no findings")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    sub = typer.Typer(invoke_without_command=True, no_args_is_help=False)
    sub.callback()(_generate)
    sub.command("check")(_check)
    app.add_typer(sub, name="policy", help="Generate (or check) a KMS key policy for an image.")
