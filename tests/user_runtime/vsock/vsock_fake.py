# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""A fake QEMU and guest driver for the vsock back-end tests.

`FakeFrontEnd` (on `vsock_fake_qemu.FakeQemu`) speaks vhost-user over a real Unix socket,
shares a memfd "guest RAM" in two regions (so both address translations matter), lays out
real split virtqueues in it, and plays the guest's virtio-vsock driver: it posts rx buffers, sends tx packets, kicks the
back-end and reads the used rings. `GuestConn` is a guest stream socket on top of it that
obeys (and checks) credit-based flow control. Nothing here imports the back-end's code:
the layouts are written from the specs so that the tests check the back-end against them.
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vsock_fake_qemu import (
    F_NEXT,
    QSIZE,
    RAW_DESCS,
    TIMEOUT,
    TX_BASE,
    TX_SLOT_SIZE,
    TX_SLOTS,
    FakeQemu,
)

HDR = struct.Struct("<QQIIIHHIII")
REQUEST, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST = range(1, 8)
SHUT_RCV, SHUT_SEND = 1, 2


class WaitTimeoutError(AssertionError):
    """Something the test waited for did not happen (a hang, not a timing check)."""


@dataclass
class Packet:
    src_cid: int
    dst_cid: int
    src_port: int
    dst_port: int
    op: int
    flags: int
    buf_alloc: int
    fwd_cnt: int
    payload: bytes


@dataclass(eq=False)
class GuestConn:
    """A guest-side stream socket."""

    guest: FakeFrontEnd
    local_port: int
    peer_cid: int
    peer_port: int
    buf_alloc: int = 256 * 1024
    state: str = "connecting"
    inbox: bytearray = field(default_factory=bytearray)
    rx_cnt: int = 0  # payload bytes received
    fwd_cnt: int = 0  # payload bytes consumed by the application
    sent_fwd_cnt: int = 0
    tx_cnt: int = 0
    peer_buf_alloc: int = 0
    peer_fwd_cnt: int = 0
    peer_shutdown: int = 0
    reset: bool = False

    def credit(self) -> int:
        return self.peer_buf_alloc - (self.tx_cnt - self.peer_fwd_cnt)

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self.guest.wait(lambda: self.credit() > 0 or self.reset, "credit from the host")
            if self.reset:
                raise ConnectionResetError("reset by the host")
            size = min(len(view), self.credit(), 64 * 1024)
            self.guest.send_packet(self, RW, 0, bytes(view[:size]))
            self.tx_cnt += size
            view = view[size:]

    def recv(self, size: int) -> bytes:
        """Wait for up to `size` bytes; b"" at end of stream."""
        self.guest.wait(lambda: self.inbox or self.peer_shutdown & SHUT_SEND or self.reset, "data")
        data = bytes(self.inbox[:size])
        del self.inbox[:size]
        self.consumed(len(data))
        return data

    def recv_exact(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            chunk = self.recv(size - len(out))
            if not chunk:
                raise EOFError(f"end of stream after {len(out)} of {size} bytes")
            out += chunk
        return bytes(out)

    def recv_all(self) -> bytes:
        out = bytearray()
        while chunk := self.recv(1 << 20):
            out += chunk
        return bytes(out)

    def consumed(self, size: int) -> None:
        # As Linux does: tell the peer about freed room once a good part of it is free.
        self.fwd_cnt += size
        if self.fwd_cnt - self.sent_fwd_cnt >= self.buf_alloc // 4 and not self.reset:
            self.guest.send_packet(self, CREDIT_UPDATE, 0, b"")

    def shutdown(self, flags: int) -> None:
        self.guest.send_packet(self, SHUTDOWN, flags, b"")

    def close(self) -> None:
        """Full shutdown, then wait for the host's RST, as Linux's close() does."""
        if not self.reset:
            self.shutdown(SHUT_RCV | SHUT_SEND)
            self.guest.wait(lambda: self.reset, "RST after close")
        self.guest.conns.pop((self.local_port, self.peer_port), None)


class FakeFrontEnd(FakeQemu):
    """QEMU's vhost-user front-end plus a guest virtio-vsock driver, in one object."""

    def __init__(self, path: str, guest_cid: int = 16, **rings: Any) -> None:
        super().__init__(path, guest_cid, **rings)
        self.free_slots = list(range(TX_SLOTS))
        self.conns: dict[tuple[int, int], GuestConn] = {}
        self.listening: dict[int, list[GuestConn]] = {}
        self.unmatched: list[Packet] = []  # packets for no guest socket (e.g. RST to a REQUEST)
        self.credit_violations: list[str] = []
        self.in_rx = False
        self.silent = False  # True: no RST for packets that match no guest socket
        self.next_port = 50000
        self.raw_used: list[tuple[int, int]] = []  # used elems of hand-made tx chains
        self.refused_rx: list[tuple[int, int]] = []  # rx buffers returned without a packet

    # -- the driver ----------------------------------------------------------------------

    def pump(self, timeout: float) -> None:
        """Wait for a call (or `timeout`), then handle every used buffer."""
        ready, _, _ = select.select(self.call[:2], [], [], timeout)
        for fd in ready:
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(fd)
        for head, length in self.used_elems(1):
            if head in RAW_DESCS:
                self.raw_used.append((head, length))
            else:
                self.free_slots.append(head // 2)
        if self.in_rx:  # called again from receive() (waiting for a tx slot): tx only
            return
        self.in_rx = True
        try:
            self._reap_rx()
        finally:
            self.in_rx = False

    def _reap_rx(self) -> None:
        reposted = False
        for head, length in self.used_elems(0):
            index = head // 2 if self.rx_split else head
            if length < 44:  # a buffer the back-end refused (or could not fill)
                self.refused_rx.append((head, length))
            else:
                self.receive(self.read(self.rx_buffer(index), length))
            self.post_rx(index, kick=False)
            reposted = True
        if reposted:
            os.eventfd_write(self.kick[0], 1)

    def wait(self, condition: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise WaitTimeoutError(f"timed out waiting for {what}")
            self.pump(0.05)

    def receive(self, raw: bytes) -> None:
        fields = HDR.unpack_from(raw)
        src_cid, dst_cid, src_port, dst_port, length, kind, op, flags, buf_alloc, fwd = fields
        assert kind == 1, fields
        assert dst_cid == self.guest_cid, fields
        packet = Packet(
            src_cid, dst_cid, src_port, dst_port, op, flags, buf_alloc, fwd, raw[44 : 44 + length]
        )
        assert len(packet.payload) == length, "payload shorter than its len"
        conn = self.conns.get((dst_port, src_port))
        if op == REQUEST and dst_port in self.listening:
            conn = GuestConn(
                self,
                dst_port,
                src_cid,
                src_port,
                state="established",
                peer_buf_alloc=buf_alloc,
                peer_fwd_cnt=fwd,
            )
            self.conns[(dst_port, src_port)] = conn
            self.send_packet(conn, RESPONSE, 0, b"")
            self.listening[dst_port].append(conn)
            return
        if conn is None:
            self.unmatched.append(packet)
            if op != RST and not self.silent:
                self.send_raw_header(dst_port, src_cid, src_port, RST)
            return
        conn.peer_buf_alloc, conn.peer_fwd_cnt = buf_alloc, fwd
        if op == RESPONSE:
            conn.state = "established"
        elif op == RST:
            conn.reset = True
            conn.state = "closed"
        elif op == SHUTDOWN:
            conn.peer_shutdown |= flags
        elif op == RW:
            conn.rx_cnt += length
            if conn.rx_cnt - conn.fwd_cnt > conn.buf_alloc:
                self.credit_violations.append(f"{conn.rx_cnt - conn.fwd_cnt} bytes in flight")
            conn.inbox += packet.payload
        elif op == CREDIT_REQUEST:
            self.send_packet(conn, CREDIT_UPDATE, 0, b"")

    def take_slot(self) -> int:
        self.wait(lambda: self.free_slots, "a free tx slot")
        return self.free_slots.pop()

    def send_bytes(self, header: bytes, payload: bytes, hdr_len: int | None = None) -> None:
        """Queue one tx packet as two descriptors: header, then payload (if any)."""
        slot = self.take_slot()
        base = TX_BASE + slot * TX_SLOT_SIZE
        self.write(base, header)
        self.write(base + 64, payload)
        head = 2 * slot
        length = len(header) if hdr_len is None else hdr_len
        if payload:
            self.set_desc(1, head, base, length, F_NEXT, head + 1)
            self.set_desc(1, head + 1, base + 64, len(payload), 0)
        else:
            self.set_desc(1, head, base, length, 0)
        self.make_avail(1, head)

    def post_raw_tx(self, descs: dict[int, tuple[int, int, int, int]], head: int) -> None:
        """Queue a hand-made tx chain: {index: (addr, len, flags, next)} from `head`."""
        for index, (addr, length, flags, nxt) in descs.items():
            self.set_desc(1, index, addr, length, flags, nxt)
        self.make_avail(1, head)

    def next_rx_head(self) -> int:
        """The rx chain the back-end will take next (it takes them in avail order)."""
        slot = self.used_idx(0) % QSIZE
        return int(struct.unpack("<H", self.read(self.ring(0)[1] + 4 + 2 * slot, 2))[0])

    def header(self, conn: GuestConn, op: int, flags: int, length: int) -> bytes:
        conn.sent_fwd_cnt = conn.fwd_cnt
        return HDR.pack(
            self.guest_cid,
            conn.peer_cid,
            conn.local_port,
            conn.peer_port,
            length,
            1,
            op,
            flags,
            conn.buf_alloc,
            conn.fwd_cnt,
        )

    def send_packet(self, conn: GuestConn, op: int, flags: int, payload: bytes) -> None:
        self.send_bytes(self.header(conn, op, flags, len(payload)), payload)

    def send_raw_header(self, src_port: int, dst_cid: int, dst_port: int, op: int) -> None:
        self.send_bytes(
            HDR.pack(self.guest_cid, dst_cid, src_port, dst_port, 0, 1, op, 0, 0, 0), b""
        )

    # -- sockets -------------------------------------------------------------------------

    def connect(self, port: int, cid: int = 3) -> GuestConn:
        self.next_port += 1
        conn = GuestConn(self, self.next_port, cid, port)
        self.conns[(conn.local_port, port)] = conn
        self.send_packet(conn, REQUEST, 0, b"")
        self.wait(lambda: conn.state != "connecting", f"an answer to connect({port})")
        if conn.reset:
            self.conns.pop((conn.local_port, port), None)
            raise ConnectionRefusedError(f"port {port} refused")
        return conn

    def listen(self, port: int) -> None:
        self.listening[port] = []

    def accept(self, port: int) -> GuestConn:
        self.wait(lambda: self.listening[port], f"a connection on port {port}")
        return self.listening[port].pop(0)
