# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The threaded EIF writer (specs/enclave-image.md §4.3): same bytes whatever the chunking,
errors from the write and hash threads reach the caller, and no thread is left behind."""

from __future__ import annotations

import hashlib
import io
import threading
import zlib

import pytest

from package_format.eif import SectionSource, SectionType, extend0, hashing, read_eif, write_eif
from package_format.eif.errors import EifSectionError

KERNEL = bytes(range(256)) * 40
CMDLINE = b"console=ttyS0"
BOOT = b"bootstrap" * 1000
APP = bytes((i * 7) % 251 for i in range(300_000))


def _chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos, i = [], 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        out.append(data[pos : pos + n])
        pos += n
        i += 1
    return out


def _sections(chunk_sizes: list[int] | None) -> list[SectionSource]:
    def src(kind: SectionType, data: bytes) -> SectionSource:
        if chunk_sizes is None:
            return SectionSource.from_bytes(kind, data)
        return SectionSource(kind, len(data), _chunked(data, chunk_sizes))

    return [
        src(SectionType.KERNEL, KERNEL),
        src(SectionType.CMDLINE, CMDLINE),
        src(SectionType.RAMDISK, BOOT),
        src(SectionType.RAMDISK, APP),
    ]


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of a few KiB so the test crosses many batch boundaries cheaply."""
    monkeypatch.setattr(hashing, "BATCH", 4096)
    monkeypatch.setattr(hashing, "DEPTH", 2)


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith(("pcr", "eif-write"))}


def test_batched_chunks_give_the_same_bytes_and_pcrs(small_batches):
    whole = io.BytesIO()
    ref = write_eif(whole, _sections(None))
    for sizes in ([1], [4095, 1, 8193], [100_000], [3, 70_000, 5]):
        out = io.BytesIO()
        result = write_eif(out, _sections(sizes))
        assert out.getvalue() == whole.getvalue(), sizes
        assert result == ref
    data = whole.getvalue()
    image = read_eif(io.BytesIO(data))
    assert image.computed_crc32 == ref.crc32 == int.from_bytes(data[544:548], "big")
    assert ref.crc32 == zlib.crc32(data[548:], zlib.crc32(data[:544]))
    m = ref.measurements
    assert m.pcr2 == extend0(hashlib.sha384(APP).digest())
    assert m.pcr1 == extend0(hashlib.sha384(KERNEL + CMDLINE + BOOT).digest())
    assert m.pcr0 == extend0(hashlib.sha384(KERNEL + CMDLINE + BOOT + APP).digest())
    assert not _threads()


def test_memoryview_chunks_are_accepted(small_batches):
    whole = io.BytesIO()
    write_eif(whole, _sections(None))
    out = io.BytesIO()
    views = [memoryview(c) for c in _chunked(APP, [5000])]
    sections = [*_sections(None)[:3], SectionSource(SectionType.RAMDISK, len(APP), views)]
    write_eif(out, sections)
    assert out.getvalue() == whole.getvalue()


class _ShortWrites(io.BytesIO):
    """An output that takes at most 777 bytes per call, like a raw file may."""

    def write(self, data) -> int:  # type: ignore[override]
        return super().write(memoryview(data)[:777])


def test_short_writes_are_completed(small_batches):
    whole = io.BytesIO()
    write_eif(whole, _sections(None))
    out = _ShortWrites()
    write_eif(out, _sections([10_000]))
    assert out.getvalue() == whole.getvalue()


class _FailingOutput(io.BytesIO):
    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self._left = fail_after

    def write(self, data) -> int:  # type: ignore[override]
        n = len(memoryview(data))
        if self.tell() > 0 and self._left < n:
            raise OSError(28, "No space left on device")
        self._left -= n
        return super().write(data)


def test_write_error_in_the_writer_thread_reaches_the_caller(small_batches):
    with pytest.raises(OSError, match="No space left"):
        write_eif(_FailingOutput(50_000), _sections([8192]))
    assert not _threads()


def test_source_longer_than_declared_rejected_and_threads_end(small_batches):
    sections = _sections([8192])
    sections[3] = SectionSource(SectionType.RAMDISK, len(APP) - 1, _chunked(APP, [8192]))
    with pytest.raises(EifSectionError, match="section 3"):
        write_eif(io.BytesIO(), sections)
    assert not _threads()


def test_source_error_mid_section_ends_the_threads(small_batches):
    def broken():
        yield APP[:50_000]
        raise OSError(5, "Input/output error")

    sections = [*_sections(None)[:3], SectionSource(SectionType.RAMDISK, len(APP), broken())]
    with pytest.raises(OSError, match="Input/output"):
        write_eif(io.BytesIO(), sections)
    assert not _threads()
