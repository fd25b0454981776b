# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`BundleReader.segments`: batches, spans and the guards of the parallel-decrypt API (§7.3)."""

from __future__ import annotations

import io

import pytest

from package_format.bundle import BundleReader, build_header, public_key_of, write_bundle
from package_format.bundle.errors import (
    KeyCommitmentError,
    PayloadAlreadyReadError,
    SignatureNotVerifiedError,
    TrailingDataError,
    TruncatedPayloadError,
)
from package_format.bundle.manifest import Entrypoint, FileEntry, Manifest, OutputPolicy
from package_format.bundle.segments import FileSpans, Span

SEED = bytes(range(32))
KEY = b"K" * 32
FILES = (
    FileEntry("a", 0, 0o755, "dir"),
    FileEntry("a/x", 100, 0o644),
    FileEntry("a/y", 0, 0o644),
    FileEntry("b", 30, 0o644),
)
DATA = {"a/x": bytes(range(100)), "a/y": b"", "b": b"B" * 30}


def _bundle() -> bytes:
    manifest = Manifest(
        name="s",
        version="1.0.0",
        created=1,
        entrypoints=(Entrypoint(name="b", path="b"),),
        output=OutputPolicy(stdout=True, stderr=True, files=False, max_files_size=0),
        files=FILES,
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
    out = io.BytesIO()
    write_bundle(
        out, header, signing_key=SEED, data_key=KEY, open_file=lambda e: io.BytesIO(DATA[e.path])
    )
    return out.getvalue()


def _reader(data: bytes) -> BundleReader:
    reader = BundleReader.open(io.BytesIO(data))
    reader.verify_signature([public_key_of(SEED)])
    return reader


def test_spans_cut_ranges_at_file_boundaries() -> None:
    spans = FileSpans(FILES)
    assert list(spans.spans(0, 64)) == [Span(1, 0, 0, 64)]
    assert list(spans.spans(64, 64)) == [Span(1, 64, 0, 36), Span(3, 0, 36, 28)]
    assert list(spans.spans(128, 2)) == [Span(3, 28, 0, 2)]


def test_batches_open_to_the_plaintext() -> None:
    segs = _reader(_bundle()).segments(KEY)
    assert (segs.count, segs.plain_size(1), segs.plain_size(2)) == (3, 64, 2)
    buf = memoryview(bytearray(200))
    first = segs.read_batch(buf, 1)
    assert (first.first, len(first.sealed), first.error, first.done) == (0, 1, None, False)
    out = bytearray(64)
    segs.open_into(0, first.sealed[0], memoryview(out))
    assert bytes(out) == DATA["a/x"][:64]
    second = segs.read_batch(buf, 5)
    assert (second.first, len(second.sealed), second.error, second.done) == (1, 2, None, True)
    with pytest.raises(ValueError, match="already read"):
        segs.read_batch(buf, 1)


def test_truncated_batch_keeps_complete_segments_and_names_the_stop() -> None:
    data = _bundle()
    segs = _reader(data[:-10]).segments(KEY)
    batch = segs.read_batch(memoryview(bytearray(200)), 3)
    assert len(batch.sealed) == 2
    assert batch.done
    assert isinstance(batch.error, TruncatedPayloadError)
    assert str(batch.error) == "payload: ends inside a segment (segment 2 of 3)"


def test_trailing_bytes_reported_with_the_last_batch() -> None:
    segs = _reader(_bundle() + b"!").segments(KEY)
    batch = segs.read_batch(memoryview(bytearray(200)), 3)
    assert len(batch.sealed) == 3
    assert isinstance(batch.error, TrailingDataError)


def test_small_buffer_rejected() -> None:
    segs = _reader(_bundle()).segments(KEY)
    with pytest.raises(ValueError, match="too small"):
        segs.read_batch(memoryview(bytearray(50)), 1)


def test_segments_need_the_signature_checked_and_run_once() -> None:
    reader = BundleReader.open(io.BytesIO(_bundle()))
    with pytest.raises(SignatureNotVerifiedError):
        reader.segments(KEY)
    reader.verify_signature([public_key_of(SEED)])
    with pytest.raises(KeyCommitmentError):
        reader.segments(b"X" * 32)
    with pytest.raises(PayloadAlreadyReadError):
        reader.segments(KEY)


class _ViewStream(io.BytesIO):
    """A stream with `readview`, as enclave.mapped_source offers."""

    def readview(self, size: int) -> memoryview:
        data = self.read(size)
        return memoryview(data)


@pytest.mark.parametrize("cut", [0, 10], ids=["whole", "truncated"])
def test_read_batch_from_readview_matches_the_copying_read(cut: int) -> None:
    data = _bundle()
    data = data[: len(data) - cut]
    copied = _reader(data).segments(KEY)
    reader = BundleReader.open(_ViewStream(data))
    reader.verify_signature([public_key_of(SEED)])
    viewed = reader.segments(KEY)
    untouched = bytearray(200)
    a = copied.read_batch(memoryview(bytearray(200)), 3)
    b = viewed.read_batch(memoryview(untouched), 3)
    assert [bytes(v) for v in a.sealed] == [bytes(v) for v in b.sealed]
    assert (type(a.error), str(a.error), a.done) == (type(b.error), str(b.error), b.done)
    assert untouched == bytearray(200)  # the views are the stream's, nothing was copied


def test_reader_misuse_is_not_reported_as_a_bad_bundle() -> None:
    # Issue 19: misuse is a RuntimeError; a CLI catching PackageFormatError must not see it.
    from package_format.errors import PackageFormatError

    for error in (SignatureNotVerifiedError, PayloadAlreadyReadError):
        assert issubclass(error, RuntimeError)
        assert not issubclass(error, PackageFormatError)
