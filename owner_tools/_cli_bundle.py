# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools keygen | pack | inspect | verify` (specs/bundle-format.md §12)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from owner_tools._cli_options import AsJson, Force, KmsEndpoint, Quiet, Region

if TYPE_CHECKING:
    from owner_tools.pack import PackResult


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("keygen")(keygen)
    app.command("pack")(pack)
    app.command("inspect")(inspect)
    app.command("verify")(verify)


def keygen(
    output: Path = typer.Option(..., "-o", "--output", help="Writes OUTPUT.key and OUTPUT.pub."),
    as_json: AsJson = False,
) -> None:
    """Create an Ed25519 owner signing key pair (private file mode 0600).

    Example: owner-tools keygen -o owner   (writes owner.key and owner.pub)
    """
    from owner_tools.keys import keygen as make_keys
    from package_format.bundle.signing import fingerprint, load_public_key

    private, public = make_keys(output)
    key = load_public_key(public.read_text())
    if as_json:
        print(json.dumps({"private": str(private), "public": str(public), "key": fingerprint(key)}))
        return
    print(f"{private}\n{public}")
    print(f"owner key {fingerprint(key)}", file=sys.stderr)


def _created() -> int:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is None:
        return int(time.time())
    if not epoch.isdigit():
        raise typer.BadParameter("SOURCE_DATE_EPOCH must be a number of seconds")
    return int(epoch)


# pack's own options (the shared ones are _cli_options').
_Manifest = Annotated[
    Path | None, typer.Option("-m", "--manifest", help="bundle.toml (default APP_DIR/bundle.toml).")
]
_Entrypoints = Annotated[
    list[str] | None,
    typer.Option("--entrypoint", help="Override the entrypoints (repeatable; path in APP_DIR)."),
]
_SegmentSize = Annotated[
    int, typer.Option("--segment-size", help="Plaintext bytes per sealed segment.", hidden=True)
]
_DataKind = Annotated[
    bool,
    typer.Option("--data", help="Pack the folder as a data bundle (kind = data, no entrypoints)."),
]


def pack(
    *,
    app_dir: Annotated[Path, typer.Argument(help="The app folder to pack.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Bundle file to write.")],
    key_id: Annotated[str, typer.Option("--key-id", help="KMS key id, ARN or alias.")],
    signing_key: Annotated[Path, typer.Option("--signing-key", help="Owner private key file.")],
    manifest: _Manifest = None,
    name: Annotated[str | None, typer.Option("--name", help="Override the bundle name.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Override the version.")] = None,
    entrypoint: _Entrypoints = None,
    kms_endpoint: KmsEndpoint = None,
    region: Region = None,
    segment_size: _SegmentSize = 1 << 20,
    force: Force = False,
    as_json: AsJson = False,
    data: _DataKind = False,
    quiet: Quiet = False,
) -> None:
    """Pack APP_DIR into a signed, encrypted bundle (an app, or with --data a data bundle).

    Example: owner-tools pack examples/ml_app -o app-1.0.0.nb --key-id alias/bundles
    --signing-key owner.key
    """
    from cli_shell.progress import byte_progress
    from owner_tools.keys import load_signing_key
    from owner_tools.kms.aws import AwsKms
    from owner_tools.pack import Overrides, collect_files, load_config
    from owner_tools.pack import pack as run_pack
    from package_format.bundle.limits import DEFAULT_LIMITS

    if not DEFAULT_LIMITS.min_segment_size <= segment_size <= DEFAULT_LIMITS.max_segment_size:
        raise typer.BadParameter("out of range", param_hint="--segment-size")
    manifest_path = manifest if manifest is not None else app_dir / "bundle.toml"
    config = load_config(
        manifest_path, Overrides(name, version, tuple(entrypoint or ()), "data" if data else None)
    )
    seed = load_signing_key(signing_key)
    kms = AwsKms(kms_endpoint, region)
    rows = collect_files(app_dir, config.exclude, [output, manifest_path])
    total = sum(entry.size for entry, _ in rows)
    with byte_progress("packing", total, quiet=quiet, as_json=as_json) as progress:
        result = run_pack(
            app_dir,
            output,
            config=config,
            key_id=key_id,
            signing_key=seed,
            kms=kms,
            created=_created(),
            manifest_path=manifest_path,
            segment_size=segment_size,
            force=force,
            progress=progress,
            now=int(time.time()),
        )
    _print_packed(result, as_json=as_json)


def _print_packed(result: PackResult, *, as_json: bool) -> None:
    from owner_tools.verify import describe

    info = describe(result.header, result.bundle_size)
    if as_json:
        summary = {k: v for k, v in info.items() if k not in {"files", "output"}}
        print(json.dumps({"bundle": str(result.output), **summary}, sort_keys=True))
    else:
        print(result.output)
        print(
            f"packed {info['name']} {info['version']}: {info['file_count']} files, "
            f"{info['payload_size']} bytes -> {info['bundle_size']} bytes, "
            f"signed by {info['signer_fingerprint']}",
            file=sys.stderr,
        )


def _when(t: int | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _print_human(info: dict[str, Any]) -> None:
    lines = [
        f"bundle:       {info['name']} {info['version']} (format {info['format']})",
        f"created:      {_when(info['created'])}",
        f"valid:        {_when(info['not_before'])} .. {_when(info['expires'])}",
        f"run limit:    {info['max_run_seconds'] or 'none'}"
        + (" s" if info["max_run_seconds"] else ""),
        f"signer:       {info['signer_fingerprint']}",
        f"kms key:      {info['kms_key_id']}",
        "context:      "
        + ", ".join(f"{k}={v}" for k, v in sorted(info["encryption_context"].items())),
        (
            f"payload:      {info['payload_size']} bytes in {info['segments']} segments"
            f" of {info['segment_size']}"
        ),
        f"bundle size:  {info['bundle_size']} bytes",
        "output:       " + ", ".join(f"{k}={v}" for k, v in sorted(info["output"].items())),
    ]
    lines += [
        f"entrypoint:   {e['name']} -> {e['path']} ({e['runtime']}"
        f"{', args' if e['allow_args'] else ''})"
        for e in info["entrypoints"]
    ]
    lines += _access_lines(info)
    lines += [f"  {f['mode']} {f['size']:>12} {f['path']}" for f in info["files"]]
    print("\n".join(lines))


def _access_lines(info: dict[str, Any]) -> list[str]:
    """specs/bundle-format.md §5.7: kind, access rules and terms, when there are any."""
    lines = [f"kind:         {info['kind']}"] if info["kind"] != "app" else []
    lines += [
        f"data:         {r['name']} {r['versions']} at {r['mount']}"
        f"{'' if r['required'] else ' (optional)'}, {len(r['signers'])} signer(s)"
        for r in info.get("data", [])
    ]
    lines += [
        f"app:          {g['name']} {g['versions']}, {len(g['signers'])} signer(s)"
        for g in info.get("apps", [])
    ]
    if "terms" in info:
        lines.append(
            "terms:        " + ", ".join(f"{k}={v}" for k, v in sorted(info["terms"].items()))
        )
    return lines


def inspect(
    bundle: Path = typer.Argument(..., help="The bundle file."),
    as_json: AsJson = False,
) -> None:
    """Show a bundle's manifest, sizes and signer (no key, no KMS; not verified).

    Example: owner-tools inspect app-1.0.0.nb --json
    """
    from owner_tools.verify import describe, inspect_bundle

    header, size = inspect_bundle(bundle)
    info = describe(header, size)
    if as_json:
        print(json.dumps(info, sort_keys=True))
    else:
        _print_human(info)
        print("note: inspect does not check the signature; run verify", file=sys.stderr)


def verify(
    *,
    bundle: Path = typer.Argument(..., help="The bundle file."),
    owner_key: list[Path] = typer.Option(..., "--owner-key", help="Trusted owner public key."),
    decrypt: bool = typer.Option(
        False, "--decrypt", help="Unwrap the data key with KMS and check every segment."
    ),
    kms_endpoint: KmsEndpoint = None,
    region: Region = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Check a bundle's signature and, with --decrypt, every payload segment.

    Example: owner-tools verify app-1.0.0.nb --owner-key owner.pub --decrypt
    """
    from cli_shell.progress import byte_progress
    from owner_tools.keys import load_owner_key
    from owner_tools.kms.aws import AwsKms
    from owner_tools.verify import verify_bundle
    from package_format.bundle.signing import fingerprint

    keys = [load_owner_key(p) for p in owner_key]
    kms = AwsKms(kms_endpoint, region) if decrypt else None
    total = bundle.stat().st_size if decrypt else 0
    with byte_progress("verifying", total or None, quiet=quiet, as_json=as_json) as progress:
        result = verify_bundle(bundle, keys, kms=kms, progress=progress)
    header = result.header
    checked = (
        "signature, length and every segment"
        if result.decrypted
        else "signature and length; segments not decrypted, use --decrypt"
    )
    if as_json:
        out = {
            "bundle": str(bundle),
            "name": header.name,
            "version": header.version,
            "signer_fingerprint": fingerprint(result.signer),
            "decrypted": result.decrypted,
            "payload_size": header.payload_size,
            "ok": True,
        }
        print(json.dumps(out, sort_keys=True))
    else:
        print(
            f"ok: {header.name} {header.version} signed by {fingerprint(result.signer)} ({checked})"
        )
