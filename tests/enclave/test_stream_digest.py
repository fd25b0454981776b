# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Session files' running SHA-256 (enclave.stream_digest, specs/receipts.md §4.1)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from enclave import stream_digest
from enclave.file_content import FileContent
from enclave.sessionfs import SessionFs
from enclave.stream_digest import INLINE_BYTES, DigestPipeline, StreamDigest


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def fs_with(chunks: list[tuple[int, bytes]], *, digests: bool = True) -> SessionFs:
    fs = SessionFs(digests=digests)
    fs.create("dataset/f", 0o644)
    for offset, data in chunks:
        fs.write("dataset/f", offset, data)
    return fs


def test_appended_file_has_its_running_hash_without_rereading() -> None:
    fs = fs_with([(0, b"a" * 300_000), (300_000, b"b" * 5)])
    node = fs._lookup("dataset/f")
    assert node.digest.result(300_005) == sha(b"a" * 300_000 + b"b" * 5)
    assert fs.file_digest("dataset/f") == (sha(b"a" * 300_000 + b"b" * 5), 300_005)


@pytest.mark.parametrize(
    "chunks",
    [
        [(0, b"hello"), (0, b"J")],  # overwrite
        [(3, b"lo"), (0, b"hel")],  # out of order
        [(0, b"he"), (4, b"o")],  # a gap (zero-filled)
    ],
    ids=["overwrite", "out-of-order", "gap"],
)
def test_random_writes_fall_back_to_one_read(chunks: list[tuple[int, bytes]]) -> None:
    fs = fs_with(chunks)
    size = fs.stat("dataset/f").size
    expected = sha(fs.read("dataset/f", 0, size))
    assert fs._lookup("dataset/f").digest.result(size) is None
    assert fs.file_digest("dataset/f") == (expected, size)
    fs.write("dataset/f", size, b"more")  # the re-read hash is kept: appends go on
    assert fs._lookup("dataset/f").digest.result(size + 4) == sha(fs.read("dataset/f", 0, size + 4))


def test_truncate_to_zero_restarts_and_shrinking_drops() -> None:
    fs = fs_with([(0, b"hello")])
    fs.truncate("dataset/f", 0)
    fs.write("dataset/f", 0, b"abc")
    assert fs._lookup("dataset/f").digest.result(3) == sha(b"abc")
    fs.truncate("dataset/f", 2)
    assert fs._lookup("dataset/f").digest.result(2) is None
    assert fs.file_digest("dataset/f") == (sha(b"ab"), 2)


def test_grown_by_truncate_then_written_in_order_keeps_the_hash() -> None:
    fs = fs_with([])
    fs.truncate("dataset/f", 6)  # preallocation
    fs.write("dataset/f", 0, b"abc")
    fs.write("dataset/f", 3, b"def")
    assert fs._lookup("dataset/f").digest.result(6) == sha(b"abcdef")


def test_recreated_file_starts_a_new_hash() -> None:
    fs = fs_with([(0, b"old")])
    fs.create("dataset/f", 0o644, truncate=True)
    fs.write("dataset/f", 0, b"new!")
    assert fs.file_digest("dataset/f") == (sha(b"new!"), 4)


def test_export_reports_the_digest_of_the_bytes_it_copied(tmp_path) -> None:
    fs = fs_with([(0, b"x" * 10)])
    seen: dict[str, tuple[bytes, int]] = {}
    fs.export_tree("dataset", tmp_path / "out", seen)
    assert seen == {"dataset/f": (sha(b"x" * 10), 10)}


def test_switched_off_digests_still_answer_by_reading() -> None:
    fs = fs_with([(0, b"hello")], digests=False)
    assert fs._lookup("dataset/f").digest.result(5) is None
    assert fs.file_digest("dataset/f") == (sha(b"hello"), 5)


def test_stream_digest_alone() -> None:
    digest = StreamDigest()
    digest.wrote(0, memoryview(b"ab"))
    digest.wrote(2, bytearray(b"c"))
    assert digest.result(3) == sha(b"abc")
    assert digest.result(4) is None


# -- hashed behind the writer (specs/receipts.md §4.1.1) -----------------------------------


class _Bytes:
    """A session file's content, as `StreamDigest` reads it back."""

    def __init__(self) -> None:
        self.data = bytearray()

    @property
    def size(self) -> int:
        return len(self.data)

    def readinto(self, offset: int, out: memoryview) -> int:
        chunk = self.data[offset : offset + out.nbytes]
        out[: len(chunk)] = chunk
        return len(chunk)

    def reader(self) -> int | None:
        return None  # a `bytearray`: copied under the session lock

    def write(self, digest: StreamDigest, offset: int, data: bytes) -> None:
        self.data[offset : offset + len(data)] = data
        digest.wrote(offset, data)


def test_large_appends_are_hashed_behind_the_writer_once() -> None:
    chunks = [bytes([i]) * (INLINE_BYTES + 7) for i in range(40)]
    fs = fs_with([(i * len(chunks[0]), c) for i, c in enumerate(chunks)])
    whole = b"".join(chunks)
    assert fs.file_digest("dataset/f") == (sha(whole), len(whole))
    fs.write("dataset/f", len(whole), b"tail")  # appends go on from the finished hash
    assert fs.file_digest("dataset/f") == (sha(whole + b"tail"), len(whole) + 4)


def test_result_finishes_what_the_hashing_thread_has_not_reached() -> None:
    session_lock = threading.Lock()
    pipeline = DigestPipeline(session_lock)
    content = _Bytes()
    digest = pipeline.digest(content)
    data = bytes(range(256)) * 20_000  # 5 MB: more than the inline limit and than a chunk
    with session_lock:  # as a run's export holds it: the thread cannot take a chunk
        content.write(digest, 0, data)
        assert digest.result(len(data)) == sha(data)
    assert digest.result(len(data)) == sha(data)


def test_random_write_while_the_thread_is_behind_drops_the_hash() -> None:
    big = b"a" * (3 * INLINE_BYTES)
    fs = fs_with([(0, big), (len(big), big), (5, b"X")])
    size = 2 * len(big)
    expected = sha(big[:5] + b"X" + big[6:] + big)
    assert fs._lookup("dataset/f").digest.result(size) is None
    assert fs.file_digest("dataset/f") == (expected, size)


def test_truncate_to_zero_while_the_thread_is_behind_restarts_the_hash() -> None:
    fs = fs_with([(0, b"old" * INLINE_BYTES)])
    fs.create("dataset/f", 0o644, truncate=True)
    fs.write("dataset/f", 0, b"new" * INLINE_BYTES)
    assert fs.file_digest("dataset/f") == (sha(b"new" * INLINE_BYTES), 3 * INLINE_BYTES)


def test_unlinked_file_while_the_thread_is_behind_leaves_other_files_hashed() -> None:
    fs = fs_with([(0, b"g" * (4 * INLINE_BYTES))])
    fs.create("dataset/h", 0o644)
    fs.write("dataset/h", 0, b"h" * (4 * INLINE_BYTES))
    fs.unlink("dataset/f")
    assert fs.file_digest("dataset/h") == (sha(b"h" * (4 * INLINE_BYTES)), 4 * INLINE_BYTES)


# -- read without the session lock, on an idle core (specs/receipts.md §4.1.1) ----------------

BIG = 3 << 20  # a memfd (over PROMOTE_BYTES), several of the pipeline's chunks


def _watch_reads(
    monkeypatch: pytest.MonkeyPatch, hook: Callable[[], None]
) -> list[threading.Thread]:
    """Call `hook` before each of the pipeline's reads of a memfd; return the reading threads."""
    readers: list[threading.Thread] = []
    real = os.preadv

    def preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        readers.append(threading.current_thread())
        hook()
        return real(fd, buffers, offset)

    monkeypatch.setattr(stream_digest.os, "preadv", preadv)
    return readers


def _settled(fs: SessionFs, path: str, size: int) -> None:
    """Wait until the pipeline has hashed all of `path` (as far as it will)."""
    digest = fs._lookup(path).digest
    for _ in range(500):
        with digest._guard():
            if digest._hash is None or digest._hashed == size:
                return
        time.sleep(0.01)
    raise AssertionError("the pipeline did not finish")


def test_memfd_chunks_are_read_outside_the_session_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    fs = SessionFs()
    held: list[bool] = []
    readers = _watch_reads(monkeypatch, lambda: held.append(fs._lock.locked()))
    data = os.urandom(BIG)
    fs.create("dataset/f", 0o644)
    fs.write("dataset/f", 0, data)
    _settled(fs, "dataset/f", BIG)
    assert readers, "the pipeline read nothing back"
    assert all(t.name == "nb-digest" for t in readers)
    assert held
    assert not any(held)
    assert fs.file_digest("dataset/f") == (sha(data), BIG)


def test_pipeline_thread_runs_only_on_an_idle_core(monkeypatch: pytest.MonkeyPatch) -> None:
    policies: list[int] = []
    _watch_reads(monkeypatch, lambda: policies.append(os.sched_getscheduler(0)))
    fs = SessionFs()
    fs.create("dataset/f", 0o644)
    fs.write("dataset/f", 0, b"p" * BIG)
    _settled(fs, "dataset/f", BIG)
    assert policies
    assert set(policies) == {os.SCHED_IDLE}
    assert os.sched_getscheduler(0) != os.SCHED_IDLE  # the writer's own thread is untouched


def test_overwrite_during_an_unlocked_read_is_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    fs = SessionFs()
    done: list[bool] = []

    def overwrite_once() -> None:
        if not done:  # between the pipeline's take and its read: the bytes change under it
            done.append(True)
            fs.write("dataset/f", 10, b"NEW")

    _watch_reads(monkeypatch, overwrite_once)
    data = bytearray(b"o" * BIG)
    fs.create("dataset/f", 0o644)
    fs.write("dataset/f", 0, bytes(data))
    _settled(fs, "dataset/f", BIG)
    data[10:13] = b"NEW"
    assert done
    assert fs._lookup("dataset/f").digest.result(BIG) is None  # dropped, not torn
    assert fs.file_digest("dataset/f") == (sha(bytes(data)), BIG)


def test_memfd_reader_outlives_the_file_being_cleared() -> None:
    content = FileContent()
    content.write(0, b"r" * BIG)
    fd = content.reader()
    assert fd is not None
    try:
        content.clear()
        assert os.pread(fd, 4, BIG - 4) == b"rrrr"
    finally:
        os.close(fd)
    small = FileContent()
    small.write(0, b"s")
    assert small.reader() is None  # a bytearray has no descriptor: copied under the lock


def test_export_copies_a_large_file_beside_its_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No pipeline thread: the export itself finishes the whole hash, beside the copy.
    monkeypatch.setattr(DigestPipeline, "submit", lambda self, digest: None)
    fs = SessionFs()
    data = os.urandom(3 * BIG)
    fs.create("dataset/f", 0o644)
    fs.write("dataset/f", 0, data)
    assert fs._lookup("dataset/f").digest._hashed == 0
    copiers: list[str] = []
    real = FileContent.copy_to

    def copy_to(self: FileContent, out_fd: int) -> None:
        copiers.append(threading.current_thread().name)
        real(self, out_fd)

    monkeypatch.setattr(FileContent, "copy_to", copy_to)
    seen: dict[str, tuple[bytes, int]] = {}
    fs.export_tree("dataset", tmp_path / "out", seen)
    assert copiers == ["nb-export"]
    assert seen == {"dataset/f": (sha(data), len(data))}
    assert (tmp_path / "out" / "f").read_bytes() == data


def test_export_copy_failure_reaches_the_exporter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = fs_with([(0, b"e" * BIG * 3)])

    def copy_to(self: FileContent, out_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FileContent, "copy_to", copy_to)
    with pytest.raises(OSError, match="No space"):
        fs.export_tree("dataset", tmp_path / "out", {})
