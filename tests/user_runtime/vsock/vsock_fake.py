# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""A fake QEMU and guest driver for the vsock back-end tests.

`FakeFrontEnd` speaks vhost-user over a real Unix socket, shares a memfd "guest RAM" in two
regions (so both address translations matter), lays out real split virtqueues in it, and
plays the guest's virtio-vsock driver: it posts rx buffers, sends tx packets, kicks the
back-end and reads the used rings. `GuestConn` is a guest stream socket on top of it that
obeys (and checks) credit-based flow control. Nothing here imports the back-end's code:
the layouts are written from the specs so that the tests check the back-end against them.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HDR = struct.Struct("<QQIIIHHIII")
DESC = struct.Struct("<QIHH")

REQUEST, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST = range(1, 8)
SHUT_RCV, SHUT_SEND = 1, 2
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
MIB = 1024 * 1024
REGION = 16 * MIB
GPA_A, GPA_B = 0, 1 << 32
UVA_A, UVA_B = 0x7F00_0000_0000, 0x7F10_0000_0000
QSIZE = 256
RAW_DESCS = range(240, 256)  # tx descriptors reserved for hand-made (hostile) chains
TX_SLOTS = 120  # tx slot s uses descriptors 2s (header) and 2s+1 (payload)
TX_SLOT_SIZE = 64 * 1024 + 64
RX_BASE = GPA_B
TX_BASE = GPA_B + 2 * MIB
RAW_BASE = GPA_B + 12 * MIB  # scratch memory for hand-made packets
TIMEOUT = 30.0


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


class FakeFrontEnd:
    """QEMU's vhost-user front-end plus a guest virtio-vsock driver, in one object."""

    def __init__(
        self,
        path: str,
        guest_cid: int = 16,
        rx_buf_size: int = 4096 + 44,
        rx_split: bool = False,
    ) -> None:
        self.guest_cid = guest_cid
        self.rx_buf_size = rx_buf_size
        self.rx_split = rx_split
        self.fd = os.memfd_create("guest-ram")
        os.ftruncate(self.fd, 2 * REGION)
        self.ram = mmap.mmap(self.fd, 2 * REGION)
        self.ram_u8 = memoryview(self.ram)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(path)
        self.kick = [os.eventfd(0, os.EFD_NONBLOCK) for _ in range(3)]
        self.call = [os.eventfd(0, os.EFD_NONBLOCK) for _ in range(3)]
        self.avail_idx = [0, 0, 0]
        self.last_used = [0, 0, 0]
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

    # -- memory --------------------------------------------------------------------------

    @staticmethod
    def offset(gpa: int) -> int:
        if GPA_A <= gpa < GPA_A + REGION:
            return gpa - GPA_A
        if GPA_B <= gpa < GPA_B + REGION:
            return REGION + gpa - GPA_B
        raise ValueError(f"{gpa:#x} is not guest RAM")

    def write(self, gpa: int, data: bytes) -> None:
        off = self.offset(gpa)
        self.ram[off : off + len(data)] = data

    def read(self, gpa: int, size: int) -> bytes:
        off = self.offset(gpa)
        return self.ram[off : off + size]

    @staticmethod
    def ring(queue: int) -> tuple[int, int, int]:
        base = GPA_A + 0x10000 * (queue + 1)
        return base, base + 0x1000, base + 0x2000  # desc, avail, used

    # -- vhost-user ----------------------------------------------------------------------

    def message(
        self,
        request: int,
        payload: bytes = b"",
        fds: list[int] | None = None,
        reply: bool = False,
        need_reply: bool = False,
    ) -> bytes:
        flags = 1 | (0x8 if need_reply else 0)
        data = struct.pack("<III", request, flags, len(payload)) + payload
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.sock.sendall(data)
        if not (reply or need_reply):
            return b""
        head = self._recv_exact(12)
        got, rflags, size = struct.unpack("<III", head)
        assert got == request, (got, request)
        assert rflags & 0x4, rflags
        return self._recv_exact(size)

    def _recv_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise EOFError("back-end hung up")
            data += chunk
        return data

    def u64(self, request: int) -> int:
        return int(struct.unpack("<Q", self.message(request, reply=True))[0])

    def get_config(self) -> int:
        answer = self.message(24, struct.pack("<III", 0, 8, 0) + bytes(8), reply=True)
        return int(struct.unpack_from("<Q", answer, 12)[0])

    def handshake(self) -> None:
        features = self.u64(1)
        self.message(2, struct.pack("<Q", features & ((1 << 32) | (1 << 30))))
        protocol = self.u64(15)
        assert protocol & (1 << 9), "CONFIG is required by QEMU's vhost-user-vsock"
        self.message(16, struct.pack("<Q", protocol & ((1 << 9) | (1 << 3))))
        self.message(3, need_reply=True)
        assert self.get_config() == self.guest_cid
        self.set_mem_table()
        for queue in range(3):
            self.start_queue(queue)
        self.post_rx_buffers()

    def set_mem_table(self) -> None:
        table = struct.pack("<II", 2, 0)
        table += struct.pack("<QQQQ", GPA_A, REGION, UVA_A, 0)
        table += struct.pack("<QQQQ", GPA_B, REGION, UVA_B, REGION)
        ack = self.message(5, table, fds=[self.fd, self.fd], need_reply=True)
        assert struct.unpack("<Q", ack)[0] == 0

    def start_queue(self, queue: int, base: int | None = None) -> None:
        desc, avail, used = self.ring(queue)
        base = self.avail_idx[queue] if base is None else base
        self.message(8, struct.pack("<II", queue, QSIZE))
        self.message(10, struct.pack("<II", queue, base))
        self.message(
            9, struct.pack("<IIQQQQ", queue, 0, UVA_A + desc, UVA_A + used, UVA_A + avail, 0)
        )
        self.message(12, struct.pack("<Q", queue), fds=[self.kick[queue]])
        self.message(13, struct.pack("<Q", queue), fds=[self.call[queue]])
        self.message(18, struct.pack("<II", queue, 1), need_reply=True)

    def stop_queue(self, queue: int) -> int:
        answer = self.message(11, struct.pack("<II", queue, 0), reply=True)
        return int(struct.unpack("<II", answer)[1])

    def disconnect(self) -> None:
        self.sock.close()

    # -- rings ---------------------------------------------------------------------------

    def set_desc(  # noqa: PLR0917 - the four fields of a descriptor, in their order
        self, queue: int, index: int, addr: int, length: int, flags: int, nxt: int = 0
    ) -> None:
        self.write(self.ring(queue)[0] + 16 * index, DESC.pack(addr, length, flags, nxt))

    def make_avail(self, queue: int, head: int, kick: bool = True) -> None:
        avail = self.ring(queue)[1]
        slot = self.avail_idx[queue] % QSIZE
        self.write(avail + 4 + 2 * slot, struct.pack("<H", head))
        self.avail_idx[queue] = (self.avail_idx[queue] + 1) & 0xFFFF
        self.index_view(avail)[0] = self.avail_idx[queue]  # published after the entry
        if kick:
            os.eventfd_write(self.kick[queue], 1)

    def used_idx(self, queue: int) -> int:
        return int(self.index_view(self.ring(queue)[2])[0])

    def index_view(self, ring: int) -> memoryview:
        # A ring index is one 16-bit access, as a driver makes it: struct.pack_into would
        # zero the field first, and "<H" copies byte by byte.
        off = self.offset(ring + 2)
        return self.ram_u8[off : off + 2].cast("H")

    def used_elems(self, queue: int) -> list[tuple[int, int]]:
        used = self.ring(queue)[2]
        idx = self.used_idx(queue)
        out = []
        while self.last_used[queue] != idx:
            slot = self.last_used[queue] % QSIZE
            out.append(struct.unpack("<II", self.read(used + 4 + 8 * slot, 8)))
            self.last_used[queue] = (self.last_used[queue] + 1) & 0xFFFF
        return out

    def rx_buffer(self, index: int) -> int:
        return RX_BASE + index * ((self.rx_buf_size + 63) // 64 * 64)

    def post_rx(self, index: int, kick: bool = True) -> None:
        addr = self.rx_buffer(index)
        if self.rx_split:  # as older Linux: a header descriptor, then the payload one
            self.set_desc(0, 2 * index, addr, 44, F_WRITE | F_NEXT, 2 * index + 1)
            self.set_desc(0, 2 * index + 1, addr + 44, self.rx_buf_size - 44, F_WRITE)
            self.make_avail(0, 2 * index, kick)
        else:
            self.set_desc(0, index, addr, self.rx_buf_size, F_WRITE)
            self.make_avail(0, index, kick)

    def post_rx_buffers(self) -> None:
        count = QSIZE // 2 if self.rx_split else QSIZE
        for index in range(count):
            self.post_rx(index, kick=False)
        os.eventfd_write(self.kick[0], 1)

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

    def close(self) -> None:
        for fd in [*self.kick, *self.call]:
            os.close(fd)
        self.sock.close()
        self.ram_u8.release()
        self.ram.close()
        os.close(self.fd)
