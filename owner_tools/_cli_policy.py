# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools policy` (generate a KMS key policy) and `policy check` (specs/key-policy.md §6)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from owner_tools._cli_options import (
    Account,
    AdminPrincipals,
    AsJson,
    EnclavePrincipal,
    OwnerPrincipal,
)
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


_BundleNames = Annotated[
    list[str] | None,
    typer.Option("--bundle-name", help="Bundle name (repeatable: one key for several bundles)."),
]
_Bind = Annotated[
    str,
    typer.Option(
        "--bind",
        help="pcr0: this image (and its signer when signed); pcr8: any image of its signer.",
    ),
]


def _generate(  # noqa: PLR0917 - typer options
    ctx: typer.Context,
    eif: Annotated[
        Path | None, typer.Option("--eif", help="Take PCR0/PCR8 from this image.")
    ] = None,
    pcrs: Annotated[Path | None, typer.Option("--pcrs", help="Or from a .pcrs.json file.")] = None,
    bundle_name: _BundleNames = None,
    bundle_version: Annotated[
        str | None, typer.Option("--bundle-version", help="Only this version.")
    ] = None,
    account: Account = None,
    enclave_principal: EnclavePrincipal = None,
    admin_principal: AdminPrincipals = None,
    owner_principal: OwnerPrincipal = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here, not stdout.")
    ] = None,
    bind: _Bind = "pcr0",
    data: Annotated[
        bool, typer.Option("--data", help="A data provider's key: kind = data only.")
    ] = False,
) -> None:
    """Write the KMS key policy that releases the key only to the attested enclave.

    Example: owner-tools policy --eif app.eif --bundle-name app --account 123456789012
    --enclave-principal ROLE_ARN --admin-principal ADMIN_ARN -o key-policy.json
    """
    if ctx.invoked_subcommand is not None:
        return
    from package_format.key_policy import PolicyInputError, build_key_policy

    names = bundle_name or []
    _require(
        ("--bundle-name", names), ("--account", account), ("--enclave-principal", enclave_principal)
    )
    assert account is not None
    assert enclave_principal is not None
    pcr0, pcr8 = _pcrs(eif, pcrs)
    try:
        policy = build_key_policy(
            account_id=account,
            pcr0=pcr0,
            pcr8=pcr8,
            bundle_name=names,
            bundle_version=bundle_version,
            enclave_principal=enclave_principal,
            admin_principals=list(admin_principal or []),
            owner_principal=owner_principal,
            bind=bind,
            kind="data" if data else "app",
        )
    except PolicyInputError as exc:
        raise flagged(exc) from exc
    _write_policy(policy, output)


def _require(*flags: tuple[str, object]) -> None:
    """A usage error naming every required flag that was not given."""
    missing = [flag for flag, value in flags if not value]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}")


def _write_policy(policy: dict[str, Any], output: Path | None) -> None:
    """Pretty JSON to `output` (atomically; "wrote FILE" on stderr) or stdout (key-policy.md §6)."""
    from owner_tools.image import write_text_atomic

    text = json.dumps(policy, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(output, text)
        print(f"wrote {output}", file=sys.stderr)


def _check(
    policy_file: Annotated[Path, typer.Argument(help="Key policy JSON.")],
    as_json: AsJson = False,
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
