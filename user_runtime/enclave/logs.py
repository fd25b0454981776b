# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime enclave logs`: what the enclave printed (specs/qemu-backend.md §2).

The qemu backend's guest console (kernel, init and the server's own stderr lines) and the
local backend's server log. Both hold only what the server and init print: the server never
logs the owner's plaintext, and an entrypoint's output goes to the run's caller, not here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import BinaryIO

from user_runtime.errors import InputError

LOG_NAMES = ("console.log", "enclave.log")  # qemu's serial console; the local server's log
_CHUNK = 1 << 16
_POLL = 0.25


class NoLogsError(InputError):
    """No enclave has run in this state directory yet."""


def log_paths(state_dir: Path) -> list[Path]:
    """The logs of the enclave recorded in `state_dir` (latest start).

    Raises:
        NoLogsError: none exists.
    """
    found = [state_dir / name for name in LOG_NAMES if (state_dir / name).is_file()]
    if not found:
        raise NoLogsError(f"no enclave logs in {state_dir} (start one with `enclave start`)")
    return found


def follow_logs(
    paths: list[Path], out: BinaryIO, *, follow: bool, stop_after: float | None = None
) -> None:
    """Copy each log to `out`; with `follow`, keep copying what is appended until interrupted.

    `stop_after` (seconds) ends following, for tests.
    """
    handles = [path.open("rb") for path in paths]
    deadline = None if stop_after is None else time.monotonic() + stop_after
    try:
        while True:
            wrote = False
            for handle in handles:
                while chunk := handle.read(_CHUNK):
                    out.write(chunk)
                    wrote = True
            out.flush()
            if not follow or (deadline is not None and time.monotonic() > deadline):
                return
            if not wrote:
                time.sleep(_POLL)
    finally:
        for handle in handles:
            handle.close()
