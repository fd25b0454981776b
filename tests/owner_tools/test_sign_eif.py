# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""owner-tools sign-eif: PCR8, signature check, atomic output."""

from __future__ import annotations

import json
import shutil

from owner_tools._cli import main

PCR8 = "593210dba4b3e11d73fca047aa4f230ef611a4b104e9d9a7e19a1e08ef56a5fe8ffafa4b341ad3058d02721cc9e3af63"


def _args(aws_vector):
    return [
        "--signing-certificate",
        str(aws_vector("eif/inputs/signing-cert.pem")),
        "--private-key",
        str(aws_vector("eif/inputs/signing-key.TEST-ONLY.pem")),
    ]


def test_sign_eif_sets_pcr8_and_describe_verifies(tmp_path, aws_vector, capsys):
    eif = tmp_path / "t.eif"
    shutil.copy(aws_vector("eif/eif/tiny-x86_64-unsigned.eif"), eif)
    assert main(["sign-eif", str(eif), *_args(aws_vector)]) == 0
    printed = json.loads(capsys.readouterr().out)["Measurements"]
    assert printed["PCR8"] == PCR8
    assert json.loads((tmp_path / "t.eif.pcrs.json").read_text())["Measurements"] == printed
    assert main(["describe-eif", str(eif)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["IsSigned"] is True
    assert info["SignatureCheck"] is True
    assert info["CheckCRC"] is True
    assert info["Measurements"]["PCR0"] == printed["PCR0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.eif", "t.eif.pcrs.json"]


def test_sign_eif_to_other_output_leaves_input(tmp_path, aws_vector, capsys):
    src = aws_vector("eif/eif/tiny-x86_64-unsigned.eif")
    out = tmp_path / "signed.eif"
    assert main(["sign-eif", str(src), "-o", str(out), *_args(aws_vector)]) == 0
    capsys.readouterr()
    assert out.stat().st_size > src.stat().st_size
    assert src.stat().st_size == 13274


def test_sign_eif_with_mismatched_key_fails_cleanly(tmp_path, aws_vector, capsys):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = tmp_path / "other.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    eif = tmp_path / "t.eif"
    shutil.copy(aws_vector("eif/eif/tiny-x86_64-unsigned.eif"), eif)
    rc = main(
        [
            "sign-eif",
            str(eif),
            "--signing-certificate",
            str(aws_vector("eif/inputs/signing-cert.pem")),
            "--private-key",
            str(other),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err == ["owner-tools: error: signing key does not match the signing certificate"]
    assert eif.read_bytes() == aws_vector("eif/eif/tiny-x86_64-unsigned.eif").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.pem", "t.eif"]


def test_sign_eif_with_non_pem_key_fails_cleanly(tmp_path, aws_vector, capsys):
    junk = tmp_path / "key.pem"
    junk.write_text("not a key")
    rc = main(
        [
            "sign-eif",
            str(aws_vector("eif/eif/tiny-x86_64-unsigned.eif")),
            "-o",
            str(tmp_path / "o.eif"),
            "--signing-certificate",
            str(aws_vector("eif/inputs/signing-cert.pem")),
            "--private-key",
            str(junk),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert len(err) == 1
    assert "not a PEM private key" in err[0]
