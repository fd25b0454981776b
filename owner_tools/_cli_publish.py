# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools publish` and `owner-tools revoke` (specs/distribution.md §7)."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from owner_tools._cli_options import (
    Account,
    AdminPrincipals,
    AsJson,
    EnclavePrincipal,
    ExpiresIn,
    KmsEndpointUrl,
    OwnerPrincipal,
    Pcrs,
    Quiet,
    SigningKey,
)

if TYPE_CHECKING:
    from owner_tools.publish_policy import PolicyTarget, PublishOutcome
    from package_format.index import S3Location


def _location(url: str) -> S3Location:
    from package_format.errors import FormatError
    from package_format.index import S3Location

    try:
        return S3Location.parse(url)
    except FormatError as e:
        raise typer.BadParameter(str(e)) from e


def _lifetime(days: int) -> timedelta:
    if not 1 <= days <= 3650:
        raise typer.BadParameter("--expires-in must be 1 to 3650 days")
    return timedelta(days=days)


def _part_bytes(mib: int) -> int:
    if not 5 <= mib <= 5120:
        raise typer.BadParameter("--part-size must be 5 to 5120 MiB")
    return mib * 1024 * 1024


def _total(*paths: Path | None) -> int:
    return sum(p.stat().st_size for p in paths if p is not None and p.is_file())


def _print_published(outcome: PublishOutcome, location: S3Location, *, as_json: bool) -> None:
    result = outcome.result
    where = location.url(location.index_key(result.name))
    if as_json:  # specs/cli.md §1.2
        print(
            json.dumps(
                {
                    "name": result.name,
                    "version": result.version,
                    "changed": result.changed,
                    "index_version": result.index_version,
                    "index": where,
                    "urls": list(result.urls),
                    "policy_key_id": outcome.key_id,
                }
            )
        )
        return
    if result.changed:
        for url in result.urls:
            print(url)
        print(
            f"published {result.name}@{result.version} (index version "
            f"{result.index_version}, {where})",
            file=sys.stderr,
        )
    else:
        print(
            f"{result.name}@{result.version} is already published with these bytes; nothing to do",
            file=sys.stderr,
        )
    if outcome.key_id is not None:
        print(f"key policy of {outcome.key_id} now admits this image", file=sys.stderr)


def _policy_target(
    apply_policy: bool,
    eif: Path | None,
    kms_endpoint_url: str | None,
    principals: tuple[str | None, str | None, list[str], str | None],
) -> PolicyTarget | None:
    """`--apply-policy`'s target: the KMS client and the policy's principals, else None."""
    from owner_tools import publish_policy

    if not apply_policy:
        return None
    if eif is None:
        raise typer.BadParameter("--apply-policy needs --eif (the policy binds the image)")
    account, enclave_principal, admin_principals, owner_principal = principals
    if account is None or enclave_principal is None or not admin_principals:
        raise typer.BadParameter(
            "--apply-policy needs --account, --enclave-principal and --admin-principal"
        )
    who = publish_policy.Principals(
        account, enclave_principal, list(admin_principals), owner_principal
    )
    return publish_policy.PolicyTarget(publish_policy.kms_client(kms_endpoint_url), who)


_To = Annotated[
    str, typer.Option("--to", help="Repository URL, s3://BUCKET/PREFIX (prefix optional).")
]
_PartSize = Annotated[int, typer.Option("--part-size", help="Multipart part size in MiB.")]
_EndpointUrl = Annotated[
    str | None,
    typer.Option("--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL_S3 or AWS)."),
]


def _publish(  # noqa: PLR0917 - typer options
    bundle: Annotated[Path, typer.Argument(help="The bundle file to publish.")],
    to: _To,
    key: SigningKey,
    eif: Annotated[
        Path | None, typer.Option("--eif", help="Enclave image to publish with it.")
    ] = None,
    pcrs: Pcrs = None,
    expires_in: ExpiresIn = 30,
    part_size: _PartSize = 64,
    endpoint_url: _EndpointUrl = None,
    apply_policy: Annotated[
        bool,
        typer.Option("--apply-policy", help="Put the image's key policy on the bundle's KMS key."),
    ] = False,
    kms_endpoint_url: KmsEndpointUrl = None,
    account: Account = None,
    enclave_principal: EnclavePrincipal = None,
    admin_principal: AdminPrincipals = None,
    owner_principal: OwnerPrincipal = None,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Upload BUNDLE (and an image) under NAME/VERSION/ and sign the next index.

    Example: owner-tools publish app-1.0.0.nb --eif app.eif --to s3://bundles/releases
    --key owner.key
    """
    from datetime import UTC, datetime

    from cli_shell.progress import byte_progress
    from owner_tools import keys, publish_policy, s3
    from owner_tools._cli_policy import flagged
    from package_format.key_policy import PolicyInputError

    location, lifetime, part_bytes = _location(to), _lifetime(expires_in), _part_bytes(part_size)
    principals = (account, enclave_principal, admin_principal or [], owner_principal)
    target = _policy_target(apply_policy, eif, kms_endpoint_url, principals)
    private_key = keys.load_signing_key(key)
    total = _total(bundle, eif, publish_policy.default_pcrs(eif, pcrs))
    with byte_progress("uploading", total, quiet=quiet, as_json=as_json) as progress:
        try:
            outcome = publish_policy.publish_with_policy(
                s3.make_client(endpoint_url),
                location,
                bundle,
                private_key=private_key,
                now=datetime.now(UTC),
                image=eif,
                pcrs=pcrs,
                lifetime=lifetime,
                part_size=part_bytes,
                progress=progress,
                policy=target,
            )
        except PolicyInputError as exc:
            raise flagged(exc) from exc
    _print_published(outcome, location, as_json=as_json)


def _revoke(  # noqa: PLR0917 - typer options
    name: Annotated[str, typer.Argument(help="Bundle name.")],
    version: Annotated[str, typer.Argument(help="Bundle version to revoke.")],
    to: Annotated[
        str,
        typer.Option(
            "--to", "--from", help="Repository URL, s3://BUCKET/PREFIX (prefix optional)."
        ),
    ],
    key: SigningKey,
    reason: Annotated[
        str, typer.Option("--reason", help="Shown to users.")
    ] = "revoked by the owner",
    expires_in: ExpiresIn = 30,
    endpoint_url: Annotated[str | None, typer.Option("--endpoint-url", help="S3 endpoint.")] = None,
    apply_policy: Annotated[
        bool,
        typer.Option("--apply-policy", help="Deny Decrypt for this version in the key policy."),
    ] = False,
    kms_endpoint_url: KmsEndpointUrl = None,
    as_json: AsJson = False,
) -> None:
    """Mark NAME@VERSION revoked in the signed index (and deny it in the key policy).

    Example: owner-tools revoke app 1.0.0 --to s3://bundles/releases --key owner.key
    --reason "CVE-2026-1234" --apply-policy
    """
    from datetime import UTC, datetime

    from owner_tools import keys, publish_policy, s3

    location = _location(to)
    lifetime = _lifetime(expires_in)
    private_key = keys.load_signing_key(key)
    kms = publish_policy.kms_client(kms_endpoint_url) if apply_policy else None
    result, key_id = publish_policy.revoke_with_policy(
        s3.make_client(endpoint_url),
        location,
        name,
        version,
        private_key=private_key,
        now=datetime.now(UTC),
        reason=reason,
        lifetime=lifetime,
        kms=kms,
    )
    if as_json:  # specs/cli.md §1.2
        fields = {"name": name, "version": version, "changed": result.changed}
        fields |= {"index_version": result.index_version, "policy_key_id": key_id}
        print(json.dumps(fields))
        return
    if result.changed:
        print(f"revoked {name}@{version} (index version {result.index_version})")
    else:
        print(f"{name}@{version} was already revoked (index version {result.index_version})")
    if key_id is not None:
        print(f"key policy of {key_id} now denies Decrypt for {name}@{version}")


def register(app: typer.Typer) -> None:
    """Add `publish` and `revoke` to `app`."""
    app.command("publish")(_publish)
    app.command("revoke")(_revoke)
