# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime run -f BUNDLE -s ENTRY -a "ARGS"`: run an entrypoint in the enclave, live.

stdout and stderr of the entrypoint arrive as they are printed; the exit status is the
entrypoint's own; Ctrl-C cancels the run in the enclave (exit 130); a lost enclave is one
line and exit 1. Heavy modules are imported inside the command, so start-up stays lean.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add `run` to `app`."""

    @app.command("run")
    def run_command(
        bundle: str = typer.Option(
            ...,
            "-f",
            "--file",
            help="A bundle in the enclave's encrypted/ folder, or a local file to upload.",
        ),
        script: str = typer.Option(
            ..., "-s", "--script", help="The entrypoint the bundle's manifest declares."
        ),
        args: str = typer.Option(
            "", "-a", "--args", help='Its arguments as one string, e.g. "-d /dataset/".'
        ),
        state_dir: Path | None = typer.Option(
            None, "--state-dir", help="Where `enclave start` keeps its state."
        ),
    ) -> int:
        """Run an entrypoint of a bundle in the enclave; its exit status is this command's."""
        from user_runtime.enclave_local import resolve_state_dir
        from user_runtime.errors import UsageError
        from user_runtime.rpc_client import EnclaveClient, RemoteError
        from user_runtime.run import enclave_address, session_bundle_path, split_args

        try:
            argv = split_args(args)
        except UsageError as exc:
            raise typer.BadParameter(str(exc)) from exc
        address = enclave_address(resolve_state_dir(state_dir))
        with EnclaveClient.connect(address) as client:
            path = session_bundle_path(client, bundle)
            handle = client.start_run(path, script, argv)
            out, err = sys.stdout.buffer, sys.stderr.buffer
            cancelled = False
            while True:
                try:
                    for event in handle.events():
                        stream = out if event.stream == "stdout" else err
                        stream.write(event.data)
                        stream.flush()
                    break
                except KeyboardInterrupt:
                    if cancelled:
                        raise
                    cancelled = True
                    print("user-runtime: cancelling the run in the enclave", file=sys.stderr)
                    handle.cancel()
                except RemoteError as exc:
                    if exc.name == "CANCELLED":
                        print("user-runtime: error: run cancelled", file=sys.stderr)
                        return 130
                    raise
            assert handle.exit_status is not None
            return handle.exit_status
