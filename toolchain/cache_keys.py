# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
# ruff: noqa: INP001 - a module of the toolchain/build.py script, not of a package
"""The toolchain's components and their cache keys (specs/toolchain.md).

A component's key is 16 hex of SHA-256 over the format version, its name, its input files
(path, executable bit, content) and its dependencies' keys. Changing what a key covers
forces a rebuild of every cache (about 30 minutes on CI): keep this module's output stable.

Python 3 standard library only, like build.py.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

FORMAT = "nitro-bundles/toolchain/v1"
COMPONENTS = ("builder", "qemu", "kernel", "init", "blobs", "rootfs")
# What each component's key (and build) depends on besides its own files.
DEPENDS: dict[str, tuple[str, ...]] = {
    "builder": (),
    "qemu": ("builder",),
    "kernel": ("builder",),
    "init": ("builder",),
    "blobs": ("kernel", "init"),
    "rootfs": (),
}
# The default rootfs's app environment: the sample app's own hashed requirements
# (specs/toolchain.md §6), an input of the rootfs's key though it lives outside toolchain/.
SAMPLE_APP_REQUIREMENTS = Path("examples") / "ml_app" / "requirements.txt"


@dataclass(frozen=True)
class Component:
    """One planned component: its name, key and the files its key covers."""

    name: str
    key: str
    inputs: tuple[Path, ...]

    @property
    def dirname(self) -> str:
        """The component's directory name in the cache."""
        return f"{self.name}-{self.key}"


def default_cache(environ: dict[str, str] | os._Environ[str]) -> Path:
    """The cache directory when --cache is not given: $NB_CACHE_DIR, else XDG's.

    Args:
        environ: The process environment.

    Returns:
        The cache directory (the toolchain lives in its toolchain/ subdirectory).
    """
    if environ.get("NB_CACHE_DIR"):
        return Path(environ["NB_CACHE_DIR"])
    xdg = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "/root")) / ".cache")
    return Path(xdg) / "nitro-bundles"


def input_files(toolchain: Path, name: str) -> tuple[Path, ...]:
    """The repository files a component's key covers (sorted, absent ones skipped).

    Args:
        toolchain: The repository's toolchain/ directory.
        name: The component.

    Returns:
        The files, sorted by path.
    """
    shared = [toolchain / "in-builder.sh"]
    if name == "builder":
        own = [toolchain / "builder" / "packages.txt"]
    elif name == "blobs":
        own = [toolchain / "kernel" / "cmdline"]
    else:
        folder = toolchain / name
        own = [p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        # The cmdline is the blobs' input: editing it must not recompile the kernel.
        own = [p for p in own if p != toolchain / "kernel" / "cmdline"]
        if name == "rootfs":
            own.append(toolchain.parent / SAMPLE_APP_REQUIREMENTS)
    return tuple(sorted(p for p in [*shared, *own] if p.is_file()))


def compute_key(name: str, files: tuple[Path, ...], base: Path, deps: dict[str, str]) -> str:
    """Hash a component's inputs into its 16-hex cache key.

    Covers the format version, the name, each file's path relative to `base`, executable bit
    and content, and the dependencies' keys. Mtimes and the clone's location do not count.

    Args:
        name: The component.
        files: Its input files.
        base: The directory paths are taken relative to.
        deps: Dependency name to key.

    Returns:
        The first 16 hex digits of the SHA-256.
    """
    h = hashlib.sha256()
    h.update(f"{FORMAT}\0{name}\0".encode())
    for path in files:
        mode = "x" if os.access(path, os.X_OK) else "-"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        rel = Path(os.path.relpath(path, base)).as_posix()  # ../examples/... for the sample app
        h.update(f"file\0{rel}\0{mode}\0{digest}\0".encode())
    for dep in sorted(deps):
        h.update(f"dep\0{dep}\0{deps[dep]}\0".encode())
    return h.hexdigest()[:16]


def closure(names: list[str]) -> list[str]:
    """The named components plus everything they depend on, in build order.

    Args:
        names: Requested components.

    Returns:
        Components in COMPONENTS order.
    """
    wanted: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name not in wanted:
            wanted.add(name)
            stack.extend(DEPENDS[name])
    return [n for n in COMPONENTS if n in wanted]


def plan(toolchain: Path, names: list[str]) -> list[Component]:
    """Compute the keys of the named components and of their dependencies.

    Args:
        toolchain: The repository's toolchain/ directory.
        names: Requested components.

    Returns:
        The components in build order.
    """
    keys: dict[str, str] = {}
    out = []
    for name in closure(names):
        files = input_files(toolchain, name)
        keys[name] = compute_key(name, files, toolchain, {d: keys[d] for d in DEPENDS[name]})
        out.append(Component(name, keys[name], files))
    return out
