# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""enclave.file_content: small files in a bytearray, large ones in a memfd, same bytes either way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from enclave import file_content
from enclave.file_content import PROMOTE_BYTES, FileContent
from enclave.mapped_source import MappedReader


def _kind(content: FileContent) -> str:
    return "memfd" if content._fd is not None else "bytes"


def _model_write(model: bytearray, offset: int, data: bytes) -> None:
    if offset > len(model):
        model.extend(bytes(offset - len(model)))
    model[offset : offset + len(data)] = data


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "no-memfd"])
def test_writes_truncates_and_reads_match_a_bytearray_model(
    memfd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not memfd:
        monkeypatch.setattr(file_content, "_new_memfd", lambda: None)
    content, model = FileContent(), bytearray()
    steps = [
        ("write", 0, b"a" * 1000),
        ("write", 5000, b"b" * 10),  # a gap: zeros
        ("truncate", 3000, b""),
        ("write", PROMOTE_BYTES - 10, os.urandom(100)),  # crosses the promotion size
        ("write", 7, b"c" * 70_000),
        ("truncate", PROMOTE_BYTES * 3, b""),  # grows with zeros
        ("write", PROMOTE_BYTES * 3 + 4096, os.urandom(3 * PROMOTE_BYTES)),
        ("truncate", 123_457, b""),
    ]
    for op, offset, data in steps:
        if op == "write":
            content.write(offset, memoryview(data))
            _model_write(model, offset, data)
        else:
            content.truncate(offset)
            del model[offset:]
            model.extend(bytes(offset - len(model)))
        assert content.size == len(model)
        assert content.read(0, len(model) + 10) == bytes(model)
    assert _kind(content) == ("memfd" if memfd else "bytes")
    assert content.read(len(model) - 3, 100) == bytes(model[-3:])
    assert content.read(len(model) + 5, 10) == b""


def test_small_file_stays_in_a_bytearray() -> None:
    content = FileContent()
    content.write(0, b"x" * PROMOTE_BYTES)
    assert _kind(content) == "bytes"
    content.write(PROMOTE_BYTES, b"y")
    assert _kind(content) == "memfd"
    assert content.read(PROMOTE_BYTES - 1, 5) == b"xy"


@pytest.mark.parametrize("size", [10, PROMOTE_BYTES * 5 + 3])
def test_copy_to_writes_every_byte(size: int, tmp_path: Path) -> None:
    data = os.urandom(size)
    content = FileContent()
    content.write(0, data)
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        content.copy_to(fd)
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == data


def test_clear_releases_the_memfd() -> None:
    content = FileContent()
    content.write(0, bytes(PROMOTE_BYTES * 2))
    fd = content._fd
    assert fd is not None
    content.clear()
    assert content.size == 0
    assert content.read(0, 10) == b""
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)


@pytest.mark.parametrize("size", [1000, PROMOTE_BYTES * 3 + 17])
def test_readinto_fills_the_buffer_like_read(size: int) -> None:
    data = os.urandom(size)
    content = FileContent()
    content.write(0, data)
    for offset, want in [(0, 100), (size - 10, 100), (size // 2, size), (size, 10)]:
        out = bytearray(want)
        got = content.readinto(offset, memoryview(out))
        assert bytes(out[:got]) == content.read(offset, want) == data[offset : offset + want]


def test_sealed_bytes_never_change_when_the_file_is_rewritten() -> None:
    # The runner decrypts straight from a sealed mapping: a user rewriting the bundle during
    # the run must not be able to change the bytes under AES-GCM (a time-of-check attack).
    old = os.urandom(PROMOTE_BYTES * 2)
    content = FileContent()
    content.write(0, old)
    fd = content.seal()
    assert fd is not None
    mapped = MappedReader(fd, content.size)
    try:
        with pytest.raises(PermissionError):
            os.pwrite(fd, b"x", 0)  # the kernel refuses: F_SEAL_WRITE
        content.write(10, b"new bytes")  # the session file itself stays writable
        content.truncate(100)
        assert content.read(0, 100) == old[:10] + b"new bytes" + old[19:100]
        assert bytes(mapped.readview(len(old))) == old
    finally:
        mapped.close()


def test_small_file_is_not_sealed() -> None:
    content = FileContent()
    content.write(0, b"small")
    assert content.seal() is None
