# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""What every vector generator shares: the file layout, fixed randomness, writing a set.

One scenario per file (age's layout, STYLE.md §4): `key: value` header lines, `expect:`
first (`success`, a decision, or the name of the error class the scenario raises), a blank
line, then the body (raw bytes, or canonical JSON for decisions). Generators take no
randomness from the machine: `rand` is SHA-256 in counter mode over a label, so running a
generator twice gives identical files, and `make vectors-check` can diff them.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

#: One scenario: file name, header fields (`expect` first), body bytes.
Vector = tuple[str, dict[str, str], bytes]


def rand(label: str, size: int) -> bytes:
    """Deterministic test randomness: SHA-256 in counter mode over a label."""
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"TEST RANDOMNESS {label} {counter}".encode()).digest()
        counter += 1
    return out[:size]


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and two-space indent, one trailing newline: stable bytes."""
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def render(fields: dict[str, str], body: bytes) -> bytes:
    """One vector file: `expect` first, the other header fields, a blank line, the body."""
    assert "expect" in fields, "every vector needs an expect field"
    assert all("\n" not in f"{k}{v}" for k, v in fields.items())
    lines = [f"expect: {fields['expect']}"]
    lines += [f"{k}: {v}" for k, v in fields.items() if k != "expect"]
    return ("\n".join(lines) + "\n\n").encode() + body


def parse(raw: bytes) -> tuple[dict[str, str], bytes]:
    """Split a vector file into its header fields and body."""
    head, _, body = raw.partition(b"\n\n")
    fields = dict(line.split(": ", 1) for line in head.decode().splitlines())
    return fields, body


def write_all(out: Path, vectors: Iterable[Vector]) -> list[Path]:
    """Write every vector into `out` (created), refusing duplicate names; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, fields, body in vectors:
        path = out / name
        assert path not in written, f"two scenarios named {name}"
        path.write_bytes(render(fields, body))
        written.append(path)
    return written


def main(default_out: Path, generate: Callable[[Path], list[Path]]) -> None:
    """`generate_X_vectors.py [OUT_DIR]`: write the set, print each path."""
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else default_out
    for path in generate(target):
        print(path)
