# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Read the vector sets of tests/vectors/ and regenerate them (layout: tests/vectors/vectorlib.py)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

VECTORS = Path(__file__).resolve().parent / "vectors"


def generator(name: str) -> ModuleType:
    """Load tests/vectors/generate_<name>_vectors.py (it imports vectorlib beside it)."""
    import sys

    if str(VECTORS) not in sys.path:
        sys.path.insert(0, str(VECTORS))
    path = VECTORS / f"generate_{name}_vectors.py"
    spec = importlib.util.spec_from_file_location(f"generate_{name}_vectors", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def files(spec_dir: str, prefix: str = "") -> list[Path]:
    """The vector files of one set, sorted; `prefix` selects one area (`eval_`)."""
    return sorted(p for p in (VECTORS / spec_dir).iterdir() if p.name.startswith(prefix))


def read(path: Path) -> tuple[dict[str, str], bytes]:
    """Header fields and body of one vector file."""
    head, _, body = path.read_bytes().partition(b"\n\n")
    fields = dict(line.split(": ", 1) for line in head.decode().splitlines())
    assert "expect" in fields, f"{path.name}: no expect field"
    return fields, body


def read_json(path: Path) -> tuple[dict[str, str], Any]:
    """Header fields and JSON body of one vector file."""
    fields, body = read(path)
    return fields, json.loads(body)


def assert_regenerates(name: str, spec_dir: str, tmp_path: Path) -> None:
    """The generator, run again, writes exactly the committed files, byte for byte."""
    written = generator(name).generate(tmp_path)
    committed = {p.name for p in (VECTORS / spec_dir).iterdir()}
    assert sorted(p.name for p in written) == sorted(committed)
    for path in written:
        assert path.read_bytes() == (VECTORS / spec_dir / path.name).read_bytes(), path.name


def check_expect(
    fields: dict[str, str], errors: ModuleType, run: Callable[[], object], result: str
) -> None:
    """`run()` gives the header fields named in `result` on `expect: success`, else raises
    exactly the class `expect` names in `errors` (a typed class per outcome, no string match).
    """
    if fields["expect"] == "success":
        assert run() == " ".join(fields[name] for name in result.split())
        return
    error_class = getattr(errors, fields["expect"])
    with pytest.raises(error_class) as info:
        run()
    assert type(info.value) is error_class
