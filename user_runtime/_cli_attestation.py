# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime attestation verify|fetch` (specs/attestation.md §12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    """Add the `attestation` group to `app`."""
    sub = typer.Typer(no_args_is_help=True, help="Nitro attestation documents.")
    app.add_typer(sub, name="attestation")
    sub.command("verify")(verify)
    sub.command("fetch")(fetch)


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
    """Verify an attestation document and print its fields as JSON.

    Example: user-runtime attestation verify doc.cose --at doc
    """
    from user_runtime.attestation import parse_at, verify_file
    from user_runtime.errors import UsageError

    try:
        when = parse_at(at)
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from exc
    _print_result(verify_file(document, root_path=root, at=when))


def fetch(
    nonce: str = typer.Option(
        ..., "--nonce", metavar="HEX", help="A fresh random nonce (hex, 1-1024 bytes)."
    ),
    out: Path | None = typer.Option(
        None, "--out", metavar="FILE", help="Also write the raw document here."
    ),
    root: Path | None = typer.Option(
        None,
        "--root",
        metavar="PEM",
        help="Root certificate to pin (default: AWS Nitro root G1; the local stack's "
        "is STATE/nsm-pki/root.pem).",
    ),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="State directory."),
) -> None:
    """Ask the running enclave for a document bound to NONCE, verify it, print it as JSON.

    Example: user-runtime attestation fetch --nonce "$(openssl rand -hex 16)"
    """
    import contextlib
    import os

    from user_runtime.attestation import verify_fresh
    from user_runtime.enclave.state import state_dir_path
    from user_runtime.rpc.client import EnclaveClient
    from user_runtime.run import enclave_address

    wanted = _nonce(nonce)
    address = enclave_address(state_dir_path(state_dir))
    with contextlib.closing(EnclaveClient.connect(address)) as client:
        data = client.attest(nonce=wanted)
    result = verify_fresh(data, nonce=wanted, root_path=root)
    if out is not None:
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(out)
    _print_result(result)


def _nonce(text: str) -> bytes:
    try:
        wanted = bytes.fromhex(text)
    except ValueError as exc:
        raise typer.BadParameter("--nonce: expected hex") from exc
    if not 1 <= len(wanted) <= 1024:
        raise typer.BadParameter("--nonce: 1 to 1024 bytes")
    return wanted


def _print_result(result: dict[str, Any]) -> None:
    """The verified fields as JSON on stdout; a debug-mode document's warning on stderr."""
    import json
    import sys

    from user_runtime.attestation import DEBUG_MODE_WARNING

    if result["debug_mode"]:
        print(f"user-runtime: {DEBUG_MODE_WARNING}", file=sys.stderr)
    print(json.dumps(result, indent=2))
