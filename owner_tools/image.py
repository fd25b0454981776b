# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools build-eif`: an enclave image without Docker (specs/enclave-image.md §5, §10).

Streams kernel, cmdline, metadata, the bootstrap ramdisk and the customer
ramdisk into `<output>` in one pass (CRC32 and PCR hashes computed while
writing), written under a temporary name in the target directory, fsynced and
renamed; `<output>.pcrs.json` gets the printed measurements.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from owner_tools.errors import InputError, UsageError
from owner_tools.image_env import AppEnvironment, find_environments
from owner_tools.image_rootfs import (
    RootEntry,
    bootstrap_entries,
    check_server_interpreter,
    customer_entries,
    file_opener,
    load_rootfs,
    merge_layer,
)
from owner_tools.writeback import WritebackFile
from package_format.eif import (
    FLAG_ARCH_ARM64,
    LINUXKIT_MTIME,
    BuildMetadata,
    IdentityInfo,
    Measurements,
    SectionSource,
    SectionType,
    archive_size,
    iter_archive,
    kernel_config_info,
    write_eif,
)
from package_format.errors import PackageFormatError

DEFAULT_BLOBS = Path("/usr/share/nitro_enclaves/blobs")
KERNEL_NAMES = {"x86_64": "bzImage", "aarch64": "Image"}
SERVER_PYTHON = "opt/nitro-bundles/python"
CONFIG_PATH = "etc/nitro-bundles/enclave.json"
CONFIG_FORMAT = "nitro-bundles/enclave-config/v1"
SERVER_PACKAGES = ("enclave", "package_format", "cli_shell")
# specs/enclave-image.md §5.3: the server's environment (the rootfs provides it) and its one
# entry, `enclave serve`, on the vsock port the host connects to (5005) and with the KMS relay
# at the parent's port 8000 (vsock-proxy's convention).
SERVER_VENV = "opt/nitro-bundles/venv"
SERVER_INTERPRETER = f"/{SERVER_VENV}/bin/python3"
SERVER_VSOCK_PORT = 5005
KMS_VSOCK_TARGET = "vsock:3:8000"
DEFAULT_CMD = (
    SERVER_INTERPRETER,
    *("-m", "enclave", "serve"),
    *("--vsock", str(SERVER_VSOCK_PORT)),
    *("--config", "/" + CONFIG_PATH),
    *("--workdir", "/run/nitro-bundles"),
)
DEFAULT_ENV = (
    f"PATH=/{SERVER_VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "PYTHONPATH=/" + SERVER_PYTHON,
    "PYTHONDONTWRITEBYTECODE=1",
    "NB_KMS_TARGET=" + KMS_VSOCK_TARGET,
)
BUILD_TOOL = "nitro-bundles-owner-tools"
MAX_CUSTOM_METADATA = 4096
CHUNK = 1 << 20


class BlobMissingError(InputError):
    """A kernel, cmdline, init, nsm.ko or kernel config blob is missing."""


class BuildInputError(InputError):
    """A build input is invalid (metadata file, build time, a file changed while read)."""


@dataclass(frozen=True)
class Blobs:
    """Paths of the nitro-cli blobs an image is built from."""

    kernel: Path
    cmdline: Path
    init: Path | None
    nsm_ko: Path | None
    kernel_config: Path | None


def find_blobs(
    blobs_dir: Path,
    arch: str,
    *,
    kernel: Path | None = None,
    cmdline: Path | None = None,
    init: Path | None = None,
    nsm_ko: Path | None = None,
    kernel_config: Path | None = None,
    need_bootstrap: bool = True,
) -> Blobs:
    """Resolve each blob: a single flag wins over `<blobs_dir>/<standard name>`.

    Raises:
        UsageError: unknown architecture.
        BlobMissingError: a needed blob is not a readable file.
    """
    if arch not in KERNEL_NAMES:
        raise UsageError(f"unknown architecture {arch!r} (x86_64 or aarch64)")
    kname = KERNEL_NAMES[arch]

    def pick(flag: Path | None, name: str, *, needed: bool) -> Path | None:
        path = flag if flag is not None else blobs_dir / name
        if not path.is_file():
            if not needed and flag is None:
                return None
            raise BlobMissingError(f"{path}: blob missing (set --blobs or --{_flag(name)})")
        return path

    k = pick(kernel, kname, needed=True)
    c = pick(cmdline, "cmdline", needed=True)
    assert k is not None
    assert c is not None
    return Blobs(
        kernel=k,
        cmdline=c,
        init=pick(init, "init", needed=need_bootstrap),
        nsm_ko=pick(nsm_ko, "nsm.ko", needed=need_bootstrap),
        kernel_config=pick(kernel_config, kname + ".config", needed=False),
    )


def _flag(name: str) -> str:
    return {"bzImage": "kernel", "Image": "kernel", "nsm.ko": "nsm-ko"}.get(name, name)


def parse_build_time(text: str) -> tuple[int, str]:
    """Parse `--build-time` (RFC 3339 or Unix seconds); return (epoch, RFC 3339 string).

    Raises:
        BuildInputError: neither form.
    """
    bad = f"--build-time {text!r}: not RFC 3339 with an offset or Unix seconds"
    try:
        if text.lstrip("-").isdigit():
            when = dt.datetime.fromtimestamp(int(text), dt.UTC)
        else:
            when = dt.datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError) as exc:
        raise BuildInputError(bad) from exc
    if when.tzinfo is None:
        raise BuildInputError(bad)
    return int(when.timestamp()), when.isoformat()


def enclave_config(
    owner_keys: list[bytes],
    min_versions: dict[str, str],
    kms_region: str | None,
    environments: list[AppEnvironment] | None = None,
) -> bytes:
    """Canonical `enclave.json` (sorted keys, no spaces, ASCII, no trailing newline).

    `environments` lists the rootfs's app environments (§5.5), sorted by SHA-256; None (an
    image without a rootfs, local backend only) writes `null`.

    Raises:
        UsageError: no owner key, or a key that is not 32 bytes.
    """
    if not owner_keys:
        raise UsageError("at least one --owner-key is required")
    keys: list[str] = []
    for key in owner_keys:
        if len(key) != 32:
            raise UsageError("owner keys must be 32-byte ed25519 public keys")
        if key.hex() not in keys:
            keys.append(key.hex())
    doc: dict[str, Any] = {
        "format": CONFIG_FORMAT,
        "environments": None
        if environments is None
        else [
            {"python": e.python, "sha256": e.sha256}
            for e in sorted(environments, key=lambda e: e.sha256)
        ],
        "owner_keys": keys,
        "min_bundle_versions": dict(sorted(min_versions.items())),
        "kms_region": kms_region,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def server_layer(config: bytes) -> list[RootEntry]:
    """Our layer: the enclave server's Python source and `enclave.json` (mtime 1492533000).

    Raises:
        BuildInputError: a server package cannot be located.
    """
    layer: list[RootEntry] = []
    for package in SERVER_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise BuildInputError(f"cannot locate the {package!r} package to embed")
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root.parent).as_posix()
            layer.append(
                RootEntry(
                    f"{SERVER_PYTHON}/{rel}",
                    stat.S_IFREG | 0o644,
                    path.stat().st_size,
                    opener=file_opener(path),
                )
            )
    layer.append(RootEntry(CONFIG_PATH, stat.S_IFREG | 0o644, len(config), data=config))
    return layer


@dataclass(frozen=True)
class BuildOptions:
    """Everything `build_eif` needs."""

    output: Path
    blobs: Blobs
    arch: str = "x86_64"
    rootfs: Path | None = None
    owner_keys: list[bytes] = field(default_factory=list)
    min_versions: dict[str, str] = field(default_factory=dict)
    kms_region: str | None = None
    name: str = "enclave"
    version: str = "1.0"
    custom_metadata: Any = None
    build_time: str | None = None
    normalize_mtime: bool | None = None
    env: list[str] = field(default_factory=list)
    ramdisks: list[Path] = field(default_factory=list)
    server_check: bool = True
    build_tool: str = BUILD_TOOL
    build_tool_version: str = "0.1.0"
    operating_system: str | None = None
    kernel_version: str | None = None


@dataclass(frozen=True)
class BuildResult:
    """What was written."""

    output: Path
    pcrs_path: Path
    measurements: Measurements
    size: int


def _file_section(stack: ExitStack, section_type: SectionType, path: Path) -> SectionSource:
    f: BinaryIO = stack.enter_context(path.open("rb", buffering=0))
    size = os.fstat(f.fileno()).st_size

    def chunks() -> Iterator[bytes]:
        while chunk := f.read(CHUNK):
            yield chunk

    return SectionSource(section_type, size, chunks())


def _metadata(opts: BuildOptions, now: dt.datetime) -> bytes:
    os_name, kver = opts.operating_system, opts.kernel_version
    if (os_name is None or kver is None) and opts.blobs.kernel_config is not None:
        text = opts.blobs.kernel_config.read_text(errors="replace")
        try:
            cfg_os, cfg_ver = kernel_config_info(text)
        except PackageFormatError as exc:
            raise BuildInputError(f"{opts.blobs.kernel_config}: {exc}") from exc
        os_name, kver = os_name or cfg_os, kver or cfg_ver
    if os_name is None or kver is None:
        raise BlobMissingError(
            "kernel config missing: give --kernel-config or --operating-system/--kernel-version"
        )
    build_time = opts.build_time
    if build_time is None:
        build_time = now.isoformat()
    return IdentityInfo(
        image_name=opts.name,
        image_version=opts.version,
        build=BuildMetadata(build_time, opts.build_tool, opts.build_tool_version, os_name, kver),
        custom_metadata=opts.custom_metadata,
    ).to_bytes()


def _ramdisk_sections(opts: BuildOptions, stack: ExitStack) -> list[SectionSource]:
    if opts.ramdisks:
        return [_file_section(stack, SectionType.RAMDISK, p) for p in opts.ramdisks]
    assert opts.blobs.init is not None
    assert opts.blobs.nsm_ko is not None
    boot = bootstrap_entries(opts.blobs.init, opts.blobs.nsm_ko)
    epoch: int | None = None
    if opts.build_time is not None:
        epoch, _ = parse_build_time(opts.build_time)
    normalize = opts.normalize_mtime if opts.normalize_mtime is not None else epoch is not None
    if normalize and epoch is None:
        epoch = LINUXKIT_MTIME
    # §5.3: the server layer owns its directory; a base's own (a stale unchecked .pyc, say,
    # which Python would run instead of the embedded source) is dropped.
    base = [
        e
        for e in load_rootfs(opts.rootfs, stack, epoch if normalize else None)
        if e.path != SERVER_PYTHON and not e.path.startswith(SERVER_PYTHON + "/")
    ]
    if opts.rootfs is not None and opts.server_check:
        # specs/enclave-image.md §5.3: an image whose server cannot start is refused.
        check_server_interpreter(base, SERVER_INTERPRETER, str(opts.rootfs))
    environments = None if opts.rootfs is None else find_environments(base, str(opts.rootfs))
    config = enclave_config(opts.owner_keys, opts.min_versions, opts.kms_region, environments)
    image = merge_layer(base, server_layer(config))
    env = [*DEFAULT_ENV, *opts.env]
    customer = list(customer_entries(image, list(DEFAULT_CMD), env))
    return [
        SectionSource(SectionType.RAMDISK, archive_size(boot), iter_archive(boot)),
        SectionSource(SectionType.RAMDISK, archive_size(customer), iter_archive(customer)),
    ]


def build_eif(opts: BuildOptions, now: dt.datetime | None = None) -> BuildResult:
    """Build the image and its `.pcrs.json`; nothing is left behind on failure.

    Raises:
        UsageError: bad option combination.
        InputError: missing blob, unreadable rootfs, bad metadata.
        OSError: the output directory is not writable.
    """
    clock = now or dt.datetime.now(dt.UTC)
    try:
        cmdline = opts.blobs.cmdline.read_bytes().decode().strip().encode()
    except UnicodeDecodeError as exc:
        raise BuildInputError(f"{opts.blobs.cmdline}: cmdline is not utf-8") from exc
    meta = _metadata(opts, clock)
    target_dir = opts.output.resolve().parent
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{opts.output.name}.", suffix=".partial", dir=target_dir
    )
    tmp = Path(tmp_name)
    try:
        with ExitStack() as stack:
            out = stack.enter_context(WritebackFile(fd))
            sections = [
                _file_section(stack, SectionType.KERNEL, opts.blobs.kernel),
                SectionSource.from_bytes(SectionType.CMDLINE, cmdline),
                SectionSource.from_bytes(SectionType.METADATA, meta),
                *_ramdisk_sections(opts, stack),
            ]
            try:
                result = write_eif(
                    out, sections, flags=FLAG_ARCH_ARM64 if opts.arch == "aarch64" else 0
                )
            except PackageFormatError as exc:
                raise BuildInputError(f"{opts.output}: {exc}") from exc
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # noqa: PTH101
        tmp.replace(opts.output)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    pcrs_path = opts.output.with_name(opts.output.name + ".pcrs.json")
    write_text_atomic(pcrs_path, measurements_text(result.measurements) + "\n")
    return BuildResult(opts.output, pcrs_path, result.measurements, result.size)


def measurements_text(m: Measurements, hash_algorithm: str | None = None) -> str:
    """`{"Measurements": ...}` as nitro-cli prints it (2-space indent)."""
    body = m.to_json() if hash_algorithm is None else m.to_json(hash_algorithm)
    return json.dumps({"Measurements": body}, indent=2)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same directory, fsync, rename.

    Raises:
        OSError: the directory is not writable.
    """
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".partial", dir=path.resolve().parent
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o644)  # noqa: PTH101
        Path(tmp_name).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp_name).unlink()
        raise


def load_custom_metadata(path: Path) -> Any:
    """Read `--metadata FILE`: a JSON document of at most 4096 bytes (as nitro-cli).

    Raises:
        BuildInputError: too large or not JSON.
    """
    data = path.read_bytes()
    if len(data) > MAX_CUSTOM_METADATA:
        raise BuildInputError(f"{path}: metadata over {MAX_CUSTOM_METADATA} bytes")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise BuildInputError(f"{path}: not valid json") from exc
