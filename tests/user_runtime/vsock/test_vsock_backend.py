# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The back-end against a fake QEMU and guest: handshake, data, connection life (§3-§7)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time

import pytest
from vsock_fake import SHUT_SEND, FakeFrontEnd
from vsock_harness import Harness, echo_once, read_line, recv_all

from user_runtime.vsock import DeviceLimits

MIB = 1024 * 1024


def test_handshake_reports_the_configured_guest_cid(make_harness) -> None:
    harness = make_harness(guest_cid=42)  # the fake asserts GET_CONFIG says 42
    assert harness.guest.get_config() == 42
    features = harness.guest.u64(1)
    assert features & (1 << 32), "VIRTIO_F_VERSION_1"
    assert not features & (1 << 29), "EVENT_IDX is not offered"
    assert harness.guest.u64(17) == 3


def test_default_guest_cid_is_16(vsock: Harness) -> None:
    assert vsock.guest.get_config() == 16


@pytest.mark.parametrize("size", [1, 3 * MIB + 5], ids=["one-byte", "over-1MiB"])
@pytest.mark.parametrize("split", [False, True], ids=["rx-one-desc", "rx-two-descs"])
def test_guest_to_host_data_both_ways(make_harness, size: int, split: bool) -> None:
    harness: Harness = make_harness(rx_split=split)
    payload = os.urandom(size)

    def host_side(server: socket.socket) -> bytes:
        conn, _ = server.accept()
        with conn:
            data = recv_all(conn)  # until the guest's SHUTDOWN(SEND)
            conn.sendall(data[::-1])
        return data

    with harness.host_listen(9000) as server:
        future = harness.run(host_side, server)
        conn = harness.guest.connect(9000)
        conn.send(payload)
        conn.shutdown(SHUT_SEND)
        back = conn.recv_all()  # until the host's end of file
        assert harness.result(future) == payload
        assert back == payload[::-1]
        conn.close()


def test_guest_may_call_cid_2_or_3(vsock: Harness) -> None:
    with vsock.host_listen(8000) as server:
        for cid in (2, 3):
            future = vsock.run(echo_once, server)
            conn = vsock.guest.connect(8000, cid=cid)
            conn.send(b"kms")
            assert conn.recv_exact(3) == b"kms"
            conn.close()
            assert vsock.result(future) == 3


def test_host_to_guest_connect_and_data(vsock: Harness) -> None:
    payload = os.urandom(2 * MIB + 3)
    vsock.guest.listen(5000)

    def host_side() -> tuple[bytes, bytes]:
        client, line = vsock.host_connect(5000)
        with client:
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
            return line, recv_all(client)

    future = vsock.run(host_side)
    conn = vsock.guest.accept(5000)
    assert conn.peer_cid == 3
    received = conn.recv_all()
    conn.send(hashlib.sha256(received).digest() + received[:MIB])
    conn.close()
    line, answer = vsock.result(future)
    match = re.fullmatch(rb"OK (\d+)\n", line)
    assert match is not None, line
    assert int(match.group(1)) == conn.peer_port >= 1 << 30
    assert received == payload
    assert answer == hashlib.sha256(payload).digest() + payload[:MIB]


def test_guest_connect_to_a_port_nobody_serves_is_reset(vsock: Harness) -> None:
    with pytest.raises(ConnectionRefusedError):
        vsock.guest.connect(7001)
    vsock.assert_serving()


def test_host_connect_to_a_port_the_guest_refuses_closes_the_client(vsock: Harness) -> None:
    future = vsock.run(vsock.host_connect, 5001)  # the guest does not listen: it sends RST
    client, line = vsock.result(future)
    with client:
        assert line == b""
        assert client.recv(1) == b""


@pytest.mark.parametrize(
    "line", [b"HELLO 5000\n", b"CONNECT\n", b"CONNECT x\n", b"CONNECT " + b"9" * 40 + b"\n"]
)
def test_bad_connect_line_closes_the_client(vsock: Harness, line: bytes) -> None:
    def host_side() -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(30)
            client.connect(vsock.prefix)
            client.sendall(line)
            try:
                return recv_all(client)
            except ConnectionResetError:  # closed with the rest of a long line unread
                return b""

    assert vsock.result(vsock.run(host_side)) == b""
    # The client sees EOF when the socket closes; the device forgets the connection on the
    # backend's thread just after, so wait for it (a leak still fails at the deadline).
    deadline = time.monotonic() + 10
    while vsock.backend.device.connection_count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert vsock.backend.device.connection_count == 0
    vsock.assert_serving()


def test_connect_is_case_insensitive_like_firecracker(vsock: Harness) -> None:
    vsock.guest.listen(5002)

    def host_side() -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(30)
            client.connect(vsock.prefix)
            client.sendall(b"connect 5002\nearly bytes")
            return read_line(client)

    future = vsock.run(host_side)
    conn = vsock.guest.accept(5002)
    assert conn.recv_exact(11) == b"early bytes"  # bytes after the line are data
    assert vsock.result(future).startswith(b"OK ")
    conn.close()


def test_host_close_is_end_of_stream_for_the_guest(vsock: Harness) -> None:
    def host_side(server: socket.socket) -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"bye")

    with vsock.host_listen(9001) as server:
        future = vsock.run(host_side, server)
        conn = vsock.guest.connect(9001)
        assert conn.recv_all() == b"bye"
        assert conn.peer_shutdown & SHUT_SEND
        vsock.result(future)
        conn.close()  # RST answers the guest's full shutdown
        assert conn.reset


def test_guest_close_is_end_of_stream_for_the_host(vsock: Harness) -> None:
    with vsock.host_listen(9002) as server:
        future = vsock.run(lambda: recv_all(server.accept()[0]))
        conn = vsock.guest.connect(9002)
        conn.send(b"last words")
        conn.close()
        assert vsock.result(future) == b"last words"
    vsock.guest.wait(lambda: vsock.backend.device.connection_count == 0, "the table to empty")


def test_guest_half_close_keeps_the_host_direction_open(vsock: Harness) -> None:
    def host_side(server: socket.socket) -> None:
        conn, _ = server.accept()
        with conn:
            assert recv_all(conn) == b"request"
            conn.sendall(b"response")

    with vsock.host_listen(9003) as server:
        future = vsock.run(host_side, server)
        conn = vsock.guest.connect(9003)
        conn.send(b"request")
        conn.shutdown(SHUT_SEND)
        assert conn.recv_all() == b"response"
        vsock.result(future)
        conn.close()


def test_guest_reset_closes_the_host_socket(vsock: Harness) -> None:
    with vsock.host_listen(9004) as server:
        future = vsock.run(lambda: recv_all(server.accept()[0]))
        conn = vsock.guest.connect(9004)
        conn.send(b"x")
        vsock.guest.send_packet(conn, 3, 0, b"")  # RST
        assert vsock.result(future) == b"x"


def test_many_concurrent_connections(vsock: Harness) -> None:
    guest = vsock.guest
    count = 40
    with vsock.host_listen(9005) as server:
        futures = [vsock.run(echo_once, server) for _ in range(8)]
        conns = []
        for _ in range(count):
            conns.append(guest.connect(9005))
            if len(futures) < count:
                futures.append(vsock.run(echo_once, server))
        blobs = [os.urandom(20000 + i) for i in range(count)]
        for conn, blob in zip(conns, blobs, strict=True):
            conn.send(blob)
        for conn, blob in zip(conns, blobs, strict=True):
            assert conn.recv_exact(len(blob)) == blob
        for conn in conns:
            conn.close()
        assert sorted(vsock.result(f) for f in futures) == sorted(len(b) for b in blobs)


def test_many_host_initiated_connections(vsock: Harness) -> None:
    vsock.guest.listen(5003)

    def host_side(index: int) -> bytes:
        client, line = vsock.host_connect(5003)
        with client:
            client.sendall(b"%d\n" % index)
            return line + recv_all(client)

    futures = [vsock.run(host_side, i) for i in range(20)]
    served = 0
    while served < 20:
        conn = vsock.guest.accept(5003)
        number = conn.recv(100)
        conn.send(b"echo " + number)
        conn.close()
        served += 1
    answers = [vsock.result(f) for f in futures]
    ports = {a.split(b"\n")[0] for a in answers}
    assert len(ports) == 20  # a local port each
    assert sorted(a.split(b"\n", 1)[1] for a in answers) == sorted(
        b"echo %d\n" % i for i in range(20)
    )


def test_packet_for_an_unknown_connection_gets_rst(vsock: Harness) -> None:
    vsock.guest.send_raw_header(40000, 3, 1234, 5)  # RW, no such connection
    vsock.guest.wait(lambda: vsock.guest.unmatched, "an RST")
    assert vsock.guest.unmatched[0].op == 3
    assert vsock.backend.device.faults == 0


def test_ring_restart_drops_connections_and_serves_again(vsock: Harness) -> None:
    guest: FakeFrontEnd = vsock.guest
    with vsock.host_listen(9006) as server:
        future = vsock.run(lambda: recv_all(server.accept()[0]))
        guest.connect(9006)
        bases = [guest.stop_queue(queue) for queue in range(3)]
        assert bases[0] == guest.used_idx(0)  # rx: taken only when there was a packet
        assert bases[1] == guest.avail_idx[1]  # tx: every packet was consumed
        assert vsock.result(future) == b""  # the host socket was closed
        for queue in range(3):
            guest.start_queue(queue, bases[queue])
        os.eventfd_write(guest.kick[0], 1)
    vsock.assert_serving()


def test_guest_that_never_answers_a_host_connect_times_out(make_harness) -> None:
    harness: Harness = make_harness(limits=DeviceLimits(connect_timeout=0.2))
    harness.guest.silent = True  # the REQUEST gets neither RESPONSE nor RST
    client, line = harness.result(harness.run(harness.host_connect, 5004))
    client.close()
    assert line == b""
    harness.guest.wait(lambda: harness.guest.unmatched[-1].op == 3, "the RST after the REQUEST")
    assert [p.op for p in harness.guest.unmatched] == [1, 3]


def test_close_with_bytes_the_host_never_reads_ends_after_the_close_timeout(make_harness):
    harness: Harness = make_harness(limits=DeviceLimits(connect_timeout=0.2))
    device = harness.backend.device

    def held() -> int:
        return sum(len(c.to_host) for c in list(device._conns.values()))

    with harness.host_listen(9007) as server:
        conn = harness.guest.connect(9007)
        peer, _ = server.accept()  # never reads: its socket buffer fills, then we hold bytes
        with peer:
            sent = 0
            while not held() and sent < 64 * MIB:
                harness.guest.pump(0.01)
                if conn.credit() > 0:
                    chunk = min(conn.credit(), 64 * 1024)
                    conn.send(bytes(chunk))
                    sent += chunk
            assert held()
            conn.close()  # waits for the RST that the close timeout brings
    assert conn.reset
    harness.guest.wait(lambda: device.connection_count == 0, "the table to empty")
    assert device.faults == 0


def test_connect_line_in_pieces(vsock: Harness) -> None:
    vsock.guest.listen(5005)

    def host_side() -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(30)
            client.connect(vsock.prefix)
            for piece in (b"CONN", b"ECT 50", b"05\n"):
                client.sendall(piece)
                time.sleep(0.05)  # separate reads on the back-end's side (not asserted)
            return read_line(client)

    future = vsock.run(host_side)
    conn = vsock.guest.accept(5005)
    assert vsock.result(future).startswith(b"OK ")
    conn.close()


def test_stop_after_close_is_harmless(vsock: Harness) -> None:
    vsock.backend.stop()
    vsock.guest.wait(lambda: vsock.backend._stop_w == -1, "the back-end to close")
    vsock.backend.stop()  # must not write into whatever now owns the old fd number
