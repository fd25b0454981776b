# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""What the typer app and `run`'s lean entry (`_entry`) share, without importing typer.

The program's error map (exit codes and hints, `cli_shell.guard`) and how a run is shown:
`StreamView` puts the entrypoint's output on this process's stdout and stderr as it comes,
and `run_and_show` prints how the run ended. Both paths of `user-runtime run` go through
here, so their output, errors and exit codes are the same (specs/cli.md).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cli_shell.guard import ErrorMap
from package_format.errors import PackageFormatError
from user_runtime.errors import UsageError, UserRuntimeError

if TYPE_CHECKING:
    from cli_shell.progress import TransferLine
    from user_runtime.run import RunResult
    from user_runtime.run_upload import Progress

PROG = "user-runtime"
#: The command-line words for the `hint` keys of library errors (the library names no flag).
HINTS = {"stop-sync": "stop it first with user-runtime sync --stop FOLDER"}
ERRORS = ErrorMap(PROG, (UserRuntimeError, PackageFormatError), UsageError, HINTS)
#: A wait for the sync mount is shown once it has lasted this long (seconds).
SYNC_NOTICE_AFTER = 1.0


class StreamView:
    """A `run.RunView` on this process's streams; progress only for a person watching."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._sync_shown = False
        self._uploads: TransferLine | None = None

    def output(self, stream: str, data: bytes) -> None:
        """Copy the entrypoint's bytes to the same stream here, at once."""
        out = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
        out.write(data)
        out.flush()

    def sync_pending(self, pending: int) -> None:
        """Say how many files the sync mount still owes the enclave, after the first second."""
        if time.monotonic() - self._started >= SYNC_NOTICE_AFTER:
            sys.stderr.write(f"\r{PROG}: waiting for sync: {pending} file(s) to the enclave ")
            sys.stderr.flush()
            self._sync_shown = True

    def sync_done(self) -> None:
        """End the waiting line, if one was drawn."""
        if self._sync_shown:
            sys.stderr.write("\n")

    def upload_progress(self, label: str) -> Progress | None:
        """A progress bar on a terminal (rich is imported only then: `run` starts lean)."""
        if not sys.stderr.isatty():
            return None
        from cli_shell.progress import TransferLine

        self._uploads = TransferLine(label)
        return self._uploads

    def uploads_done(self) -> None:
        """Remove the upload bar."""
        if self._uploads is not None:
            self._uploads.close()

    def cancelling(self) -> None:
        """Say that Ctrl-C reached the enclave."""
        print(f"{PROG}: cancelling the run in the enclave", file=sys.stderr)


def run_and_show(  # noqa: PLR0917 - the command's options
    bundle: str,
    script: str,
    argv: list[str],
    state_dir: str | os.PathLike[str] | None,
    timeout: int | None = None,
    env: Sequence[str] = (),
    data: Sequence[str] = (),
    nonce: bytes | None = None,
) -> int:
    """Run an entrypoint with its output on this process's streams; return the exit code."""
    from user_runtime.run import run_entrypoint

    view = StreamView()
    result = run_entrypoint(bundle, script, argv, state_dir, view, timeout, env, data, nonce)
    return show_result(result, nonce)


def show_result(result: RunResult, nonce: bytes | None) -> int:
    """Print how the run ended on stderr (outputs, receipt, or why it was stopped)."""
    if result.stopped is not None:
        print(f"{PROG}: error: {result.stopped}", file=sys.stderr)
        return result.status
    if result.outputs:
        # specs/sync.md §2: output/ holds this run's files only; say which.
        print(f"{PROG}: output: {' '.join(result.outputs)}", file=sys.stderr)
    if result.receipt is not None:  # specs/receipts.md §5.2
        from user_runtime.receipt import receipt_line

        print(receipt_line(result.receipt, nonce), file=sys.stderr)
    return result.status
