# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The sync daemon's control socket: `run` waits on it, `sync --status` asks it (sync.md §6.4).

One JSON object per line each way, on a Unix socket (mode 0600) beside the
mount's state file. Requests: `{"op": "status"}` and `{"op": "drain"}`. The
answer to `status` is one line; to `drain`, lines `{"pending": N}` about every
0.5 s while the replay queue empties, then the final one. A final line is
`{"done": true, "pending": N, "failed": {"<session path>": "<errno name>"}}`; `status`'s
also holds `"hot_path": {"compiled": bool, "getattr": N, "writes": N}` (the counts only
when compiled).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from user_runtime.errors import ExternalError
from user_runtime.sync import mounts
from user_runtime.sync.replay import ReplayQueue, ReplayStatus

log = logging.getLogger(__name__)
_MAX_LINE = 4096


class SyncNotInStepError(ExternalError):
    """The enclave refused files of the sync mount (a `run` would not see them)."""


class SyncControlError(ExternalError):
    """The sync daemon's control socket did not answer."""


def _final(status: ReplayStatus) -> dict[str, Any]:
    failed = {path: errno.errorcode.get(code, str(code)) for path, code in status.failed.items()}
    return {"done": True, "pending": status.pending, "failed": failed}


class ControlServer:
    """Answers `status` and `drain` for one daemon's replay queue."""

    def __init__(
        self,
        path: Path,
        replay: ReplayQueue,
        hot_path: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._path = path
        self._replay = replay
        self._hot_path = hot_path
        path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)  # only the user talks to their daemon
        try:
            self._sock.bind(str(path))
        finally:
            os.umask(old)
        self._sock.listen(8)
        threading.Thread(target=self._accept, name="sync-control", daemon=True).start()

    def close(self) -> None:
        """Stop answering and remove the socket."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._path.unlink(missing_ok=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError, ValueError):
            line = conn.makefile("rb").readline(_MAX_LINE)
            op = json.loads(line).get("op")

            def send(message: dict[str, Any]) -> None:
                conn.sendall(json.dumps(message).encode() + b"\n")

            if op == "status":
                answer = _final(self._replay.status())
                # Which code answers the hot callbacks, and how often C did (sync.md §8.1).
                answer["hot_path"] = (
                    self._hot_path() if self._hot_path is not None else {"compiled": False}
                )
                send(answer)
            elif op == "drain":
                status = self._replay.drain(lambda n: send({"pending": n}))
                send(_final(status))
            else:
                send({"error": f"unknown op {op!r}"})


def ask(path: Path, op: str, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Send `op` to the daemon at `path`; return its final line.

    Raises:
        SyncControlError: Nobody answers there.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(path))
            sock.sendall(json.dumps({"op": op}).encode() + b"\n")
            for line in sock.makefile("rb"):
                message = json.loads(line)
                if message.get("done") or "error" in message:
                    return dict(message)
                if progress is not None:
                    progress(int(message.get("pending", 0)))
    except (OSError, ValueError) as e:
        raise SyncControlError(f"{path}: the sync daemon does not answer: {e}") from e
    raise SyncControlError(f"{path}: the sync daemon closed the connection")


def describe_failed(failed: dict[str, str]) -> str:
    """`a (ENOSPC), b (EIO)`, at most 10 paths."""
    names = [f"{path} ({name})" for path, name in sorted(failed.items())]
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return ", ".join(names[:10]) + more


def wait_for_sync(
    address: str, state_dir: Path, progress: Callable[[int], None] | None = None
) -> None:
    """Wait until the sync mount of the enclave at `address` (if any) has replayed everything.

    Raises:
        SyncNotInStepError: The enclave refused some files: the run would not see them.
        SyncControlError: The daemon is alive but its control socket does not answer.
    """
    state = mounts.mount_of_enclave(address, state_dir)
    if state is None:
        return
    path = mounts.control_path(Path(state.folder), state_dir)
    answer = ask(path, "drain", progress)
    failed = answer.get("failed") or {}
    if failed:
        raise SyncNotInStepError(
            f"the enclave does not hold files synced on {state.folder}: "
            f"{describe_failed(failed)}; fix the cause (e.g. free space in the enclave or "
            f"remove them) and run again; see `user-runtime sync --status -d {state.folder}`"
        )
