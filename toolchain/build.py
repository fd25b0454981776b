#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Build the enclave toolchain (QEMU, kernel, init, blobs, rootfs) into a keyed cache.

    python3 toolchain/build.py [--cache DIR] [--only NAME ...] [--json] [--prune]

Every component lives in DIR/toolchain/<name>-<key>/, key = 16 hex of SHA-256 over its
inputs; it is built in a temporary sibling and renamed into place only on success, so a
cached directory is always complete and a warm run executes nothing. Each build's output
goes to DIR/toolchain/logs/<name>-<key>.log; the terminal gets progress lines only. The
run ends by writing DIR/toolchain/current.json atomically (specs/toolchain.md).

Python 3 standard library only: it runs before any venv exists. The components and their
keys are planned in cache_keys.py; the builds' logging is runlog.py's.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# Run as a script, this directory is on sys.path; loaded by path (the tests), it may not be.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cache_keys import (
    COMPONENTS,
    DEPENDS,
    FORMAT,
    SAMPLE_APP_REQUIREMENTS,
    Component,
    closure,
    compute_key,
    default_cache,
    input_files,
    plan,
)
from runlog import RUNNING, RUNNING_LOCK, Progress, ToolchainError, run_logged

# Re-exported: the tests load this script by path and reach the planning through it.
__all__ = [
    "COMPONENTS",
    "DEPENDS",
    "FORMAT",
    "SAMPLE_APP_REQUIREMENTS",
    "Component",
    "Run",
    "closure",
    "compute_key",
    "default_cache",
    "input_files",
    "main",
    "plan",
]

TOOLCHAIN = Path(__file__).resolve().parent
DEBIAN = "http://deb.debian.org/debian"
# An empty nsm.ko tells our init the NSM driver is built in (enclave-image.md §13.2 step 3).
NSM_PLACEHOLDER = b""
# The rootfs needs no builder and little CPU (downloads, dpkg): it runs beside the compiles.
BESIDE = ("rootfs",)
_APT_LOCK = threading.Lock()


def build_atomically(final: Path, make: Callable[[Path], None]) -> None:
    """Run `make` on an empty temporary sibling of `final`, then rename it to `final`.

    On any failure or interruption (KeyboardInterrupt included) the temporary directory is
    removed and `final` never appears, so a present component directory is a complete one.

    Args:
        final: Where the finished component goes; must not exist.
        make: Fills the directory it is given; raises on failure.
    """
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        make(tmp)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json_atomic(path: Path, value: object) -> None:
    """Write JSON to a temporary file, fsync it and rename it over `path`.

    Readers see the old file or the new one, never a partial one.

    Args:
        path: The destination.
        value: A JSON-serialisable value.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        data = json.dumps(value, indent=2, sort_keys=True) + "\n"
        with tmp.open("w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class Run:
    """One build.py run: where things go and what has been built."""

    cache: Path
    progress: Progress
    dirs: dict[str, Path]
    toolchain: Path = TOOLCHAIN

    @property
    def root(self) -> Path:
        """DIR/toolchain."""
        return self.cache / "toolchain"


def ensure_mmdebstrap(progress: Progress) -> None:
    """Install Debian's mmdebstrap when missing (as root), else fail with a hint.

    Raises:
        ToolchainError: It is missing and cannot be installed here.
    """
    with _APT_LOCK:  # the builder and the rootfs threads may both ask
        if not shutil.which("mmdebstrap"):
            _install_mmdebstrap(progress)


def _install_mmdebstrap(progress: Progress) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        msg = "mmdebstrap is missing: install it (apt-get install mmdebstrap) and run again"
        raise ToolchainError(msg)
    progress.line("installing mmdebstrap from Debian")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "mmdebstrap"]):
        if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=False).returncode:
            raise ToolchainError("could not install mmdebstrap with apt-get")


def builder_command(packages_txt: Path, out: Path) -> list[str]:
    """The mmdebstrap command that makes the builder tree (trixie, with deb-src lines)."""
    lines = packages_txt.read_text(encoding="utf-8").splitlines()
    packages = [p.strip() for p in lines if p.strip() and not p.lstrip().startswith("#")]
    return [
        "mmdebstrap",
        "--variant=buildd",
        "--components=main",
        f"--include={','.join(packages)}",
        "trixie",
        str(out),
        f"deb {DEBIAN} trixie main",
        f"deb-src {DEBIAN} trixie main",
    ]


def assemble_blobs(kernel: Path, init: Path, cmdline: Path, out: Path) -> None:
    """Lay out the `owner-tools build-eif --blobs` directory from our kernel and init.

    nsm.ko is empty: the NSM driver is built into the kernel (specs/toolchain.md §5).
    """
    shutil.copyfile(kernel / "bzImage", out / "bzImage")
    shutil.copyfile(kernel / "bzImage.config", out / "bzImage.config")
    shutil.copyfile(init / "init", out / "init")
    (out / "init").chmod(0o755)
    (out / "cmdline").write_bytes(cmdline.read_bytes().strip() + b"\n")
    (out / "nsm.ko").write_bytes(NSM_PLACEHOLDER)


def build_one(run: Run, comp: Component) -> bool:
    """Reuse or build one component; record its directory in `run.dirs`.

    Returns:
        False when it is skipped (its script, or a dependency, does not exist yet).

    Raises:
        ToolchainError: The build failed.
    """
    final = run.root / comp.dirname
    if final.is_dir():
        run.progress.line(f"{comp.name}: cached ({final})")
        run.dirs[comp.name] = final
        return True
    missing = [d for d in DEPENDS[comp.name] if d not in run.dirs]
    script = run.toolchain / comp.name / "build.sh"
    if missing:
        run.progress.line(f"{comp.name}: skipped, needs {', '.join(missing)}")
        return False
    if comp.name not in {"builder", "blobs"} and not script.is_file():
        rel = script.relative_to(run.toolchain.parent)
        run.progress.line(f"{comp.name}: skipped, {rel} does not exist yet")
        return False
    if os.geteuid() != 0 and comp.name != "blobs":
        msg = f"{comp.name} must be built as root (mmdebstrap, chroot); run build.py as root"
        raise ToolchainError(msg)
    log = run.root / "logs" / f"{comp.dirname}.log"
    log.unlink(missing_ok=True)
    run.progress.line(f"{comp.name}: building (log {log})")
    began = time.monotonic()

    def make(tmp: Path) -> None:
        if comp.name == "builder":
            ensure_mmdebstrap(run.progress)
            run_logged(builder_command(comp.inputs[0], tmp), log, comp.name, run.progress)
        elif comp.name == "blobs":
            cmdline = run.toolchain / "kernel" / "cmdline"
            assemble_blobs(run.dirs["kernel"], run.dirs["init"], cmdline, tmp)
        elif comp.name == "rootfs":
            ensure_mmdebstrap(run.progress)
            app = run.toolchain.parent / SAMPLE_APP_REQUIREMENTS
            run_logged([str(script), str(tmp), "--app", str(app)], log, comp.name, run.progress)
        else:
            cmd = [str(script), str(run.dirs["builder"]), str(tmp)]
            run_logged(cmd, log, comp.name, run.progress)

    build_atomically(final, make)
    minutes = (time.monotonic() - began) / 60
    run.progress.line(f"{comp.name}: built in {minutes:.1f} min ({final})")
    run.dirs[comp.name] = final
    return True


def entry(name: str, path: Path) -> dict[str, str]:
    """The current.json entry of one component."""
    out = {"dir": str(path)}
    if name == "qemu":
        out["bin"] = str(path / "bin" / "qemu-system-x86_64")
    return out


def write_current(run: Run) -> dict[str, dict[str, str]]:
    """Merge this run's components over the previous current.json and write it atomically."""
    path = run.root / "current.json"
    current: dict[str, dict[str, str]] = {}
    with contextlib.suppress(OSError, ValueError):
        old = json.loads(path.read_text(encoding="utf-8"))
        current = {k: v for k, v in old.items() if k in COMPONENTS and Path(v["dir"]).exists()}
    current.update({name: entry(name, d) for name, d in run.dirs.items()})
    write_json_atomic(path, current)
    return current


def prune(run: Run) -> None:
    """Delete cached versions of this run's components other than the current ones."""
    for name, keep in run.dirs.items():
        for old in run.root.glob(f"{name}-*"):
            if old != keep and old.is_dir():
                run.progress.line(f"{name}: pruning {old}")
                shutil.rmtree(old)


@contextlib.contextmanager
def locked(root: Path, progress: Progress) -> Iterator[None]:
    """Hold DIR/toolchain/.lock; clear temporaries a killed run left behind."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    with (root / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress.line("waiting for another build.py run on this cache")
            fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in root.glob(".*.tmp-*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        yield


def build_all(run: Run, comps: list[Component]) -> None:
    """Build the rootfs in a thread beside the compiled chain (builder, qemu, kernel...).

    Raises:
        ToolchainError: A component failed (the first failure is reported).
    """
    beside = [c for c in comps if c.name in BESIDE]
    chain = [c for c in comps if c.name not in BESIDE]
    with ThreadPoolExecutor(max_workers=1) as pool:
        side = pool.submit(lambda: [build_one(run, c) for c in beside])
        try:
            for comp in chain:
                build_one(run, comp)
        except BaseException:
            with RUNNING_LOCK:
                for proc in RUNNING:
                    proc.kill()
            raise
        side.result()


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line (specs/toolchain.md §2)."""
    p = argparse.ArgumentParser(prog="build.py", description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, help="cache directory (default $NB_CACHE_DIR)")
    p.add_argument("--only", nargs="+", choices=COMPONENTS, metavar="NAME", help="components")
    p.add_argument("--json", action="store_true", help="print current.json as the last line")
    p.add_argument("--prune", action="store_true", help="delete superseded cached versions")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    """Build what is missing; exit 0, 1 (a component failed) or 2 (usage)."""
    args = parse_args(argv)
    progress = Progress()
    cache = (args.cache or default_cache(os.environ)).resolve()
    run = Run(cache, progress, {})
    try:
        with locked(run.root, progress):
            comps = plan(TOOLCHAIN, args.only or list(COMPONENTS))
            progress.line(f"cache {run.root}: {', '.join(c.dirname for c in comps)}")
            build_all(run, comps)
            current = write_current(run)
            if args.prune:
                prune(run)
    except ToolchainError as exc:
        print(f"toolchain: error: {exc}", file=sys.stderr)  # noqa: T201 - the script's CLI
        return 1
    except KeyboardInterrupt:
        print("toolchain: interrupted; nothing half-built was kept", file=sys.stderr)  # noqa: T201
        return 130
    progress.line(f"done: {run.root / 'current.json'}")
    if args.json:
        print(json.dumps(current, sort_keys=True))  # noqa: T201 - --json: the last line
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
