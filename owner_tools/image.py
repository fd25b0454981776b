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
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from owner_tools.errors import InputError, UsageError
from owner_tools.image_env import find_environments
from owner_tools.image_inputs import (
    DEFAULT_BLOBS,
    KERNEL_NAMES,
    BlobMissingError,
    Blobs,
    BuildInputError,
    find_blobs,
    load_custom_metadata,
    parse_build_time,
)
from owner_tools.image_ramdisk import bootstrap_entries, customer_entries
from owner_tools.image_rootfs import check_server_interpreter, load_rootfs, merge_layer
from owner_tools.image_server import (
    CONFIG_PATH,
    DEFAULT_CMD,
    DEFAULT_ENV,
    SERVER_INTERPRETER,
    SERVER_PYTHON,
    enclave_config,
    server_layer,
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
from package_format.eif.hashing import Chunk
from package_format.errors import PackageFormatError

# Re-exported: the CLI, tests and benchmarks import the build's parts from here.
__all__ = [
    "CONFIG_PATH",
    "DEFAULT_BLOBS",
    "DEFAULT_CMD",
    "DEFAULT_ENV",
    "KERNEL_NAMES",
    "SERVER_PYTHON",
    "BlobMissingError",
    "Blobs",
    "BuildInputError",
    "BuildOptions",
    "BuildResult",
    "InputError",
    "UsageError",
    "build_eif",
    "enclave_config",
    "find_blobs",
    "load_custom_metadata",
    "measurements_text",
    "parse_build_time",
    "server_layer",
    "write_text_atomic",
]

BUILD_TOOL = "nitro-bundles-owner-tools"
CHUNK = 1 << 20


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


def build_eif(
    opts: BuildOptions,
    now: dt.datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BuildResult:
    """Build the image and its `.pcrs.json`; nothing is left behind on failure.

    Args:
        opts: What to build.
        now: The build time when `opts.build_time` is not set (default: the clock).
        progress: Called as `(done, total)` section bytes are streamed into the image.

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
            if progress is not None:
                sections = _counted(sections, progress)
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


def _counted(
    sections: list[SectionSource], progress: Callable[[int, int], None]
) -> list[SectionSource]:
    """The same sections, reporting (bytes pulled so far, all sections' bytes) per chunk."""
    total = sum(s.size for s in sections)
    done = 0

    def count(chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        nonlocal done
        for chunk in chunks:
            done += len(chunk)
            progress(done, total)
            yield chunk

    return [SectionSource(s.type, s.size, count(s.chunks)) for s in sections]


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
