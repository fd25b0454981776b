# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The virtio-vsock device: guest packets to host sockets and back (specs/vsock.md §4-§9)."""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import time

from user_runtime.vsock.device_rx import TX, DeviceBase
from user_runtime.vsock.errors import DescriptorError, HeaderError
from user_runtime.vsock.host_ports import (
    Connection,
    ConnectLineError,
    State,
    connect_unix,
    read_connect_line,
)
from user_runtime.vsock.packet import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    SHUTDOWN_MASK,
    SHUTDOWN_RCV,
    SHUTDOWN_SEND,
    Op,
    PacketHeader,
    parse_header,
    raw_ports,
)
from user_runtime.vsock.virtqueue import Chain, Virtqueue

log = logging.getLogger("user_runtime.vsock")


class VsockDevice(DeviceBase):
    """Connection table and packet handling; the event loop lives in `backend.py`."""

    # -- the guest's transmit queue (§7) ---------------------------------------------------

    def process_tx(self) -> None:
        """Handle every packet the guest has queued, then return the buffers."""
        queue, memory = self._queue(TX)
        if queue is None or memory is None:
            return
        used = False
        while True:
            try:
                chain = queue.pop(memory, writable=False)
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
            self._tx_chain(chain)
            queue.push(chain.head, 0)
            used = True
        if used:
            queue.notify()

    def _tx_chain(self, chain: Chain) -> None:
        raw = chain.gather(min(chain.size, HEADER_SIZE))
        try:
            header = self._check_header(raw, chain.size)
        except HeaderError as error:
            self.fault(error)
            ports = raw_ports(raw)
            conn = self._conns.get((ports[1], ports[0])) if ports else None
            if conn is not None:
                self._reset(conn)
            return
        payload = memoryview(chain.gather(HEADER_SIZE + header.length))[HEADER_SIZE:]
        self._packet(header, payload)

    def _check_header(self, raw: bytes, size: int) -> PacketHeader:
        header = parse_header(raw)
        if header.src_cid != self.guest_cid:
            raise HeaderError(f"src_cid {header.src_cid} is not the guest's")
        if HEADER_SIZE + header.length > size:
            raise HeaderError(f"len {header.length} is over the {size}-byte buffer")
        return header

    def _packet(self, header: PacketHeader, payload: memoryview) -> None:
        conn = self._conns.get((header.dst_port, header.src_port))
        if header.op is Op.REQUEST:
            if conn is not None:
                self.fault(HeaderError(f"second REQUEST for port {header.dst_port}"))
                self._reset(conn)
            else:
                self._guest_connect(header)
            return
        if conn is None:
            if header.op is not Op.RST:  # §7.1: unknown connection: answer RST
                self._push_control(
                    (header.dst_cid, header.dst_port, header.src_port, Op.RST, 0, None)
                )
            return
        self._connected_packet(conn, header, payload)

    def _connected_packet(
        self, conn: Connection, header: PacketHeader, payload: memoryview
    ) -> None:
        conn.peer_buf_alloc, conn.peer_fwd_cnt = header.buf_alloc, header.fwd_cnt  # §7.2
        if header.op is Op.RST:
            self._drop(conn)
            return
        if header.op is Op.RESPONSE:
            self._response(conn)
        elif header.op is Op.SHUTDOWN:
            self._guest_shutdown(conn, header.flags)
        elif header.op is Op.RW:
            self._guest_data(conn, payload)
        elif header.op is Op.CREDIT_REQUEST:
            self._queue_credit_update(conn)
        if self._alive(conn):
            self._schedule(conn)
            self._update_interest(conn)

    def _guest_connect(self, header: PacketHeader) -> None:
        rst = (header.dst_cid, header.dst_port, header.src_port, Op.RST, 0, None)
        if self.connection_count >= self.limits.max_connections:
            log.warning("connection limit reached: port %d refused", header.dst_port)
            self._push_control(rst)
            return
        sock = connect_unix(f"{self.uds_path}_{header.dst_port}")
        if sock is None:
            log.info("guest connection to port %d refused", header.dst_port)
            self._push_control(rst)
            return
        conn = Connection(
            sock,
            header.dst_cid,  # §6.3: we answer as whichever host CID the guest called
            header.dst_port,
            header.src_port,
            State.ESTABLISHED,
            self.limits.buf_alloc,
            peer_buf_alloc=header.buf_alloc,
            peer_fwd_cnt=header.fwd_cnt,
        )
        self._conns[conn.key] = conn
        self._push_control((conn.host_cid, conn.host_port, conn.guest_port, Op.RESPONSE, 0, conn))
        self._update_interest(conn)

    def _response(self, conn: Connection) -> None:
        if conn.state is not State.REQUESTED:
            self.fault(HeaderError(f"RESPONSE on an {conn.state.value} connection"))
            self._reset(conn)
            return
        conn.state = State.ESTABLISHED
        self._set_deadline(conn, None)
        line = f"OK {conn.host_port}\n".encode()  # §6.2
        conn.to_host[:0] = line
        conn.preamble = len(line)
        self._flush_to_host(conn)

    def _guest_shutdown(self, conn: Connection, flags: int) -> None:
        conn.guest_shutdown |= flags
        if conn.guest_shutdown & SHUTDOWN_RCV:
            conn.to_guest.clear()
        if conn.guest_shutdown == SHUTDOWN_MASK and not conn.closing:
            conn.closing = True  # §7.3: write what we hold, then close and RST
            self._set_deadline(conn, time.monotonic() + self.limits.connect_timeout)
        self._flush_to_host(conn)

    def _guest_data(self, conn: Connection, payload: memoryview) -> None:
        if conn.state is not State.ESTABLISHED or conn.guest_shutdown & SHUTDOWN_SEND:
            self.fault(HeaderError(f"data on a {conn.state.value} or shut connection"))
            self._reset(conn)
            return
        if len(conn.to_host) - conn.preamble + len(payload) > conn.buf_alloc:
            self.fault(HeaderError(f"{len(payload)} bytes over the credit of port {conn.key}"))
            self._reset(conn)
            return
        conn.to_host += payload
        self._flush_to_host(conn)

    # -- host sockets (§6) -------------------------------------------------------------

    def accept_host(self, listener: socket.socket) -> None:
        """Accept a host client on the CONNECT socket."""
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if self.connection_count >= self.limits.max_connections:
            log.warning("connection limit reached: host client refused")
            sock.close()
            return
        sock.setblocking(False)
        conn = Connection(sock, 0, 0, 0, State.AWAIT_LINE, self.limits.buf_alloc)
        self._set_deadline(conn, time.monotonic() + self.limits.connect_timeout)
        self._pending.add(conn)
        self._update_interest(conn)

    def on_socket(self, conn: Connection, mask: int) -> None:
        """A host socket is readable or writable."""
        if conn.state is State.AWAIT_LINE:
            self._read_line(conn)
            return
        if mask & selectors.EVENT_WRITE:
            self._flush_to_host(conn)
        if mask & selectors.EVENT_READ and self._alive(conn):
            self._read_host(conn)

    def _read_line(self, conn: Connection) -> None:
        try:
            port = read_connect_line(conn)
        except (ConnectLineError, OSError) as error:
            log.info("host client dropped: %s", error)
            self._drop(conn)
            return
        if port is None:
            return
        self._pending.discard(conn)
        conn.host_cid, conn.guest_port = self.host_cid, port
        conn.host_port, conn.allocated = self._ports.allocate(), True
        conn.state = State.REQUESTED
        self._set_deadline(conn, time.monotonic() + self.limits.connect_timeout)
        self._conns[conn.key] = conn
        self._push_control((conn.host_cid, conn.host_port, port, Op.REQUEST, 0, conn))
        self._update_interest(conn)

    def queue_ready(self, queue: Virtqueue) -> None:
        """A queue started or was enabled: serve what the guest already queued."""
        if queue.index == TX:
            self.process_tx()
        self.fill_rx()

    def _read_host(self, conn: Connection) -> None:
        room = self.limits.to_guest_buffer - len(conn.to_guest)
        if room > 0:
            try:
                data = conn.sock.recv(room)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._reset(conn)
                return
            if data:
                conn.to_guest += data
            else:
                conn.host_eof = True
            self._schedule(conn)
        self._update_interest(conn)

    def _flush_to_host(self, conn: Connection) -> None:
        if conn.to_host:
            try:
                sent = conn.sock.send(conn.to_host)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._reset(conn)
                return
            del conn.to_host[:sent]
            counted = max(0, sent - conn.preamble)  # the OK line is not guest data
            conn.preamble -= sent - counted
            conn.fwd_cnt += counted
            if conn.wants_credit_update(MAX_PAYLOAD):
                self._queue_credit_update(conn)
        if not conn.to_host:
            if conn.closing:
                self._reset(conn)
                return
            if conn.guest_shutdown & SHUTDOWN_SEND and not conn.shut_wr:
                conn.shut_wr = True
                # A client already gone shows up at its next read or write.
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_WR)
        self._update_interest(conn)
