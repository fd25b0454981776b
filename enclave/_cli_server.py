# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`enclave-server serve`: the RPC server on a Unix socket or vsock (specs/rpc-protocol.md §11).

Parses the flags into `enclave.app.ServeOptions` and calls `enclave.app.serve`, the server's
one entry (the image's `cmd` runs `python3 -m enclave serve ...`). Runs until SIGTERM or
SIGINT, then closes every connection (cancelling a run) and exits 0. Without `--config` the
server holds the session filesystem but refuses every run (NOT_ALLOWED).
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
        from enclave.app import ServeOptions, serve

        serve(
            ServeOptions(
                unix=unix,
                vsock_port=vsock,
                config_path=config,
                workdir=workdir,
                memory_budget=parse_size(memory_budget),
                ready=_say_listening,
            )
        )


def _say_listening(where: str) -> None:
    """The line launchers wait for (the local backend, tests): the socket listens."""
    print(f"enclave-server: listening on {where}", file=sys.stderr, flush=True)
