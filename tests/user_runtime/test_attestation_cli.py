# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`user-runtime attestation verify`: real AWS documents, a simulated one, and refusals."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from package_format.attestation.roots import AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256
from user_runtime._cli import main
from user_runtime.attestation import DEBUG_MODE_WARNING, aws_root

REAL = {
    "nitrite_pr2_d2d8010.cose": 1635440522077,
    "tkhq_qos_mock_attestation_doc.cose": 1657117102484,
    "evervault_beta_valid-attestation-doc-bytes.cose": 1665651482136,
    "evervault_beta_debug-mode-attestation-doc-bytes.cose": 1665582606081,
    "evervault_valid-attestation-doc.cose": 1695049410860,
}


def test_embedded_aws_root_fingerprint(aws_vector):
    der = x509.load_pem_x509_certificate(AWS_NITRO_ROOT_G1_PEM).public_bytes(Encoding.DER)
    assert hashlib.sha256(der).hexdigest() == AWS_NITRO_ROOT_G1_SHA256
    assert AWS_NITRO_ROOT_G1_SHA256.startswith("641a0321")
    assert AWS_NITRO_ROOT_G1_SHA256.endswith("bb5b")
    shipped = x509.load_pem_x509_certificate(
        aws_vector("attestation/aws_nitro_root_g1.pem").read_bytes()
    )
    assert aws_root() == shipped


@pytest.mark.parametrize("name", sorted(REAL))
def test_verify_real_document_at_its_timestamp(aws_vector, capsys, name):
    path = aws_vector(f"attestation/{name}")
    rc = main(["attestation", "verify", str(path), "--at", str(REAL[name])])
    out, err = capsys.readouterr()
    assert rc == 0, err
    result = json.loads(out)
    assert result["debug_mode"] == (result["pcrs"]["0"] == "00" * 48)
    assert err == ("user-runtime: " + DEBUG_MODE_WARNING + "\n" if result["debug_mode"] else "")
    assert result["timestamp"] == REAL[name]
    assert result["digest"] == "SHA384"
    assert result["root_sha256"] == AWS_NITRO_ROOT_G1_SHA256
    assert sorted(result["pcrs"], key=int) == [str(i) for i in range(16)]
    assert all(len(v) == 96 for v in result["pcrs"].values())
    assert result["certificate"]["subject"].startswith("CN=" + result["module_id"])


def test_verify_at_doc_and_fields(aws_vector, capsys):
    path = aws_vector("attestation/evervault_beta_debug-mode-attestation-doc-bytes.cose")
    rc = main(["attestation", "verify", str(path), "--at", "doc"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "warning: debug-mode document" in err
    result = json.loads(out)
    assert result["debug_mode"] is True
    assert bytes.fromhex(result["public_key"]) == b"my super secret key"
    assert bytes.fromhex(result["user_data"]) == b"hello, world!"
    assert result["nonce"] is None
    assert result["pcrs"]["0"] == "00" * 48


def test_verify_iso_time_and_base64_file(aws_vector, capsys, tmp_path):
    raw = aws_vector("attestation/tkhq_qos_mock_attestation_doc.cose").read_bytes()
    b64 = tmp_path / "doc.b64"
    b64.write_bytes(base64.b64encode(raw) + b"\n")
    at = datetime.fromtimestamp(1657117102484 / 1000, tz=UTC) + timedelta(minutes=5)
    rc = main(["attestation", "verify", str(b64), "--at", at.isoformat().replace("+00:00", "Z")])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    assert json.loads(out)["pcrs"]["0"].startswith("f8bb0133c427bc49")


def test_default_time_is_now_so_old_document_fails(aws_vector, capsys):
    path = aws_vector("attestation/evervault_valid-attestation-doc.cose")
    rc = main(["attestation", "verify", str(path)])
    out, err = capsys.readouterr()
    assert rc == 1
    assert out == ""
    assert err.startswith("user-runtime: error: ")
    assert "not valid at" in err
    assert len(err.strip().splitlines()) == 1


def test_tampered_document_fails(aws_vector, capsys, tmp_path):
    data = bytearray(aws_vector("attestation/evervault_valid-attestation-doc.cose").read_bytes())
    data[-1] ^= 1
    path = tmp_path / "bad.cose"
    path.write_bytes(bytes(data))
    rc = main(["attestation", "verify", str(path), "--at", "doc"])
    out, err = capsys.readouterr()
    assert (rc, out) == (1, "")
    assert err == f"user-runtime: error: {path}: cose_sign1: signature invalid\n"


def test_other_root_rejects_aws_document(aws_vector, capsys, tmp_path):
    from enclave.nsm.simulator import create_sim_pki

    create_sim_pki(tmp_path / "pki")
    path = aws_vector("attestation/nitrite_pr2_d2d8010.cose")
    rc = main(
        [
            "attestation",
            "verify",
            str(path),
            "--root",
            str(tmp_path / "pki/root.pem"),
            "--at",
            "doc",
        ]
    )
    out, err = capsys.readouterr()
    assert (rc, out) == (1, "")
    assert "not the pinned root" in err


def test_simulated_document_with_sim_root(capsys, tmp_path):
    from enclave.nsm.simulator import SimulatedNsm, create_sim_pki, image_pcrs

    pki = create_sim_pki(tmp_path / "pki")
    nsm = SimulatedNsm(pki, image_pcrs(b"\x01" * 48, b"\x02" * 48, b"\x03" * 48))
    doc = tmp_path / "sim.cose"
    doc.write_bytes(nsm.attestation(nonce=b"abc"))
    rc = main(["attestation", "verify", str(doc), "--root", str(tmp_path / "pki/root.pem")])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    result = json.loads(out)
    assert result["pcrs"]["0"] == "01" * 48
    assert result["nonce"] == b"abc".hex()
    assert result["module_id"] == nsm.module_id


@pytest.mark.parametrize("at", ["yesterday", "2024-13-01", "99999999999999999999"])
def test_bad_time_is_usage_error(aws_vector, capsys, at):
    path = aws_vector("attestation/nitrite_pr2_d2d8010.cose")
    rc = main(["attestation", "verify", str(path), "--at", at])
    out, err = capsys.readouterr()
    assert (rc, out) == (2, "")
    assert err.startswith("user-runtime: usage: ")


@pytest.mark.parametrize(
    "content", [b"", b"garbage", b"\x84\x01", bytes(70000)], ids=["empty", "text", "short", "huge"]
)
def test_garbage_file_one_line(capsys, tmp_path, content):
    path = tmp_path / "doc"
    path.write_bytes(content)
    rc = main(["attestation", "verify", str(path), "--at", "doc"])
    out, err = capsys.readouterr()
    assert (rc, out) == (1, "")
    assert err.startswith("user-runtime: error: ")
    assert len(err.strip().splitlines()) == 1


def test_missing_root_file(aws_vector, capsys, tmp_path):
    path = aws_vector("attestation/nitrite_pr2_d2d8010.cose")
    rc = main(["attestation", "verify", str(path), "--root", str(tmp_path / "absent.pem")])
    out, err = capsys.readouterr()
    assert (rc, out) == (1, "")
    assert "no such file" in err


def _console_script() -> list[str]:
    script = Path(sys.executable).parent / "user-runtime"
    return [str(script)] if script.exists() else [sys.executable, "-m", "user_runtime"]


def test_console_script_no_traceback(tmp_path):
    bad = tmp_path / "bad.cose"
    bad.write_bytes(b"\x84\x40\xa0\x40\x40")
    for argv in (
        ["attestation", "verify", str(bad)],
        ["attestation", "verify", str(bad), "--at", "nonsense"],
        ["attestation", "verify", str(tmp_path / "absent")],
    ):
        result = subprocess.run(
            [*_console_script(), *argv],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode in (1, 2), argv
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("user-runtime: ")
        assert result.stdout == ""


def test_production_document_has_no_debug_warning(aws_vector, capsys):
    path = aws_vector("attestation/evervault_beta_valid-attestation-doc-bytes.cose")
    assert main(["attestation", "verify", str(path), "--at", "doc"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["debug_mode"] is False
    assert err == ""


def test_reader_closing_stdout_early_keeps_exit_zero(aws_vector):
    # `verify | head -c 0`: the verdict is the exit code, not whether the reader read it all.
    # The reader is gone before the command writes anything, so its write meets EPIPE.
    path = aws_vector("attestation/evervault_beta_debug-mode-attestation-doc-bytes.cose")
    argv = [sys.executable, "-m", "user_runtime", "attestation", "verify", str(path)]
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [*argv, "--at", "doc"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            check=False,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr


def test_tampered_document_still_fails_when_stdout_is_closed(aws_vector, tmp_path):
    # The EPIPE rule keeps a verdict; it must not turn a failure into success.
    data = bytearray(aws_vector("attestation/evervault_valid-attestation-doc.cose").read_bytes())
    data[len(data) // 2] ^= 1
    path = tmp_path / "bad.cose"
    path.write_bytes(bytes(data))
    proc = subprocess.run(
        [sys.executable, "-m", "user_runtime", "attestation", "verify", str(path), "--at", "doc"],
        stdout=subprocess.DEVNULL,
        capture_output=False,
        stderr=subprocess.PIPE,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 1
