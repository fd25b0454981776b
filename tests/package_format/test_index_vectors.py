# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Every vector of tests/vectors/index/ gives its `expect:` (specs/distribution.md §8)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from vector_files import assert_regenerates, check_expect, files, read

from package_format import index as index_api
from package_format.index import check_not_rolled_back, index_digest, verify_index

VECTORS = files("index")


def _client(fields: dict[str, str], data: bytes) -> str:
    """The client's pull steps (specs/distribution.md §5) up to the version it installs."""
    now = datetime.strptime(fields["now"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    index = verify_index(data, bytes.fromhex(fields["owner key"]), name=fields["name"], now=now)
    trusted = fields.get("trusted version")
    check_not_rolled_back(
        index,
        index_digest(data),
        None if trusted is None else int(trusted),
        fields.get("trusted digest"),
    )
    version, _ = index.installable(fields.get("install"))
    return version


def test_vector_set_covers_every_index_error() -> None:
    expects = {read(p)[0]["expect"] for p in VECTORS}
    errors = {n for n in index_api.__all__ if n.endswith("Error")}
    assert expects == errors | {"success"}


@pytest.mark.parametrize("path", VECTORS, ids=[p.name for p in VECTORS])
def test_index_vector(path: Path) -> None:
    fields, data = read(path)
    check_expect(fields, index_api, lambda: _client(fields, data), "current")


def test_regenerated_vectors_are_byte_identical(tmp_path: Path) -> None:
    assert_regenerates("index", "index", tmp_path)
