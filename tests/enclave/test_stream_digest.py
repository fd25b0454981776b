# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Session files' running SHA-256 (enclave.stream_digest, specs/receipts.md §4.1)."""

from __future__ import annotations

import hashlib
import threading

import pytest

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
