# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The virtio-vsock packet header (specs/vsock.md §4): a pure parser and encoder."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from user_runtime.vsock.errors import HeaderError

# §4.1: le64 src_cid, le64 dst_cid, le32 src_port, le32 dst_port, le32 len, le16 type,
# le16 op, le32 flags, le32 buf_alloc, le32 fwd_cnt.
HEADER = struct.Struct("<QQIIIHHIII")
HEADER_SIZE = HEADER.size  # 44
# §8: Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE; a longer payload is a guest fault.
MAX_PAYLOAD = 64 * 1024
TYPE_STREAM = 1
SHUTDOWN_RCV = 1
SHUTDOWN_SEND = 2
SHUTDOWN_MASK = SHUTDOWN_RCV | SHUTDOWN_SEND


class Op(IntEnum):
    """Packet operations (§4.2)."""

    REQUEST = 1
    RESPONSE = 2
    RST = 3
    SHUTDOWN = 4
    RW = 5
    CREDIT_UPDATE = 6
    CREDIT_REQUEST = 7


@dataclass(frozen=True, slots=True)
class PacketHeader:
    """One validated header; `to_bytes()` gives back the exact 44 bytes it came from."""

    src_cid: int
    dst_cid: int
    src_port: int
    dst_port: int
    length: int
    op: Op
    flags: int
    buf_alloc: int
    fwd_cnt: int

    def to_bytes(self) -> bytes:
        """Encode the header (stream type) as 44 little-endian bytes."""
        return encode_header(
            src_cid=self.src_cid,
            dst_cid=self.dst_cid,
            src_port=self.src_port,
            dst_port=self.dst_port,
            length=self.length,
            op=self.op,
            flags=self.flags,
            buf_alloc=self.buf_alloc,
            fwd_cnt=self.fwd_cnt,
        )


def encode_header(
    *,
    src_cid: int,
    dst_cid: int,
    src_port: int,
    dst_port: int,
    length: int,
    op: int,
    flags: int,
    buf_alloc: int,
    fwd_cnt: int,
) -> bytes:
    """Pack a stream-type header (§4.1); counters wrap at 2**32 as on the wire."""
    return HEADER.pack(
        src_cid,
        dst_cid,
        src_port,
        dst_port,
        length,
        TYPE_STREAM,
        op,
        flags,
        buf_alloc & 0xFFFFFFFF,
        fwd_cnt & 0xFFFFFFFF,
    )


def raw_ports(data: bytes) -> tuple[int, int] | None:
    """Return (src_port, dst_port) of a possibly invalid header, or None when it is short."""
    if len(data) < HEADER_SIZE:
        return None
    _, _, src_port, dst_port, *_ = HEADER.unpack_from(data)
    return src_port, dst_port


def parse_header(data: bytes) -> PacketHeader:
    """Parse and check the first 44 bytes of a packet sent by the guest (§4.3).

    Args:
        data: the packet; bytes after the header are not looked at.

    Returns:
        The header.

    Raises:
        HeaderError: `data` is shorter than 44 bytes, the type is not stream, the op is
            unknown, `len` is over 64 KiB or non-zero on a packet other than RW, or a
            SHUTDOWN carries flags other than RCV and SEND, or another op carries flags.
    """
    if len(data) < HEADER_SIZE:
        raise HeaderError(f"header is {len(data)} bytes, needs {HEADER_SIZE}")
    fields = HEADER.unpack_from(data)
    src_cid, dst_cid, src_port, dst_port, length, kind, op, flags, buf_alloc, fwd_cnt = fields
    if kind != TYPE_STREAM:
        raise HeaderError(f"unsupported socket type {kind}")
    try:
        known = Op(op)
    except ValueError:
        raise HeaderError(f"unknown op {op}") from None
    if length > MAX_PAYLOAD:
        raise HeaderError(f"len {length} is over {MAX_PAYLOAD}")
    if length and known is not Op.RW:
        raise HeaderError(f"len {length} on a {known.name} packet")
    allowed = SHUTDOWN_MASK if known is Op.SHUTDOWN else 0
    if flags & ~allowed:
        raise HeaderError(f"flags {flags:#x} on a {known.name} packet")
    return PacketHeader(
        src_cid, dst_cid, src_port, dst_port, length, known, flags, buf_alloc, fwd_cnt
    )
