# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""specs/receipts.md §8: every vector gives its `expect` (ok or the failing step's class)."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest
from receipt_vectors import VECTORS, Vector, all_vectors

from package_format.receipt import (
    DocumentInvalidError,
    InputMismatchError,
    NonceMismatchError,
    OutputMismatchError,
    PcrMismatchError,
    ReceiptError,
    ReceiptFormatError,
    RecordHashMismatchError,
    verify_inputs,
    verify_outputs,
    verify_receipt,
)

EXPECT: dict[str, type[ReceiptError]] = {
    "format": ReceiptFormatError,
    "document": DocumentInvalidError,
    "pcr": PcrMismatchError,
    "record": RecordHashMismatchError,
    "nonce": NonceMismatchError,
    "output": OutputMismatchError,
    "input": InputMismatchError,
}


def opener(files: dict[str, bytes]) -> Callable[[str], BinaryIO | None]:
    def open_file(path: str) -> BinaryIO | None:
        return io.BytesIO(files[path]) if path in files else None

    return open_file


def check(vector: Vector) -> None:
    verified = verify_receipt(
        vector.receipt, root=vector.root, expect_pcrs={0: vector.pcr0}, nonce=vector.nonce
    )
    assert verify_outputs(verified.record, opener(vector.outputs)) == len(verified.record.outputs)
    assert verify_inputs(verified.record, opener(vector.inputs)) == len(verified.record.inputs)


@pytest.mark.parametrize("vector", all_vectors(), ids=lambda v: v.name)
def test_vector(vector: Vector) -> None:
    if vector.expect == "ok":
        check(vector)
        return
    with pytest.raises(EXPECT[vector.expect]) as caught:
        check(vector)
    # The step name is the `expect` class (specs/receipts.md §7), e.g. for the JSON report.
    assert caught.value.step == vector.expect


def test_every_expect_class_has_a_vector() -> None:
    seen = {v.expect for v in all_vectors()}
    assert seen == {"ok", *EXPECT}


def test_vectors_are_reproducible(tmp_path: Path) -> None:
    script = VECTORS.parent / "generate_receipts_vectors.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True)
    for path in VECTORS.iterdir():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in VECTORS.iterdir())
