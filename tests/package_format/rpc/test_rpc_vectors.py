# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Every frame in tests/vectors/rpc/ decodes, re-encodes byte-identically, or raises its class."""

from __future__ import annotations

from pathlib import Path

import pytest
from rpc_vectors import VECTOR_DIR, generator, read_vector, vector_files

from package_format.rpc import FrameDecoder, errors, parse_message
from package_format.rpc.frames import frame_bytes

VECTORS = vector_files()


def test_vector_set_is_not_empty() -> None:
    assert len(VECTORS) >= 20
    expects = {read_vector(p)[0]["expect"] for p in VECTORS}
    assert "success" in expects
    assert len(expects) >= 5


@pytest.mark.parametrize("path", VECTORS, ids=[p.name for p in VECTORS])
def test_vector_codec(path: Path) -> None:
    fields, lines = read_vector(path)
    expect_codec_error = fields["expect"] != "success" and fields["layer"] == "codec"
    for index, (_, data) in enumerate(lines):
        last = index == len(lines) - 1
        decoder = FrameDecoder()
        if last and expect_codec_error:
            error_class = getattr(errors, fields["expect"])
            with pytest.raises(error_class) as info:
                consume(decoder, data)
            assert type(info.value) is error_class
            assert "\n" not in str(info.value)
            return
        [frame] = decoder.feed(data)
        decoder.end_of_stream()
        parse_message(frame)
        assert frame_bytes(frame.header, frame.body) == data  # canonical: one encoding only
    assert not expect_codec_error


def consume(decoder: FrameDecoder, data: bytes) -> None:
    for frame in decoder.feed(data):
        parse_message(frame)
    decoder.end_of_stream()


def test_regenerated_vectors_are_byte_identical(tmp_path: Path) -> None:
    written = generator().generate(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in VECTORS)
    for path in written:
        assert path.read_bytes() == (VECTOR_DIR / path.name).read_bytes(), path.name
