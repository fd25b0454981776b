# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Reading tests/vectors/rpc/ transcripts (shared by the codec and server tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

VECTOR_DIR = Path(__file__).resolve().parents[2] / "vectors" / "rpc"
GENERATOR = VECTOR_DIR.parent / "generate_rpc_vectors.py"


def vector_files() -> list[Path]:
    return sorted(p for p in VECTOR_DIR.iterdir() if p.is_file())


def read_vector(path: Path) -> tuple[dict[str, str], list[tuple[str, bytes]]]:
    text = path.read_text()
    head, _, body = text.partition("\n\n")
    fields = dict(line.split(": ", 1) for line in head.splitlines())
    lines = [(line[0], bytes.fromhex(line[2:])) for line in body.splitlines() if line]
    return fields, lines


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_rpc_vectors", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
