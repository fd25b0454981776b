# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The client of the enclave server: every filesystem operation, pipelined writes, runs.

    client = EnclaveClient.connect("unix:/run/enclave.sock")   # or "vsock:16:5005"
    client.mkdir("dataset/train")
    client.write_pipelined("dataset/train/a.csv", 0, data)      # returns at once
    client.flush("dataset/train/a.csv")                         # raises the first error
    status = client.run("encrypted/app.bundle", "train.py", ["-d", "/dataset/"],
                        on_stdout=sys.stdout.buffer.write)

Calls may come from several threads; the waiting thread reads its own reply
(connection.py holds the connection itself, _pipeline.py the requests that do not wait).

Paths are session paths (specs/rpc-protocol.md §8): relative, e.g.
`dataset/a.csv`; a FUSE layer strips the leading `/` of its paths. Failures
raise `EnclaveUnavailableError` (cannot connect), `ConnectionLostError` (the
connection broke; every pending call fails with it) or `RemoteError` (the
server refused one request; `errno` is set for filesystem errors).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Sequence
from typing import Any

from package_format.rpc import (
    FrameDecoder,
    FrameLimits,
    Hello,
    Response,
    RpcFormatError,
    Welcome,
    encode_frame,
    parse_message,
)
from package_format.rpc.messages import SUPPORTED_VERSIONS
from user_runtime.rpc._pipeline import PipelinedConnection, PutFile
from user_runtime.rpc.values import (
    ConnectionLostError,
    EnclaveUnavailableError,
    RemoteError,
    RemoteStat,
    RunHandle,
    RunOutput,
    connect_preamble,
    parse_address,
)

_SOCKET_BUFFER = 4 * 1024 * 1024


def _vsock_connect(sock: socket.socket, preamble: bytes, address: str) -> None:
    """The host handshake: a `CONNECT <port>` line, an `OK <port>` line (specs/vsock.md §5)."""
    sock.sendall(preamble)
    line = b""
    while not line.endswith(b"\n"):
        piece = sock.recv(1)
        if not piece or len(line) > 64:
            raise EnclaveUnavailableError(f"{address}: the enclave's vsock port did not answer")
        line += piece
    if not line.startswith(b"OK "):
        raise EnclaveUnavailableError(f"{address}: the vsock back-end refused the connection")


class EnclaveClient(PipelinedConnection):
    """A connection to the enclave server; see the module docstring."""

    def __init__(self, sock: socket.socket, welcome: Welcome, decoder: FrameDecoder) -> None:
        super().__init__(sock, decoder, welcome.limits)
        self.version = welcome.version

    # -- connection ----------------------------------------------------------

    @classmethod
    def connect(cls, address: str, *, timeout: float = 10.0) -> EnclaveClient:
        """Connect and perform the version handshake (specs/rpc-protocol.md §4.1).

        Raises:
            UsageError: the address is malformed.
            EnclaveUnavailableError: nothing listens there, or the handshake failed.
        """
        family, target = parse_address(address)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
            sock.connect(target)
            preamble = connect_preamble(address)
            if preamble is not None:
                _vsock_connect(sock, preamble, address)
            head, _ = encode_frame(Hello(SUPPORTED_VERSIONS).header())
            sock.sendall(head)
            decoder = FrameDecoder()
            welcome = cls._read_welcome(sock, decoder, address)
            sock.settimeout(None)
        except OSError as e:
            sock.close()
            reason = e.strerror or str(e) or type(e).__name__
            raise EnclaveUnavailableError(f"{address}: cannot reach the enclave: {reason}") from e
        except BaseException:
            sock.close()
            raise
        return cls(sock, welcome, decoder)

    @staticmethod
    def _read_welcome(sock: socket.socket, decoder: FrameDecoder, address: str) -> Welcome:
        while True:
            count = sock.recv_into(decoder.buffer())
            if count == 0:
                raise EnclaveUnavailableError(f"{address}: the enclave closed the connection")
            try:
                frame = decoder.advance(count)
                if frame is None:
                    continue
                message = parse_message(frame)
            except RpcFormatError as e:
                raise EnclaveUnavailableError(f"{address}: bad handshake: {e}") from e
            if isinstance(message, Welcome):
                return message
            if isinstance(message, Response) and not message.ok:
                text = message.args.get("message", "handshake refused")
                raise EnclaveUnavailableError(f"{address}: {text}")
            raise EnclaveUnavailableError(f"{address}: unexpected reply to hello")

    # -- filesystem operations (specs/rpc-protocol.md §7.2) ------------------

    def ping(self) -> None:
        """Round-trip a no-op request."""
        self._call("ping", {})

    def statfs(self) -> dict[str, int]:
        """Return the session budget: total_bytes, used_bytes, free_bytes, nodes, ..."""
        return {k: int(v) for k, v in self._call("statfs", {}).args.items()}

    def stat(self, path: str) -> RemoteStat:
        """Return the status of `path`."""
        return RemoteStat.from_wire(self._call("stat", {"path": path}).args["stat"])

    def listdir(self, path: str) -> list[tuple[str, RemoteStat]]:
        """Return a directory's entries with their status (one round trip per ~60 KiB)."""
        result: list[tuple[str, RemoteStat]] = []
        after = ""
        while True:
            reply = self._call("listdir", {"path": path, "after": after}).args
            result += [(str(name), RemoteStat.from_wire(info)) for name, info in reply["entries"]]
            if not reply.get("more") or not reply["entries"]:
                return result
            after = result[-1][0]

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        """Create a directory."""
        self._call("mkdir", {"path": path, "mode": mode})

    def rmdir(self, path: str) -> None:
        """Remove an empty directory."""
        self._call("rmdir", {"path": path})

    def unlink(self, path: str) -> None:
        """Remove a file."""
        self._call("unlink", {"path": path})

    def rename(self, src: str, dst: str) -> None:
        """Rename with POSIX semantics (replaces a file or an empty directory)."""
        self._call("rename", {"src": src, "dst": dst})

    def create(
        self, path: str, mode: int = 0o644, *, truncate: bool = True, exclusive: bool = False
    ) -> None:
        """Create a file, or truncate an existing one when `truncate` (O_TRUNC)."""
        self._call(
            "create", {"path": path, "mode": mode, "truncate": truncate, "exclusive": exclusive}
        )

    def truncate(self, path: str, size: int) -> None:
        """Set a file's size."""
        self._call("truncate", {"path": path, "size": size})

    def chmod(self, path: str, mode: int) -> None:
        """Set permission bits."""
        self._call("chmod", {"path": path, "mode": mode})

    def utimens(self, path: str, atime_ns: int, mtime_ns: int) -> None:
        """Set access and modification times (nanoseconds since the epoch)."""
        self._call("utimens", {"path": path, "atime_ns": atime_ns, "mtime_ns": mtime_ns})

    def read(self, path: str, offset: int, length: int) -> bytes:
        """Read up to `length` bytes from `offset` (fewer at end of file)."""
        parts: list[bytes] = []
        while length > 0:
            step = min(length, self.chunk_size)
            reply = self._call("read", {"path": path, "offset": offset, "length": step})
            parts.append(bytes(reply.body))
            if reply.body.nbytes < step:
                break
            offset += step
            length -= step
        return b"".join(parts)

    def put(self, path: str, data: bytes | bytearray | memoryview, mode: int = 0o644) -> int:
        """Make `path` a file holding exactly `data` (at most `chunk_size`), in one request.

        Creates the file (with `mode`) or truncates it, then writes `data` at 0
        (specs/rpc-protocol.md §7.2 `put`).

        Raises:
            ValueError: `data` is over `chunk_size`.
            RemoteError: as `create` or `write` would (the file may then exist, empty).
        """
        view = self._put_body(data)
        self._call("put", {"mode": mode, "path": path}, view)  # keys in wire order
        return len(view)

    def write(self, path: str, offset: int, data: bytes | bytearray | memoryview) -> int:
        """Write and wait for the result (pipelined chunks, then `flush`)."""
        self.write_pipelined(path, offset, data)
        self.flush(path)
        return memoryview(data).nbytes

    def fsync(self, path: str) -> None:
        """Flush `path`'s pipelined writes, then check it on the server."""
        self.flush(path)
        self._call("fsync", {"path": path})

    # -- runs (specs/rpc-protocol.md §7.4) -----------------------------------

    def start_run(
        self,
        bundle: str,
        entrypoint: str,
        args: Sequence[str],
        timeout: int | None = None,
        env: Sequence[str] = (),
        *,
        data: Sequence[str] = (),
        nonce: bytes | None = None,
    ) -> RunHandle:
        """Ask the enclave to run `entrypoint`; output streams through the handle.

        `timeout` (seconds), `env` (`NAME=VALUE` items) and `nonce` (for the run's receipt,
        specs/receipts.md §5.2) are sent only when set, so older servers still accept the
        request.
        """
        with self._cond:
            request_id = self._register(None)
            handle = RunHandle(self.cancel, self.wait_until, request_id)
            self._pending[request_id] = handle
        fields: dict[str, Any] = {"bundle": bundle, "entrypoint": entrypoint, "args": list(args)}
        if timeout:
            fields["timeout_s"] = timeout
        if env:
            fields["env"] = list(env)
        if data:  # data bundles' session paths (issue 22), sent only when given
            fields["data"] = list(data)
        if nonce:
            fields["nonce"] = bytes(nonce)
        self._send(request_id, "run", fields)
        return handle

    def run(
        self,
        bundle: str,
        entrypoint: str,
        args: Sequence[str],
        *,
        on_stdout: Callable[[bytes], object] | None = None,
        on_stderr: Callable[[bytes], object] | None = None,
    ) -> int:
        """Run and wait; output goes to the callbacks as it comes. Returns the exit status.

        Raises:
            RemoteError: the run was refused (`BUSY`, `NOT_ALLOWED`, ...), failed
                or was cancelled (`CANCELLED`).
            ConnectionLostError: the connection broke mid-run.
        """
        handle = self.start_run(bundle, entrypoint, args)
        for output in handle.events():
            sink = on_stdout if output.stream == "stdout" else on_stderr
            if sink is not None:
                sink(output.data)
        assert handle.exit_status is not None
        return handle.exit_status

    def cancel(self) -> bool:
        """Cancel the enclave's current run; True when one was running."""
        return bool(self._call("cancel", {}).args.get("cancelled", False))

    def attest(self, nonce: bytes | None = None, user_data: bytes | None = None) -> bytes:
        """A fresh attestation document from the enclave's NSM (specs/rpc-protocol.md §7.6)."""
        args = {"nonce": (nonce or b"").hex(), "user_data": (user_data or b"").hex()}
        return bytes(self._call("attest", args).body)

    def set_credentials(
        self, access_key_id: str, secret_access_key: str, session_token: str = "", region: str = ""
    ) -> None:
        """Hand the enclave AWS credentials for KMS (specs/rpc-protocol.md §7.5)."""
        args = {
            "access_key_id": access_key_id,
            "secret_access_key": secret_access_key,
            "session_token": session_token,
            "region": region,
        }
        self._call("credentials", args)


__all__ = [
    "ConnectionLostError",
    "EnclaveClient",
    "EnclaveUnavailableError",
    "FrameLimits",
    "PutFile",
    "RemoteError",
    "RemoteStat",
    "RunHandle",
    "RunOutput",
    "parse_address",
]
