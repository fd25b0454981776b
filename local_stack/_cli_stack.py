# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`local-stack up | down | status`: the local cloud (specs/local-kms.md §9)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import typer

_STATE_HELP = "State directory (default: $NB_STATE_DIR, else ./.nitro-bundles-local)."


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)


def _port(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= 65535:
        raise typer.BadParameter("must be 1..65535", param_hint="--port")
    return value


def up(
    state_dir: Path | None = typer.Option(None, "--state-dir", help=_STATE_HELP),
    port: int | None = typer.Option(None, "--port", help="Port of the KMS front (default: free)."),
    env: bool = typer.Option(False, "--env", help="Print only `export` lines (for eval)."),
) -> None:
    """Start moto's server and the KMS front in the background (no-op if running).

    Example: eval "$(local-stack up --env)"
    """
    from local_stack import stack

    port = _port(port)
    directory = stack.resolve_state_dir(state_dir)
    info, started = stack.up(directory, port)
    verb = "started" if started else "already running"
    print(f"local-stack: {verb} in {directory}", file=sys.stderr)
    if env:
        for name, value in info.env().items():
            print(f"export {name}={shlex.quote(value)}")
        return
    print(f"kms: {info.kms.url}")
    print(f"s3: {info.moto.url}")
    print(f"region: {info.region}")
    print(f"nsm-root: {info.root_pem_path}")
    for access_key, principal in sorted(info.principals.items()):
        print(f"principal: {access_key} -> {principal}")


def down(
    state_dir: Path | None = typer.Option(None, "--state-dir", help=_STATE_HELP),
) -> None:
    """Stop the servers `up` started and forget them.

    Example: local-stack down
    """
    from local_stack import stack

    directory = stack.resolve_state_dir(state_dir)
    stopped = stack.down(directory)
    print(
        f"local-stack: {'stopped' if stopped else 'nothing running'} in {directory}",
        file=sys.stderr,
    )


def status(
    state_dir: Path | None = typer.Option(None, "--state-dir", help=_STATE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print stack.json plus liveness as JSON."),
) -> None:
    """Show the endpoints and whether each server runs; exit 1 unless both run.

    Example: local-stack status --json
    """
    from local_stack import stack

    directory = stack.resolve_state_dir(state_dir)
    info, alive = stack.status(directory)
    if as_json:
        payload = info.to_json() if info else {}
        payload["running"] = alive
        print(json.dumps(payload, sort_keys=True))
    elif info is None:
        print(f"local-stack: not running in {directory}")
    else:
        for kind, server in (("kms", info.kms), ("moto", info.moto)):
            state = "running" if alive[kind] else "stopped"
            print(f"{kind}: {server.url} pid {server.pid} {state}")
    if not all(alive.values()):
        raise typer.Exit(1)
