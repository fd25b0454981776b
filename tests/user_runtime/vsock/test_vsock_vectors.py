# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Every vector of tests/vectors/vsock/ gives its `expect:` (specs/vsock.md §4.3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from vector_files import assert_regenerates, files, read

from user_runtime.vsock import errors
from user_runtime.vsock.packet import HEADER_SIZE, parse_header

VECTORS = files("vsock")
# specs/vsock.md §4.1, the example as the spec prints it.
SPEC_EXAMPLE = (
    "1000000000000000 0300000000000000 d2040000 28230000 00000000 0100 0100 00000000 00000400"
    " 00000000"
)


def test_the_specs_example_is_the_request_vector() -> None:
    _, data = read(next(p for p in VECTORS if p.name == "header_request"))
    assert data.hex() == SPEC_EXAMPLE.replace(" ", "")


@pytest.mark.parametrize("path", VECTORS, ids=[p.name for p in VECTORS])
def test_vsock_vector(path: Path) -> None:
    fields, data = read(path)
    if fields["expect"] == "success":
        parsed = parse_header(data)
        assert parsed.op.name == fields["op"]
        assert parsed.to_bytes() == data[:HEADER_SIZE]
        return
    error_class = getattr(errors, fields["expect"])
    with pytest.raises(error_class) as info:
        parse_header(data)
    assert type(info.value) is error_class


def test_regenerated_vectors_are_byte_identical(tmp_path: Path) -> None:
    assert_regenerates("vsock", "vsock", tmp_path)
