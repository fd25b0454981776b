# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Property: decode(encode(h)) == h and re-encoding is byte-identical, seeded from vectors."""

from __future__ import annotations

import dataclasses
import io

from _vectors import generator, read_vector, vector_files
from hypothesis import given, settings
from hypothesis import strategies as st

from package_format.bundle.errors import PackageFormatError
from package_format.bundle.header import BundleHeader, read_header
from package_format.bundle.manifest import Entrypoint, FileEntry

GEN = generator()


def _seed_headers() -> list[BundleHeader]:
    seeds = []
    for path in vector_files():
        fields, data = read_vector(path)
        if fields["expect"] == "success":
            seeds.append(read_header(io.BytesIO(data)).header)
    return seeds


SEEDS = _seed_headers()
SEED_BYTES = [h.encode() for h in SEEDS]

name = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)
component = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/\\\x7f", min_codepoint=0x21),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in {".", ".."})
files = st.lists(
    st.tuples(component, st.integers(0, 1 << 40), st.sampled_from([0o644, 0o755])),
    min_size=1,
    max_size=8,
    unique_by=lambda t: t[0],
)
version = st.builds(
    lambda a, b, c, pre: f"{a}.{b}.{c}" + (f"-{pre}" if pre else ""),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
    st.sampled_from(["", "rc.1", "alpha", "0.3.x"]),
)


def test_seed_set_is_not_empty() -> None:
    assert len(SEEDS) >= 3


@settings(max_examples=150, deadline=None)
@given(
    seed=st.sampled_from(SEEDS),
    new_name=name,
    new_version=version,
    new_files=files,
    extra=st.dictionaries(name, st.text(max_size=20), max_size=4),
)
def test_header_round_trip(
    seed: BundleHeader,
    new_name: str,
    new_version: str,
    new_files: list[tuple[str, int, int]],
    extra: dict[str, str],
) -> None:
    import unicodedata

    table = sorted({unicodedata.normalize("NFC", p): (s, m) for p, s, m in new_files}.items())
    entries = tuple(FileEntry(p, s, m) for p, (s, m) in table)
    manifest = dataclasses.replace(
        seed.manifest,
        name=new_name,
        version=new_version,
        files=entries,
        # A data bundle (bundle-format.md §5.7) has no entrypoints.
        entrypoints=()
        if seed.manifest.kind == "data"
        else (Entrypoint("main", entries[0].path, "python"),),
    )
    context = {k: v for k, v in extra.items() if k not in {"bundle", "version", "kind"}}
    if seed.manifest.kind == "data":
        context["kind"] = "data"
    header = dataclasses.replace(
        seed,
        manifest=manifest,
        payload_size=manifest.payload_size,
        encryption_context={**context, "bundle": new_name, "version": new_version},
    )
    encoded = header.encode()
    decoded = BundleHeader.decode(encoded)
    assert decoded == header
    assert decoded.encode() == encoded


@settings(max_examples=300, deadline=None)
@given(seed=st.sampled_from(SEED_BYTES), data=st.data())
def test_mutated_header_is_rejected_or_canonical(seed: bytes, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, len(seed) - 1))
    value = data.draw(st.integers(0, 255))
    mutated = seed[:offset] + bytes([value]) + seed[offset + 1 :]
    try:
        header = BundleHeader.decode(mutated)
    except PackageFormatError:
        return
    assert header.encode() == mutated
