# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""What the enclave client hands back: its errors, file status, run output and handle.

`client.py` re-exports each name; the address forms it connects to are parsed here too.
"""

from __future__ import annotations

import queue
import socket
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from package_format.rpc import ErrorCode, Response
from user_runtime.errors import ExternalError, UsageError


class EnclaveUnavailableError(ExternalError):
    """The enclave server cannot be reached or refused the handshake."""


class ConnectionLostError(ExternalError):
    """The connection to the enclave broke while a request was pending."""


class RemoteError(ExternalError):
    """The enclave refused one request; the connection stays usable.

    Attributes:
        code: the protocol status (an errno value below 1000).
        name: the status name, e.g. `ENOENT` or `BUSY`.
        errno: the POSIX errno for filesystem errors, else None.
    """

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(f"enclave: {message} ({name})")
        self.code = code
        self.name = name
        self.errno: int | None = code if 0 < code < 1000 else None
        self.remote_message = message


class RemoteStat(NamedTuple):
    """A file's status in the session filesystem (full `st_mode`, sizes, times in ns)."""

    mode: int
    size: int
    nlink: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def from_wire(cls, value: dict[str, int]) -> RemoteStat:
        """Build from a reply's stat map."""
        return cls(*(int(value[name]) for name in cls._fields))


class RunOutput(NamedTuple):
    """One streamed piece of a run's output: `stream` is "stdout" or "stderr"."""

    stream: str
    data: bytes


def parse_address(address: str) -> tuple[int, Any]:
    """Turn `unix:/path`, `vsock:CID:PORT` or `uds-vsock:/path:PORT` into a family and address.

    `uds-vsock:` is a vhost-user vsock back-end's host socket (specs/vsock.md §5): connect to
    the Unix socket, then ask for the guest's port (`connect_preamble`).

    Raises:
        UsageError: the address is none of these forms.
    """
    kind, _, rest = address.partition(":")
    if kind == "unix" and rest:
        return socket.AF_UNIX, rest
    if kind == "uds-vsock":
        path, _, port = rest.rpartition(":")
        if path and port.isdigit():
            return socket.AF_UNIX, path
    if kind == "vsock":
        cid, _, port = rest.partition(":")
        if cid.isdigit() and port.isdigit():
            family = getattr(socket, "AF_VSOCK", None)
            if family is None:
                raise UsageError("vsock is not supported on this system")
            return family, (int(cid), int(port))
    raise UsageError(
        f"bad enclave address {address!r}: use unix:/PATH, vsock:CID:PORT or uds-vsock:/PATH:PORT"
    )


def connect_preamble(address: str) -> bytes | None:
    """What to send first on a `uds-vsock:` address (a `CONNECT <port>` line), else None."""
    kind, _, rest = address.partition(":")
    if kind != "uds-vsock":
        return None
    return f"CONNECT {int(rest.rpartition(':')[2])}\n".encode()


class RunHandle:
    """A run in progress: iterate `events()` for output; then read `exit_status`."""

    def __init__(
        self,
        cancel: Callable[[], bool],
        wait_until: Callable[[Callable[[], bool]], None],
        request_id: int,
    ) -> None:
        self._cancel = cancel
        self._wait_until = wait_until  # blocks (reading replies) until its argument holds
        self.request_id = request_id
        self._queue: queue.SimpleQueue[RunOutput | Response | ExternalError] = queue.SimpleQueue()
        self.exit_status: int | None = None
        #: Session paths of the files the run produced (servers that predate it send none).
        self.outputs: tuple[str, ...] = ()
        #: The run's receipt (specs/receipts.md §5.2), when the server sent it in the reply.
        self.receipt: bytes | None = None

    def _put(self, item: RunOutput | Response | ExternalError) -> None:
        if isinstance(item, Response) and item.body.nbytes:  # the receipt outlives the frame
            item = item._replace(body=memoryview(bytes(item.body)))
        self._queue.put(item)

    def events(self) -> Iterator[RunOutput]:
        """Yield output as it arrives until the run ends.

        Raises:
            RemoteError: the run was refused, failed or was cancelled.
            ConnectionLostError: the connection broke mid-run.
        """
        while self.exit_status is None:
            self._wait_until(lambda: not self._queue.empty())
            item = self._queue.get_nowait()
            if isinstance(item, RunOutput):
                yield item
            elif isinstance(item, Response):
                if not item.ok:
                    raise remote_error(item)
                outputs = item.args.get("outputs", [])
                if isinstance(outputs, list):
                    self.outputs = tuple(str(o) for o in outputs)
                if "receipt" in item.args and item.body.nbytes:
                    self.receipt = bytes(item.body)
                self.exit_status = int(item.args.get("exit_status", 1))
            else:
                raise item

    def cancel(self) -> bool:
        """Ask the enclave to cancel this run; True when a run was cancelled."""
        return self._cancel()


def remote_error(response: Response) -> RemoteError:
    """The `RemoteError` for a refused request's response."""
    name = response.args.get("name")
    message = response.args.get("message")
    if not isinstance(name, str):
        try:
            name = ErrorCode(response.status).name
        except ValueError:
            name = f"E{response.status}"
    if not isinstance(message, str):
        message = "request failed"
    return RemoteError(response.status, name, " ".join(message.split()))
