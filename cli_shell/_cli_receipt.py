# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`receipt verify`, the one command both CLIs share (specs/receipts.md §6, specs/cli.md).

The checks are package_format.receipt's; this module only reads the files the user names
(the receipt, the root, the image, the output and input directories), runs the steps in
order and prints the summary (or `--json`). The first failed step is the command's one
error line (exit 1).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import typer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from package_format.attestation.roots import AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256
from package_format.receipt import (
    DEFAULT_LIMITS,
    receipt_json,
    summary_lines,
    verify_inputs,
    verify_outputs,
    verify_receipt,
)
from package_format.receipt.receipt import RECEIPT_FILE

_MAX_ROOT = 64 * 1024
_PCR_LEN = 48


def register(app: typer.Typer, usage_error: type[Exception]) -> None:
    """Add `receipt verify` to `app`; `usage_error` is the program's exit-2 error."""
    sub = typer.Typer(no_args_is_help=True, help="Run receipts (specs/receipts.md).")
    app.add_typer(sub, name="receipt")

    @sub.command("verify")
    def verify(  # noqa: PLR0917 - the command's options
        receipt: Path = typer.Argument(..., metavar="RECEIPT", help="A run's receipt.cbor."),
        output_dir: Path | None = typer.Option(
            None, "--output-dir", metavar="DIR", help="Check each output the record names here."
        ),
        inputs: Path | None = typer.Option(
            None,
            "--inputs",
            metavar="DIR",
            help="Check each input here (DIR/dataset/..., DIR/model/..., as synced).",
        ),
        expect_pcr0: str | None = typer.Option(
            None, "--expect-pcr0", metavar="HEX", help="The image's PCR0 (96 hex digits)."
        ),
        eif: Path | None = typer.Option(
            None, "--eif", metavar="IMAGE", help="Expect the PCR0, 1 and 2 of this image."
        ),
        nonce: str | None = typer.Option(
            None, "--nonce", metavar="HEX", help="The nonce given to `run --nonce`."
        ),
        root: Path | None = typer.Option(
            None, "--root", metavar="PEM", help="Root certificate (default: AWS Nitro root G1)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON object."),
    ) -> None:
        """Verify a run's receipt: document, image, record, nonce, then each file.

        Example: receipt verify synced_folder/output/receipt.cbor --eif app.eif
        --nonce HEX --output-dir synced_folder/output --inputs synced_folder
        """
        if (expect_pcr0 is None) == (eif is None):
            raise usage_error("give exactly one of --expect-pcr0 HEX or --eif IMAGE")
        expect = _pcr0(expect_pcr0, usage_error) if expect_pcr0 else _eif_pcrs(eif)
        wanted = _hex(nonce, "--nonce", usage_error) if nonce else None
        data = _read_limited(receipt, DEFAULT_LIMITS.max_receipt_bytes, "receipt")
        checked: dict[str, int | None] = {"outputs": None, "inputs": None}
        # A failed step raises its ReceiptError: the shell prints its one line (and, with
        # --json, the error object of specs/cli.md §1.2, whose `type` names the step).
        verified = verify_receipt(data, root=_root(root), expect_pcrs=expect, nonce=wanted)
        if output_dir is not None:
            checked["outputs"] = verify_outputs(verified.record, _opener(output_dir, "output"))
        if inputs is not None:
            checked["inputs"] = verify_inputs(verified.record, _opener(inputs, None))
        report = {"outputs_checked": checked["outputs"], "inputs_checked": checked["inputs"]}
        if as_json:
            print(json.dumps(receipt_json(verified, **report), indent=2))
        else:
            print("\n".join(summary_lines(verified, **report)))


def _opener(base: Path, top: str | None) -> Callable[[str], BinaryIO | None]:
    """Open a record's session path under `base` (`output/x` is `base/x` for outputs)."""

    def open_file(path: str) -> BinaryIO | None:
        parts = path.split("/")
        if top is not None:
            if parts[0] != top:
                return None
            parts = parts[1:]
        if not parts or any(p in {"", ".", ".."} for p in parts):
            return None  # the enclave names no such path; never leave `base`
        if top == "output" and parts == [RECEIPT_FILE]:
            return None
        try:
            return base.joinpath(*parts).open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    return open_file


def _read_limited(path: Path, limit: int, what: str) -> bytes:
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{path}: {what} larger than {limit} bytes")
    return data


def _root(path: Path | None) -> x509.Certificate:
    if path is None:
        cert = x509.load_pem_x509_certificate(AWS_NITRO_ROOT_G1_PEM)
        der = cert.public_bytes(Encoding.DER)
        if hashlib.sha256(der).hexdigest() != AWS_NITRO_ROOT_G1_SHA256:  # pragma: no cover
            raise OSError("embedded aws nitro root does not match its fingerprint")
        return cert
    data = _read_limited(path, _MAX_ROOT, "root certificate")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise OSError(f"{path}: not a pem or der certificate") from exc


def _hex(text: str, flag: str, usage_error: type[Exception]) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError as exc:
        raise usage_error(f"{flag}: expected hex") from exc
    if not 1 <= len(value) <= 1024:
        raise usage_error(f"{flag}: 1 to 1024 bytes")
    return value


def _pcr0(text: str, usage_error: type[Exception]) -> dict[int, bytes]:
    value = _hex(text, "--expect-pcr0", usage_error)
    if len(value) != _PCR_LEN:
        raise usage_error("--expect-pcr0: a pcr is 48 bytes (96 hex digits)")
    return {0: value}


def _eif_pcrs(path: Path | None) -> dict[int, bytes]:
    from package_format.eif.reader import read_eif

    assert path is not None
    with path.open("rb") as handle:
        image = read_eif(handle)
    image.verify()
    measured = image.measurements
    return {0: measured.pcr0, 1: measured.pcr1, 2: measured.pcr2}


__all__ = ["register"]
