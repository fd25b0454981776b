# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""build-eif starts the output's disk write-back while writing (so the final fsync is short)
and the bytes stay those of the AWS vector."""

from __future__ import annotations

import os

import pytest

from owner_tools import writeback
from owner_tools._cli import main


def _build(tmp_path, aws_vector) -> int:
    v = aws_vector
    return main(
        [
            "build-eif",
            "-o",
            str(tmp_path / "tiny.eif"),
            "--blobs",
            str(tmp_path / "none"),
            "--kernel",
            str(v("eif/inputs/kernel.bin")),
            "--cmdline",
            str(v("eif/inputs/cmdline-x86_64.txt")),
            "--ramdisk",
            str(v("eif/inputs/ramdisk0.bin")),
            "--ramdisk",
            str(v("eif/inputs/ramdisk1.bin")),
            "--name",
            "tiny-x86_64",
            "--version",
            "1.0",
            "--build-time",
            "1970-01-01T00:00:00+00:00",
            "--build-tool",
            "eif-test-vectors",
            "--build-tool-version",
            "0.0.0",
            "--operating-system",
            "Linux",
            "--kernel-version",
            "0.0.0-test",
        ]
    )


def test_writeback_is_started_over_consecutive_ranges(tmp_path, aws_vector, monkeypatch, capsys):
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(writeback, "KICK", 1000)
    monkeypatch.setattr(writeback, "start_writeback", lambda fd, off, n: calls.append((off, n)))
    assert _build(tmp_path, aws_vector) == 0
    capsys.readouterr()
    data = (tmp_path / "tiny.eif").read_bytes()
    assert data == aws_vector("eif/eif/tiny-x86_64-unsigned.eif").read_bytes()
    assert len(calls) >= 2
    pos = 0
    for off, n in calls:
        assert off == pos
        assert n >= 1000
        pos += n
    assert len(data) // 2 < pos <= len(data)


@pytest.mark.skipif(writeback._sync_file_range is None, reason="sync_file_range is Linux-only")
def test_real_sync_file_range_call_succeeds(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10_000)
    fd = os.open(path, os.O_RDWR)
    try:
        writeback.start_writeback(fd, 0, 10_000)  # must not raise; the data stays the same
    finally:
        os.close(fd)
    assert path.read_bytes() == b"x" * 10_000
