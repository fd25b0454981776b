# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime pull` (specs/distribution.md §7)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from package_format.index import S3Location
    from user_runtime.pull import PullResult


def _load_owner_key(path: Path) -> bytes:
    from package_format.bundle.signing import load_public_key
    from user_runtime.errors import InputError

    try:
        with path.open("rb") as fh:
            data = fh.read(4097)
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not a public key file") from e
    return load_public_key(text, str(path))


def register(app: typer.Typer) -> None:
    """Add `pull` to `app`."""
    app.command("pull")(pull)


def pull(  # noqa: PLR0917 - typer options
    spec: str = typer.Argument(..., metavar="NAME[@VERSION]", help="Bundle to fetch."),
    source: str = typer.Option(
        ..., "--from", help="Repository URL, s3://BUCKET/PREFIX (prefix optional)."
    ),
    owner_key: Path = typer.Option(..., "--owner-key", help="Owner public key file."),
    directory: Path = typer.Option(Path(), "-d", "--dir", help="Where the files go."),
    eif: bool = typer.Option(False, "--eif", help="Also fetch the enclave image and PCRs."),
    state_dir: Path | None = typer.Option(
        None, "--state-dir", help="Trust state (default: $NB_STATE_DIR or XDG state dir)."
    ),
    endpoint_url: str | None = typer.Option(
        None, "--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL_S3 or AWS)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (cli.md)."),
) -> None:
    """Fetch NAME (its current version, or VERSION) after verifying the signed index.

    Example: user-runtime pull breast-cancer-scorer --from s3://bundles/releases
    --owner-key owner.pub -d downloads --eif
    """
    from datetime import UTC, datetime

    from cli_shell.progress import byte_progress
    from user_runtime import pull as pull_mod
    from user_runtime.trust_state import default_state_dir

    name, version = pull_mod.split_spec(spec)
    location = _location(source)
    if not name:
        raise typer.BadParameter("NAME must not be empty")
    public_key = _load_owner_key(owner_key)
    with byte_progress(f"pulling {name}", None, quiet=quiet, as_json=as_json) as progress:
        result = pull_mod.pull(
            pull_mod.make_client(endpoint_url),
            location,
            name,
            version,
            public_key=public_key,
            dest_dir=directory,
            state_dir=state_dir or default_state_dir(),
            now=datetime.now(UTC),
            with_image=eif,
            progress=progress,
        )
    _print_result(result, as_json=as_json)


def _location(source: str) -> S3Location:
    from package_format.errors import FormatError
    from package_format.index import S3Location

    try:
        return S3Location.parse(source)
    except FormatError as e:
        raise typer.BadParameter(str(e)) from e


def _print_result(result: PullResult, *, as_json: bool) -> None:
    """The files on stdout and a summary on stderr, or one JSON object (specs/cli.md)."""
    import json

    if as_json:
        print(json.dumps(_pull_json(result)))
        return
    for path in result.files:
        print(path)
    action = "pulled" if result.downloaded_bytes else "already up to date:"
    print(
        f"{action} {result.name}@{result.version} (index version {result.index_version})",
        file=sys.stderr,
    )


def _pull_json(result: PullResult) -> dict[str, object]:
    # specs/cli.md, `user-runtime pull --json`.
    return {
        "name": result.name,
        "version": result.version,
        "index_version": result.index_version,
        "files": [str(path) for path in result.files],
        "downloaded_bytes": result.downloaded_bytes,
    }
