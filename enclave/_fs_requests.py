# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The RPC's filesystem requests, answered from the session filesystem (rpc-protocol.md §7.2).

`FsRequests` is the part of `enclave.server.ServerConnection` that turns a validated
filesystem request into `SessionFs` calls and its reply; a refused call raises
`SessionFsError`, which the connection answers with its errno code.
"""

from __future__ import annotations

from typing import Any, Protocol

from enclave.sessionfs import SessionFs, SessionFsError
from package_format.rpc import ErrorCode, FrameLimits, Request, Response

_LISTDIR_HEADER_ROOM = 1024  # the reply header beside the entries


class _Served(Protocol):
    """What the filesystem requests use of `enclave.server.EnclaveServer`."""

    fs: SessionFs
    limits: FrameLimits

    def cancel_run(self) -> bool:
        """Cancel the running run."""
        ...


class FsRequests:
    """The filesystem requests of one connection."""

    _server: _Served

    def _body_op(self, request: Request, args: dict[str, Any]) -> Response:
        fs, rid, op = self._server.fs, request.id, request.op
        max_chunk = self._server.limits.max_chunk
        if request.body.nbytes > max_chunk:
            return Response.error(rid, ErrorCode.TOO_LARGE, f"{op}: body over {max_chunk}")
        if op == "puts":
            return self._puts(rid, args["files"], request.body)
        if op == "put":  # §7.2: create or truncate, then the body at 0, in one request
            return Response(rid, 0, {"written": fs.put(args["path"], args["mode"], request.body)})
        return Response(rid, 0, {"written": fs.write(args["path"], args["offset"], request.body)})

    # specs/rpc-protocol.md §7.7: many small files in one request, a verdict per file.
    def _puts(self, rid: int, files: list[list[Any]], body: memoryview) -> Response:
        if sum(size for _, _, size in files) != body.nbytes:
            return Response.error(rid, ErrorCode.BAD_ARGS, "puts: sizes do not add up to the body")
        failed: list[list[int]] = []
        start = 0
        for index, (path, mode, size) in enumerate(files):
            try:
                self._server.fs.put(path, mode, body[start : start + size])
            except SessionFsError as e:
                failed.append([index, int(e.code)])
            start += size
        return Response(rid, 0, {"failed": failed})

    def _query_op(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        fs = self._server.fs
        if op == "statfs":
            return fs.statfs()
        if op == "stat":
            return {"stat": fs.stat(args["path"]).to_wire()}
        if op == "listdir":
            # specs/rpc-protocol.md §7.2: pages that keep the reply header under max_header.
            budget = self._server.limits.max_header - _LISTDIR_HEADER_ROOM
            entries, more = fs.listdir_page(args["path"], args["after"], budget)
            return {"entries": [[name, info.to_wire()] for name, info in entries], "more": more}
        if op == "cancel":
            return {"cancelled": self._server.cancel_run()}
        if op != "ping":
            self._simple_op(op, args)
        return {}

    def _simple_op(self, op: str, args: dict[str, Any]) -> None:
        fs = self._server.fs
        path = args.get("path", "")
        if op == "mkdir":
            fs.mkdir(path, args["mode"])
        elif op == "rmdir":
            fs.rmdir(path)
        elif op == "unlink":
            fs.unlink(path)
        elif op == "rename":
            fs.rename(args["src"], args["dst"])
        elif op == "create":
            fs.create(path, args["mode"], truncate=args["truncate"], exclusive=args["exclusive"])
        elif op == "truncate":
            fs.truncate(path, args["size"])
        elif op == "chmod":
            fs.chmod(path, args["mode"])
        elif op == "utimens":
            fs.utimens(path, args["atime_ns"], args["mtime_ns"])
        elif op == "fsync":
            fs.fsync(path)
        else:  # pragma: no cover - OPS and this table are kept in step
            raise AssertionError(op)
