# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Every vector of tests/vectors/enclave-image/ gives its `expect:` (specs/enclave-image.md §11)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from vector_files import assert_regenerates, files, read

from package_format.eif import errors
from package_format.eif.reader import read_eif

VECTORS = files("enclave-image")


def _open(data: bytes) -> tuple[str, str]:
    image = read_eif(io.BytesIO(data))
    image.verify()
    return image.measurements.pcr0.hex(), f"{image.header.crc32:08x}"


def test_vector_set_covers_every_layout_error() -> None:
    expects = {read(p)[0]["expect"] for p in VECTORS}
    layout = {"EifMagicError", "EifTruncatedError", "EifVersionError", "EifSectionError"}
    assert expects >= layout | {"EifTooManySectionsError", "EifCrcError", "success"}


@pytest.mark.parametrize("path", VECTORS, ids=[p.name for p in VECTORS])
def test_enclave_image_vector(path: Path) -> None:
    fields, data = read(path)
    if fields["expect"] == "success":
        assert _open(data) == (fields["pcr0"], fields["crc32"])
        return
    error_class = getattr(errors, fields["expect"])
    with pytest.raises(error_class) as info:
        _open(data)
    assert type(info.value) is error_class


def test_regenerated_vectors_are_byte_identical(tmp_path: Path) -> None:
    assert_regenerates("enclave_image", "enclave-image", tmp_path)
