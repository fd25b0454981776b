# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The output helpers of pack and build-eif: a writing thread fed views of a buffer ring, and
a file that starts write-back as it goes; same bytes, errors surface, nothing left behind."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import threading
from pathlib import Path

import pytest

from owner_tools import pack as pack_module
from owner_tools import writeback
from owner_tools.pack import pack
from owner_tools.writeback import QueuedWriter, WritebackFile
from package_format.bundle import build_header, public_key_of, write_bundle
from package_format.bundle.config import BundleConfig
from package_format.bundle.manifest import Entrypoint, FileEntry, Manifest, OutputPolicy

SEED = bytes(range(32))
KEY = b"K" * 32


class _Kms:
    def generate_data_key(self, key_id, context):
        return KEY, b"wrapped"

    def decrypt(self, blob, key_id, context):
        return KEY


def _threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "queued-writer"]


def test_queued_writer_writes_a_reused_ring_in_order() -> None:
    raw = io.BytesIO()
    out = QueuedWriter(raw, depth=2)  # type: ignore[arg-type]
    ring = [bytearray(100) for _ in range(4)]  # depth + 2, as write_bundle's out_buffers
    expected = b""
    for i in range(50):
        buf = ring[i % 4]
        buf[:] = bytes([i]) * 100
        assert out.write(memoryview(buf)[: 10 + i]) == 10 + i
        expected += bytes([i]) * (10 + i)
    out.close()
    out.close()  # idempotent
    assert raw.getvalue() == expected
    assert not _threads()


class _Full(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_queued_writer_error_surfaces_on_close_and_next_write() -> None:
    out = QueuedWriter(_Full())
    out.write(b"x" * 10)
    with pytest.raises(OSError, match="No space"):
        out.close()
    with pytest.raises(OSError, match="No space"):
        out.write(b"y")
    assert not _threads()


def test_write_bundle_through_the_queue_gives_the_same_bytes() -> None:
    data = os.urandom(5000)
    manifest = Manifest(
        name="r",
        version="1.0.0",
        created=1,
        entrypoints=(Entrypoint(name="f", path="f"),),
        output=OutputPolicy(stdout=True, stderr=True, files=False, max_files_size=0),
        files=(FileEntry("f", len(data), 0o644),),
    )
    header = build_header(
        manifest,
        kms_key_id="k",
        encryption_context={},
        wrapped_key=b"w",
        data_key=KEY,
        salt=b"S" * 32,
        signer=public_key_of(SEED),
        segment_size=64,
    )
    raw = io.BytesIO()
    out = QueuedWriter(raw, depth=2)  # type: ignore[arg-type]
    n = write_bundle(
        out,
        header,
        signing_key=SEED,
        data_key=KEY,
        open_file=lambda e: io.BytesIO(data),
        out_buffers=4,  # depth + 2
    )
    out.close()
    direct = io.BytesIO()
    write_bundle(
        direct, header, signing_key=SEED, data_key=KEY, open_file=lambda e: io.BytesIO(data)
    )
    assert n == len(raw.getvalue())
    assert raw.getvalue() == direct.getvalue()


def _app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_bytes(b"print(1)\n")
    (app / "weights.bin").write_bytes(os.urandom(300_000))
    return app


def _pack(app: Path, out: Path) -> None:
    pack(
        app,
        out,
        config=BundleConfig(
            name="w", version="1.0.0", entrypoints=(Entrypoint("main", "main.py"),)
        ),
        key_id="k",
        signing_key=hashlib.sha256(b"s").digest(),
        kms=_Kms(),
        created=0,
        segment_size=4096,
    )


def test_pack_kicks_writeback_and_verifies(tmp_path: Path, monkeypatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(writeback, "KICK", 10_000)
    monkeypatch.setattr(writeback, "start_writeback", lambda fd, off, n: calls.append((off, n)))
    app = _app(tmp_path)
    _pack(app, tmp_path / "a.nb")
    data = (tmp_path / "a.nb").read_bytes()
    assert len(calls) > 10
    assert [c[0] for c in calls] == [0] + [
        sum(n for _, n in calls[:i]) for i in range(1, len(calls))
    ]
    from owner_tools.verify import verify_bundle

    result = verify_bundle(
        tmp_path / "a.nb", [public_key_of(hashlib.sha256(b"s").digest())], kms=_Kms()
    )
    assert result.decrypted
    assert len(data) > 300_000


def test_pack_write_error_leaves_no_partial_output(tmp_path: Path, monkeypatch) -> None:
    real = WritebackFile.write

    def failing(self, data):
        if self.tell() > 100_000:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(WritebackFile, "write", failing)
    app = _app(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(OSError, match="No space"):
        _pack(app, out_dir / "a.nb")
    assert list(out_dir.iterdir()) == []
    assert not _threads()
    assert pack_module.WRITE_DEPTH >= 1
