# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""enclave.mapped_source and its use: a large session bundle is decrypted from sealed memory."""

from __future__ import annotations

import os
from pathlib import Path

from enclave.mapped_source import MappedReader
from enclave.sessionfs import SessionFs


def test_reads_views_and_copies_agree(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    (tmp_path / "f").write_bytes(data)
    with MappedReader.of_path(tmp_path / "f") as reader:
        reader.populate()
        head = reader.read(5)
        buf = bytearray(1000)
        assert reader.readinto(memoryview(buf)) == 1000
        view = reader.readview(2 * 1024 * 1024)
        rest = reader.read()
        assert head + bytes(buf) + bytes(view) + rest == data
        assert reader.readview(10).nbytes == 0
        assert reader.read(10) == b""


def test_close_with_a_view_still_held_does_not_fail(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc" * 1000)
    reader = MappedReader.of_path(tmp_path / "f")
    view = reader.readview(3)
    reader.close()  # the mapping lives on until the view goes
    assert bytes(view) == b"abc"
    assert reader.closed


def test_empty_file_maps_to_nothing(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with MappedReader.of_path(tmp_path / "f") as reader:
        assert reader.read() == b""


def test_rewriting_a_bundle_after_it_was_opened_for_a_run_changes_nothing_mapped() -> None:
    fs = SessionFs()
    data = os.urandom(2 * 1024 * 1024)
    fs.create("encrypted/app.nb")
    fs.write("encrypted/app.nb", 0, data)
    reader = fs.open_mapped("encrypted/app.nb")
    assert reader is not None
    with reader:
        fs.write("encrypted/app.nb", 0, b"\0" * 4096)  # the user rewrites it mid-run
        fs.truncate("encrypted/app.nb", 10)
        assert bytes(reader.readview(len(data))) == data
    assert fs.read("encrypted/app.nb", 0, 100) == b"\0" * 10
    again = fs.open_mapped("encrypted/app.nb")  # a later run sees the file as it is now
    assert again is not None
    with again:
        assert again.read() == b"\0" * 10


def test_small_session_file_is_read_with_copies() -> None:
    fs = SessionFs()
    fs.create("encrypted/small.nb")
    fs.write("encrypted/small.nb", 0, b"tiny")
    assert fs.open_mapped("encrypted/small.nb") is None
