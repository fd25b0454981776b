# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Frame codec: 8-byte prefix, deterministic CBOR header, raw body (specs/rpc-protocol.md §3).

    frame = header_length:u32be  body_length:u32be  header  body

The decoder is incremental and never copies a body twice: the caller asks for
`buffer()`, receives into it (`socket.recv_into`), and reports the count to
`advance()`. Each frame gets its own buffer, so a returned frame's body stays
valid for as long as the caller holds it.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, NamedTuple, TypeAlias

import cbor2

from package_format.limits import CborScanError, decode_cbor
from package_format.rpc.errors import (
    FrameTooLargeError,
    MalformedFrameError,
    NonCanonicalHeaderError,
    TruncatedFrameError,
)

PREFIX = struct.Struct(">II")
PREFIX_SIZE = PREFIX.size
_MAX_DEPTH = 8  # specs/rpc-protocol.md §3.2: headers are shallow
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
# specs/rpc-protocol.md §3.2: items in one header (lists hold at most 1,024 entries).
HEADER_CBOR_ITEMS = 16384
_EMPTY = memoryview(b"")

BytesLike: TypeAlias = bytes | bytearray | memoryview


# NamedTuples, not dataclasses: `dataclasses` imports `inspect`, ~15 ms of every
# `user-runtime run` start (issue 5 asks for a lean client).
class FrameLimits(NamedTuple):
    """Limits on frames from an untrusted peer (specs/rpc-protocol.md §3.3)."""

    max_header: int = 64 * 1024
    """Largest header, in bytes."""
    max_frame: int = 4 * 1024 * 1024
    """Largest header plus body, in bytes (the prefix is not counted)."""
    max_chunk: int = 1024 * 1024
    """Largest read or write body, and largest output chunk in one event."""


DEFAULT_LIMITS = FrameLimits()


class Frame(NamedTuple):
    """One decoded frame: a validated header map and the raw body."""

    header: dict[str, Any]
    body: memoryview


def encode_frame(
    header: Mapping[str, Any], body: BytesLike = b"", limits: FrameLimits = DEFAULT_LIMITS
) -> tuple[bytes, BytesLike]:
    """Encode one frame as two buffers, ready for `socket.sendmsg`.

    Args:
        header: the message header (a map of text keys).
        body: the raw body; not copied.
        limits: the limits the peer enforces.

    Returns:
        `(prefix + header bytes, body)`.

    Raises:
        FrameTooLargeError: the frame exceeds `limits`.
        MalformedFrameError: the header holds a value the protocol does not allow.
    """
    # cbor2's own canonical mode costs ~7x a plain dump; with every map already in
    # deterministic key order (`_canonical` reorders a copy when needed), a plain dump
    # writes the same bytes (our types leave no other choice to an encoder).
    encoded = cbor2.dumps(_canonical(header, 0))
    body_len = memoryview(body).nbytes
    if len(encoded) > limits.max_header or len(encoded) + body_len > limits.max_frame:
        raise FrameTooLargeError(
            f"frame of {len(encoded)} + {body_len} bytes exceeds the limit of {limits.max_frame}"
        )
    return PREFIX.pack(len(encoded), body_len) + encoded, body


def frame_bytes(
    header: Mapping[str, Any], body: BytesLike = b"", limits: FrameLimits = DEFAULT_LIMITS
) -> bytes:
    """Encode one frame as a single bytes object (vectors, tests, small frames).

    Args:
        header: the message header.
        body: the raw body.
        limits: the limits the peer enforces.

    Returns:
        The frame's bytes.

    Raises:
        FrameTooLargeError: the frame exceeds `limits`.
        MalformedFrameError: the header holds a value the protocol does not allow.
    """
    head, payload = encode_frame(header, body, limits)
    return head + bytes(payload)


def decode_header(data: BytesLike) -> dict[str, Any]:
    """Decode and validate a header: canonical CBOR map, text keys, allowed types only.

    Args:
        data: the header bytes.

    Returns:
        The header map.

    Raises:
        MalformedFrameError: not CBOR, not a map, or holds a disallowed type.
        NonCanonicalHeaderError: valid CBOR but not deterministically encoded.
    """
    raw = bytes(data)
    try:
        # Items and depth are checked before cbor2 builds anything (DECODE_LIMITS).
        value = decode_cbor(raw, max_items=HEADER_CBOR_ITEMS, max_depth=_MAX_DEPTH + 1)
    except CborScanError as e:
        if e.trailing:
            raise NonCanonicalHeaderError("frame header has bytes after its cbor map") from e
        raise MalformedFrameError(f"frame header is not valid cbor: {e}") from e
    if not isinstance(value, dict):
        raise MalformedFrameError("frame header is not a cbor map")
    if not _check_value(value, 0) or cbor2.dumps(value) != raw:
        # Unsorted keys, or bytes a plain re-encoding of the (sorted) value does not give
        # back: non-minimal lengths, indefinite lengths, duplicate keys, trailing bytes.
        raise NonCanonicalHeaderError("frame header is not in deterministic cbor encoding")
    return value


def _key_order(key: str) -> tuple[int, str]:
    # Deterministic CBOR sorts text keys by their encoding: UTF-8 length first, then
    # bytes, and code point order is UTF-8 byte order.
    return (len(key) if key.isascii() else len(key.encode("utf-8", "surrogatepass")), key)


def _sorted_pair(first: str, second: str) -> bool:
    """Whether `first` sorts strictly before `second` as deterministic CBOR map keys."""
    if first.isascii() and second.isascii():
        return len(first) < len(second) or (len(first) == len(second) and first < second)
    return _key_order(first) < _key_order(second)


def _canonical(value: Any, depth: int) -> Any:
    """Check `value` like `_check_value`; return it with every map in deterministic key order."""
    if not _check_value(value, depth):
        return _reordered(value)
    return value if type(value) is dict else dict(value)


def _reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reordered(value[k]) for k in sorted(value, key=_key_order)}
    if isinstance(value, (list, tuple)):
        return [_reordered(item) for item in value]
    return value


def _check_value(value: object, depth: int) -> bool:
    """Raise unless `value` holds only the protocol's types; return whether its keys are sorted.

    specs/rpc-protocol.md §3.2: maps with text keys, arrays, text, bytes, integers in
    [-2^63, 2^64-1], booleans and null; no tags, no floats. A type error anywhere wins
    over a key-order error (the order is only reported, for the caller to decide).
    Every frame passes here twice (sender and receiver), hence the exact-type fast path.
    """
    if depth > _MAX_DEPTH:
        raise MalformedFrameError("frame header nests too deeply")
    kind = type(value)
    if kind is str or kind is bytes or kind is bool or value is None:
        return True
    if kind is dict:
        return _check_map(value, depth)  # type: ignore[arg-type]
    if kind is list or kind is tuple:
        # Every item is checked (no early exit), so a type error anywhere wins.
        results = [_check_value(item, depth + 1) for item in value]  # type: ignore[attr-defined]
        return all(results)
    if isinstance(value, (str, bytes)):  # subclasses
        return True
    if isinstance(value, int):  # bool is handled above
        if not _INT_MIN <= value <= _INT_MAX:
            raise MalformedFrameError("frame header holds an integer out of range")
        return True
    raise MalformedFrameError(f"frame header holds a disallowed type {type(value).__name__}")


def _check_map(value: dict[Any, Any], depth: int) -> bool:
    ordered = True
    previous: str | None = None
    inline = depth < _MAX_DEPTH  # the values' own depth is within the limit
    for key, item in value.items():
        if type(key) is not str:
            raise MalformedFrameError("frame header map has a non-text key")
        if ordered and previous is not None and not _sorted_pair(previous, key):
            ordered = False
        previous = key
        kind = type(item)  # scalars inline: one call per map, not per value
        if inline and (kind is str or (kind is int and _INT_MIN <= item <= _INT_MAX)):
            continue
        if not _check_value(item, depth + 1):
            ordered = False
    return ordered


class FrameDecoder:
    """Incremental decoder for one direction of one connection.

    With `reuse_buffer`, every frame is received into one buffer allocated
    once: a frame's body is then valid only until the next `advance` or
    `feed`, which suits a consumer that handles each frame before reading on
    (the server) and saves an allocation per frame.
    """

    def __init__(self, limits: FrameLimits = DEFAULT_LIMITS, *, reuse_buffer: bool = False) -> None:
        self._limits = limits
        self._scratch: memoryview | None = None
        self._reuse = reuse_buffer
        self._prefix = bytearray(PREFIX_SIZE)
        self._prefix_view = memoryview(self._prefix)
        self._payload: bytearray | None = None
        self._payload_view = _EMPTY
        self._header_len = 0
        self._filled = 0

    @property
    def mid_frame(self) -> bool:
        """Whether some bytes of an unfinished frame have been received."""
        return self._filled > 0 or self._payload is not None

    def buffer(self) -> memoryview:
        """Return the writable buffer the next received bytes must go into.

        Receive at most `len(buffer())` bytes into it, then call `advance`.
        """
        if self._payload is None:
            return self._prefix_view[self._filled :]
        return self._payload_view[self._filled :]

    def advance(self, count: int) -> Frame | None:
        """Account for `count` bytes received into `buffer()`.

        Args:
            count: how many bytes were written into the last `buffer()`.

        Returns:
            The frame completed by these bytes, or None.

        Raises:
            FrameTooLargeError: the prefix declares sizes over the limits.
            MalformedFrameError: the header is not a valid header.
        """
        self._filled += count
        if self._payload is None:
            if self._filled < PREFIX_SIZE:
                return None
            header_len, body_len = PREFIX.unpack(self._prefix)
            self._start_payload(header_len, body_len)
            return None  # the header is never empty, so the frame is not done
        if self._filled < len(self._payload_view):
            return None
        return self._finish()

    def feed(self, data: BytesLike) -> list[Frame]:
        """Decode every frame completed by `data` (copies it; for tests and small reads).

        Args:
            data: received bytes.

        Returns:
            The frames completed, in order.

        Raises:
            FrameTooLargeError: a prefix declares sizes over the limits.
            MalformedFrameError: a header is not a valid header.
        """
        view = memoryview(data).cast("B")
        frames = []
        while view:
            target = self.buffer()
            count = min(len(target), len(view))
            target[:count] = view[:count]
            view = view[count:]
            frame = self.advance(count)
            if frame is not None:
                frames.append(frame)
        return frames

    def end_of_stream(self) -> None:
        """Report that the peer closed the stream.

        Raises:
            TruncatedFrameError: the stream ended inside a frame.
        """
        if self.mid_frame:
            raise TruncatedFrameError("connection closed in the middle of a frame")

    def _start_payload(self, header_len: int, body_len: int) -> None:
        # specs/rpc-protocol.md §3.3: check both lengths before allocating anything.
        if header_len == 0:
            raise MalformedFrameError("frame has an empty header")
        if header_len > self._limits.max_header:
            raise FrameTooLargeError(
                f"frame header of {header_len} bytes exceeds {self._limits.max_header}"
            )
        if header_len + body_len > self._limits.max_frame:
            raise FrameTooLargeError(
                f"frame of {header_len + body_len} bytes exceeds {self._limits.max_frame}"
            )
        self._header_len = header_len
        if self._reuse:
            if self._scratch is None:
                self._scratch = memoryview(bytearray(self._limits.max_frame))
            self._payload = bytearray()  # marks "in a frame"; the bytes go to the scratch
            self._payload_view = self._scratch[: header_len + body_len]
        else:
            self._payload = bytearray(header_len + body_len)
            self._payload_view = memoryview(self._payload)
        self._filled = 0

    def _finish(self) -> Frame:
        view = self._payload_view
        header_len = self._header_len
        self._payload = None
        self._payload_view = _EMPTY
        self._filled = 0
        header = decode_header(view[:header_len])
        return Frame(header, view[header_len:])
