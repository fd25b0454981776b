# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The plug point between the RPC server and whatever runs a bundle entrypoint.

The server knows nothing about bundles, keys or processes: it builds the user's
`RunRequest`, hands it to its runner (`enclave.runner.Runner`; tests use fakes) on a thread of
its own with the session's files and a sink that streams output as events, and answers with
the `RunResult`, or with the `rpc_code` of the `RunError` the runner raised
(specs/rpc-protocol.md §7.4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from enclave.runner.errors import NoRunnerError

if TYPE_CHECKING:
    import threading

    from enclave.runner.api import RunRequest, RunResult, RunSink, SessionFiles


class SupportsRun(Protocol):
    """Runs one bundle entrypoint; the server calls it from a thread of its own."""

    def run(
        self,
        request: RunRequest,
        session: SessionFiles,
        sink: RunSink,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        """Run `request` against the session's files, streaming its output to `sink`.

        Args:
            request: The user's run, its arguments not yet checked.
            session: The session filesystem's files (bundles, dataset, model, output).
            sink: Receives stdout and the stderr the manifest allows, as they come.
            cancel: Set when the user cancels or disconnects; stop soon after.

        Returns:
            How the entrypoint ended, the files it produced and the run's receipt.

        Raises:
            RunError: The run was refused or failed; its `rpc_code` goes to the client.
        """
        ...


class UnavailableRunner:
    """A runner that refuses every run (a server started without an image config)."""

    def run(
        self,
        request: RunRequest,
        session: SessionFiles,
        sink: RunSink,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        """Refuse the run.

        Raises:
            NoRunnerError: Always (`NOT_ALLOWED`).
        """
        del request, session, sink, cancel
        raise NoRunnerError("this enclave server has no runner")
