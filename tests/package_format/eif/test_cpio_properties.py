# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Property tests: newc write -> read -> write is the identity; sizes are known up front."""

from __future__ import annotations

import json
import stat

from hypothesis import given, settings
from hypothesis import strategies as st

from package_format.eif import CpioEntry, archive_size, build_archive, read_cpio

_names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=40
)
_entries = st.lists(
    st.one_of(
        st.builds(CpioEntry.directory, _names, st.integers(0, 0o7777), st.integers(0, 2**32 - 1)),
        st.builds(CpioEntry.file, _names, st.binary(max_size=300), st.integers(0, 0o7777)),
        st.builds(CpioEntry.symlink, _names, _names),
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(_entries)
def test_write_read_write_identity(entries):
    data = build_archive(entries)
    assert len(data) == archive_size(entries)
    members = read_cpio(data)
    assert [m.name for m in members] == [e.name for e in entries]
    rebuilt = [
        CpioEntry(name=m.name, mode=m.mode, size=m.size, mtime=m.mtime, data=m.data)
        for m in members
    ]
    assert build_archive(rebuilt) == data


def test_seed_vectors_not_empty(eif_vector):
    for name in ("ramdisk0.bin", "ramdisk1.bin"):
        assert read_cpio(eif_vector(f"inputs/{name}"))


def test_bootstrap_size_matches_emulated_real_blobs(eif_vector):
    expected = json.loads(eif_vector("expected/bootstrap-ramdisk-emulated.json"))
    for arch in ("x86_64", "aarch64"):
        sizes = expected[arch]
        entries = [
            CpioEntry.directory("dev"),
            CpioEntry(name="init", mode=stat.S_IFREG | 0o755, size=sizes["init"]["size"]),
            CpioEntry(name="nsm.ko", mode=stat.S_IFREG | 0o755, size=sizes["nsm.ko"]["size"]),
        ]
        assert archive_size(entries) == sizes["ramdisk_size"]
