# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The pure header parser (specs/vsock.md §4): vectors and a property test."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from user_runtime.vsock import HeaderError, Op, PacketHeader, parse_header
from user_runtime.vsock.packet import HEADER_SIZE, MAX_PAYLOAD

LAYOUT = struct.Struct("<QQIIIHHIII")

# §4.1 test vector: a guest (CID 16) port 1234 calling the host's port 9000.
REQUEST_VECTOR = bytes.fromhex(
    "1000000000000000" "0300000000000000" "d2040000" "28230000" "00000000"
    "0100" "0100" "00000000" "00000400" "00000000"
)  # fmt: skip


def test_request_vector() -> None:
    header = parse_header(REQUEST_VECTOR)
    assert header == PacketHeader(16, 3, 1234, 9000, 0, Op.REQUEST, 0, 256 * 1024, 0)
    assert header.to_bytes() == REQUEST_VECTOR
    assert HEADER_SIZE == 44


def _raw(**fields: int) -> bytes:
    values = dict.fromkeys(
        ("src_cid", "dst_cid", "src_port", "dst_port", "len", "type", "op", "flags",
         "buf_alloc", "fwd_cnt"), 0
    )  # fmt: skip
    values.update(type=1, op=5)
    values.update(fields)
    return LAYOUT.pack(*values.values())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (_raw()[:43], "one byte short"),
        (_raw(type=2), "seqpacket"),
        (_raw(type=0), "type zero"),
        (_raw(op=0), "op zero (INVALID)"),
        (_raw(op=8), "op after CREDIT_REQUEST"),
        (_raw(len=MAX_PAYLOAD + 1), "len over 64 KiB"),
        (_raw(op=1, len=1), "len on a REQUEST"),
        (_raw(op=4, flags=4), "unknown SHUTDOWN flag"),
        (_raw(op=5, flags=1), "flags on RW"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_headers_raise_header_error(data: bytes, reason: str) -> None:
    with pytest.raises(HeaderError):
        parse_header(data)


def test_trailing_bytes_are_not_the_header() -> None:
    assert parse_header(_raw(len=3) + b"abc").length == 3


@given(st.binary(min_size=0, max_size=64))
def test_any_bytes_parse_or_raise_header_error(data: bytes) -> None:
    try:
        header = parse_header(data)
    except HeaderError:
        return
    assert header.to_bytes() == data[:HEADER_SIZE]  # a valid header re-encodes exactly


@given(
    st.tuples(
        st.integers(0, 2**64 - 1),
        st.integers(0, 2**64 - 1),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
        st.sampled_from(list(Op)),
        st.integers(0, MAX_PAYLOAD),
        st.integers(0, 3),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
    )
)
def test_valid_headers_round_trip(fields) -> None:
    src_cid, dst_cid, src_port, dst_port, op, length, flags, buf_alloc, fwd_cnt = fields
    length = length if op is Op.RW else 0
    flags = flags if op is Op.SHUTDOWN else 0
    raw = LAYOUT.pack(
        src_cid, dst_cid, src_port, dst_port, length, 1, op, flags, buf_alloc, fwd_cnt
    )
    header = parse_header(raw)
    assert header.to_bytes() == raw
    assert (header.op, header.length, header.flags) == (op, length, flags)
