# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools build-eif`, `describe-eif`, `sign-eif` (specs/enclave-image.md §10)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from owner_tools.errors import UsageError

if TYPE_CHECKING:
    from package_format.eif import EifImage

_COMPAT = {"1.4": "Sha384 { ... }", "1.5": "Sha512_48 { .. }"}


def _hash_string(compat: str) -> str:
    if compat not in _COMPAT:
        raise typer.BadParameter(f"--nitro-cli-compat must be 1.4 or 1.5, not {compat!r}")
    return _COMPAT[compat]


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, version = value.partition("=")
        if not sep or not name or not version:
            raise UsageError(f"{flag} {value!r}: expected NAME=VERSION")
        out[name] = version
    return out


def build_eif_cmd(  # noqa: PLR0917
    output: Path = typer.Option(..., "-o", "--output", help="The EIF to write."),
    arch: str = typer.Option("x86_64", "--arch", help="x86_64 or aarch64 (Graviton)."),
    blobs: Path = typer.Option(
        Path("/usr/share/nitro_enclaves/blobs"),
        "--blobs",
        envvar="NITRO_CLI_BLOBS",
        help="Directory with bzImage|Image(.config), cmdline, init, nsm.ko.",
    ),
    kernel: Path | None = typer.Option(None, "--kernel", help="Kernel blob."),
    cmdline: Path | None = typer.Option(None, "--cmdline", help="Kernel command line file."),
    init: Path | None = typer.Option(None, "--init", help="Init blob."),
    nsm_ko: Path | None = typer.Option(None, "--nsm-ko", help="nsm.ko blob."),
    kernel_config: Path | None = typer.Option(None, "--kernel-config", help="Kernel .config."),
    rootfs: Path | None = typer.Option(
        None, "--rootfs", help="Base root filesystem: a directory or a tar (docker export)."
    ),
    app_requirements: Path | None = typer.Option(
        None,
        "--app-requirements",
        help="The app's hashed requirements.txt: build the rootfs (server venv + this app "
        "environment) with the toolchain's builder, cached; needs root.",
    ),
    deb: list[str] = typer.Option(
        [], "--deb", help="Debian package for the app's native libraries (repeatable)."
    ),
    owner_key: list[Path] = typer.Option(
        [], "--owner-key", help="Owner public key to pin (repeatable, at least one)."
    ),
    min_bundle_version: list[str] = typer.Option(
        [], "--min-bundle-version", help="NAME=VERSION the enclave refuses to go below."
    ),
    kms_region: str | None = typer.Option(None, "--kms-region", help="KMS region."),
    env: list[str] = typer.Option([], "--env", help="Extra NAME=value for the server."),
    name: str | None = typer.Option(None, "--name", help="Image name (default: file stem)."),
    version: str = typer.Option("1.0", "--version", help="Image version."),
    metadata: Path | None = typer.Option(None, "--metadata", help="Custom metadata JSON."),
    build_time: str | None = typer.Option(
        None,
        "--build-time",
        envvar="SOURCE_DATE_EPOCH",
        help="Fixed build time (RFC 3339 or Unix seconds); also normalises rootfs mtimes.",
    ),
    keep_mtime: bool = typer.Option(
        False, "--keep-mtime", help="Keep rootfs mtimes even with --build-time."
    ),
    no_server_check: bool = typer.Option(
        False,
        "--no-server-check",
        help="Accept a --rootfs without the enclave server's Python (image-format tests only).",
    ),
    ramdisk: list[Path] = typer.Option(
        [], "--ramdisk", help="Use prebuilt ramdisks instead (bootstrap first; raw mode)."
    ),
    build_tool: str = typer.Option("nitro-bundles-owner-tools", "--build-tool", hidden=True),
    build_tool_version: str = typer.Option("0.1.0", "--build-tool-version", hidden=True),
    operating_system: str | None = typer.Option(None, "--operating-system", hidden=True),
    kernel_version: str | None = typer.Option(None, "--kernel-version", hidden=True),
    signing_certificate: Path | None = typer.Option(
        None, "--signing-certificate", help="Sign with this certificate (PEM)."
    ),
    private_key: Path | None = typer.Option(None, "--private-key", help="Its EC key (PEM)."),
    nitro_cli_compat: str = typer.Option(
        "1.4", "--nitro-cli-compat", help="HashAlgorithm string of nitro-cli 1.4 or 1.5."
    ),
) -> None:
    """Build an enclave image without Docker; print its measurements.

    Example: owner-tools build-eif --blobs BLOBS --rootfs ROOTFS --owner-key owner.pub
    --app-requirements requirements.txt -o app.eif
    """
    from owner_tools import image

    hash_string = _hash_string(nitro_cli_compat)
    if ramdisk and (rootfs or owner_key or min_bundle_version or kms_region or env):
        raise UsageError("--ramdisk (raw mode) cannot be combined with --rootfs/--owner-key")
    if not ramdisk and not owner_key:
        raise UsageError("at least one --owner-key is required")
    if (signing_certificate is None) != (private_key is None):
        raise UsageError("--signing-certificate and --private-key go together")
    if app_requirements is not None and (rootfs is not None or ramdisk):
        raise UsageError("--app-requirements builds the rootfs: it excludes --rootfs/--ramdisk")
    if deb and app_requirements is None:
        raise UsageError("--deb goes with --app-requirements")
    found = image.find_blobs(
        blobs,
        arch,
        kernel=kernel,
        cmdline=cmdline,
        init=init,
        nsm_ko=nsm_ko,
        kernel_config=kernel_config,
        need_bootstrap=not ramdisk,
    )
    keys = [_load_owner_key(p) for p in owner_key]
    if build_time is not None:
        image.parse_build_time(build_time)
    opts = image.BuildOptions(
        output=output,
        blobs=found,
        arch=arch,
        rootfs=rootfs,
        owner_keys=keys,
        min_versions=_pairs(min_bundle_version, "--min-bundle-version"),
        kms_region=kms_region,
        name=name or output.name.removesuffix(".eif"),
        version=version,
        custom_metadata=None if metadata is None else image.load_custom_metadata(metadata),
        build_time=None if build_time is None else image.parse_build_time(build_time)[1],
        normalize_mtime=False if keep_mtime else None,
        server_check=not no_server_check,
        env=list(env),
        ramdisks=list(ramdisk),
        build_tool=build_tool,
        build_tool_version=build_tool_version,
        operating_system=operating_system,
        kernel_version=kernel_version,
    )
    if app_requirements is not None:
        opts = dataclasses.replace(opts, rootfs=_app_rootfs(app_requirements, deb))
    print("Start building the Enclave Image...", file=sys.stderr)
    result = image.build_eif(opts)
    measurements = result.measurements
    if signing_certificate is not None and private_key is not None:
        measurements = _sign(output, output, signing_certificate, private_key).measurements
    text = image.measurements_text(measurements, hash_string)
    image.write_text_atomic(result.pcrs_path, text + "\n")
    print("Enclave Image successfully created.", file=sys.stderr)
    print(text)


def _app_rootfs(requirements: Path, debs: list[str]) -> Path:
    """The cached rootfs with this app environment, built first when absent (§5.5)."""
    from owner_tools.image_env_build import build_app_rootfs

    def progress(line: str) -> None:
        print(f"[rootfs] {line}", file=sys.stderr)

    built = build_app_rootfs(requirements, debs, progress=progress)
    state = "cached" if built.cached else "built"
    print(f"[rootfs] {state}: {built.path}", file=sys.stderr)
    return built.path


def _load_owner_key(path: Path) -> bytes:
    from owner_tools.keys import load_owner_key

    return load_owner_key(path)


def _sign(src: Path, dest: Path, cert: Path, key: Path) -> EifImage:
    from owner_tools.image_sign import sign_file

    return sign_file(src, dest, cert, key)


def describe_eif_cmd(
    eif: Path = typer.Argument(..., help="The EIF to describe."),
    nitro_cli_compat: str = typer.Option(
        "1.4", "--nitro-cli-compat", help="HashAlgorithm string of nitro-cli 1.4 or 1.5."
    ),
) -> None:
    """Print the `nitro-cli describe-eif` JSON; exit 1 on a bad CRC or signature.

    Example: owner-tools describe-eif app.eif
    """
    from owner_tools.image_sign import ImageCheckError, describe_file

    hash_string = _hash_string(nitro_cli_compat)
    info, problem = describe_file(eif, hash_string)
    print(json.dumps(info, indent=2))
    if problem:
        raise ImageCheckError(problem)


def sign_eif_cmd(
    eif: Path = typer.Argument(..., help="The EIF to sign."),
    signing_certificate: Path = typer.Option(..., "--signing-certificate", help="PEM cert."),
    private_key: Path = typer.Option(..., "--private-key", help="PEM EC private key."),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Write here instead of replacing EIF."
    ),
    nitro_cli_compat: str = typer.Option("1.4", "--nitro-cli-compat"),
) -> None:
    """Sign an EIF (appends or replaces the signature section); print PCRs with PCR8.

    Example: owner-tools sign-eif app.eif --signing-certificate signer.pem
    --private-key signer.key -o app.signed.eif
    """
    from owner_tools import image
    from owner_tools.image_sign import sign_file

    hash_string = _hash_string(nitro_cli_compat)
    dest = output or eif
    result = sign_file(eif, dest, signing_certificate, private_key)
    text = image.measurements_text(result.measurements, hash_string)
    image.write_text_atomic(dest.with_name(dest.name + ".pcrs.json"), text + "\n")
    print(text)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("build-eif")(build_eif_cmd)
    app.command("describe-eif")(describe_eif_cmd)
    app.command("sign-eif")(sign_eif_cmd)
