# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""`owner-tools inspect`: manifest, sizes and signer fingerprint, with no KMS."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _bundle_support import Env, create_kms_key, keygen, make_app, one_error_line, pack

from owner_tools._cli import main
from owner_tools.keys import load_owner_key
from package_format.bundle.signing import fingerprint


@pytest.fixture
def env(moto_server, aws_env, tmp_path) -> Env:
    private, public = keygen(tmp_path, "owner")
    return Env(moto_server.url, create_kms_key(moto_server.url), private, public, tmp_path)


def test_inspect_json(env, capsys, monkeypatch) -> None:
    out = env.tmp / "b.nb"
    assert pack(env, make_app(env.tmp), out) == 0
    capsys.readouterr()
    # No KMS: even with credentials gone, inspect works.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    assert main(["inspect", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    info = json.loads(captured.out)
    assert info["name"] == "demo-app"
    assert info["signer_fingerprint"] == fingerprint(load_owner_key(env.public_key))
    assert info["bundle_size"] == out.stat().st_size
    assert info["payload_size"] == 17 + 19 + 4 * 1024 + 100
    assert info["segments"] == 5
    assert [f["path"] for f in info["files"]] == [
        "ml_algorithm.py", "model", "model/weights.bin", "run.sh"
    ]  # fmt: skip
    assert info["files"][3]["mode"] == "0755"
    assert captured.err == ""


def test_inspect_human(env, capsys) -> None:
    out = env.tmp / "b.nb"
    assert pack(env, make_app(env.tmp), out) == 0
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    captured = capsys.readouterr()
    assert "bundle:       demo-app 1.0.0 (format 1)" in captured.out
    assert "entrypoint:   ml_algorithm.py -> ml_algorithm.py (python, args)" in captured.out
    assert "signer:       SHA256:" in captured.out
    assert captured.err.strip() == "note: inspect does not check the signature; run verify"


def test_inspect_garbage_is_one_line(tmp_path, capsys) -> None:
    path = tmp_path / "junk.nb"
    path.write_bytes(b"NBNDL\x01\x00\x00\x00\x05abc")
    assert main(["inspect", str(path)]) == 1
    assert one_error_line(capsys) == "owner-tools: error: bundle: ends inside the header"


def test_inspect_console_script_missing_file(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "owner_tools", "inspect", str(tmp_path / "missing.nb")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"owner-tools: error: {tmp_path / 'missing.nb'}: no such file or directory"
    )
