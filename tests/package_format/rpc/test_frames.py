# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The frame codec and message schemas, without sockets."""

from __future__ import annotations

import struct

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from package_format.errors import FormatError, LimitExceededError
from package_format.rpc import (
    BadArgumentsError,
    ErrorCode,
    Event,
    FrameDecoder,
    FrameLimits,
    FrameTooLargeError,
    Hello,
    MalformedFrameError,
    MessageSchemaError,
    NonCanonicalHeaderError,
    Request,
    Response,
    TruncatedFrameError,
    UnknownOpError,
    Welcome,
    choose_version,
    encode_frame,
    errno_code,
    parse_message,
    validate_args,
)
from package_format.rpc.frames import frame_bytes


def decode_one(data: bytes):
    [frame] = FrameDecoder().feed(data)
    return parse_message(frame)


def test_request_round_trip_with_raw_body() -> None:
    body = bytes(range(256)) * 10
    data = frame_bytes(Request(7, "write", {"path": "dataset/x", "offset": 3}).header(), body)
    _, body_len = struct.unpack(">II", data[:8])
    assert body_len == len(body)
    assert data.endswith(body)  # raw, not base64
    message = decode_one(data)
    assert message == Request(7, "write", {"path": "dataset/x", "offset": 3})
    assert bytes(message.body) == body


def test_encode_returns_body_uncopied_for_sendmsg() -> None:
    body = bytearray(b"x" * 100)
    head, payload = encode_frame({"type": "req", "id": 1, "op": "write", "args": {}}, body)
    assert payload is body
    assert struct.unpack(">II", head[:8])[1] == 100


def test_decoder_handles_one_byte_at_a_time_and_many_frames_per_chunk() -> None:
    frames = [
        frame_bytes(Request(i, "write", {"path": "p", "offset": i}).header(), bytes([i]) * i)
        for i in range(1, 6)
    ]
    stream = b"".join(frames)
    decoder = FrameDecoder()
    seen = [parse_message(f) for b in stream for f in decoder.feed(bytes([b]))]
    assert [m.id for m in seen] == [1, 2, 3, 4, 5]
    assert [bytes(m.body) for m in seen] == [bytes([i]) * i for i in range(1, 6)]
    assert [m.id for m in map(parse_message, FrameDecoder().feed(stream))] == [1, 2, 3, 4, 5]


def test_recv_into_api_gives_frame_its_own_buffer() -> None:
    data = frame_bytes(Event(3, "stdout").header(), b"line\n")
    decoder = FrameDecoder()
    frame = None
    view = memoryview(data)
    while frame is None:
        target = decoder.buffer()
        count = min(len(target), len(view))
        target[:count] = view[:count]
        view = view[count:]
        frame = decoder.advance(count)
    again = decoder.feed(data)[0]
    assert bytes(frame.body) == bytes(again.body) == b"line\n"


def test_oversized_frame_rejected_before_allocation() -> None:
    decoder = FrameDecoder(FrameLimits(max_header=100, max_frame=1000))
    with pytest.raises(FrameTooLargeError):
        decoder.feed(struct.pack(">II", 101, 0))
    with pytest.raises(FrameTooLargeError):
        FrameDecoder(FrameLimits(max_frame=1000)).feed(struct.pack(">II", 10, 991))
    with pytest.raises(FrameTooLargeError):
        FrameDecoder().feed(struct.pack(">II", 0xFFFFFFFF, 0xFFFFFFFF))
    assert issubclass(FrameTooLargeError, LimitExceededError)


def test_encoder_refuses_oversized_frame() -> None:
    with pytest.raises(FrameTooLargeError):
        encode_frame({"type": "req"}, b"x" * 1000, FrameLimits(max_frame=999))


def test_truncated_frame_detected_at_end_of_stream() -> None:
    data = frame_bytes(Request(1, "ping", {}).header())
    for cut in (1, 7, 8, len(data) - 1):
        decoder = FrameDecoder()
        assert decoder.feed(data[:cut]) == []
        with pytest.raises(TruncatedFrameError):
            decoder.end_of_stream()
    decoder = FrameDecoder()
    decoder.feed(data)
    decoder.end_of_stream()  # a clean end between frames is fine


def test_header_with_deep_nesting_rejected() -> None:
    nested: object = 1
    for _ in range(20):
        nested = [nested]
    with pytest.raises(MalformedFrameError):
        encode_frame({"type": "req", "x": nested})
    import cbor2

    raw = cbor2.dumps({"a": nested}, canonical=True)
    with pytest.raises(MalformedFrameError):
        FrameDecoder().feed(struct.pack(">II", len(raw), 0) + raw)


def test_header_with_bignum_rejected() -> None:
    import cbor2

    raw = cbor2.dumps({"id": 2**64}, canonical=True)
    with pytest.raises(MalformedFrameError):
        FrameDecoder().feed(struct.pack(">II", len(raw), 0) + raw)


@pytest.mark.parametrize(
    "header",
    [
        {"type": "req", "id": 1, "op": "ping"},
        {"type": "req", "id": -1, "op": "ping", "args": {}},
        {"type": "req", "id": 1, "op": 5, "args": {}},
        {"type": "req", "id": 1, "op": "ping", "args": []},
        {"type": "res", "id": 1, "status": "ok", "args": {}},
        {"type": "hello", "id": 0, "args": {"versions": []}},
        {"type": "hello", "id": 1, "args": {"versions": [1]}},
        {"type": "hello", "id": 0, "args": {"versions": [1], "x": 1}},
        {"type": "welcome", "id": 0, "args": {"version": 1}},
        {"type": "req", "id": True, "op": "ping", "args": {}},
    ],
    ids=str,
)
def test_malformed_message_rejected(header: dict) -> None:
    with pytest.raises(MessageSchemaError):
        decode_one(frame_bytes(header))


def test_handshake_messages_round_trip() -> None:
    assert decode_one(frame_bytes(Hello((1, 2)).header())) == Hello((1, 2))
    welcome = Welcome(1, FrameLimits(max_header=1000, max_frame=5000, max_chunk=2000))
    assert decode_one(frame_bytes(welcome.header())) == welcome
    assert choose_version((3, 1, 2)) == 1
    assert choose_version((2,)) is None


def test_error_response_carries_code_and_name() -> None:
    reply = decode_one(frame_bytes(Response.error(4, ErrorCode.ENOSPC, "dataset/x: full").header()))
    assert (reply.status, reply.args["name"], reply.ok) == (28, "ENOSPC", False)
    assert ErrorCode.ENOSPC.is_errno
    assert not ErrorCode.BUSY.is_errno
    assert errno_code(2) is ErrorCode.ENOENT
    assert errno_code(5) is ErrorCode.EINVAL  # unlisted errno
    assert errno_code(1003) is ErrorCode.EINVAL  # not an errno


def test_validate_args_fills_defaults_and_checks_types() -> None:
    assert validate_args("create", {"path": "a"}) == {
        "path": "a",
        "mode": 0o644,
        "truncate": True,
        "exclusive": False,
    }
    assert validate_args("run", {"bundle": "b", "entrypoint": "e"})["args"] == []
    with pytest.raises(UnknownOpError):
        validate_args("exec", {})
    for args in (
        {},
        {"path": "a", "size": -1},
        {"path": "a", "size": True},
        {"path": "a", "size": 1, "z": 0},
    ):
        with pytest.raises(BadArgumentsError):
            validate_args("truncate", args)
    with pytest.raises(BadArgumentsError):
        validate_args("run", {"bundle": "b", "entrypoint": "e", "args": ["ok", 3]})
    assert issubclass(BadArgumentsError, FormatError)


headers = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=8), headers, max_size=6), st.binary(max_size=64))
def test_any_valid_header_round_trips_byte_identically(header: dict, body: bytes) -> None:
    try:
        data = frame_bytes(header, body)
    except MalformedFrameError:
        return  # nesting deeper than the limit
    [frame] = FrameDecoder().feed(data)
    assert frame.header == header
    assert bytes(frame.body) == body
    assert frame_bytes(frame.header, frame.body) == data


def test_reused_buffer_decoder_gives_each_frame_in_turn() -> None:
    decoder = FrameDecoder(FrameLimits(max_frame=4096), reuse_buffer=True)
    frames = [
        frame_bytes(Request(i, "write", {"path": "p", "offset": 0}).header(), bytes([i]) * 100)
        for i in (1, 2)
    ]
    first = decoder.feed(frames[0])[0]
    assert bytes(first.body) == b"\x01" * 100
    second = decoder.feed(frames[1])[0]
    assert bytes(second.body) == b"\x02" * 100  # the earlier body is now overwritten, as documented
    decoder.feed(frames[0][:5])
    with pytest.raises(TruncatedFrameError):
        decoder.end_of_stream()


@given(st.dictionaries(st.text(max_size=8), headers, max_size=6))
def test_encoder_writes_exactly_cbor2s_canonical_bytes(header: dict) -> None:
    # The encoder orders keys itself and dumps plainly (faster); the bytes must be the
    # spec's reference encoding all the same (specs/rpc-protocol.md §1).
    try:
        head, _ = encode_frame(header)
    except MalformedFrameError:
        return  # nesting deeper than the limit
    assert head[8:] == cbor2.dumps(header, canonical=True)


@given(st.dictionaries(st.text(max_size=8), headers, min_size=2, max_size=6), st.booleans())
def test_unsorted_map_keys_rejected_at_any_depth(inner: dict, nest: bool) -> None:
    unsorted = dict(reversed(cbor2.loads(cbor2.dumps(inner, canonical=True)).items()))
    header = {"a": unsorted} if nest else unsorted
    raw = cbor2.dumps(header)  # plain: keeps the reversed order
    data = struct.pack(">II", len(raw), 0) + raw
    with pytest.raises((NonCanonicalHeaderError, MalformedFrameError)):
        FrameDecoder().feed(data)


@pytest.mark.parametrize("wrap", [lambda v: [v], lambda v: {"k": v}])
def test_nesting_limit_is_exactly_eight_levels_below_the_header(wrap) -> None:
    # §3.2: the header map is level 0; a value 8 levels below it is the deepest allowed.
    def nest(levels: int) -> object:
        value: object = 1
        for _ in range(levels - 1):
            value = wrap(value)
        return value

    assert FrameDecoder().feed(frame_bytes({"a": nest(8)}))[0].header == {"a": nest(8)}
    with pytest.raises(MalformedFrameError):
        encode_frame({"a": nest(9)})
    raw = cbor2.dumps({"a": nest(9)})
    with pytest.raises(MalformedFrameError):
        FrameDecoder().feed(struct.pack(">II", len(raw), 0) + raw)
