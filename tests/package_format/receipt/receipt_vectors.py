# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Read tests/vectors/receipts/ files (format: tests/vectors/generate_receipts_vectors.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "receipts"


@dataclass
class Vector:
    name: str
    expect: str
    receipt: bytes
    root: bytes
    pcr0: bytes
    nonce: bytes | None
    outputs: dict[str, bytes] = field(default_factory=dict)
    inputs: dict[str, bytes] = field(default_factory=dict)


def load(path: Path) -> Vector:
    head, _, body = path.read_bytes().partition(b"\n\n")
    fields: dict[str, str] = {}
    outputs: dict[str, bytes] = {}
    inputs: dict[str, bytes] = {}
    for line in head.decode().splitlines():
        key, _, value = line.partition(": ")
        if key.startswith("output "):
            outputs[key.removeprefix("output ")] = bytes.fromhex(value)
        elif key.startswith("input "):
            inputs[key.removeprefix("input ")] = bytes.fromhex(value)
        else:
            fields[key] = value
    nonce = None if fields["nonce"] == "none" else bytes.fromhex(fields["nonce"])
    return Vector(
        path.name,
        fields["expect"],
        body,
        bytes.fromhex(fields["root"]),
        bytes.fromhex(fields["pcr0"]),
        nonce,
        outputs,
        inputs,
    )


def all_vectors() -> list[Vector]:
    found = [load(p) for p in sorted(VECTORS.iterdir())]
    assert found, f"no vectors in {VECTORS}"
    return found


def named(name: str) -> Vector:
    return load(VECTORS / name)
