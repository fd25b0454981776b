# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Every vector of tests/vectors/attestation/ gives its `expect:` (specs/attestation.md §13)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from vector_files import assert_regenerates, check_expect, files, read

from package_format.attestation import errors
from package_format.attestation.verify import verify_attestation

VECTORS = files("attestation")


def _verify(fields: dict[str, str], data: bytes) -> str:
    at = datetime.fromisoformat(fields["at"])
    document = verify_attestation(data, root=bytes.fromhex(fields["root"]), at=at)
    return document.pcrs[0].hex()


def test_vector_set_covers_every_attestation_error() -> None:
    expects = {read(p)[0]["expect"] for p in VECTORS}
    classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, errors.AttestationError)
        and value is not errors.AttestationError
        and value.__module__ == errors.__name__
        and not name.startswith("Cms")
    }
    assert classes <= expects
    assert "success" in expects


@pytest.mark.parametrize("path", VECTORS, ids=[p.name for p in VECTORS])
def test_attestation_vector(path: Path) -> None:
    fields, data = read(path)
    check_expect(fields, errors, lambda: _verify(fields, data), "pcr0")


def test_regenerated_vectors_are_byte_identical(tmp_path: Path) -> None:
    assert_regenerates("attestation", "attestation", tmp_path)
