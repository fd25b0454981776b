# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`enclave-server serve`: the RPC server on a Unix socket or vsock (specs/rpc-protocol.md §11).

Runs until SIGTERM or SIGINT, then closes every connection (cancelling a run)
and exits 0. Without `--config` the server holds the session filesystem but
refuses every run (NOT_ALLOWED): useful to test sync alone.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import typer

_SIZE = re.compile(r"(\d+)([KMG]?)(i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(text: str) -> int:
    """Parse `512M`, `2G`, `1048576` (binary units) into bytes."""
    match = _SIZE.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise typer.BadParameter(f"{text!r}: expected a size such as 512M or 2G")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command("serve")
    def serve_command(
        unix: Path | None = typer.Option(None, "--unix", help="Listen on this Unix socket."),
        vsock: int | None = typer.Option(
            None, "--vsock", min=1, max=0xFFFFFFFE, help="Listen on this vsock port (any CID)."
        ),
        config: Path | None = typer.Option(
            None, "--config", help="The image's enclave.json (pinned owner keys); enables runs."
        ),
        workdir: Path = typer.Option(
            Path("/run/nitro-bundles"), "--workdir", help="Private RAM-backed working directory."
        ),
        memory_budget: str = typer.Option(
            "2G",
            "--memory-budget",
            help="Most bytes the session filesystem holds (ENOSPC past it).",
        ),
    ) -> None:
        """Serve the RPC protocol until SIGTERM or SIGINT."""
        if (unix is None) == (vsock is None):
            raise typer.BadParameter("give exactly one of --unix PATH or --vsock PORT")
        budget = parse_size(memory_budget)

        from enclave.runner_interface import Runner, UnavailableRunner
        from enclave.server import EnclaveServer
        from enclave.sessionfs import SessionFs, SessionLimits
        from enclave.transport import (
            SocketServer,
            listen_unix,
            listen_vsock,
            serve_until_signal,
        )

        fs = SessionFs(SessionLimits(budget_bytes=budget))
        runner: Runner = UnavailableRunner()
        if config is not None:
            from enclave.app import make_runner

            workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
            runner = make_runner(config, workdir, fs)
        listener = listen_unix(unix) if unix is not None else listen_vsock(vsock or 0)
        where = f"unix:{unix}" if unix is not None else f"vsock:any:{vsock}"
        print(f"enclave-server: listening on {where}", file=sys.stderr, flush=True)
        serve_until_signal(SocketServer(EnclaveServer(fs, runner), listener))
