# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""A hostile guest (specs/vsock.md §9): one test per attack.

Each attack must be counted as a guest fault, cost at most the connection it names or the
buffer it used, and leave the back-end serving a new connection afterwards.
"""

from __future__ import annotations

import os
import socket
import struct

import pytest
from conftest import Harness, recv_all
from vsock_fake import (
    F_INDIRECT,
    F_NEXT,
    F_WRITE,
    GPA_A,
    HDR,
    QSIZE,
    RAW_BASE,
    REGION,
    REQUEST,
    RESPONSE,
    RW,
    GuestConn,
)

from user_runtime.vsock import DeviceLimits


def _open(vsock: Harness, port: int = 9100) -> tuple[GuestConn, socket.socket]:
    server = vsock.host_listen(port)
    conn = vsock.guest.connect(port)
    peer, _ = server.accept()
    server.close()
    return conn, peer


def _hostile_header(conn: GuestConn, **fields: int) -> bytes:
    values = {
        "src_cid": conn.guest.guest_cid, "dst_cid": conn.peer_cid,
        "src_port": conn.local_port, "dst_port": conn.peer_port, "len": 0, "type": 1,
        "op": RW, "flags": 0, "buf_alloc": conn.buf_alloc, "fwd_cnt": conn.fwd_cnt,
    }  # fmt: skip
    values.update(fields)
    return HDR.pack(*values.values())


def _assert_reset_and_serving(vsock: Harness, conn: GuestConn, before: int) -> None:
    vsock.wait_fault(before)
    vsock.guest.wait(lambda: conn.reset, "RST of the connection the bad frame named")
    vsock.assert_serving()


@pytest.fixture
def victim(vsock: Harness):
    conn, peer = _open(vsock)
    yield conn, peer
    peer.close()


def test_bad_header_unknown_op(vsock: Harness, victim) -> None:
    conn, peer = victim
    before = vsock.backend.device.faults
    vsock.guest.send_bytes(_hostile_header(conn, op=99), b"")
    _assert_reset_and_serving(vsock, conn, before)
    assert recv_all(peer) == b""  # the host side saw the connection end


def test_bad_header_unknown_type(vsock: Harness, victim) -> None:
    conn, _ = victim
    before = vsock.backend.device.faults
    vsock.guest.send_bytes(_hostile_header(conn, type=2), b"")  # seqpacket: not offered
    _assert_reset_and_serving(vsock, conn, before)


def test_bad_header_short(vsock: Harness, victim) -> None:
    conn, peer = victim
    before = vsock.backend.device.faults
    vsock.guest.send_bytes(_hostile_header(conn)[:20], b"")  # names no connection
    vsock.wait_fault(before)
    conn.send(b"still here")  # only the buffer was dropped
    assert peer.recv(100) == b"still here"
    vsock.assert_serving()


def test_bad_header_len_on_a_control_packet(vsock: Harness, victim) -> None:
    conn, _ = victim
    before = vsock.backend.device.faults
    vsock.guest.send_bytes(_hostile_header(conn, op=6, len=4), b"abcd")
    _assert_reset_and_serving(vsock, conn, before)


def test_len_over_the_buffer(vsock: Harness, victim) -> None:
    conn, peer = victim
    before = vsock.backend.device.faults
    vsock.guest.send_bytes(_hostile_header(conn, len=1000), b"only ten b")
    _assert_reset_and_serving(vsock, conn, before)
    assert recv_all(peer) == b""  # none of the short packet was forwarded


def test_len_over_max_packet(vsock: Harness, victim) -> None:
    conn, _ = victim
    before = vsock.backend.device.faults
    size = 64 * 1024 + 1
    vsock.guest.write(RAW_BASE, _hostile_header(conn, len=size))
    vsock.guest.post_raw_tx(
        {240: (RAW_BASE, 44, F_NEXT, 241), 241: (RAW_BASE + 4096, size, 0, 0)}, 240
    )
    _assert_reset_and_serving(vsock, conn, before)


def test_data_over_credit(make_harness) -> None:
    vsock = make_harness(limits=DeviceLimits(buf_alloc=64 * 1024))
    conn, peer = _open(vsock)  # the host side never reads: the socket buffer fills
    before = vsock.backend.device.faults
    chunk = bytes(64 * 1024)
    for _ in range(64):  # 4 MiB ignoring the credit: more than any socket buffer
        if conn.reset:
            break
        vsock.guest.send_packet(conn, RW, 0, chunk)
        vsock.guest.pump(0)
    _assert_reset_and_serving(vsock, conn, before)
    peer.close()


def test_wrong_src_cid(vsock: Harness) -> None:
    server = vsock.host_listen(9101)
    server.settimeout(0.5)
    before = vsock.backend.device.faults
    vsock.guest.send_bytes(HDR.pack(99, 3, 1234, 9101, 0, 1, REQUEST, 0, 4096, 0), b"")
    vsock.wait_fault(before)
    with pytest.raises(TimeoutError):
        server.accept()  # no connection was made for the forged source
    server.close()
    vsock.assert_serving()


def test_second_request_for_a_live_connection(vsock: Harness, victim) -> None:
    conn, _ = victim
    before = vsock.backend.device.faults
    vsock.guest.send_packet(conn, REQUEST, 0, b"")
    _assert_reset_and_serving(vsock, conn, before)


def test_response_on_an_established_connection(vsock: Harness, victim) -> None:
    conn, _ = victim
    before = vsock.backend.device.faults
    vsock.guest.send_packet(conn, RESPONSE, 0, b"")
    _assert_reset_and_serving(vsock, conn, before)


def test_data_before_answering_a_host_connection(vsock: Harness) -> None:
    vsock.guest.silent = True  # neither RESPONSE nor RST from the fake
    future = vsock.run(vsock.host_connect, 5100)
    vsock.guest.wait(lambda: vsock.guest.unmatched, "the REQUEST")
    request = vsock.guest.unmatched[0]
    assert request.op == REQUEST
    before = vsock.backend.device.faults
    forged = GuestConn(vsock.guest, request.dst_port, request.src_cid, request.src_port)
    vsock.guest.send_packet(forged, RW, 0, b"early")  # RW instead of RESPONSE
    vsock.wait_fault(before)
    client, line = vsock.result(future)
    assert line == b""  # the client was closed, no OK line
    client.close()
    vsock.assert_serving()


def _raw_fault(vsock: Harness, descs: dict[int, tuple[int, int, int, int]], head: int) -> None:
    before = vsock.backend.device.faults
    vsock.guest.post_raw_tx(descs, head)
    vsock.wait_fault(before)


def test_descriptor_outside_guest_memory(vsock: Harness) -> None:
    _raw_fault(vsock, {240: (GPA_A + REGION + 4096, 44, 0, 0)}, 240)  # the gap after A
    vsock.guest.wait(lambda: (240, 0) in vsock.guest.raw_used, "the chain back")
    vsock.assert_serving()


def test_descriptor_straddling_a_region_end(vsock: Harness) -> None:
    _raw_fault(vsock, {240: (GPA_A + REGION - 20, 44, 0, 0)}, 240)
    vsock.assert_serving()


def test_descriptor_with_a_huge_length(vsock: Harness) -> None:
    _raw_fault(vsock, {240: (RAW_BASE, 0xFFFFFFFF, 0, 0)}, 240)
    vsock.assert_serving()


def test_descriptor_chain_loop(vsock: Harness) -> None:
    _raw_fault(vsock, {240: (RAW_BASE, 22, F_NEXT, 241), 241: (RAW_BASE, 22, F_NEXT, 240)}, 240)
    vsock.guest.wait(lambda: (240, 0) in vsock.guest.raw_used, "the chain back")
    vsock.assert_serving()


def test_descriptor_next_outside_the_table(vsock: Harness) -> None:
    _raw_fault(vsock, {240: (RAW_BASE, 44, F_NEXT, QSIZE + 5)}, 240)
    vsock.assert_serving()


def test_head_outside_the_table(vsock: Harness) -> None:
    _raw_fault(vsock, {}, QSIZE + 7)
    vsock.assert_serving()


def test_writable_descriptor_in_a_tx_chain(vsock: Harness) -> None:
    _raw_fault(vsock, {240: (RAW_BASE, 44, F_WRITE, 0)}, 240)
    vsock.assert_serving()


def test_indirect_descriptor_not_negotiated(vsock: Harness) -> None:
    _raw_fault(vsock, {240: (RAW_BASE, 16, F_INDIRECT, 0)}, 240)
    vsock.assert_serving()


def test_avail_index_running_ahead(vsock: Harness) -> None:
    guest = vsock.guest
    avail = guest.ring(1)[1]
    before = vsock.backend.device.faults
    guest.write(avail + 2, struct.pack("<H", (guest.avail_idx[1] + 1000) & 0xFFFF))
    os.eventfd_write(guest.kick[1], 1)
    vsock.wait_fault(before)
    guest.write(avail + 2, struct.pack("<H", guest.avail_idx[1]))  # the guest repairs it
    vsock.assert_serving()  # its next kick brings the queue back


def _bad_rx_buffer(vsock: Harness, addr: int, length: int, flags: int) -> None:
    guest = vsock.guest
    head = guest.next_rx_head()
    guest.set_desc(0, head, addr, length, flags)
    before = vsock.backend.device.faults
    vsock.assert_serving()  # the connection's RESPONSE skips the bad buffer
    assert vsock.backend.device.faults > before
    assert (head, 0) in guest.refused_rx


def test_rx_buffer_smaller_than_a_header(vsock: Harness) -> None:
    _bad_rx_buffer(vsock, RAW_BASE, 10, F_WRITE)


def test_rx_buffer_outside_guest_memory(vsock: Harness) -> None:
    _bad_rx_buffer(vsock, GPA_A + REGION, 4096, F_WRITE)


def test_rx_buffer_read_only(vsock: Harness) -> None:
    _bad_rx_buffer(vsock, RAW_BASE, 4096, 0)
