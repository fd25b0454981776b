# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The plug point between the RPC server and whatever runs a bundle entrypoint.

The server knows nothing about bundles, keys or processes: it hands a `run`
request to a `Runner` and streams what the runner reports. The real runner
(verify, key release, decrypt, execute, wipe) implements this interface; tests
use fakes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from enclave.errors import EnclaveError
from package_format.rpc.codes import ErrorCode

OutputSink = Callable[[bytes], None]


class RunFailureError(EnclaveError):
    """A run could not start or finish; `code` is the protocol code sent to the client.

    The message reaches the user as it is: it must not carry the owner's
    plaintext (no source lines, no tracebacks).
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: its exit status, the files it produced and its receipt, if any."""

    exit_status: int
    outputs: tuple[str, ...] = ()
    receipt: bytes | None = None  # specs/receipts.md §5


class Runner(Protocol):
    """Runs one bundle entrypoint; the server calls it from a thread of its own."""

    def run(
        self,
        bundle: str,
        entrypoint: str,
        args: Sequence[str],
        *,
        on_stdout: OutputSink,
        on_stderr: OutputSink,
        cancel: threading.Event,
        timeout: float | None = None,
        env: Sequence[str] = (),
        data: Sequence[str] = (),
        nonce: bytes | None = None,
    ) -> int | RunOutcome:
        """Run `entrypoint` of the bundle at session path `bundle` with `args`.

        Args:
            bundle: session path of the bundle, e.g. `encrypted/app.bundle`.
            entrypoint: the entrypoint name the user asked for.
            args: the user's arguments, not yet checked (they reach the entrypoint unchanged).
            on_stdout: called with each chunk of standard output as it comes.
            on_stderr: called with each chunk of standard error the manifest allows.
            cancel: set when the user cancels or disconnects; stop soon after.
            timeout: the user's time limit in seconds (the server passes it only when set).
            env: the user's `NAME=VALUE` variables (the server passes them only when set).
            data: session paths of the run's data bundles (passed only when given).
            nonce: the user's nonce for the receipt (the server passes it only when set).

        Returns:
            The entrypoint's exit status, or that and the files the run produced.

        Raises:
            RunFailureError: the run was refused or failed, with its code.
        """
        ...


class UnavailableRunner:
    """A runner that refuses every run (a server started without one)."""

    def run(
        self,
        bundle: str,
        entrypoint: str,
        args: Sequence[str],
        *,
        on_stdout: OutputSink,
        on_stderr: OutputSink,
        cancel: threading.Event,
        timeout: float | None = None,
        env: Sequence[str] = (),
        data: Sequence[str] = (),
        nonce: bytes | None = None,
    ) -> int:
        """Refuse the run.

        Raises:
            RunFailureError: always, with `NOT_ALLOWED`.
        """
        del bundle, entrypoint, args, on_stdout, on_stderr, cancel, timeout, env, data, nonce
        raise RunFailureError(ErrorCode.NOT_ALLOWED, "this enclave server has no runner")
