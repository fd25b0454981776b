# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The device's connection table and its receive side: what goes to the guest (§7, §8)."""

from __future__ import annotations

import logging
import selectors
import time
from collections import deque
from dataclasses import dataclass

from user_runtime.vsock.errors import DescriptorError, GuestFaultError
from user_runtime.vsock.host_ports import Connection, PortAllocator, State
from user_runtime.vsock.memory import GuestMemory
from user_runtime.vsock.packet import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    SHUTDOWN_RCV,
    SHUTDOWN_SEND,
    Op,
    encode_header,
)
from user_runtime.vsock.vhost_user import VhostUserSession
from user_runtime.vsock.virtqueue import Chain, Virtqueue

log = logging.getLogger("user_runtime.vsock")
RX, TX, EVENT = 0, 1, 2
_FAULT_LINES_PER_MINUTE = 100
HOST_CID = 3  # §6.3: the parent's CID on Nitro; the guest may call any CID


@dataclass(frozen=True)
class DeviceLimits:
    """Every limit on what the guest and host clients can make us hold (§8)."""

    buf_alloc: int = 256 * 1024  # guest->host bytes buffered per connection (advertised)
    to_guest_buffer: int = 256 * 1024  # host->guest bytes read ahead per connection
    max_connections: int = 1024
    max_control: int = 4096  # control packets waiting for rx buffers
    # The CONNECT line, the guest's answer to a REQUEST, and writing out what a closed
    # connection still holds (Firecracker's CONN_REQUEST/SHUTDOWN_TIMEOUT_MS).
    connect_timeout: float = 2.0


# A control packet waiting for an rx buffer: (src_cid, src_port, dst_port, op, flags, conn).
Control = tuple[int, int, int, Op, int, Connection | None]


class DeviceBase:
    """Connections, their selector registrations, and the rx queue filler."""

    def __init__(
        self,
        guest_cid: int,
        uds_path: str,
        limits: DeviceLimits,
        selector: selectors.BaseSelector,
        host_cid: int = HOST_CID,
    ) -> None:
        self.guest_cid = guest_cid
        self.host_cid = host_cid
        self.uds_path = uds_path
        self.limits = limits
        self.session: VhostUserSession | None = None
        self.faults = 0  # guest faults seen, for tests and metrics
        self._selector = selector
        self._conns: dict[tuple[int, int], Connection] = {}
        self._pending: set[Connection] = set()  # host clients before their CONNECT line
        self._timed: set[Connection] = set()  # connections with a deadline
        self._control: deque[Control] = deque()
        self._ready: dict[Connection, None] = {}  # ordered set: round robin over senders
        self._ports = PortAllocator()
        self._fault_window = 0.0
        self._fault_lines = 0

    @property
    def connection_count(self) -> int:
        """Live connections, including host clients still sending their CONNECT line."""
        return len(self._conns) + len(self._pending)

    def fault(self, error: GuestFaultError) -> None:
        """Log one line for a guest fault (at most 100 a minute, §9) and count it."""
        self.faults += 1
        now = time.monotonic()
        if now - self._fault_window >= 60:
            self._fault_window, self._fault_lines = now, 0
        self._fault_lines += 1
        if self._fault_lines <= _FAULT_LINES_PER_MINUTE:
            log.warning("guest fault: %s", error)

    def _queue(self, index: int) -> tuple[Virtqueue | None, GuestMemory | None]:
        if self.session is None or not self.session.queues[index].ready:
            return None, None
        return self.session.queues[index], self.session.memory

    def queue_stopping(self, queue: Virtqueue) -> None:
        """§3.5: the guest driver is resetting or the VM stops: every connection ends."""
        if queue.index in {RX, TX}:
            self.drop_all()

    def drop_all(self) -> None:
        """Close every host socket without telling the guest."""
        for conn in [*self._conns.values(), *self._pending]:
            self._drop(conn)
        self._control.clear()
        self._ready.clear()

    def expire(self, now: float) -> float | None:
        """End connections past their deadline; return the next deadline, if any."""
        upcoming: float | None = None
        for conn in list(self._timed):
            if conn.deadline is None:
                self._timed.discard(conn)
            elif conn.deadline <= now:
                log.info("connection %s: timed out in state %s", conn.key, conn.state.value)
                self._reset(conn)
            elif upcoming is None or conn.deadline < upcoming:
                upcoming = conn.deadline
        return upcoming

    def _set_deadline(self, conn: Connection, deadline: float | None) -> None:
        conn.deadline = deadline
        if deadline is None:
            self._timed.discard(conn)
        else:
            self._timed.add(conn)

    def _alive(self, conn: Connection) -> bool:
        return self._conns.get(conn.key) is conn or conn in self._pending

    def _push_control(self, item: Control) -> None:
        if len(self._control) >= self.limits.max_control:
            log.debug("control queue full: %s dropped", item[3].name)
            return
        self._control.append(item)

    def _queue_credit_update(self, conn: Connection) -> None:
        if not conn.update_queued:
            conn.update_queued = True
            self._push_control(
                (conn.host_cid, conn.host_port, conn.guest_port, Op.CREDIT_UPDATE, 0, conn)
            )

    @staticmethod
    def _sendable(conn: Connection) -> bool:
        if conn.state is not State.ESTABLISHED or conn.guest_shutdown & SHUTDOWN_RCV:
            return False
        if conn.to_guest:
            return conn.peer_credit() > 0
        return conn.host_eof and not conn.eof_sent

    def _schedule(self, conn: Connection) -> None:
        if self._sendable(conn):
            self._ready[conn] = None

    def _drop(self, conn: Connection) -> None:
        if conn.mask:
            self._selector.unregister(conn.sock)
            conn.mask = 0
        conn.sock.close()
        self._pending.discard(conn)
        self._timed.discard(conn)
        if self._conns.get(conn.key) is conn:
            del self._conns[conn.key]
        self._ready.pop(conn, None)
        if conn.allocated:
            self._ports.release(conn.host_port)
            conn.allocated = False

    def _reset(self, conn: Connection) -> None:
        if conn.state is not State.AWAIT_LINE:
            self._push_control((conn.host_cid, conn.host_port, conn.guest_port, Op.RST, 0, None))
        self._drop(conn)

    def _update_interest(self, conn: Connection) -> None:
        mask = 0
        if conn.state is State.AWAIT_LINE:
            mask = selectors.EVENT_READ
        elif conn.state is State.ESTABLISHED:
            reading = not conn.host_eof and not conn.guest_shutdown & SHUTDOWN_RCV
            if reading and len(conn.to_guest) < self.limits.to_guest_buffer:
                mask |= selectors.EVENT_READ
            if conn.to_host:
                mask |= selectors.EVENT_WRITE
        if mask == conn.mask:
            return
        if not conn.mask:
            self._selector.register(conn.sock, mask, conn)
        elif not mask:
            self._selector.unregister(conn.sock)
        else:
            self._selector.modify(conn.sock, mask, conn)
        conn.mask = mask

    def fill_rx(self) -> None:
        """Put waiting control packets, then data round robin, into the guest's rx buffers."""
        queue, memory = self._queue(RX)
        if queue is None or memory is None:
            return
        used = False
        while (item := self._next_item()) is not None:
            try:
                chain = queue.pop(memory, writable=True)
            except DescriptorError as error:
                self.fault(error)
                if error.head is not None:
                    queue.push(error.head, 0)
                    used = True
                if queue.broken:
                    break
                continue
            if chain is None:
                break
            used = True
            if chain.size < HEADER_SIZE:
                self.fault(DescriptorError(f"rx buffer of {chain.size} bytes"))
                queue.push(chain.head, 0)
                continue
            queue.push(chain.head, self._write_item(item, chain))
        if used:
            queue.notify()

    def _next_item(self) -> Control | Connection | None:
        while self._control:
            conn = self._control[0][5]
            if conn is None or self._alive(conn):
                return self._control[0]
            self._control.popleft()
        while self._ready:
            conn = next(iter(self._ready))
            if self._alive(conn) and self._sendable(conn):
                return conn
            del self._ready[conn]
        return None

    def _write_item(self, item: Control | Connection, chain: Chain) -> int:
        if isinstance(item, Connection):
            return self._write_data(item, chain)
        self._control.popleft()
        src_cid, src_port, dst_port, op, flags, conn = item
        buf_alloc = fwd_cnt = 0
        if conn is not None:
            buf_alloc, fwd_cnt = conn.buf_alloc, conn.fwd_cnt
            conn.sent_fwd_cnt = fwd_cnt
            conn.update_queued = conn.update_queued and op is not Op.CREDIT_UPDATE
        header = encode_header(
            src_cid=src_cid,
            dst_cid=self.guest_cid,
            src_port=src_port,
            dst_port=dst_port,
            length=0,
            op=op,
            flags=flags,
            buf_alloc=buf_alloc,
            fwd_cnt=fwd_cnt,
        )
        return chain.scatter(header)

    def _write_data(self, conn: Connection, chain: Chain) -> int:
        del self._ready[conn]
        size = min(len(conn.to_guest), conn.peer_credit(), chain.size - HEADER_SIZE, MAX_PAYLOAD)
        if size > 0:
            op, flags = Op.RW, 0
        elif conn.to_guest:  # a buffer with room for the header only: nothing fits
            self._schedule(conn)
            return 0
        else:  # §7.3: the host side hit end of file and everything before it is sent
            op, flags = Op.SHUTDOWN, SHUTDOWN_SEND
            conn.eof_sent = True
        conn.sent_fwd_cnt = conn.fwd_cnt
        header = encode_header(
            src_cid=conn.host_cid,
            dst_cid=self.guest_cid,
            src_port=conn.host_port,
            dst_port=conn.guest_port,
            length=size,
            op=op,
            flags=flags,
            buf_alloc=conn.buf_alloc,
            fwd_cnt=conn.fwd_cnt,
        )
        with memoryview(conn.to_guest) as pending:
            written = chain.write_packet(header, pending[:size])
        if size:
            del conn.to_guest[:size]  # only once the view is released
            conn.tx_cnt = (conn.tx_cnt + size) & 0xFFFFFFFF
        self._schedule(conn)
        self._update_interest(conn)
        return written
