# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The host side: one Unix socket per connection, the CONNECT line, local ports (§6)."""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass, field

from user_runtime.vsock.errors import VsockError

# §6.2: Firecracker reads at most 32 bytes for "CONNECT <port>\n".
MAX_CONNECT_LINE = 32
# §6.2: host-initiated connections get local ports from 2**30 up, as Firecracker does.
FIRST_LOCAL_PORT = 1 << 30


class ConnectLineError(VsockError):
    """A host client sent something other than a `CONNECT <port>` line (§6.2)."""


class State(enum.Enum):
    """Where a connection is in its life (§7.1)."""

    AWAIT_LINE = "await-line"  # host client accepted, CONNECT line not read yet
    REQUESTED = "requested"  # REQUEST sent to the guest, RESPONSE not received yet
    ESTABLISHED = "established"


@dataclass(eq=False)
class Connection:
    """One stream between a host Unix socket and a guest port, with its credit counters."""

    sock: socket.socket
    host_cid: int  # the CID the guest sees as its peer (§6.3)
    host_port: int
    guest_port: int
    state: State
    buf_alloc: int  # our receive buffer, advertised to the guest
    deadline: float | None = None
    line: bytearray = field(default_factory=bytearray)
    to_host: bytearray = field(default_factory=bytearray)  # guest data not yet written
    to_guest: bytearray = field(default_factory=bytearray)  # host data not yet sent
    fwd_cnt: int = 0  # bytes of guest data written to the host socket
    sent_fwd_cnt: int = 0  # fwd_cnt as last told to the guest
    tx_cnt: int = 0  # bytes of host data sent to the guest
    peer_buf_alloc: int = 0
    peer_fwd_cnt: int = 0
    host_eof: bool = False  # the host socket returned end of file
    eof_sent: bool = False  # SHUTDOWN(SEND) is queued for the guest
    guest_shutdown: int = 0  # SHUTDOWN flags received from the guest
    closing: bool = False  # close and RST once `to_host` is written
    update_queued: bool = False  # a CREDIT_UPDATE waits in the control queue
    allocated: bool = False  # host_port came from the PortAllocator
    shut_wr: bool = False  # the host socket got shutdown(SHUT_WR)
    preamble: int = 0  # bytes at the head of `to_host` that are our OK line
    mask: int = 0  # the selector events registered for `sock`

    @property
    def key(self) -> tuple[int, int]:
        """(host_port, guest_port): what identifies a connection on the device (§7.1)."""
        return self.host_port, self.guest_port

    def peer_credit(self) -> int:
        """Bytes the guest can take now: its buffer minus what is in flight (§7.2)."""
        in_flight = (self.tx_cnt - self.peer_fwd_cnt) & 0xFFFFFFFF
        return max(0, self.peer_buf_alloc - in_flight)

    def wants_credit_update(self, max_payload: int) -> bool:
        """True when the guest may be waiting for room we have since made (§7.2)."""
        freed = self.fwd_cnt - self.sent_fwd_cnt
        if freed <= 0:
            return False
        guest_view = self.buf_alloc - (self.fwd_cnt + len(self.to_host) - self.sent_fwd_cnt)
        return freed >= self.buf_alloc // 2 or guest_view < max_payload


def parse_connect_line(line: bytes) -> int:
    """Return the port of a `CONNECT <port>` line (case-insensitive, as Firecracker).

    Raises:
        ConnectLineError: the line is not a CONNECT command with a 32-bit port.
    """
    words = line.decode("ascii", errors="replace").split()
    if len(words) != 2 or words[0].lower() != "connect" or not words[1].isdigit():
        raise ConnectLineError(f"bad connect line {line[:MAX_CONNECT_LINE]!r}")
    port = int(words[1])
    if port > 0xFFFFFFFF:
        raise ConnectLineError(f"port {port} is over 32 bits")
    return port


def read_connect_line(conn: Connection) -> int | None:
    """Read the client's line without taking any byte after the newline.

    Returns:
        The port, or None while the line is incomplete.

    Raises:
        ConnectLineError: bad line, line too long, or the client hung up first.
    """
    try:
        peek = conn.sock.recv(MAX_CONNECT_LINE - len(conn.line), socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return None  # woken up for nothing
    if not peek:
        raise ConnectLineError("the client hung up before its CONNECT line")
    end = peek.find(b"\n")
    take = conn.sock.recv(len(peek) if end < 0 else end + 1)
    conn.line += take
    if end < 0:
        if len(conn.line) >= MAX_CONNECT_LINE:
            raise ConnectLineError("connect line is over 32 bytes")
        return None
    return parse_connect_line(bytes(conn.line))


def connect_unix(path: str) -> socket.socket | None:
    """Connect to a host service's socket, or None when nobody is there (§6.1)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


class PortAllocator:
    """Local ports for host-initiated connections: 2**30 upwards, skipping ports in use."""

    def __init__(self) -> None:
        self._last = FIRST_LOCAL_PORT - 1
        self._used: set[int] = set()

    def allocate(self) -> int:
        """Return a port that no live host-initiated connection uses."""
        while True:
            self._last = FIRST_LOCAL_PORT | ((self._last + 1) & (FIRST_LOCAL_PORT - 1))
            if self._last not in self._used:
                self._used.add(self._last)
                return self._last

    def release(self, port: int) -> None:
        """Give a port back."""
        self._used.discard(port)
