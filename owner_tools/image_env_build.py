# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`build-eif --app-requirements`: a rootfs with an app environment, cached (enclave-image.md §5.5).

Two steps, each failing in one line and leaving nothing behind:

1. on the host, `pip download --require-hashes --only-binary=:all: --no-deps` of the server's
   and the app's pins for the rootfs's CPython 3.13 on manylinux x86_64: a wheel that fails its
   hash or a pin with no such release fails here, in seconds, before any Debian work;
2. toolchain/rootfs/build.sh with those wheels (`--wheels`, no index), the app's file
   (`--app`) and each `--deb`, into a temporary sibling of the cache entry, renamed into place
   only when it succeeded (specs/toolchain.md §2's rule), so a present entry is complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from owner_tools.errors import UsageError
from owner_tools.image_env import (
    TARGET_PLATFORMS,
    TARGET_PYTHON,
    EnvironmentBuildError,
    cache_root,
    check_debs,
    read_requirements,
    rootfs_key,
    toolchain_dir,
)


@dataclass(frozen=True)
class AppRootfs:
    """A built (or cached) rootfs with an app environment."""

    path: Path
    key: str
    cached: bool
    log: Path


def pip_reason(output: str) -> str:
    """The line of pip's output that names what failed (a hash, a missing release)."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if "DO NOT MATCH THE HASHES" in line:
            for follow in lines[i + 1 :]:
                if "==" in follow or ".whl" in follow:
                    return "hash mismatch: " + follow.strip().rstrip(":")
    for line in lines:
        if line.startswith("ERROR: "):
            return line.removeprefix("ERROR: ").strip()[:300]
    return (lines[-1].strip() if lines else "pip failed")[:300]


def download_wheels(requirements: Sequence[tuple[str, Path]], dest: Path) -> None:
    """Fetch and hash-check every pinned wheel for the rootfs's Python into `dest`.

    Args:
        requirements: (what, file) pairs, e.g. ("server", server-requirements.txt).
        dest: An existing directory.

    Raises:
        EnvironmentBuildError: pip could not fetch a pin or a wheel failed its hash.
    """
    platforms = [arg for p in TARGET_PLATFORMS for arg in ("--platform", p)]
    for what, path in requirements:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-input"]
        cmd += ["--disable-pip-version-check", "--require-hashes", "--no-deps"]
        cmd += ["--only-binary=:all:", *platforms, "--python-version", TARGET_PYTHON]
        cmd += ["--implementation", "cp", "-d", str(dest), "-r", str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            reason = pip_reason(proc.stderr + proc.stdout)
            raise EnvironmentBuildError(f"{what} requirements {path}: {reason}")


def build_app_rootfs(
    requirements: Path,
    debs: Sequence[str],
    environ: Mapping[str, str] | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> AppRootfs:
    """Return the cached rootfs for these inputs, building it first when absent.

    Raises:
        EnvironmentInputError: Bad requirements or package names.
        EnvironmentBuildError: A download or the builder failed (one line, log path).
        UsageError: Not root, or the builder is missing.
    """
    env = os.environ if environ is None else environ
    data = read_requirements(requirements)
    packages = check_debs(debs)
    toolchain = toolchain_dir(env)
    key = rootfs_key(toolchain, data, packages)
    root = cache_root(env)
    final = root / f"rootfs-app-{key}"
    log = root / "logs" / f"rootfs-app-{key}.log"
    if final.is_dir():
        return AppRootfs(final, key, cached=True, log=log)
    if os.geteuid() != 0:
        raise UsageError(
            "--app-requirements builds a rootfs with mmdebstrap and chroot: run as root"
        )
    (root / "logs").mkdir(parents=True, exist_ok=True)
    with _locked(root):
        if final.is_dir():  # another build-eif made it while we waited
            return AppRootfs(final, key, cached=True, log=log)
        _build(toolchain, requirements, packages, final, log, progress)
    return AppRootfs(final, key, cached=False, log=log)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    with (root / ".app-rootfs.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build(  # noqa: PLR0917 - the build's parts
    toolchain: Path,
    requirements: Path,
    debs: Sequence[str],
    final: Path,
    log: Path,
    progress: Callable[[str], None],
) -> None:
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=".wheels-", dir=final.parent) as wheels:
        progress(f"checking the hashes of {requirements} and the server's pins")
        server = toolchain / "rootfs" / "server-requirements.txt"
        download_wheels([("app", requirements), ("server", server)], Path(wheels))
        progress(f"building the rootfs (a few minutes; log {log})")
        cmd = [str(toolchain / "rootfs" / "build.sh"), str(tmp), "--app", str(requirements)]
        cmd += [arg for deb in debs for arg in ("--deb", deb)]
        cmd += ["--wheels", wheels]
        try:
            with log.open("w", encoding="utf-8") as out:
                proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
            if proc.returncode == 0:
                tmp.rename(final)
        finally:
            if not final.is_dir() or tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        if proc.returncode != 0:
            raise EnvironmentBuildError(_builder_reason(log))


def _builder_reason(log: Path) -> str:
    """The builder's `[rootfs] error:` line, with where to read more."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    errors = [ln for ln in lines if ln.startswith("[rootfs] error: ")]
    what = errors[-1].removeprefix("[rootfs] error: ") if errors else "the rootfs builder failed"
    return f"{what} (log {log})"
