# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The rootfs's byte-compiled Python (specs/toolchain.md §6 step 6).

Reads the toolchain's rootfs (`$NB_ROOTFS`, else the toolchain cache's current.json) and
skips when none is built: every module of the stdlib and of every environment has its
unchecked-hash `.pyc` (no mtime in it, never checked against the source, so
`build-eif --build-time` cannot make it stale), and each `.pyc` holds the hash of the source
beside it.
"""

from __future__ import annotations

import _imp
import json
import os
from pathlib import Path

import pytest

TAG = "cpython-313"
#: PEP 552 flags: bit 0 hash-based, bit 1 check_source.
UNCHECKED_HASH = 0b01


def _rootfs() -> Path:
    if "NB_ROOTFS" in os.environ:
        return Path(os.environ["NB_ROOTFS"])
    base = os.environ.get("NB_CACHE_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nitro-bundles"
    )
    current = Path(base) / "toolchain" / "current.json"
    entry = json.loads(current.read_text()).get("rootfs", {}) if current.is_file() else {}
    if "dir" not in entry:
        pytest.skip("no rootfs built (set NB_ROOTFS or run toolchain/build.py)")
    return Path(entry["dir"])


def _sources(root: Path) -> list[Path]:
    dirs = [root / "usr/lib/python3.13", root / "opt/nitro-bundles"]
    # not through the venvs' lib64 -> lib links: each file once
    return sorted(p for d in dirs for p in d.rglob("*.py") if not p.is_symlink())


def _cached(source: Path) -> Path:
    return source.parent / "__pycache__" / f"{source.stem}.{TAG}.pyc"


def test_every_module_of_the_image_is_compiled() -> None:
    root = _rootfs()
    sources = _sources(root)
    site = [p for p in sources if "site-packages" in p.parts]
    assert len(sources) > 1000
    assert any("/app/" in str(p) for p in site)
    assert any("/venv/" in str(p) for p in site)
    missing = [str(p.relative_to(root)) for p in sources if not _cached(p).is_file()]
    assert missing == []


def test_no_pyc_records_an_mtime_or_checks_its_source() -> None:
    root = _rootfs()
    flags = {
        str(p.relative_to(root)): int.from_bytes(p.read_bytes()[4:8], "little")
        for p in root.rglob("*.pyc")
    }
    assert flags
    assert {path: f for path, f in flags.items() if f != UNCHECKED_HASH} == {}


def test_each_pyc_holds_the_hash_of_its_source() -> None:
    root = _rootfs()
    stale: list[str] = []
    for source in _sources(root):
        head = _cached(source).read_bytes()[:16]
        key = int.from_bytes(head[:4], "little")  # importlib keys the hash by the magic
        if _imp.source_hash(key, source.read_bytes()) != head[8:16]:
            stale.append(str(source.relative_to(root)))
    assert stale == []
