# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Every vector of tests/vectors/enclave-image/ gives its `expect:` (specs/enclave-image.md §11)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from vector_files import assert_regenerates, check_expect, files, read

from package_format.eif import errors
from package_format.eif.reader import read_eif

VECTORS = files("enclave-image")


def _open(data: bytes) -> str:
    image = read_eif(io.BytesIO(data))
    image.verify()
    return f"{image.measurements.pcr0.hex()} {image.header.crc32:08x}"


def test_vector_set_covers_every_layout_error() -> None:
    expects = {read(p)[0]["expect"] for p in VECTORS}
    layout = {"EifMagicError", "EifTruncatedError", "EifVersionError", "EifSectionError"}
    assert expects >= layout | {"EifTooManySectionsError", "EifCrcError", "success"}


@pytest.mark.parametrize("path", VECTORS, ids=[p.name for p in VECTORS])
def test_enclave_image_vector(path: Path) -> None:
    fields, data = read(path)
    check_expect(fields, errors, lambda: _open(data), "pcr0 crc32")


def test_regenerated_vectors_are_byte_identical(tmp_path: Path) -> None:
    assert_regenerates("enclave_image", "enclave-image", tmp_path)
