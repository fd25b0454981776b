# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Split virtqueues in guest memory (specs/vsock.md §5; virtio 1.2 §2.7)."""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import sys
from dataclasses import dataclass, field

from user_runtime.vsock.errors import DescriptorError, FrontEndError
from user_runtime.vsock.memory import GuestMemory

_DESC = struct.Struct("<QIHH")  # addr, len, flags, next
# §5.4: the ring indexes shared with the guest are read and written through a native
# 16-bit memoryview, one access each: struct's "<H" copies byte by byte, and pack_into
# zeroes its target before writing, so a guest could read a used index of 0. Virtio 1.x
# is little-endian, and so is every host this runs on (checked below).
_U16 = struct.Struct("<H")
if sys.byteorder != "little":  # pragma: no cover - x86_64 and aarch64 hosts only
    raise ImportError("the vsock back-end needs a little-endian host")
_USED_ELEM = struct.Struct("<II")  # id, len
DESC_F_NEXT = 1
DESC_F_WRITE = 2
DESC_F_INDIRECT = 4
MAX_QUEUE_SIZE = 32768

Segment = tuple[mmap.mmap, int, int]  # mapping, offset, length


@dataclass(slots=True)
class Chain:
    """One descriptor chain taken from the avail ring, already bounds-checked."""

    head: int
    segments: list[Segment] = field(default_factory=list)
    size: int = 0

    def gather(self, size: int) -> bytes:
        """Return the first `size` bytes of a device-readable chain (size <= self.size)."""
        parts: list[bytes] = []
        for view, offset, length in self.segments:
            if size <= 0:
                break
            take = min(length, size)
            parts.append(view[offset : offset + take])
            size -= take
        return b"".join(parts)

    def scatter(self, data: bytes | memoryview) -> int:
        """Copy `data` into a device-writable chain; return how many bytes fit."""
        done = 0
        for view, offset, length in self.segments:
            if done == len(data):
                break
            take = min(length, len(data) - done)
            view[offset : offset + take] = data[done : done + take]
            done += take
        return done

    def write_packet(self, header: bytes, payload: memoryview) -> int:
        """Write a header and its payload without joining them first (the hot path)."""
        view, offset, length = self.segments[0]
        total = len(header) + len(payload)
        if length >= total:  # one descriptor, as Linux posts rx buffers
            view[offset : offset + len(header)] = header
            view[offset + len(header) : offset + total] = payload
            return total
        return self.scatter(header + bytes(payload))


class Virtqueue:
    """One split virtqueue as the front-end configured it (§3.4, §5)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.num = 0
        self.user_addrs: tuple[int, int, int] | None = None  # desc, avail, used
        self.last_avail = 0
        self.used_idx = 0
        self.kick_fd: int | None = None
        self.call_fd: int | None = None
        self.enabled = False
        self.started = False
        self.broken = False
        self._desc: tuple[mmap.mmap, int] | None = None
        self._avail: tuple[mmap.mmap, int] | None = None
        self._used: tuple[mmap.mmap, int] | None = None
        self._avail_idx: memoryview | None = None
        self._used_idx: memoryview | None = None

    def resolve(self, memory: GuestMemory) -> None:
        """Find the three ring areas in `memory` from the front-end's user addresses.

        Raises:
            FrontEndError: the addresses or the size are not set or are outside memory.
        """
        if self.user_addrs is None or self.num == 0:
            raise FrontEndError(f"queue {self.index} started before its size and addresses")
        desc, avail, used = self.user_addrs
        num = self.num
        self._release()
        try:
            self._desc = memory.locate(memory.user_to_guest(desc, 16 * num), 16 * num)
            self._avail = memory.locate(memory.user_to_guest(avail, 6 + 2 * num), 6 + 2 * num)
            self._used = memory.locate(memory.user_to_guest(used, 6 + 8 * num), 6 + 8 * num)
        except DescriptorError as error:
            raise FrontEndError(f"queue {self.index}: {error}") from error
        self._avail_idx = _index_view(*self._avail)
        self._used_idx = _index_view(*self._used)

    def _release(self) -> None:
        # The views pin the mapping: release them before it may be unmapped.
        for view in (self._avail_idx, self._used_idx):
            if view is not None:
                view.release()
        self._avail_idx = self._used_idx = None

    def start(self, memory: GuestMemory) -> None:
        """Start processing: locate the rings and pick up the used index (§3.5)."""
        self.resolve(memory)
        assert self._used is not None
        assert self._used_idx is not None
        self.used_idx = self._used_idx[0]
        self.started = True
        self.broken = False

    def stop(self) -> int:
        """Stop processing and return the next avail index (GET_VRING_BASE)."""
        self.started = False
        self._release()
        self._desc = self._avail = self._used = None
        return self.last_avail

    @property
    def ready(self) -> bool:
        """True when buffers may be taken from and returned to this queue."""
        return self.started and self.enabled and not self.broken

    def has_avail(self) -> bool:
        """True when the guest has made a buffer available that we have not taken."""
        if not self.ready:
            return False
        assert self._avail_idx is not None
        return bool(self._avail_idx[0] != self.last_avail)

    def pop(self, memory: GuestMemory, writable: bool) -> Chain | None:
        """Take the next available chain, or None when there is none.

        Raises:
            DescriptorError: the chain is bad (§9.1); `head` says whether it can be
                returned. A ring whose avail index runs ahead is marked broken.
        """
        if not self.ready:
            return None
        assert self._avail is not None
        assert self._avail_idx is not None
        view, offset = self._avail
        avail_idx = self._avail_idx[0]
        pending = (avail_idx - self.last_avail) & 0xFFFF
        if pending == 0:
            return None
        if pending > self.num:
            self.broken = True
            raise DescriptorError(f"queue {self.index}: avail index {avail_idx} ran ahead")
        slot = self.last_avail % self.num
        head = _U16.unpack_from(view, offset + 4 + 2 * slot)[0]
        self.last_avail = (self.last_avail + 1) & 0xFFFF
        if head >= self.num:
            raise DescriptorError(f"queue {self.index}: head {head} is out of the table")
        return self._walk(memory, head, writable)

    def _walk(self, memory: GuestMemory, head: int, writable: bool) -> Chain:
        assert self._desc is not None
        table, base = self._desc
        chain = Chain(head)
        index = head
        for _ in range(self.num):  # a chain longer than the table must loop (§9.1)
            addr, length, flags, nxt = _DESC.unpack_from(table, base + 16 * index)
            if flags & DESC_F_INDIRECT:
                raise DescriptorError("indirect descriptor (not negotiated)", head)
            if bool(flags & DESC_F_WRITE) != writable:
                raise DescriptorError(f"descriptor {index} has the wrong direction", head)
            if length:
                try:
                    view, offset = memory.locate(addr, length)
                except DescriptorError as error:
                    raise DescriptorError(str(error), head) from None
                chain.segments.append((view, offset, length))
                chain.size += length
            if not flags & DESC_F_NEXT:
                return chain
            if nxt >= self.num:
                raise DescriptorError(f"descriptor {index} links to {nxt}", head)
            index = nxt
        raise DescriptorError(f"queue {self.index}: chain from {head} loops", head)

    def push(self, head: int, written: int) -> None:
        """Put a chain on the used ring; the index is published after the element."""
        assert self._used is not None
        assert self._used_idx is not None
        view, offset = self._used
        slot = self.used_idx % self.num
        _USED_ELEM.pack_into(view, offset + 4 + 8 * slot, head, written)
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        self._used_idx[0] = self.used_idx  # one 16-bit store, after the element (§5.4)

    def notify(self) -> None:
        """Signal the call eventfd after returning buffers (§5.3).

        VIRTQ_AVAIL_F_NO_INTERRUPT is not honoured: without a full memory barrier between
        our used-index store and the flags load (which Python cannot issue) honouring it
        could lose an interrupt, and the flag is only a hint to the device.
        """
        if self.call_fd is None:
            return
        # A full counter means the guest has a notification pending anyway.
        with contextlib.suppress(BlockingIOError):
            os.eventfd_write(self.call_fd, 1)


def _index_view(view: mmap.mmap, offset: int) -> memoryview:
    """A one-element native u16 view of a ring's `idx` field (ring start + 2)."""
    return memoryview(view)[offset + 2 : offset + 4].cast("H")
