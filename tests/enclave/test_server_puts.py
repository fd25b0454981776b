# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`puts`: many small files in one request, a verdict per file (specs/rpc-protocol.md §7.7)."""

from __future__ import annotations

from enclave.runner.interface import UnavailableRunner
from enclave.server import EnclaveServer, ServerConnection
from enclave.sessionfs import SessionFs, SessionLimits
from package_format.rpc import ErrorCode, FrameDecoder, Hello, Request, Response
from package_format.rpc.frames import frame_bytes
from package_format.rpc.messages import MAX_PUTS


def _connection(budget: int = 1 << 30) -> tuple[EnclaveServer, ServerConnection]:
    server = EnclaveServer(SessionFs(SessionLimits(budget_bytes=budget)), UnavailableRunner())
    conn = server.connection([].append)
    conn.on_frame(FrameDecoder().feed(frame_bytes(Hello((1,)).header()))[0])
    return server, conn


def _puts(conn: ServerConnection, files: list[list[object]], body: bytes) -> Response:
    request = Request(7, "puts", {"files": files}, memoryview(body))
    [reply] = conn.on_frame(FrameDecoder().feed(frame_bytes(request.header(), body))[0])
    assert isinstance(reply, Response)
    return reply


def test_puts_writes_every_file_with_its_mode_and_replaces_old_contents() -> None:
    server, conn = _connection()
    server.fs.put("dataset/a", 0o644, b"old and longer")
    reply = _puts(conn, [["dataset/a", 0o600, 3], ["dataset/b", 0o640, 0]], b"new")
    assert (reply.status, reply.args) == (0, {"failed": []})
    assert server.fs.read("dataset/a", 0, 100) == b"new"
    assert server.fs.stat("dataset/a").mode & 0o7777 == 0o644  # an existing file keeps its mode
    assert server.fs.stat("dataset/b").mode & 0o7777 == 0o640
    assert server.fs.stat("dataset/b").size == 0


def test_puts_enospc_on_one_file_fails_only_that_file_the_next_still_lands() -> None:
    # The sync daemon batches unrelated files: one refusal must not lose the others.
    server, conn = _connection(budget=10)
    files = [["dataset/a", 0o644, 4], ["dataset/big", 0o644, 8], ["dataset/c", 0o644, 4]]
    reply = _puts(conn, files, b"aaaa" + b"b" * 8 + b"cccc")
    assert (reply.status, reply.args) == (0, {"failed": [[1, int(ErrorCode.ENOSPC)]]})
    assert server.fs.read("dataset/a", 0, 10) == b"aaaa"
    assert server.fs.stat("dataset/big").size == 0  # as a refused `put`: created, empty
    assert server.fs.read("dataset/c", 0, 10) == b"cccc"


def test_puts_path_attack_fails_that_entry_only() -> None:
    server, conn = _connection()
    files = [["../escape", 0o644, 1], ["dataset/ok", 0o644, 1]]
    reply = _puts(conn, files, b"xy")
    assert reply.status == 0
    [[index, status]] = reply.args["failed"]
    assert index == 0
    assert status == ErrorCode.EINVAL
    assert server.fs.read("dataset/ok", 0, 10) == b"y"


def test_puts_sizes_not_adding_up_refuses_the_whole_request() -> None:
    server, conn = _connection()
    reply = _puts(conn, [["dataset/a", 0o644, 1], ["dataset/b", 0o644, 1]], b"abc")
    assert reply.status == ErrorCode.BAD_ARGS
    assert [name for name, _ in server.fs.listdir("dataset")] == []


def test_puts_over_the_entry_limit_or_malformed_is_bad_args() -> None:
    _, conn = _connection()
    many = [[f"dataset/f{i}", 0o644, 0] for i in range(MAX_PUTS + 1)]
    assert _puts(conn, many, b"").status == ErrorCode.BAD_ARGS
    for bad in ([["dataset/a", 0o644]], [["dataset/a", -1, 0]], [[1, 0o644, 0]], [["a", 1, True]]):
        assert _puts(conn, bad, b"").status == ErrorCode.BAD_ARGS, bad


def test_puts_body_over_max_chunk_is_too_large() -> None:
    server, conn = _connection()
    size = server.limits.max_chunk + 1
    reply = _puts(conn, [["dataset/a", 0o644, size]], bytes(size))
    assert reply.status == ErrorCode.TOO_LARGE
