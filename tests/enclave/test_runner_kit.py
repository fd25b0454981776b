# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Shared helpers for the runner tests: real bundles, an in-memory session, a recording sink.

Bundles are built with package_format.bundle's writer and fixed keys; the KMS step is a fake
that hands back the data key, so these tests exercise everything but attestation.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from package_format.bundle import build_header, public_key_of, write_bundle
from package_format.bundle.manifest import (
    Entrypoint,
    Environment,
    EnvPolicy,
    FileEntry,
    Manifest,
    OutputPolicy,
)

OWNER_SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))
DATA_KEY = b"K" * 32
SALT = b"S" * 32
KEY_ID = "arn:aws:kms:us-east-1:111122223333:key/test"
WRAPPED = b"wrapped-data-key"
CREATED = 1_700_000_000


def owner_key() -> bytes:
    return public_key_of(OWNER_SEED)


def make_bundle(
    files: Mapping[str, bytes],
    *,
    entrypoints: tuple[tuple[str, str], ...] = (("main.py", "main.py"),),
    stdout: bool = True,
    stderr: bool = False,
    allow_files: bool = True,
    name: str = "demo",
    version: str = "1.0.0",
    not_before: int | None = None,
    expires: int | None = None,
    seed: bytes = OWNER_SEED,
    modes: Mapping[str, int] | None = None,
    max_run_seconds: int | None = None,
    env: EnvPolicy | None = None,
    modules: Mapping[str, str] | None = None,
    environment: str | None = None,
) -> bytes:
    """Return the bytes of a signed, sealed bundle holding `files`."""
    modes = modes or {}
    paths: set[str] = set()
    for path in files:
        parts = path.split("/")
        for i in range(1, len(parts)):
            paths.add("/".join(parts[:i]))
    rows = [FileEntry(p, 0, 0o755, "dir") for p in paths]
    rows += [FileEntry(p, len(data), modes.get(p, 0o644)) for p, data in files.items()]
    rows.sort(key=lambda r: tuple(r.path.split("/")))
    manifest = Manifest(
        name=name,
        version=version,
        created=CREATED,
        entrypoints=tuple(
            Entrypoint(name=n, path=p, module=(modules or {}).get(n)) for n, p in entrypoints
        ),
        output=OutputPolicy(
            stdout=stdout,
            stderr=stderr,
            files=allow_files,
            max_files_size=(1 << 30) if allow_files else 0,
        ),
        files=tuple(rows),
        not_before=not_before,
        expires=expires,
        max_run_seconds=max_run_seconds,
        env=env,
        environment=None if environment is None else Environment(environment),
    )
    header = build_header(
        manifest,
        kms_key_id=KEY_ID,
        encryption_context={},
        wrapped_key=WRAPPED,
        data_key=DATA_KEY,
        salt=SALT,
        signer=public_key_of(seed),
    )
    out = io.BytesIO()
    write_bundle(
        out,
        header,
        signing_key=seed,
        data_key=DATA_KEY,
        open_file=lambda entry: io.BytesIO(files[entry.path]),
    )
    return out.getvalue()


class DirSession:
    """A SessionFiles over a real directory (the runner's view of the session)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for name in ("encrypted", "dataset", "model", "output"):
            (root / name).mkdir(parents=True, exist_ok=True)

    def open_file(self, path: str) -> io.BufferedReader:
        return (self.root / path).open("rb")

    def export_dir(self, name: str, dest: Path) -> None:
        shutil.copytree(self.root / name, dest, dirs_exist_ok=True, symlinks=True)

    def clear_dir(self, name: str) -> None:
        for path in (self.root / name).iterdir():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    def import_dir(self, src: Path, name: str) -> list[str]:
        done = []
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src)
            target = self.root / name / rel
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                done.append(f"{name}/{rel}")
        return done


@dataclass
class RecordingSink:
    """Collects stdout and stderr; optional hook called on each stdout chunk."""

    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    on_stdout: object = None

    def stdout(self, data: bytes) -> None:
        self.out += data
        if callable(self.on_stdout):
            self.on_stdout(bytes(data))

    def stderr(self, data: bytes) -> None:
        self.err += data


class FakeKeyRelease:
    """Returns the data key and counts calls (the KMS step, without attestation)."""

    def __init__(self, key: bytes = DATA_KEY) -> None:
        self.key = key
        self.calls = 0

    def __call__(self, kms_key_id: str, wrapped_key: bytes, context: Mapping[str, str]) -> bytes:
        self.calls += 1
        assert kms_key_id == KEY_ID
        assert wrapped_key == WRAPPED
        return self.key


def scan_for(root: Path, needles: list[bytes]) -> list[Path]:
    """Every file under `root` whose bytes contain one of `needles`."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(n in data for n in needles):
                hits.append(path)
    return hits
