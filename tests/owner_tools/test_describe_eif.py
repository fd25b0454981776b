# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""owner-tools describe-eif: nitro-cli's JSON; damaged and foreign files (issue 3 must-show 1, 3)."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest

from owner_tools._cli import main


@pytest.mark.parametrize("name", ["tiny-x86_64-unsigned", "tiny-x86_64-signed-after"])
def test_describe_prints_expected_json_exactly(name, aws_vector, capsys):
    rc = main(["describe-eif", str(aws_vector(f"eif/eif/{name}.eif"))])
    captured = capsys.readouterr()
    assert rc == 0
    assert captured.out == aws_vector(f"eif/expected/{name}.describe-eif.json").read_text()
    assert captured.err == ""


def _damaged(tmp_path, aws_vector, mutate, name="tiny-x86_64-unsigned"):
    data = bytearray(aws_vector(f"eif/eif/{name}.eif").read_bytes())
    mutate(data)
    path = tmp_path / "bad.eif"
    path.write_bytes(bytes(data))
    return path


def _one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("owner-tools: error: ")
    return lines[0], captured.out


def test_bit_flip_in_kernel_reported_as_crc_failure(tmp_path, aws_vector, capsys):
    def flip(d):
        d[548 + 12 + 100] ^= 0x10

    rc = main(["describe-eif", str(_damaged(tmp_path, aws_vector, flip))])
    line, out = _one_error_line(capsys)
    assert rc == 1
    assert "crc32 mismatch" in line
    assert '"CheckCRC": false' in out


def test_bit_flip_in_signature_section_reported_as_crc_failure(tmp_path, aws_vector, capsys):
    def flip(d):
        d[-3] ^= 0x01

    path = _damaged(tmp_path, aws_vector, flip, "tiny-x86_64-signed-after")
    rc = main(["describe-eif", str(path)])
    line, _ = _one_error_line(capsys)
    assert rc == 1
    assert "crc32 mismatch" in line


def test_missing_file_one_line(tmp_path, capsys):
    rc = main(["describe-eif", str(tmp_path / "nope.eif")])
    line, _ = _one_error_line(capsys)
    assert rc == 1
    assert "no such file" in line


def test_wrong_magic_one_line(tmp_path, aws_vector, capsys):
    rc = main(
        ["describe-eif", str(_damaged(tmp_path, aws_vector, lambda d: d.__setitem__(0, 0x41)))]
    )
    line, out = _one_error_line(capsys)
    assert rc == 1
    assert "wrong magic" in line
    assert out == ""


def test_foreign_file_one_line(tmp_path, capsys):
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000))
    rc = main(["describe-eif", str(path)])
    line, _ = _one_error_line(capsys)
    assert rc == 1
    assert "not an enclave image file" in line


def test_truncated_file_one_line(tmp_path, aws_vector, capsys):
    path = tmp_path / "cut.eif"
    path.write_bytes(aws_vector("eif/eif/tiny-x86_64-unsigned.eif").read_bytes()[:5000])
    rc = main(["describe-eif", str(path)])
    line, _ = _one_error_line(capsys)
    assert rc == 1
    assert "past the end" in line


def test_more_than_32_sections_one_line(tmp_path, aws_vector, capsys):
    path = _damaged(tmp_path, aws_vector, lambda d: struct.pack_into(">H", d, 26, 40))
    rc = main(["describe-eif", str(path)])
    line, _ = _one_error_line(capsys)
    assert rc == 1
    assert "40 sections" in line


def test_section_size_past_end_one_line(tmp_path, aws_vector, capsys):
    path = _damaged(tmp_path, aws_vector, lambda d: struct.pack_into(">Q", d, 284, 1 << 50))
    rc = main(["describe-eif", str(path)])
    line, _ = _one_error_line(capsys)
    assert rc == 1
    assert "past the end" in line


def test_console_script_bad_input_no_traceback(tmp_path):
    path = tmp_path / "junk.eif"
    path.write_bytes(b".eif" + b"\xff" * 600)
    proc = subprocess.run(
        [sys.executable, "-m", "owner_tools", "describe-eif", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
