# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools build-eif`, `describe-eif`, `sign-eif` (specs/enclave-image.md §10)."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from owner_tools._cli_options import NitroCliCompat, PrivateKey, Quiet, SigningCertificate
from owner_tools.errors import UsageError
from owner_tools.image_inputs import DEFAULT_BLOBS

if TYPE_CHECKING:
    from owner_tools.image import BuildOptions
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


# build-eif's own options (the shared ones are _cli_options').
_Output = Annotated[Path, typer.Option("-o", "--output", help="The EIF to write.")]
_Arch = Annotated[str, typer.Option("--arch", help="x86_64 or aarch64 (Graviton).")]
_Blobs = Annotated[
    Path,
    typer.Option(
        "--blobs",
        envvar="NITRO_CLI_BLOBS",
        help="Directory with bzImage|Image(.config), cmdline, init, nsm.ko.",
    ),
]
_Kernel = Annotated[Path | None, typer.Option("--kernel", help="Kernel blob.")]
_Cmdline = Annotated[Path | None, typer.Option("--cmdline", help="Kernel command line file.")]
_Init = Annotated[Path | None, typer.Option("--init", help="Init blob.")]
_NsmKo = Annotated[Path | None, typer.Option("--nsm-ko", help="nsm.ko blob.")]
_KernelConfig = Annotated[Path | None, typer.Option("--kernel-config", help="Kernel .config.")]
_Rootfs = Annotated[
    Path | None,
    typer.Option("--rootfs", help="Base root filesystem: a directory or a tar (docker export)."),
]
_AppRequirements = Annotated[
    Path | None,
    typer.Option(
        "--app-requirements",
        help="The app's hashed requirements.txt: build the rootfs (server venv + this app "
        "environment) with the toolchain's builder, cached; needs root.",
    ),
]
_Debs = Annotated[
    list[str] | None,
    typer.Option("--deb", help="Debian package for the app's native libraries (repeatable)."),
]
_OwnerKeys = Annotated[
    list[Path] | None,
    typer.Option("--owner-key", help="Owner public key to pin (repeatable, at least one)."),
]
_MinVersions = Annotated[
    list[str] | None,
    typer.Option("--min-bundle-version", help="NAME=VERSION the enclave refuses to go below."),
]
_KmsRegion = Annotated[str | None, typer.Option("--kms-region", help="KMS region.")]
_Env = Annotated[list[str] | None, typer.Option("--env", help="Extra NAME=value for the server.")]
_Name = Annotated[str | None, typer.Option("--name", help="Image name (default: file stem).")]
_Version = Annotated[str, typer.Option("--version", help="Image version.")]
_Metadata = Annotated[Path | None, typer.Option("--metadata", help="Custom metadata JSON.")]
_BuildTime = Annotated[
    str | None,
    typer.Option(
        "--build-time",
        envvar="SOURCE_DATE_EPOCH",
        help="Fixed build time (RFC 3339 or Unix seconds); also normalises rootfs mtimes.",
    ),
]
_KeepMtime = Annotated[
    bool, typer.Option("--keep-mtime", help="Keep rootfs mtimes even with --build-time.")
]
_NoServerCheck = Annotated[
    bool,
    typer.Option(
        "--no-server-check",
        help="Accept a --rootfs without the enclave server's Python (image-format tests only).",
    ),
]
_Ramdisks = Annotated[
    list[Path] | None,
    typer.Option("--ramdisk", help="Use prebuilt ramdisks instead (bootstrap first; raw mode)."),
]
_Hidden = Annotated[str, typer.Option(hidden=True)]
_HiddenOrNone = Annotated[str | None, typer.Option(hidden=True)]


@dataclass(frozen=True)
class _BuildFlags:
    """build-eif's parameters as typer parsed them (one field per parameter, same names)."""

    output: Path
    arch: str
    blobs: Path
    kernel: Path | None
    cmdline: Path | None
    init: Path | None
    nsm_ko: Path | None
    kernel_config: Path | None
    rootfs: Path | None
    app_requirements: Path | None
    deb: list[str] | None
    owner_key: list[Path] | None
    min_bundle_version: list[str] | None
    kms_region: str | None
    env: list[str] | None
    name: str | None
    version: str
    metadata: Path | None
    build_time: str | None
    keep_mtime: bool
    no_server_check: bool
    ramdisk: list[Path] | None
    build_tool: str
    build_tool_version: str
    operating_system: str | None
    kernel_version: str | None
    signing_certificate: Path | None
    private_key: Path | None
    nitro_cli_compat: str
    quiet: bool

    def check(self) -> None:
        """Refuse option combinations that make no image.

        Raises:
            UsageError: The combination, named by its flags.
        """
        if self.ramdisk and (
            self.rootfs or self.owner_key or self.min_bundle_version or self.kms_region or self.env
        ):
            raise UsageError("--ramdisk (raw mode) cannot be combined with --rootfs/--owner-key")
        if not self.ramdisk and not self.owner_key:
            raise UsageError("at least one --owner-key is required")
        if (self.signing_certificate is None) != (self.private_key is None):
            raise UsageError("--signing-certificate and --private-key go together")
        if self.app_requirements is not None and (self.rootfs is not None or self.ramdisk):
            raise UsageError("--app-requirements builds the rootfs: it excludes --rootfs/--ramdisk")
        if self.deb and self.app_requirements is None:
            raise UsageError("--deb goes with --app-requirements")

    def options(self) -> BuildOptions:
        """The library's build options: blobs found, keys and metadata loaded."""
        from owner_tools import image

        found = image.find_blobs(
            self.blobs,
            self.arch,
            kernel=self.kernel,
            cmdline=self.cmdline,
            init=self.init,
            nsm_ko=self.nsm_ko,
            kernel_config=self.kernel_config,
            need_bootstrap=not self.ramdisk,
        )
        keys = [_load_owner_key(p) for p in self.owner_key or []]
        build_time = None if self.build_time is None else image.parse_build_time(self.build_time)
        metadata = self.metadata
        return image.BuildOptions(
            output=self.output,
            blobs=found,
            arch=self.arch,
            rootfs=self.rootfs,
            owner_keys=keys,
            min_versions=_pairs(self.min_bundle_version or [], "--min-bundle-version"),
            kms_region=self.kms_region,
            name=self.name or self.output.name.removesuffix(".eif"),
            version=self.version,
            custom_metadata=None if metadata is None else image.load_custom_metadata(metadata),
            build_time=None if build_time is None else build_time[1],
            normalize_mtime=False if self.keep_mtime else None,
            server_check=not self.no_server_check,
            env=list(self.env or []),
            ramdisks=list(self.ramdisk or []),
            build_tool=self.build_tool,
            build_tool_version=self.build_tool_version,
            operating_system=self.operating_system,
            kernel_version=self.kernel_version,
        )


def build_eif_cmd(  # noqa: PLR0917 - typer options
    output: _Output,
    arch: _Arch = "x86_64",
    blobs: _Blobs = DEFAULT_BLOBS,
    kernel: _Kernel = None,
    cmdline: _Cmdline = None,
    init: _Init = None,
    nsm_ko: _NsmKo = None,
    kernel_config: _KernelConfig = None,
    rootfs: _Rootfs = None,
    app_requirements: _AppRequirements = None,
    deb: _Debs = None,
    owner_key: _OwnerKeys = None,
    min_bundle_version: _MinVersions = None,
    kms_region: _KmsRegion = None,
    env: _Env = None,
    name: _Name = None,
    version: _Version = "1.0",
    metadata: _Metadata = None,
    build_time: _BuildTime = None,
    keep_mtime: _KeepMtime = False,
    no_server_check: _NoServerCheck = False,
    ramdisk: _Ramdisks = None,
    build_tool: _Hidden = "nitro-bundles-owner-tools",
    build_tool_version: _Hidden = "0.1.0",
    operating_system: _HiddenOrNone = None,
    kernel_version: _HiddenOrNone = None,
    signing_certificate: SigningCertificate = None,
    private_key: PrivateKey = None,
    nitro_cli_compat: NitroCliCompat = "1.4",
    quiet: Quiet = False,
) -> None:
    """Build an enclave image without Docker; print its measurements.

    Example: owner-tools build-eif --blobs BLOBS --rootfs ROOTFS --owner-key owner.pub
    --app-requirements requirements.txt -o app.eif
    """
    flags = _BuildFlags(**locals())  # first: the parameters, exactly as typer parsed them
    hash_string = _hash_string(flags.nitro_cli_compat)
    flags.check()
    opts = flags.options()
    if flags.app_requirements is not None:
        opts = dataclasses.replace(
            opts, rootfs=_app_rootfs(flags.app_requirements, flags.deb or [])
        )
    _build_and_print(opts, hash_string, flags)


def _build_and_print(opts: BuildOptions, hash_string: str, flags: _BuildFlags) -> None:
    """Build (a byte bar on a terminal), sign when asked, print and save the measurements."""
    from cli_shell.progress import TransferLine, wanted
    from owner_tools import image

    print("Start building the Enclave Image...", file=sys.stderr)
    bar = TransferLine(f"writing {opts.output.name}") if wanted(quiet=flags.quiet) else None
    try:
        result = image.build_eif(opts, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    measurements = result.measurements
    if flags.signing_certificate is not None and flags.private_key is not None:
        signed = _sign(opts.output, opts.output, flags.signing_certificate, flags.private_key)
        measurements = signed.measurements
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
    nitro_cli_compat: NitroCliCompat = "1.4",
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
    nitro_cli_compat: NitroCliCompat = "1.4",
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
