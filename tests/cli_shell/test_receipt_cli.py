# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`receipt verify` in both CLIs (specs/receipts.md §6.1): summary, JSON, one line per failure."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from owner_tools._cli import main as owner_main
from package_format.attestation.roots import AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256
from user_runtime._cli import main as user_main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "package_format" / "receipt"))
from receipt_vectors import Vector, named

MAINS: dict[str, Callable[[list[str]], int]] = {"user": user_main, "owner": owner_main}


def lay_out(tmp_path: Path, vector: Vector) -> list[str]:
    """Write the vector's receipt, root and files; return the common arguments."""
    receipt = tmp_path / "receipt.cbor"
    receipt.write_bytes(vector.receipt)
    root = tmp_path / "root.pem"
    root.write_bytes(x509.load_der_x509_certificate(vector.root).public_bytes(Encoding.PEM))
    outputs, inputs = tmp_path / "out", tmp_path / "in"
    for path, data in vector.outputs.items():
        target = outputs / path.removeprefix("output/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    for path, data in vector.inputs.items():
        target = inputs / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    args = ["receipt", "verify", str(receipt), "--root", str(root), "--expect-pcr0"]
    args += [vector.pcr0.hex(), "--output-dir", str(outputs), "--inputs", str(inputs)]
    if vector.nonce is not None:
        args += ["--nonce", vector.nonce.hex()]
    return args


@pytest.mark.parametrize("tool", sorted(MAINS))
def test_good_receipt_prints_the_summary(tmp_path, capsys, tool) -> None:
    rc = MAINS[tool](lay_out(tmp_path, named("receipt_ok_nonce")))
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert err == ""
    assert out.startswith("receipt: verified, signed by i-0123456789abcdef0")
    assert "bundle:     app ml-app 1.2.0" in out
    assert "outputs:    2 file(s), 2 checked, all match" in out
    assert "inputs:     2 file(s), 2 checked, all match" in out
    assert "nonce:      00112233445566778899aabbccddeeff" in out


def test_good_receipt_as_json(tmp_path, capsys) -> None:
    vector = named("receipt_ok")
    rc = user_main([*lay_out(tmp_path, vector), "--json"])
    out, _ = capsys.readouterr()
    assert rc == 0
    doc = json.loads(out)
    assert doc["verified"] is True
    assert doc["pcrs"]["0"] == vector.pcr0.hex()
    assert doc["outputs"] == {"count": 2, "checked": 2}
    assert doc["bundles"][0]["name"] == "ml-app"
    assert len(doc["record_sha384"]) == 96


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("receipt_output_flipped", "output output/metrics.json: sha-256 differs"),
        ("receipt_output_missing", "output output/plots/roc.txt: missing"),
        ("receipt_input_flipped", "input model/weights.bin: sha-256 differs"),
        ("receipt_record_flipped", "record: sha-384 does not match"),
        ("receipt_document_flipped", "document: "),
        ("receipt_pcr_other_image", "pcr0: the receipt's enclave ran another image"),
        ("receipt_nonce_replay", "nonce: the receipt does not carry the nonce"),
        ("receipt_not_canonical", "receipt: cbor is not in canonical"),
    ],
)
@pytest.mark.parametrize("tool", sorted(MAINS))
def test_failure_is_one_line_and_exit_1(tmp_path, capsys, tool, name, needle) -> None:
    rc = MAINS[tool](lay_out(tmp_path, named(name)))
    out, err = capsys.readouterr()
    assert rc == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"{'user-runtime' if tool == 'user' else 'owner-tools'}: ")
    assert needle in err


def test_failure_as_json_names_the_error_class(tmp_path, capsys) -> None:
    rc = user_main([*lay_out(tmp_path, named("receipt_pcr_other_image")), "--json"])
    out, err = capsys.readouterr()
    assert rc == 1
    error = json.loads(out)["error"]
    assert error["type"] == "PcrMismatchError"
    assert error["exit_code"] == 1
    assert error["message"].startswith("pcr0: ")
    assert len(err.strip().splitlines()) == 1


def test_files_are_checked_only_when_asked(tmp_path, capsys) -> None:
    args = lay_out(tmp_path, named("receipt_output_flipped"))
    cut = args.index("--output-dir")
    rc = user_main(args[:cut] + args[cut + 4 :])
    out, _ = capsys.readouterr()
    assert rc == 0
    assert "outputs:    2 file(s), not checked" in out


@pytest.mark.parametrize(
    "extra",
    [[], ["--expect-pcr0", "00" * 48, "--eif", "x.eif"], ["--expect-pcr0", "abcd"]],
    ids=["neither", "both", "short"],
)
def test_image_expectation_is_a_usage_error(tmp_path, capsys, extra) -> None:
    receipt = tmp_path / "r.cbor"
    receipt.write_bytes(named("receipt_ok").receipt)
    rc = user_main(["receipt", "verify", str(receipt), *extra])
    _, err = capsys.readouterr()
    assert rc == 2
    assert len(err.strip().splitlines()) == 1


def test_default_root_is_aws_and_refuses_a_simulated_receipt(tmp_path, capsys) -> None:
    der = x509.load_pem_x509_certificate(AWS_NITRO_ROOT_G1_PEM).public_bytes(Encoding.DER)
    assert hashlib.sha256(der).hexdigest() == AWS_NITRO_ROOT_G1_SHA256
    args = lay_out(tmp_path, named("receipt_ok"))
    cut = args.index("--root")
    rc = user_main(args[:cut] + args[cut + 2 :])
    _, err = capsys.readouterr()
    assert rc == 1
    assert "document: cabundle[0]: not the pinned root" in err
