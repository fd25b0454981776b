# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""newc cpio: linuxkit's bytes, sizes known up front, and a strict reader."""

from __future__ import annotations

import io
import stat

import pytest

from package_format.eif import CpioEntry, archive_size, build_archive, extract_files, read_cpio
from package_format.eif.cpio import iter_archive
from package_format.eif.cpio_reader import CpioLimits, iter_cpio
from package_format.eif.errors import CpioFormatError, CpioLimitError


def _entries(members):
    return [
        CpioEntry(
            name=m.name,
            mode=m.mode,
            size=m.size,
            uid=m.uid,
            gid=m.gid,
            mtime=m.mtime,
            rdevmajor=m.rdevmajor,
            rdevminor=m.rdevminor,
            data=m.data,
        )
        for m in members
    ]


@pytest.mark.parametrize("name", ["ramdisk0.bin", "ramdisk1.bin"])
def test_vector_ramdisks_round_trip_byte_for_byte(name, eif_vector):
    data = eif_vector(f"inputs/{name}")
    members = read_cpio(data)
    assert members
    assert members[0].ino == 721
    rebuilt = build_archive(_entries(members))
    assert rebuilt == data
    assert archive_size(_entries(members)) == len(data)


def test_bootstrap_ramdisk_from_blobs_matches_vector(eif_vector):
    data = eif_vector("inputs/ramdisk0.bin")
    blobs = {m.name: m.data for m in read_cpio(data)}
    entries = [
        CpioEntry.directory("dev"),
        CpioEntry.file("init", blobs["init"], perm=0o755),
        CpioEntry.file("nsm.ko", blobs["nsm.ko"], perm=0o755),
    ]
    assert build_archive(entries) == data


def test_streamed_file_entry_and_chunking():
    payload = bytes(range(256)) * 5000
    entry = CpioEntry(
        name="big", mode=stat.S_IFREG | 0o644, size=len(payload), opener=lambda: io.BytesIO(payload)
    )
    chunks = list(iter_archive([entry], chunk_size=4096))
    data = b"".join(chunks)
    assert len(data) == archive_size([entry])
    assert len(data) % 512 == 0
    (member,) = read_cpio(data)
    assert member.data == payload


def test_source_that_changes_size_rejected():
    entry = CpioEntry(
        name="f", mode=stat.S_IFREG | 0o644, size=10, opener=lambda: io.BytesIO(b"short")
    )
    with pytest.raises(CpioFormatError, match="changed size"):
        build_archive([entry])


def test_reader_bad_magic_rejected():
    data = bytearray(build_archive([CpioEntry.file("a", b"x")]))
    data[5:6] = b"2"
    with pytest.raises(CpioFormatError, match="bad magic"):
        read_cpio(bytes(data))


def test_reader_truncated_rejected():
    data = build_archive([CpioEntry.file("a", b"hello")])
    with pytest.raises(CpioFormatError, match="truncated"):
        read_cpio(data[:120])


def test_reader_missing_trailer_rejected():
    data = build_archive([CpioEntry.file("a", b"hello")])
    with pytest.raises(CpioFormatError):
        read_cpio(data[:124])


def test_reader_nonzero_padding_rejected():
    data = bytearray(build_archive([CpioEntry.file("ab", b"hello")]))
    data[110 + 3] = 0x41  # the padding after the name "ab\0"
    with pytest.raises(CpioFormatError, match="padding"):
        read_cpio(bytes(data))


def test_reader_data_after_trailer_rejected():
    data = build_archive([CpioEntry.file("a", b"x")]) + b"junk"
    with pytest.raises(CpioFormatError, match="after the trailer"):
        read_cpio(data)


def test_reader_member_limit():
    data = build_archive([CpioEntry.file("a", b"x" * 100)])
    with pytest.raises(CpioLimitError):
        read_cpio(data, CpioLimits(max_member_size=10))


def test_reader_skips_unwanted_data():
    data = build_archive([CpioEntry.file("a", b"x" * 100), CpioEntry.file("b", b"y")])
    members = read_cpio(data, want=lambda n: n == "b")
    assert [m.data for m in members] == [None, b"y"]


def test_extract_files_under_prefix_later_duplicate_wins():
    data = build_archive(
        [
            CpioEntry.directory("rootfs/opt/"),
            CpioEntry.file("rootfs/opt/a.py", b"1"),
            CpioEntry.file("rootfs/other", b"2"),
            CpioEntry.file("rootfs/opt/a.py", b"3"),
        ]
    )
    assert extract_files(data, "rootfs/opt/") == {"a.py": b"3"}


def test_extract_files_dotdot_path_rejected():
    data = build_archive([CpioEntry.file("rootfs/opt/../etc/x", b"1")])
    with pytest.raises(CpioFormatError, match="unsafe"):
        extract_files(data, "rootfs/opt/")


def test_sink_streams_unwanted_data_in_chunks_past_the_member_limit():
    big = bytes(range(256)) * 9000  # 2.3 MB: over the 1 MiB limit below, 3 chunks
    archive = build_archive(
        [CpioEntry.directory("d"), CpioEntry.file("d/big", big), CpioEntry.file("d/small", b"x")]
    )
    seen: dict[str, list[bytes]] = {}

    def sink(member):
        assert member.data is None
        if not member.is_file:
            return None
        return seen.setdefault(member.name, []).append

    limits = CpioLimits(max_member_size=1 << 20)
    members = list(iter_cpio(archive, limits, want=lambda _n: False, sink=sink))
    assert [m.name for m in members] == ["d", "d/big", "d/small"]
    assert all(m.data is None for m in members)
    assert b"".join(seen["d/big"]) == big
    assert max(len(c) for c in seen["d/big"]) <= 1 << 20
    assert seen["d/small"] == [b"x"]
