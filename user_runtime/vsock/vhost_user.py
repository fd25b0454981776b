# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The vhost-user back-end protocol as QEMU speaks it to a vsock device (specs/vsock.md §3)."""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Callable
from enum import IntEnum
from typing import Protocol

from user_runtime.vsock.errors import FrontEndError
from user_runtime.vsock.memory import GuestMemory
from user_runtime.vsock.virtqueue import MAX_QUEUE_SIZE, Virtqueue

log = logging.getLogger("user_runtime.vsock")

_HEADER = struct.Struct("<III")  # request, flags, size (§3.1)
_U64 = struct.Struct("<Q")
_STATE = struct.Struct("<II")  # index, num
_ADDR = struct.Struct("<IIQQQQ")  # index, flags, desc, used, avail, log
_REGION = struct.Struct("<QQQQ")  # guest_addr, size, user_addr, mmap_offset
_CONFIG = struct.Struct("<III")  # offset, size, flags
VERSION = 0x1
FLAG_REPLY = 0x4
FLAG_NEED_REPLY = 0x8
MAX_PAYLOAD = 4096
MAX_REGIONS = 8  # VHOST_MEMORY_BASELINE_NREGIONS: we do not offer CONFIGURE_MEM_SLOTS
MAX_CONFIG = 256
VRING_NOFD = 0x100
F_PROTOCOL_FEATURES = 1 << 30
F_VERSION_1 = 1 << 32
PROTOCOL_F_REPLY_ACK = 1 << 3
PROTOCOL_F_CONFIG = 1 << 9
# §3.2: what we offer; no EVENT_IDX, no INDIRECT_DESC, no MQ, no logging.
FEATURES = F_VERSION_1 | F_PROTOCOL_FEATURES
PROTOCOL_FEATURES = PROTOCOL_F_REPLY_ACK | PROTOCOL_F_CONFIG
NUM_QUEUES = 3


class Request(IntEnum):
    """The requests of §3.3 (numbers from the vhost-user specification)."""

    GET_FEATURES = 1
    SET_FEATURES = 2
    SET_OWNER = 3
    RESET_OWNER = 4
    SET_MEM_TABLE = 5
    SET_LOG_BASE = 6
    SET_LOG_FD = 7
    SET_VRING_NUM = 8
    SET_VRING_ADDR = 9
    SET_VRING_BASE = 10
    GET_VRING_BASE = 11
    SET_VRING_KICK = 12
    SET_VRING_CALL = 13
    SET_VRING_ERR = 14
    GET_PROTOCOL_FEATURES = 15
    SET_PROTOCOL_FEATURES = 16
    GET_QUEUE_NUM = 17
    SET_VRING_ENABLE = 18
    GET_CONFIG = 24
    SET_CONFIG = 25
    RESET_DEVICE = 34


class QueueListener(Protocol):
    """What the session tells the device about its queues."""

    def queue_ready(self, queue: Virtqueue) -> None:
        """The queue may have become usable (started or enabled)."""

    def queue_stopping(self, queue: Virtqueue) -> None:
        """The queue is about to stop or to lose its kick fd."""


Handler = Callable[[bytes, list[int]], bytes | None]


class VhostUserSession:
    """One front-end connection: reads requests, keeps the device state, answers (§3)."""

    def __init__(self, sock: socket.socket, config: bytes, listener: QueueListener) -> None:
        self.sock = sock
        self.memory = GuestMemory.empty()
        self.queues = [Virtqueue(index) for index in range(NUM_QUEUES)]
        self._config = config
        self._listener = listener
        self._features = 0
        self._protocol = 0
        self.messages = 0  # requests handled so far
        self._handlers: dict[int, Handler] = {
            Request.GET_FEATURES: lambda _p, _f: _U64.pack(FEATURES),
            Request.SET_FEATURES: self._set_features,
            Request.SET_OWNER: lambda _p, _f: None,
            Request.RESET_OWNER: self._reset,
            Request.RESET_DEVICE: self._reset,
            Request.SET_MEM_TABLE: self._set_mem_table,
            Request.SET_VRING_NUM: self._set_vring_num,
            Request.SET_VRING_ADDR: self._set_vring_addr,
            Request.SET_VRING_BASE: self._set_vring_base,
            Request.GET_VRING_BASE: self._get_vring_base,
            Request.SET_VRING_KICK: self._set_vring_kick,
            Request.SET_VRING_CALL: self._set_vring_call,
            Request.SET_VRING_ERR: self._set_vring_err,
            Request.GET_PROTOCOL_FEATURES: lambda _p, _f: _U64.pack(PROTOCOL_FEATURES),
            Request.SET_PROTOCOL_FEATURES: self._set_protocol_features,
            Request.GET_QUEUE_NUM: lambda _p, _f: _U64.pack(NUM_QUEUES),
            Request.SET_VRING_ENABLE: self._set_vring_enable,
            Request.GET_CONFIG: self._get_config,
            Request.SET_CONFIG: lambda _p, _f: None,  # the vsock config is read-only
        }

    def handle_one(self) -> bool:
        """Read and answer one request; False when the front-end has hung up.

        Raises:
            FrontEndError: the front-end broke the protocol.
        """
        message = _read_message(self.sock)
        if message is None:
            return False
        self.messages += 1
        request, flags, payload, fds = message
        handler = self._handlers.get(request)
        try:
            if handler is None:
                # §3.3: anything else is refused when an answer is awaited, else ignored.
                log.info("vhost-user: ignored request %d", request)
                if flags & FLAG_NEED_REPLY:
                    self._reply(request, _U64.pack(1))
                return True
            answer = handler(payload, fds)
        finally:
            for fd in fds:
                os.close(fd)
        if answer is not None:
            self._reply(request, answer)
        elif flags & FLAG_NEED_REPLY and self._protocol & PROTOCOL_F_REPLY_ACK:
            self._reply(request, _U64.pack(0))
        return True

    def close(self) -> None:
        """Stop every queue, close its fds and unmap guest memory."""
        for queue in self.queues:
            self._stop(queue)
            for fd in (queue.kick_fd, queue.call_fd):
                if fd is not None:
                    os.close(fd)
            queue.kick_fd = queue.call_fd = None
        self.memory.close()

    def _reply(self, request: int, payload: bytes) -> None:
        self.sock.sendall(_HEADER.pack(request, VERSION | FLAG_REPLY, len(payload)) + payload)

    def _queue(self, index: int) -> Virtqueue:
        if index >= NUM_QUEUES:
            raise FrontEndError(f"queue index {index} (the device has {NUM_QUEUES})")
        return self.queues[index]

    def _set_features(self, payload: bytes, _fds: list[int]) -> None:
        self._features = _unpack(_U64, payload)[0]
        if self._features & ~FEATURES:
            raise FrontEndError(f"features {self._features:#x} were not offered")

    def _set_protocol_features(self, payload: bytes, _fds: list[int]) -> None:
        self._protocol = _unpack(_U64, payload)[0] & PROTOCOL_FEATURES

    def _reset(self, _payload: bytes, _fds: list[int]) -> None:
        for queue in self.queues:
            self._stop(queue)
            queue.enabled = False
            queue.last_avail = 0
        self._features = 0

    def _set_mem_table(self, payload: bytes, fds: list[int]) -> None:
        count = _unpack(_STATE, payload)[0]
        if count > MAX_REGIONS or len(payload) < 8 + _REGION.size * count:
            raise FrontEndError(f"memory table of {count} regions in {len(payload)} bytes")
        table = [_REGION.unpack_from(payload, 8 + _REGION.size * i) for i in range(count)]
        taken = fds[:]
        fds.clear()
        old, self.memory = self.memory, GuestMemory.map_table(table, taken)
        for queue in self.queues:  # §3.4: rings move with the table
            if queue.started:
                queue.resolve(self.memory)
        old.close()

    def _set_vring_num(self, payload: bytes, _fds: list[int]) -> None:
        index, num = _unpack(_STATE, payload)
        if num == 0 or num > MAX_QUEUE_SIZE or num & (num - 1):
            raise FrontEndError(f"queue size {num} is not a power of two up to 32768")
        self._queue(index).num = num

    def _set_vring_addr(self, payload: bytes, _fds: list[int]) -> None:
        index, _flags, desc, used, avail, _log = _unpack(_ADDR, payload)
        queue = self._queue(index)
        queue.user_addrs = (desc, avail, used)
        if queue.started:
            queue.resolve(self.memory)

    def _set_vring_base(self, payload: bytes, _fds: list[int]) -> None:
        index, num = _unpack(_STATE, payload)
        self._queue(index).last_avail = num & 0xFFFF

    def _get_vring_base(self, payload: bytes, _fds: list[int]) -> bytes:
        index, _ = _unpack(_STATE, payload)
        queue = self._queue(index)
        self._stop(queue)
        if queue.kick_fd is not None:
            os.close(queue.kick_fd)
            queue.kick_fd = None
        queue.enabled = False
        return _STATE.pack(index, queue.last_avail)

    def _stop(self, queue: Virtqueue) -> None:
        if queue.started:
            self._listener.queue_stopping(queue)
            queue.stop()

    def _set_vring_kick(self, payload: bytes, fds: list[int]) -> None:
        queue, fd = self._vring_fd(payload, fds)
        self._stop(queue)
        if queue.kick_fd is not None:
            os.close(queue.kick_fd)
        queue.kick_fd = fd
        if fd is None:
            log.warning("vhost-user: queue %d without a kick fd is not served", queue.index)
            return
        if not self._features & F_PROTOCOL_FEATURES:
            queue.enabled = True  # §3.5: rings start enabled without PROTOCOL_FEATURES
        queue.start(self.memory)
        self._listener.queue_ready(queue)

    def _set_vring_call(self, payload: bytes, fds: list[int]) -> None:
        queue, fd = self._vring_fd(payload, fds)
        if queue.call_fd is not None:
            os.close(queue.call_fd)
        queue.call_fd = fd

    def _set_vring_err(self, payload: bytes, fds: list[int]) -> None:
        self._vring_fd(payload, fds)  # we never signal errors: the fd is closed

    def _vring_fd(self, payload: bytes, fds: list[int]) -> tuple[Virtqueue, int | None]:
        value = _unpack(_U64, payload)[0]
        queue = self._queue(value & 0xFF)
        if value & VRING_NOFD:
            return queue, None
        if len(fds) != 1:
            raise FrontEndError(f"queue {queue.index}: expected one fd, got {len(fds)}")
        return queue, fds.pop()

    def _set_vring_enable(self, payload: bytes, _fds: list[int]) -> None:
        index, enable = _unpack(_STATE, payload)
        queue = self._queue(index)
        queue.enabled = bool(enable)
        if queue.enabled and queue.started:
            self._listener.queue_ready(queue)

    def _get_config(self, payload: bytes, _fds: list[int]) -> bytes:
        offset, size, flags = _unpack(_CONFIG, payload)
        if size > MAX_CONFIG or offset > MAX_CONFIG:
            raise FrontEndError(f"config read of {size} bytes at {offset}")
        data = self._config[offset : offset + size].ljust(size, b"\0")
        return _CONFIG.pack(offset, size, flags) + data


def _unpack(layout: struct.Struct, payload: bytes) -> tuple[int, ...]:
    if len(payload) < layout.size:
        raise FrontEndError(f"payload of {len(payload)} bytes, needs {layout.size}")
    return layout.unpack_from(payload)


def _read_message(sock: socket.socket) -> tuple[int, int, bytes, list[int]] | None:
    try:
        head, fds, msg_flags, _ = socket.recv_fds(sock, _HEADER.size, MAX_REGIONS)
    except ConnectionResetError:
        return None
    if not head:
        for fd in fds:
            os.close(fd)
        return None
    try:
        return _read_rest(sock, head, msg_flags, fds)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _read_rest(
    sock: socket.socket, head: bytes, msg_flags: int, fds: list[int]
) -> tuple[int, int, bytes, list[int]]:
    if msg_flags & socket.MSG_CTRUNC:
        raise FrontEndError("more fds than a request may carry")
    head += _recv_exact(sock, _HEADER.size - len(head))
    request, flags, size = _HEADER.unpack(head)
    if flags & 0x3 != VERSION or size > MAX_PAYLOAD:
        raise FrontEndError(f"request {request}: flags {flags:#x}, size {size}")
    return request, flags, _recv_exact(sock, size), fds


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise FrontEndError("the front-end hung up inside a message")
        data += chunk
    return data
