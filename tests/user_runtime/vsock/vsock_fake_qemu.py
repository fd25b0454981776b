# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The QEMU half of the tests' fake front-end: vhost-user, a memfd "RAM", split rings.

Written from the specs (vhost-user, virtio 1.2 split rings), not from the back-end's code,
so the tests check the back-end against them. Guest RAM is two regions at different
guest-physical and user addresses, so both of the back-end's translations matter.
"""

from __future__ import annotations

import mmap
import os
import socket
import struct

DESC = struct.Struct("<QIHH")

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


class FakeQemu:
    """A vhost-user front-end with the rings of a vsock device laid out in its RAM."""

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

    def close(self) -> None:
        for fd in [*self.kick, *self.call]:
            os.close(fd)
        self.sock.close()
        self.ram_u8.release()
        self.ram.close()
        os.close(self.fd)
