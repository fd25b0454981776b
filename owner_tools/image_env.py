# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""App environments of an enclave image (specs/enclave-image.md §5.5, specs/toolchain.md §6.1).

An app environment is a venv at `/opt/nitro-bundles/app/<env-id>` holding exactly the pins of
one hashed `requirements.txt`, kept beside it; env-id is the first 16 hex of the file's
SHA-256 and the full SHA-256 names the environment in enclave.json and in a bundle's signed
manifest. `build_app_rootfs` makes such a rootfs with the toolchain's builder
(toolchain/rootfs/build.sh, no Docker), cached under the toolchain cache by its inputs;
`find_environments` reads the environments back out of any rootfs layer.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from owner_tools.errors import ExternalError, InputError, UsageError
from owner_tools.image_rootfs import RootEntry, RootfsError, resolve

ENV_BASE = "opt/nitro-bundles/app"
ENV_ID_HEX = 16
MAX_REQUIREMENTS = 1 << 20
KEY_FORMAT = "nitro-bundles/app-rootfs/v1"
#: The rootfs's CPython (Debian trixie) and the wheels that fit it (glibc 2.41, x86_64).
TARGET_PYTHON = "3.13"
TARGET_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(41, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
)
DEB_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_ID_RE = re.compile(rf"{re.escape(ENV_BASE)}/([0-9a-f]{{{ENV_ID_HEX}}})/requirements\.txt")


class EnvironmentInputError(InputError):
    """App requirements or a Debian package name that cannot make an environment."""


class EnvironmentBuildError(ExternalError):
    """The rootfs builder failed (a wheel's hash, an unresolved pin, a Debian package)."""


@dataclass(frozen=True)
class AppEnvironment:
    """One app environment of an image: its requirements' SHA-256 and its interpreter."""

    sha256: str
    python: str


def env_id(sha256: str) -> str:
    """The environment's directory name: the first 16 hex of its requirements' SHA-256."""
    return sha256[:ENV_ID_HEX]


def read_requirements(path: Path) -> bytes:
    """Read an app's `requirements.txt`: UTF-8, at most 1 MiB, every requirement hashed.

    Raises:
        EnvironmentInputError: Unreadable, too large, not text, or a requirement without
            `--hash` (pip's --require-hashes would refuse it later, after minutes of work).
    """
    try:
        with path.open("rb") as f:
            data = f.read(MAX_REQUIREMENTS + 1)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise EnvironmentInputError(f"{path}: cannot read the app requirements: {reason}") from exc
    if len(data) > MAX_REQUIREMENTS:
        raise EnvironmentInputError(f"{path}: app requirements over 1 MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvironmentInputError(f"{path}: app requirements are not utf-8 text") from exc
    for number, line in _logical_lines(text):
        if line.startswith("-"):
            raise EnvironmentInputError(
                f"{path}:{number}: options ({line.split()[0]}) are not allowed; "
                "only NAME==VERSION --hash=sha256:... lines"
            )
        if "==" not in line or "--hash=sha256:" not in line:
            raise EnvironmentInputError(
                f"{path}:{number}: {line.split()[0]!r} must be pinned with == and hashed "
                "(--hash=sha256:...)"
            )
    return data


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Requirement lines with continuations joined and comments dropped, and their numbers."""
    out: list[tuple[int, str]] = []
    current, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        if not current:
            start = number
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current = (current + line).strip()
        if current:
            out.append((start, current))
        current = ""
    if current.strip():
        out.append((start, current.strip()))
    return out


def check_debs(debs: Sequence[str]) -> list[str]:
    """Debian package names for `--deb`, checked and sorted (duplicates dropped).

    Raises:
        EnvironmentInputError: Not a Debian package name.
    """
    for deb in debs:
        if not DEB_RE.fullmatch(deb):
            raise EnvironmentInputError(f"--deb {deb!r}: not a Debian package name")
    return sorted(set(debs))


def find_environments(entries: Sequence[RootEntry], where: str) -> list[AppEnvironment]:
    """The app environments a rootfs layer holds, sorted by SHA-256 (§5.5).

    Each `opt/nitro-bundles/app/<env-id>/requirements.txt` is hashed; its env-id must be the
    first 16 hex of that hash and `bin/python3` beside must resolve to an executable file.

    Raises:
        RootfsError: A requirements file that does not match its directory, or an
            environment without an interpreter.
    """
    found: list[AppEnvironment] = []
    for entry in entries:
        match = _ID_RE.fullmatch(entry.path)
        if match is None or not stat.S_ISREG(entry.mode):
            continue
        digest = _entry_sha256(entry)
        if env_id(digest) != match.group(1):
            raise RootfsError(
                f"{where}: /{entry.path} does not hash to its environment's id {match.group(1)}"
            )
        python = f"/{ENV_BASE}/{match.group(1)}/bin/python3"
        target = resolve(entries, python)
        if target is None or not stat.S_ISREG(target.mode) or not target.mode & 0o111:
            raise RootfsError(f"{where}: app environment {match.group(1)} has no {python}")
        found.append(AppEnvironment(digest, python))
    return sorted(found, key=lambda e: e.sha256)


def _entry_sha256(entry: RootEntry) -> str:
    if entry.data is not None:
        return hashlib.sha256(entry.data).hexdigest()
    assert entry.opener is not None
    h = hashlib.sha256()
    with entry.opener() as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def toolchain_dir(environ: Mapping[str, str]) -> Path:
    """The directory of the rootfs builder: `$NB_TOOLCHAIN_DIR`, else the clone's `toolchain/`.

    owner-tools runs from a checkout, as `make setup` installs it.

    Raises:
        UsageError: No `rootfs/build.sh` there.
    """
    here = Path(
        environ.get("NB_TOOLCHAIN_DIR") or Path(__file__).resolve().parents[1] / "toolchain"
    )
    if not (here / "rootfs" / "build.sh").is_file():
        raise UsageError(
            f"{here}/rootfs/build.sh: the rootfs builder is missing (set NB_TOOLCHAIN_DIR)"
        )
    return here


def cache_root(environ: Mapping[str, str]) -> Path:
    """The toolchain cache (specs/toolchain.md §2): $NB_CACHE_DIR, else XDG's, else ~/.cache."""
    xdg = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "/root")) / ".cache")
    return Path(environ.get("NB_CACHE_DIR") or Path(xdg) / "nitro-bundles") / "toolchain"


def rootfs_key(toolchain: Path, requirements: bytes, debs: Sequence[str]) -> str:
    """16 hex of SHA-256 over the builder's files, the requirements' bytes and the debs.

    Covers `rootfs/build.sh`, `rootfs/server-requirements.txt` and `in-builder.sh` (path,
    executable bit, content), then the app's requirements and the sorted package names.
    """
    h = hashlib.sha256(f"{KEY_FORMAT}\0".encode())
    for rel in ("in-builder.sh", "rootfs/build.sh", "rootfs/server-requirements.txt"):
        path = toolchain / rel
        mode = "x" if os.access(path, os.X_OK) else "-"
        h.update(f"file\0{rel}\0{mode}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\0".encode())
    h.update(b"app\0" + hashlib.sha256(requirements).hexdigest().encode() + b"\0")
    for deb in sorted(set(debs)):
        h.update(f"deb\0{deb}\0".encode())
    return h.hexdigest()[:16]
