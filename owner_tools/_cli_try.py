# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools try`: run a bundle as its image would, with full output (specs/owner-try.md)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from owner_tools.errors import UsageError


def _try(  # noqa: PLR0917 - typer options
    bundle: Path = typer.Argument(..., help="The packed bundle."),
    eif: Path = typer.Option(..., "--eif", help="The image the bundle is for."),
    app_dir: Path = typer.Option(..., "--app", help="The app folder the bundle was packed from."),
    script: str = typer.Option(..., "-s", "--script", help="The entrypoint to run."),
    args: str = typer.Option("", "-a", "--args", help="Its arguments as one string."),
    env: list[str] = typer.Option([], "--env", help="NAME=VALUE (repeatable)."),
    dataset: Path | None = typer.Option(None, "--dataset", help="Folder seen as /dataset."),
    model: Path | None = typer.Option(None, "--model", help="Folder seen as /model."),
    output: Path = typer.Option(
        Path("try-output"), "-o", "--output", help="Where /output's files go (emptied first)."
    ),
) -> int:
    """Run a bundle's entrypoint as its image would, with its whole stdout and stderr.

    Example: owner-tools try app-1.0.0.nb --eif app.eif --app examples/ml_app
    -s ml_algorithm.py -a "-d /dataset/ -o /output/" --dataset data/ -o out/
    """
    from enclave.runner.errors import RunError
    from owner_tools.try_run import TryError, TryRequest, try_bundle

    try:
        argv = tuple(shlex.split(args))
    except ValueError as exc:
        raise UsageError(f"-a: {str(exc).lower()}") from exc
    for item in env:
        if not item.partition("=")[0] or "=" not in item:
            raise UsageError(f"--env: expected NAME=VALUE, got {item!r}")
    request = TryRequest(bundle, eif, app_dir, script, argv, tuple(env), dataset, model, output)
    try:
        status, outputs = try_bundle(request)
    except RunError as exc:
        raise TryError(f"{exc} ({exc.rpc_code.name})") from exc
    if outputs:
        print(f"owner-tools: output: {' '.join(outputs)} (in {output})", file=sys.stderr)
    return status


def register(app: typer.Typer) -> None:
    """Add this module's command to `app`."""
    app.command("try")(_try)
