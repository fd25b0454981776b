# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Every vector in tests/vectors/bundle/ gives its `expect:` result; the generator is stable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from _vectors import VECTOR_DIR, generator, open_bundle, read_vector, vector_files

from package_format.bundle import errors

VECTORS = vector_files()


def test_vector_set_is_not_empty() -> None:
    assert len(VECTORS) >= 20
    expects = {read_vector(p)[0]["expect"] for p in VECTORS}
    assert "success" in expects
    assert len(expects) >= 10


@pytest.mark.parametrize("path", VECTORS, ids=[p.name for p in VECTORS])
def test_vector(path: Path) -> None:
    fields, data = read_vector(path)
    expect = fields["expect"]
    if expect == "success":
        digests = open_bundle(fields, data)
        assert digests, "a success vector must hold at least one entry"
        return
    error_class = getattr(errors, expect)
    assert issubclass(error_class, Exception)
    with pytest.raises(error_class) as info:
        open_bundle(fields, data)
    assert type(info.value) is error_class
    message = str(info.value)
    assert message
    assert "\n" not in message
    assert not message.endswith(".")


def test_success_vector_contents_match_generator() -> None:
    gen = generator()
    fields, data = read_vector(VECTOR_DIR / "bundle_ok")
    digests = open_bundle(fields, data)
    expected = {p: hashlib.sha256(b).hexdigest() for p, b in gen.FILES.items()}
    assert {p: d for p, d in digests.items() if p in expected} == expected
    assert set(digests) - set(expected) == {"app", "data"}


def test_regenerated_vectors_are_byte_identical(tmp_path: Path) -> None:
    written = generator().generate(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in VECTORS)
    for path in written:
        assert path.read_bytes() == (VECTOR_DIR / path.name).read_bytes(), path.name
