# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`local-stack env | create-key | create-bucket`: a shell's identity and the owner's set-up."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from local_stack.errors import InputError

if TYPE_CHECKING:
    from local_stack.stack import StackInfo

_STATE_HELP = "State directory (default: $NB_STATE_DIR, else ./.nitro-bundles-local)."


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("env")(env)
    app.command("create-key")(create_key)
    app.command("create-bucket")(create_bucket)


def _running(state_dir: Path | None) -> StackInfo:
    from local_stack import stack

    directory = stack.resolve_state_dir(state_dir)
    info, alive = stack.status(directory)
    if info is None or not all(alive.values()):
        raise InputError(f"no local stack runs in {directory}: run `local-stack up` first")
    return info


def env(
    state_dir: Path | None = typer.Option(None, "--state-dir", help=_STATE_HELP),
    identity: str = typer.Option(
        "owner", "--as", help="Whose keys: `owner` (the default) or `host` (the enclave's host)."
    ),
) -> None:
    """Print `export` lines for a running stack, as IDENTITY (use with eval).

    The owner packs and publishes; the enclave's host (the user's machine) pulls and starts the
    enclave, whose key releases the policy admits only with the image's attestation.

    Example: eval "$(local-stack env --as host)"
    """
    from local_stack import cloud

    for name, value in cloud.identity_env(_running(state_dir), identity).items():
        print(f"export {name}={shlex.quote(value)}")


def create_key(
    state_dir: Path | None = typer.Option(None, "--state-dir", help=_STATE_HELP),
    description: str = typer.Option("", "--description", help="The key's description."),
    as_json: bool = typer.Option(False, "--json", help='Print {"key_id": ...}.'),
) -> None:
    """Create a KMS key on the local stack as the owner; print its id.

    Example: KEY=$(local-stack create-key --description "my bundles")
    """
    from local_stack import cloud

    key_id = cloud.create_key(_running(state_dir), description)
    print(json.dumps({"key_id": key_id}) if as_json else key_id)


def create_bucket(
    name: str = typer.Argument(..., help="The bucket's name."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help=_STATE_HELP),
    as_json: bool = typer.Option(False, "--json", help='Print {"bucket", "created"}.'),
) -> None:
    """Create an S3 bucket on the local stack as the owner (no-op if it exists).

    Example: local-stack create-bucket bundles
    """
    from local_stack import cloud

    created = cloud.create_bucket(_running(state_dir), name)
    if as_json:
        print(json.dumps({"bucket": name, "created": created}))
    print(f"local-stack: bucket {name} {'created' if created else 'exists'}", file=sys.stderr)
