# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The parallel payload decryption (enclave.runner.extract): every file's bytes, and every
attack caught with the sequential reader's typed error and message, nothing left behind."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from enclave.runner import bundle as runner_bundle
from enclave.runner import extract as runner_extract
from enclave.runner.bundle import open_bundle
from package_format.bundle import BundleReader, build_header, public_key_of, write_bundle
from package_format.bundle.errors import (
    KeyCommitmentError,
    SegmentAuthenticationError,
    SegmentOrderError,
    TrailingDataError,
    TruncatedPayloadError,
)
from package_format.bundle.manifest import Entrypoint, FileEntry, Manifest, OutputPolicy
from package_format.errors import PackageFormatError

SEED = bytes(range(32))
KEY = b"K" * 32
SEG = 64
TAG = 16

FILES = {
    "main.py": b"print('hi')\n",
    "empty.txt": b"",
    "a/one.bin": b"1",
    "a/seg.bin": bytes(range(SEG)),
    "a/b/long.bin": bytes((i * 13) % 256 for i in range(5 * SEG + 17)),
    "a/b/short.bin": b"xyz" * 21,
    "z.bin": b"tail" * 40,
}
MODES = {"main.py": 0o755}


def _bundle(files: dict[str, bytes] = FILES) -> bytes:
    dirs = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
    rows = [FileEntry(d, 0, 0o755, "dir") for d in dirs]
    rows += [FileEntry(p, len(b), MODES.get(p, 0o644)) for p, b in files.items()]
    rows.sort(key=lambda r: tuple(r.path.split("/")))
    manifest = Manifest(
        name="x",
        version="1.0.0",
        created=1,
        entrypoints=(Entrypoint(name="main.py", path="main.py"),),
        output=OutputPolicy(stdout=True, stderr=True, files=False, max_files_size=0),
        files=tuple(rows),
    )
    header = build_header(
        manifest,
        kms_key_id="k",
        encryption_context={},
        wrapped_key=b"w",
        data_key=KEY,
        salt=b"S" * 32,
        signer=public_key_of(SEED),
        segment_size=SEG,
    )
    out = io.BytesIO()
    write_bundle(
        out, header, signing_key=SEED, data_key=KEY, open_file=lambda e: io.BytesIO(files[e.path])
    )
    return out.getvalue()


BUNDLE = _bundle()
PAYLOAD = sum(len(b) for b in FILES.values())
COUNT = -(-PAYLOAD // SEG)
START = len(BUNDLE) - (PAYLOAD + TAG * COUNT)


def _segment(i: int) -> slice:
    lo = START + i * (SEG + TAG)
    return slice(lo, min(lo + SEG + TAG, len(BUNDLE)))


PREPARE = {"on": False}  # the `workers` fixture's "prepared" case sets it


def _extract(data: bytes, dest: Path, key: bytes = KEY) -> None:
    opened = open_bundle(io.BytesIO(data), [public_key_of(SEED)])
    if PREPARE["on"]:
        opened.prepare(dest)  # as the runner does while the key release runs
    opened.extract(key, dest)


def _sequential_error(data: bytes, key: bytes = KEY) -> PackageFormatError:
    reader = BundleReader.open(io.BytesIO(data))
    reader.verify_signature([public_key_of(SEED)])
    with pytest.raises(PackageFormatError) as info:
        reader.verify_payload(key)
    return info.value


@pytest.fixture(
    params=[(0, 0), (1, 1), (2, 1), (2, 3 * SEG), (3, 2 * SEG), (2, SEG, "prepared")],
    ids=lambda p: "-".join([f"w{p[0]}b{p[1]}", *p[2:]]) if p[0] else "in-order",
)
def workers(request, monkeypatch) -> int:
    """0: the file-by-file path; else that many workers with batches of about `batch` bytes
    (into a tree laid out and pre-sized beforehand in the "prepared" case)."""
    n, batch = request.param[:2]
    monkeypatch.setitem(PREPARE, "on", len(request.param) > 2)
    if n == 0:
        monkeypatch.setattr(runner_bundle, "PARALLEL_MIN_AVERAGE", 1 << 60)
        return 0
    monkeypatch.setattr(runner_bundle, "PARALLEL_MIN_AVERAGE", 0)
    monkeypatch.setattr(runner_extract, "WORKERS", n)
    monkeypatch.setattr(runner_extract, "BATCH_BYTES", batch)
    return n


def test_small_file_bundles_go_file_by_file_and_big_ones_in_parallel(tmp_path, monkeypatch) -> None:
    used: list[str] = []
    monkeypatch.setattr(runner_bundle, "extract_in_order", lambda *a, **k: used.append("in-order"))
    monkeypatch.setattr(runner_bundle, "extract_parallel", lambda *a, **k: used.append("parallel"))
    _extract(BUNDLE, tmp_path)
    monkeypatch.setattr(runner_bundle, "PARALLEL_MIN_AVERAGE", PAYLOAD // len(FILES))
    _extract(BUNDLE, tmp_path)
    assert used == ["in-order", "parallel"]


def test_every_file_and_mode_across_segment_boundaries(tmp_path: Path, workers: int) -> None:
    assert COUNT > 8  # files straddle many segment boundaries
    _extract(BUNDLE, tmp_path)
    for rel, data in FILES.items():
        path = tmp_path / rel
        assert path.read_bytes() == data, rel
        assert path.stat().st_mode & 0o777 == (0o700 if rel == "main.py" else 0o600)
    assert (tmp_path / "a" / "b").is_dir()


def _attack_check(data: bytes, tmp_path: Path, error: type[PackageFormatError]) -> str:
    expected = _sequential_error(data)
    assert type(expected) is error
    dest = tmp_path / "app"
    dest.mkdir()
    (dest / "keep.txt").write_bytes(b"not ours")
    with pytest.raises(error) as info:
        _extract(data, dest)
    assert str(info.value) == str(expected)
    assert sorted(p.name for p in dest.iterdir()) == ["keep.txt"]  # the rest was wiped
    return str(info.value)


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_flipped_segment_rejected_and_wiped(tmp_path: Path, workers: int, where: str) -> None:
    i = {"first": 0, "middle": COUNT // 2, "last": COUNT - 1}[where]
    data = bytearray(BUNDLE)
    data[_segment(i).start + 3] ^= 1
    msg = _attack_check(bytes(data), tmp_path, SegmentAuthenticationError)
    assert f"segment {i} " in msg


def test_segment_swap_rejected(tmp_path: Path, workers: int) -> None:
    data = bytearray(BUNDLE)
    a, b = _segment(2), _segment(5)
    data[a], data[b] = BUNDLE[b], BUNDLE[a]
    msg = _attack_check(bytes(data), tmp_path, SegmentOrderError)
    assert "segment 2 " in msg


def test_lowest_failing_segment_is_reported(tmp_path: Path, workers: int) -> None:
    data = bytearray(BUNDLE)
    for i in (COUNT - 2, 4, 7):
        data[_segment(i).start] ^= 0x80
    msg = _attack_check(bytes(data), tmp_path, SegmentAuthenticationError)
    assert "segment 4 " in msg


def test_truncation_at_segment_boundary_rejected(tmp_path: Path, workers: int) -> None:
    msg = _attack_check(BUNDLE[: _segment(COUNT - 3).start], tmp_path, TruncatedPayloadError)
    assert "at a segment boundary" in msg


def test_truncation_inside_segment_rejected(tmp_path: Path, workers: int) -> None:
    msg = _attack_check(BUNDLE[: _segment(3).start + 10], tmp_path, TruncatedPayloadError)
    assert "inside a segment" in msg


def test_damage_before_a_truncation_wins(tmp_path: Path, workers: int) -> None:
    data = bytearray(BUNDLE[: _segment(COUNT - 1).start])
    data[_segment(1).start] ^= 1
    msg = _attack_check(bytes(data), tmp_path, SegmentAuthenticationError)
    assert "segment 1 " in msg


def test_trailing_bytes_rejected(tmp_path: Path, workers: int) -> None:
    _attack_check(BUNDLE + b"\0", tmp_path, TrailingDataError)


def test_final_segment_dropped_rejected(tmp_path: Path, workers: int) -> None:
    _attack_check(BUNDLE[: _segment(COUNT - 1).start], tmp_path, TruncatedPayloadError)


def test_wrong_key_rejected_before_any_file(tmp_path: Path, workers: int) -> None:
    with pytest.raises(KeyCommitmentError):
        _extract(BUNDLE, tmp_path, key=b"X" * 32)
    assert list(tmp_path.iterdir()) == []


def test_write_failure_wipes_what_was_created(tmp_path: Path, workers: int) -> None:
    (tmp_path / "z.bin").write_bytes(b"in the way")  # O_EXCL: creation fails there
    with pytest.raises(FileExistsError):
        _extract(BUNDLE, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.bin"]
    assert (tmp_path / "z.bin").read_bytes() == b"in the way"


def test_failure_wipes_authentic_files_already_written(
    tmp_path: Path, monkeypatch, workers: int
) -> None:
    if workers:
        monkeypatch.setattr(runner_extract, "BATCH_BYTES", SEG)
    seen: list[bytes] = []
    real = runner_extract.wipe_tree

    def spy(path: Path) -> list[Path]:
        for f in [path, *path.rglob("*")] if path.is_dir() else [path]:
            if f.is_file():
                fd = os.open(f, os.O_RDONLY)
                try:
                    seen.append(os.read(fd, 1 << 16))
                finally:
                    os.close(fd)
        return real(path)

    monkeypatch.setattr(runner_extract, "wipe_tree", spy)
    data = bytearray(BUNDLE)
    data[_segment(COUNT - 1).start] ^= 1
    with pytest.raises(SegmentAuthenticationError):
        _extract(bytes(data), tmp_path)
    assert any(seen)  # authentic files had been written before the last segment failed
    assert list(tmp_path.iterdir()) == []


def test_empty_payload(tmp_path: Path, workers: int) -> None:
    data = _bundle({"main.py": b""})
    _extract(data, tmp_path)
    assert (tmp_path / "main.py").read_bytes() == b""


def test_failure_inside_existing_directory_removes_only_ours(tmp_path: Path, workers: int) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "theirs.txt").write_bytes(b"keep")
    data = bytearray(BUNDLE)
    data[_segment(COUNT - 1).start] ^= 1
    with pytest.raises(SegmentAuthenticationError):
        _extract(bytes(data), tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in sorted(tmp_path.rglob("*"))] == [
        "a",
        "a/theirs.txt",
    ]


def test_prepare_lays_out_presized_files_and_discard_removes_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(runner_bundle, "PARALLEL_MIN_AVERAGE", 0)
    opened = open_bundle(io.BytesIO(BUNDLE), [public_key_of(SEED)])
    opened.prepare(tmp_path)
    for rel, data in FILES.items():
        path = tmp_path / rel
        assert path.stat().st_size == len(data), rel
        assert path.read_bytes() == bytes(len(data)), rel  # sizes only, no plaintext
        assert path.stat().st_mode & 0o777 == (0o700 if rel == "main.py" else 0o600)
    opened.discard()
    assert list(tmp_path.iterdir()) == []
