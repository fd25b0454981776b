# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The RPC server as a state machine: frames in, messages out (specs/rpc-protocol.md §5).

No sockets here: `enclave.transport` reads frames and sends what this module
returns. Filesystem requests are answered in order, inline (`enclave._fs_requests`); a
`run` is handed to the injected runner on a thread of its own and streams events through the
`emit` callback, so a connection keeps serving filesystem requests while its
run streams output.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from typing import Any

from enclave._fs_requests import FsRequests
from enclave.credentials import CredentialStore, HostCredentials
from enclave.errors import EnclaveError
from enclave.runner.api import RunRequest, RunResult
from enclave.runner.errors import RunError
from enclave.runner.interface import SupportsRun
from enclave.sessionfs import SessionFs
from package_format.rpc import (
    BadArgumentsError,
    ErrorCode,
    Event,
    Frame,
    FrameLimits,
    Hello,
    Message,
    MessageSchemaError,
    Request,
    Response,
    UnknownOpError,
    Welcome,
    choose_version,
    parse_message,
    validate_args,
)
from package_format.rpc.frames import DEFAULT_LIMITS
from package_format.rpc.messages import SUPPORTED_VERSIONS

_log = logging.getLogger(__name__)

Emit = Callable[[Message], None]
# nonce, user_data -> a COSE_Sign1 attestation document from the NSM (§7.6)
Attester = Callable[[bytes | None, bytes | None], bytes]
_MAX_ATTEST_FIELD = 1024  # the NSM's own limit on nonce and user_data
_EMPTY = memoryview(b"")
_BODY_OPS = frozenset({"write", "put", "puts"})  # the requests that carry data (§7.2, §7.7)


class _State(enum.Enum):
    AWAIT_HELLO = "await-hello"
    READY = "ready"
    CLOSED = "closed"


class _ActiveRun:
    def __init__(self, request_id: int, owner: ServerConnection) -> None:
        self.request_id = request_id
        self.owner = owner
        self.cancel = threading.Event()


class EnclaveServer:
    """Shared state of every connection: the session filesystem and the one run slot."""

    def __init__(
        self,
        fs: SessionFs,
        runner: SupportsRun,
        limits: FrameLimits = DEFAULT_LIMITS,
        credentials: CredentialStore | None = None,
        attester: Attester | None = None,
    ) -> None:
        self.fs = fs
        self.runner = runner
        self.limits = limits
        self.credentials = credentials
        self.attester = attester
        self._run_lock = threading.Condition()
        self._active: _ActiveRun | None = None

    def connection(self, emit: Emit) -> ServerConnection:
        """Start the state machine of a new connection; `emit` sends from other threads."""
        return ServerConnection(self, emit)

    def _claim_run(self, request_id: int, owner: ServerConnection) -> _ActiveRun | None:
        with self._run_lock:
            if self._active is not None:
                return None
            self._active = _ActiveRun(request_id, owner)
            return self._active

    def _release_run(self, active: _ActiveRun) -> None:
        with self._run_lock:
            if self._active is active:
                self._active = None
                self._run_lock.notify_all()

    def cancel_and_wait(self, timeout: float) -> bool:
        """Cancel the current run and wait for the runner to return (it wipes on return).

        Returns:
            True when no run is left, False when the runner is still going at `timeout`.
        """
        self.cancel_run()
        with self._run_lock:
            return self._run_lock.wait_for(lambda: self._active is None, timeout)

    def cancel_run(self, owner: ServerConnection | None = None) -> bool:
        """Cancel the running run (only if `owner` started it, when given)."""
        with self._run_lock:
            active = self._active
            if active is None or (owner is not None and active.owner is not owner):
                return False
            active.cancel.set()
            return True


class ServerConnection(FsRequests):
    """One connection: handshake, then requests (specs/rpc-protocol.md §5)."""

    _server: EnclaveServer

    def __init__(self, server: EnclaveServer, emit: Emit) -> None:
        self._server = server
        self._emit = emit
        self._state = _State.AWAIT_HELLO
        self._handlers: dict[str, Callable[[dict[str, Any], memoryview], Response]] = {}

    @property
    def ready(self) -> bool:
        """Whether the handshake is done and requests are being served."""
        return self._state is _State.READY

    @property
    def closed(self) -> bool:
        """Whether the transport must close this connection after sending the replies."""
        return self._state is _State.CLOSED

    def on_frame(self, frame: Frame) -> list[Message]:
        """Handle one frame; return the messages to send now, in order.

        Raises:
            RpcFormatError: the frame is not a valid message here; drop the connection.
        """
        message = parse_message(frame)
        if self._state is _State.AWAIT_HELLO:
            return self._on_hello(message)
        if not isinstance(message, Request):
            raise MessageSchemaError(f"unexpected {type(message).__name__} from the client")
        if message.id == 0:
            raise MessageSchemaError("request id 0 is reserved for the handshake")
        return self._on_request(message)

    def on_close(self) -> None:
        """The transport closed the connection: cancel a run it started."""
        self._state = _State.CLOSED
        self._server.cancel_run(owner=self)

    def fatal(self, message: str) -> Response:
        """The connection-level error sent (best effort) before dropping a connection."""
        self._state = _State.CLOSED
        return Response.error(0, ErrorCode.BAD_FRAME, message)

    # specs/rpc-protocol.md §4.1: the handshake.
    def _on_hello(self, message: Message) -> list[Message]:
        if not isinstance(message, Hello):
            raise MessageSchemaError("the first frame must be a hello")
        version = choose_version(message.versions)
        if version is None:
            self._state = _State.CLOSED
            offered = ", ".join(map(str, message.versions))
            reply = Response.error(
                0,
                ErrorCode.UNSUPPORTED_VERSION,
                f"no common protocol version (client offers {offered}, server speaks "
                f"{', '.join(map(str, SUPPORTED_VERSIONS))})",
            )
            return [reply]
        self._state = _State.READY
        return [Welcome(version, self._server.limits)]

    # specs/rpc-protocol.md §5.1: unknown ops and bad args get an error, not a disconnect.
    def _on_request(self, request: Request) -> list[Message]:
        rid = request.id
        try:
            args = validate_args(request.op, request.args)
        except UnknownOpError as e:
            return [Response.error(rid, ErrorCode.UNKNOWN_OP, str(e))]
        except BadArgumentsError as e:
            return [Response.error(rid, ErrorCode.BAD_ARGS, str(e))]
        if request.op not in _BODY_OPS and request.body.nbytes:
            return [Response.error(rid, ErrorCode.BAD_ARGS, f"{request.op}: unexpected body")]
        try:
            return self._dispatch(request, args)
        except EnclaveError as e:  # specs/rpc-protocol.md §6: each error carries its code
            if e.rpc_code is not ErrorCode.INTERNAL:
                return [Response.error(rid, e.rpc_code, str(e))]
            _log.exception("internal error in %s", request.op)
        except Exception:  # noqa: BLE001 - one request's fault must not drop the connection
            _log.exception("internal error in %s", request.op)
        # §5.1: an internal error is one generic line; its details stay in the log.
        return [Response.error(rid, ErrorCode.INTERNAL, f"{request.op}: internal error")]

    def _dispatch(self, request: Request, args: dict[str, Any]) -> list[Message]:
        fs = self._server.fs
        rid, op = request.id, request.op
        max_chunk = self._server.limits.max_chunk
        if op in _CONTROL_OPS:
            return _CONTROL_OPS[op](self, rid, args)
        if op == "read":
            if args["length"] > max_chunk:
                return [Response.error(rid, ErrorCode.TOO_LARGE, f"read: length over {max_chunk}")]
            body = fs.read(args["path"], args["offset"], args["length"])
            return [Response(rid, 0, {}, memoryview(body))]
        if op in _BODY_OPS:
            return [self._body_op(request, args)]
        return [Response(rid, 0, self._query_op(op, args))]

    # specs/rpc-protocol.md §7.5: held in memory for the key releases that follow.
    def _set_credentials(self, rid: int, args: dict[str, Any]) -> Response:
        store = self._server.credentials
        if store is None:
            return Response.error(rid, ErrorCode.NOT_ALLOWED, "credentials: this server takes none")
        if not args["access_key_id"] or not args["secret_access_key"]:
            return Response.error(rid, ErrorCode.BAD_ARGS, "credentials: empty access key")
        store.set(
            HostCredentials(
                args["access_key_id"],
                args["secret_access_key"],
                args["session_token"] or None,
                args["region"] or None,
            )
        )
        return Response(rid, 0, {})

    # specs/rpc-protocol.md §7.6: a fresh document bound to the caller's nonce.
    def _attest(self, rid: int, args: dict[str, Any]) -> Response:
        attester = self._server.attester
        if attester is None:
            return Response.error(rid, ErrorCode.NOT_ALLOWED, "attest: this server has no nsm")
        try:
            nonce = bytes.fromhex(args["nonce"]) if args["nonce"] else None
            user_data = bytes.fromhex(args["user_data"]) if args["user_data"] else None
        except ValueError:
            return Response.error(rid, ErrorCode.BAD_ARGS, "attest: nonce and user_data are hex")
        if any(f is not None and len(f) > _MAX_ATTEST_FIELD for f in (nonce, user_data)):
            return Response.error(rid, ErrorCode.BAD_ARGS, "attest: a field is over 1024 bytes")
        return Response(rid, 0, {}, memoryview(attester(nonce, user_data)))

    # specs/rpc-protocol.md §7.4: one run at a time, output streamed as events.
    def _run_op(self, rid: int, args: dict[str, Any]) -> list[Message]:
        return self._start_run(rid, args)

    def _credentials_op(self, rid: int, args: dict[str, Any]) -> list[Message]:
        return [self._set_credentials(rid, args)]

    def _attest_op(self, rid: int, args: dict[str, Any]) -> list[Message]:
        return [self._attest(rid, args)]

    def _start_run(self, rid: int, args: dict[str, Any]) -> list[Message]:
        active = self._server._claim_run(rid, self)  # noqa: SLF001 - one module, two classes
        if active is None:
            return [Response.error(rid, ErrorCode.BUSY, "run: another run is in progress")]
        thread = threading.Thread(
            target=self._run_thread, args=(active, args), name=f"run-{rid}", daemon=True
        )
        thread.start()
        return []  # the response comes when the run ends; events come before it

    def _run_thread(self, active: _ActiveRun, args: dict[str, Any]) -> None:
        rid = active.request_id
        try:
            result = self._server.runner.run(
                run_request(args), self._server.fs, _EventSink(self, active), active.cancel
            )
            if active.cancel.is_set():
                reply = Response.error(rid, ErrorCode.CANCELLED, "run: cancelled")
            else:
                reply = _result_reply(rid, result, self._server.limits.max_chunk)
        except RunError as e:  # specs/rpc-protocol.md §6.3: the run error's own code
            reply = Response.error(rid, e.rpc_code, str(e))
        except Exception:  # noqa: BLE001 - a runner's fault reaches its client as RUN_FAILED
            _log.exception("runner failed")
            reply = Response.error(rid, ErrorCode.RUN_FAILED, "run: internal error in the runner")
        finally:
            self._server._release_run(active)  # noqa: SLF001
        self._safe_emit(reply, active)

    def _send_output(self, active: _ActiveRun, name: str, chunk: bytes) -> None:
        """Send a run's output as `evt` frames of at most one chunk each (§4.3)."""
        view = memoryview(chunk)
        step = self._server.limits.max_chunk
        for start in range(0, len(view), step):
            if self._state is _State.CLOSED:
                active.cancel.set()
                return
            self._safe_emit(Event(active.request_id, name, {}, view[start : start + step]), active)

    def _safe_emit(self, message: Message, active: _ActiveRun) -> None:
        try:
            self._emit(message)
        except OSError:
            active.cancel.set()


class _EventSink:
    """The runner's `RunSink` for one run: output goes to the client as events."""

    def __init__(self, connection: ServerConnection, active: _ActiveRun) -> None:
        self._connection = connection
        self._active = active

    def stdout(self, data: bytes) -> None:
        """Send bytes of the entrypoint's stdout."""
        self._connection._send_output(self._active, "stdout", data)  # noqa: SLF001

    def stderr(self, data: bytes) -> None:
        """Send bytes of the stderr the manifest allows (or the runner's generic line)."""
        self._connection._send_output(self._active, "stderr", data)  # noqa: SLF001


def _result_reply(rid: int, result: RunResult, max_chunk: int) -> Response:
    """The run's reply; its receipt is the body when it fits a chunk (specs/receipts.md §5.2)."""
    fields: dict[str, Any] = {"exit_status": result.exit_status, "outputs": list(result.outputs)}
    if result.receipt is None:
        return Response(rid, 0, fields)
    fields["receipt"] = "output/receipt.cbor"
    body = memoryview(result.receipt) if len(result.receipt) <= max_chunk else _EMPTY
    return Response(rid, 0, fields, body)


# The requests that are not filesystem operations (§7.4-7.6).
_CONTROL_OPS: dict[str, Callable[[ServerConnection, int, dict[str, Any]], list[Message]]] = {
    "run": ServerConnection._run_op,  # noqa: SLF001 - the table belongs to the class
    "credentials": ServerConnection._credentials_op,  # noqa: SLF001
    "attest": ServerConnection._attest_op,  # noqa: SLF001
}


def run_request(args: dict[str, Any]) -> RunRequest:
    """The `run` op's validated arguments as the runner's request (specs/rpc-protocol.md §7.4).

    The optional ones are empty when the client did not send them: the time limit, the
    environment (`NAME=VALUE` items, split at the first `=`), the data bundles (issue 22) and
    the receipt's nonce (specs/receipts.md §5.2).
    """
    env = tuple((name, value) for name, _, value in (item.partition("=") for item in args["env"]))
    return RunRequest(
        args["bundle"],
        args["entrypoint"],
        tuple(args["args"]),
        timeout=args["timeout_s"] or None,
        env=env,
        data=tuple(args["data"]),
        nonce=args["nonce"],
    )
