# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The server: handshake, unknown ops, path attacks over the wire, hostile frames."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest

from enclave.credentials import CredentialStore, HostCredentials
from enclave.runner.interface import UnavailableRunner
from enclave.server import EnclaveServer
from enclave.sessionfs import SessionFs, SessionLimits
from enclave.transport import SocketServer, listen_unix
from package_format.rpc import (
    ErrorCode,
    FrameDecoder,
    Hello,
    MessageSchemaError,
    Request,
    Response,
    Welcome,
    parse_message,
)
from package_format.rpc.frames import frame_bytes
from user_runtime.rpc.client import EnclaveClient, EnclaveUnavailableError

NOW = 1_767_225_600_000_000_000


def machine() -> tuple[EnclaveServer, list[object]]:
    sent: list[object] = []
    server = EnclaveServer(SessionFs(clock=lambda: NOW), UnavailableRunner())
    return server, sent


def frame_of(message: Request | Hello) -> object:
    return FrameDecoder().feed(frame_bytes(message.header(), message.body))[0]


def ready_connection():
    server, sent = machine()
    conn = server.connection(sent.append)
    [welcome] = conn.on_frame(frame_of(Hello((1,))))
    assert isinstance(welcome, Welcome)
    assert welcome.version == 1
    return server, conn


def test_handshake_picks_common_version() -> None:
    server, sent = machine()
    conn = server.connection(sent.append)
    [reply] = conn.on_frame(frame_of(Hello((7, 1, 3))))
    assert isinstance(reply, Welcome)
    assert reply.version == 1
    assert not conn.closed


def test_unknown_version_gets_error_and_close() -> None:
    server, sent = machine()
    conn = server.connection(sent.append)
    [reply] = conn.on_frame(frame_of(Hello((2, 9))))
    assert isinstance(reply, Response)
    assert reply.status == ErrorCode.UNSUPPORTED_VERSION
    assert conn.closed


def test_request_before_hello_is_rejected() -> None:
    server, sent = machine()
    conn = server.connection(sent.append)
    with pytest.raises(MessageSchemaError):
        conn.on_frame(frame_of(Request(1, "ping", {})))


def test_unknown_op_gets_error_reply_not_disconnect() -> None:
    _, conn = ready_connection()
    [reply] = conn.on_frame(frame_of(Request(5, "format_disk", {})))
    assert (reply.id, reply.status, reply.args["name"]) == (5, ErrorCode.UNKNOWN_OP, "UNKNOWN_OP")
    [pong] = conn.on_frame(frame_of(Request(6, "ping", {})))
    assert pong.status == 0
    assert not conn.closed


def test_bad_arguments_get_error_reply() -> None:
    _, conn = ready_connection()
    for args in ({}, {"path": 3}, {"path": "dataset", "extra": 1}):
        [reply] = conn.on_frame(frame_of(Request(2, "stat", args)))
        assert reply.status == ErrorCode.BAD_ARGS
    [reply] = conn.on_frame(frame_of(Request(3, "stat", {"path": "dataset"}, memoryview(b"x"))))
    assert reply.status == ErrorCode.BAD_ARGS


def test_oversized_read_and_write_refused() -> None:
    _, conn = ready_connection()
    [reply] = conn.on_frame(
        frame_of(Request(2, "read", {"path": "x", "offset": 0, "length": 2**20 + 1}))
    )
    assert reply.status == ErrorCode.TOO_LARGE
    body = memoryview(bytes(2**20 + 1))
    [reply] = conn.on_frame(frame_of(Request(3, "write", {"path": "dataset/x", "offset": 0}, body)))
    assert reply.status == ErrorCode.TOO_LARGE
    [reply] = conn.on_frame(frame_of(Request(4, "put", {"path": "dataset/x"}, body)))
    assert reply.status == ErrorCode.TOO_LARGE


def test_put_replaces_a_whole_file_in_one_request() -> None:
    server, conn = ready_connection()
    server.fs.create("dataset/p")
    server.fs.write("dataset/p", 0, b"old contents, longer")
    put = Request(2, "put", {"path": "dataset/p", "mode": 0o600}, memoryview(b"new"))
    [reply] = conn.on_frame(frame_of(put))
    assert (reply.status, reply.args) == (0, {"written": 3})
    assert server.fs.read("dataset/p", 0, 100) == b"new"
    [reply] = conn.on_frame(frame_of(Request(3, "put", {"path": "dataset"}, memoryview(b"x"))))
    assert reply.status == ErrorCode.EISDIR


def test_put_over_the_budget_fails_enospc_leaving_the_file_empty() -> None:
    # §7.2: a put fails as create + write would; the sync daemon's repair relies on it.
    server = EnclaveServer(SessionFs(SessionLimits(budget_bytes=10)), UnavailableRunner())
    conn = server.connection([].append)
    conn.on_frame(frame_of(Hello((1,))))
    [reply] = conn.on_frame(
        frame_of(Request(2, "put", {"path": "dataset/p"}, memoryview(b"x" * 11)))
    )
    assert reply.status == ErrorCode.ENOSPC
    assert server.fs.stat("dataset/p").size == 0
    assert server.fs.statfs()["used_bytes"] == 0


PATH_REQUESTS = {
    "stat": lambda p: {"path": p},
    "listdir": lambda p: {"path": p},
    "mkdir": lambda p: {"path": p},
    "rmdir": lambda p: {"path": p},
    "unlink": lambda p: {"path": p},
    "rename": lambda p: {"src": "dataset/victim", "dst": p},
    "create": lambda p: {"path": p},
    "truncate": lambda p: {"path": p, "size": 0},
    "chmod": lambda p: {"path": p, "mode": 0o777},
    "utimens": lambda p: {"path": p, "atime_ns": 0, "mtime_ns": 0},
    "read": lambda p: {"path": p, "offset": 0, "length": 1},
    "write": lambda p: {"path": p, "offset": 0},
    "put": lambda p: {"path": p},
    "fsync": lambda p: {"path": p},
}
ATTACKS = {
    "dotdot": ("dataset/../../etc/passwd", ErrorCode.EINVAL),
    "double-slash": ("dataset//victim", ErrorCode.EINVAL),
    "absolute": ("/etc/passwd", ErrorCode.EINVAL),
    "nul": ("dataset/victim\0", ErrorCode.EINVAL),
    "too-long": ("dataset/" + "x" * 256, ErrorCode.ENAMETOOLONG),
}


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("op", PATH_REQUESTS)
def test_path_attack_over_the_wire_rejected(op: str, attack: str) -> None:
    server, conn = ready_connection()
    server.fs.create("dataset/victim")
    path, expected = ATTACKS[attack]
    body = memoryview(b"x" if op in {"write", "put"} else b"")
    [reply] = conn.on_frame(frame_of(Request(9, op, PATH_REQUESTS[op](path), body)))
    assert reply.status == expected
    assert [n for n, _ in server.fs.listdir("dataset")] == ["victim"]
    assert server.fs.stat("dataset/victim").mode == 0o100644


# -- hostile frames over a real socket: that connection dropped, others served --


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "s.sock"
    server = SocketServer(EnclaveServer(SessionFs(), UnavailableRunner()), listen_unix(path))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    thread.join(5)


def raw_connect(path: Path, *, hello: bool = True) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(path))
    if hello:
        sock.sendall(frame_bytes(Hello((1,)).header()))
        decoder = FrameDecoder()
        frames = []
        while not frames:
            frames = decoder.feed(sock.recv(65536))
        assert isinstance(parse_message(frames[0]), Welcome)
    return sock


def read_until_closed(sock: socket.socket) -> list[object]:
    decoder = FrameDecoder()
    messages = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:  # closed with our unread bytes in its buffer
            return messages
        if not chunk:
            return messages
        messages += [parse_message(f) for f in decoder.feed(chunk)]


def assert_dropped_and_others_served(path: Path, sock: socket.socket, other: EnclaveClient) -> None:
    messages = read_until_closed(sock)  # returns only because the server closed it
    assert all(
        isinstance(m, Response) and m.id == 0 and m.status == ErrorCode.BAD_FRAME for m in messages
    )
    other.ping()
    assert other.stat("dataset").mode & 0o040000
    with EnclaveClient.connect(f"unix:{path}") as fresh:
        fresh.ping()


def test_garbage_frame_drops_connection(live: Path) -> None:
    other = EnclaveClient.connect(f"unix:{live}")
    sock = raw_connect(live)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: enclave\r\n\r\n")
    assert_dropped_and_others_served(live, sock, other)
    other.close()


def test_garbage_before_hello_drops_connection(live: Path) -> None:
    other = EnclaveClient.connect(f"unix:{live}")
    sock = raw_connect(live, hello=False)
    sock.sendall(struct.pack(">II", 3, 0) + b"\xff\x00\x01")
    assert_dropped_and_others_served(live, sock, other)
    other.close()


def test_oversized_frame_drops_connection(live: Path) -> None:
    other = EnclaveClient.connect(f"unix:{live}")
    sock = raw_connect(live)
    sock.sendall(struct.pack(">II", 20, 5 * 1024 * 1024))  # declares 5 MiB, sends nothing more
    assert_dropped_and_others_served(live, sock, other)
    other.close()


def test_oversized_header_drops_connection(live: Path) -> None:
    other = EnclaveClient.connect(f"unix:{live}")
    sock = raw_connect(live)
    sock.sendall(struct.pack(">II", 64 * 1024 + 1, 0))
    assert_dropped_and_others_served(live, sock, other)
    other.close()


def test_truncated_frame_drops_connection(live: Path) -> None:
    other = EnclaveClient.connect(f"unix:{live}")
    sock = raw_connect(live)
    whole = frame_bytes(
        Request(1, "write", {"path": "dataset/x", "offset": 0}).header(), b"y" * 1000
    )
    sock.sendall(whole[:500])
    sock.shutdown(socket.SHUT_WR)  # the peer goes away mid-frame
    assert_dropped_and_others_served(live, sock, other)
    other.close()


def test_non_canonical_header_drops_connection(live: Path) -> None:
    other = EnclaveClient.connect(f"unix:{live}")
    sock = raw_connect(live)
    header = cbor2.dumps({"type": "req", "id": 1, "op": "ping", "args": {}})  # keys unsorted
    assert header != cbor2.dumps(cbor2.loads(header), canonical=True)
    sock.sendall(struct.pack(">II", len(header), 0) + header)
    assert_dropped_and_others_served(live, sock, other)
    other.close()


def test_unknown_message_type_drops_connection(live: Path) -> None:
    other = EnclaveClient.connect(f"unix:{live}")
    sock = raw_connect(live)
    sock.sendall(frame_bytes({"type": "pickle", "id": 1, "args": {}}))
    assert_dropped_and_others_served(live, sock, other)
    other.close()


def test_unknown_version_over_socket_is_explicit(live: Path) -> None:
    sock = raw_connect(live, hello=False)
    sock.sendall(frame_bytes(Hello((2,)).header()))
    [reply] = read_until_closed(sock)
    assert isinstance(reply, Response)
    assert reply.status == ErrorCode.UNSUPPORTED_VERSION
    assert "no common protocol version" in reply.args["message"]


def test_symlink_ops_do_not_exist() -> None:
    server, conn = ready_connection()
    for rid, op in enumerate(("symlink", "link", "readlink", "mknod"), start=1):
        [reply] = conn.on_frame(
            frame_of(Request(rid, op, {"path": "dataset/l", "target": "/etc/passwd"}))
        )
        assert reply.status == ErrorCode.UNKNOWN_OP
    assert server.fs.listdir("dataset") == []
    assert all(info.mode & 0o170000 in (0o040000, 0o100000) for _, info in server.fs.listdir(""))


def test_silent_connection_is_closed_after_hello_timeout(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    server = SocketServer(
        EnclaveServer(SessionFs(), UnavailableRunner()), listen_unix(path), hello_timeout=0.2
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        silent = raw_connect(path, hello=False)
        assert read_until_closed(silent) == []  # returns because the server gave up on it
        with EnclaveClient.connect(f"unix:{path}") as client:
            client.ping()  # a client that says hello in time stays, past the timeout
            client.ping()
    finally:
        server.shutdown()
        thread.join(5)


def test_connections_over_the_limit_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    server = SocketServer(
        EnclaveServer(SessionFs(), UnavailableRunner()), listen_unix(path), max_connections=2
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        first = EnclaveClient.connect(f"unix:{path}")
        second = EnclaveClient.connect(f"unix:{path}")
        with pytest.raises(EnclaveUnavailableError):
            EnclaveClient.connect(f"unix:{path}")
        first.close()
        deadline = 100
        while deadline:  # the server notices the close on its own thread
            try:
                third = EnclaveClient.connect(f"unix:{path}")
                break
            except EnclaveUnavailableError:
                deadline -= 1
                threading.Event().wait(0.05)
        else:
            pytest.fail("no slot freed after a close")
        third.ping()
        second.ping()
        third.close()
        second.close()
    finally:
        server.shutdown()
        thread.join(5)


def test_credentials_op_stores_the_hosts_credentials_in_memory() -> None:
    # §7.5: QEMU and Nitro enclaves get KMS credentials over the connection, never in the image.
    store = CredentialStore()
    server = EnclaveServer(SessionFs(clock=lambda: NOW), UnavailableRunner(), credentials=store)
    conn = server.connection([].append)
    conn.on_frame(frame_of(Hello((1,))))
    args = {"access_key_id": "AKID", "secret_access_key": "s3cr3t", "region": "eu-west-1"}
    [reply] = conn.on_frame(frame_of(Request(2, "credentials", args)))
    assert (reply.status, reply.args) == (0, {})
    assert store.get() == HostCredentials("AKID", "s3cr3t", None, "eu-west-1")
    assert "s3cr3t" not in repr(store.get())
    empty = {**args, "access_key_id": ""}
    [reply] = conn.on_frame(frame_of(Request(3, "credentials", empty)))
    assert reply.status == ErrorCode.BAD_ARGS


def test_credentials_op_refused_by_a_server_without_a_store() -> None:
    _, conn = ready_connection()
    args = {"access_key_id": "AKID", "secret_access_key": "s"}
    [reply] = conn.on_frame(frame_of(Request(2, "credentials", args)))
    assert reply.status == ErrorCode.NOT_ALLOWED
