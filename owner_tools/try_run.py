# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools try`: run a bundle as its image would, with full output (specs/owner-try.md).

The owner holds the plaintext, so nothing is withheld: the bundle is opened and checked as
the image's runner checks it (signature against the owner keys pinned in the image's
enclave.json, validity window, minimum version, declared entrypoint, arguments, the
manifest's `env` allow-list), then its entrypoint runs through the enclave's own runner, in
the same per-run view (`enclave.runner.view`), with the files of the owner's app folder in
place of the decrypted payload (the owner's KMS principal may not Decrypt: key-policy.md),
stdout and stderr always shown, outputs written to a local folder.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from enclave.app import (
    ImageConfig,
    ImageConfigError,
    load_image_config,
    reachable_environments,
)
from enclave.runner.api import BundleFacts, RunRequest
from enclave.runner.bundle import open_bundle
from enclave.runner.errors import RunError
from enclave.runner.runner import Runner, RunnerConfig
from owner_tools.errors import InputError
from package_format.bundle.manifest import FileEntry
from package_format.errors import PackageFormatError

CONFIG_NAME = "rootfs/etc/nitro-bundles/enclave.json"


class TryError(InputError):
    """The bundle, the image or the app folder cannot be tried (one line says why)."""


@dataclass(frozen=True)
class TryRequest:
    """One `owner-tools try`.

    Attributes:
        bundle: The packed bundle.
        image: The EIF it is meant for (its pinned owner keys and minimum versions).
        app: The owner's app folder the bundle was packed from.
        entrypoint: The entrypoint's name or path.
        args: Its arguments.
        env: `NAME=VALUE` items (names the manifest allows).
        dataset: The folder the run sees as /dataset (None: empty).
        model: The folder the run sees as /model (None: empty).
        output: Where the run's /output files are written (emptied first).
    """

    bundle: Path
    image: Path
    app: Path
    entrypoint: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    dataset: Path | None = None
    model: Path | None = None
    output: Path = Path("try-output")


def image_config(image: Path) -> ImageConfig:
    """Read the enclave.json the EIF carries (verified CRC and signature first).

    Raises:
        TryError: The image is unreadable, damaged, or has no usable enclave.json.
    """
    from package_format.eif import iter_cpio, read_eif  # noqa: PLC0415
    from package_format.eif.reader import SectionReader  # noqa: PLC0415

    data: bytes | None = None
    try:
        with image.open("rb") as f:
            eif = read_eif(f)
            eif.verify()
            for section in eif.ramdisks()[1:]:
                for member in iter_cpio(SectionReader(f, section), want=CONFIG_NAME.__eq__):
                    if member.name == CONFIG_NAME and member.data is not None:
                        data = member.data
    except OSError as exc:
        raise TryError(f"{image}: {exc.strerror or exc}") from exc
    except PackageFormatError as exc:
        raise TryError(f"{image}: {exc}") from exc
    if data is None:
        raise TryError(f"{image}: the image carries no {CONFIG_NAME.removeprefix('rootfs')}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "enclave.json"
        path.write_bytes(data)
        try:
            return load_image_config(path)
        except ImageConfigError as exc:
            raise TryError(str(exc).replace(str(path), f"{image}: enclave.json")) from exc


class _PlainBundle:
    """A verified bundle whose files come from the owner's app folder; all output allowed."""

    def __init__(self, facts: BundleFacts, files: Sequence[FileEntry], app: Path) -> None:
        self._facts = dataclasses.replace(
            facts, allow_stdout=True, allow_stderr=True, allow_files=True, max_files_size=1 << 50
        )
        self._files = files
        self._app = app

    @property
    def facts(self) -> BundleFacts:
        """The verified facts, every output allowed (the owner holds the plaintext)."""
        return self._facts

    def extract(self, data_key: bytes, dest: Path) -> None:
        del data_key
        for entry in self._files:
            source, target = self._app / entry.path, dest / entry.path
            if entry.kind == "dir":
                target.mkdir(mode=0o700, exist_ok=True)
                continue
            if source.is_symlink() or not source.is_file():
                raise TryError(f"{self._app}: {entry.path} of the bundle is missing")
            if source.stat().st_size != entry.size:
                raise TryError(
                    f"{self._app}: {entry.path} is not the packed file (size differs): repack"
                )
            shutil.copyfile(source, target)
            target.chmod(entry.mode)


class _LocalSession:
    """The runner's `SessionFiles` over local folders."""

    def __init__(self, request: TryRequest) -> None:
        self._request = request

    def open_file(self, path: str) -> IO[bytes]:
        del path
        return self._request.bundle.open("rb")

    def export_dir(self, name: str, dest: Path) -> None:
        source = {"dataset": self._request.dataset, "model": self._request.model}.get(name)
        if source is not None:
            shutil.copytree(source, dest, dirs_exist_ok=True, symlinks=True)

    def clear_dir(self, name: str) -> None:
        del name
        out = self._request.output
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)

    def import_dir(self, src: Path, name: str) -> list[str]:
        shutil.copytree(src, self._request.output, dirs_exist_ok=True)
        return sorted(
            f"{name}/{p.relative_to(src).as_posix()}" for p in src.rglob("*") if p.is_file()
        )


def try_bundle(request: TryRequest) -> tuple[int, tuple[str, ...]]:
    """Run `request`; return the entrypoint's exit status and the files it wrote.

    Raises:
        TryError: The image, bundle or app folder cannot be used.
        enclave.runner.errors.RunError: The image's runner refused or failed the run.
    """
    config = image_config(request.image)
    if not request.app.is_dir():
        raise TryError(f"{request.app}: no such app folder")

    def opener(stream: IO[bytes], trusted_keys: Sequence[bytes]) -> _PlainBundle:
        verified = open_bundle(stream, trusted_keys)
        files = verified._reader.header.manifest.files  # noqa: SLF001 - same file table
        return _PlainBundle(verified.facts, files, request.app)

    env = tuple((n, v) for n, _, v in (item.partition("=") for item in request.env))
    with tempfile.TemporaryDirectory(prefix="nb-try-", dir=_ram()) as work:
        runner = Runner(
            RunnerConfig(
                trusted_keys=config.owner_keys,
                work_base=Path(work),
                min_versions=config.min_versions,
                environments=reachable_environments(config.environments),
            ),
            opener,
            lambda *_: b"",  # the files come from the app folder: no key is needed
        )
        sink = _Sink()
        run = RunRequest(str(request.bundle), request.entrypoint, request.args, env=env)
        result = runner.run(run, _LocalSession(request), sink)
        runner.close()
    return result.exit_status, result.outputs


def _ram() -> str | None:
    # The run's private directory (mode 0700, tempfile) in RAM, as the local enclave's.
    shm = "/dev/shm"  # noqa: S108
    return shm if Path(shm).is_dir() else None


class _Sink:
    def stdout(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    def stderr(self, data: bytes) -> None:
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()


__all__ = ["RunError", "TryError", "TryRequest", "image_config", "try_bundle"]
