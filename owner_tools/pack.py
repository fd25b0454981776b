# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools pack`: app folder + bundle.toml -> signed, sealed bundle.

Walks the folder in the format's canonical order, asks the key service for a
data key bound to the encryption context, and streams the files into a temp
file beside the output, which is renamed into place only when complete. No
plaintext is written anywhere; on any failure the temp file is removed.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from owner_tools.errors import InputError
from owner_tools.kms.interface import KeyService
from owner_tools.writeback import QueuedWriter, WritebackFile
from package_format.bundle.config import BundleConfig, default_runtime, parse_bundle_toml
from package_format.bundle.header import BundleHeader
from package_format.bundle.limits import DEFAULT_SEGMENT_SIZE, DIR_MODE
from package_format.bundle.manifest import (
    Entrypoint,
    Environment,
    FileEntry,
    Manifest,
    check_name,
    check_version,
)
from package_format.bundle.paths import check_path, path_sort_key
from package_format.bundle.signing import public_key_of
from package_format.bundle.writer import build_header, write_bundle
from package_format.errors import PackageFormatError

MAX_MANIFEST_FILE = 1 << 20
#: Sealed segments queued for the writing thread.
WRITE_DEPTH = 2


class AppFolderError(InputError):
    """The app folder holds something a bundle cannot carry (special file, escaping link)."""


class ManifestFileError(InputError):
    """bundle.toml is missing, unreadable or invalid, or the overrides make it invalid."""


class OutputExistsError(InputError):
    """The output file exists and replacing it was not asked for."""


@dataclass(frozen=True)
class Overrides:
    """Command-line values that replace bundle.toml's."""

    name: str | None = None
    version: str | None = None
    entrypoints: tuple[str, ...] = ()
    kind: str | None = None


@dataclass(frozen=True)
class PackResult:
    """What pack produced."""

    output: Path
    header: BundleHeader
    bundle_size: int


def load_config(path: Path, overrides: Overrides) -> BundleConfig:
    """Read bundle.toml (if it exists) and apply the overrides.

    Raises:
        ManifestFileError: Unreadable or invalid file, or invalid override.
    """
    if path.exists():
        try:
            with path.open("rb") as f:
                raw = f.read(MAX_MANIFEST_FILE + 1)
            config = parse_bundle_toml(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ManifestFileError(f"{path}: not utf-8 text") from exc
        except PackageFormatError as exc:
            message = str(exc).removeprefix("bundle.toml: ")
            raise ManifestFileError(f"{path}: {message}") from exc
    elif overrides.name and overrides.version and overrides.entrypoints:
        config = BundleConfig()
    else:
        raise ManifestFileError(f"{path}: no such file", field="manifest", hint="manifest-or-flags")
    config = _apply_overrides(config, overrides)
    for field in ("name", "version"):
        if not getattr(config, field):
            raise ManifestFileError(f"{path}: {field} is required")
    _check_kind(config, path)
    return config


def _environment(app_dir: Path, config: BundleConfig) -> Environment | None:
    """The manifest's environment: SHA-256 of `[environment] requirements` (§5.8).

    Raises:
        ManifestFileError: The file is missing or not a hashed requirements file.
    """
    if config.environment_requirements is None:
        return None
    from owner_tools.image_env import EnvironmentInputError, read_requirements  # noqa: PLC0415

    path = app_dir / config.environment_requirements
    try:
        data = read_requirements(path)
    except EnvironmentInputError as exc:
        raise ManifestFileError(f"environment: {exc}") from exc
    return Environment(hashlib.sha256(data).hexdigest())


def _check_kind(config: BundleConfig, path: Path) -> None:
    """An app needs entrypoints, a data bundle apps (specs/bundle-format.md §5.7)."""
    if config.kind == "data":
        if not config.apps:
            raise ManifestFileError(f"{path}: a data bundle needs at least one [[apps]]")
    elif config.apps or config.terms is not None:
        raise ManifestFileError(f"{path}: [[apps]] and [terms] are for a data bundle (--data)")
    elif not config.entrypoints:
        raise ManifestFileError(f"{path}: at least one [[entrypoints]] is required")


def _apply_overrides(config: BundleConfig, overrides: Overrides) -> BundleConfig:
    try:
        if overrides.kind == "data" and (config.entrypoints or config.data or config.env):
            raise ManifestFileError("--data: bundle.toml declares entrypoints, data or env")
        if overrides.kind == "data" and overrides.entrypoints:
            raise ManifestFileError("--data: a data bundle has no --entrypoint")
        if overrides.kind is not None:
            config = replace(config, kind=overrides.kind)
        if overrides.name:
            config = replace(config, name=check_name(overrides.name, "--name"))
        if overrides.version:
            config = replace(config, version=check_version(overrides.version, "--version"))
        if overrides.entrypoints:
            entries = tuple(
                Entrypoint(name=p, path=p, runtime=default_runtime(p))
                for p in overrides.entrypoints
            )
            config = replace(config, entrypoints=entries)
    except PackageFormatError as exc:
        raise ManifestFileError(str(exc)) from exc
    return config


def _excluded(rel: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(rel, p) for p in patterns)


def collect_files(
    app_dir: Path, exclude: Sequence[str] = (), skip: Sequence[Path] = ()
) -> list[tuple[FileEntry, Path | None]]:
    """Walk `app_dir`; return file-table rows in canonical order with their sources.

    Symlinks are followed only to regular files inside `app_dir`; anything else
    that is not a regular file or directory is refused.

    Raises:
        AppFolderError: Special files, links leaving the folder, unsafe names.
    """
    root = app_dir.resolve()
    if not root.is_dir():
        raise AppFolderError(f"{app_dir}: not a directory")
    skipped = {p.resolve() for p in skip}
    return [_row(root, rel, path) for rel, path in _walk(root, "", exclude, skipped)]


def _row(root: Path, rel: str, path: Path) -> tuple[FileEntry, Path | None]:
    info = path.lstat()
    source = path
    if stat.S_ISLNK(info.st_mode):
        source = path.resolve()
        if not source.is_relative_to(root) or not source.is_file():
            raise AppFolderError(f"{rel}: symbolic link leads outside the app folder")
        info = source.stat()
    if stat.S_ISDIR(info.st_mode):
        return FileEntry(rel, 0, DIR_MODE, "dir"), None
    if stat.S_ISREG(info.st_mode):
        mode = 0o755 if info.st_mode & 0o111 else 0o644
        return FileEntry(rel, info.st_size, mode), source
    raise AppFolderError(f"{rel}: not a regular file or directory")


def _walk(
    directory: Path, prefix: str, exclude: Sequence[str], skipped: set[Path]
) -> Iterator[tuple[str, Path]]:
    """Yield (relative path, path) in canonical order, not entering excluded folders."""
    with os.scandir(directory) as it:
        names = sorted((e.name for e in it), key=path_sort_key)
    for name in names:
        rel = f"{prefix}{name}"
        path = directory / name
        if _excluded(rel, exclude) or path in skipped:
            continue
        try:
            check_path(rel, "app folder")
        except PackageFormatError as exc:
            raise AppFolderError(f"{rel!r}: {exc}") from exc
        yield rel, path
        if path.is_dir() and not path.is_symlink():
            yield from _walk(path, rel + "/", exclude, skipped)


def pack(
    app_dir: Path,
    output: Path,
    *,
    config: BundleConfig,
    key_id: str,
    signing_key: bytes,
    kms: KeyService,
    created: int,
    manifest_path: Path | None = None,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    now: int | None = None,
) -> PackResult:
    """Pack `app_dir` into `output` (written atomically).

    `now` (seconds; the CLI passes the clock) refuses a manifest whose `expires` has already
    passed: every enclave would refuse that bundle (specs/bundle-format.md §5.1).

    Raises:
        OutputExistsError: `output` exists and `force` is false.
        AppFolderError: The folder holds something a bundle cannot carry.
        ManifestFileError: The manifest is invalid for this folder, or already expired.
        KmsError: The key service failed.
        PackageFormatError: A file changed while packing, or a limit was hit.
    """
    _check_output(output, config, force=force, now=now)
    skip = [output] + ([manifest_path] if manifest_path is not None else [])
    rows = collect_files(app_dir, config.exclude, skip)
    manifest = _manifest(app_dir, config, created, tuple(e for e, _ in rows))
    context = _encryption_context(manifest, config)
    data_key, wrapped = kms.generate_data_key(key_id, context)
    header = build_header(
        manifest,
        kms_key_id=key_id,
        encryption_context=context,
        wrapped_key=wrapped,
        data_key=data_key,
        salt=os.urandom(32),
        signer=public_key_of(signing_key),
        segment_size=segment_size,
    )
    sources = {e.path: p for e, p in rows if p is not None}

    @contextlib.contextmanager
    def open_file(entry: FileEntry) -> Iterator[io.FileIO]:
        with sources[entry.path].open("rb", buffering=0) as f:
            yield f

    size = _write_atomically(
        output,
        lambda out: write_bundle(
            out, header, signing_key=signing_key, data_key=data_key, open_file=open_file,
            progress=progress, out_buffers=WRITE_DEPTH + 2,
        ),
    )  # fmt: skip
    return PackResult(output=output, header=header, bundle_size=size)


def _check_output(output: Path, config: BundleConfig, *, force: bool, now: int | None) -> None:
    """Refuse to overwrite without `force`, or to pack a manifest that has expired (§5.1).

    Raises:
        OutputExistsError: `output` exists and `force` is false.
        ManifestFileError: `expires` is not after `now`.
    """
    if (output.exists() or output.is_symlink()) and not force:
        raise OutputExistsError(f"{output}: already exists", field="output", hint="overwrite")
    if now is not None and config.expires is not None and config.expires <= now:
        when = datetime.fromtimestamp(config.expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise ManifestFileError(
            f"manifest: expires {when} has already passed; every enclave would refuse "
            "this bundle (set a later expires)"
        )


def _manifest(
    app_dir: Path, config: BundleConfig, created: int, files: tuple[FileEntry, ...]
) -> Manifest:
    """The manifest of `config` over the collected file table (specs/bundle-format.md §5).

    Raises:
        ManifestFileError: A rule of §5 is broken.
    """
    try:
        return Manifest(
            name=config.name or "",
            version=config.version or "",
            created=created,
            entrypoints=config.entrypoints,
            output=config.output,
            files=files,
            not_before=config.not_before,
            expires=config.expires,
            max_run_seconds=config.max_run_seconds,
            env=config.env,
            environment=_environment(app_dir, config),
            kind=config.kind,
            data=config.data,
            apps=config.apps,
            terms=config.terms,
        )
    except PackageFormatError as exc:
        raise ManifestFileError(f"manifest: {exc}") from exc


def _encryption_context(manifest: Manifest, config: BundleConfig) -> dict[str, str]:
    """The data key's context: the bundle's name and version, its kind for data (§4.3).

    Raises:
        ManifestFileError: bundle.toml sets one of the names pack sets.
    """
    reserved = {"bundle", "version", "kind"} & set(config.encryption_context)
    if reserved:
        raise ManifestFileError(f"encryption_context: {min(reserved)!r} is set by pack")
    context = {"bundle": manifest.name, "version": manifest.version, **config.encryption_context}
    if manifest.kind == "data":  # §4.3: a data key is bound to its kind too
        context["kind"] = "data"
    return context


def _write_atomically(output: Path, write: Callable[[QueuedWriter], int]) -> int:
    """Write to a temp file in the target directory, fsync, rename; clean up on failure.

    The writes happen in a `QueuedWriter` thread (reading and sealing go on meanwhile) over a
    `WritebackFile` (the disk works during the pass, so the final fsync is short).
    """
    directory = output.parent
    fd = -1
    temp = directory / f".{output.name}.{os.getpid()}.partial"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with WritebackFile(fd, "w") as raw:
            fd = -1
            out = QueuedWriter(raw, WRITE_DEPTH)
            try:
                size = write(out)
            finally:
                with contextlib.suppress(OSError):
                    out.close()  # on success, closed again below to surface a write error
            out.close()
            os.fsync(raw.fileno())
        temp.replace(output)
    except BaseException as exc:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
            # The user named `output`; the temporary name means nothing to them.
            raise OSError(exc.errno, exc.strerror, str(output)) from exc
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return size
