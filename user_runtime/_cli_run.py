# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime run -f BUNDLE -s ENTRY -a "ARGS"`: run an entrypoint in the enclave, live.

stdout and stderr of the entrypoint arrive as they are printed; the exit status is the
entrypoint's own; Ctrl-C cancels the run in the enclave (exit 130); a lost enclave is one
line and exit 1. Heavy modules are imported inside the command, so start-up stays lean.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add `run` to `app`."""
    app.command("run")(run_command)


def run_command(  # noqa: PLR0917 - the command's options
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
    timeout: int | None = typer.Option(
        None,
        "--timeout",
        min=1,
        help="Stop the run after this many seconds (exit 124); the bundle may set a lower ceiling.",
    ),
    env: list[str] = typer.Option(
        [],
        "--env",
        help="NAME=VALUE for the entrypoint's environment (repeatable); only names the"
        " bundle's manifest allows.",
    ),
    data: list[str] = typer.Option(
        [],
        "--data",
        help="A data bundle joining the run (repeatable): in the enclave's encrypted/"
        " folder, or a local file to upload; read-only where the app's manifest says.",
    ),
    nonce: str | None = typer.Option(
        None,
        "--nonce",
        metavar="HEX",
        help="Bind the run's receipt (output/receipt.cbor) to this fresh nonce (hex, 1-1024"
        " bytes); check it later with `receipt verify --nonce`.",
    ),
) -> int:
    """Run an entrypoint of a bundle in the enclave; its exit status is this command's.

    Example: user-runtime run -f app.nb -s ml_algorithm.py -a "-d /dataset/ -o /output/"
    """
    from user_runtime._cli_common import run_and_show
    from user_runtime.receipt import parse_nonce
    from user_runtime.run import check_env, split_args

    argv = split_args(args)
    items = check_env(env)
    wanted = parse_nonce(nonce)
    return run_and_show(bundle, script, argv, state_dir, timeout, items, data, wanted)
