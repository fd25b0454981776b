# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime attestation verify` (specs/attestation.md §12)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the `attestation` group to `app`."""
    sub = typer.Typer(no_args_is_help=True, help="Nitro attestation documents.")
    app.add_typer(sub, name="attestation")

    @sub.command("verify")
    def verify(
        document: Path = typer.Argument(
            ..., metavar="FILE", help="COSE_Sign1 document (raw or base64)."
        ),
        root: Path | None = typer.Option(
            None,
            "--root",
            metavar="PEM",
            help="Root certificate to pin (default: AWS Nitro root G1).",
        ),
        at: str = typer.Option(
            "now",
            "--at",
            metavar="TIME",
            help="Verify as of TIME: now (default), doc (the document's own timestamp), "
            "ISO 8601, or Unix milliseconds.",
        ),
    ) -> None:
        """Verify an attestation document and print its fields as JSON."""
        import json

        from user_runtime.attestation import parse_at, verify_file
        from user_runtime.errors import UsageError

        try:
            when = parse_at(at)
        except UsageError as exc:
            raise typer.BadParameter(str(exc)) from exc
        result = verify_file(document, root_path=root, at=when)
        print(json.dumps(result, indent=2))
